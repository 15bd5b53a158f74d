/**
 * The election interface shared by every backend (a Ballot cluster through `ballot/client`, an
 * etcd cluster through `ballot/etcd`): campaign, leader, observe, resign, proclaim and
 * runWhileLeader. Owns only types; must never hold an implementation, so that a program (and
 * `ballot elect`) can switch backends without changing code.
 *
 * The safety rule every backend keeps: a holder's `signal` aborts, and `assertLeader()` throws,
 * no later than the moment its lease could have expired on the server — measured from when the
 * last successful keepalive was *sent*, less a clock-drift margin — so a candidate is never left
 * believing it leads after another one may have been elected.
 */

/** The current leader of an election as any observer sees it. */
export interface ElectionLeader {
  /** What the leader proclaimed (any JSON value). */
  readonly value: unknown;
  /** Grows with every new leadership of this election. */
  readonly fencingToken: number;
}

/** One period of leadership won by campaign(). */
export interface HeldLeadership {
  readonly name: string;
  /** Grows with every new leadership of this election; give it to resources so they can refuse a deposed leader. */
  readonly fencingToken: number;
  /** Aborts the moment leadership is lost, in doubt (the lease may have expired) or given up. */
  readonly signal: AbortSignal;
  /** Throws if leadership is lost or in doubt right now (checked against the clock). */
  assertLeader(): void;
  /** The monotonic time (performance.now() ms) until which leadership is certain unless renewed. */
  validUntil(): number;
  /** Changes the leader's value without giving up leadership. */
  proclaim(value: unknown): Promise<void>;
  /** Gives up leadership (and the candidacy); resolves once the server has removed it. */
  resign(): Promise<void>;
}

/** What a leader-only job is given (the same shape as RaftNode's node.leadership). */
export interface ElectionJobContext {
  readonly fencingToken: number;
  assertLeader(): void;
}

export type ElectionJob = (signal: AbortSignal, ctx: ElectionJobContext) => Promise<void> | void;

export interface ElectionRunHandle {
  /** Aborts a running job, resigns, and campaigns no more. */
  stop(): Promise<void>;
}

export interface CampaignOptions {
  readonly signal?: AbortSignal;
}

export interface RunWhileLeaderOptions {
  /** The value to campaign with (default: a description of this process). */
  readonly value?: unknown;
  /** Called with errors of the job or of campaigning; the loop goes on. Default: console.error. */
  readonly onError?: (e: unknown) => void;
  /** Pause between failed campaigns, in ms. Default 500. */
  readonly retryDelayMs?: number;
}

/** A named election on some backend. */
export interface Election {
  readonly name: string;
  /** Waits until this candidate leads (a queue ordered by arrival). Rejects if `signal` aborts (and withdraws). */
  campaign(value: unknown, opts?: CampaignOptions): Promise<HeldLeadership>;
  /** The current leader, or null. */
  leader(): Promise<ElectionLeader | null>;
  /** How many candidates there are now, the leader included (each live candidacy counts once). */
  candidates(): Promise<number>;
  /** The leader now and after every change (null while there is none), until `signal` aborts. */
  observe(opts?: { signal?: AbortSignal }): AsyncIterable<ElectionLeader | null>;
  /**
   * Calls `fn(signal, ctx)` each time this process wins the election; aborts `signal` the moment
   * leadership is lost or in doubt, waits for `fn`, resigns, and campaigns again.
   */
  runWhileLeader(fn: ElectionJob, opts?: RunWhileLeaderOptions): ElectionRunHandle;
}
