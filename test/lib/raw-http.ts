/**
 * HTTP/1.1 over a raw TCP socket, for tests that must send what fetch and node:http would never
 * send or would "fix" on the way (dot segments, bad percent-encoding, broken framing). Owns only
 * the sending and a minimal reading of the answer; never normalizes anything.
 */
import * as net from "node:net";

export interface RawAnswer {
  readonly status: number;
  readonly headers: Readonly<Record<string, string>>;
  readonly body: string;
  /** The JSON body, when it parses. */
  readonly json: { error?: { code?: string; message?: string } } & Record<string, unknown>;
  readonly ms: number;
}

/** Sends `text` as it is and reads one answer (the server closes, or Content-Length is met). */
export function rawExchange(url: string, text: string | Buffer, timeoutMs = 5_000): Promise<RawAnswer> {
  const { hostname, port } = new URL(url);
  const started = performance.now();
  return new Promise((resolve, reject) => {
    const sock = net.connect(Number(port), hostname);
    let buf = Buffer.alloc(0);
    const timer = setTimeout(() => {
      sock.destroy();
      reject(new Error(`no answer within ${timeoutMs} ms to ${JSON.stringify(String(text).slice(0, 80))}`));
    }, timeoutMs);
    const done = (): boolean => {
      const head = buf.indexOf("\r\n\r\n");
      if (head === -1) return false;
      const lines = buf.subarray(0, head).toString("latin1").split("\r\n");
      const status = Number(lines[0]!.split(" ")[1]);
      const headers: Record<string, string> = {};
      for (const l of lines.slice(1)) {
        const i = l.indexOf(":");
        headers[l.slice(0, i).trim().toLowerCase()] = l.slice(i + 1).trim();
      }
      const len = headers["content-length"];
      const body = buf.subarray(head + 4);
      if (len !== undefined && body.length < Number(len)) return false;
      if (len === undefined && !sock.readableEnded) return false;
      clearTimeout(timer);
      sock.destroy();
      const textBody = body.subarray(0, len !== undefined ? Number(len) : body.length).toString("utf8");
      let json = {};
      try {
        json = JSON.parse(textBody) as object;
      } catch {
        // not JSON: the assertion on json will say so
      }
      resolve({ status, headers, body: textBody, json, ms: performance.now() - started });
      return true;
    };
    sock.on("data", (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      done();
    });
    sock.on("end", () => {
      if (!done()) {
        clearTimeout(timer);
        reject(
          new Error(
            `the server closed without a full answer: ${JSON.stringify(buf.toString().slice(0, 200))}`,
          ),
        );
      }
    });
    sock.on("error", (e) => {
      clearTimeout(timer);
      reject(e);
    });
    sock.write(text);
  });
}

/** A request with a JSON (or any) body, framed with Content-Length. */
export function rawRequest(
  url: string,
  method: string,
  target: string,
  body?: string,
  headers: Record<string, string> = {},
): Promise<RawAnswer> {
  const { host } = new URL(url);
  const h = { Host: host, Connection: "close", ...headers } as Record<string, string>;
  if (body !== undefined) {
    h["Content-Type"] ??= "application/json";
    h["Content-Length"] = String(Buffer.byteLength(body));
  }
  const head = `${method} ${target} HTTP/1.1\r\n${Object.entries(h)
    .map(([k, v]) => `${k}: ${v}`)
    .join("\r\n")}\r\n\r\n`;
  return rawExchange(url, head + (body ?? ""));
}
