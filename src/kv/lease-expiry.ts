/**
 * Decides when leases expire. Runs on every node, but only the node that holds leadership acts:
 * it proposes `lease_expire` for each lease whose TTL ran out by its monotonic clock. Owns the
 * per-lease deadlines; must never change state except by proposing, and never expire a lease
 * earlier than a full TTL after a renewal was applied here or after this node became leader.
 *
 * Why that is safe with a clock: a renewal is applied after the client sent it, so a deadline
 * set at apply time is later than the client's own (which it counts from sending). A node that
 * comes to lead restarts every lease's full TTL, because it cannot know when the previous leader
 * last renewed them — so a leader change never expires leases en masse. The `seq` in the expiry
 * voids it if a renewal was applied in between (the log orders them).
 */
import type { KvCommand } from "./commands.js";
import type { KvStore, StoreEvent } from "./store.js";

export interface LeaseExpiryOptions {
  readonly store: KvStore;
  /** Proposes a command through Raft. */
  readonly propose: (c: KvCommand) => Promise<unknown>;
  /** Whether this node holds leadership now (a confirmed leader with a valid lease). */
  readonly isLeader: () => boolean;
  /** How often deadlines are checked. Default 100 ms. */
  readonly intervalMs?: number;
  readonly now?: () => number;
}

export class LeaseExpiry {
  private readonly deadlines = new Map<number, number>();
  private readonly pending = new Set<number>();
  private leading = false;
  private readonly now: () => number;
  private readonly timer: NodeJS.Timeout;
  private readonly unsubscribe: () => void;

  constructor(private readonly opts: LeaseExpiryOptions) {
    this.now = opts.now ?? (() => performance.now());
    this.unsubscribe = opts.store.subscribe((e) => this.onEvent(e));
    for (const l of opts.store.allLeases()) this.deadlines.set(l.id, this.now() + l.ttlMs);
    this.timer = setInterval(() => this.check(), opts.intervalMs ?? 100);
    this.timer.unref();
  }

  private onEvent(e: StoreEvent): void {
    if (e.type === "lease") {
      if (e.alive) this.deadlines.set(e.id, this.now() + e.ttlMs);
      else this.deadlines.delete(e.id);
    } else if (e.type === "reset") {
      this.deadlines.clear();
      this.extendAll();
    }
  }

  /** This node has just come to lead: every live lease gets its full TTL from now. */
  extendAll(): void {
    const now = this.now();
    for (const l of this.opts.store.allLeases()) {
      this.deadlines.set(l.id, Math.max(this.deadlines.get(l.id) ?? 0, now + l.ttlMs));
    }
  }

  /** Milliseconds until the lease would expire by this node's clock (negative when overdue). */
  remainingMs(id: number): number | undefined {
    const d = this.deadlines.get(id);
    return d === undefined ? undefined : d - this.now();
  }

  check(): void {
    if (!this.opts.isLeader()) {
      this.leading = false;
      return;
    }
    // Coming to lead is noticed here too, not only through the node's 'elected' event, so no
    // expiry is ever decided on deadlines this node set as a follower: it may not yet have
    // applied a keepalive that was committed (and acknowledged) under the previous leader.
    if (!this.leading) {
      this.leading = true;
      this.extendAll();
    }
    const now = this.now();
    for (const [id, deadline] of this.deadlines) {
      if (deadline > now || this.pending.has(id)) continue;
      const lease = this.opts.store.lease(id);
      if (!lease) {
        this.deadlines.delete(id);
        continue;
      }
      this.pending.add(id);
      this.opts
        .propose({ op: "lease_expire", id, seq: lease.seq })
        .catch(() => {
          // Not leader any more, or unknown outcome: the next check (or the next leader) decides again.
        })
        .finally(() => this.pending.delete(id));
    }
  }

  stop(): void {
    clearInterval(this.timer);
    this.unsubscribe();
  }
}
