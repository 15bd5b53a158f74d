/**
 * The Raft algorithm: elections (PreVote, CheckQuorum, leader lease), log replication with flow
 * control, snapshots sent in chunks, ReadIndex, follower read leases, leadership transfer and
 * one-at-a-time membership changes. Owns every protocol decision. Must never do I/O, read a clock
 * or draw randomness other than from the injected source: time is a count of tick() calls, and all
 * effects leave through the outbox (`msgs`, `readStates`) and the log's unstable part, collected by
 * RawNode into a Ready.
 *
 * Structure follows the paper: step() does the term checks common to every role (§5.1), then
 * dispatches to stepLeader / stepCandidate / stepFollower.
 */
import { RaftLog } from "./log.js";
import { Progress } from "./progress.js";
import { majorityValue, voteResult } from "./quorum.js";
import { type RandomSource, randomInt } from "./random.js";
import type { LogStorage } from "./storage.js";
import {
  type ConfChange,
  type Configuration,
  decodeConfig,
  type Entry,
  encodeConfig,
  entrySize,
  type Message,
  type MessageType,
  type NodeId,
  plainConfig,
  type ReadState,
  type Role,
  type SnapshotChunk,
  type SnapshotMetadata,
} from "./types.js";

/**
 * Known bugs that can be switched on to prove the simulator catches them. Test-only: the product
 * never sets these.
 */
export interface PlantedBugs {
  /** Commit by counting replicas of an entry from an earlier term (Figure 8 of the paper). */
  readonly commitOldTermEntries?: boolean;
  /** Grant votes without the §5.4.1 log up-to-date check. */
  readonly grantVoteWithoutLogCheck?: boolean;
  /** Hand a vote to storage without the vote (so a restart forgets it). Applied by RawNode. */
  readonly skipVotePersist?: boolean;
  /** With follower read leases: commit without waiting for the followers that hold a read lease. */
  readonly commitIgnoringReadLeases?: boolean;
  /**
   * With follower read leases: a follower counts its lease from when the grant arrived (not from a
   * clock reading it took before the leader received it), so a grant delayed on the wire outlives
   * the leader's lease.
   */
  readonly readLeaseFromReceipt?: boolean;
}

/** How a read is confirmed: a quorum round (safe), or the leader's lease when it is valid. */
export type ReadMode = "quorum" | "lease";

export interface RaftOptions {
  readonly id: NodeId;
  readonly storage: LogStorage;
  /** Seeded generator for election jitter. */
  readonly random: RandomSource;
  /** Ticks without a leader before campaigning; the actual timeout is randomized in [electionTicks, 2×electionTicks). Default 10. */
  readonly electionTicks?: number;
  /** Ticks between leader heartbeats. Default 1. */
  readonly heartbeatTicks?: number;
  /** Run a PreVote round before raising the term (dissertation §9.6). Default true. */
  readonly preVote?: boolean;
  /** Leader steps down when it has not heard from a quorum for an election timeout; followers in contact with a leader refuse votes. Default true. */
  readonly checkQuorum?: boolean;
  /** Ticks by which clocks may disagree over one election timeout; the lease is electionTicks − this. Default 2. */
  readonly leaseDriftTicks?: number;
  /** Upper bound of entry bytes in one append message. Default 1 MiB. */
  readonly maxMsgBytes?: number;
  /** Appends in flight to one follower in replicate state. Default 256. */
  readonly maxInflight?: number;
  /** Snapshot bytes per message. Default 1 MiB. */
  readonly maxSnapshotChunkBytes?: number;
  /** Proposals are refused while this many bytes are appended but not committed. Default 64 MiB. */
  readonly maxUncommittedBytes?: number;
  /**
   * Follower read leases (default false). As leader, grant every follower a read lease with each
   * heartbeat and append while the leader's own lease is valid, and count an entry as committed
   * only once every follower that may hold a lease has it too: a follower then answers `lease`
   * reads locally, with no round trip, and stays linearizable. Writes pay for it: they wait for
   * the slowest lease holder instead of the nearest majority, and a lease holder that disappears
   * holds commits back until its lease has run out (at most an election timeout). As follower,
   * a node takes the grants of any leader that sends them, whatever this option says.
   */
  readonly followerReadLeases?: boolean;
  /**
   * Quiescence of an idle group (default false), for a host running many groups (see
   * multiraft/host.ts): a leader whose log is committed and held by every member, with nothing
   * pending, sends one last heartbeat marked quiet and then stops heartbeating and checking its
   * quorum; its followers stop their election timers. Any proposal, read, transfer or message
   * (but an acknowledgement) wakes it. A quiet leader's lease runs out as it would without
   * acknowledgements, so it serves no lease reads and runs no leader-only job while quiet (the
   * driver keeps such a group awake: setQuiesceAllowed). Failure detection becomes the host's:
   * it must call leaderSilent() on the followers of a leader whose node it has not heard from for
   * an election timeout, and wake() a quiet leader that has not heard from a quorum for as long.
   * Not with followerReadLeases (a group with them never goes quiet).
   */
  readonly quiesce?: boolean;
  /** Index already applied by the state machine (when restarting). */
  readonly applied?: number;
  /** Test-only planted bugs. */
  readonly bugs?: PlantedBugs;
}

/** Why a proposal was refused. */
export type ProposeError =
  | "not_leader"
  | "transfer_in_progress"
  | "too_many_uncommitted"
  | "config_pending"
  | "no_commit_in_term"
  | "invalid_config_change";

export type ProposeResult =
  | { readonly ok: true; readonly index: number; readonly term: number }
  | {
      readonly ok: false;
      readonly error: ProposeError;
      readonly leader: NodeId | null;
      readonly message: string;
    };

interface PendingRead {
  readonly requestId: number;
  readonly from: NodeId;
  readonly index: number;
  readonly seq: number;
}

interface IncomingSnapshot {
  readonly metadata: SnapshotMetadata;
  received: number;
}

const EMPTY = new Uint8Array(0);

export class Raft {
  readonly id: NodeId;
  term = 0;
  vote: NodeId | null = null;
  role: Role = "follower";
  leader: NodeId | null = null;
  readonly log: RaftLog;

  /** Configuration from the snapshot, then every config entry after it: the latest one is in effect (dissertation §4.1). */
  private baseConfig: Configuration;
  private baseConfigIndex: number;
  private configLog: { index: number; config: Configuration }[] = [];
  config: Configuration;
  configIndex: number;

  readonly progress = new Map<NodeId, Progress>();
  private votes = new Map<NodeId, boolean>();

  /** Outbox: drained by RawNode.ready(). */
  msgs: Message[] = [];
  readStates: ReadState[] = [];
  /** Received snapshot chunks for the caller to write (the core never holds a whole snapshot). */
  snapshotChunks: SnapshotChunk[] = [];

  readonly electionTicks: number;
  readonly heartbeatTicks: number;
  readonly preVote: boolean;
  readonly checkQuorum: boolean;
  readonly leaseDriftTicks: number;
  readonly maxMsgBytes: number;
  readonly maxInflight: number;
  readonly maxSnapshotChunkBytes: number;
  readonly maxUncommittedBytes: number;
  readonly followerReadLeases: boolean;
  readonly quiesceEnabled: boolean;
  readonly bugs: PlantedBugs;
  private readonly random: RandomSource;

  /** Quiet (see RaftOptions.quiesce): no heartbeats, no election timer, no quorum check. */
  quiesced = false;
  /** The driver's say on whether this group may go quiet (a leader whose lease a job needs may not). */
  private quiesceAllowed = true;
  /**
   * Members the host's failure detector holds to be down: a leader may go quiet without them
   * (a minority), and the host wakes it when one comes back.
   */
  quietIgnores: ReadonlySet<NodeId> = new Set();

  /** Ticks seen by this node since it started: its own clock, used by leases. */
  tickCount = 0;
  private electionElapsed = 0;
  private heartbeatElapsed = 0;
  private randomizedElectionTimeout = 0;
  /** Peers heard from during the current CheckQuorum window. */
  private recentActive = new Set<NodeId>();

  /** Leader: where leadership is being transferred, if anywhere. */
  transferee: NodeId | null = null;
  /** Set once this leader sent TimeoutNow: the target may win with forced votes, so the lease is void for the term. */
  private leaseVoid = false;
  private uncommittedBytes = 0;
  private uncommittedMarks: { index: number; bytes: number }[] = [];

  private readSeq = 0;
  private pendingReads: PendingRead[] = [];
  private readsAwaitingCommit: { requestId: number; from: NodeId; mode: ReadMode }[] = [];

  private incoming: IncomingSnapshot | null = null;

  // Follower read leases, follower side (all void on any change of term or leader).
  /** Own tick until which a read lease from the current leader lasts (exclusive). */
  private readLeaseUntil = Number.NEGATIVE_INFINITY;
  /** The highest leader commit index a grant carried: a lease read waits for at least this. */
  private readLeaseCommit = 0;
  /** The highest index acknowledged to the current leader: the leader's commit rule counted on it. */
  private readLeaseMatch = 0;
  /** Drawn on first use: tells this life's clock readings from a previous life's (ticks restart at 0). */
  private clockNonce: number | null = null;
  /**
   * Leader side: lease holders removed from the configuration while their lease ran. Their progress
   * is gone, but they may still answer reads until the lease ends, so commits wait for them still.
   */
  private departedReadLeases = new Map<NodeId, { readonly until: number; readonly match: number }>();

  constructor(opts: RaftOptions) {
    this.id = opts.id;
    this.electionTicks = opts.electionTicks ?? 10;
    this.heartbeatTicks = opts.heartbeatTicks ?? 1;
    if (!(this.heartbeatTicks >= 1 && this.electionTicks > this.heartbeatTicks)) {
      throw new Error("raft: need 1 <= heartbeatTicks < electionTicks");
    }
    this.preVote = opts.preVote ?? true;
    this.checkQuorum = opts.checkQuorum ?? true;
    this.leaseDriftTicks = opts.leaseDriftTicks ?? 2;
    this.maxMsgBytes = opts.maxMsgBytes ?? 1 << 20;
    this.maxInflight = opts.maxInflight ?? 256;
    this.maxSnapshotChunkBytes = opts.maxSnapshotChunkBytes ?? 1 << 20;
    this.maxUncommittedBytes = opts.maxUncommittedBytes ?? 64 << 20;
    this.followerReadLeases = opts.followerReadLeases ?? false;
    this.quiesceEnabled = (opts.quiesce ?? false) && !this.followerReadLeases;
    this.bugs = opts.bugs ?? {};
    this.random = opts.random;

    const storage = opts.storage;
    this.log = new RaftLog(storage, opts.applied ?? 0);
    this.log.onAppend = (entries) => this.onLogAppend(entries);
    const { hardState, config } = storage.initialState();
    this.baseConfig = config;
    this.baseConfigIndex = storage.firstIndex() - 1;
    this.config = config;
    this.configIndex = this.baseConfigIndex;
    this.scanConfigEntries(storage.firstIndex(), storage.lastIndex() + 1);

    if (hardState.commit > storage.lastIndex()) {
      throw new Error(
        `raft: stored commit ${hardState.commit} is beyond the last stored index ${storage.lastIndex()}`,
      );
    }
    this.term = hardState.term;
    this.vote = hardState.vote;
    this.log.commitTo(hardState.commit);
    this.becomeFollower(this.term, null);
  }

  // ---------------------------------------------------------------- configuration

  private scanConfigEntries(lo: number, hi: number): void {
    for (let i = lo; i < hi; ) {
      const batch = this.log.slice(i, hi, 8 << 20);
      for (const e of batch) if (e.type === "config") this.pushConfig(e.index, decodeConfig(e.data));
      i += batch.length;
    }
  }

  private pushConfig(index: number, config: Configuration): void {
    this.configLog.push({ index, config });
    this.setConfig(config, index);
  }

  /** Called by the log for every entry appended (after any truncation it performed). */
  private onLogAppend(entries: readonly Entry[]): void {
    const from = entries[0]!.index;
    if (this.configLog.length > 0 && this.configLog[this.configLog.length - 1]!.index >= from) {
      // A conflicting suffix was cut: configurations it carried are no longer in the log.
      while (this.configLog.length > 0 && this.configLog[this.configLog.length - 1]!.index >= from)
        this.configLog.pop();
      const last = this.configLog[this.configLog.length - 1];
      this.setConfig(last ? last.config : this.baseConfig, last ? last.index : this.baseConfigIndex);
    }
    for (const e of entries) if (e.type === "config") this.pushConfig(e.index, decodeConfig(e.data));
  }

  private setConfig(config: Configuration, index: number): void {
    this.config = config;
    this.configIndex = index;
    if (this.role === "leader") this.syncProgressWithConfig();
  }

  /** The configuration in effect at `index` (for snapshots taken at an applied index). */
  configAt(index: number): Configuration {
    let c = this.baseConfig;
    for (const x of this.configLog) {
      if (x.index <= index) c = x.config;
      else break;
    }
    return c;
  }

  isVoter(id: NodeId = this.id): boolean {
    return this.config.voters.includes(id);
  }

  private members(): NodeId[] {
    return [...this.config.voters, ...this.config.learners];
  }

  private syncProgressWithConfig(): void {
    const members = new Set(this.members());
    members.add(this.id);
    for (const [id, pr] of [...this.progress]) {
      if (members.has(id)) continue;
      if (this.tickCount < pr.readLeaseUntil) {
        this.departedReadLeases.set(id, { until: pr.readLeaseUntil, match: pr.match });
      }
      this.progress.delete(id);
    }
    for (const id of members) {
      const learner = !this.config.voters.includes(id);
      const pr = this.progress.get(id);
      if (!pr) {
        const np = new Progress(this.log.lastIndex() + 1, this.maxInflight, learner);
        if (id === this.id) np.match = this.stableLastIndex();
        this.progress.set(id, np);
      } else if (pr.isLearner !== learner) {
        pr.isLearner = learner;
      }
    }
    if (this.transferee !== null && !this.config.voters.includes(this.transferee)) this.transferee = null;
  }

  // ---------------------------------------------------------------- role changes

  private resetRandomizedElectionTimeout(): void {
    this.randomizedElectionTimeout = randomInt(this.random, this.electionTicks, 2 * this.electionTicks);
  }

  private reset(term: number): void {
    if (this.term !== term) {
      this.term = term;
      this.vote = null;
    }
    this.leader = null;
    this.quiesced = false;
    this.electionElapsed = 0;
    this.heartbeatElapsed = 0;
    this.resetRandomizedElectionTimeout();
    this.transferee = null;
    this.leaseVoid = false;
    this.votes.clear();
    this.recentActive.clear();
    this.failPendingReads();
    this.progress.clear();
    this.uncommittedBytes = 0;
    this.uncommittedMarks = [];
    this.voidReadLease();
    this.readLeaseMatch = 0;
    this.departedReadLeases.clear();
  }

  becomeFollower(term: number, leader: NodeId | null): void {
    this.reset(term);
    this.role = "follower";
    this.leader = leader;
  }

  private becomePreCandidate(): void {
    if (this.role === "leader") throw new Error("raft: leader cannot become pre-candidate");
    // PreVote changes neither term nor vote: a node cut off from the cluster cannot inflate terms.
    this.votes.clear();
    this.role = "preCandidate";
    this.leader = null;
    this.quiesced = false;
    this.voidReadLease();
  }

  private becomeCandidate(): void {
    if (this.role === "leader") throw new Error("raft: leader cannot become candidate");
    this.reset(this.term + 1);
    this.vote = this.id;
    this.role = "candidate";
  }

  private becomeLeader(): void {
    if (this.role === "follower") throw new Error("raft: follower cannot become leader");
    this.reset(this.term);
    this.role = "leader";
    this.leader = this.id;
    this.syncProgressWithConfig();
    for (const pr of this.progress.values()) {
      pr.next = this.log.lastIndex() + 1;
      pr.ackedTick = Number.NEGATIVE_INFINITY;
    }
    this.progress.get(this.id)!.match = this.stableLastIndex();
    // A no-op opens the term: entries of earlier terms commit only with it (§5.4.2), and ReadIndex waits for it.
    this.appendEntries([{ term: this.term, index: this.log.lastIndex() + 1, type: "normal", data: EMPTY }]);
    this.bcastAppend();
  }

  private stableLastIndex(): number {
    const unstable = this.log.unstableEntries();
    if (unstable.length > 0) return unstable[0]!.index - 1;
    if (this.log.unstableSnapshot) return this.log.unstableSnapshot.index - 1;
    return this.log.storage.lastIndex();
  }

  /** True when this node may campaign: a voter in the configuration it knows. */
  promotable(): boolean {
    return this.isVoter(this.id);
  }

  private campaign(kind: "preVote" | "vote" | "transfer"): void {
    if (!this.promotable()) return;
    let term: number;
    let type: MessageType;
    if (kind === "preVote") {
      this.becomePreCandidate();
      term = this.term + 1;
      type = "preVote";
    } else {
      this.becomeCandidate();
      term = this.term;
      type = "vote";
    }
    this.votes.set(this.id, true);
    if (this.tally() === "won") {
      if (kind === "preVote") this.campaign("vote");
      else this.becomeLeader();
      return;
    }
    const index = this.log.lastIndex();
    const logTerm = this.log.lastTerm();
    for (const id of this.config.voters) {
      if (id === this.id) continue;
      this.send({ type, from: this.id, to: id, term, index, logTerm, force: kind === "transfer" });
    }
  }

  private tally(): "won" | "lost" | "pending" {
    return voteResult(this.config.voters, this.votes);
  }

  /** Starts an election now (as if the election timeout fired): PreVote first when enabled. */
  hup(): void {
    if (this.role === "leader") return;
    this.electionElapsed = 0;
    this.campaign(this.preVote ? "preVote" : "vote");
  }

  // ---------------------------------------------------------------- ticks

  /** Advance logical time by one tick. */
  tick(): void {
    this.tickCount++;
    if (this.quiesced) return; // the clock moves (leases run out); nothing else does
    if (this.role === "leader") this.tickLeader(true);
    else this.tickElection(true);
  }

  /**
   * Advance logical time by one tick that passed while the driver could not read its input (a
   * stalled event loop catching up): the clock, leases and heartbeats move as with tick(), but an
   * election timeout or a leader's quorum check that falls due waits for checkTimeouts(), which
   * the driver calls once the messages that arrived meanwhile have been stepped. Acting before
   * would time out on heartbeats (or acknowledgements) that are already here, unread.
   */
  tickHeld(): void {
    this.tickCount++;
    if (this.quiesced) return;
    if (this.role === "leader") this.tickLeader(false);
    else this.tickElection(false);
  }

  /**
   * Advances a quiet group's clock by `n` ticks at once and returns true; returns false (and
   * does nothing) when the group is awake. A quiet group's ticks only move its clock, so a host
   * with many quiet groups need not tick each one: it catches a group's clock up like this
   * before the group's next input.
   */
  elapseQuiet(n: number): boolean {
    if (!this.quiesced) return false;
    if (n > 0) this.tickCount += n;
    return true;
  }

  /**
   * After a stall of this node's own clock (tickHeld() caught up many ticks at once), waits at
   * least `ticks` more before acting on an election timeout or a leader's quorum check. While
   * this node could not run it could not hear anyone either, and a stall of the whole machine
   * (a paused VM, a starved host) stops the leader as well: the first heartbeat after it comes
   * one heartbeat interval later, and campaigning before it would depose a healthy leader. Only
   * ever delays a campaign, a vote granted or a step-down, so no lease is shortened by it (a
   * leader's lease counts from its followers' acknowledgements, not from this timer).
   */
  graceAfterStall(ticks: number): void {
    if (!(ticks > 0) || this.quiesced) return;
    // As if the leader (or, for a leader, a quorum) was last heard `ticks` before the timeout: a
    // follower is back inside the leader's lease for them, so it refuses other PreVotes too.
    this.electionElapsed = Math.min(this.electionElapsed, Math.max(0, this.electionTicks - ticks));
  }

  /** Acts on an election timeout or quorum check that fell due during tickHeld() ticks. */
  checkTimeouts(): void {
    if (this.role === "leader") {
      if (this.electionElapsed >= this.electionTicks) this.leaderTimeout();
    } else if (this.promotable() && this.electionElapsed >= this.randomizedElectionTimeout) {
      this.electionElapsed = 0;
      this.campaign(this.preVote ? "preVote" : "vote");
    }
  }

  private tickElection(act: boolean): void {
    this.electionElapsed++;
    if (act && this.promotable() && this.electionElapsed >= this.randomizedElectionTimeout) {
      this.electionElapsed = 0;
      this.campaign(this.preVote ? "preVote" : "vote");
    }
  }

  /** The leader's election-timeout duties: step down without a live quorum, abandon a stale transfer. False when it stepped down. */
  private leaderTimeout(): boolean {
    this.electionElapsed = 0;
    if (this.checkQuorum) {
      this.recentActive.add(this.id);
      let active = 0;
      for (const id of this.config.voters) if (this.recentActive.has(id)) active++;
      this.recentActive.clear();
      if (this.config.voters.length > 0 && active < (this.config.voters.length >> 1) + 1) {
        this.becomeFollower(this.term, null);
        return false;
      }
    }
    // A transfer that has not completed within an election timeout is abandoned.
    this.transferee = null;
    return true;
  }

  private tickLeader(act: boolean): void {
    this.heartbeatElapsed++;
    this.electionElapsed++;
    if (act && this.electionElapsed >= this.electionTicks && !this.leaderTimeout()) return;
    if (this.followerReadLeases) {
      this.tickReadLeases();
      if (this.role !== "leader") return;
    }
    for (const [id, pr] of this.progress) {
      if (pr.state === "snapshot" && this.tickCount - pr.snapshotSentTick >= this.electionTicks) {
        this.sendSnapshotChunk(id, pr);
      }
    }
    if (this.heartbeatElapsed >= this.heartbeatTicks) {
      this.heartbeatElapsed = 0;
      if (this.mayQuiesceNow()) {
        this.bcastHeartbeat(undefined, true);
        this.quiesced = true;
      } else {
        this.bcastHeartbeat();
      }
    }
  }

  // ---------------------------------------------------------------- quiescence

  /**
   * Whether this leader may go quiet: nothing is pending, every entry is committed (one of this
   * term among them) and held by every member the host holds alive (a majority of voters at
   * least), each of which answered within an election timeout.
   * Its last heartbeat then carries the final commit index, so nobody is left waiting on it.
   */
  private mayQuiesceNow(): boolean {
    if (!this.quiesceEnabled || !this.quiesceAllowed || this.role !== "leader") return false;
    if (this.transferee !== null || this.pendingReads.length > 0 || this.readsAwaitingCommit.length > 0)
      return false;
    const last = this.log.lastIndex();
    if (this.log.committed !== last || this.log.term(last) !== this.term) return false;
    let down = 0;
    for (const [id, pr] of this.progress) {
      if (id !== this.id && this.quietIgnores.has(id)) {
        if (this.config.voters.includes(id)) down++;
        continue;
      }
      if (pr.match !== last) return false;
      if (id === this.id) continue;
      if (pr.state !== "replicate" || this.tickCount - pr.ackedTick >= this.electionTicks) return false;
    }
    return this.config.voters.length - down >= (this.config.voters.length >> 1) + 1;
  }

  /** Whether this group may go quiet (default true); disallowing it wakes the group. */
  setQuiesceAllowed(allowed: boolean): void {
    this.quiesceAllowed = allowed;
    if (!allowed) this.wake();
  }

  /**
   * Ends a quiet spell: a leader heartbeats at once (which wakes its followers) and starts a
   * fresh quorum check; a follower restarts its election timer.
   */
  wake(): void {
    if (!this.quiesced) return;
    this.quiesced = false;
    this.electionElapsed = 0;
    if (this.role !== "leader") return;
    this.heartbeatElapsed = 0;
    this.recentActive.clear();
    this.bcastHeartbeat();
  }

  /**
   * The host has not heard from this quiet follower's leader's node for an election timeout:
   * the follower's timer runs again as if the leader had been silent that long (it was, so the
   * follower is out of its lease and grants votes), and it campaigns within half a timeout more
   * (still randomized, so the followers of a dead leader rarely split the vote): a quiet group
   * is led again within two election timeouts of its leader's death, as an awake one is.
   */
  leaderSilent(): void {
    if (!this.quiesced || this.role === "leader") return;
    this.quiesced = false;
    this.electionElapsed = this.electionTicks;
    this.randomizedElectionTimeout =
      this.electionTicks + randomInt(this.random, 0, Math.max(1, this.electionTicks >> 1));
  }

  // ---------------------------------------------------------------- step

  /** Handle one message from a peer. Messages not addressed to this node are ignored. */
  step(m: Message): void {
    if (m.to !== this.id || m.from === this.id) return;
    // A leader never campaigns: a quiet follower asked for a vote by its own leader knows that
    // leadership is over (it restarted or stepped down) though its node still answers pings.
    if (this.quiesced && m.from === this.leader && (m.type === "vote" || m.type === "preVote"))
      this.leaderSilent();
    if (m.term > this.term) {
      if (m.type === "vote" || m.type === "preVote") {
        if (!m.force && this.inLease()) {
          // A live leader's followers do not disturb it (§9.6 / CheckQuorum). A quiet leader wakes:
          // the candidate missed its last heartbeat, or restarted, and needs to hear from it.
          if (this.role === "leader") this.wake();
          return;
        }
      }
      if (m.type === "preVote" || (m.type === "preVoteResp" && !m.reject)) {
        // A PreVote never changes our term; a granted PreVote response is counted as is.
      } else if (m.type === "append" || m.type === "heartbeat" || m.type === "snapshot") {
        this.becomeFollower(m.term, m.from);
      } else {
        this.becomeFollower(m.term, null);
      }
    } else if (m.term < this.term) {
      if ((this.checkQuorum || this.preVote) && (m.type === "append" || m.type === "heartbeat")) {
        // A stale leader learns our term and steps down (it may have been cut off and come back).
        this.send({
          type: "appendResp",
          from: this.id,
          to: m.from,
          term: this.term,
          index: 0,
          reject: false,
        });
      } else if (m.type === "preVote") {
        this.send({ type: "preVoteResp", from: this.id, to: m.from, term: this.term, reject: true });
      }
      return;
    }

    if (m.type === "vote" || m.type === "preVote") {
      this.handleVoteRequest(m);
      return;
    }
    switch (this.role) {
      case "leader":
        this.stepLeader(m);
        break;
      case "candidate":
      case "preCandidate":
        this.stepCandidate(m);
        break;
      case "follower":
        this.stepFollower(m);
        break;
    }
  }

  /** A follower (or a node recently started) that may still be inside a live leader's lease. */
  private inLease(): boolean {
    if (!this.checkQuorum) return false;
    if (this.tickCount < this.electionTicks) return true; // after a restart we cannot know whether we acked a lease
    // A leader's own clock may be past its quorum check between tickHeld() and checkTimeouts().
    if (this.role === "leader") return true;
    return this.leader !== null && this.electionElapsed < this.electionTicks;
  }

  private handleVoteRequest(m: Message): void {
    const isPre = m.type === "preVote";
    const canVote =
      this.vote === m.from || (this.vote === null && this.leader === null) || (isPre && m.term > this.term);
    const upToDate = this.bugs.grantVoteWithoutLogCheck || this.log.isUpToDate(m.index ?? 0, m.logTerm ?? 0);
    const respType = isPre ? "preVoteResp" : "voteResp";
    if (canVote && upToDate) {
      this.send({ type: respType, from: this.id, to: m.from, term: m.term, reject: false });
      if (!isPre) {
        this.electionElapsed = 0;
        this.vote = m.from;
      }
    } else {
      this.send({ type: respType, from: this.id, to: m.from, term: this.term, reject: true });
    }
  }

  private stepCandidate(m: Message): void {
    switch (m.type) {
      case "append":
      case "heartbeat":
      case "snapshot":
        // Someone won this term (§5.2).
        this.becomeFollower(m.term, m.from);
        this.stepFollower(m);
        return;
      case "preVoteResp":
      case "voteResp": {
        const expected = this.role === "preCandidate" ? "preVoteResp" : "voteResp";
        if (m.type !== expected) return;
        if (!m.reject && this.role === "preCandidate" && m.term !== this.term + 1) return;
        this.votes.set(m.from, !m.reject);
        const r = this.tally();
        if (r === "won") {
          if (this.role === "preCandidate") this.campaign("vote");
          else {
            this.becomeLeader();
          }
        } else if (r === "lost") {
          this.becomeFollower(this.term, null);
        }
        return;
      }
      case "timeoutNow":
        return;
      case "readIndexResp":
        this.readStates.push({ requestId: m.requestId ?? 0, index: -1 });
        return;
      default:
        return;
    }
  }

  private stepFollower(m: Message): void {
    // The leader's own traffic wakes a quiet follower (each case below restarts the timer); stray
    // answers (to an old campaign, a read) do not.
    if (
      this.quiesced &&
      (m.type === "append" ||
        m.type === "snapshot" ||
        m.type === "timeoutNow" ||
        (m.type === "heartbeat" && !m.force))
    )
      this.quiesced = false;
    switch (m.type) {
      case "append":
        this.electionElapsed = 0;
        this.leader = m.from;
        this.acceptReadLease(m);
        this.handleAppend(m);
        return;
      case "heartbeat":
        this.electionElapsed = 0;
        this.leader = m.from;
        this.acceptReadLease(m);
        if (m.force && this.quiesceEnabled) {
          // The leader goes quiet: take its final commit index and stop the timer, unanswered
          // (an answer would wake it). One that cannot go quiet answers, and its leader stays awake.
          this.log.commitTo(Math.min(m.commit ?? 0, this.log.lastIndex()));
          this.quiesced = true;
          return;
        }
        this.handleHeartbeat(m);
        return;
      case "snapshot":
        this.electionElapsed = 0;
        this.leader = m.from;
        this.handleSnapshotChunk(m);
        return;
      case "timeoutNow":
        // Leadership transfer: campaign now, and let voters ignore their lease for us (§3.10).
        this.campaign("transfer");
        return;
      case "readIndexResp":
        this.readStates.push({ requestId: m.requestId ?? 0, index: m.reject ? -1 : (m.index ?? -1) });
        return;
      default:
        return;
    }
  }

  private stepLeader(m: Message): void {
    // Acknowledgements still on the wire when the leader went quiet do not wake it; anything else does.
    if (this.quiesced && m.type !== "heartbeatResp" && !(m.type === "appendResp" && !m.reject)) this.wake();
    const pr = this.progress.get(m.from);
    switch (m.type) {
      case "appendResp": {
        if (!pr) return;
        this.recentActive.add(m.from);
        if (m.sentTick !== undefined && m.sentTick > pr.ackedTick) pr.ackedTick = m.sentTick;
        this.noteClockReading(m, pr);
        this.handleAppendResponse(m, pr);
        return;
      }
      case "heartbeatResp": {
        if (!pr) return;
        this.recentActive.add(m.from);
        if (m.sentTick !== undefined && m.sentTick > pr.ackedTick) pr.ackedTick = m.sentTick;
        if (m.readSeq !== undefined && m.readSeq > pr.ackedReadSeq) pr.ackedReadSeq = m.readSeq;
        this.noteClockReading(m, pr);
        pr.onHeartbeatResponse();
        if (pr.match < this.log.lastIndex()) this.sendAppend(m.from, pr);
        this.releaseConfirmedReads();
        return;
      }
      case "snapshotResp": {
        if (!pr) return;
        this.recentActive.add(m.from);
        if (pr.state !== "snapshot" || !pr.pendingSnapshot || pr.pendingSnapshot.index !== m.index) return;
        if (m.reject) {
          pr.becomeProbe();
          this.sendAppend(m.from, pr);
          return;
        }
        pr.snapshotOffset = m.offset ?? 0;
        this.sendSnapshotChunk(m.from, pr);
        return;
      }
      case "readIndex":
        if (!pr) return; // learners may read too; only unknown nodes are refused
        this.readIndexAsLeader(m.requestId ?? 0, m.from, m.force ? "lease" : "quorum");
        return;
      default:
        return;
    }
  }

  // ---------------------------------------------------------------- replication (leader)

  private handleAppendResponse(m: Message, pr: Progress): void {
    const from = m.from;
    if (m.reject) {
      let hint = m.rejectHint ?? 0;
      if ((m.logTerm ?? 0) > 0) hint = this.findConflictByTerm(hint, m.logTerm ?? 0);
      if (pr.maybeDecrTo(m.index ?? 0, hint)) {
        if (pr.state === "replicate") pr.becomeProbe();
        this.sendAppend(from, pr);
      }
      return;
    }
    if (pr.maybeUpdate(m.index ?? 0)) {
      if (pr.state === "probe") pr.becomeReplicate();
      else if (pr.state === "snapshot" && pr.pendingSnapshot && pr.match >= pr.pendingSnapshot.index) {
        pr.becomeProbe();
        pr.becomeReplicate();
      }
      if (this.maybeCommit()) {
        // Followers learn the new commit index now, not at the next heartbeat: their applies (and reads) wait on it.
        this.bcastAppend(true);
      } else {
        while (!pr.isPaused() && pr.next <= this.log.lastIndex()) {
          if (!this.sendAppend(from, pr)) break;
        }
      }
      if (from === this.transferee && pr.match === this.log.lastIndex() && this.readLeasesEnded()) {
        this.sendTimeoutNow(from);
      }
    }
  }

  /** Largest index ≤ `index` whose term is ≤ `term` (the fast backtracking of §5.3's note). */
  private findConflictByTerm(index: number, term: number): number {
    let i = Math.min(index, this.log.lastIndex());
    for (; i > 0; i--) {
      const t = this.log.term(i);
      if (t < 0 || t <= term) break;
    }
    return i;
  }

  /** Sends entries (or a snapshot) to one peer; returns false when nothing was sent. */
  private sendAppend(to: NodeId, pr: Progress, allowEmpty = true, commitOnly = false): boolean {
    if (pr.isPaused()) return false;
    const prevIndex = pr.next - 1;
    const prevTerm = this.log.term(prevIndex);
    if (prevTerm < 0 || pr.next < this.log.firstIndex()) {
      this.startSnapshot(to, pr);
      return true;
    }
    const entries = this.log.slice(pr.next, this.log.lastIndex() + 1, this.maxMsgBytes);
    if (entries.length === 0 && !allowEmpty) return false;
    const lease = this.readLeaseFields(pr);
    // An append that only carries a new commit index to a follower in the pipeline asks for no
    // answer: the follower has acknowledged, or will, everything before it, and with 16 groups
    // dropping these answers cut peer messages per write by about 8 %. Should that earlier acknowledgement be lost,
    // the next heartbeat's answer shows the follower behind and its append there is answered
    // (etcd recovers a lost acknowledgement the same way); heartbeats also keep lease and liveness.
    const unanswered = commitOnly && entries.length === 0 && pr.state === "replicate" && lease === undefined;
    this.send({
      type: "append",
      from: this.id,
      to,
      term: this.term,
      index: prevIndex,
      logTerm: prevTerm,
      entries,
      commit: this.log.committed,
      sentTick: this.tickCount,
      ...lease,
      ...(unanswered ? { force: true } : {}),
    });
    pr.sentEntries(prevIndex + entries.length, entries.length);
    return true;
  }

  /** Sends new entries to every follower; with `allowEmpty` (a commit broadcast), an empty append where there is nothing new, to carry the commit index. */
  private bcastAppend(allowEmpty = false): void {
    for (const [id, pr] of this.progress) {
      if (id === this.id) continue;
      this.sendAppend(id, pr, allowEmpty, allowEmpty);
    }
  }

  private bcastHeartbeat(readSeq?: number, quiesce = false): void {
    const seq = readSeq ?? this.readSeq;
    for (const [id, pr] of this.progress) {
      if (id === this.id) continue;
      this.send({
        type: "heartbeat",
        from: this.id,
        to: id,
        term: this.term,
        // Never more than the follower is known to hold, so it can commit without checking terms.
        commit: Math.min(pr.match, this.log.committed),
        sentTick: this.tickCount,
        readSeq: seq,
        ...(quiesce ? { force: true } : {}),
        ...this.readLeaseFields(pr),
      });
    }
  }

  private startSnapshot(to: NodeId, pr: Progress): void {
    const meta = this.log.storage.snapshotMetadata();
    if (meta.index === 0) return; // nothing to send yet; the follower is probed again later
    pr.becomeSnapshot(meta, this.tickCount);
    this.sendSnapshotChunk(to, pr);
  }

  private sendSnapshotChunk(to: NodeId, pr: Progress): void {
    const storage = this.log.storage;
    const meta = storage.snapshotMetadata();
    if (!pr.pendingSnapshot || meta.index !== pr.pendingSnapshot.index) {
      // A newer snapshot replaced the one being sent: start over with it.
      if (meta.index === 0) return;
      pr.becomeSnapshot(meta, this.tickCount);
    }
    const total = storage.snapshotSize();
    const offset = Math.min(pr.snapshotOffset, total);
    const data = storage.readSnapshot(offset, this.maxSnapshotChunkBytes);
    const chunk: SnapshotChunk = {
      metadata: meta,
      offset,
      totalBytes: total,
      data,
      done: offset + data.byteLength >= total,
    };
    pr.snapshotSentTick = this.tickCount;
    this.send({
      type: "snapshot",
      from: this.id,
      to,
      term: this.term,
      snapshot: chunk,
      sentTick: this.tickCount,
    });
  }

  /** Advances the commit index to what a majority holds, counting only entries of this term (§5.4.2). */
  private maybeCommit(): boolean {
    let mci = majorityValue(this.config.voters, (id) => this.progress.get(id)?.match ?? 0);
    // Follower read leases: a lease holder answers reads from its own log, so it must hold the entry too.
    if (this.followerReadLeases && !this.bugs.commitIgnoringReadLeases) {
      this.trackHoldBack(mci);
      mci = Math.min(mci, this.readLeaseHoldersMatch());
    }
    if (!Number.isFinite(mci) || mci <= this.log.committed) return false;
    if (!this.bugs.commitOldTermEntries && this.log.term(mci) !== this.term) return false;
    this.log.commitTo(mci);
    this.onCommitAdvanced();
    return true;
  }

  private onCommitAdvanced(): void {
    const committed = this.log.committed;
    while (this.uncommittedMarks.length > 0 && this.uncommittedMarks[0]!.index <= committed) {
      this.uncommittedBytes -= this.uncommittedMarks.shift()!.bytes;
    }
    if (this.readsAwaitingCommit.length > 0 && this.committedInTerm()) {
      const waiting = this.readsAwaitingCommit;
      this.readsAwaitingCommit = [];
      for (const r of waiting) this.readIndexAsLeader(r.requestId, r.from, r.mode);
    }
    // A leader removed from the configuration manages the change until it commits, then steps down (§4.2.2).
    if (this.role === "leader" && !this.isVoter(this.id) && this.configIndex <= committed) {
      this.becomeFollower(this.term, null);
    }
  }

  private committedInTerm(): boolean {
    return this.log.term(this.log.committed) === this.term;
  }

  private appendEntries(entries: Entry[]): void {
    this.log.append(entries);
    let bytes = 0;
    for (const e of entries) bytes += entrySize(e);
    this.uncommittedBytes += bytes;
    this.uncommittedMarks.push({ index: entries[entries.length - 1]!.index, bytes });
    // Our own copy counts toward a majority only once it is durable: see onPersisted().
    this.maybeCommit();
  }

  // ---------------------------------------------------------------- replication (follower)

  private handleAppend(m: Message): void {
    const prevIndex = m.index ?? 0;
    if (prevIndex < this.log.committed) {
      this.noteAckedMatch(this.log.committed);
      this.send({
        type: "appendResp",
        from: this.id,
        to: m.from,
        term: this.term,
        index: this.log.committed,
        sentTick: m.sentTick,
        ...this.clockReadingFor(m),
      });
      return;
    }
    const lastNew = this.log.maybeAppend(prevIndex, m.logTerm ?? 0, m.commit ?? 0, m.entries ?? []);
    if (lastNew >= 0) {
      this.noteAckedMatch(lastNew);
      // The leader asked for no answer (see sendAppend): it already knows we hold all this.
      if (m.force && (m.entries?.length ?? 0) === 0 && m.leaseTicks === undefined) return;
      this.send({
        type: "appendResp",
        from: this.id,
        to: m.from,
        term: this.term,
        index: lastNew,
        sentTick: m.sentTick,
        ...this.clockReadingFor(m),
      });
      return;
    }
    let hintIndex = Math.min(prevIndex, this.log.lastIndex());
    hintIndex = this.findConflictByTerm(hintIndex, m.logTerm ?? 0);
    const hintTerm = Math.max(0, this.log.term(hintIndex));
    this.send({
      type: "appendResp",
      from: this.id,
      to: m.from,
      term: this.term,
      index: prevIndex,
      reject: true,
      rejectHint: hintIndex,
      logTerm: hintTerm,
      sentTick: m.sentTick,
      ...this.clockReadingFor(m),
    });
  }

  private handleHeartbeat(m: Message): void {
    this.log.commitTo(Math.min(m.commit ?? 0, this.log.lastIndex()));
    this.send({
      type: "heartbeatResp",
      from: this.id,
      to: m.from,
      term: this.term,
      sentTick: m.sentTick,
      readSeq: m.readSeq,
      ...this.clockReadingFor(m),
    });
  }

  private handleSnapshotChunk(m: Message): void {
    const chunk = m.snapshot;
    if (!chunk) return;
    const meta = chunk.metadata;
    const ackAppend = (index: number): void => {
      this.noteAckedMatch(index);
      this.send({
        type: "appendResp",
        from: this.id,
        to: m.from,
        term: this.term,
        index,
        sentTick: m.sentTick,
      });
    };
    const ackOffset = (offset: number): void =>
      this.send({
        type: "snapshotResp",
        from: this.id,
        to: m.from,
        term: this.term,
        index: meta.index,
        offset,
      });
    if (meta.index <= this.log.committed) {
      // Already have everything it covers.
      this.incoming = null;
      ackAppend(this.log.committed);
      return;
    }
    if (this.log.matchTerm(meta.index, meta.term)) {
      // We hold its last entry, so the log up to it matches the leader's: no need to download it.
      this.incoming = null;
      this.log.commitTo(meta.index);
      ackAppend(meta.index);
      return;
    }
    if (chunk.offset === 0) this.incoming = { metadata: meta, received: 0 };
    const inc = this.incoming;
    if (!inc || inc.metadata.index !== meta.index || inc.metadata.term !== meta.term) {
      ackOffset(0);
      return;
    }
    if (chunk.offset === inc.received) {
      // Handed to the caller to write as it comes: the core never buffers a whole snapshot.
      this.snapshotChunks.push(chunk);
      inc.received += chunk.data.byteLength;
    } else if (chunk.offset > inc.received) {
      ackOffset(inc.received);
      return;
    }
    if (!(chunk.done && inc.received === chunk.totalBytes)) {
      ackOffset(inc.received);
      return;
    }
    this.incoming = null;
    this.log.restore(meta);
    this.baseConfig = meta.config;
    this.baseConfigIndex = meta.index;
    this.configLog = [];
    this.setConfig(meta.config, meta.index);
    // Acknowledged (after the install is durable) only up to the snapshot: that is what matches the leader.
    ackAppend(meta.index);
  }

  // ---------------------------------------------------------------- persistence feedback

  /** RawNode reports that entries up to (index, term) are durable. */
  onPersisted(index: number, term: number): void {
    this.log.stableTo(index, term);
    if (this.role === "leader" && this.log.matchTerm(index, term)) {
      const self = this.progress.get(this.id);
      if (self?.maybeUpdate(index) && this.maybeCommit()) this.bcastAppend(true);
    }
  }

  onSnapshotPersisted(index: number): void {
    this.log.stableSnapTo(index);
  }

  /** RawNode reports the config baseline after the caller compacted storage. */
  onCompacted(): void {
    const first = this.log.storage.firstIndex();
    const keepFrom = this.configLog.findIndex((c) => c.index >= first);
    if (keepFrom > 0) {
      const drop = this.configLog.splice(0, keepFrom);
      const last = drop[drop.length - 1]!;
      this.baseConfig = last.config;
      this.baseConfigIndex = last.index;
    } else if (keepFrom < 0 && this.configLog.length > 0) {
      const last = this.configLog[this.configLog.length - 1]!;
      this.configLog = [];
      this.baseConfig = last.config;
      this.baseConfigIndex = last.index;
    }
  }

  // ---------------------------------------------------------------- local requests

  /** Appends normal entries; only the leader accepts them. */
  propose(datas: readonly Uint8Array[]): ProposeResult {
    if (this.role === "leader") this.wake();
    const refused = this.checkProposable();
    if (refused) return refused;
    if (this.uncommittedBytes > this.maxUncommittedBytes) {
      return this.refuse(
        "too_many_uncommitted",
        "too many bytes proposed but not yet committed; retry later",
      );
    }
    const first = this.log.lastIndex() + 1;
    const entries: Entry[] = datas.map((data, i) => ({
      term: this.term,
      index: first + i,
      type: "normal",
      data,
    }));
    if (entries.length === 0) return { ok: true, index: first - 1, term: this.term };
    this.appendEntries(entries);
    this.bcastAppend();
    return { ok: true, index: first + entries.length - 1, term: this.term };
  }

  /**
   * Proposes one membership change. Safe one-at-a-time changes (dissertation §4.1 and its 2015
   * erratum): refused until the leader has committed an entry of its own term and while another
   * change is uncommitted.
   */
  proposeConfChange(cc: ConfChange): ProposeResult {
    if (this.role === "leader") this.wake();
    const refused = this.checkProposable();
    if (refused) return refused;
    if (!this.committedInTerm()) {
      return this.refuse(
        "no_commit_in_term",
        "the leader has not committed an entry in its term yet; retry shortly",
      );
    }
    if (this.configIndex > this.log.committed) {
      return this.refuse("config_pending", "another membership change is still being committed");
    }
    const voters = new Set(this.config.voters);
    const learners = new Set(this.config.learners);
    const promote = new Set(this.config.promote ?? []);
    const removed = new Set(this.config.removed ?? []);
    const urls: Record<NodeId, string> = { ...this.config.urls, ...cc.urls };
    if (cc.type !== "remove" && removed.has(cc.id)) {
      return this.refuse(
        "invalid_config_change",
        `${cc.id} was removed from this cluster; a removed id is never reused`,
      );
    }
    switch (cc.type) {
      case "addVoter":
        if (voters.has(cc.id)) return this.refuse("invalid_config_change", `${cc.id} is already a voter`);
        learners.delete(cc.id);
        voters.add(cc.id);
        promote.delete(cc.id);
        break;
      case "addLearner":
        if (voters.has(cc.id) || learners.has(cc.id)) {
          return this.refuse("invalid_config_change", `${cc.id} is already a member`);
        }
        learners.add(cc.id);
        if (cc.promote) promote.add(cc.id);
        break;
      case "remove":
        if (!voters.has(cc.id) && !learners.has(cc.id)) {
          return this.refuse("invalid_config_change", `${cc.id} is not a member`);
        }
        voters.delete(cc.id);
        learners.delete(cc.id);
        promote.delete(cc.id);
        removed.add(cc.id);
        delete urls[cc.id];
        if (voters.size === 0) return this.refuse("invalid_config_change", "cannot remove the last voter");
        break;
    }
    for (const id of Object.keys(urls)) if (!voters.has(id) && !learners.has(id)) delete urls[id];
    const config = plainConfig({
      voters: [...voters],
      learners: [...learners],
      urls,
      promote: [...promote],
      removed: [...removed],
    });
    const index = this.log.lastIndex() + 1;
    this.appendEntries([{ term: this.term, index, type: "config", data: encodeConfig(config) }]);
    this.bcastAppend();
    return { ok: true, index, term: this.term };
  }

  private checkProposable(): ProposeResult | null {
    if (this.role !== "leader") return this.refuse("not_leader", "this node is not the leader");
    if (this.transferee !== null) {
      return this.refuse("transfer_in_progress", `leadership is being transferred to ${this.transferee}`);
    }
    return null;
  }

  private refuse(error: ProposeError, message: string): ProposeResult {
    return { ok: false, error, leader: this.leader, message };
  }

  /**
   * Starts a linearizable read. The answer arrives as a ReadState with the same requestId: an
   * index to wait for (apply it, then read locally), or -1 when the read could not be confirmed.
   */
  readIndex(requestId: number, mode: ReadMode = "quorum"): void {
    if (this.role === "leader") {
      this.readIndexAsLeader(requestId, this.id, mode);
    } else if (mode === "lease" && this.followerLeaseValid()) {
      // Every write acknowledged before now is either in the log we acknowledged to this leader
      // (its commit rule waited for us) or was committed before the grant (its commit index).
      this.readStates.push({ requestId, index: Math.max(this.readLeaseCommit, this.readLeaseMatch) });
    } else if (this.leader !== null && this.role === "follower") {
      this.send({
        type: "readIndex",
        from: this.id,
        to: this.leader,
        term: this.term,
        requestId,
        force: mode === "lease",
      });
    } else {
      this.readStates.push({ requestId, index: -1 });
    }
  }

  private readIndexAsLeader(requestId: number, from: NodeId, mode: ReadMode): void {
    this.wake();
    if (!this.committedInTerm()) {
      // Until our no-op commits we do not know the commit index of earlier terms (§6.4 step 1).
      this.readsAwaitingCommit.push({ requestId, from, mode });
      return;
    }
    const index = this.log.committed;
    if (this.config.voters.length === 1 && this.isVoter(this.id)) {
      this.answerRead(requestId, from, index);
      return;
    }
    if (mode === "lease" && this.leaseValid()) {
      this.answerRead(requestId, from, index);
      return;
    }
    this.readSeq++;
    this.pendingReads.push({ requestId, from, index, seq: this.readSeq });
    this.bcastHeartbeat(this.readSeq);
  }

  private releaseConfirmedReads(): void {
    if (this.pendingReads.length === 0) return;
    const confirmed = majorityValue(this.config.voters, (id) =>
      id === this.id ? this.readSeq : (this.progress.get(id)?.ackedReadSeq ?? 0),
    );
    while (this.pendingReads.length > 0 && this.pendingReads[0]!.seq <= confirmed) {
      const r = this.pendingReads.shift()!;
      this.answerRead(r.requestId, r.from, r.index);
    }
  }

  private answerRead(requestId: number, from: NodeId, index: number): void {
    if (from === this.id) this.readStates.push({ requestId, index });
    else this.send({ type: "readIndexResp", from: this.id, to: from, term: this.term, requestId, index });
  }

  private failPendingReads(): void {
    for (const r of this.pendingReads) {
      if (r.from === this.id) this.readStates.push({ requestId: r.requestId, index: -1 });
    }
    for (const r of this.readsAwaitingCommit) {
      if (r.from === this.id) this.readStates.push({ requestId: r.requestId, index: -1 });
    }
    this.pendingReads = [];
    this.readsAwaitingCommit = [];
  }

  /**
   * The tick (on this node's clock) until which this leader is sure no other leader can exist:
   * a quorum acknowledged a message sent at `start`, and none of them votes for another candidate
   * for an election timeout after receiving it. The drift bound covers clocks running at different rates.
   */
  leaseExpiresAtTick(): number {
    // A quiet leader holds no lease: its host may leave its clock behind (elapseQuiet), and a
    // lease read wakes it anyway, after which the acknowledgements it had count again.
    if (
      this.role !== "leader" ||
      !this.checkQuorum ||
      this.leaseVoid ||
      this.transferee !== null ||
      this.quiesced
    ) {
      return Number.NEGATIVE_INFINITY;
    }
    const start = majorityValue(this.config.voters, (id) =>
      id === this.id ? this.tickCount : (this.progress.get(id)?.ackedTick ?? Number.NEGATIVE_INFINITY),
    );
    return start + this.electionTicks - this.leaseDriftTicks;
  }

  leaseValid(): boolean {
    return this.tickCount < this.leaseExpiresAtTick();
  }

  // ---------------------------------------------------------------- follower read leases
  //
  // With `followerReadLeases`, a leader lends followers its own lease so they answer `lease` reads
  // without a round trip. Why it is linearizable:
  // - A grant never outlives the leader's lease, measured on the follower's own clock from a
  //   reading the follower took before the leader received it: if the reading arrived at leader
  //   tick `at`, the grant spans d ≤ min(leaseExpiresAtTick() − at, electionTicks) leader ticks, and
  //   the follower may use d − leaseDriftTicks − 1 of its own ticks after the reading (the drift bound
  //   over at most an election timeout, and one tick for tick granularity). So the lease has ended
  //   before leader tick at + d ≤ the leader's lease end, before any other leader can be elected,
  //   however late the grant was delivered — anchoring on the follower's clock at receipt instead
  //   would let a delayed grant outlive the leader's lease.
  // - From the moment it sends a grant until tick at + d, the leader counts that follower as a
  //   lease holder and commits an entry only once every lease holder has acknowledged it.
  // - A follower's lease read waits for max(commit index carried by the grant, highest index it
  //   acknowledged to this leader): a write acknowledged before the read started either committed
  //   before the grant was sent, or committed while this follower held a lease and so was
  //   acknowledged by it. Grants come only after the leader committed an entry of its term, so their
  //   commit index covers earlier leaders' writes.
  // - A transfer sends TimeoutNow (whose forced votes bypass the leader's lease) only once every
  //   lease it granted has ended; grants stop when the transfer starts.

  /** Follower side: whether a read lease from the current leader is in force right now. */
  followerLeaseValid(): boolean {
    return this.role === "follower" && this.leader !== null && this.tickCount < this.readLeaseUntil;
  }

  private voidReadLease(): void {
    this.readLeaseUntil = Number.NEGATIVE_INFINITY;
    this.readLeaseCommit = 0;
  }

  private noteAckedMatch(index: number): void {
    if (index > this.readLeaseMatch) this.readLeaseMatch = index;
  }

  /** Follower side: a clock reading for the answer to `m`, when its leader offers read leases. */
  private clockReadingFor(m: Message): Pick<Message, "leaseClock" | "leaseNonce"> | undefined {
    if (m.leaseTicks === undefined) return undefined;
    if (this.clockNonce === null) {
      // 53 random bits from the injected source: a restarted node must not take a grant that was
      // computed from a reading of its previous life, whose tick counts it cannot tell from its own.
      this.clockNonce = Math.floor(this.random() * 2 ** 32) * 2 ** 21 + Math.floor(this.random() * 2 ** 21);
    }
    return { leaseClock: this.tickCount, leaseNonce: this.clockNonce };
  }

  /** Follower side: takes the grant an append or heartbeat of the current leader carries, if any. */
  private acceptReadLease(m: Message): void {
    const ticks = m.leaseTicks ?? 0;
    const from = m.leaseClock;
    if (ticks <= 0 || from === undefined || m.leaseCommit === undefined) return;
    if (this.bugs.readLeaseFromReceipt) {
      const end = this.tickCount + ticks - this.leaseDriftTicks - 1;
      if (end > this.readLeaseUntil) this.readLeaseUntil = end;
      if (m.leaseCommit > this.readLeaseCommit) this.readLeaseCommit = m.leaseCommit;
      return;
    }
    // Only a reading this life of the node took, in the past, and no longer than an election
    // timeout (the span the drift bound covers): anything else is not a grant it can measure.
    if (m.leaseNonce !== this.clockNonce || from > this.tickCount || ticks > this.electionTicks) return;
    const until = from + ticks;
    if (until <= this.tickCount) return;
    if (until > this.readLeaseUntil) this.readLeaseUntil = until;
    if (m.leaseCommit > this.readLeaseCommit) this.readLeaseCommit = m.leaseCommit;
  }

  /** Leader side: remembers a follower's clock reading (answers to offers carry one). */
  private noteClockReading(m: Message, pr: Progress): void {
    if (!this.followerReadLeases || m.leaseClock === undefined || m.leaseNonce === undefined) return;
    pr.noteClockReading(m.leaseClock, m.leaseNonce, this.tickCount);
  }

  /**
   * Leader side: the lease fields of an append or heartbeat to the follower `pr` describes — a
   * grant when it is safe and of use, else an offer that asks for a clock reading — and, for a
   * grant, the bookkeeping that makes commits wait for this follower from now on.
   */
  private readLeaseFields(
    pr: Progress,
  ): Pick<Message, "leaseTicks" | "leaseClock" | "leaseNonce" | "leaseCommit"> | undefined {
    if (!this.followerReadLeases) return undefined;
    const offer = { leaseTicks: 0 };
    const reading = pr.clockReading;
    // Not to a follower being probed or sent a snapshot (it would hold commits back for nothing),
    // and not before an entry of this term committed (the commit index would miss earlier leaders' writes).
    if (reading === null || pr.state !== "replicate" || !this.committedInTerm()) return offer;
    // Nor to a member that held commits back too long lately (see trackHoldBack).
    if (this.tickCount < pr.leaseBarredUntil) return offer;
    const leaseEnd = this.leaseExpiresAtTick(); // -Infinity once a transfer started or TimeoutNow went out
    if (!(this.tickCount < leaseEnd)) return offer;
    if (this.bugs.readLeaseFromReceipt) {
      const g = leaseEnd - this.tickCount;
      if (g > this.electionTicks) return offer;
      pr.readLeaseUntil = Math.max(pr.readLeaseUntil, this.tickCount + g + this.leaseDriftTicks + 1);
      return { leaseTicks: g, leaseClock: 0, leaseNonce: 0, leaseCommit: this.log.committed };
    }
    const span = Math.min(leaseEnd - reading.at, this.electionTicks);
    const ticks = span - this.leaseDriftTicks - 1;
    // Of no use when the follower's clock has likely passed the end already.
    if (ticks <= 0 || reading.at + ticks <= this.tickCount) return offer;
    if (reading.at + span > pr.readLeaseUntil) pr.readLeaseUntil = reading.at + span;
    return {
      leaseTicks: ticks,
      leaseClock: reading.tick,
      leaseNonce: reading.nonce,
      leaseCommit: this.log.committed,
    };
  }

  /**
   * Leader side: measures how long each lease holder has kept the majority's entries from
   * committing, and bars one that kept the same entry waiting for half an election timeout from new
   * grants for ten election timeouts. A holder that is live but slow (a sick disk, a saturated
   * link) would otherwise slow every write for as long as it answers heartbeats; barred, it holds
   * commits back only until the lease it already has runs out, and its lease reads ask the leader.
   * A distant but healthy holder is never barred: it catches up with each entry within its RTT.
   * Withholding a grant is always safe, so this only trades that member's free reads for writes.
   */
  private trackHoldBack(majority: number): void {
    const limit = Math.max(1, Math.floor(this.electionTicks / 2));
    for (const [id, pr] of this.progress) {
      if (id === this.id || !(this.tickCount < pr.readLeaseUntil) || pr.match >= majority) {
        pr.holdBack = null;
        continue;
      }
      if (pr.holdBack === null || pr.match >= pr.holdBack.index) {
        pr.holdBack = { index: majority, since: this.tickCount };
      } else if (this.tickCount - pr.holdBack.since >= limit && !(this.tickCount < pr.leaseBarredUntil)) {
        pr.leaseBarredUntil = this.tickCount + 10 * this.electionTicks;
      }
    }
  }

  /** Leader side: the lowest match among followers that may hold a read lease (Infinity: none). */
  private readLeaseHoldersMatch(): number {
    let low = Number.POSITIVE_INFINITY;
    for (const [id, pr] of this.progress) {
      if (id !== this.id && this.tickCount < pr.readLeaseUntil && pr.match < low) low = pr.match;
    }
    for (const [id, d] of this.departedReadLeases) {
      if (this.tickCount >= d.until) this.departedReadLeases.delete(id);
      else if (d.match < low) low = d.match;
    }
    return low;
  }

  /** Leader side: whether every read lease this leader granted has ended by its clock. */
  private readLeasesEnded(): boolean {
    for (const [id, pr] of this.progress)
      if (id !== this.id && this.tickCount < pr.readLeaseUntil) return false;
    for (const d of this.departedReadLeases.values()) if (this.tickCount < d.until) return false;
    return true;
  }

  /** Leader, each tick: commits held back by a lease that has now ended; TimeoutNow once leases are out. */
  private tickReadLeases(): void {
    if (this.log.committed < this.log.lastIndex() && this.maybeCommit()) this.bcastAppend(true);
    if (this.role !== "leader") return;
    const to = this.transferee;
    if (to === null || this.leaseVoid) return;
    const pr = this.progress.get(to);
    if (pr && pr.match === this.log.lastIndex() && this.readLeasesEnded()) this.sendTimeoutNow(to);
  }

  /** Starts handing leadership to `to` (§3.10): catch it up, then tell it to campaign at once. */
  transferLeadership(to: NodeId): { ok: true } | { ok: false; message: string } {
    if (this.role !== "leader") return { ok: false, message: "this node is not the leader" };
    if (to === this.id) return { ok: false, message: "this node already leads" };
    if (!this.isVoter(to)) return { ok: false, message: `${to} is not a voter` };
    const pr = this.progress.get(to);
    if (!pr) return { ok: false, message: `${to} is not a member` };
    if (this.transferee === to) return { ok: true };
    this.wake();
    this.transferee = to;
    this.electionElapsed = 0;
    if (pr.match === this.log.lastIndex()) {
      // With follower read leases out, TimeoutNow waits for them to end (tickReadLeases sends it).
      if (this.readLeasesEnded()) this.sendTimeoutNow(to);
    } else {
      this.sendAppend(to, pr);
    }
    return { ok: true };
  }

  private sendTimeoutNow(to: NodeId): void {
    this.leaseVoid = true;
    this.send({ type: "timeoutNow", from: this.id, to, term: this.term });
  }

  private send(m: Message): void {
    this.msgs.push(m);
  }
}
