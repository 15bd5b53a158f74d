/**
 * A `fetch` for https:// URLs that trusts a given CA (and can present a client certificate), for
 * clusters whose certificates come from a private CA. Node's global fetch cannot be given a CA
 * without an extra package, so this one speaks through node:https with its own keep-alive agent and
 * answers a standard Response (bodies stream, aborts work). http:// URLs go to the global fetch.
 * Owns only that; must never follow redirects (the caller does, like `redirect: "manual"`).
 */
import * as https from "node:https";
import { Readable } from "node:stream";

export interface HttpsFetchOptions {
  /** PEM CA certificate(s) to trust instead of the system's. */
  readonly ca?: string | Buffer;
  /** PEM client certificate and key, for servers that ask for one. */
  readonly cert?: string | Buffer;
  readonly key?: string | Buffer;
}

type FetchFn = typeof fetch;

const NULL_BODY = new Set([204, 205, 304]);

function bodyOf(body: unknown): string | Uint8Array | undefined {
  if (body === undefined || body === null) return undefined;
  if (typeof body === "string" || body instanceof Uint8Array) return body;
  if (body instanceof ArrayBuffer) return new Uint8Array(body);
  throw new TypeError("this fetch sends only string or byte bodies");
}

/** A fetch that uses `opts` for https:// URLs. Errors look like fetch's: a TypeError("fetch failed") with the cause. */
export function httpsFetch(opts: HttpsFetchOptions): FetchFn {
  const agent = new https.Agent({ ca: opts.ca, cert: opts.cert, key: opts.key, keepAlive: true });
  const f = (input: Parameters<FetchFn>[0], init?: RequestInit): Promise<Response> => {
    if (input instanceof Request) throw new TypeError("this fetch takes a URL, not a Request");
    const url = new URL(String(input));
    if (url.protocol !== "https:") return fetch(input, init);
    const signal = init?.signal ?? undefined;
    const method = (init?.method ?? "GET").toUpperCase();
    const headers: Record<string, string> = {};
    new Headers(init?.headers).forEach((v, k) => {
      headers[k] = v;
    });
    const body = bodyOf(init?.body);
    return new Promise<Response>((resolve, reject) => {
      if (signal?.aborted) {
        reject(signal.reason);
        return;
      }
      const req = https.request(url, { method, headers, agent, signal });
      req.on("response", (res) => {
        const status = res.statusCode ?? 0;
        if (status < 200 || status > 599) {
          res.destroy();
          reject(new TypeError("fetch failed", { cause: new Error(`unexpected HTTP status ${status}`) }));
          return;
        }
        const h = new Headers();
        for (let i = 0; i + 1 < res.rawHeaders.length; i += 2)
          h.append(res.rawHeaders[i]!, res.rawHeaders[i + 1]!);
        const empty = NULL_BODY.has(status) || method === "HEAD";
        if (empty) res.resume();
        const stream = empty ? null : (Readable.toWeb(res) as unknown as ReadableStream<Uint8Array>);
        resolve(new Response(stream, { status, statusText: res.statusMessage ?? "", headers: h }));
      });
      req.on("error", (err) => {
        if (signal?.aborted) reject(signal.reason);
        else reject(new TypeError("fetch failed", { cause: err }));
      });
      req.end(body);
    });
  };
  return f as FetchFn;
}
