/**
 * The HTTP framing rules of a Ballot port, below routing: deadlines for a request's headers and
 * for its whole body (a client that trickles bytes holds a socket and memory), and a JSON 4xx
 * for whatever Node's parser refuses (bad framing, oversized headers, a timeout) instead of
 * Node's bare text answer or a silent close. Owns only the server's socket-level settings; must
 * never read a body or know a route.
 */
import type * as http from "node:http";
import type { Duplex } from "node:stream";

/** Deadlines of a port (ms). */
export interface WireDeadlines {
  /** From the first byte of a request to the end of its headers. */
  readonly headersMs: number;
  /** From the first byte of a request to the end of its body. */
  readonly requestMs: number;
}

/**
 * Generous for any honest client (the largest body is about 1 MiB), short enough that a
 * trickling one gives its socket back within seconds. Node's own defaults are 60 s and 300 s,
 * checked every 30 s.
 */
export const DEFAULT_DEADLINES: WireDeadlines = { headersMs: 10_000, requestMs: 30_000 };

const ANSWERS: Record<string, readonly [number, string, string]> = {
  HPE_HEADER_OVERFLOW: [431, "headers_too_large", "the request headers are too large"],
  ERR_HTTP_REQUEST_TIMEOUT: [408, "request_timeout", "the request did not arrive in time"],
  ERR_HTTP_HEADERS_TIMEOUT: [408, "request_timeout", "the request headers did not arrive in time"],
  HPE_CHUNK_EXTENSIONS_OVERFLOW: [400, "invalid_framing", "the chunk extensions are too large"],
};

/**
 * Sets the deadlines on `server` and answers its parse errors and timeouts with JSON. Requests
 * pipelined before the bad bytes are still answered, in order, before the error and the close:
 * the parser reads a whole packet at once, so the error can come while they are being handled, and
 * a write among them may already be committed — its client must hear so.
 */
export function hardenWire(server: http.Server, deadlines: WireDeadlines = DEFAULT_DEADLINES): void {
  server.headersTimeout = deadlines.headersMs;
  server.requestTimeout = deadlines.requestMs;
  const open = new WeakMap<object, { inFlight: number; pending?: string }>();
  server.prependListener("request", (req: http.IncomingMessage, res: http.ServerResponse) => {
    const sock = req.socket;
    const st = open.get(sock) ?? { inFlight: 0 };
    open.set(sock, st);
    st.inFlight++;
    res.once("close", () => {
      st.inFlight--;
      if (st.inFlight === 0 && st.pending !== undefined) sock.end(st.pending);
    });
  });
  server.on("clientError", (err: NodeJS.ErrnoException, socket: Duplex) => {
    // Nothing can be written on a socket that is gone.
    if (!socket.writable) {
      socket.destroy();
      return;
    }
    const [status, code, message] = ANSWERS[err.code ?? ""] ?? [
      400,
      "invalid_framing",
      `the request is not valid HTTP/1.1 (${err.code ?? "parse error"})`,
    ];
    const body = `${JSON.stringify({ error: { code, message } })}\n`;
    const text = `HTTP/1.1 ${status} ${code}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`;
    const st = open.get(socket);
    // A timeout hits the request being read: its response never comes, so answer now.
    if (st && st.inFlight > 0 && err.code !== "ERR_HTTP_REQUEST_TIMEOUT") st.pending = text;
    else socket.end(text);
  });
}

/**
 * How often Node checks the deadlines: its default (30 s) would let a trickler run far past them.
 * Passed to http.createServer.
 */
export const CONNECTIONS_CHECKING_INTERVAL_MS = 500;
