/**
 * Decides when leases expire. Runs on every node, but only the node that holds leadership acts:
 * it proposes `lease_expire` for each lease whose TTL ran out by its monotonic clock, and
 * `lease_checkpoint` for a lease left unrenewed for half its TTL. Owns the per-lease deadlines;
 * must never change state except by proposing, and never expire a lease earlier than a full TTL
 * after its client sent its last renewal.
 *
 * Why that is safe with a clock: every node sets a lease's deadline when it applies a renewal
 * (grant, keepalive), which is after the client sent it, so the deadline is later than the
 * client's own (counted from sending). A checkpoint says "at most R ms were left" by the leader's
 * clock when it was proposed; a node applying it later sets its deadline R ms after applying,
 * later still. A node that comes to lead does not decide anything until it has applied every
 * entry committed before its term (so it has seen every acknowledged renewal); from then on its
 * own deadlines are sound. That is why a leader change no longer restarts every lease's TTL
 * (etcd#9888: flapping leadership kept a dead client's lease alive for ever): a lease expires
 * no later than TTL + about an election timeout after its last renewal, however often the
 * leader changes. A node that restarts, or restores a snapshot, counts each lease from then with
 * what its last checkpoint left (a whole TTL if none): late, never early.
 */
import type { KvCommand } from "./commands.js";
import type { KvStore, StoreEvent } from "./store.js";

export interface LeaseExpiryOptions {
  readonly store: KvStore;
  /** Proposes a command through Raft. */
  readonly propose: (c: KvCommand) => Promise<unknown>;
  /** Whether this node holds leadership now (a confirmed leader with a valid lease). */
  readonly isLeader: () => boolean;
  /** The node's commit and applied indexes, to know when a new leader has caught up. */
  readonly progress: () => { readonly commitIndex: number; readonly appliedIndex: number };
  /** How often deadlines are checked. Default 100 ms. */
  readonly intervalMs?: number;
  readonly now?: () => number;
}

export class LeaseExpiry {
  private readonly deadlines = new Map<number, number>();
  /** When this node last saw each lease renewed or checkpointed (its clock). */
  private readonly touched = new Map<number, number>();
  private readonly pending = new Set<number>();
  private leading = false;
  /** While leading: the commit index to apply before deciding anything (null: caught up). */
  private catchUpTo: number | null = null;
  private readonly now: () => number;
  private readonly timer: NodeJS.Timeout | null;
  private readonly unsubscribe: () => void;

  constructor(private readonly opts: LeaseExpiryOptions) {
    this.now = opts.now ?? (() => performance.now());
    this.unsubscribe = opts.store.subscribe((e) => this.onEvent(e));
    this.countAllFromNow();
    const interval = opts.intervalMs ?? 100;
    this.timer = interval > 0 ? setInterval(() => this.check(), interval) : null;
    this.timer?.unref();
  }

  private onEvent(e: StoreEvent): void {
    if (e.type === "lease") {
      if (e.alive) {
        this.deadlines.set(e.id, this.now() + (e.remainingMs ?? e.ttlMs));
        this.touched.set(e.id, this.now());
      } else {
        this.deadlines.delete(e.id);
        this.touched.delete(e.id);
      }
    } else if (e.type === "reset") {
      this.deadlines.clear();
      this.touched.clear();
      this.countAllFromNow();
    }
  }

  /** Every lease counted from now, with what its last checkpoint left of it. */
  private countAllFromNow(): void {
    const now = this.now();
    for (const l of this.opts.store.allLeases()) {
      this.deadlines.set(l.id, now + (l.remainingMs ?? l.ttlMs));
      this.touched.set(l.id, now);
    }
  }

  /** Milliseconds until the lease would expire by this node's clock (negative when overdue). */
  remainingMs(id: number): number | undefined {
    const d = this.deadlines.get(id);
    return d === undefined ? undefined : d - this.now();
  }

  check(): void {
    if (this.deadlines.size === 0) {
      // Nothing to expire (the common case of a partition that holds no lease): skip the
      // leadership check, and decide afresh (catching up first) once a lease appears.
      this.leading = false;
      return;
    }
    if (!this.opts.isLeader()) {
      this.leading = false;
      return;
    }
    if (!this.leading) {
      // Come to lead: first apply what was committed before (it may hold renewals this node has
      // not applied yet, acknowledged under the previous leader).
      this.leading = true;
      this.catchUpTo = this.opts.progress().commitIndex;
    }
    if (this.catchUpTo !== null) {
      if (this.opts.progress().appliedIndex < this.catchUpTo) return;
      this.catchUpTo = null;
    }
    const now = this.now();
    for (const [id, deadline] of this.deadlines) {
      if (this.pending.has(id)) continue;
      const lease = this.opts.store.lease(id);
      if (!lease) {
        this.deadlines.delete(id);
        this.touched.delete(id);
        continue;
      }
      let cmd: KvCommand | null = null;
      if (deadline <= now) cmd = { op: "lease_expire", id, seq: lease.seq };
      else if (now - (this.touched.get(id) ?? now) >= lease.ttlMs / 2)
        // At most one per lease per TTL/2, and only for a lease nobody renews: a lease kept alive
        // has its renewals in the log already.
        cmd = { op: "lease_checkpoint", id, seq: lease.seq, remainingMs: Math.ceil(deadline - now) };
      if (!cmd) continue;
      if (cmd.op === "lease_checkpoint") this.touched.set(id, now);
      this.pending.add(id);
      this.opts
        .propose(cmd)
        .catch(() => {
          // Not leader any more, or unknown outcome: the next check (or the next leader) decides again.
        })
        .finally(() => this.pending.delete(id));
    }
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.unsubscribe();
  }
}
