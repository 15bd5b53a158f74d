/**
 * The Election interface (election.ts) on a Ballot cluster: a candidacy is backed by a lease this
 * client keeps alive; campaign is a long request retried with the same lease (idempotent: it keeps
 * the queue position); a holder's signal aborts when the lease's client-side deadline passes, the
 * lease is lost, an observer sees a newer leader, or it resigns. Owns the holder's lifecycle and
 * runWhileLeader's loop; must never let a holder believe it leads past its lease's deadline, and
 * never start a job of this election while the previous one of this process is still running.
 */
import { hostname } from "node:os";
import type { BallotClient } from "./client.js";
import type {
  CampaignOptions,
  Election,
  ElectionJob,
  ElectionLeader,
  ElectionRunHandle,
  HeldLeadership,
  RunWhileLeaderOptions,
} from "./election.js";
import { BallotClientError } from "./errors.js";
import type { Lease } from "./lease.js";
import { linkedController, sleep } from "./transport.js";

/**
 * A campaign attempt that has waited this long is re-sent (same lease, same place in the queue):
 * a node that hangs without closing the connection must not hold the campaign forever.
 */
const CAMPAIGN_ATTEMPT_MS = 30_000;

/** How the node holding a campaign's wait is watched (see CallSpec.liveness). */
const CAMPAIGN_LIVENESS = { everyMs: 1000, deadAfterMs: 3000 } as const;

/** One observe event as the server sends it. */
interface ObservedLeader {
  readonly leader: { readonly value: unknown; readonly lease: number; readonly fencingToken: number } | null;
  readonly revision: number;
}

function parseObserved(data: unknown): ObservedLeader | null {
  if (typeof data !== "object" || data === null) return null;
  const o = data as Record<string, unknown>;
  const revision = typeof o.revision === "number" ? o.revision : 0;
  if (o.leader === null || o.leader === undefined) return { leader: null, revision };
  const l = o.leader as Record<string, unknown>;
  if (typeof l.fencingToken !== "number") return null;
  return {
    leader: {
      value: l.value,
      lease: typeof l.lease === "number" ? l.lease : 0,
      fencingToken: l.fencingToken,
    },
    revision,
  };
}

function waitForAbort(signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) resolve();
    else signal.addEventListener("abort", () => resolve(), { once: true });
  });
}

function leadershipLost(message: string): BallotClientError {
  return new BallotClientError(0, "leadership_lost", message);
}

class BallotHeldLeadership implements HeldLeadership {
  private readonly controller = new AbortController();
  private resigning: Promise<void> | null = null;
  private readonly unlink: () => void;

  constructor(
    private readonly election: BallotElection,
    readonly name: string,
    readonly fencingToken: number,
    private readonly lease: Lease,
  ) {
    const onLease = (): void => this.controller.abort(lease.signal.reason);
    if (lease.signal.aborted) onLease();
    else lease.signal.addEventListener("abort", onLease, { once: true });
    this.unlink = () => lease.signal.removeEventListener("abort", onLease);
    void this.watchForSuccessor();
  }

  get signal(): AbortSignal {
    return this.controller.signal;
  }

  assertLeader(): void {
    // The lease check reads the clock: a process paused past the deadline learns of it here.
    if (!this.controller.signal.aborted && !this.lease.isValid())
      this.controller.abort(this.lease.signal.reason);
    if (this.controller.signal.aborted) {
      const r = this.controller.signal.reason;
      throw r instanceof Error ? r : leadershipLost(`leadership of '${this.name}' is lost`);
    }
  }

  validUntil(): number {
    return this.controller.signal.aborted ? Number.NEGATIVE_INFINITY : this.lease.validUntil();
  }

  async proclaim(value: unknown): Promise<void> {
    this.assertLeader();
    try {
      await this.election.client.transport.call({
        method: "POST",
        path: this.election.path("/proclaim"),
        body: { lease: this.lease.id, value },
        write: true,
      });
    } catch (e) {
      if (
        e instanceof BallotClientError &&
        (e.code === "not_election_leader" || e.code === "lease_not_found")
      ) {
        this.lose(e);
      }
      throw e;
    }
  }

  resign(): Promise<void> {
    this.resigning ??= (async () => {
      this.lose(leadershipLost(`resigned from '${this.name}'`));
      await this.election.withdraw(this.lease, true);
    })();
    return this.resigning;
  }

  private lose(reason: unknown): void {
    if (!this.controller.signal.aborted) this.controller.abort(reason);
    this.unlink();
  }

  /**
   * Observes the election and aborts as soon as a newer leader, or no leader at a revision that
   * includes this candidacy, is seen: faster than waiting for the lease deadline. Views older than
   * this leadership (a lagging node) are ignored. Best effort: the lease deadline is what is safe.
   */
  private async watchForSuccessor(): Promise<void> {
    try {
      for await (const ev of this.election.observeRaw(this.controller.signal)) {
        const l = ev.leader;
        if (l && l.fencingToken < this.fencingToken) continue; // a view from before this leadership
        if (l && l.fencingToken === this.fencingToken && (l.lease === 0 || l.lease === this.lease.id))
          continue;
        if (!l && ev.revision < this.fencingToken) continue; // before this candidacy existed
        this.lose(
          leadershipLost(
            l
              ? `another candidate leads '${this.name}' (fencing token ${l.fencingToken})`
              : `'${this.name}' has no leader any more`,
          ),
        );
        return;
      }
    } catch {
      // Observing is an optimisation; the lease deadline still ends the leadership in time.
    }
  }
}

/** An election on a Ballot cluster. Create it with `client.election(name)`. */
export class BallotElection implements Election {
  /** @internal */
  constructor(
    readonly client: BallotClient,
    readonly name: string,
    private readonly ttlSeconds: number,
  ) {
    if (name === "." || name === "..") {
      throw new BallotClientError(
        0,
        "invalid_argument",
        `the election name '${name}' cannot be addressed in a URL`,
      );
    }
  }

  /** @internal */
  path(suffix = ""): string {
    return `/v1/elections/${encodeURIComponent(this.name)}${suffix}`;
  }

  async campaign(value: unknown, opts: CampaignOptions = {}): Promise<HeldLeadership> {
    if (opts.signal?.aborted) throw opts.signal.reason;
    const life = linkedController(opts.signal, this.client.closeSignal);
    try {
      let lease: Lease;
      try {
        lease = await this.client.grantLease(this.ttlSeconds, { signal: life.controller.signal });
      } catch (e) {
        // A lease granted by an aborted request is kept alive by no one: it expires on its own.
        if (opts.signal?.aborted) throw opts.signal.reason;
        throw e;
      }
      const wait = linkedController(life.controller.signal, lease.signal);
      try {
        const r = await this.client.transport.call({
          method: "POST",
          path: this.path("/campaign"),
          body: { value, lease: lease.id },
          write: true,
          signal: wait.controller.signal,
          // Waiting is the point: retry (same lease, same queue place) until won or aborted.
          timeoutMs: Number.POSITIVE_INFINITY,
          attemptTimeoutMs: CAMPAIGN_ATTEMPT_MS,
          // The wait is held by one node: one that is cut off or leaderless must not hold it for
          // the whole attempt while another node could already say "you lead".
          liveness: CAMPAIGN_LIVENESS,
        });
        const o = r.body as { fencingToken?: unknown };
        if (typeof o?.fencingToken !== "number") {
          throw new BallotClientError(0, "invalid_response", "the campaign answer has no fencingToken");
        }
        // Won, but only if the lease is still certainly alive: otherwise another may lead already.
        if (!lease.isValid()) throw lease.signal.reason;
        return new BallotHeldLeadership(this, this.name, o.fencingToken, lease);
      } catch (e) {
        const leaseReason = lease.signal.aborted ? lease.signal.reason : undefined;
        await this.withdraw(lease, false);
        if (opts.signal?.aborted) throw opts.signal.reason;
        // A lost lease aborted the wait: say so, unless the server answered something definite.
        const definite = e instanceof BallotClientError && e.status >= 400 && e.status < 500;
        if (leaseReason !== undefined && !definite) throw leaseReason;
        throw e;
      } finally {
        wait.dispose();
      }
    } finally {
      life.dispose();
    }
  }

  /**
   * @internal Resigns the candidacy and revokes its lease. With `strict`, throws if neither could
   * be confirmed; otherwise best effort (the lease expires on its own once no longer kept alive).
   */
  async withdraw(lease: Lease, strict: boolean): Promise<void> {
    let resignError: unknown;
    try {
      await this.client.transport.call({
        method: "POST",
        path: this.path("/resign"),
        body: { lease: lease.id },
        write: true,
      });
    } catch (e) {
      if (!(e instanceof BallotClientError && e.code === "lease_not_found")) resignError = e;
    }
    try {
      await lease.revoke();
    } catch (e) {
      // The revoke is what removes the candidacy for sure; if it failed, report the first failure.
      if (strict) throw resignError ?? e;
    }
  }

  async leader(): Promise<ElectionLeader | null> {
    const r = await this.client.transport.call({ method: "GET", path: this.path(), write: false });
    const o = r.body as { leader?: { value: unknown; fencingToken: number } | null };
    if (!o?.leader) return null;
    return { value: o.leader.value, fencingToken: o.leader.fencingToken };
  }

  async candidates(): Promise<number> {
    const r = await this.client.transport.call({ method: "GET", path: this.path(), write: false });
    const n = (r.body as { candidates?: unknown } | null)?.candidates;
    if (typeof n !== "number" || !Number.isSafeInteger(n) || n < 0)
      throw new BallotClientError(0, "invalid_response", "the election has no candidate count");
    return n;
  }

  observe(opts: { signal?: AbortSignal } = {}): AsyncIterable<ElectionLeader | null> {
    return { [Symbol.asyncIterator]: () => this.observeChanges(opts.signal) };
  }

  private async *observeChanges(signal: AbortSignal | undefined): AsyncGenerator<ElectionLeader | null> {
    let last: string | undefined;
    for await (const ev of this.observeRaw(signal)) {
      const l = ev.leader;
      // A reconnect replays the current leader: report changes only.
      const key = l ? `${l.fencingToken}:${JSON.stringify(l.value)}` : "null";
      if (key === last) continue;
      last = key;
      yield l ? { value: l.value, fencingToken: l.fencingToken } : null;
    }
  }

  /**
   * @internal The observe stream with reconnects (to another node after a failure); skips views
   * older than one already seen. Ends quietly when `signal` aborts or the client closes; throws 4xx.
   */
  async *observeRaw(signal: AbortSignal | undefined): AsyncGenerator<ObservedLeader, void, undefined> {
    const { controller: life, dispose } = linkedController(signal, this.client.closeSignal);
    let lastRevision = 0;
    try {
      const connect = () => ({ path: this.path("/observe"), headers: {} });
      for await (const data of this.client.resumable(life.signal, connect, ["leader"])) {
        const ev = parseObserved(data);
        if (!ev || ev.revision < lastRevision) continue;
        lastRevision = ev.revision;
        yield ev;
      }
    } finally {
      dispose();
    }
  }

  /**
   * Campaigns, runs `fn` while leader, and campaigns again. When the signal aborts (leadership lost,
   * in doubt, or stop()), waits for `fn` to return, then resigns. A job that returns on its own
   * keeps leadership (and is not called again) until it is lost; a job that throws is reported to
   * `onError`, then this process resigns so another can take over, and campaigns again after
   * `retryDelayMs`.
   */
  runWhileLeader(fn: ElectionJob, opts: RunWhileLeaderOptions = {}): ElectionRunHandle {
    const stopper = new AbortController();
    const onError =
      opts.onError ??
      ((e: unknown) =>
        console.error(`election '${this.name}': ${e instanceof Error ? e.message : String(e)}`));
    const retryDelay = opts.retryDelayMs ?? 500;
    const value = opts.value ?? { host: hostname(), pid: process.pid };
    // A closed client keeps no lease alive, so campaigning could only fail: stop then too.
    const over = (): boolean => stopper.signal.aborted || this.client.closeSignal.aborted;
    const loop = (async () => {
      while (!over()) {
        let held: HeldLeadership;
        try {
          held = await this.campaign(value, { signal: stopper.signal });
        } catch (e) {
          if (over()) break;
          onError(e);
          await sleep(retryDelay, stopper.signal);
          continue;
        }
        const job = linkedController(held.signal, stopper.signal);
        const jobSignal = job.controller.signal;
        let failed = false;
        try {
          await fn(jobSignal, {
            fencingToken: held.fencingToken,
            assertLeader: () => {
              held.assertLeader();
              if (jobSignal.aborted) throw leadershipLost(`stopped running for '${this.name}'`);
            },
          });
          // Returned on its own: hold on (its timers or servers may still be working) until lost.
          await waitForAbort(jobSignal);
        } catch (e) {
          if (!jobSignal.aborted) {
            failed = true;
            onError(e);
          }
        } finally {
          job.dispose();
        }
        try {
          await held.resign();
        } catch (e) {
          onError(e);
        }
        if (failed) await sleep(retryDelay, stopper.signal);
      }
    })();
    return {
      stop: async () => {
        stopper.abort(leadershipLost(`stopped running for '${this.name}'`));
        await loop;
      },
    };
  }
}
