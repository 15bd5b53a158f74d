/**
 * Leadership for applications that embed a RaftNode: run code only while this node is the one
 * healthy leader. Owns the "held" decision and the lifecycle of leader-only jobs. Must never let a
 * job run while leadership is lost or in doubt, and never start a job before the previous one of
 * this node has finished.
 *
 * Leadership is *held* when this node is leader, has committed an entry of its term (so its term
 * is confirmed by a quorum), and its lease is valid: a quorum acknowledged it within the last
 * election timeout less a clock-drift bound, and none of them votes for anyone else until a full
 * election timeout has passed. So a job's signal aborts before another node can be elected.
 *
 * The fencing token is the term of the leadership: it grows with every new leader, so a resource
 * that remembers the highest token it has seen rejects a deposed leader that wakes up late.
 */
import { EventEmitter } from "node:events";
import { NotLeaderError } from "./errors.js";

/** What a leader-only job is given. */
export interface LeadershipContext {
  /** The term of this leadership. */
  readonly term: number;
  /** Grows with every new leadership; hand it to resources so they can refuse a deposed leader. */
  readonly fencingToken: number;
  /**
   * Re-checks leadership against the clock right now and throws NotLeaderError if it is lost or
   * in doubt. Call it just before acting on the outside world: the signal is only checked on
   * ticks, and a process that was paused learns of it when its next timer fires.
   */
  assertLeader(): void;
}

export type LeaderJob = (signal: AbortSignal, ctx: LeadershipContext) => Promise<void> | void;

/** What Leadership needs from the node; RaftNode provides it. */
export interface LeadershipSource {
  /** Brings the node's clock up to date (ticks the core for real elapsed time). */
  syncClock(): void;
  /** Leader, term confirmed by a commit, lease valid. */
  holds(): boolean;
  term(): number;
  leader(): { id: string; url: string | null; term: number } | null;
  /** Called when something comes to need the lease (a job, a listener): a quiet group must wake. */
  wantLease?(): void;
}

export interface RunHandle {
  /** Aborts a running job, waits for it, and runs the job no more. */
  stop(): Promise<void>;
}

interface Runner {
  readonly fn: LeaderJob;
  controller: AbortController | null;
  running: Promise<void> | null;
  /** The held period (a counter) in which the job last started: it runs once per period. */
  startedInPeriod: number;
  stopped: boolean;
  onError: (e: unknown) => void;
}

/**
 * Events: `elected` ({term, fencingToken}) when this node starts holding leadership, `deposed`
 * ({term, reason}) when it stops (lost, or in doubt), `leader` and `leader-changed` (the same
 * {id, url, term} | null) when the known leader changes.
 */
export class Leadership extends EventEmitter {
  private held = false;
  private heldTerm = 0;
  private period = 0;
  private readonly runners = new Set<Runner>();
  private closed = false;
  private paused = 0;

  constructor(
    private readonly src: LeadershipSource,
    private readonly logError: (msg: string) => void = (m) => console.error(m),
  ) {
    super();
    this.on("newListener", (event: string) => {
      if (event === "elected" || event === "deposed") this.src.wantLease?.();
    });
  }

  /**
   * Whether anything relies on this leadership's lease being kept: a job, or a listener to
   * `elected`/`deposed` (waitForLeadership is one). Without, an idle partition may go quiet and
   * let its lease lapse (see RaftOptions.quiesce).
   */
  needsLease(): boolean {
    return this.runners.size > 0 || this.listenerCount("elected") > 0 || this.listenerCount("deposed") > 0;
  }

  /** Whether this node holds leadership now (checked against the clock). */
  get isLeader(): boolean {
    this.src.syncClock();
    return this.src.holds();
  }

  /** The leader this node knows of, or null. */
  get leader(): { id: string; url: string | null; term: number } | null {
    return this.src.leader();
  }

  /** Re-evaluates leadership; RaftNode calls it on every tick and state change. */
  check(): void {
    if (this.closed) return;
    const holds = this.src.holds();
    if (holds && !this.held) {
      this.held = true;
      this.heldTerm = this.src.term();
      this.period++;
      this.emit("elected", { term: this.heldTerm, fencingToken: this.heldTerm });
    } else if (!holds && this.held) {
      this.held = false;
      const stillLeader = this.src.leader()?.term === this.heldTerm;
      const reason = stillLeader ? "leadership in doubt: the lease ran out" : "leadership lost";
      for (const r of this.runners)
        r.controller?.abort(
          new NotLeaderError(this.src.leader()?.id ?? null, this.src.leader()?.url ?? null),
        );
      this.emit("deposed", { term: this.heldTerm, reason });
    }
    if (this.held && this.paused === 0) for (const r of this.runners) this.maybeStart(r);
  }

  /**
   * Aborts the jobs and waits for them to finish, and starts none until resume(). Used before
   * handing leadership over: the new leader may start its jobs within milliseconds.
   */
  async pause(): Promise<void> {
    this.paused++;
    const running: Promise<void>[] = [];
    for (const r of this.runners) {
      r.controller?.abort(new Error("leadership is being handed over"));
      if (r.running) running.push(r.running);
    }
    await Promise.all(running);
  }

  /** Undoes pause(); if leadership is still held, the jobs start again (a new period, same token). */
  resume(): void {
    if (this.paused > 0) this.paused--;
    if (this.paused === 0 && this.held) this.period++;
    this.check();
  }

  private maybeStart(r: Runner): void {
    if (r.stopped || r.running || r.startedInPeriod === this.period) return;
    r.startedInPeriod = this.period;
    const controller = new AbortController();
    r.controller = controller;
    const term = this.heldTerm;
    const ctx: LeadershipContext = {
      term,
      fencingToken: term,
      assertLeader: () => {
        this.src.syncClock();
        this.check();
        if (controller.signal.aborted || !this.held || this.heldTerm !== term) {
          const l = this.src.leader();
          throw new NotLeaderError(l?.id ?? null, l?.url ?? null);
        }
      },
    };
    r.running = (async () => {
      try {
        await r.fn(controller.signal, ctx);
      } catch (e) {
        if (!controller.signal.aborted) r.onError(e);
      }
    })().finally(() => {
      r.running = null;
      r.controller = null;
      // The job ended: if leadership is held in a new period, the next start waits for the next check.
    });
  }

  /**
   * Calls `fn(signal, ctx)` whenever this node comes to hold leadership; aborts `signal` the moment
   * leadership is lost or in doubt, waits for `fn` to finish, and calls it again in the next
   * period of leadership (never while a previous call is still running). A call that returns on
   * its own while leadership is held is not repeated until leadership is lost and regained.
   */
  runWhileLeader(fn: LeaderJob, opts: { onError?: (e: unknown) => void } = {}): RunHandle {
    const r: Runner = {
      fn,
      controller: null,
      running: null,
      startedInPeriod: 0,
      stopped: false,
      onError:
        opts.onError ??
        ((e) => {
          if (this.listenerCount("error") > 0) this.emit("error", e);
          else this.logError(`leader-only job failed: ${e instanceof Error ? e.message : String(e)}`);
        }),
    };
    this.runners.add(r);
    this.src.wantLease?.();
    this.check();
    return {
      stop: async () => {
        r.stopped = true;
        this.runners.delete(r);
        r.controller?.abort(new Error("stopped"));
        await r.running;
      },
    };
  }

  /** Resolves once this node holds leadership (rejects on timeout or abort). */
  waitForLeadership(
    opts: { signal?: AbortSignal; timeoutMs?: number } = {},
  ): Promise<{ term: number; fencingToken: number }> {
    this.src.syncClock();
    this.check();
    if (this.held) return Promise.resolve({ term: this.heldTerm, fencingToken: this.heldTerm });
    return new Promise((resolve, reject) => {
      const done = (): void => {
        this.off("elected", onElected);
        if (timer) clearTimeout(timer);
        opts.signal?.removeEventListener("abort", onAbort);
      };
      const onElected = (e: { term: number; fencingToken: number }): void => {
        done();
        resolve(e);
      };
      const onAbort = (): void => {
        done();
        reject(opts.signal?.reason ?? new Error("aborted"));
      };
      const timer =
        opts.timeoutMs === undefined
          ? null
          : setTimeout(() => {
              done();
              const l = this.src.leader();
              reject(new NotLeaderError(l?.id ?? null, l?.url ?? null));
            }, opts.timeoutMs);
      if (opts.signal?.aborted) return onAbort();
      opts.signal?.addEventListener("abort", onAbort, { once: true });
      this.on("elected", onElected);
    });
  }

  /** Aborts every job and waits for them (the node is stopping). */
  async close(): Promise<void> {
    this.closed = true;
    const running: Promise<void>[] = [];
    for (const r of this.runners) {
      r.stopped = true;
      r.controller?.abort(new Error("the node is stopping"));
      if (r.running) running.push(r.running);
    }
    this.runners.clear();
    await Promise.all(running);
    if (this.held) {
      this.held = false;
      this.emit("deposed", { term: this.heldTerm, reason: "the node is stopping" });
    }
  }
}
