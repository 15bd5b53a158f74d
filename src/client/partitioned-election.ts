/**
 * Leadership per partition over any election backend: P elections named `NAME:p0` … `NAME:p{P-1}`
 * and a roster election `NAME:roster` in which every running instance is a candidate, so that each
 * instance can count the live ones. Each instance campaigns for at most its fair share,
 * ceil(P / live), of the partitions that have no leader, gives back its highest partitions when
 * the share drops (an instance joined), and takes over a dead instance's partitions once their
 * leases expire (their leaders disappear, and so does its roster candidacy).
 *
 * Owns the share rule and the campaign / give-back loop. Must never run two jobs for one partition
 * in this process, never hold or campaign for more than its share as it last counted it, and never
 * leave a job's signal un-aborted once that partition's leadership is lost, in doubt or given back.
 * Exclusivity *between* instances is the backend's (one leader per election, a signal that aborts
 * before the lease can lapse); this module only adds a rule about how many each instance asks for.
 * Backend-neutral: it sees only the `Election` interface.
 */
import { randomUUID } from "node:crypto";
import { hostname } from "node:os";
import type { Election, ElectionJobContext, HeldLeadership } from "./election.js";
import { sleep } from "./transport.js";

/** The most partitions one partitioned election may have (each is an election and a lease). */
export const MAX_PARTITIONS = 1024;

/** The election that holds partition `i` of `name`. */
export const partitionElectionName = (name: string, i: number): string => `${name}:p${i}`;
/** The election in which every running instance of `name` is a candidate (its head count). */
export const rosterElectionName = (name: string): string => `${name}:roster`;

/** How many partitions each instance may hold: ceil(P / live), live counted as at least 1. */
export function fairShare(partitions: number, live: number): number {
  return Math.ceil(partitions / Math.max(1, live));
}

/** What a partition's job is given. */
export interface PartitionJobContext extends ElectionJobContext {
  /** 0 … partitions-1. */
  readonly partition: number;
  /** The partition's election name (`NAME:p<i>`). */
  readonly name: string;
  /** The monotonic time (performance.now() ms) until which this partition's leadership is certain unless renewed. */
  validUntil(): number;
}

export type PartitionJob = (signal: AbortSignal, ctx: PartitionJobContext) => Promise<void> | void;

export interface RunForEachOptions {
  /** What to campaign with (default: host and pid); observers see `{instance, partition, value}`. */
  readonly value?: unknown;
  /** Errors of jobs and of campaigning; the loop goes on. Default: console.error. */
  readonly onError?: (e: unknown) => void;
  /** Called with the partitions this instance holds whenever that set changes. */
  readonly onChange?: (held: readonly number[]) => void;
  /** How often the roster and the free partitions are looked at, in ms. Default 500. */
  readonly intervalMs?: number;
  /** After a job throws (or a campaign fails), how long this instance leaves that partition alone. Default 1000. */
  readonly retryDelayMs?: number;
}

export interface PartitionRunHandle {
  /** The partitions this instance holds now, ascending. */
  held(): number[];
  /** Stops every job, resigns every partition and the roster candidacy; resolves when done. */
  stop(): Promise<void>;
}

/** The reason a job's signal aborts when its partition is handed to a less loaded instance. */
export class PartitionGivenBackError extends Error {
  constructor(readonly partition: number) {
    super(`partition ${partition} was given back to balance the load`);
    this.name = "PartitionGivenBackError";
  }
}

/** P elections and a roster, run by runForEach(). */
export class PartitionedElection {
  private readonly elections: Election[];
  private readonly rosterElection: Election;

  /**
   * @param name the base name; `NAME:p<i>` and `NAME:roster` are the elections used.
   * @param partitions 1 … MAX_PARTITIONS, the same on every instance.
   * @param open makes the election of a given name on the backend.
   * @throws RangeError on a bad partition count.
   */
  constructor(
    readonly name: string,
    readonly partitions: number,
    open: (name: string) => Election,
  ) {
    if (!Number.isInteger(partitions) || partitions < 1 || partitions > MAX_PARTITIONS)
      throw new RangeError(
        `partitions must be a whole number from 1 to ${MAX_PARTITIONS}, got ${String(partitions)}`,
      );
    this.elections = Array.from({ length: partitions }, (_, i) => open(partitionElectionName(name, i)));
    this.rosterElection = open(rosterElectionName(name));
  }

  /** Partition `i`'s election (its leader, observe, …). */
  partition(i: number): Election {
    const e = this.elections[i];
    if (e === undefined) throw new RangeError(`no partition ${i} (0 … ${this.partitions - 1})`);
    return e;
  }

  /** The live instances, as counted by their roster candidacies. */
  instances(): Promise<number> {
    return this.rosterElection.candidates();
  }

  /** Who leads each partition now (null where none does). */
  leaders(): Promise<({ value: unknown; fencingToken: number } | null)[]> {
    return Promise.all(this.elections.map((e) => e.leader()));
  }

  /**
   * Runs `job(signal, ctx)` once for each partition this instance comes to hold, spreading the
   * partitions over every instance that runs this with the same name and count. A job's signal
   * aborts when the partition is lost, in doubt, or given back; the partition is resigned after
   * the job returns. A job that returns on its own keeps the partition until then; one that throws
   * is reported, its partition resigned and left alone for `retryDelayMs`.
   */
  runForEach(job: PartitionJob, opts: RunForEachOptions = {}): PartitionRunHandle {
    return new PartitionRunner(this.elections, this.rosterElection, job, opts).start();
  }
}

interface Holding {
  readonly leadership: HeldLeadership;
  readonly release: AbortController;
  done: Promise<void>;
}

const waitForAbort = (signal: AbortSignal): Promise<void> =>
  new Promise((resolve) => {
    if (signal.aborted) resolve();
    else signal.addEventListener("abort", () => resolve(), { once: true });
  });

/** A cheap stable hash, so instances prefer different free partitions and collide less. */
function preference(instance: string, partition: number): number {
  let h = 2166136261;
  const s = `${instance}/${partition}`;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 16777619);
  return h >>> 0;
}

class PartitionRunner {
  private readonly instance = randomUUID();
  private readonly held = new Map<number, Holding>();
  private readonly pending = new Map<number, { abort: AbortController; settled: Promise<void> }>();
  /** partition → performance.now() before which this instance does not campaign for it. */
  private readonly cooldown = new Map<number, number>();
  private readonly stopper = new AbortController();
  private wake: (() => void) | null = null;
  private readonly onError: (e: unknown) => void;
  private readonly value: unknown;
  private readonly intervalMs: number;
  private readonly retryDelayMs: number;
  private lastReported = "";
  private loop: Promise<void> = Promise.resolve();

  constructor(
    private readonly elections: readonly Election[],
    private readonly roster: Election,
    private readonly job: PartitionJob,
    private readonly opts: RunForEachOptions,
  ) {
    this.onError =
      opts.onError ?? ((e) => console.error(`partitions: ${e instanceof Error ? e.message : String(e)}`));
    this.value = opts.value ?? { host: hostname(), pid: process.pid };
    this.intervalMs = opts.intervalMs ?? 500;
    this.retryDelayMs = opts.retryDelayMs ?? 1000;
  }

  start(): PartitionRunHandle {
    const rostered = this.keepOnRoster();
    this.loop = (async () => {
      // A backend that stays unreachable fails every round the same way: said once, until a round works.
      let lastFailure: string | null = null;
      while (!this.stopper.signal.aborted) {
        try {
          await this.round();
          lastFailure = null;
        } catch (e) {
          const what = e instanceof Error ? `${e.name}: ${e.message}` : String(e);
          if (!this.stopper.signal.aborted && what !== lastFailure) this.onError(e);
          lastFailure = what;
        }
        // Jittered, so instances started together do not look at the same moment every time.
        await this.pause(this.intervalMs * (0.8 + 0.4 * Math.random()));
      }
      await Promise.all([...this.pending.values()].map((p) => p.settled));
      await Promise.all([...this.held.values()].map((h) => h.done));
      await rostered;
    })();
    return {
      held: () => [...this.held.keys()].sort((a, b) => a - b),
      stop: async () => {
        this.stopper.abort(new Error("stopped"));
        this.wake?.();
        await this.loop;
      },
    };
  }

  private pause(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const t = setTimeout(done, ms);
      function done(): void {
        clearTimeout(t);
        resolve();
      }
      this.wake = done;
      if (this.stopper.signal.aborted) done();
    });
  }

  /** A candidacy in the roster for as long as this runs: how the others count this instance. */
  private async keepOnRoster(): Promise<void> {
    const stop = this.stopper.signal;
    while (!stop.aborted) {
      try {
        const h = await this.roster.campaign(
          { instance: this.instance, value: this.value },
          { signal: stop },
        );
        await Promise.race([waitForAbort(h.signal), waitForAbort(stop)]);
        await h.resign().catch((e: unknown) => {
          if (!stop.aborted) this.onError(e);
        });
      } catch (e) {
        if (stop.aborted) break;
        this.onError(e);
        await sleep(this.retryDelayMs, stop);
      }
    }
  }

  private async round(): Promise<void> {
    const live = await this.roster.candidates();
    if (this.stopper.signal.aborted) return;
    const share = fairShare(this.elections.length, live);
    // Too many: withdraw campaigns first, then give back the highest partitions held, so that
    // every instance that must give some back gives the same ones up (less churn).
    let over = this.held.size + this.pending.size - share;
    for (const [, p] of [...this.pending].sort((a, b) => b[0] - a[0])) {
      if (over <= 0) break;
      p.abort.abort(new Error("over the share"));
      over--;
    }
    for (const [partition, h] of [...this.held].sort((a, b) => b[0] - a[0])) {
      if (over <= 0) break;
      if (!h.release.signal.aborted) h.release.abort(new PartitionGivenBackError(partition));
      over--;
    }
    // Withdraw from a queue behind another instance's leader: it is that instance's partition.
    await Promise.all(
      [...this.pending].map(async ([partition, p]) => {
        const leader = await this.elections[partition]!.leader().catch(() => null);
        if (leader !== null && !this.isMine(leader.value)) p.abort.abort(new Error("taken by another"));
      }),
    );
    const room = share - this.held.size - this.pending.size;
    if (room <= 0 || this.stopper.signal.aborted) return;
    const now = performance.now();
    const candidates = this.elections
      .map((_, i) => i)
      .filter((i) => !this.held.has(i) && !this.pending.has(i) && (this.cooldown.get(i) ?? 0) <= now);
    const leaders = await Promise.all(
      candidates.map((i) =>
        this.elections[i]!.leader().then(
          (l) => l,
          () => undefined, // unknown: not free as far as we know
        ),
      ),
    );
    const free = candidates
      .filter((_, k) => leaders[k] === null)
      .sort((a, b) => preference(this.instance, a) - preference(this.instance, b));
    for (const partition of free.slice(0, room)) this.campaign(partition);
  }

  private isMine(value: unknown): boolean {
    return (
      typeof value === "object" &&
      value !== null &&
      (value as { instance?: unknown }).instance === this.instance
    );
  }

  private campaign(partition: number): void {
    const abort = new AbortController();
    const signal = AbortSignal.any([abort.signal, this.stopper.signal]);
    const settled = this.elections[partition]!.campaign(
      { instance: this.instance, partition, value: this.value },
      { signal },
    ).then(
      (leadership) => {
        this.pending.delete(partition);
        // Won after being told to withdraw: hand it straight back.
        if (signal.aborted) {
          void leadership.resign().catch((e: unknown) => this.stopper.signal.aborted || this.onError(e));
          return;
        }
        this.hold(partition, leadership);
      },
      (e: unknown) => {
        this.pending.delete(partition);
        if (signal.aborted) return;
        this.onError(e);
        this.cooldown.set(partition, performance.now() + this.retryDelayMs);
      },
    );
    this.pending.set(partition, { abort, settled });
  }

  private hold(partition: number, leadership: HeldLeadership): void {
    const release = new AbortController();
    const signal = AbortSignal.any([leadership.signal, release.signal, this.stopper.signal]);
    const holding: Holding = { leadership, release, done: Promise.resolve() };
    this.held.set(partition, holding);
    this.report();
    holding.done = (async () => {
      let failed = false;
      try {
        await this.job(signal, {
          partition,
          name: leadership.name,
          fencingToken: leadership.fencingToken,
          validUntil: () => (signal.aborted ? Number.NEGATIVE_INFINITY : leadership.validUntil()),
          assertLeader: () => {
            leadership.assertLeader();
            if (signal.aborted) throw signal.reason;
          },
        });
        await waitForAbort(signal);
      } catch (e) {
        if (!signal.aborted) {
          failed = true;
          this.onError(e);
        }
      }
      try {
        await leadership.resign();
      } catch (e) {
        if (!this.stopper.signal.aborted) this.onError(e);
      }
      this.held.delete(partition);
      // Given back or failed: leave it to the others for a while rather than take it straight back.
      if (failed || release.signal.aborted)
        this.cooldown.set(partition, performance.now() + this.retryDelayMs);
      this.report();
      this.wake?.();
    })();
  }

  private report(): void {
    const now = [...this.held.keys()].sort((a, b) => a - b);
    const key = now.join(",");
    if (key === this.lastReported) return;
    this.lastReported = key;
    this.opts.onChange?.(now);
  }
}
