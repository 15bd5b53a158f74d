/**
 * The client's HTTP engine: undici's Agent (the library Node's own fetch is built on) called
 * directly, with keep-alive connections per endpoint that grow with the load. Owns connection
 * reuse and the mapping of undici's answer to the transport's; must never follow redirects or
 * retry (the transport does both, by its rules).
 *
 * Why not the global fetch: each fetch call builds a Request, a Headers, a Response and a web
 * stream for the body, which halved the throughput of a Node service writing through the client
 * (bench/results/client.json has the before and after).
 */
import { Agent, request } from "undici";
import type { HeaderLookup, RequestFn } from "./transport.js";

export interface UndiciRequestOptions {
  /** PEM CA certificate(s) to trust instead of the system's (https endpoints). */
  readonly ca?: string | Buffer;
  /** PEM client certificate and key, for servers that ask for one. */
  readonly cert?: string | Buffer;
  readonly key?: string | Buffer;
  /** Added to every request (`Bearer …`). */
  readonly authorization?: string;
  /** Connections kept per endpoint at most (default: as many as requests in flight). */
  readonly connections?: number;
}

/** undici's headers (lower-case names; a repeated header is an array) behind `get`. */
class PlainHeaders implements HeaderLookup {
  constructor(private readonly h: Record<string, string | string[] | undefined>) {}
  get(name: string): string | null {
    const v = this.h[name.toLowerCase()];
    if (v === undefined) return null;
    return Array.isArray(v) ? v.join(", ") : v;
  }
}

/** A RequestFn over one undici Agent, and the way to close its connections. */
export function undiciRequest(opts: UndiciRequestOptions = {}): {
  request: RequestFn;
  close(): Promise<void>;
} {
  const tls = opts.ca !== undefined || opts.cert !== undefined || opts.key !== undefined;
  const agent = new Agent({
    keepAliveTimeout: 30_000,
    ...(opts.connections !== undefined ? { connections: opts.connections } : {}),
    ...(tls ? { connect: { ca: opts.ca, cert: opts.cert, key: opts.key } } : {}),
  });
  const auth = opts.authorization;
  const fn: RequestFn = async (url, init) => {
    const headers = auth === undefined ? init.headers : { ...init.headers, authorization: auth };
    const res = await request(url, {
      method: init.method as "GET",
      headers,
      body: init.body,
      signal: init.signal,
      dispatcher: agent,
    });
    const text = await res.body.text();
    return { status: res.statusCode, headers: new PlainHeaders(res.headers), text };
  };
  return { request: fn, close: () => agent.close() };
}
