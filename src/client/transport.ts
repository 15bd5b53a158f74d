/**
 * How the client talks to a cluster: endpoint order and leader discovery (307 followed by hand,
 * the leader remembered as the preferred endpoint), per-attempt timeouts, retries with backoff,
 * and the Idempotency-Key that makes a retried write apply once. Owns the retry rules; must never
 * report a write as done or as not done when an attempt of it may have been applied and no later
 * attempt settled it: that is `outcome_unknown`.
 *
 * The retry rules follow the server's status contract: 503 (and 429) promise nothing was applied;
 * 504, 502, 408, a timeout or a broken connection after sending leave a write's outcome unknown,
 * so a write is only retried with the same Idempotency-Key (the server then answers the first
 * outcome). A connection that was refused never carried the request.
 */

import { randomUUID } from "node:crypto";
import { Partitioner, parsePartitionRule } from "../kv/partitioner.js";
import { BallotClientError, errorFromResponse } from "./errors.js";

export type FetchFn = typeof fetch;

/** The answer headers as the client reads them: `Headers` and undici's plain object both fit. */
export interface HeaderLookup {
  get(name: string): string | null;
}

/**
 * One plain HTTP exchange, without fetch's WHATWG machinery (Request, Headers, web streams per
 * call): what the client's hot path uses. The body is read whole.
 */
export type RequestFn = (
  url: URL,
  init: {
    readonly method: string;
    readonly headers: Readonly<Record<string, string>>;
    readonly body: string | undefined;
    readonly signal: AbortSignal;
  },
) => Promise<{ readonly status: number; readonly headers: HeaderLookup; readonly text: string }>;

export interface TransportOptions {
  readonly endpoints: readonly string[];
  /** Whole logical operation, in ms. */
  readonly timeoutMs: number;
  /** One HTTP attempt, in ms. */
  readonly attemptTimeoutMs: number;
  readonly fetch: FetchFn;
  /** For requests that are not streams; default: `fetch`. */
  readonly request?: RequestFn;
}

export interface CallSpec {
  readonly method: "GET" | "PUT" | "POST" | "DELETE";
  /** Absolute path with query, e.g. `/v1/kv/a?consistency=local`. */
  readonly path: string;
  /** JSON body. */
  readonly body?: unknown;
  readonly headers?: Readonly<Record<string, string>>;
  /** A write: carries an Idempotency-Key (one per call, reused by every retry) and tracks unknown outcomes. */
  readonly write: boolean;
  readonly signal?: AbortSignal;
  /** Overrides the client's operation timeout (Infinity: retry until the signal aborts). */
  readonly timeoutMs?: number;
  /** Overrides the per-attempt timeout (Infinity for long polls). */
  readonly attemptTimeoutMs?: number;
  /** Non-2xx statuses returned instead of thrown (e.g. 404 for a get). */
  readonly accept?: readonly number[];
  /**
   * For a long poll: while an attempt waits, ask the node holding it `GET /ready` every
   * `everyMs`; when it has not answered ready for `deadAfterMs`, leave it and re-send elsewhere.
   * A node that was cut off, or that lost its leader, would otherwise hold the request until the
   * attempt timeout, which a long poll must set high.
   */
  readonly liveness?: { readonly everyMs: number; readonly deadAfterMs: number };
  /**
   * The key the request acts on. On a partitioned cluster the request is sent first to the
   * leader of that key's partition, once the client has learned who it is.
   */
  readonly key?: string;
}

export interface CallResult {
  readonly status: number;
  readonly headers: HeaderLookup;
  readonly body: unknown;
  /** The origin that answered. */
  readonly origin: string;
}

export interface StreamResult {
  readonly response: Response;
  readonly origin: string;
}

/** Statuses that promise nothing was applied: try another endpoint, then again. */
const NOTHING_APPLIED = new Set([503, 429]);
/** Statuses after which a write may have been applied: retry with the same Idempotency-Key. */
const MAYBE_APPLIED = new Set([504, 502, 408]);
// Only the method-preserving redirects: a write must reach the leader as it was sent.
const REDIRECTS = new Set([307, 308]);
const MAX_REDIRECTS = 5;
/** No attempt is started with less time than this left before the deadline. */
const MIN_ATTEMPT_MS = 100;
/** Connection-level failures that happen before a request is sent. */
const NOT_SENT_CODES = new Set([
  "ECONNREFUSED",
  "ENOTFOUND",
  "EAI_AGAIN",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "EADDRNOTAVAIL",
  "UND_ERR_CONNECT_TIMEOUT",
  // The server's certificate failed this client's checks: the handshake ended before any request.
  "SELF_SIGNED_CERT_IN_CHAIN",
  "DEPTH_ZERO_SELF_SIGNED_CERT",
  "UNABLE_TO_GET_ISSUER_CERT_LOCALLY",
  "UNABLE_TO_VERIFY_LEAF_SIGNATURE",
  "CERT_HAS_EXPIRED",
  "CERT_NOT_YET_VALID",
  "CERT_SIGNATURE_FAILURE",
  "CERT_UNTRUSTED",
  "ERR_TLS_CERT_ALTNAME_INVALID",
]);

type Attempt =
  | {
      readonly kind: "response";
      readonly status: number;
      readonly headers: HeaderLookup;
      readonly body: unknown;
      readonly origin: string;
    }
  | { readonly kind: "stream"; readonly response: Response; readonly origin: string }
  | { readonly kind: "network"; readonly sent: boolean; readonly error: unknown; readonly origin: string };

/** Whether a fetch failure could have happened after the request left (so a write may have been applied). */
export function maybeSent(e: unknown): boolean {
  let cur: unknown = e;
  for (let i = 0; i < 4 && cur; i++) {
    const code = (cur as { code?: unknown }).code;
    if (typeof code === "string" && NOT_SENT_CODES.has(code)) return false;
    cur = (cur as { cause?: unknown }).cause;
  }
  return true;
}

function describe(e: unknown): string {
  if (!(e instanceof Error)) return String(e);
  const cause = e.cause instanceof Error ? `: ${e.cause.message}` : "";
  return `${e.message}${cause}`;
}

function parseBody(text: string): unknown {
  if (text.length === 0) return undefined;
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return text;
  }
}

function retryAfterMs(h: HeaderLookup): number | undefined {
  const v = h.get("retry-after");
  if (v === null || !/^\d+(\.\d+)?$/.test(v.trim())) return undefined;
  return Number(v) * 1000;
}

/** Sleeps, waking early (without throwing) when `signal` aborts. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted || ms <= 0) {
      resolve();
      return;
    }
    const done = (): void => {
      clearTimeout(t);
      signal?.removeEventListener("abort", done);
      resolve();
    };
    const t = setTimeout(done, ms);
    signal?.addEventListener("abort", done, { once: true });
  });
}

/**
 * An AbortController that also aborts when any of `signals` does. Call `dispose()` when done so
 * long-lived parent signals do not collect listeners.
 */
export function linkedController(...signals: (AbortSignal | undefined)[]): {
  controller: AbortController;
  dispose: () => void;
} {
  const controller = new AbortController();
  const cleanups: (() => void)[] = [];
  for (const s of signals) {
    if (!s) continue;
    if (s.aborted) {
      controller.abort(s.reason);
      break;
    }
    const on = (): void => controller.abort(s.reason);
    s.addEventListener("abort", on, { once: true });
    cleanups.push(() => s.removeEventListener("abort", on));
  }
  return {
    controller,
    dispose: () => {
      for (const f of cleanups) f();
    },
  };
}

function abortReason(signal: AbortSignal): unknown {
  return signal.reason ?? new DOMException("This operation was aborted", "AbortError");
}

export class Transport {
  private readonly endpoints: readonly string[];
  /** The leader's origin as last learned from a redirect or a write's answer; tried first. */
  private preferred: string | null = null;
  /**
   * A partitioned cluster's rule, as its answers announce it (X-Ballot-Partitions), and the
   * leader of each partition as last learned: requests for a key go to its partition's leader.
   */
  private partitioning: { readonly header: string; readonly partitioner: Partitioner } | null = null;
  private readonly partitionLeaders = new Map<number, string>();

  constructor(private readonly opts: TransportOptions) {
    if (opts.endpoints.length === 0) throw new BallotClientError(0, "invalid_argument", "endpoints is empty");
    this.endpoints = opts.endpoints.map((e) => {
      try {
        return new URL(e).origin;
      } catch {
        throw new BallotClientError(0, "invalid_argument", `endpoint '${e}' is not a URL`);
      }
    });
  }

  /** The endpoint tried first (the leader, when known). */
  get preferredEndpoint(): string | null {
    return this.preferred;
  }

  /** The partition `key` lives in, once the cluster has said how it partitions (else null). */
  partitionOf(key: string): number | null {
    return this.partitioning ? this.partitioning.partitioner.of(key) : null;
  }

  /** Learns the partitioning and a partition's leader from an answer (`leader`: it came from one). */
  private learn(headers: HeaderLookup, origin: string, leader: boolean): void {
    const announced = headers.get("x-ballot-partitions");
    if (announced && announced !== this.partitioning?.header) {
      const m = /^(\d{1,5}) (\S+)$/.exec(announced);
      try {
        if (m)
          this.partitioning = {
            header: announced,
            partitioner: new Partitioner(Number(m[1]), parsePartitionRule(m[2]!)),
          };
        this.partitionLeaders.clear();
      } catch {
        // An announcement this client does not understand: route as for one partition.
      }
    }
    const p = headers.get("x-ballot-partition");
    if (leader && p !== null && this.partitioning && /^\d{1,5}$/.test(p))
      this.partitionLeaders.set(Number(p), origin);
  }

  /** Preferred first, then the configured endpoints in order; `last` (a node that just failed) goes to the end. */
  private order(last?: string, key?: string): string[] {
    const out: string[] = [];
    const preferred =
      key !== undefined && this.partitioning
        ? (this.partitionLeaders.get(this.partitioning.partitioner.of(key)) ?? null)
        : this.preferred;
    if (preferred && preferred !== last) out.push(preferred);
    for (const e of this.endpoints) if (!out.includes(e) && e !== last) out.push(e);
    if (last && !out.includes(last)) out.push(last);
    return out;
  }

  private forget(origin: string): void {
    if (this.preferred === origin) this.preferred = null;
    for (const [p, o] of this.partitionLeaders) if (o === origin) this.partitionLeaders.delete(p);
  }

  /**
   * One attempt at one endpoint, following redirects. With `stream`, a 2xx answer is returned with
   * its body unread and without a timeout (the caller watches the stream).
   */
  private async attempt(
    base: string,
    spec: CallSpec,
    headers: Record<string, string>,
    body: string | undefined,
    deadline: number,
    stream: boolean,
  ): Promise<Attempt> {
    let url = new URL(spec.path, base);
    for (let hop = 0; hop <= MAX_REDIRECTS; hop++) {
      const limit = Math.min(
        spec.attemptTimeoutMs ?? this.opts.attemptTimeoutMs,
        deadline - performance.now(),
      );
      const { controller, dispose } = linkedController(spec.signal);
      const timer = Number.isFinite(limit)
        ? setTimeout(
            () => controller.abort(new BallotClientError(0, "timeout", "the attempt timed out")),
            Math.max(1, limit),
          )
        : undefined;
      const stopWatching = spec.liveness
        ? this.watchLiveness(url.origin, spec.liveness, controller)
        : undefined;
      let res: Response;
      let keptStream = false;
      try {
        const request = this.opts.request;
        if (request && !stream) {
          const r = await request(url, { method: spec.method, headers, body, signal: controller.signal });
          if (REDIRECTS.has(r.status)) {
            const location = r.headers.get("location");
            if (location) {
              url = new URL(location, url);
              continue;
            }
          }
          return {
            kind: "response",
            status: r.status,
            headers: r.headers,
            body: parseBody(r.text),
            origin: url.origin,
          };
        }
        res = await this.opts.fetch(url, {
          method: spec.method,
          headers,
          body,
          redirect: "manual",
          signal: controller.signal,
        });
        if (stream && res.status >= 200 && res.status < 300) {
          // The stream lives on: the caller owns it, and aborting `spec.signal` ends it.
          keptStream = true;
          return { kind: "stream", response: res, origin: url.origin };
        }
        const text = await res.text();
        if (REDIRECTS.has(res.status)) {
          const location = res.headers.get("location");
          if (location) {
            url = new URL(location, url);
            continue;
          }
        }
        return {
          kind: "response",
          status: res.status,
          headers: res.headers,
          body: parseBody(text),
          origin: url.origin,
        };
      } catch (e) {
        if (spec.signal?.aborted) throw abortReason(spec.signal);
        return { kind: "network", sent: maybeSent(e), error: e, origin: url.origin };
      } finally {
        clearTimeout(timer);
        stopWatching?.();
        // A stream's controller stays linked to the caller's signal, which ends the stream.
        if (!keptStream) dispose();
      }
    }
    // A redirect loop never reached a node that applies writes: nothing was applied.
    return {
      kind: "response",
      status: 503,
      headers: new Headers(),
      body: { error: { code: "unavailable", message: "too many redirects" } },
      origin: url.origin,
    };
  }

  /**
   * Probes `origin`'s /ready while an attempt waits there (see CallSpec.liveness); aborts the
   * attempt as a timeout once no probe has answered ready for `deadAfterMs`. Returns the stopper.
   */
  private watchLiveness(
    origin: string,
    l: NonNullable<CallSpec["liveness"]>,
    attempt: AbortController,
  ): () => void {
    let lastReady = performance.now();
    const probes = new AbortController();
    const probe = (): void => {
      const sentAt = performance.now();
      const one = linkedController(probes.signal, AbortSignal.timeout(l.deadAfterMs));
      this.opts
        .fetch(new URL("/ready", origin), {
          method: "GET",
          redirect: "manual",
          signal: one.controller.signal,
        })
        .then(async (r) => {
          await r.body?.cancel();
          if (r.ok) lastReady = Math.max(lastReady, sentAt);
        })
        .catch(() => undefined)
        .finally(one.dispose);
    };
    const timer = setInterval(() => {
      if (performance.now() - lastReady >= l.deadAfterMs) {
        attempt.abort(
          new BallotClientError(0, "timeout", `${origin} stopped answering ready while holding the request`),
        );
        return;
      }
      probe();
    }, l.everyMs);
    return () => {
      clearInterval(timer);
      probes.abort();
    };
  }

  /** Runs a request with leader discovery and retries (see the file comment for the rules). */
  async call(spec: CallSpec): Promise<CallResult> {
    return this.run(spec);
  }

  /**
   * Opens a streaming GET (server-sent events) at one endpoint that answers 2xx: one pass over the
   * endpoints (the caller reconnects with its own backoff). Throws the last error otherwise.
   */
  async openStream(
    path: string,
    headers: Record<string, string>,
    signal: AbortSignal,
    avoid?: string,
  ): Promise<StreamResult> {
    let last: BallotClientError | undefined;
    for (const base of this.order(avoid)) {
      if (signal.aborted) throw abortReason(signal);
      const a = await this.attempt(
        base,
        { method: "GET", path, write: false, signal },
        { Accept: "text/event-stream", ...headers },
        undefined,
        performance.now() + this.opts.attemptTimeoutMs,
        true,
      );
      if (a.kind === "stream") return { response: a.response, origin: a.origin };
      if (a.kind === "network") {
        this.forget(a.origin);
        last = new BallotClientError(
          503,
          "unavailable",
          `${a.origin}: ${describe(a.error)}`,
          {},
          { cause: a.error },
        );
        continue;
      }
      const err = errorFromResponse(a.status, a.body);
      if (NOTHING_APPLIED.has(a.status) || MAYBE_APPLIED.has(a.status) || a.status >= 500) {
        this.forget(a.origin);
        last = err;
        continue;
      }
      throw err;
    }
    throw last ?? new BallotClientError(503, "unavailable", "no endpoint answered");
  }

  private async run(spec: CallSpec): Promise<CallResult> {
    const start = performance.now();
    const deadline = start + (spec.timeoutMs ?? this.opts.timeoutMs);
    const idem = spec.write ? randomUUID() : undefined;
    const headers: Record<string, string> = { ...spec.headers };
    if (idem) headers["Idempotency-Key"] = idem;
    const body = spec.body === undefined ? undefined : JSON.stringify(spec.body);
    if (body !== undefined) headers["Content-Type"] = "application/json";

    let maybeApplied = false;
    let lastError: BallotClientError | undefined;
    let backoff = 50;
    let failedLast: string | undefined;
    // An attempt started in the last moments would only be cut off by the deadline, and a write cut
    // off after it was sent has an unknown outcome: better not to start it.
    const minAttempt = Math.min(MIN_ATTEMPT_MS, (deadline - start) / 4);
    const outOfTime = (): boolean =>
      deadline - performance.now() < minAttempt || spec.signal?.aborted === true;
    const finalError = (): unknown => {
      if (spec.write && maybeApplied) {
        return new BallotClientError(
          504,
          "outcome_unknown",
          `the write may or may not have been applied${lastError ? ` (last: ${lastError.message})` : ""}`,
          {},
          { cause: spec.signal?.aborted ? spec.signal.reason : lastError },
        );
      }
      if (spec.signal?.aborted) return abortReason(spec.signal);
      return lastError ?? new BallotClientError(503, "unavailable", "no endpoint answered in time");
    };

    while (!outOfTime()) {
      let hint: number | undefined;
      /** An overloaded node's own estimate of when a slot frees (429 retryAfterMs): waited at least. */
      let floor = 0;
      for (const base of this.order(failedLast, spec.key)) {
        if (outOfTime()) break;
        let a: Attempt;
        try {
          a = await this.attempt(base, spec, headers, body, deadline, false);
        } catch {
          // The caller's signal aborted this attempt: it may already have been sent.
          if (spec.write) maybeApplied = true;
          throw finalError();
        }
        if (a.kind === "stream") throw new Error("unreachable: not a stream request");
        if (a.kind === "network") {
          this.forget(a.origin);
          failedLast = a.origin;
          if (a.sent && spec.write) maybeApplied = true;
          lastError = new BallotClientError(
            503,
            "unavailable",
            `${a.origin}: ${describe(a.error)}`,
            {},
            { cause: a.error },
          );
          continue;
        }
        if (a.status >= 200 && a.status < 300) {
          // Only the leader answers a write; a redirect target is the leader too.
          const leader = spec.write || a.origin !== base;
          this.learn(a.headers, a.origin, leader);
          if (leader && (spec.key === undefined || !this.partitioning)) this.preferred = a.origin;
          return { status: a.status, headers: a.headers, body: a.body, origin: a.origin };
        }
        const err = errorFromResponse(a.status, a.body);
        if (NOTHING_APPLIED.has(a.status)) {
          this.forget(a.origin);
          failedLast = a.origin;
          lastError = err;
          const ra = retryAfterMs(a.headers);
          if (ra !== undefined) hint = hint === undefined ? ra : Math.min(hint, ra);
          const precise = (a.body as { error?: { retryAfterMs?: unknown } } | undefined)?.error?.retryAfterMs;
          if (a.status === 429 && typeof precise === "number" && Number.isFinite(precise))
            floor = Math.max(floor, Math.min(precise, 5000));
          continue;
        }
        if (MAYBE_APPLIED.has(a.status)) {
          this.forget(a.origin);
          failedLast = a.origin;
          if (spec.write) maybeApplied = true;
          lastError = err;
          continue;
        }
        const leader = spec.write || a.origin !== base;
        this.learn(a.headers, a.origin, leader);
        if (leader && (spec.key === undefined || !this.partitioning)) this.preferred = a.origin;
        if (spec.accept?.includes(a.status)) {
          return { status: a.status, headers: a.headers, body: a.body, origin: a.origin };
        }
        // A definite answer (4xx, 500): retrying would not change it. A write that was retried may
        // meet its own first outcome here, which is the outcome (the server answers it by key).
        throw err;
      }
      // A node without a leader says "1 s" in whole seconds while an election takes a fraction of
      // that, so its hint only shortens the backoff; an overloaded node's retryAfterMs is what
      // its queue needs to drain, so retrying sooner would only be refused again.
      const pause = Math.min(
        Math.max(Math.min(backoff, hint ?? backoff), floor),
        deadline - performance.now(),
      );
      backoff = Math.min(backoff * 2, 1000);
      await sleep(pause, spec.signal);
    }
    throw finalError();
  }
}
