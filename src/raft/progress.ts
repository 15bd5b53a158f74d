/**
 * The leader's view of one follower: how much of the log it has (match), what to send next, and
 * how fast to send it (probe / replicate / snapshot, with a bounded in-flight window); with
 * follower read leases, also the follower's last clock reading and the lease granted to it. Owns
 * flow control and that bookkeeping; must never touch the log or decide commitment.
 */
import type { SnapshotMetadata } from "./types.js";

export type ProgressState = "probe" | "replicate" | "snapshot";

export class Progress {
  match = 0;
  next: number;
  state: ProgressState = "probe";
  /** In probe state, one append is outstanding until a response or heartbeat response arrives. */
  probeSent = false;
  /** Last indexes of appends in flight (replicate state), oldest first. */
  private inflight: number[] = [];
  readonly maxInflight: number;
  /** The snapshot being sent and how many of its bytes the follower has acknowledged. */
  pendingSnapshot: SnapshotMetadata | null = null;
  snapshotOffset = 0;
  /** Leader tick at which this snapshot chunk went out; resent if unanswered for an election timeout. */
  snapshotSentTick = 0;
  /** Highest `sentTick` echoed back: the follower acknowledged us as leader at that time. */
  ackedTick = Number.NEGATIVE_INFINITY;
  /** Highest read sequence echoed back (ReadIndex rounds). */
  ackedReadSeq = 0;
  /**
   * Follower read leases: the follower's latest reading of its own clock (`tick`, in the clock
   * life `nonce`) and the leader's tick when it arrived (`at`). The reading was taken before `at`,
   * which is what lets a grant be expressed on the follower's clock without trusting delivery times.
   */
  clockReading: { readonly tick: number; readonly nonce: number; readonly at: number } | null = null;
  /** Leader tick until which this follower may hold a read lease the leader granted (exclusive). */
  readLeaseUntil = Number.NEGATIVE_INFINITY;
  /**
   * Follower read leases: the entry a majority holds that this lease holder still lacks, and the
   * leader tick since when it has waited for it (null: it holds nothing back).
   */
  holdBack: { readonly index: number; readonly since: number } | null = null;
  /** Leader tick before which this follower gets no new read lease: it held commits back too long. */
  leaseBarredUntil = Number.NEGATIVE_INFINITY;
  isLearner: boolean;

  constructor(next: number, maxInflight: number, isLearner: boolean) {
    this.next = next;
    this.maxInflight = maxInflight;
    this.isLearner = isLearner;
  }

  becomeProbe(): void {
    if (this.state === "snapshot" && this.pendingSnapshot) {
      this.next = Math.max(this.match + 1, this.pendingSnapshot.index + 1);
    } else {
      this.next = this.match + 1;
    }
    this.state = "probe";
    this.probeSent = false;
    this.pendingSnapshot = null;
    this.inflight = [];
  }

  becomeReplicate(): void {
    this.state = "replicate";
    this.next = this.match + 1;
    this.probeSent = false;
    this.inflight = [];
  }

  becomeSnapshot(meta: SnapshotMetadata, tick: number): void {
    this.state = "snapshot";
    this.pendingSnapshot = meta;
    this.snapshotOffset = 0;
    this.snapshotSentTick = tick;
    this.inflight = [];
  }

  /** The follower acknowledged entries up to `index`. Returns whether match moved. */
  maybeUpdate(index: number): boolean {
    let updated = false;
    if (index > this.match) {
      this.match = index;
      updated = true;
      this.probeSent = false;
    }
    if (this.next < index + 1) this.next = index + 1;
    while (this.inflight.length > 0 && this.inflight[0]! <= index) this.inflight.shift();
    return updated;
  }

  /**
   * A rejection for the append at `rejected`; `hint` is where to retry. Returns false for a stale
   * rejection (it answers an append we have since moved past).
   */
  maybeDecrTo(rejected: number, hint: number): boolean {
    if (this.state === "replicate") {
      if (rejected <= this.match) return false;
      this.next = this.match + 1;
      return true;
    }
    if (this.next - 1 !== rejected) return false;
    this.next = Math.max(Math.min(rejected, hint + 1), this.match + 1, 1);
    this.probeSent = false;
    return true;
  }

  /** Records an append that carries entries up to `lastIndex`. */
  sentEntries(lastIndex: number, count: number): void {
    if (this.state === "replicate") {
      if (count > 0) {
        this.next = lastIndex + 1;
        this.inflight.push(lastIndex);
      }
    } else if (this.state === "probe") {
      this.probeSent = true;
    }
  }

  /** Whether the leader must hold back further appends to this follower. */
  isPaused(): boolean {
    switch (this.state) {
      case "probe":
        return this.probeSent;
      case "replicate":
        return this.inflight.length >= this.maxInflight;
      case "snapshot":
        return true;
    }
  }

  /**
   * Keeps the most useful clock reading: the latest of the follower's current life. A reading of
   * another life (a restart) replaces it; an older one of the same life, overtaken on the wire, does not.
   */
  noteClockReading(tick: number, nonce: number, at: number): void {
    const r = this.clockReading;
    if (r === null || r.nonce !== nonce || tick > r.tick) this.clockReading = { tick, nonce, at };
  }

  /** A heartbeat response shows the follower is alive: let a stalled probe or a full window retry. */
  onHeartbeatResponse(): void {
    this.probeSent = false;
    if (this.state === "replicate" && this.inflight.length >= this.maxInflight) this.inflight.shift();
  }
}
