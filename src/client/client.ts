/**
 * BallotClient: the HTTP client for services that do not embed consensus — key-value reads and
 * writes, cluster status, leases, watches and elections against any list of endpoints. Owns the
 * mapping of each operation to the HTTP API and the watch stream's resume logic; must never
 * deliver a watch event twice or out of order, and never hide an unknown outcome (the transport's
 * `outcome_unknown` reaches the caller as is).
 */

import type * as Api from "./api-types.js";
import { BallotElection } from "./ballot-election.js";
import type { Election } from "./election.js";
import { BallotClientError } from "./errors.js";
import { httpsFetch } from "./https-fetch.js";
import { Lease } from "./lease.js";
import { MAX_PARTITIONS, PartitionedElection } from "./partitioned-election.js";
import { readSse } from "./sse.js";
import { type FetchFn, linkedController, sleep, Transport } from "./transport.js";
import { undiciRequest } from "./undici-request.js";
import { WriteCoalescer } from "./write-coalescer.js";

export interface BallotClientOptions {
  /** Node URLs (any members; the client finds the leader). */
  readonly endpoints: readonly string[];
  /** Time budget of one logical operation, retries included, in ms. Default 10 000. */
  readonly timeoutMs?: number;
  /** Time budget of one HTTP attempt, in ms. Default min(timeoutMs, 3000): a hung node is left soon. */
  readonly attemptTimeoutMs?: number;
  /** A watch or observe stream that carries nothing (not even the server's 15 s keepalive) for this long is reconnected. Default 45 000. */
  readonly streamIdleTimeoutMs?: number;
  /** The fetch to use (default: the global fetch), e.g. one with a custom dispatcher. */
  readonly fetch?: FetchFn;
  /** A bearer token for nodes started with --auth-tokens; sent on every request (never logged). */
  readonly token?: string;
  /** PEM CA certificate(s) to trust for https:// endpoints instead of the system's (a cluster with its own CA). */
  readonly ca?: string | Buffer;
  /** PEM client certificate and key, presented to https:// endpoints that ask for one. */
  readonly cert?: string | Buffer;
  readonly key?: string | Buffer;
  /**
   * Merge concurrent plain puts (no ifRevision, createOnly, fencingToken or signal) into one
   * transaction per request once `maxInFlight` writes are already in flight; each put keeps its
   * own result, revision and error. Default `{ maxInFlight: 8 }`; `false` sends every put alone.
   */
  readonly coalesceWrites?: false | { readonly maxInFlight?: number };
}

/** How fresh a read must be: `linearizable` (default), `lease` (the leader's lease), `local` (this node's state). */
export type Consistency = "linearizable" | "lease" | "local";

/** A key as the server answers it (the wire types are generated from the API's schemas). */
export type KeyValue = Api.KeyValue;

/** The answer to a put: the key as written; `revision` is the revision of this write. */
export type PutResult = Api.PutKeyResponse;

/** The answer to a delete; `deleted` is false when the key did not exist. */
export type DeleteResult = Api.DeleteKeyResponse;

/** A range; `more`: more keys match than `limit`; watch from `revision + 1` to follow on. */
export type ListResult = Api.ListKeysResponse;

/** A member as `GET /v1/cluster` lists it. */
export type ClusterMember = Api.Member;

/** The cluster as one node sees it. */
export type ClusterStatus = Api.ClusterStatus;

export interface PutOptions {
  /** Compare-and-set: the key's current revision must be this (`412 precondition_failed` otherwise). */
  readonly ifRevision?: number;
  /** The key must not exist (`412 precondition_failed` otherwise). */
  readonly createOnly?: boolean;
  /** Attach the key to a lease (a Lease or its id): it is deleted when the lease goes. */
  readonly lease?: Lease | number;
  /** Refused with `412 stale_token` if a higher token already wrote this key. */
  readonly fencingToken?: number;
  readonly signal?: AbortSignal;
}

/** One condition of a transaction (see `txn`). */
export type TxnCompare = Api.TxnCompare;
/** One operation of a transaction's branch: `{put: {key, value, lease?}}`, `{delete: {key}}` or `{get: {key}}`. */
export type TxnOp = Api.TxnOp;
/** What one operation did: `{put: KeyValue}`, `{delete: {key, deleted}}` or `{get: {key, kv}}`. */
export type TxnOpResult = Api.TxnOpResult;
/** The outcome of a transaction. */
export type TxnResult = Api.TxnResponse;

/** A transaction's request, in etcd's shape. */
export interface TxnRequest {
  readonly compare?: readonly TxnCompare[];
  readonly success?: readonly TxnOp[];
  readonly failure?: readonly TxnOp[];
}

export interface TxnOptions {
  /** Refused (`stale_token`) if any key the transaction writes has seen a higher token. */
  readonly fencingToken?: number;
  readonly signal?: AbortSignal;
}

export interface DeleteOptions {
  readonly ifRevision?: number;
  readonly fencingToken?: number;
  readonly signal?: AbortSignal;
}

export interface GetOptions {
  readonly consistency?: Consistency;
  readonly signal?: AbortSignal;
}

export interface ListOptions {
  /** At most this many keys (1–10 000; the server's default is 1000). */
  readonly limit?: number;
  readonly consistency?: Consistency;
  readonly signal?: AbortSignal;
}

export interface WatchOptions {
  /**
   * First revision to deliver (inclusive). Default: changes after the moment iteration starts (the
   * client reads the current revision first, a linearizable read, so reconnects cannot skip changes).
   */
  readonly fromRevision?: number;
  /**
   * A partitioned cluster's watch of a prefix that spans several partitions: the first revision
   * to deliver of each partition, by partition id (revisions are per partition). Default: each
   * one's next, read first as for `fromRevision`.
   */
  readonly fromRevisions?: readonly number[];
  /** Ends the iteration (quietly) when it aborts. */
  readonly signal?: AbortSignal;
}

/**
 * A change. `revision` is its partition's; `partition` is there when the watch spans several
 * partitions of a partitioned cluster (each partition's events come in its revision order; nothing
 * orders events of different partitions).
 */
export type WatchEvent =
  | {
      readonly type: "put";
      readonly key: string;
      readonly value: unknown;
      readonly revision: number;
      readonly createRevision: number;
      readonly version: number;
      readonly lease?: number;
      readonly partition?: number;
    }
  | { readonly type: "delete"; readonly key: string; readonly revision: number; readonly partition?: number };

export interface ElectionOptions {
  /** TTL of the lease backing each candidacy, in seconds. Default 5. */
  readonly ttlSeconds?: number;
}

/** A partitioned election: `partitions` elections and a roster, each instance leading a fair share. */
export interface PartitionedElectionOptions extends ElectionOptions {
  /** 1 … 1024; every instance must give the same count. */
  readonly partitions: number;
}

/**
 * Reconnects a failed stream after this pause, doubling up to the cap. Kept short: a killed node's
 * stream should move to another node within an election timeout or so.
 */
const STREAM_BACKOFF_MIN_MS = 50;
const STREAM_BACKOFF_MAX_MS = 1000;

const KEY_SAFE = (key: string): string => {
  if (typeof key !== "string" || key.length === 0) {
    throw new BallotClientError(0, "invalid_argument", "the key must be a non-empty string");
  }
  // URL parsing turns "." and ".." segments into path navigation even when percent-encoded.
  if (key === "." || key === "..") {
    throw new BallotClientError(0, "invalid_argument", `the key '${key}' cannot be addressed in a URL`);
  }
  // Slashes are encoded too, so no part of a key is ever a path segment of its own.
  return encodeURIComponent(key);
};

function asKeyValue(body: unknown): KeyValue {
  const o = body as Record<string, unknown> | null;
  if (!o || typeof o.key !== "string" || typeof o.revision !== "number") {
    throw new BallotClientError(0, "invalid_response", "the server's answer is not a key-value");
  }
  return {
    key: o.key,
    value: o.value,
    revision: o.revision,
    createRevision: o.createRevision as number,
    version: o.version as number,
    ...(typeof o.lease === "number" ? { lease: o.lease } : {}),
  };
}

function checkRevision(name: string, v: number | undefined): void {
  if (v !== undefined && !(Number.isSafeInteger(v) && v >= 0)) {
    throw new BallotClientError(0, "invalid_argument", `${name} must be a non-negative integer`);
  }
}

/** A client of a Ballot cluster. Cheap to create; share one per process. */
/** Adds the Authorization header to every request (redirects are followed by hand, so it is kept). */
function withToken(f: FetchFn, token: string | undefined): FetchFn {
  if (token === undefined) return f;
  if (!/^[^\s]{1,4096}$/.test(token))
    throw new BallotClientError(0, "invalid_argument", "the token must be non-empty, without spaces");
  return (input, init) => {
    const headers = new Headers(init?.headers);
    headers.set("Authorization", `Bearer ${token}`);
    return f(input, { ...init, headers });
  };
}

/** The fetch the options ask for: theirs, one with a CA or client certificate, or the global one. */
function fetchOf(opts: BallotClientOptions): FetchFn {
  const tls = opts.ca !== undefined || opts.cert !== undefined || opts.key !== undefined;
  if (opts.fetch && tls)
    throw new BallotClientError(0, "invalid_argument", "give fetch or ca/cert/key, not both");
  if ((opts.cert === undefined) !== (opts.key === undefined))
    throw new BallotClientError(0, "invalid_argument", "cert and key go together");
  if (opts.fetch) return opts.fetch;
  if (tls) return httpsFetch({ ca: opts.ca, cert: opts.cert, key: opts.key });
  return (input, init) => fetch(input, init);
}

export class BallotClient {
  /** @internal */
  readonly transport: Transport;
  private readonly idleMs: number;
  /** Merges concurrent plain puts under load (see BallotClientOptions.coalesceWrites). */
  private readonly coalescer: WriteCoalescer | null = null;
  private readonly leases = new Set<Lease>();
  private readonly closer = new AbortController();

  private engineOf: ReturnType<typeof undiciRequest> | null = null;
  private engineOptions: BallotClientOptions;

  private engine(): ReturnType<typeof undiciRequest> {
    this.engineOf ??= undiciRequest({
      ca: this.engineOptions.ca,
      cert: this.engineOptions.cert,
      key: this.engineOptions.key,
      authorization:
        this.engineOptions.token === undefined ? undefined : `Bearer ${this.engineOptions.token}`,
    });
    return this.engineOf;
  }

  constructor(opts: BallotClientOptions) {
    this.engineOptions = opts;
    const timeoutMs = opts.timeoutMs ?? 10_000;
    this.transport = new Transport({
      endpoints: opts.endpoints,
      timeoutMs,
      attemptTimeoutMs: opts.attemptTimeoutMs ?? Math.min(timeoutMs, 3000),
      fetch: withToken(fetchOf(opts), opts.token),
      // A caller's own fetch is used for everything; otherwise plain requests go through undici.
      ...(opts.fetch ? {} : { request: this.engine().request }),
    });
    this.idleMs = opts.streamIdleTimeoutMs ?? 45_000;
    const co = opts.coalesceWrites ?? {};
    if (co !== false) {
      const maxInFlight = co.maxInFlight ?? 8;
      if (!Number.isInteger(maxInFlight) || maxInFlight < 1)
        throw new BallotClientError(
          0,
          "invalid_argument",
          "coalesceWrites.maxInFlight must be a whole number ≥ 1",
        );
      this.coalescer = new WriteCoalescer(
        (key, value, lease) => this.sendPut(key, value, lease, {}, undefined),
        async (puts) =>
          (
            await this.transport.call({
              method: "POST",
              path: "/v1/txn",
              key: puts[0]!.key,
              body: { compare: [], success: puts.map((put) => ({ put })), failure: [] },
              write: true,
            })
          ).body,
        { maxInFlight, maxOps: 64, partitionOf: (key) => this.transport.partitionOf(key) },
      );
    }
  }

  /** The endpoint the client tries first: the leader's URL once it has learned it. */
  get preferredEndpoint(): string | null {
    return this.transport.preferredEndpoint;
  }

  /** @internal Aborts when close() is called. */
  get closeSignal(): AbortSignal {
    return this.closer.signal;
  }

  /** Reads a key; null when it does not exist. */
  async get(key: string, opts: GetOptions = {}): Promise<KeyValue | null> {
    const q = opts.consistency ? `?consistency=${encodeURIComponent(opts.consistency)}` : "";
    const r = await this.transport.call({
      method: "GET",
      path: `/v1/kv/${KEY_SAFE(key)}${q}`,
      key,
      write: false,
      accept: [404],
      signal: opts.signal,
    });
    return r.status === 404 ? null : asKeyValue(r.body);
  }

  /**
   * Writes a key. Resolves once the write is committed by a majority. Retried across leader
   * changes with one Idempotency-Key, so it is applied at most once; throws `outcome_unknown` if
   * the time runs out while an attempt may have been applied.
   */
  async put(key: string, value: unknown, opts: PutOptions = {}): Promise<PutResult> {
    checkRevision("ifRevision", opts.ifRevision);
    checkRevision("fencingToken", opts.fencingToken);
    if (opts.createOnly && opts.ifRevision !== undefined) {
      throw new BallotClientError(0, "invalid_argument", "use ifRevision or createOnly, not both");
    }
    if (value === undefined) throw new BallotClientError(0, "invalid_argument", "the value is undefined");
    const headers: Record<string, string> = {};
    if (opts.ifRevision !== undefined) headers["If-Match"] = `"${opts.ifRevision}"`;
    if (opts.createOnly) headers["If-None-Match"] = "*";
    if (opts.fencingToken !== undefined) headers["X-Ballot-Fencing-Token"] = String(opts.fencingToken);
    const lease = opts.lease instanceof Lease ? opts.lease.id : opts.lease;
    const plain =
      opts.ifRevision === undefined && !opts.createOnly && opts.fencingToken === undefined && !opts.signal;
    if (plain && this.coalescer) return asKeyValue(await this.coalescer.put(key, value, lease));
    return asKeyValue(await this.sendPut(key, value, lease, headers, opts.signal));
  }

  private async sendPut(
    key: string,
    value: unknown,
    lease: number | undefined,
    headers: Record<string, string>,
    signal: AbortSignal | undefined,
  ): Promise<unknown> {
    const r = await this.transport.call({
      method: "PUT",
      path: `/v1/kv/${KEY_SAFE(key)}`,
      key,
      body: lease === undefined ? { value } : { value, lease },
      headers,
      write: true,
      signal,
    });
    return r.body;
  }

  /** Deletes a key (same guarantees as put). `deleted` is false when it did not exist. */
  async delete(key: string, opts: DeleteOptions = {}): Promise<DeleteResult> {
    checkRevision("ifRevision", opts.ifRevision);
    checkRevision("fencingToken", opts.fencingToken);
    const headers: Record<string, string> = {};
    if (opts.ifRevision !== undefined) headers["If-Match"] = `"${opts.ifRevision}"`;
    if (opts.fencingToken !== undefined) headers["X-Ballot-Fencing-Token"] = String(opts.fencingToken);
    const r = await this.transport.call({
      method: "DELETE",
      path: `/v1/kv/${KEY_SAFE(key)}`,
      key,
      headers,
      write: true,
      signal: opts.signal,
    });
    const o = r.body as { key: string; deleted: boolean; revision: number };
    return { key: o.key, deleted: o.deleted, revision: o.revision };
  }

  /**
   * A transaction: if every `compare` holds, the `success` ops run, else the `failure` ops — one
   * log entry, applied whole or not at all, so no reader sees part of it. Same retry guarantees
   * as put (one Idempotency-Key for every attempt: applied at most once). Each change takes the
   * next revision; `revision` is the store's after the transaction.
   *
   * @example Move 40 from a to b only if a still holds what was read:
   * ```ts
   * const a = await client.get("acct/a");
   * const { succeeded } = await client.txn({
   *   compare: [{ key: "acct/a", target: "revision", op: "==", value: a!.revision }],
   *   success: [{ put: { key: "acct/a", value: 60 } }, { put: { key: "acct/b", value: 140 } }],
   * });
   * ```
   */
  async txn(request: TxnRequest, opts: TxnOptions = {}): Promise<TxnResult> {
    checkRevision("fencingToken", opts.fencingToken);
    const headers: Record<string, string> = {};
    if (opts.fencingToken !== undefined) headers["X-Ballot-Fencing-Token"] = String(opts.fencingToken);
    const first =
      request.compare?.[0]?.key ??
      [...(request.success ?? []), ...(request.failure ?? [])]
        .map((op) => ("put" in op ? op.put.key : "delete" in op ? op.delete.key : op.get.key))
        .find((k) => k !== undefined);
    const r = await this.transport.call({
      method: "POST",
      path: "/v1/txn",
      key: first,
      body: {
        compare: request.compare ?? [],
        success: request.success ?? [],
        failure: request.failure ?? [],
      },
      headers,
      write: true,
      signal: opts.signal,
    });
    return r.body as TxnResult;
  }

  /** Keys starting with `prefix` (all keys for ""), in key order. */
  async list(prefix: string, opts: ListOptions = {}): Promise<ListResult> {
    const q = new URLSearchParams({ prefix });
    if (opts.limit !== undefined) q.set("limit", String(opts.limit));
    if (opts.consistency) q.set("consistency", opts.consistency);
    const r = await this.transport.call({
      method: "GET",
      path: `/v1/kv?${q}`,
      write: false,
      signal: opts.signal,
    });
    const o = r.body as { kvs: unknown[]; more: boolean; revision: number; revisions?: unknown };
    const out: ListResult = { kvs: o.kvs.map(asKeyValue), more: o.more, revision: o.revision };
    // A partitioned cluster's range over several partitions: each partition's revision.
    if (Array.isArray(o.revisions) && o.revisions.every((v) => Number.isSafeInteger(v) && v >= 0))
      return { ...out, revisions: o.revisions as number[] };
    return out;
  }

  /** The cluster as the answering node sees it (GET /v1/cluster). */
  async status(opts: { signal?: AbortSignal } = {}): Promise<ClusterStatus> {
    const r = await this.transport.call({
      method: "GET",
      path: "/v1/cluster",
      write: false,
      signal: opts.signal,
    });
    return r.body as ClusterStatus;
  }

  /**
   * Grants a lease of `ttlSeconds` (1–86 400, may be fractional) and keeps it alive until it is
   * revoked, lost, or the client is closed. Watch `lease.signal`.
   */
  async grantLease(ttlSeconds: number, opts: { signal?: AbortSignal } = {}): Promise<Lease> {
    if (!(typeof ttlSeconds === "number" && Number.isFinite(ttlSeconds) && ttlSeconds > 0)) {
      throw new BallotClientError(0, "invalid_argument", "ttlSeconds must be a positive number");
    }
    // The server can only start the TTL after this moment: measuring from here is conservative,
    // also when a retry is what got the lease granted.
    const sentAt = performance.now();
    const r = await this.transport.call({
      method: "POST",
      path: "/v1/leases",
      body: { ttl: ttlSeconds },
      write: true,
      signal: opts.signal,
    });
    const o = r.body as { id: number; ttl: number };
    if (typeof o?.id !== "number" || typeof o.ttl !== "number") {
      throw new BallotClientError(0, "invalid_response", "the server's lease answer has no id and ttl");
    }
    const lease = new Lease(this.transport, o.id, o.ttl, sentAt, (l) => this.leases.delete(l));
    if (!lease.signal.aborted) this.leases.add(lease);
    return lease;
  }

  /**
   * Follows changes of keys starting with `prefix`, in revision order, from `fromRevision` (or
   * from now). Reconnects on stream errors — to another node if need be — resuming after the last
   * delivered revision with Last-Event-ID, so no event is delivered twice or skipped. Throws
   * BallotClientError `compacted` (with `compactRevision`) when the node's history no longer
   * reaches back far enough; other 4xx answers are thrown too. Ends when `signal` aborts or the
   * client is closed.
   */
  watch(prefix: string, opts: WatchOptions = {}): AsyncIterable<WatchEvent> {
    checkRevision("fromRevision", opts.fromRevision);
    if (opts.fromRevisions !== undefined) {
      if (!Array.isArray(opts.fromRevisions) || opts.fromRevisions.length === 0)
        throw new BallotClientError(
          0,
          "invalid_argument",
          "fromRevisions must be a list of revisions, one per partition",
        );
      for (const r of opts.fromRevisions) checkRevision("fromRevisions", r);
      if (opts.fromRevision !== undefined)
        throw new BallotClientError(0, "invalid_argument", "give fromRevision or fromRevisions, not both");
    }
    return { [Symbol.asyncIterator]: () => this.watchStream(prefix, opts) };
  }

  private async *watchStream(
    prefix: string,
    opts: WatchOptions,
  ): AsyncGenerator<WatchEvent, void, undefined> {
    const { controller: life, dispose } = linkedController(opts.signal, this.closer.signal);
    try {
      let start = opts.fromRevision;
      // A watch over several partitions: one position per partition (the next revision of each).
      let next = opts.fromRevisions?.map((r) => Math.max(1, r));
      if (start === undefined && next === undefined) {
        // "From now" must mean fixed revisions, or a reconnect before the first event could skip
        // changes. A partitioned cluster answers a range over several partitions with each one's.
        try {
          const now = await this.list(prefix, { limit: 1, signal: life.signal });
          if (now.revisions) next = now.revisions.map((r) => r + 1);
          else start = now.revision + 1;
        } catch (e) {
          if (life.signal.aborted) return;
          throw e;
        }
      }
      /** The last delivered revision: each event has its own, so anything at or below it is a replay. */
      let last: number | undefined;
      const connect = (): { path: string; headers: Record<string, string> } => {
        const q = new URLSearchParams({ prefix });
        if (next) q.set("fromRevisions", next.join(","));
        else if (last === undefined) q.set("fromRevision", String(start));
        return {
          path: `/v1/watch?${q}`,
          headers: next || last === undefined ? {} : { "Last-Event-ID": String(last) },
        };
      };
      for await (const data of this.resumable(life.signal, connect, ["put", "delete"])) {
        const ev = data as WatchEvent;
        if (typeof ev?.revision !== "number") continue;
        if (next) {
          const p = ev.partition;
          if (typeof p !== "number" || !Number.isInteger(p) || p < 0 || p >= next.length) continue;
          if (ev.revision < next[p]!) continue;
          next[p] = ev.revision + 1;
        } else {
          if (last !== undefined && ev.revision <= last) continue;
          last = ev.revision;
        }
        yield ev;
      }
    } finally {
      dispose();
    }
  }

  /**
   * @internal A server-sent-event stream that survives its node: opened again and again through
   * `connect()` (asked anew each time, so the caller can resume), elsewhere first after a failure,
   * with backoff; yields the data of the named events. Ends quietly when `signal` aborts; throws
   * 4xx answers (they will not get better by retrying).
   */
  async *resumable(
    signal: AbortSignal,
    connect: () => { path: string; headers: Record<string, string> },
    events: string[],
  ): AsyncGenerator<unknown, void, undefined> {
    let avoid: string | undefined;
    let backoff = STREAM_BACKOFF_MIN_MS;
    while (!signal.aborted) {
      const conn = linkedController(signal);
      let failed = false;
      try {
        const { path, headers } = connect();
        const { response, origin } = await this.transport.openStream(
          path,
          headers,
          conn.controller.signal,
          avoid,
        );
        avoid = origin;
        for await (const data of this.events(response, conn.controller, events)) {
          backoff = STREAM_BACKOFF_MIN_MS;
          yield data;
        }
      } catch (e) {
        if (signal.aborted) return;
        if (e instanceof BallotClientError && e.status >= 400 && e.status < 500) throw e;
        failed = true;
      } finally {
        conn.controller.abort();
        conn.dispose();
      }
      // A stream that ended or broke: reconnect (elsewhere first if it failed) after a pause.
      if (!failed) avoid = undefined;
      await sleep(backoff, signal);
      backoff = Math.min(backoff * 2, STREAM_BACKOFF_MAX_MS);
    }
  }

  /**
   * @internal Yields the parsed data of the named events of an SSE response; returns when the
   * stream ends, throws when it breaks, stalls past the idle timeout, or sends `event: error`.
   */
  async *events(
    response: Response,
    conn: AbortController,
    names: readonly string[],
  ): AsyncGenerator<unknown, void, undefined> {
    if (!response.body) return;
    let idle: ReturnType<typeof setTimeout> | undefined;
    const touch = (): void => {
      clearTimeout(idle);
      idle = setTimeout(
        () => conn.abort(new BallotClientError(0, "unavailable", "the stream went silent")),
        this.idleMs,
      );
    };
    touch();
    try {
      for await (const item of readSse(response.body)) {
        touch();
        if (item.kind !== "event") continue;
        if (item.event === "error") {
          let code = "stream_error";
          try {
            const d = JSON.parse(item.data) as { code?: unknown };
            if (typeof d.code === "string") code = d.code;
          } catch {
            // keep the generic code
          }
          // E.g. too_slow: the server ended the stream; the caller resumes from what it has.
          throw new BallotClientError(0, code, `the server ended the stream: ${item.data}`);
        }
        if (!names.includes(item.event)) continue;
        let data: unknown;
        try {
          data = JSON.parse(item.data);
        } catch {
          throw new BallotClientError(0, "invalid_response", "an event's data is not JSON");
        }
        yield data;
      }
    } finally {
      clearTimeout(idle);
    }
  }

  /**
   * A named election on this cluster; each campaign is backed by a lease this client keeps alive.
   * With `partitions: P`, a {@link PartitionedElection}: `runForEach(job)` runs one job per
   * partition this instance leads, the P partitions spread over every instance that runs it.
   */
  election(name: string, opts: PartitionedElectionOptions): PartitionedElection;
  election(name: string, opts?: ElectionOptions): Election;
  election(
    name: string,
    opts: ElectionOptions & { partitions?: number } = {},
  ): Election | PartitionedElection {
    if (typeof name !== "string" || name.length === 0) {
      throw new BallotClientError(0, "invalid_argument", "the election name must be a non-empty string");
    }
    const ttl = opts.ttlSeconds ?? 5;
    if (!(Number.isFinite(ttl) && ttl > 0)) {
      throw new BallotClientError(0, "invalid_argument", "ttlSeconds must be a positive number");
    }
    if (opts.partitions === undefined) return new BallotElection(this, name, ttl);
    const p = opts.partitions;
    if (!Number.isInteger(p) || p < 1 || p > MAX_PARTITIONS)
      throw new BallotClientError(
        0,
        "invalid_argument",
        `partitions must be a whole number from 1 to ${MAX_PARTITIONS}`,
      );
    return new PartitionedElection(name, p, (n) => new BallotElection(this, n, ttl));
  }

  /**
   * Stops keeping every lease of this client alive (they expire on the server after their TTL; their
   * signals abort now) and ends watches and observers. Use revoke() or resign() first for a quick
   * hand-over.
   */
  close(): void {
    this.closer.abort(new BallotClientError(0, "unavailable", "the client was closed"));
    for (const l of [...this.leases]) l.abandon();
    // Idle keep-alive connections would otherwise hold the process open for their timeout.
    void this.engineOf?.close().catch(() => undefined);
  }
}
