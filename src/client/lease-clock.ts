/**
 * The client's view of how long a lease is certainly alive. Owns the arithmetic of the safety
 * margin; must never read a wall clock (only the monotonic performance.now()).
 *
 * The server renews a lease when a keepalive is *applied*, which is after the client sent it, and
 * a new server-side leader restarts every lease's full TTL, so the server can only expire a lease
 * later than `sentAt + ttl` by its own clock. The client stops trusting the lease earlier than that
 * by a drift bound and a fixed margin for its own scheduling delays.
 */

/** Relative clock-rate difference allowed between client and server (like Raft's lease drift bound). */
export const CLOCK_DRIFT = 0.05;

export class LeaseClock {
  private validUntilMs: number;

  /** @param ttlMs the lease's TTL; @param sentAtMs when the request that created it was sent. */
  constructor(
    readonly ttlMs: number,
    sentAtMs: number,
    private readonly marginMs = Math.min(500, ttlMs / 10),
  ) {
    this.validUntilMs = this.limit(sentAtMs);
  }

  private limit(sentAtMs: number): number {
    return sentAtMs + this.ttlMs * (1 - CLOCK_DRIFT) - this.marginMs;
  }

  /** A keepalive sent at `sentAtMs` succeeded. */
  renewed(sentAtMs: number): void {
    this.validUntilMs = Math.max(this.validUntilMs, this.limit(sentAtMs));
  }

  /** The lease is known to be gone (revoked, expired, not found). */
  lost(): void {
    this.validUntilMs = -Infinity;
  }

  validUntil(): number {
    return this.validUntilMs;
  }

  isValid(now = performance.now()): boolean {
    return now < this.validUntilMs;
  }

  /** When to send the next keepalive: a third of the TTL after the last success, like etcd's clients. */
  nextKeepAliveDelay(): number {
    return Math.max(50, this.ttlMs / 3);
  }
}
