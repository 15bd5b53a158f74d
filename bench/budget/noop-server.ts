/**
 * The floor of node:http for Ballot's write request, for bench/budget: a server that reads a
 * `PUT /v1/kv/:key` body, parses its JSON and answers 200 with a body and headers shaped like
 * Ballot's (X-Ballot-Node, X-Ballot-Leader, ETag), and does nothing else — no Raft, no disk, no
 * validation. What it costs per request is what any server built on node:http pays before its own
 * work. Must never be mistaken for a Ballot node: it stores nothing and answers every PUT alike.
 *
 * Usage: node noop-server.js PORT   (prints "listening" once it accepts connections)
 */
import * as http from "node:http";

const port = Number(process.argv[2]);
let revision = 0;
const server = http.createServer((req, res) => {
  const parts: Buffer[] = [];
  req.on("data", (c: Buffer) => parts.push(c));
  req.on("end", () => {
    let value = "";
    try {
      value = JSON.stringify((JSON.parse(Buffer.concat(parts).toString()) as { value?: unknown }).value);
    } catch {
      res.writeHead(400).end();
      return;
    }
    revision++;
    const key = (req.url ?? "/").slice("/v1/kv/".length);
    const text = `${JSON.stringify({ key, value, revision, createRevision: revision, version: 1 })}\n`;
    res.writeHead(200, [
      "X-Ballot-Node",
      "noop",
      "X-Ballot-Leader",
      "noop",
      "Content-Type",
      "application/json",
      "Content-Length",
      String(Buffer.byteLength(text)),
      "ETag",
      `"${revision}"`,
    ]);
    res.end(text);
  });
});
server.listen(port, "127.0.0.1", () => console.log("listening"));
process.on("SIGTERM", () => server.close(() => process.exit(0)));
