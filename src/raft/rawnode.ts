/**
 * The driver's handle on the core: feed it ticks, messages and requests, take Ready batches out,
 * and acknowledge each with advance() once it is persisted, sent and applied. Owns the
 * bookkeeping of what has been handed out and what is durable. Must never do the I/O itself.
 *
 * Only one Ready is outstanding at a time: ready() may not be called again before advance().
 * Steps and ticks between the two are fine; what they produce goes into the next Ready.
 */
import { coalesceMessages } from "./coalesce.js";
import { type ProposeResult, Raft, type RaftOptions, type ReadMode } from "./raft.js";
import {
  type ConfChange,
  type Configuration,
  type HardState,
  type Message,
  type NodeId,
  type Ready,
  type Role,
  type SoftState,
  sameHardState,
} from "./types.js";

/** A snapshot of the node's state for status pages and tests. */
export interface Status {
  readonly id: NodeId;
  readonly term: number;
  readonly vote: NodeId | null;
  readonly role: Role;
  readonly leader: NodeId | null;
  readonly commit: number;
  readonly applied: number;
  readonly lastIndex: number;
  readonly config: Configuration;
  /** Leader only: each member's match index. */
  readonly progress: ReadonlyMap<NodeId, { match: number; next: number; state: string }>;
  /** Leader only: the term of this leadership, usable as a fencing token (it grows with every new leadership). */
  readonly leadershipEpoch: number | null;
  readonly leaseValid: boolean;
  /** Follower only: a read lease from the current leader is in force (see `followerReadLeases`). */
  readonly followerLeaseValid: boolean;
}

export interface RawNodeOptions extends RaftOptions {
  /** Upper bound of committed entry bytes handed out in one Ready. Default 64 MiB. */
  readonly maxApplyBytes?: number;
}

export class RawNode {
  readonly raft: Raft;
  private prevHard: HardState;
  private prevSoft: SoftState;
  private outstanding = false;
  private handedHard: HardState | undefined;
  private readonly maxApplyBytes: number;

  constructor(opts: RawNodeOptions) {
    this.raft = new Raft(opts);
    this.maxApplyBytes = opts.maxApplyBytes ?? 64 << 20;
    this.prevHard = this.hardState();
    this.prevSoft = this.softState();
  }

  tick(): void {
    this.raft.tick();
  }

  /** A tick that passed while input could not be read; see Raft.tickHeld. */
  tickHeld(): void {
    this.raft.tickHeld();
  }

  /** After a stall of this node's clock, waits `ticks` more before any timeout acts; see Raft.graceAfterStall. */
  graceAfterStall(ticks: number): void {
    this.raft.graceAfterStall(ticks);
  }

  /** Catches a quiet group's clock up by `n` ticks; false if the group is awake. See Raft.elapseQuiet. */
  elapseQuiet(n: number): boolean {
    return this.raft.elapseQuiet(n);
  }

  /** Acts on the timeouts that fell due during tickHeld() ticks; see Raft.checkTimeouts. */
  checkTimeouts(): void {
    this.raft.checkTimeouts();
  }

  /** Starts an election now instead of waiting for the timeout (no effect on a leader or a non-voter). */
  campaign(): void {
    this.raft.hup();
  }

  step(m: Message): void {
    this.raft.step(m);
  }

  propose(data: Uint8Array | readonly Uint8Array[]): ProposeResult {
    return this.raft.propose(data instanceof Uint8Array ? [data] : data);
  }

  proposeConfChange(cc: ConfChange): ProposeResult {
    return this.raft.proposeConfChange(cc);
  }

  readIndex(requestId: number, mode: ReadMode = "quorum"): void {
    this.raft.readIndex(requestId, mode);
  }

  transferLeadership(to: NodeId): { ok: true } | { ok: false; message: string } {
    return this.raft.transferLeadership(to);
  }

  /** Call after compacting storage below a snapshot, so the core forgets configurations it no longer needs. */
  compacted(): void {
    this.raft.onCompacted();
  }

  private hardState(): HardState {
    return { term: this.raft.term, vote: this.raft.vote, commit: this.raft.log.committed };
  }

  private softState(): SoftState {
    return { leader: this.raft.leader, role: this.raft.role, term: this.raft.term };
  }

  hasReady(): boolean {
    if (this.outstanding) return false;
    const r = this.raft;
    const soft = this.prevSoft;
    return (
      r.msgs.length > 0 ||
      r.readStates.length > 0 ||
      r.snapshotChunks.length > 0 ||
      r.log.unstableEntries().length > 0 ||
      r.log.unstableSnapshot !== null ||
      r.log.hasNextCommitted() ||
      !sameHardState(this.hardState(), this.prevHard) ||
      soft.leader !== r.leader ||
      soft.role !== r.role ||
      soft.term !== r.term
    );
  }

  ready(): Ready {
    if (this.outstanding) throw new Error("raft: ready() called again before advance()");
    this.outstanding = true;
    const r = this.raft;
    const soft = this.softState();
    const real = this.hardState();
    let hard: HardState | undefined = real;
    if (sameHardState(real, this.prevHard)) hard = undefined;
    else if (r.bugs.skipVotePersist) {
      hard = { ...real, vote: real.term === this.prevHard.term ? this.prevHard.vote : null };
    }
    // What advance() will record as handed out: the real state, so a planted bug cannot make
    // hasReady() report work forever.
    this.handedHard = hard === undefined ? undefined : real;
    const termOrVoteChanged =
      hard !== undefined && (hard.term !== this.prevHard.term || hard.vote !== this.prevHard.vote);
    const entries = r.log.unstableEntries().slice();
    const leaderMessages: Message[] = [];
    const messages: Message[] = [];
    for (const m of r.msgs) {
      // A leader's messages may leave before the batch is durable only when its term and vote
      // already are: otherwise a crash could let it lead the same term twice (a single voter wins
      // in the very batch that records its new term).
      if (!termOrVoteChanged && (m.type === "append" || m.type === "heartbeat" || m.type === "snapshot")) {
        leaderMessages.push(m);
      } else messages.push(m);
    }
    const snapshot = r.log.unstableSnapshot ?? undefined;
    const rd: Ready = {
      softState:
        soft.leader !== this.prevSoft.leader ||
        soft.role !== this.prevSoft.role ||
        soft.term !== this.prevSoft.term
          ? soft
          : undefined,
      hardState: hard,
      snapshotChunks: r.snapshotChunks,
      snapshot,
      entries,
      // Every proposal and commit produced its own append: one per peer carries them all.
      leaderMessages: coalesceMessages(leaderMessages, r.maxMsgBytes),
      messages: coalesceMessages(messages, r.maxMsgBytes),
      committedEntries: r.log.nextCommitted(this.maxApplyBytes),
      readStates: r.readStates,
      mustSync: entries.length > 0 || snapshot !== undefined || termOrVoteChanged,
    };
    r.msgs = [];
    r.readStates = [];
    r.snapshotChunks = [];
    if (rd.softState) this.prevSoft = rd.softState;
    return rd;
  }

  /** Acknowledges the last Ready: it is persisted, its messages sent and its committed entries applied. */
  advance(rd: Ready): void {
    if (!this.outstanding) throw new Error("raft: advance() without an outstanding ready()");
    this.outstanding = false;
    if (rd.hardState) this.prevHard = this.handedHard ?? rd.hardState;
    if (rd.snapshot) this.raft.onSnapshotPersisted(rd.snapshot.index);
    if (rd.entries.length > 0) {
      const last = rd.entries[rd.entries.length - 1]!;
      this.raft.onPersisted(last.index, last.term);
    }
    if (rd.committedEntries.length > 0) {
      this.raft.log.appliedTo(rd.committedEntries[rd.committedEntries.length - 1]!.index);
    }
  }

  status(): Status {
    const r = this.raft;
    const progress = new Map<NodeId, { match: number; next: number; state: string }>();
    if (r.role === "leader")
      for (const [id, p] of r.progress) progress.set(id, { match: p.match, next: p.next, state: p.state });
    return {
      id: r.id,
      term: r.term,
      vote: r.vote,
      role: r.role,
      leader: r.leader,
      commit: r.log.committed,
      applied: r.log.applied,
      lastIndex: r.log.lastIndex(),
      config: r.config,
      progress,
      leadershipEpoch: r.role === "leader" ? r.term : null,
      leaseValid: r.leaseValid(),
      followerLeaseValid: r.followerLeaseValid(),
    };
  }
}
