/**
 * A lease the client keeps alive: keepalives every ttl/3, the client's own deadline (LeaseClock)
 * and an AbortSignal that fires when the lease is lost or in doubt. Owns the keepalive loop;
 * must never extend its deadline from anything but the *send* time of a keepalive the server
 * confirmed (so the client stops trusting the lease before the server can expire it), and never
 * revive a lease once its signal has aborted.
 */
import { BallotClientError } from "./errors.js";
import { LeaseClock } from "./lease-clock.js";
import { sleep, type Transport } from "./transport.js";

/** Pause between keepalive attempts after one failed (while the lease is still valid). */
const RETRY_MS = 200;

/** A lease granted by the cluster and kept alive by this client until revoked or lost. */
export class Lease {
  /** The server's lease id (attach keys with `put(key, value, { lease: lease.id })`). */
  readonly id: number;
  /** The TTL the server granted, in seconds. */
  readonly ttlSeconds: number;
  private readonly clock: LeaseClock;
  private readonly controller = new AbortController();
  /** Stops the keepalive loop (revoke, close). */
  private readonly stopper = new AbortController();
  private deadlineTimer: ReturnType<typeof setTimeout> | undefined;
  private readonly loop: Promise<void>;

  /** @internal Created by BallotClient.grantLease. */
  constructor(
    private readonly transport: Transport,
    id: number,
    ttlSeconds: number,
    sentAtMs: number,
    private readonly onEnd: (l: Lease) => void,
  ) {
    this.id = id;
    this.ttlSeconds = ttlSeconds;
    this.clock = new LeaseClock(ttlSeconds * 1000, sentAtMs);
    this.arm();
    this.loop = this.keepAlive();
  }

  /**
   * Aborts when the lease is lost (revoked, or unknown to the server) or in doubt (its deadline on
   * this client's clock passed without a confirmed keepalive). Once aborted, the lease is dead to
   * this client: grant a new one.
   */
  get signal(): AbortSignal {
    return this.controller.signal;
  }

  /** The monotonic time (performance.now() ms) until which the lease is certainly alive unless renewed. */
  validUntil(): number {
    return this.controller.signal.aborted ? Number.NEGATIVE_INFINITY : this.clock.validUntil();
  }

  /** Whether the lease is certainly alive right now (checked against the clock, not just the signal). */
  isValid(): boolean {
    if (!this.controller.signal.aborted && !this.clock.isValid()) this.end("lease_expired");
    return !this.controller.signal.aborted;
  }

  /**
   * Revokes the lease: the signal aborts at once, then the server deletes the lease, its keys and
   * its candidacies. Resolves when the server confirmed (or did not know the lease any more).
   */
  async revoke(): Promise<void> {
    this.end("lease_lost", "the lease was revoked");
    try {
      await this.transport.call({ method: "DELETE", path: `/v1/leases/${this.id}`, write: true });
    } catch (e) {
      if (e instanceof BallotClientError && e.code === "lease_not_found") return;
      throw e;
    }
  }

  /**
   * Stops keeping the lease alive without revoking it: the server expires it after its TTL. The
   * signal aborts now, since this client no longer renews it.
   */
  abandon(): void {
    this.end("lease_lost", "the client stopped keeping the lease alive");
  }

  /** Re-checks the deadline when it is due; a timer can fire late, so the check is against the clock. */
  private arm(): void {
    clearTimeout(this.deadlineTimer);
    if (this.controller.signal.aborted) return;
    if (!this.clock.isValid()) {
      this.end("lease_expired");
      return;
    }
    this.deadlineTimer = setTimeout(
      () => this.arm(),
      Math.max(1, this.clock.validUntil() - performance.now() + 1),
    );
    // The keepalive loop keeps the process alive while the lease is in use; this timer need not.
    this.deadlineTimer.unref?.();
  }

  private end(code: "lease_expired" | "lease_lost", message?: string): void {
    if (this.controller.signal.aborted) return;
    clearTimeout(this.deadlineTimer);
    if (code === "lease_lost") this.clock.lost();
    this.stopper.abort();
    const msg =
      message ??
      (code === "lease_expired"
        ? `lease ${this.id}: no keepalive was confirmed in time; it may have expired`
        : `lease ${this.id} is gone`);
    this.controller.abort(new BallotClientError(0, code, msg, { lease: this.id }));
    this.onEnd(this);
  }

  private async keepAlive(): Promise<void> {
    let delay = this.clock.nextKeepAliveDelay();
    const stop = this.stopper.signal;
    while (!stop.aborted) {
      await sleep(delay, stop);
      if (stop.aborted || !this.isValid()) return;
      const sentAt = performance.now();
      try {
        await this.transport.call({
          method: "POST",
          path: `/v1/leases/${this.id}/keepalive`,
          write: true,
          signal: stop,
          // Past the deadline a success would come too late to matter: the signal has aborted.
          timeoutMs: Math.max(100, this.clock.validUntil() - sentAt),
        });
        if (stop.aborted) return;
        this.clock.renewed(sentAt);
        this.arm();
        delay = this.clock.nextKeepAliveDelay();
      } catch (e) {
        if (stop.aborted) return;
        if (e instanceof BallotClientError && e.status === 404) {
          this.end("lease_lost", `lease ${this.id} expired or was revoked on the server`);
          return;
        }
        // Unavailable, unknown outcome, timeout: try again soon while the lease is still valid.
        delay = RETRY_MS;
      }
    }
  }

  /** @internal Waits for the keepalive loop to finish (after the signal aborted). */
  settled(): Promise<void> {
    return this.loop;
  }
}
