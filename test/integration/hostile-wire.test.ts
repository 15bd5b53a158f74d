/**
 * Hostile framing below routing, over raw sockets against a real node (one-member cluster, real
 * WAL, deadlines shortened so the test takes seconds): trickled headers and bodies meet their
 * deadline, oversized headers, malformed framing and garbage get a JSON 4xx and a closed
 * connection, a pipelined good request before a bad one is answered and nothing after the bad one
 * runs, chunked bodies are refused at once. The revision does not move.
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import * as net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { type RunningServer, startServer } from "../../src/server/server.js";
import { call, freePorts, sleep } from "./procs.js";

const HEADERS_MS = 400;
const REQUEST_MS = 800;

/** Writes `parts` with `gapMs` between them; resolves with everything read until the server closes. */
function converse(
  url: string,
  parts: string[],
  gapMs = 0,
  limitMs = 5_000,
): Promise<{ text: string; ms: number }> {
  const { hostname, port } = new URL(url);
  const started = performance.now();
  return new Promise((resolve, reject) => {
    const sock = net.connect(Number(port), hostname);
    let text = "";
    let stopped = false;
    const timer = setTimeout(() => {
      sock.destroy();
      reject(
        new Error(
          `the server did not close within ${limitMs} ms; read: ${JSON.stringify(text.slice(0, 300))}`,
        ),
      );
    }, limitMs);
    sock.on("data", (d) => {
      text += d.toString("latin1");
    });
    sock.on("close", () => {
      stopped = true;
      clearTimeout(timer);
      resolve({ text, ms: performance.now() - started });
    });
    sock.on("error", () => {
      // a reset after the answer: the close handler resolves with what was read
    });
    void (async () => {
      for (const p of parts) {
        if (stopped) return;
        sock.write(p);
        if (gapMs) await sleep(gapMs);
      }
    })();
  });
}

/** The status lines and JSON error codes of every answer in `text`, in order. */
function answers(text: string): { status: number; code?: string }[] {
  const out: { status: number; code?: string }[] = [];
  const re = /HTTP\/1\.1 (\d{3})[^\r]*\r\n([\s\S]*?)\r\n\r\n/g;
  for (let m = re.exec(text); m; m = re.exec(text)) {
    const head = m[2]!;
    const len = Number(/content-length: *(\d+)/i.exec(head)?.[1] ?? 0);
    const body = text.slice(re.lastIndex, re.lastIndex + len);
    re.lastIndex += len;
    let code: string | undefined;
    if (/content-type: *application\/json/i.test(head))
      code = (JSON.parse(body) as { error?: { code: string } }).error?.code;
    out.push({ status: Number(m[1]), code });
  }
  return out;
}

describe("hostile framing and trickles", () => {
  let s: RunningServer;
  let url: string;
  const dir = mkdtempSync(join(tmpdir(), "ballot-wire-"));
  const quiet = { info: () => {}, warn: () => {}, error: () => {} };
  before(async () => {
    const [port] = await freePorts(1);
    url = `http://127.0.0.1:${port}`;
    s = await startServer({
      id: "n1",
      listen: url,
      members: new Map([["n1", url]]),
      dataDir: dir,
      logger: quiet,
      deadlines: { headersMs: HEADERS_MS, requestMs: REQUEST_MS },
    });
    for (let i = 0; i < 200 && !s.node.isLeader; i++) await sleep(25);
    assert.equal((await call(`${url}/v1/kv/baseline`, "PUT", { value: "kept" })).status, 200);
  });
  after(async () => {
    await s?.stop();
    rmSync(dir, { recursive: true, force: true });
  });
  const revision = async () => (await call(`${url}/v1/kv?consistency=local`)).body.revision as number;
  const host = () => `Host: ${new URL(url).host}\r\n`;

  it("answers headers that trickle with 408 JSON by the header deadline", async () => {
    const parts = [
      "GET /v1/kv/baseline HTTP/1.1\r\n",
      host(),
      ...Array.from({ length: 40 }, (_, i) => `X-Slow-${i}: x\r\n`),
    ];
    const r = await converse(url, parts, 100);
    assert.deepEqual(answers(r.text), [{ status: 408, code: "request_timeout" }], r.text);
    assert.ok(r.ms < HEADERS_MS + 1_000, `took ${r.ms.toFixed(0)} ms`);
  });

  it("answers a body that trickles with 408 JSON by the request deadline, and applies nothing", async () => {
    const rev = await revision();
    const body = '{"value":"slow"}';
    const head = `PUT /v1/kv/slow HTTP/1.1\r\n${host()}Content-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n`;
    const r = await converse(url, [head, ...body.split("")], 150);
    assert.deepEqual(answers(r.text), [{ status: 408, code: "request_timeout" }], r.text);
    assert.ok(r.ms < REQUEST_MS + 1_000, `took ${r.ms.toFixed(0)} ms`);
    assert.equal(await revision(), rev);
    assert.equal((await call(`${url}/v1/kv/slow`)).status, 404);
  });

  it("answers oversized headers 431, and malformed framing or garbage 400, all in JSON", async () => {
    const cases: [string, number, string][] = [
      [`GET /health HTTP/1.1\r\n${host()}X-Big: ${"a".repeat(20_000)}\r\n\r\n`, 431, "headers_too_large"],
      ["HELLO\r\n\r\n", 400, "invalid_framing"],
      [`GET /health HTTP/1.1\r\n${host()}Bad Header\r\n\r\n`, 400, "invalid_framing"],
      [
        `PUT /v1/kv/x HTTP/1.1\r\n${host()}Content-Length: 5\r\nContent-Length: 6\r\n\r\n{"a":`,
        400,
        "invalid_framing",
      ],
      [
        `PUT /v1/kv/x HTTP/1.1\r\n${host()}Content-Length: 11\r\nTransfer-Encoding: chunked\r\n\r\n{"value":1}`,
        400,
        "invalid_framing",
      ],
      [`PUT /v1/kv/x HTTP/1.1\r\n${host()}Content-Length: -1\r\n\r\n`, 400, "invalid_framing"],
    ];
    const rev = await revision();
    for (const [text, status, code] of cases) {
      const r = await converse(url, [text]);
      assert.deepEqual(answers(r.text), [{ status, code }], `${text.slice(0, 60)} → ${r.text.slice(0, 200)}`);
      assert.ok(r.ms < 1_000, `took ${r.ms.toFixed(0)} ms`);
    }
    assert.equal(await revision(), rev);
  });

  it("refuses a chunked body at once with 411, whatever its declared sizes", async () => {
    const rev = await revision();
    for (const size of ["ffffffffffffffff", "1ffffffffffffffff", "-1", "zz", "b"]) {
      const text = `PUT /v1/kv/x HTTP/1.1\r\n${host()}Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n${size}\r\n{"value":1}\r\n`;
      const r = await converse(url, [text]);
      const a = answers(r.text);
      assert.ok(
        a.length === 1 && a[0]!.status >= 400 && a[0]!.status < 500 && a[0]!.code,
        `${size} → ${r.text.slice(0, 200)}`,
      );
      assert.ok(r.ms < 1_000, `took ${r.ms.toFixed(0)} ms`);
    }
    assert.equal(await revision(), rev);
  });

  it("answers pipelined good requests before a bad one, and runs nothing after it", async () => {
    const rev = await revision();
    const good = `GET /v1/kv/baseline HTTP/1.1\r\n${host()}\r\n`;
    const put = (k: string) =>
      `PUT /v1/kv/${k} HTTP/1.1\r\n${host()}Content-Type: application/json\r\nContent-Length: 11\r\n\r\n{"value":1}`;
    const r = await converse(url, [`${good}${put("piped")}GARBAGE\r\n\r\n${put("after")}`]);
    const a = answers(r.text);
    assert.deepEqual(
      a.map((x) => x.status),
      [200, 200, 400],
      r.text.slice(0, 500),
    );
    assert.equal(a[2]!.code, "invalid_framing");
    assert.equal((await call(`${url}/v1/kv/piped`)).status, 200, "the good write before the garbage ran");
    assert.equal((await call(`${url}/v1/kv/after`)).status, 404, "nothing after the garbage ran");
    assert.equal(await revision(), rev + 1);
    // and the node serves normally afterwards
    assert.equal((await call(`${url}/v1/kv/baseline`)).body.value, "kept");
  });
});
