/**
 * The election API (`Election` from `ballot/client`) on an existing etcd v3 cluster, built on
 * etcd's low-level primitives: a lease with our own keepalive loop, a create-only put of one
 * candidate key per campaign, a range sorted by creation revision, and watches.
 *
 * Layout (the same as etcd's `concurrency` package, so `etcdctl elect` candidates queue with
 * ours when `prefix` is empty): the candidate key is `${prefix}${name}/${leaseIdHex}`, its value
 * the JSON text of the campaign value, and it is attached to the candidacy's lease. Candidates
 * are ordered by their key's creation revision; the lowest leads. A waiting candidate watches
 * only the deletion of its immediate predecessor (no thundering herd) and re-checks after each.
 * The fencing token is the leader's creation revision: it grows with every new leader.
 *
 * Owns: the lease of each candidacy (granted, kept alive, revoked here), the candidate key, and
 * the decision "this holder leads". Must never let a holder believe it leads once its lease may
 * have expired on the server: the deadline is the LeaseClock's (last keepalive *send* time + TTL,
 * less drift and margin), enforced by a timer and re-checked synchronously by assertLeader().
 * That is the bug etcd's own Campaign had (a candidate whose lease expired while it waited was
 * still told it had won). Must never rely on etcd3's automatic keepalive (it does not report
 * when each keepalive was sent) nor on etcd3's `Election` class (it gives no deadline).
 */
import { hostname } from "node:os";
import type {
  Etcd3,
  IDuplexStream,
  IKeyValue,
  ILeaseKeepAliveRequest,
  ILeaseKeepAliveResponse,
  ITxnResponse,
  Watcher,
} from "etcd3";
import type {
  CampaignOptions,
  Election,
  ElectionJob,
  ElectionLeader,
  ElectionRunHandle,
  HeldLeadership,
  RunWhileLeaderOptions,
} from "../client/election.js";
import { LeaseClock } from "../client/lease-clock.js";
import {
  MAX_PARTITIONS,
  PartitionedElection,
  partitionElectionName,
  rosterElectionName,
} from "../client/partitioned-election.js";

/** Options of {@link etcdElection}. */
export interface EtcdElectionOptions {
  /**
   * TTL of each candidacy's lease, in whole seconds (etcd leases have no fractions), ≥ 1.
   * Default 10. A holder that is cut off from etcd learns it lost leadership about this long after
   * its last successful keepalive; another candidate is elected only after the lease expires.
   * Note that etcd raises TTLs below its own minimum (1.5 × its election timeout, rounded up).
   */
  readonly ttlSeconds?: number;
  /** Prefix of every election's keys. Default `ballot-election/`. */
  readonly prefix?: string;
}

/** Leadership was lost, is in doubt (the lease may have expired) or was given up. */
export class LeadershipLostError extends Error {
  readonly code = "BALLOT_ERR_LEADERSHIP_LOST";
  constructor(
    readonly election: string,
    readonly reason: string,
  ) {
    super(`leadership of election "${election}" lost: ${reason}`);
    this.name = "LeadershipLostError";
  }
}

/** The candidacy was withdrawn while waiting (its lease expired or was revoked, or its key deleted). */
export class CandidacyLostError extends Error {
  readonly code = "BALLOT_ERR_CANDIDACY_LOST";
  constructor(
    readonly election: string,
    readonly reason: string,
  ) {
    super(`candidacy in election "${election}" withdrawn: ${reason}`);
    this.name = "CandidacyLostError";
  }
}

const DEFAULT_TTL_SECONDS = 10;
const DEFAULT_PREFIX = "ballot-election/";
const DEFAULT_RETRY_DELAY_MS = 500;
/** Longest name, like Ballot's own elections. */
const NAME_MAX_BYTES = 256;
/** Deadline of each unary request: a hung request must not hold up a campaign, resign or withdrawal forever. */
const REQUEST_TIMEOUT_MS = 5_000;
/** Keepalives in flight without an answer before the stream is presumed stuck and replaced. */
const KEEPALIVE_UNANSWERED_MAX = 3;
/** Pause before retrying to open a keepalive stream that failed to open. */
const KEEPALIVE_RETRY_MS = 100;
/** How many of our own recent values a watch event may carry without being someone else's write. */
const OWN_VALUES_MAX = 16;

/**
 * A named election on an etcd v3 cluster, through the `etcd3` client (an optional peer
 * dependency). Several processes (each with its own client) that call this with the same name
 * and prefix take part in the same election.
 *
 * @param client a connected `Etcd3` client; it is not closed here.
 * @param name the election's name, 1–256 bytes (UTF-8).
 * @throws TypeError / RangeError on bad input, before anything is sent.
 */
export function etcdElection(
  client: Etcd3,
  name: string,
  opts: EtcdElectionOptions & { readonly partitions: number },
): PartitionedElection;
export function etcdElection(client: Etcd3, name: string, opts?: EtcdElectionOptions): Election;
export function etcdElection(
  client: Etcd3,
  name: string,
  opts: EtcdElectionOptions & { readonly partitions?: number } = {},
): Election | PartitionedElection {
  if (client === null || typeof client !== "object")
    throw new TypeError("etcdElection: client must be an Etcd3 client");
  if (typeof name !== "string" || name.length === 0)
    throw new TypeError("etcdElection: name must be a non-empty string");
  if (Buffer.byteLength(name) > NAME_MAX_BYTES)
    throw new RangeError(`etcdElection: name must be at most ${NAME_MAX_BYTES} bytes`);
  const ttlSeconds = opts.ttlSeconds ?? DEFAULT_TTL_SECONDS;
  if (typeof ttlSeconds !== "number" || !Number.isInteger(ttlSeconds) || ttlSeconds < 1)
    throw new RangeError(
      `etcdElection: ttlSeconds must be a whole number of seconds ≥ 1 (etcd leases have whole-second TTLs), got ${String(ttlSeconds)}`,
    );
  const prefix = opts.prefix ?? DEFAULT_PREFIX;
  if (typeof prefix !== "string") throw new TypeError("etcdElection: prefix must be a string");
  if (opts.partitions === undefined) return new EtcdElection(client, name, `${prefix}${name}/`, ttlSeconds);
  // The partitions' names ("NAME:p3") must fit too: checked here, before anything is sent.
  if (
    Buffer.byteLength(rosterElectionName(name)) > NAME_MAX_BYTES ||
    Buffer.byteLength(partitionElectionName(name, MAX_PARTITIONS)) > NAME_MAX_BYTES
  )
    throw new RangeError(
      `etcdElection: name must leave room for the partition suffix (at most ${NAME_MAX_BYTES} bytes in all)`,
    );
  return new PartitionedElection(
    name,
    opts.partitions,
    (n) => new EtcdElection(client, n, `${prefix}${n}/`, ttlSeconds),
  );
}

class EtcdElection implements Election {
  constructor(
    readonly client: Etcd3,
    readonly name: string,
    /** Every candidate key of this election starts with it. */
    readonly keyPrefix: string,
    readonly ttlSeconds: number,
  ) {}

  /** A candidate key of this election (not of an election whose name extends ours with "/..."). */
  isCandidateKey(key: Buffer | string): boolean {
    const k = key.toString();
    return k.startsWith(this.keyPrefix) && /^[0-9a-f]+$/.test(k.slice(this.keyPrefix.length));
  }

  /** gRPC call options giving one request its deadline. */
  callOptions(): { deadline: number } {
    return { deadline: Date.now() + REQUEST_TIMEOUT_MS };
  }

  async campaign(value: unknown, opts: CampaignOptions = {}): Promise<HeldLeadership> {
    return (await this.enter(value, opts.signal)).lead();
  }

  /** campaign() up to the moment it leads; the caller calls lead() on the result at once. */
  private async enter(value: unknown, signal: AbortSignal | undefined): Promise<Candidacy> {
    const json = encodeValue(value);
    signal?.throwIfAborted();
    // The send time of the grant starts the lease's clock, like every later keepalive.
    const sentAtMs = performance.now();
    const grant = await this.client.leaseClient.leaseGrant({ TTL: this.ttlSeconds }, this.callOptions());
    const grantedTtlS = Number(grant.TTL);
    if (grant.error || !(grantedTtlS > 0))
      throw new Error(`etcd refused to grant a lease: ${grant.error || "TTL 0"}`);
    const candidacy = new Candidacy(this, grant.ID, grantedTtlS * 1000, sentAtMs);
    const onAbort = (): void => {
      const reason: unknown = signal?.reason;
      candidacy.lose(
        reason instanceof Error ? reason : new CandidacyLostError(this.name, "the campaign was aborted"),
      );
    };
    signal?.addEventListener("abort", onAbort, { once: true });
    try {
      if (signal?.aborted) onAbort();
      await candidacy.create(json);
      await candidacy.waitForTurn();
      return candidacy;
    } catch (e) {
      candidacy.lose(e instanceof Error ? e : new Error(String(e)));
      // Withdraw: the key and the lease go now, not when the TTL runs out. If etcd cannot be
      // reached, keepalives have stopped and the lease expires by itself.
      await candidacy.withdraw().catch(() => undefined);
      if (signal?.aborted) throw signal.reason;
      throw candidacy.lostReason() ?? e;
    } finally {
      signal?.removeEventListener("abort", onAbort);
    }
  }

  async leader(): Promise<ElectionLeader | null> {
    const res = await this.client
      .getAll()
      .prefix(this.keyPrefix)
      .sort("Create", "Ascend")
      .options(this.callOptions())
      .exec();
    const kv = res.kvs.find((x) => this.isCandidateKey(x.key));
    return kv ? leaderOf(kv) : null;
  }

  async candidates(): Promise<number> {
    const keys = await this.client.getAll().prefix(this.keyPrefix).options(this.callOptions()).keys();
    return keys.filter((k) => this.isCandidateKey(k)).length;
  }

  observe(opts: { signal?: AbortSignal } = {}): AsyncIterable<ElectionLeader | null> {
    return { [Symbol.asyncIterator]: () => this.observeIterator(opts.signal) };
  }

  /**
   * Keeps every candidate of the election from one range plus the watch that follows it, so
   * each change is seen at a consistent revision. A slow consumer sees the latest leader, not
   * every intermediate one (bounded memory).
   */
  private async *observeIterator(signal: AbortSignal | undefined): AsyncGenerator<ElectionLeader | null> {
    if (signal?.aborted) return;
    const candidates = new Map<string, IKeyValue>();
    let watcher: Watcher | null = null;
    let last: ElectionLeader | null = null;
    let latest: ElectionLeader | null = null;
    let failure: unknown = null;
    let wake: (() => void) | null = null;
    let closed = false;
    const notify = (): void => {
      const w = wake;
      wake = null;
      w?.();
    };
    const current = (): ElectionLeader | null => {
      let head: IKeyValue | null = null;
      for (const kv of candidates.values())
        if (head === null || Number(kv.create_revision) < Number(head.create_revision)) head = kv;
      return head ? leaderOf(head) : null;
    };
    const resync = async (): Promise<void> => {
      const res = await this.client.getAll().prefix(this.keyPrefix).options(this.callOptions()).exec();
      candidates.clear();
      for (const kv of res.kvs) if (this.isCandidateKey(kv.key)) candidates.set(kv.key.toString(), kv);
      latest = current();
      // The consumer may have left while the range was in flight: no watch nobody would cancel.
      if (signal?.aborted || closed) return;
      const w = this.client
        .watch()
        .prefix(this.keyPrefix)
        .startRevision(String(Number(res.header.revision) + 1))
        .watcher();
      watcher = w;
      w.on("data", (r) => {
        if (watcher !== w) return;
        for (const ev of r.events) {
          if (!this.isCandidateKey(ev.kv.key)) continue;
          if (ev.type === "Put") candidates.set(ev.kv.key.toString(), ev.kv);
          else candidates.delete(ev.kv.key.toString());
        }
        latest = current();
        notify();
      });
      // A cancelled watch (e.g. its revision was compacted) is replaced by a fresh range + watch.
      w.on("error", () => {
        if (watcher !== w) return;
        watcher = null;
        void w.cancel().catch(() => undefined);
        resync().then(notify, (e: unknown) => {
          failure = e;
          notify();
        });
      });
    };
    const onAbort = (): void => notify();
    signal?.addEventListener("abort", onAbort, { once: true });
    try {
      await resync();
      last = latest;
      yield last;
      while (!signal?.aborted) {
        if (failure !== null) throw failure;
        if (!sameLeader(latest, last)) {
          last = latest;
          yield last;
          continue;
        }
        await new Promise<void>((resolve) => {
          wake = resolve;
        });
      }
    } finally {
      closed = true;
      signal?.removeEventListener("abort", onAbort);
      const w = watcher as Watcher | null;
      watcher = null;
      await w?.cancel().catch(() => undefined);
    }
  }

  runWhileLeader(fn: ElectionJob, opts: RunWhileLeaderOptions = {}): ElectionRunHandle {
    if (typeof fn !== "function") throw new TypeError("runWhileLeader: fn must be a function");
    const value = opts.value ?? { pid: process.pid, host: hostname() };
    encodeValue(value); // bad input fails here, not in the loop
    const retryDelayMs = opts.retryDelayMs ?? DEFAULT_RETRY_DELAY_MS;
    if (typeof retryDelayMs !== "number" || !Number.isFinite(retryDelayMs) || retryDelayMs < 0)
      throw new RangeError(
        `runWhileLeader: retryDelayMs must be a finite number ≥ 0, got ${String(retryDelayMs)}`,
      );
    const onError =
      opts.onError ??
      ((e: unknown) =>
        console.error(`ballot/etcd election "${this.name}": ${e instanceof Error ? e.message : String(e)}`));
    const stopping = new AbortController();
    const report = (e: unknown): void => {
      try {
        onError(e);
      } catch {
        // A throwing error handler must not end the loop.
      }
    };
    const loop = async (): Promise<void> => {
      while (!stopping.signal.aborted) {
        let candidacy: Candidacy;
        try {
          candidacy = await this.enter(value, stopping.signal);
        } catch (e) {
          if (stopping.signal.aborted) break;
          report(e);
          await sleep(retryDelayMs, stopping.signal);
          continue;
        }
        const held = candidacy.lead();
        // stop(): the job's signal aborts first; the key goes only after the job has finished, so
        // the next leader never runs its job next to ours.
        const onStop = (): void => candidacy.lose("stopped");
        stopping.signal.addEventListener("abort", onStop, { once: true });
        if (stopping.signal.aborted) onStop(); // stop() came while enter() was resolving
        let failed = false;
        try {
          await fn(held.signal, { fencingToken: held.fencingToken, assertLeader: () => held.assertLeader() });
        } catch (e) {
          if (!held.signal.aborted) {
            failed = true;
            report(e);
          }
        }
        // A job that returns on its own while leading keeps the leadership until it is lost, like
        // RaftNode's leadership: it is not called again in the same period.
        if (!failed) await untilAborted(held.signal);
        stopping.signal.removeEventListener("abort", onStop);
        try {
          await held.resign();
        } catch (e) {
          // The lease is no longer kept alive, so it expires by itself within its TTL.
          report(e);
        }
        if (failed) await sleep(retryDelayMs, stopping.signal);
      }
    };
    const running = loop();
    return {
      stop: async () => {
        stopping.abort(new Error("runWhileLeader stopped"));
        await running;
      },
    };
  }
}

/**
 * One campaign: its lease and keepalive loop, its candidate key, and — once it leads — the held
 * leadership. Lives until it is lost or withdrawn; it is never revived (a new campaign gets a new
 * lease and key, hence a new, higher fencing token).
 */
class Candidacy {
  readonly clock: LeaseClock;
  readonly key: string;
  /** Creation revision of our key (0 until created): our place in the queue and our fencing token. */
  createRevision = 0;
  private leading = false;
  private lost: Error | null = null;
  private readonly leaderAbort = new AbortController();
  private deadlineTimer: NodeJS.Timeout | null = null;
  private ownWatcher: Watcher | null = null;
  /** Values we wrote to our key: a watch event carrying one of them is ours, anything else is a foreign write. */
  private readonly ownValues: string[] = [];
  private readonly wakers = new Set<() => void>();
  private withdrawing: Promise<void> | null = null;
  // The keepalive loop.
  private kaStream: IDuplexStream<ILeaseKeepAliveRequest, ILeaseKeepAliveResponse> | null = null;
  /** Send times of keepalives not yet answered, oldest first: etcd answers a stream's keepalives in order. */
  private kaUnanswered: number[] = [];
  private kaTimer: NodeJS.Timeout | null = null;
  private kaStopped = false;

  constructor(
    private readonly el: EtcdElection,
    readonly leaseId: string,
    ttlMs: number,
    sentAtMs: number,
  ) {
    this.clock = new LeaseClock(ttlMs, sentAtMs);
    this.key = `${el.keyPrefix}${BigInt(leaseId).toString(16)}`;
    this.scheduleKeepAlive(this.clock.nextKeepAliveDelay());
  }

  lostReason(): Error | null {
    return this.lost;
  }

  /** Puts our key, attached to our lease, only if it does not exist. */
  async create(json: string): Promise<void> {
    this.throwIfLost();
    const { client } = this.el;
    this.ownValues.push(json);
    const res = await client
      .if(this.key, "Create", "==", 0)
      .then(client.put(this.key).value(json).lease(this.leaseId))
      .else(client.get(this.key))
      .options(this.el.callOptions())
      .commit();
    this.throwIfLost();
    let createRevision: number;
    if (res.succeeded) {
      createRevision = Number(res.header.revision);
    } else {
      // Only a retried put of ours can have created it (the key names our own fresh lease).
      const kv = res.responses[0]?.response_range?.kvs[0];
      if (!kv || kv.lease !== this.leaseId)
        throw new Error(`candidate key ${this.key} exists and is not ours`);
      createRevision = Number(kv.create_revision);
    }
    if (!Number.isSafeInteger(createRevision) || createRevision <= 0)
      throw new Error(`etcd returned an unusable revision ${createRevision}`);
    this.createRevision = createRevision;
    await this.watchOwnKey();
  }

  /** Waits until no candidate created before us is left (etcd's waitDeletes), and our lease is certain. */
  async waitForTurn(): Promise<void> {
    const { client } = this.el;
    for (;;) {
      this.throwIfLost();
      // One txn, after our own watch started: our key still exists as we created it (nobody
      // writes it while we campaign), and who was created before us.
      const res = await client
        .if(this.key, "Create", "==", this.createRevision)
        .and(this.key, "Mod", "==", this.createRevision)
        .then(
          client
            .getAll()
            .prefix(this.el.keyPrefix)
            .sort("Create", "Descend")
            .maxCreateRevision(this.createRevision - 1),
        )
        .options(this.el.callOptions())
        .commit();
      this.throwIfLost();
      if (!res.succeeded) {
        this.lose(
          "our candidate key was deleted or changed (lease expired or revoked, or someone else wrote it)",
        );
        this.throwIfLost();
      }
      const before = (res.responses[0]?.response_range?.kvs ?? []).filter((kv) =>
        this.el.isCandidateKey(kv.key),
      );
      const predecessor = before[0];
      if (!predecessor) break;
      await this.waitDeleted(predecessor.key.toString(), Number(res.header.revision) + 1);
    }
    // At the head of the queue; leadership starts only while the lease is certainly alive.
    while (!this.clock.isValid()) {
      this.throwIfLost();
      await this.nextWake();
    }
    this.throwIfLost();
  }

  /** Turns the candidacy into held leadership. */
  lead(): HeldLeadership {
    this.leading = true;
    this.armDeadline();
    const signal = this.leaderAbort.signal;
    const assertLeader = (): void => {
      if (!this.lost && !this.clock.isValid(performance.now()))
        this.lose("the lease may have expired: no keepalive succeeded in time");
      if (this.lost) throw this.lost;
    };
    return {
      name: this.el.name,
      fencingToken: this.createRevision,
      signal,
      assertLeader,
      validUntil: () => (this.lost ? Number.NEGATIVE_INFINITY : this.clock.validUntil()),
      proclaim: async (value: unknown) => {
        const json = encodeValue(value);
        assertLeader();
        this.ownValues.push(json);
        if (this.ownValues.length > OWN_VALUES_MAX) this.ownValues.shift();
        const { client } = this.el;
        let res: ITxnResponse;
        try {
          res = await client
            .if(this.key, "Create", "==", this.createRevision)
            .then(client.put(this.key).value(json).lease(this.leaseId))
            .options(this.el.callOptions())
            .commit();
        } catch (e) {
          if (isLeaseNotFound(e)) this.lose("the lease expired or was revoked");
          throw e;
        }
        if (!res.succeeded) this.lose("our candidate key was deleted");
        assertLeader();
      },
      resign: () => this.withdraw(),
    };
  }

  /**
   * Marks the candidacy lost (idempotent): aborts the leader's signal, stops keepalives (so the
   * lease expires by itself within its TTL even if etcd cannot be told) and wakes every waiter.
   * Does not delete the key: that is withdraw(), which runWhileLeader calls only after the job ended.
   */
  lose(why: string | Error): void {
    if (this.lost) return;
    this.lost =
      typeof why !== "string"
        ? why
        : this.leading
          ? new LeadershipLostError(this.el.name, why)
          : new CandidacyLostError(this.el.name, why);
    this.clock.lost();
    this.stopKeepAlive();
    if (this.deadlineTimer) clearTimeout(this.deadlineTimer);
    this.deadlineTimer = null;
    const w = this.ownWatcher;
    this.ownWatcher = null;
    void w?.cancel().catch(() => undefined);
    this.leaderAbort.abort(this.lost);
    for (const wake of [...this.wakers]) wake();
  }

  /** Gives up: loses, deletes our key (if still ours) and revokes the lease; resolves once etcd has done both. */
  withdraw(): Promise<void> {
    this.lose("resigned");
    this.withdrawing ??= (async () => {
      const { client } = this.el;
      if (this.createRevision > 0)
        await client
          .if(this.key, "Create", "==", this.createRevision)
          .then(client.delete().key(this.key))
          .options(this.el.callOptions())
          .commit();
      try {
        await client.leaseClient.leaseRevoke({ ID: this.leaseId }, this.el.callOptions());
      } catch (e) {
        if (!isLeaseNotFound(e)) throw e;
      }
    })().catch((e: unknown) => {
      this.withdrawing = null; // a later resign() tries again
      throw e;
    });
    return this.withdrawing;
  }

  private throwIfLost(): void {
    if (this.lost) throw this.lost;
  }

  /** Resolves at the next keepalive answer, loss, or watch event of interest. */
  private nextWake(): Promise<void> {
    return new Promise((resolve) => {
      const wake = (): void => {
        this.wakers.delete(wake);
        resolve();
      };
      this.wakers.add(wake);
    });
  }

  private wakeAll(): void {
    for (const wake of [...this.wakers]) wake();
  }

  /** Resolves when `key` is deleted (or its watch fails: the caller re-checks either way); rejects when lost. */
  private async waitDeleted(key: string, fromRevision: number): Promise<void> {
    let deleted = false;
    // watcher() attaches synchronously, so no event can slip by before the handlers are on.
    const w = this.el.client.watch().key(key).startRevision(String(fromRevision)).only("delete").watcher();
    const done = (): void => {
      deleted = true;
      this.wakeAll();
    };
    w.on("delete", done);
    w.on("error", done);
    try {
      while (!deleted) {
        this.throwIfLost();
        await this.nextWake();
      }
      this.throwIfLost();
    } finally {
      await w.cancel().catch(() => undefined);
    }
  }

  /**
   * Watches our own key: deleted, re-created, or written by someone else means lost. The watch
   * starts at the current revision, never at a past one: etcd serves a watch that starts in the
   * past from its "unsynced" group, which it catches up only every 100 ms, so our own deletion
   * could reach us after our successor heard of it. The caller closes the gap by reading the key
   * after this resolves (waitForTurn's txn, or verifyOwnKey()).
   */
  private async watchOwnKey(): Promise<void> {
    this.throwIfLost();
    const w = this.el.client.watch().key(this.key).watcher();
    this.ownWatcher = w;
    let connected = false;
    w.once("connected", () => {
      connected = true;
      this.wakeAll();
    });
    w.on("delete", () => {
      if (this.ownWatcher === w)
        this.lose("our candidate key was deleted (lease expired or revoked, or deleted)");
    });
    w.on("put", (kv: IKeyValue) => {
      if (this.ownWatcher !== w) return;
      if (
        Number(kv.create_revision) !== this.createRevision ||
        kv.lease !== this.leaseId ||
        !this.ownValues.includes(kv.value.toString())
      )
        this.lose("our candidate key was changed by someone else");
    });
    // The watch was cancelled by etcd: watch again, then re-read the key.
    w.on("error", () => {
      if (this.ownWatcher !== w) return;
      this.ownWatcher = null;
      void w.cancel().catch(() => undefined);
      this.watchOwnKey()
        .then(() => this.verifyOwnKey())
        // Cannot tell: the lease clock still bounds the leadership, and the next keepalive answer
        // reports a lost lease.
        .catch(() => undefined);
    });
    const deadline = performance.now() + REQUEST_TIMEOUT_MS;
    const timer = setTimeout(() => this.wakeAll(), REQUEST_TIMEOUT_MS);
    try {
      while (!connected) {
        this.throwIfLost();
        if (performance.now() >= deadline) throw new Error("etcd did not start a watch in time");
        await this.nextWake();
      }
    } finally {
      clearTimeout(timer);
    }
  }

  /** Loses the candidacy unless our key is still there as we wrote it. */
  private async verifyOwnKey(): Promise<void> {
    const res = await this.el.client.get(this.key).options(this.el.callOptions()).exec();
    const kv = res.kvs[0];
    if (
      !kv ||
      Number(kv.create_revision) !== this.createRevision ||
      kv.lease !== this.leaseId ||
      !this.ownValues.includes(kv.value.toString())
    )
      this.lose("our candidate key was deleted or changed");
  }

  /** Aborts the leadership when the lease clock runs out without a renewal. */
  private armDeadline(): void {
    if (this.lost) return;
    const delay = this.clock.validUntil() - performance.now();
    if (delay <= 0) {
      this.lose("the lease may have expired: no keepalive succeeded in time");
      return;
    }
    this.deadlineTimer = setTimeout(() => {
      this.deadlineTimer = null;
      // A keepalive may have moved the deadline since the timer was set.
      this.armDeadline();
    }, Math.ceil(delay));
  }

  // ---- keepalive loop: its own, so that the send time of every keepalive feeds the LeaseClock ----

  private scheduleKeepAlive(delayMs: number): void {
    if (this.kaStopped) return;
    this.kaTimer = setTimeout(() => {
      this.kaTimer = null;
      void this.sendKeepAlive();
    }, delayMs);
  }

  private async sendKeepAlive(): Promise<void> {
    if (this.kaStopped) return;
    // Unanswered keepalives pile up on a stream that is stuck (or whose peer is unreachable).
    if (this.kaUnanswered.length >= KEEPALIVE_UNANSWERED_MAX) this.dropKeepAliveStream();
    let stream = this.kaStream;
    if (!stream) {
      try {
        stream = await this.openKeepAliveStream();
      } catch {
        // Retried soon; meanwhile the lease clock keeps running out, which is what protects us.
        this.scheduleKeepAlive(Math.min(KEEPALIVE_RETRY_MS, this.clock.nextKeepAliveDelay()));
        return;
      }
      if (this.kaStopped) return;
    }
    this.kaUnanswered.push(performance.now()); // the send time, taken before the write
    try {
      stream.write({ ID: this.leaseId });
    } catch {
      this.dropKeepAliveStream();
    }
    this.scheduleKeepAlive(this.clock.nextKeepAliveDelay());
  }

  private async openKeepAliveStream(): Promise<
    IDuplexStream<ILeaseKeepAliveRequest, ILeaseKeepAliveResponse>
  > {
    const stream = await this.el.client.leaseClient.leaseKeepAlive();
    if (this.kaStopped) {
      cancelQuietly(stream);
      return stream;
    }
    stream.on("data", (res) => {
      if (this.kaStream !== stream) return;
      const sentAtMs = this.kaUnanswered.shift();
      if (!(Number(res.TTL) > 0)) {
        this.lose("the lease expired or was revoked");
        return;
      }
      if (sentAtMs !== undefined) this.clock.renewed(sentAtMs);
      this.wakeAll();
    });
    const broken = (): void => {
      if (this.kaStream === stream) this.dropKeepAliveStream();
    };
    stream.on("error", broken);
    stream.on("end", broken);
    this.kaStream = stream;
    this.kaUnanswered = [];
    return stream;
  }

  private dropKeepAliveStream(): void {
    const s = this.kaStream;
    this.kaStream = null;
    this.kaUnanswered = [];
    if (s) cancelQuietly(s);
  }

  private stopKeepAlive(): void {
    this.kaStopped = true;
    if (this.kaTimer) clearTimeout(this.kaTimer);
    this.kaTimer = null;
    this.dropKeepAliveStream();
  }
}

function cancelQuietly(stream: {
  cancel(): void;
  on(event: "error", fn: (err: Error) => void): unknown;
}): void {
  stream.on("error", () => undefined); // cancelling emits a CANCELLED error
  try {
    stream.cancel();
  } catch {
    // already closed
  }
}

/** The campaign value as stored: JSON text. */
function encodeValue(value: unknown): string {
  let json: string | undefined;
  try {
    json = JSON.stringify(value);
  } catch (e) {
    throw new TypeError(
      `the election value must be JSON-serializable: ${e instanceof Error ? e.message : String(e)}`,
    );
  }
  if (json === undefined)
    throw new TypeError(`the election value must be JSON-serializable, got ${typeof value}`);
  return json;
}

/** A stored value: JSON, or raw text when a non-Ballot candidate (e.g. `etcdctl elect`) wrote it. */
function decodeValue(buf: Buffer): unknown {
  const text = buf.toString("utf8");
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return text;
  }
}

function leaderOf(kv: IKeyValue): ElectionLeader {
  return { value: decodeValue(kv.value), fencingToken: Number(kv.create_revision) };
}

function sameLeader(a: ElectionLeader | null, b: ElectionLeader | null): boolean {
  if (a === null || b === null) return a === b;
  return a.fencingToken === b.fencingToken && JSON.stringify(a.value) === JSON.stringify(b.value);
}

/** etcd answers "requested lease not found" (etcd3 maps it to EtcdLeaseInvalidError) for expired or revoked leases. */
function isLeaseNotFound(e: unknown): boolean {
  if (!(e instanceof Error)) return false;
  return (
    e.constructor.name === "EtcdLeaseInvalidError" || /lease not found|is expired or revoked/i.test(e.message)
  );
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const done = (): void => {
      clearTimeout(timer);
      signal.removeEventListener("abort", done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener("abort", done, { once: true });
  });
}

function untilAborted(signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    signal.addEventListener("abort", () => resolve(), { once: true });
  });
}
