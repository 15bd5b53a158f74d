/**
 * The HTTP/JSON API of a Ballot server: /v1/kv, /v1/cluster, /health, /ready, and the routing to
 * /v1/leases, /v1/watch and /v1/elections (their own modules). Owns request
 * parsing and validation, status codes, leader routing (307 to the leader, or forwarding with
 * --forward-writes) and the X-Ballot-Node / X-Ballot-Leader headers. Must never change state
 * except through RaftNode.propose, and never let malformed or oversized input reach the log.
 *
 * Status codes: 200 done (a write is committed by a majority, durably); 307 ask the leader;
 * 400/404/405/409/410/411/412/413/415 the request is wrong; 429 + Retry-After overloaded, nothing was
 * applied, retry later; 503 + Retry-After nothing was applied, retry;
 * 504 outcome_unknown the write may or may not have been applied.
 */
import * as http from "node:http";
import * as https from "node:https";
import { buildOpenApi } from "../api/openapi.js";
import { httpsFetch } from "../client/https-fetch.js";
import {
  checkKey,
  encodeCommand,
  type KvCommand,
  type KvResult,
  LIMITS,
  utf8Length,
  validateCommand,
} from "../kv/commands.js";
import type { LeaseExpiry } from "../kv/lease-expiry.js";
import type { KvStore } from "../kv/store.js";
import type { WatchHub } from "../kv/watch-hub.js";
import {
  NotLeaderError,
  OutcomeUnknownError,
  OverloadedError,
  ProposalDroppedError,
  StoppedError,
  UnavailableError,
} from "../node/errors.js";
import type { RaftNode } from "../node/raft-node.js";
import type { TlsMaterial } from "../transport/tls.js";
import type { Authenticator } from "./auth.js";
import { clusterJson, handleCluster } from "./cluster-api.js";
import { createDashboard, type PartitionSource } from "./dashboard.js";
import { handleElections } from "./elections-api.js";
import { discardBody, HttpError, parseJsonObject, readBody } from "./http-util.js";
import { handleLeases } from "./leases-api.js";
import type { ServerMetrics } from "./metrics.js";
import { parseRequestTarget } from "./request-target.js";
import { handleSnapshot } from "./snapshot-api.js";
import { handleTxn } from "./txn-api.js";
import { ApiValidator, type Match } from "./validate.js";
import { handleWatch } from "./watch-api.js";

export interface ApiOptions {
  readonly node: RaftNode<KvResult>;
  readonly kv: KvStore;
  readonly hub: WatchHub;
  readonly expiry: LeaseExpiry;
  /** Forward writes that reach a follower to the leader instead of redirecting. */
  readonly forwardWrites?: boolean;
  /** Largest request body accepted. Default: the value limit plus room for JSON framing. */
  readonly maxBodyBytes?: number;
  /** Serves GET /metrics (Prometheus). */
  readonly metrics?: ServerMetrics;
  /** Bearer-token authentication; absent = open (loopback development). */
  readonly auth?: Authenticator;
  /** The node's TLS material: requests it sends to other nodes (forwarded writes) present its certificate and trust its CA. */
  readonly tls?: TlsMaterial;
  /** A partitioned member: who leads each partition, for the dashboard's partition grid. */
  readonly dashboardPartitions?: PartitionSource;
  /**
   * Whether this API serves the dashboard (default true). A partitioned member serves one, the
   * member's (partition 0's, with the partition grid): a sampler per partition would wake the
   * event loop twice a second per partition for pages nobody asks for.
   */
  readonly dashboard?: boolean;
}

/** What route modules get from the API: the node, the store and the shared request machinery. */
export interface ApiContext {
  readonly node: RaftNode<KvResult>;
  readonly kv: KvStore;
  readonly hub: WatchHub;
  readonly expiry: LeaseExpiry;
  /** Sets X-Ballot-Node and X-Ballot-Leader. */
  headers(res: http.ServerResponse): void;
  send(res: http.ServerResponse, status: number, body: unknown, extra?: Record<string, string>): void;
  /** The request body as received (read once, before the handler ran). */
  body(req: http.IncomingMessage): Promise<Buffer>;
  /** The JSON body, already checked against the route's schema (`{}` for an optional body left out). */
  json(req: http.IncomingMessage): Record<string, unknown>;
  /** The path parameters of the matched route, decoded and checked. */
  params(req: http.IncomingMessage): Readonly<Record<string, string | number>>;
  /** Waits for the read consistency asked for in `?consistency=` (default linearizable). */
  read(url: URL): Promise<void>;
  /**
   * Validates and proposes a write. Resolves with its successful result, or null when the request
   * was answered by routing it to the leader; failed results become HttpErrors.
   */
  write(
    req: http.IncomingMessage,
    res: http.ServerResponse,
    body: Buffer,
    cmd: KvCommand,
  ): Promise<Extract<KvResult, { ok: true }> | null>;
  /** The Idempotency-Key header, checked. */
  idempotencyKey(req: http.IncomingMessage): string | undefined;
  /** For requests this node sends to another node (over TLS with the node's certificate and CA when it has them). */
  readonly fetch: typeof fetch;
  /** When this node is not the leader, answers by redirecting (or forwarding) to it and returns true. */
  routeIfFollower(req: http.IncomingMessage, res: http.ServerResponse, body: Buffer): Promise<boolean>;
  /** This node's TLS material, for requests it makes to other nodes over https. */
  readonly peerTls?: TlsMaterial;
}

const FORWARDED = "x-ballot-forwarded";

/** What the gate in front of the handlers learnt of a request. */
export interface Checked {
  readonly match: Match;
  readonly raw: Buffer;
  readonly json: Record<string, unknown> | undefined;
}

const EMPTY: Buffer = Buffer.alloc(0);
/** A refused chunked body is read to its end, but not waited for once it stops arriving this long. */
const CHUNKED_IDLE_MS = 300;
/** One validator (compiled schemas) per process: compiling is the expensive part. */
let sharedValidator: ApiValidator | null = null;

/** Builds the request handler; mount it on a node:http server that also carries the peer protocol. */
export function createApi(opts: ApiOptions): http.RequestListener {
  const gate = createGate(opts);
  const api = createRoutes(opts, gate);
  const { node } = opts;
  // Admission, in one place: past the node's bounds a request is answered 429 before its body is
  // read, so nothing of it reaches the log. Probes, metrics and streams are never refused (an
  // operator must see an overloaded node; a stream would hold its slot for its whole life).
  let queued = 0;
  const handler: http.RequestListener = (req, res) => {
    api.headers(res);
    if (!exemptFromAdmission(req.url ?? "/", req.method ?? "GET")) {
      const refused = node.admission("request", queued);
      if (refused) {
        api.fail(res, refused);
        return;
      }
      queued++;
      res.once("close", () => queued--);
    }
    gate
      .check(req)
      .then(({ url, match }) => api.handle(req, res, url, match))
      .catch((e: unknown) => api.fail(res, e));
  };
  return opts.metrics ? opts.metrics.instrument(handler) : handler;
}

/**
 * The gate every request passes before a handler runs: the target taken literally, the route
 * found, the caller's role checked, then the query, the headers and the body checked against the
 * route's schema. A request that fails any of it is answered 4xx and reaches nothing.
 */
export interface Gate {
  check(req: http.IncomingMessage): Promise<{ url: URL; match: Match }>;
  /** What check() learnt of a request that passed it. */
  checked(req: http.IncomingMessage): Checked;
}

export function createGate(opts: { readonly maxBodyBytes?: number; readonly auth?: Authenticator }): Gate {
  const maxBody = opts.maxBodyBytes ?? LIMITS.valueBytes + 64 * 1024;
  sharedValidator ??= new ApiValidator();
  const validator = sharedValidator;
  const checked = new WeakMap<http.IncomingMessage, Checked>();
  const checkedOf = (req: http.IncomingMessage): Checked => {
    const c = checked.get(req);
    if (!c) throw new Error("the request did not pass the API gate");
    return c;
  };
  const check = async (req: http.IncomingMessage): Promise<{ url: URL; match: Match }> => {
    const method = req.method ?? "GET";
    const target = parseRequestTarget(req.url ?? "/");
    const match = validator.match(method, target);
    // Built only now: the target has no dot segment, so URL's resolution cannot change it.
    const url = new URL(req.url ?? "/", "http://x");
    if (opts.auth && match.route.role) opts.auth.check(req, url, match.route.role);
    validator.checkQueryAndHeaders(match, target, req.headers);
    const route = match.route;
    let raw: Buffer = EMPTY;
    let json: Record<string, unknown> | undefined;
    // A chunked body's size is known only as it arrives, and Node exposes no chunk size: a
    // declared ffffffffffffffff would hold the socket until the deadline. Every client we know
    // (fetch, undici, curl -d, ballot/client) sends Content-Length for a JSON body.
    if (method !== "GET" && method !== "HEAD" && req.headers["transfer-encoding"] !== undefined) {
      await discardBody(req, CHUNKED_IDLE_MS);
      throw new HttpError(411, "length_required", "send the body with a Content-Length, not chunked", {
        Connection: "close",
      });
    }
    if (route.body) {
      raw = await readBody(req, maxBody);
      if (raw.length === 0 && route.bodyOptional) json = {};
      else {
        json = parseJsonObject(req, raw);
        validator.checkBody(route, json);
      }
    } else if (method === "GET" || method === "HEAD") {
      // A GET must not wait for a body; one that announces a body is refused outright.
      const len = req.headers["content-length"];
      if ((len !== undefined && len !== "0") || req.headers["transfer-encoding"] !== undefined)
        throw new HttpError(400, "invalid_request", `${method} takes no body`);
    } else {
      raw = await readBody(req, maxBody);
      if (raw.length > 0)
        throw new HttpError(400, "invalid_request", `${method} ${route.path} takes no body`);
    }
    checked.set(req, { match, raw, json });
    return { url, match };
  };
  return { check, checked: checkedOf };
}

/** One node's (or one partition's) route handlers, behind a gate the caller runs first. */
export interface Routes {
  handle(req: http.IncomingMessage, res: http.ServerResponse, url: URL, match: Match): Promise<void>;
  /** Answers an error thrown anywhere in a request's life. */
  fail(res: http.ServerResponse, e: unknown): void;
  /** Sets X-Ballot-Node and X-Ballot-Leader. */
  headers(res: http.ServerResponse): void;
  send(res: http.ServerResponse, status: number, body: unknown, extra?: Record<string, string>): void;
  /** Waits for the read consistency `url` asks for (see ApiContext.read). */
  read(url: URL): Promise<void>;
}

export function createRoutes(opts: ApiOptions, gate: Gate): Routes {
  const { node, kv } = opts;
  const checkedOf = gate.checked;
  let openapiText: string | null = null;
  const dashboard = opts.dashboard === false ? null : createDashboard(node, opts.dashboardPartitions);
  const noDashboard = () => new HttpError(404, "not_found", "this member's dashboard is partition 0's");
  // Node-to-node requests present this node's certificate and trust the cluster's CA.
  const tls = opts.tls;
  const peerAgent = tls
    ? new https.Agent({ cert: tls.cert, key: tls.key, ca: tls.ca, keepAlive: true })
    : undefined;
  const peerFetch: typeof fetch = tls ? httpsFetch(tls) : (input, init) => fetch(input, init);

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
    if (res.headersSent) {
      // A stream already started: all we can do is end it.
      res.end();
      return;
    }
    if (e instanceof HttpError) {
      send(res, e.status, { error: { code: e.code, message: e.message, ...e.extra } }, e.headers);
      return;
    }
    if (e instanceof OverloadedError) {
      send(
        res,
        429,
        { error: { code: "overloaded", message: e.message, reason: e.reason, retryAfterMs: e.retryAfterMs } },
        { "Retry-After": String(Math.ceil(e.retryAfterMs / 1000)) },
      );
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
      // A campaign may wait a long time for its turn: no timeout while the client is still there.
      const long = /\/campaign$/.test(target.pathname);
      const out = (target.protocol === "https:" ? https : http).request(
        target,
        {
          method: req.method,
          headers: h,
          timeout: long ? 0 : 30_000,
          ...(peerAgent ? { agent: peerAgent } : {}),
        },
        (up) => {
          const copy: Record<string, string | string[]> = {};
          for (const [k, v] of Object.entries(up.headers))
            if (v !== undefined && k !== "connection") copy[k] = v;
          res.writeHead(up.statusCode ?? 502, copy);
          up.pipe(res);
          up.on("end", resolve);
          up.on("error", () => {
            // Headers are out: the only honest signal left is to break the response.
            res.destroy();
            resolve();
          });
        },
      );
      res.on("close", () => {
        if (!res.writableFinished) out.destroy();
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

  const revisionHeader = (v: string | undefined, name: string): number | undefined => {
    if (v === undefined) return undefined;
    const m = /^\s*(?:W\/)?"(\d{1,15})"\s*$/.exec(v);
    if (!m) throw new HttpError(400, "invalid_header", `${name} must be a quoted revision like "42"`);
    return Number(m[1]);
  };

  const fencingHeader = (req: http.IncomingMessage): number | undefined => {
    const v = req.headers["x-ballot-fencing-token"];
    if (v === undefined) return undefined;
    const text = Array.isArray(v) ? v[0]! : v;
    if (!/^\s*\d{1,15}\s*$/.test(text))
      throw new HttpError(400, "invalid_header", "X-Ballot-Fencing-Token must be a non-negative integer");
    return Number(text);
  };

  const idempotencyKey = (req: http.IncomingMessage): string | undefined => {
    const h = req.headers["idempotency-key"];
    const idem = Array.isArray(h) ? h[0] : h;
    if (idem !== undefined && (idem.length === 0 || utf8Length(idem) > LIMITS.idempotencyKeyBytes)) {
      throw new HttpError(
        400,
        "invalid_header",
        `Idempotency-Key must be 1-${LIMITS.idempotencyKeyBytes} bytes`,
      );
    }
    return idem;
  };

  const kvJson = kvJsonOf;

  const read = async (url: URL): Promise<void> => {
    // Most reads carry no query: skip building URLSearchParams (a measurable share of a GET).
    const c = url.search === "" ? "linearizable" : (url.searchParams.get("consistency") ?? "linearizable");
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

  const write: ApiContext["write"] = async (req, res, body, cmd) => {
    // Nothing reaches the log that every replica would not accept.
    const problem = validateCommand(cmd);
    if (problem) throw new HttpError(400, "invalid_request", problem);
    let result: KvResult;
    try {
      result = await node.propose(encodeCommand(cmd));
    } catch (e) {
      if (e instanceof NotLeaderError) {
        await routeToLeader(req, res, body, e);
        return null;
      }
      throw e;
    }
    if (result.ok) return result;
    switch (result.code) {
      case "precondition_failed":
        throw new HttpError(
          412,
          "precondition_failed",
          `the key's revision is ${result.current}`,
          {},
          { revision: result.current },
        );
      case "stale_token":
        throw new HttpError(
          412,
          "stale_token",
          `a write with fencing token ${result.fence} was already accepted for this key`,
          {},
          { fencingToken: result.fence },
        );
      case "lease_not_found":
        throw new HttpError(404, "lease_not_found", "no such lease (it expired or was revoked)");
      case "not_election_leader":
        throw new HttpError(409, "not_election_leader", "this lease does not lead the election");
      case "idempotency_key_reused":
        throw new HttpError(
          422,
          "idempotency_key_reused",
          "this Idempotency-Key was already used for a different request",
        );
    }
  };

  const ctx: ApiContext = {
    node,
    kv,
    hub: opts.hub,
    expiry: opts.expiry,
    headers,
    send,
    body: async (req) => checkedOf(req).raw,
    json: (req) => {
      const j = checkedOf(req).json;
      if (!j) throw new Error("this route takes no JSON body");
      return j;
    },
    params: (req) => checkedOf(req).match.params,
    read,
    write,
    idempotencyKey,
    fetch: peerFetch,
    peerTls: tls,
    async routeIfFollower(req, res, body) {
      const l = node.leaderInfo;
      if (l?.id === node.id) return false;
      await routeToLeader(req, res, body, new NotLeaderError(l?.id ?? null, l?.url ?? null));
      return true;
    },
  };

  const handleKv = async (
    req: http.IncomingMessage,
    res: http.ServerResponse,
    url: URL,
    method: string,
  ): Promise<void> => {
    const key = String(ctx.params(req).key);
    const problem = checkKey(key);
    if (problem) throw new HttpError(400, "invalid_key", problem);
    if (method === "GET") {
      await read(url);
      const found = kv.get(key);
      if (!found) throw new HttpError(404, "not_found", `no key '${key}'`);
      send(res, 200, kvJson(found), { ETag: `"${found.modRevision}"` });
      return;
    }
    const body = await ctx.body(req);
    const ifMatch = revisionHeader(req.headers["if-match"], "If-Match");
    const ifNoneMatch = req.headers["if-none-match"];
    if (ifMatch !== undefined && ifNoneMatch !== undefined) {
      throw new HttpError(400, "invalid_header", "use If-Match or If-None-Match, not both");
    }
    const idem = idempotencyKey(req);
    const fence = fencingHeader(req);
    const ifRevision = ifNoneMatch !== undefined ? 0 : ifMatch;
    if (method === "PUT") {
      const o = ctx.json(req);
      const value = JSON.stringify(o.value);
      if (utf8Length(value) > LIMITS.valueBytes)
        throw new HttpError(413, "too_large", `the value is larger than ${LIMITS.valueBytes} bytes`);
      const lease = o.lease as number | undefined;
      const r = await write(req, res, body, { op: "put", key, value, ifRevision, lease, fence, idem });
      // A retried request's remembered outcome carries no value (see KvStore): it is this request's.
      if (r)
        send(
          res,
          200,
          { ...kvJson({ ...r.kv!, value: r.kv!.value || value }), revision: r.revision },
          { ETag: `"${r.revision}"` },
        );
    } else {
      const r = await write(req, res, body, { op: "del", key, ifRevision, fence, idem });
      if (r) send(res, 200, { key, deleted: r.deleted === true, revision: r.revision });
    }
  };

  const handle = async (
    req: http.IncomingMessage,
    res: http.ServerResponse,
    url: URL,
    match: Match,
  ): Promise<void> => {
    const method = req.method ?? "GET";
    const path = url.pathname;
    switch (match.route.operationId) {
      case "health":
        send(res, 200, { status: "ok", node: node.id, clusterId: node.clusterId });
        return;
      case "ready": {
        const st = node.status();
        const ready = st.leader !== null && st.appliedIndex >= st.commitIndex - 1000;
        send(
          res,
          ready ? 200 : 503,
          {
            ready,
            leader: st.leader?.id ?? null,
            appliedIndex: st.appliedIndex,
            commitIndex: st.commitIndex,
          },
          ready ? {} : { "Retry-After": "1" },
        );
        return;
      }
      case "metrics":
        if (!opts.metrics) throw new HttpError(404, "not_found", "this server has no metrics");
        await opts.metrics.serve(res);
        return;
      case "getCluster": {
        send(res, 200, clusterJson(node.status()));
        return;
      }
      case "listKeys": {
        const prefix = url.searchParams.get("prefix") ?? "";
        if (utf8Length(prefix) > LIMITS.keyBytes)
          throw new HttpError(400, "invalid_request", "the prefix is too long");
        const limit = Number(url.searchParams.get("limit") ?? "1000");
        await read(url);
        const r = kv.range(prefix, limit);
        send(res, 200, { kvs: r.kvs.map(kvJson), more: r.more, revision: kv.revision });
        return;
      }
      case "getKey":
      case "putKey":
      case "deleteKey":
        return handleKv(req, res, url, method);
      case "txn":
        return handleTxn(ctx, req, res, fencingHeader(req));
      case "watch":
        return handleWatch(ctx, req, res, url, method);
      case "saveSnapshot":
        return handleSnapshot(ctx, req, res, url, method);
      case "openapi":
        openapiText ??= `${JSON.stringify(buildOpenApi())}\n`;
        headers(res);
        res.writeHead(200, {
          "Content-Type": "application/json",
          "Content-Length": Buffer.byteLength(openapiText),
          "Cache-Control": "max-age=60",
        });
        res.end(openapiText);
        return;
      case "peerStream":
        throw new HttpError(
          426,
          "upgrade_required",
          "this path only takes an Upgrade to ballot-raft/1 from a member",
          {
            Upgrade: "ballot-raft/1",
          },
        );
      case "dashboard":
        if (!dashboard) throw noDashboard();
        return dashboard.page(res, "GET");
      case "dashboardEvents":
        if (!dashboard) throw noDashboard();
        return dashboard.events(res, "GET");
    }
    if (path.startsWith("/v1/cluster/")) return handleCluster(ctx, req, res, url, method);
    if (path === "/v1/leases" || path.startsWith("/v1/leases/"))
      return handleLeases(ctx, req, res, url, method);
    if (path.startsWith("/v1/elections/")) return handleElections(ctx, req, res, url, method);
    throw new Error(`route ${match.route.operationId} has no handler`);
  };

  return { handle, fail, headers, send, read };
}

const EXEMPT = new Set(["/health", "/ready", "/metrics", "/v1/cluster", "/v1/watch", "/v1/events", "/"]);

/** Requests that admission never refuses: probes and status, and long-lived streams. */
export function exemptFromAdmission(rawUrl: string, method: string): boolean {
  const q = rawUrl.indexOf("?");
  const path = q < 0 ? rawUrl : rawUrl.slice(0, q);
  if (EXEMPT.has(path)) return method === "GET";
  // Membership and leadership moves are how an operator relieves an overloaded cluster.
  if (path.startsWith("/v1/cluster/")) return true;
  return /^\/v1\/elections\/[^/]+\/(observe|campaign)$/.test(path);
}

/** The JSON shape of a key-value pair in answers and watch events. */
export function kvJsonOf(k: {
  key: string;
  value: string;
  modRevision: number;
  createRevision: number;
  version: number;
  lease?: number;
}): Record<string, unknown> {
  return {
    key: k.key,
    value: JSON.parse(k.value) as unknown,
    revision: k.modRevision,
    createRevision: k.createRevision,
    version: k.version,
    ...(k.lease !== undefined ? { lease: k.lease } : {}),
  };
}
