/**
 * Overload bookkeeping for one node: the event loop's lag, measured as the drift of a periodic
 * timer, and the admission decision for new client work (proposals, requests) against their
 * bounds. Owns the arithmetic only — it is fed timestamps and counts, so it is deterministic and
 * testable without a clock. Must never refuse work after it reached the log (callers check it
 * before proposing) and never start timers or read the clock itself.
 */
import { OverloadedError } from "./errors.js";

/** The bounds a node admits new client work under. */
export interface AdmissionLimits {
  /** Proposals made on this node and not yet settled. */
  readonly maxInFlightProposals: number;
  /** Client requests being handled by this node's server at once (streams and probes excluded). */
  readonly maxQueuedRequests: number;
  /** Refuse new client work while the event loop's recent lag is above this many ms (0: never). */
  readonly maxEventLoopLagMs: number;
}

/**
 * Defaults measured with bench/overload on 3 nodes of a 2-core machine: 512 proposals in flight
 * already saturate the write path (group commit shares one fdatasync among them), and beyond that
 * more only lengthen the queue — p99 grows with depth while writes/s do not. Lag above 100 ms is
 * a fifth of the default election timeout: past it, the heartbeats this node owes are late.
 */
export const DEFAULT_ADMISSION: AdmissionLimits = {
  maxInFlightProposals: 512,
  maxQueuedRequests: 1024,
  maxEventLoopLagMs: 100,
};

/**
 * The event loop's lag from a timer that should fire every `periodMs`: each callback reports how
 * late it came. `recentMs` is the worst lateness over the last one to two windows (so a single
 * stall keeps admission closed briefly, not for ever); `maxMs` is the worst since start.
 */
export class LagProbe {
  private last: number | null = null;
  private windowStart = 0;
  private current = 0;
  private previous = 0;
  private max = 0;

  constructor(
    private readonly periodMs: number,
    private readonly windowMs = 250,
  ) {}

  /** Called from the timer's callback with the current time (ms, monotonic). */
  sample(now: number): void {
    if (this.last !== null) {
      const lag = Math.max(0, now - this.last - this.periodMs);
      this.roll(now);
      if (lag > this.current) this.current = lag;
      if (lag > this.max) this.max = lag;
    } else {
      this.windowStart = now;
    }
    this.last = now;
  }

  private roll(now: number): void {
    if (now - this.windowStart < this.windowMs) return;
    // A window with no samples at all (a stall longer than the window) keeps its predecessor's
    // value: the stall itself is reported by the sample that ends it.
    this.previous = now - this.windowStart < 2 * this.windowMs ? this.current : 0;
    this.current = 0;
    this.windowStart = now;
  }

  /** Worst lag (ms) seen over the last one to two windows, as of `now`. */
  recentMs(now: number): number {
    this.roll(now);
    // The timer itself being late right now counts too: a loop stalled past its period is lagging.
    const pending = this.last === null ? 0 : Math.max(0, now - this.last - this.periodMs);
    return Math.max(this.current, this.previous, pending);
  }

  /**
   * Lag that has lasted (ms): the smaller of the previous window's worst and the current one's
   * (or the stall in progress). Admission looks at this, not at `recentMs`: one late timer — a GC
   * pause, a neighbour process taking the CPU for a moment — says nothing about whether more
   * client work would starve the loop, and shedding on it turns every hiccup into 429s. A loop
   * that stays behind for two windows in a row is one that more work would make worse.
   */
  sustainedMs(now: number): number {
    this.roll(now);
    const pending = this.last === null ? 0 : Math.max(0, now - this.last - this.periodMs);
    return Math.min(this.previous, Math.max(this.current, pending));
  }

  /** Worst lag (ms) seen since start. */
  get maxMs(): number {
    return this.max;
  }
}

/** What admission looks at. */
export interface Load {
  readonly inFlightProposals: number;
  readonly queuedRequests: number;
  /** The lag that has lasted (LagProbe.sustainedMs), not a single late timer. */
  readonly lagMs: number;
  /** How long proposals have been taking to settle lately (ms): about when a slot frees up. */
  readonly settleMs: number;
}

/**
 * Null when new work is admitted under `limits`, else the OverloadedError to answer with. The
 * retry hint (50 ms to 1 s) is what the node's own figures say: for a full queue, the time its
 * proposals take to settle (when the work ahead will be done); for a lagging loop, twice the lag.
 */
export function admit(
  load: Load,
  limits: AdmissionLimits,
  kind: "proposal" | "request",
): OverloadedError | null {
  if (limits.maxEventLoopLagMs > 0 && load.lagMs > limits.maxEventLoopLagMs) {
    return new OverloadedError(
      `overloaded: the event loop lags ${Math.round(load.lagMs)} ms (bound ${limits.maxEventLoopLagMs} ms); nothing was applied, retry`,
      "event_loop_lag",
      clampRetry(2 * load.lagMs),
    );
  }
  if (kind === "proposal" && load.inFlightProposals >= limits.maxInFlightProposals) {
    return new OverloadedError(
      `overloaded: ${load.inFlightProposals} proposals in flight (bound ${limits.maxInFlightProposals}); nothing was applied, retry`,
      "proposals",
      clampRetry(load.settleMs),
    );
  }
  if (kind === "request" && load.queuedRequests >= limits.maxQueuedRequests) {
    return new OverloadedError(
      `overloaded: ${load.queuedRequests} requests queued (bound ${limits.maxQueuedRequests}); nothing was applied, retry`,
      "requests",
      clampRetry(load.settleMs),
    );
  }
  return null;
}

function clampRetry(ms: number): number {
  return Math.round(Math.min(1000, Math.max(50, ms)));
}

/** Checks AdmissionLimits given by a caller; throws RangeError with the field at fault. */
export function checkLimits(l: AdmissionLimits): void {
  for (const [name, v, lo] of [
    ["maxInFlightProposals", l.maxInFlightProposals, 1],
    ["maxQueuedRequests", l.maxQueuedRequests, 1],
    ["maxEventLoopLagMs", l.maxEventLoopLagMs, 0],
  ] as const) {
    if (!(Number.isSafeInteger(v) && v >= lo))
      throw new RangeError(`${name} must be a whole number of at least ${lo} (got ${v})`);
  }
}
