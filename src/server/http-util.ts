/**
 * Small HTTP helpers shared by the API's route modules: the error type that maps to a status and
 * a JSON error body, bounded body reading, JSON body parsing, and server-sent-event framing.
 * Owns wire details only; must never know about Raft or the key-value store.
 */
import type * as http from "node:http";
import type { ServerResponse } from "node:http";
import { parseStrictJson } from "./json-body.js";

/** An error with the HTTP status and stable code the client sees. */
export class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly headers: Record<string, string> = {},
    readonly extra: Record<string, unknown> = {},
  ) {
    super(message);
  }
}

export const methodNotAllowed = (allowed: string): HttpError =>
  new HttpError(405, "method_not_allowed", `use ${allowed}`);

/**
 * A body that is too large is read to its end and thrown away (up to this many bytes) before the
 * 413 goes out, so the client has finished sending when the answer comes. Answering at once does
 * not work either way: with the connection closed after the 413, the client's unsent bytes meet a
 * closed socket and the kernel's reset can discard the 413 before the client reads it (it sees
 * EPIPE or ECONNRESET, as if the request were lost); kept open, Node stops reading the rest and the
 * client stalls. A client that sends more than this is cut off.
 */
const MAX_DISCARD_BYTES = 64 << 20;

/**
 * Reads a body that is refused whatever it holds and throws it away, so the refusal reaches a
 * client that is still sending (see MAX_DISCARD_BYTES). Settles when the body ends, when nothing
 * has arrived for `idleMs` (a client that declared a chunk it never sends is not waited for), or
 * past MAX_DISCARD_BYTES, when the connection is cut.
 */
export function discardBody(req: http.IncomingMessage, idleMs: number): Promise<void> {
  return new Promise((resolve) => {
    let size = 0;
    let timer: NodeJS.Timeout;
    const done = (): void => {
      clearTimeout(timer);
      req.removeListener("data", onData);
      resolve();
    };
    const arm = (): void => {
      clearTimeout(timer);
      timer = setTimeout(done, idleMs);
    };
    const onData = (c: Buffer): void => {
      size += c.length;
      if (size > MAX_DISCARD_BYTES) {
        req.socket.destroy();
        done();
      } else arm();
    };
    req.on("data", onData);
    req.once("end", done);
    req.once("error", done);
    req.once("close", done);
    arm();
  });
}

/** Reads a request body, refusing (413) anything larger than `maxBytes`. */
export function readBody(req: http.IncomingMessage, maxBytes: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const parts: Buffer[] = [];
    let size = 0;
    let refused = Number(req.headers["content-length"] ?? "0") > maxBytes;
    req.on("data", (c: Buffer) => {
      size += c.length;
      if (refused || size > maxBytes) {
        refused = true;
        parts.length = 0;
        if (size > MAX_DISCARD_BYTES) {
          req.socket.destroy();
          reject(new HttpError(413, "too_large", `the request body is larger than ${maxBytes} bytes`));
        }
        return;
      }
      parts.push(c);
    });
    req.on("end", () => {
      if (refused)
        reject(new HttpError(413, "too_large", `the request body is larger than ${maxBytes} bytes`));
      else resolve(Buffer.concat(parts));
    });
    req.on("error", reject);
  });
}

/** Parses a JSON object body strictly (see json-body.ts); 415 for another media type, 400 for anything but an object. */
export function parseJsonObject(req: http.IncomingMessage, body: Buffer): Record<string, unknown> {
  const ct = (req.headers["content-type"] ?? "application/json").split(";")[0]!.trim().toLowerCase();
  if (ct !== "application/json")
    throw new HttpError(415, "unsupported_media_type", "send the body as application/json");
  const parsed = parseStrictJson(body);
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) {
    throw new HttpError(400, "invalid_request", "the body must be a JSON object");
  }
  return parsed as Record<string, unknown>;
}

/** Refuses fields other than `allowed`. */
export function onlyFields(o: Record<string, unknown>, allowed: readonly string[]): void {
  for (const f of Object.keys(o))
    if (!allowed.includes(f)) throw new HttpError(400, "invalid_request", `unknown field '${f}'`);
}

/** Refuses query parameters other than `allowed`. */
export function onlyParams(url: URL, allowed: readonly string[]): void {
  for (const p of url.searchParams.keys())
    if (!allowed.includes(p)) throw new HttpError(400, "invalid_request", `unknown parameter '${p}'`);
}

/** A positive safe integer from a path segment or field, or a 400. */
export function positiveId(v: unknown, what: string): number {
  const n = typeof v === "string" && /^\d{1,15}$/.test(v) ? Number(v) : v;
  if (!Number.isSafeInteger(n) || (n as number) < 1)
    throw new HttpError(400, "invalid_request", `${what} must be a positive integer`);
  return n as number;
}

/** Starts a server-sent-event stream; returns a writer and a keepalive that ends with the response. */
export function startEventStream(
  res: http.ServerResponse,
  keepaliveMs = 15_000,
): { event(name: string, data: unknown, id?: number | string): boolean; comment(text: string): void } {
  res.writeHead(200, {
    "Content-Type": "text/event-stream; charset=utf-8",
    "Cache-Control": "no-cache",
    "X-Accel-Buffering": "no",
  });
  res.flushHeaders();
  const ping = setInterval(() => res.write(": keepalive\n\n"), keepaliveMs);
  ping.unref();
  res.on("close", () => clearInterval(ping));
  return {
    event(name, data, id) {
      return res.write(
        `${id !== undefined ? `id: ${id}\n` : ""}event: ${name}\ndata: ${JSON.stringify(data)}\n\n`,
      );
    },
    comment(text) {
      res.write(`: ${text.replace(/[\r\n]/g, " ")}\n\n`);
    },
  };
}

/**
 * Ends a stream served by a node that has known no leader for `graceMs` (a cut-off or leaderless
 * node stops learning of changes, and its keepalives would hide that from the client): the
 * client gets `event: error` `{"code":"no_leader"}` and reconnects elsewhere.
 */
export function endWhenLeaderless(
  res: ServerResponse,
  hasLeader: () => boolean,
  graceMs: number,
  send: (name: string, data: unknown) => void,
): void {
  let since: number | null = null;
  const timer = setInterval(
    () => {
      if (hasLeader()) {
        since = null;
        return;
      }
      since ??= performance.now();
      if (performance.now() - since < graceMs) return;
      clearInterval(timer);
      send("error", { code: "no_leader", message: "this node has had no leader for a while; try another" });
      res.end();
    },
    Math.max(100, Math.floor(graceMs / 4)),
  );
  timer.unref();
  res.on("close", () => clearInterval(timer));
}
