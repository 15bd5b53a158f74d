/**
 * The client commands: get, put, del, list, status against any of --endpoints, following the
 * leader (307), moving on to the next endpoint when one is unreachable and retrying, for a while,
 * answers that promise nothing was applied (503, 429). Owns requests and
 * output; must never retry a write whose outcome is unknown (a 504) — it reports it instead.
 */
import { httpsFetch } from "../client/https-fetch.js";
import { loadCa } from "../transport/tls.js";
import { type Parsed, UsageError } from "./flags.js";

export interface ClientResult {
  readonly status: number;
  readonly body: unknown;
}

export function endpointsOf(p: Parsed): string[] {
  return endpointList(p.flags.get("endpoints") ?? "http://127.0.0.1:2379", "--endpoints");
}

/** A comma-separated list of http(s) URLs given to `flag`. */
export function endpointList(text: string, flag: string): string[] {
  const list = text
    .split(",")
    .map((s) => s.trim())
    .filter(Boolean);
  for (const e of list) {
    try {
      const u = new URL(e);
      if (u.protocol !== "http:" && u.protocol !== "https:") throw new Error();
    } catch {
      throw new UsageError(`${flag}: '${e}' is not an http(s) URL`);
    }
  }
  if (list.length === 0) throw new UsageError(`${flag} is empty`);
  return list;
}

/** The fetch for https:// endpoints: one that trusts `--ca` (BALLOT_CA) when given, else the global one. */
export function fetchFor(p: Parsed): typeof fetch {
  const caFile = p.flags.get("ca");
  if (caFile === undefined) return (input, init) => fetch(input, init);
  try {
    return httpsFetch({ ca: loadCa(caFile) });
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
}

/** A failed request in one line: fetch's own message hides the reason in its cause. */
export function failure(e: unknown): string {
  const err = e as Error & { cause?: Error & { code?: string } };
  const cause = err.cause instanceof Error ? err.cause : undefined;
  const text = cause ? `${err.message}: ${cause.message}` : err.message;
  const tls = /certificate|CERT|SSL|TLS/.test(`${cause?.code ?? ""} ${cause?.message ?? ""}`);
  return tls ? `${text} (does --ca, or BALLOT_CA, name the cluster's CA?)` : text;
}

/** The fetch of the client commands; runClient sets it from --ca (one command per process). */
let clientFetch: typeof fetch = (input, init) => fetch(input, init);

/** How long a command keeps retrying answers that promise nothing was applied (503, 429). */
const RETRY_FOR_MS = 10_000;

/** Retry-After in ms (delta-seconds only, as Ballot sends it), or undefined. */
function retryAfterMs(res: Response): number | undefined {
  const v = res.headers.get("retry-after");
  return v !== null && /^\d{1,6}$/.test(v) ? Number(v) * 1000 : undefined;
}

/**
 * Sends a request to the first endpoint that answers; follows redirects to the leader. A 503 or
 * 429 promises nothing was applied, so the next endpoint is tried and, when every one answered so,
 * the whole round is retried after a backoff (at least the Retry-After asked for) for up to
 * `retryForMs` — a leader that has just been elected, or is shedding load, answers a moment later.
 * The last such answer is what the command reports if the time runs out.
 */
export async function request(
  endpoints: string[],
  method: string,
  path: string,
  body?: unknown,
  token?: string,
  fetchImpl: typeof fetch = clientFetch,
  retryForMs: number = RETRY_FOR_MS,
): Promise<ClientResult> {
  let lastError = "";
  const headers: Record<string, string> = body === undefined ? {} : { "Content-Type": "application/json" };
  if (token !== undefined) headers.Authorization = `Bearer ${token}`;
  const deadline = Date.now() + retryForMs;
  let backoff = 100;
  for (;;) {
    let refused: ClientResult | undefined;
    let wait = 0;
    for (const ep of endpoints) {
      try {
        // Redirects are followed by hand: fetch drops Authorization when one crosses origins.
        let url = new URL(path, ep);
        let res: Response;
        for (let hop = 0; ; hop++) {
          res = await fetchImpl(url, {
            method,
            headers,
            body: body === undefined ? undefined : JSON.stringify(body),
            redirect: "manual",
            signal: AbortSignal.timeout(15_000),
          });
          const location = res.headers.get("location");
          if (res.status !== 307 || !location || hop >= 3) break;
          await res.body?.cancel();
          url = new URL(location, url);
        }
        const text = await res.text();
        let parsed: unknown = text;
        try {
          parsed = JSON.parse(text);
        } catch {
          // not JSON: show as text
        }
        // No leader, a leader not ready, or a node shedding load: nothing was applied, so another
        // endpoint (or the same one a moment later) may serve it.
        if (res.status === 503 || res.status === 429) {
          refused = { status: res.status, body: parsed };
          wait = Math.max(wait, retryAfterMs(res) ?? 0);
          lastError = `${ep}: ${res.status}`;
          continue;
        }
        return { status: res.status, body: parsed };
      } catch (e) {
        lastError = `${ep}: ${failure(e)}`;
      }
    }
    if (refused === undefined) throw new Error(`no endpoint answered (${lastError})`);
    const pause = Math.max(backoff, wait);
    if (Date.now() + pause >= deadline) return refused;
    await new Promise((r) => setTimeout(r, pause));
    backoff = Math.min(backoff * 2, 1000);
  }
}

export async function runClient(cmd: string, p: Parsed): Promise<number> {
  const eps = endpointsOf(p);
  clientFetch = fetchFor(p);
  const token = p.flags.get("token");
  const enc = (k: string) => encodeURIComponent(k).replace(/%2F/g, "/");
  let r: ClientResult;
  switch (cmd) {
    case "get": {
      const [key, ...extra] = p.positional;
      if (!key || extra.length > 0) throw new UsageError("usage: ballot get KEY");
      r = await request(eps, "GET", `/v1/kv/${enc(key)}`, undefined, token);
      break;
    }
    case "put": {
      const [key, value, ...extra] = p.positional;
      if (!key || value === undefined || extra.length > 0)
        throw new UsageError("usage: ballot put KEY VALUE");
      let v: unknown = value;
      try {
        v = JSON.parse(value);
      } catch {
        // a plain string
      }
      r = await request(eps, "PUT", `/v1/kv/${enc(key)}`, { value: v }, token);
      break;
    }
    case "del": {
      const [key, ...extra] = p.positional;
      if (!key || extra.length > 0) throw new UsageError("usage: ballot del KEY");
      r = await request(eps, "DELETE", `/v1/kv/${enc(key)}`, undefined, token);
      break;
    }
    case "list": {
      const [prefix = "", ...extra] = p.positional;
      if (extra.length > 0) throw new UsageError("usage: ballot list [PREFIX]");
      r = await request(eps, "GET", `/v1/kv?prefix=${encodeURIComponent(prefix)}`, undefined, token);
      break;
    }
    case "status": {
      if (p.positional.length > 0) throw new UsageError("usage: ballot status");
      r = await request(eps, "GET", "/v1/cluster", undefined, token);
      break;
    }
    case "members": {
      const [sub, ...args] = p.positional;
      const learner = p.flags.get("learner") === "true";
      if (learner && sub !== "add") throw new UsageError("--learner goes with 'ballot members add'");
      if (sub === undefined) {
        r = await request(eps, "GET", "/v1/cluster", undefined, token);
        if (r.status === 200) {
          console.log(membersTable(r.body as ClusterView));
          return 0;
        }
      } else if (sub === "add") {
        const [id, url, ...extra] = args;
        if (!id || !url || extra.length > 0)
          throw new UsageError("usage: ballot members add ID URL [--learner]");
        r = await request(eps, "POST", "/v1/cluster/members", { id, url, learner }, token);
      } else if (sub === "promote") {
        const [id, ...extra] = args;
        if (!id || extra.length > 0) throw new UsageError("usage: ballot members promote ID");
        r = await request(
          eps,
          "POST",
          `/v1/cluster/members/${encodeURIComponent(id)}/promote`,
          undefined,
          token,
        );
      } else if (sub === "remove") {
        const [id, ...extra] = args;
        if (!id || extra.length > 0) throw new UsageError("usage: ballot members remove ID");
        r = await request(eps, "DELETE", `/v1/cluster/members/${encodeURIComponent(id)}`, undefined, token);
      } else {
        throw new UsageError(`unknown 'members' command '${sub}': use add, promote or remove`);
      }
      break;
    }
    case "transfer-leader": {
      const [id, ...extra] = p.positional;
      if (!id || extra.length > 0) throw new UsageError("usage: ballot transfer-leader ID");
      r = await request(eps, "POST", "/v1/cluster/transfer-leader", { id }, token);
      break;
    }
    default:
      throw new UsageError(`unknown command '${cmd}'`);
  }
  const out = typeof r.body === "string" ? r.body : JSON.stringify(r.body, null, 2);
  if (r.status >= 200 && r.status < 300) {
    console.log(out);
    return 0;
  }
  console.error(out.trim());
  return 1;
}

interface ClusterView {
  leader: { id: string } | null;
  term: number;
  members: {
    id: string;
    url: string;
    voter: boolean;
    role: string;
    matchIndex: number | null;
    lagEntries: number | null;
  }[];
}

/** `ballot members`: one line per member, as the answering node sees them (lag is known on the leader). */
export function membersTable(c: ClusterView): string {
  const rows = [["ID", "ROLE", "URL", "MATCH", "LAG"]];
  for (const m of c.members)
    rows.push([
      m.id,
      m.role,
      m.url,
      m.matchIndex === null ? "-" : String(m.matchIndex),
      m.lagEntries === null ? "-" : String(m.lagEntries),
    ]);
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  return rows
    .map((r) =>
      r
        .map((x, i) => x.padEnd(widths[i]!))
        .join("  ")
        .trimEnd(),
    )
    .join("\n");
}
