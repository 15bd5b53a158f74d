/**
 * The vocabulary of the Raft core: entries, messages, hard state, snapshots, configurations and
 * the Ready batch. Owns only data shapes and tiny helpers over them; must never hold behaviour
 * that touches I/O, time or randomness.
 */

/** A member's identity. Stable across restarts and address changes. */
export type NodeId = string;

/** `normal` carries application data (an empty payload is the leader's term-start no-op); `config` carries a whole {@link Configuration}. */
export type EntryType = "normal" | "config";

/** One log entry. */
export interface Entry {
  readonly term: number;
  readonly index: number;
  readonly type: EntryType;
  readonly data: Uint8Array;
}

/** The state that must be durable before any message that depends on it leaves the node. */
export interface HardState {
  readonly term: number;
  readonly vote: NodeId | null;
  readonly commit: number;
}

/**
 * Who votes and who only replicates. A node is in at most one of the two lists. `urls` and
 * `promote` are carried for the layers around the core, which never reads them: where each member
 * listens (so a node that joined later can reach everyone), and which learners are to become
 * voters once caught up (so a new leader carries on a promotion its predecessor started).
 */
export interface Configuration {
  readonly voters: readonly NodeId[];
  readonly learners: readonly NodeId[];
  readonly urls?: Readonly<Record<NodeId, string>>;
  readonly promote?: readonly NodeId[];
  /** Ids removed from the cluster: never members again (a peer presenting one is told it was removed). */
  readonly removed?: readonly NodeId[];
}

/**
 * One-server-at-a-time membership change, as proposed by an operator. `urls` are merged into the
 * new configuration's addresses; `promote` marks a new learner to be promoted once caught up.
 */
export type ConfChange =
  | { readonly type: "addVoter"; readonly id: NodeId; readonly urls?: Readonly<Record<NodeId, string>> }
  | {
      readonly type: "addLearner";
      readonly id: NodeId;
      readonly urls?: Readonly<Record<NodeId, string>>;
      readonly promote?: boolean;
    }
  | { readonly type: "remove"; readonly id: NodeId; readonly urls?: Readonly<Record<NodeId, string>> };

export interface SnapshotMetadata {
  /** Last log index the snapshot covers. */
  readonly index: number;
  readonly term: number;
  /** The configuration in effect at `index`. */
  readonly config: Configuration;
}

export interface Snapshot {
  readonly metadata: SnapshotMetadata;
  readonly data: Uint8Array;
}

export type Role = "follower" | "preCandidate" | "candidate" | "leader";

export type MessageType =
  | "preVote"
  | "preVoteResp"
  | "vote"
  | "voteResp"
  | "append"
  | "appendResp"
  | "heartbeat"
  | "heartbeatResp"
  | "snapshot"
  | "snapshotResp"
  | "timeoutNow"
  | "readIndex"
  | "readIndexResp";

/**
 * A message between cores. One flat shape (as etcd's raftpb.Message) keeps the wire codec simple;
 * each type documents which fields it uses.
 */
export interface Message {
  readonly type: MessageType;
  readonly from: NodeId;
  readonly to: NodeId;
  /** Sender's term; for preVote, the term the sender would campaign in. */
  readonly term: number;
  /** append: term of entry `index`; vote/preVote: candidate's last log term; reject hints: hint term. */
  readonly logTerm?: number;
  /** append: index preceding `entries`; vote/preVote: candidate's last index; appendResp: match index or reject hint. */
  readonly index?: number;
  readonly entries?: readonly Entry[];
  /** Leader's commit index (append, heartbeat). */
  readonly commit?: number;
  readonly reject?: boolean;
  /** appendResp reject: follower's hint of where logs may diverge (index in `index`, term in `logTerm`). */
  readonly rejectHint?: number;
  /** Leader's tick counter when it sent an append/heartbeat; echoed back to measure the lease. */
  readonly sentTick?: number;
  /** ReadIndex round: the read sequence a heartbeat confirms (echoed back) or a forwarded read's id. */
  readonly readSeq?: number;
  /** readIndex / readIndexResp: the caller's request id, carried through for follower reads. */
  readonly requestId?: number;
  /** snapshot: a chunk of a snapshot. snapshotResp: `index` is the snapshot index, `offset` bytes received so far. */
  readonly snapshot?: SnapshotChunk;
  readonly offset?: number;
  /**
   * vote: this campaign is a leadership transfer and may disturb a live leader's lease. readIndex:
   * the follower asks for a lease read. heartbeat: the leader goes quiet (see RaftOptions.quiesce);
   * it is not answered. append (empty, a commit broadcast to a follower in the replicate state, no
   * lease fields): it only carries the commit index and is not answered when accepted (a peer that
   * predates this answers anyway).
   */
  readonly force?: boolean;
  /**
   * Follower read leases (only when the leader runs with them). append/heartbeat: 0 asks the
   * receiver for a reading of its clock; more grants it a read lease that lasts while its own tick
   * count is below `leaseClock + leaseTicks`.
   */
  readonly leaseTicks?: number;
  /**
   * append/heartbeat with a grant: the receiver's clock reading the grant counts from (one it sent
   * earlier). appendResp/heartbeatResp: the sender's tick count when it answered an offer.
   */
  readonly leaseClock?: number;
  /** Identifies one life of the clock in `leaseClock` (a restarted node counts from 0 again). */
  readonly leaseNonce?: number;
  /** append/heartbeat with a grant: the leader's commit index when it sent the grant. */
  readonly leaseCommit?: number;
}

export interface SnapshotChunk {
  readonly metadata: SnapshotMetadata;
  readonly offset: number;
  readonly totalBytes: number;
  readonly data: Uint8Array;
  readonly done: boolean;
}

/** The outcome of a ReadIndex request: once the local applied index reaches `index`, a local read is linearizable. */
export interface ReadState {
  readonly requestId: number;
  /** Commit index confirmed by a quorum; -1 when the read could not be served (no leader, leadership lost). */
  readonly index: number;
}

/** Volatile state the layers above watch: who leads and what this node is. */
export interface SoftState {
  readonly leader: NodeId | null;
  readonly role: Role;
  readonly term: number;
}

/**
 * One batch of work for the caller. Handle it in this order, then call `advance(rd)`:
 * 0. send `leaderMessages` at once (they do not depend on this batch being durable);
 * 1. write `snapshotChunks` to the snapshot being received; install it when `snapshot` is set
 *    (the log is replaced by it); then persist `entries` (truncating any stored suffix from
 *    `entries[0].index`) and `hardState`; when `mustSync`, make them durable (fdatasync) first;
 * 2. send `messages` (every one of them may depend on step 1: votes, acknowledgements);
 * 3. apply `committedEntries` in order, and serve `readStates` once applied reaches their index.
 */
export interface Ready {
  readonly softState?: SoftState;
  readonly hardState?: HardState;
  /** Chunks of a snapshot arriving from the leader, in order, to be written as they come. */
  readonly snapshotChunks: readonly SnapshotChunk[];
  /** Install the snapshot whose chunks were received: it replaces the log, and the state machine restores from it. */
  readonly snapshot?: SnapshotMetadata;
  readonly entries: readonly Entry[];
  /**
   * A leader's appends, heartbeats and snapshot chunks: they may leave before this batch is
   * durable, so the leader's own disk write overlaps replication (Raft thesis §10.2.1). Safe
   * because the leader counts its own copy toward commitment only after advance().
   */
  readonly leaderMessages: readonly Message[];
  /** Everything else: sent only once this batch is durable. */
  readonly messages: readonly Message[];
  readonly committedEntries: readonly Entry[];
  readonly readStates: readonly ReadState[];
  readonly mustSync: boolean;
}

export const EMPTY_CONFIG: Configuration = Object.freeze({ voters: [], learners: [] });

export function sameHardState(a: HardState, b: HardState): boolean {
  return a.term === b.term && a.vote === b.vote && a.commit === b.commit;
}

const textEncoder = new TextEncoder();
const textDecoder = new TextDecoder("utf-8", { fatal: true });

/** A plain copy with only the fields that are set (what encodeConfig writes and snapshots store). */
export function plainConfig(config: Configuration): Configuration {
  const out: {
    voters: NodeId[];
    learners: NodeId[];
    urls?: Record<NodeId, string>;
    promote?: NodeId[];
    removed?: NodeId[];
  } = {
    voters: [...config.voters],
    learners: [...config.learners],
  };
  if (config.urls && Object.keys(config.urls).length > 0) out.urls = { ...config.urls };
  if (config.promote && config.promote.length > 0) out.promote = [...config.promote];
  if (config.removed && config.removed.length > 0) out.removed = [...config.removed];
  return out;
}

/** A config entry carries the whole new configuration, so the latest one in a log is self-contained. */
export function encodeConfig(config: Configuration): Uint8Array {
  return textEncoder.encode(JSON.stringify(plainConfig(config)));
}

export function decodeConfig(data: Uint8Array): Configuration {
  return checkConfig(JSON.parse(textDecoder.decode(data)), "config entry");
}

/** Validates a parsed configuration (from a log entry, a snapshot header or a peer); throws with `what` in the message. */
export function checkConfig(parsed: unknown, what: string): Configuration {
  if (
    typeof parsed !== "object" ||
    parsed === null ||
    !Array.isArray((parsed as { voters?: unknown }).voters) ||
    !Array.isArray((parsed as { learners?: unknown }).learners)
  ) {
    throw new Error(`${what}: malformed configuration`);
  }
  const { voters, learners, urls, promote, removed } = parsed as {
    voters: unknown[];
    learners: unknown[];
    urls?: unknown;
    promote?: unknown;
    removed?: unknown;
  };
  if (!voters.every((v) => typeof v === "string") || !learners.every((v) => typeof v === "string")) {
    throw new Error(`${what}: member ids must be strings`);
  }
  const out: {
    voters: string[];
    learners: string[];
    urls?: Record<string, string>;
    promote?: string[];
    removed?: string[];
  } = {
    voters: voters as string[],
    learners: learners as string[],
  };
  if (urls !== undefined) {
    if (
      typeof urls !== "object" ||
      urls === null ||
      Array.isArray(urls) ||
      !Object.values(urls).every((u) => typeof u === "string")
    ) {
      throw new Error(`${what}: member URLs must be a map of id to string`);
    }
    out.urls = { ...(urls as Record<string, string>) };
  }
  if (promote !== undefined) {
    if (!Array.isArray(promote) || !promote.every((v) => typeof v === "string")) {
      throw new Error(`${what}: the learners to promote must be a list of ids`);
    }
    out.promote = promote as string[];
  }
  if (removed !== undefined) {
    if (!Array.isArray(removed) || !removed.every((v) => typeof v === "string")) {
      throw new Error(`${what}: the removed members must be a list of ids`);
    }
    out.removed = removed as string[];
  }
  return out;
}

/** Bytes an entry costs in a message; used for batching and the uncommitted budget. */
export function entrySize(e: Entry): number {
  return e.data.byteLength + 24;
}
