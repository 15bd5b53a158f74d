/**
 * The HTTP/JSON API of a Ballot server: /v1/kv, /v1/cluster, /health, /ready. Owns request
 * parsing and validation, status codes, leader routing (307 to the leader, or forwarding with
 * --forward-writes) and the X-Ballot-Node / X-Ballot-Leader headers. Must never change state
 * except through RaftNode.propose, and never let malformed or oversized input reach the log.
 *
 * Status codes: 200 done (a write is committed by a majority, durably); 307 ask the leader;
 * 400/404/405/411/412/413/415 the request is wrong; 503 + Retry-After nothing was applied, retry;
 * 504 outcome_unknown the write may or may not have been applied.
 */
import * as http from "node:http";
import {
  checkKey,
  encodeCommand,
  type KvCommand,
  type KvResult,
  LIMITS,
  utf8Length,
  validateCommand,
} from "../kv/commands.js";
import type { KvStore } from "../kv/store.js";
import {
  NotLeaderError,
  OutcomeUnknownError,
  ProposalDroppedError,
  StoppedError,
  UnavailableError,
} from "../node/errors.js";
import type { RaftNode } from "../node/raft-node.js";

export interface ApiOptions {
  readonly node: RaftNode<KvResult>;
  readonly kv: KvStore;
  /** Forward writes that reach a follower to the leader instead of redirecting. */
  readonly forwardWrites?: boolean;
  /** Largest request body accepted. Default: the value limit plus room for JSON framing. */
  readonly maxBodyBytes?: number;
}

class HttpError extends Error {
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

const KV_PREFIX = "/v1/kv/";
const FORWARDED = "x-ballot-forwarded";

/** Builds the request handler; mount it on a node:http server that also carries the peer protocol. */
export function createApi(opts: ApiOptions): http.RequestListener {
  const { node, kv } = opts;
  const maxBody = opts.maxBodyBytes ?? LIMITS.valueBytes + 64 * 1024;

  const headers = (res: http.ServerResponse): void => {
    res.setHeader("X-Ballot-Node", node.id);
    res.setHeader("X-Ballot-Leader", node.leaderInfo?.id ?? "");
  };

  const send = (
    res: http.ServerResponse,
    status: number,
    body: unknown,
    extra: Record<string, string> = {},
  ): void => {
    if (res.headersSent) return;
    headers(res);
    const text = `${JSON.stringify(body)}\n`;
    res.writeHead(status, {
      "Content-Type": "application/json",
      "Content-Length": Buffer.byteLength(text),
      ...extra,
    });
    res.end(text);
  };

  const fail = (res: http.ServerResponse, e: unknown): void => {
    if (e instanceof HttpError) {
      send(res, e.status, { error: { code: e.code, message: e.message, ...e.extra } }, e.headers);
      return;
    }
    if (e instanceof UnavailableError || e instanceof StoppedError) {
      send(res, 503, { error: { code: "unavailable", message: e.message } }, { "Retry-After": "1" });
      return;
    }
    if (e instanceof OutcomeUnknownError) {
      send(res, 504, { error: { code: "outcome_unknown", message: e.message } });
      return;
    }
    if (e instanceof ProposalDroppedError) {
      // Definitely not applied: safe to retry, like a 503.
      send(res, 503, { error: { code: "unavailable", message: e.message } }, { "Retry-After": "1" });
      return;
    }
    send(res, 500, { error: { code: "internal", message: e instanceof Error ? e.message : String(e) } });
  };

  /** A write reached a follower: redirect (or forward) to the leader, or 503 when there is none. */
  const routeToLeader = async (
    req: http.IncomingMessage,
    res: http.ServerResponse,
    body: Buffer,
    e: NotLeaderError,
  ): Promise<void> => {
    if (!e.leaderId || !e.leaderUrl) {
      throw new HttpError(503, "no_leader", "no leader is known right now; nothing was applied, retry", {
        "Retry-After": "1",
      });
    }
    const target = new URL(req.url ?? "/", e.leaderUrl);
    if (!opts.forwardWrites) {
      headers(res);
      res.writeHead(307, { Location: target.toString(), "Content-Type": "application/json" });
      res.end(
        `${JSON.stringify({ error: { code: "not_leader", message: `write to the leader ${e.leaderId}`, leader: e.leaderId } })}\n`,
      );
      return;
    }
    if (req.headers[FORWARDED]) {
      throw new HttpError(503, "no_leader", "leadership is moving; nothing was applied, retry", {
        "Retry-After": "1",
      });
    }
    await forward(req, res, target, body);
  };

  const forward = (
    req: http.IncomingMessage,
    res: http.ServerResponse,
    target: URL,
    body: Buffer,
  ): Promise<void> =>
    new Promise((resolve) => {
      const h: http.OutgoingHttpHeaders = { ...req.headers, host: target.host, [FORWARDED]: node.id };
      delete h.connection;
      const out = http.request(target, { method: req.method, headers: h, timeout: 30_000 }, (up) => {
        const copy: Record<string, string | string[]> = {};
        for (const [k, v] of Object.entries(up.headers))
          if (v !== undefined && k !== "connection") copy[k] = v;
        res.writeHead(up.statusCode ?? 502, copy);
        up.pipe(res);
        up.on("end", resolve);
        up.on("error", () => resolve());
      });
      out.on("timeout", () => out.destroy(new Error("timeout")));
      out.on("error", (err) => {
        // The leader may or may not have received it.
        send(res, 504, {
          error: { code: "outcome_unknown", message: `forwarding to the leader failed: ${err.message}` },
        });
        resolve();
      });
      out.end(body);
    });

  const readBody = (req: http.IncomingMessage): Promise<Buffer> =>
    new Promise((resolve, reject) => {
      const declared = Number(req.headers["content-length"] ?? "0");
      if (declared > maxBody) {
        reject(new HttpError(413, "too_large", `the request body is larger than ${maxBody} bytes`));
        req.resume();
        return;
      }
      const parts: Buffer[] = [];
      let size = 0;
      req.on("data", (c: Buffer) => {
        size += c.length;
        if (size > maxBody) {
          reject(new HttpError(413, "too_large", `the request body is larger than ${maxBody} bytes`));
          req.destroy();
          return;
        }
        parts.push(c);
      });
      req.on("end", () => resolve(Buffer.concat(parts)));
      req.on("error", reject);
    });

  const parseJsonBody = (req: http.IncomingMessage, body: Buffer): Record<string, unknown> => {
    const ct = (req.headers["content-type"] ?? "application/json").split(";")[0]!.trim().toLowerCase();
    if (ct !== "application/json")
      throw new HttpError(415, "unsupported_media_type", "send the body as application/json");
    let parsed: unknown;
    try {
      parsed = JSON.parse(body.toString("utf8"));
    } catch {
      throw new HttpError(400, "invalid_json", "the body is not valid JSON");
    }
    if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) {
      throw new HttpError(400, "invalid_request", "the body must be a JSON object");
    }
    return parsed as Record<string, unknown>;
  };

  const keyFrom = (path: string): string => {
    let key: string;
    try {
      key = decodeURIComponent(path.slice(KV_PREFIX.length));
    } catch {
      throw new HttpError(400, "invalid_key", "the key is not valid percent-encoding");
    }
    const problem = checkKey(key);
    if (problem) throw new HttpError(400, "invalid_key", problem);
    return key;
  };

  const revisionHeader = (v: string | undefined, name: string): number | undefined => {
    if (v === undefined) return undefined;
    const m = /^\s*(?:W\/)?"(\d{1,15})"\s*$/.exec(v);
    if (!m) throw new HttpError(400, "invalid_header", `${name} must be a quoted revision like "42"`);
    return Number(m[1]);
  };

  const kvJson = (k: {
    key: string;
    value: string;
    modRevision: number;
    createRevision: number;
    version: number;
  }) => ({
    key: k.key,
    value: JSON.parse(k.value) as unknown,
    revision: k.modRevision,
    createRevision: k.createRevision,
    version: k.version,
  });

  const read = async (url: URL): Promise<void> => {
    const c = url.searchParams.get("consistency") ?? "linearizable";
    if (c === "local") return;
    if (c !== "linearizable" && c !== "lease") {
      throw new HttpError(400, "invalid_request", "consistency must be linearizable, lease or local");
    }
    try {
      await node.readBarrier({ consistency: c });
    } catch (e) {
      if (e instanceof NotLeaderError || e instanceof UnavailableError) {
        throw new HttpError(503, "no_leader", `the read could not be confirmed: ${e.message}`, {
          "Retry-After": "1",
        });
      }
      throw e;
    }
  };

  const write = async (
    req: http.IncomingMessage,
    res: http.ServerResponse,
    body: Buffer,
    cmd: KvCommand,
  ): Promise<void> => {
    const problem = validateCommand(cmd);
    if (problem) throw new HttpError(400, "invalid_request", problem);
    let result: KvResult;
    try {
      result = await node.propose(encodeCommand(cmd));
    } catch (e) {
      if (e instanceof NotLeaderError) return routeToLeader(req, res, body, e);
      throw e;
    }
    if (!result.ok) {
      throw new HttpError(
        412,
        "precondition_failed",
        `the key's revision is ${result.current}`,
        {},
        { revision: result.current },
      );
    }
    if (cmd.op === "put") {
      send(res, 200, { ...kvJson(result.kv!), revision: result.revision }, { ETag: `"${result.revision}"` });
    } else {
      send(res, 200, { key: cmd.key, deleted: result.deleted === true, revision: result.revision });
    }
  };

  const handle = async (req: http.IncomingMessage, res: http.ServerResponse): Promise<void> => {
    const url = new URL(req.url ?? "/", "http://x");
    const path = url.pathname;
    const method = req.method ?? "GET";

    if (path === "/health") {
      if (method !== "GET") throw new HttpError(405, "method_not_allowed", "use GET");
      send(res, 200, { status: "ok", node: node.id });
      return;
    }
    if (path === "/ready") {
      if (method !== "GET") throw new HttpError(405, "method_not_allowed", "use GET");
      const st = node.status();
      const ready = st.leader !== null && st.appliedIndex >= st.commitIndex - 1000;
      send(
        res,
        ready ? 200 : 503,
        { ready, leader: st.leader?.id ?? null, appliedIndex: st.appliedIndex, commitIndex: st.commitIndex },
        ready ? {} : { "Retry-After": "1" },
      );
      return;
    }
    if (path === "/v1/cluster") {
      if (method !== "GET") throw new HttpError(405, "method_not_allowed", "use GET");
      const st = node.status();
      send(res, 200, {
        clusterId: st.clusterId,
        self: st.self,
        term: st.term,
        leader: st.leader,
        commitIndex: st.commitIndex,
        appliedIndex: st.appliedIndex,
        members: st.members.map((m) => ({
          id: m.id,
          url: m.url,
          voter: m.voter,
          role: m.id === st.leader?.id ? "leader" : m.voter ? "follower" : "learner",
          matchIndex: m.matchIndex,
          lagEntries: m.lagEntries,
        })),
      });
      return;
    }
    if (path === "/v1/kv") {
      if (method !== "GET") throw new HttpError(405, "method_not_allowed", "use GET to list keys");
      for (const p of url.searchParams.keys()) {
        if (!["prefix", "limit", "consistency"].includes(p))
          throw new HttpError(400, "invalid_request", `unknown parameter '${p}'`);
      }
      const prefix = url.searchParams.get("prefix") ?? "";
      if (utf8Length(prefix) > LIMITS.keyBytes)
        throw new HttpError(400, "invalid_request", "the prefix is too long");
      const limitText = url.searchParams.get("limit") ?? "1000";
      const limit = Number(limitText);
      if (!/^\d+$/.test(limitText) || limit < 1 || limit > 10_000) {
        throw new HttpError(400, "invalid_request", "limit must be an integer from 1 to 10000");
      }
      await read(url);
      const r = kv.range(prefix, limit);
      send(res, 200, { kvs: r.kvs.map(kvJson), more: r.more, revision: kv.revision });
      return;
    }
    if (path.startsWith(KV_PREFIX)) {
      const key = keyFrom(path);
      if (method === "GET") {
        for (const p of url.searchParams.keys()) {
          if (p !== "consistency") throw new HttpError(400, "invalid_request", `unknown parameter '${p}'`);
        }
        await read(url);
        const found = kv.get(key);
        if (!found) throw new HttpError(404, "not_found", `no key '${key}'`);
        send(res, 200, kvJson(found), { ETag: `"${found.modRevision}"` });
        return;
      }
      if (method === "PUT" || method === "DELETE") {
        if ([...url.searchParams.keys()].length > 0)
          throw new HttpError(400, "invalid_request", "writes take no query parameters");
        const body = await readBody(req);
        const ifMatch = revisionHeader(req.headers["if-match"], "If-Match");
        const ifNoneMatch = req.headers["if-none-match"];
        if (ifNoneMatch !== undefined && ifNoneMatch.trim() !== "*") {
          throw new HttpError(400, "invalid_header", "If-None-Match only takes *");
        }
        if (ifMatch !== undefined && ifNoneMatch !== undefined) {
          throw new HttpError(400, "invalid_header", "use If-Match or If-None-Match, not both");
        }
        const idemHeader = req.headers["idempotency-key"];
        const idem = Array.isArray(idemHeader) ? idemHeader[0] : idemHeader;
        if (idem !== undefined && (idem.length === 0 || utf8Length(idem) > LIMITS.idempotencyKeyBytes)) {
          throw new HttpError(
            400,
            "invalid_header",
            `Idempotency-Key must be 1-${LIMITS.idempotencyKeyBytes} bytes`,
          );
        }
        const ifRevision = ifNoneMatch !== undefined ? 0 : ifMatch;
        if (method === "PUT") {
          const o = parseJsonBody(req, body);
          for (const f of Object.keys(o))
            if (f !== "value") throw new HttpError(400, "invalid_request", `unknown field '${f}'`);
          if (!("value" in o)) throw new HttpError(400, "invalid_request", 'the body needs a "value"');
          const value = JSON.stringify(o.value);
          if (utf8Length(value) > LIMITS.valueBytes)
            throw new HttpError(413, "too_large", `the value is larger than ${LIMITS.valueBytes} bytes`);
          await write(req, res, body, { op: "put", key, value, ifRevision, idem });
        } else {
          if (body.length > 0) throw new HttpError(400, "invalid_request", "DELETE takes no body");
          await write(req, res, body, { op: "del", key, ifRevision, idem });
        }
        return;
      }
      throw new HttpError(405, "method_not_allowed", "use GET, PUT or DELETE");
    }
    throw new HttpError(404, "not_found", `no route ${method} ${path}`);
  };

  return (req, res) => {
    handle(req, res).catch((e: unknown) => fail(res, e));
  };
}
