/**
 * RaftNode: one member of a cluster, as a library. Drives the pure core with real timers, the
 * durable WAL and the peer transport; applies committed entries to the user's state machine in
 * order; answers proposals and read barriers; reports status and leadership changes. Owns the
 * Ready loop and the clock. Must never make a Raft decision itself (the core does) and never
 * acknowledge anything before the storage says it is durable.
 */
import { createHash } from "node:crypto";
import { EventEmitter } from "node:events";
import type * as http from "node:http";
import type { Raft } from "../raft/raft.js";
import { seededRandom } from "../raft/random.js";
import { RawNode } from "../raft/rawnode.js";
import {
  type ConfChange,
  type Configuration,
  decodeConfig,
  EMPTY_CONFIG,
  type Entry,
  encodeConfig,
  type Message,
  type NodeId,
  type ReadState,
  type Ready,
  type Role,
  type SnapshotMetadata,
} from "../raft/types.js";
import { DiskStorage } from "../storage/disk.js";
import type { FileSystem } from "../storage/fs.js";
import type { SharedLog } from "../storage/shared-log.js";
import { HttpTransport } from "../transport/http.js";
import type { Transport } from "../transport/transport.js";
import {
  MembershipError,
  NotLeaderError,
  OutcomeUnknownError,
  type OverloadedError,
  ProposalDroppedError,
  StoppedError,
  UnavailableError,
} from "./errors.js";
import { Leadership } from "./leadership.js";
import { type AdmissionLimits, admit, checkLimits, DEFAULT_ADMISSION, LagProbe } from "./overload.js";

/** The application's replicated state. Must be deterministic: every node applies the same commands in the same order. */
export interface StateMachine<R = unknown> {
  /** Applies one committed command. Its result (or thrown error) goes back to the proposer on the node that proposed it. */
  apply(command: Uint8Array, index: number): R | Promise<R>;
  /** The state as of the last applied command, as a stream of chunks. */
  snapshot(): Iterable<Uint8Array>;
  /** Replaces the whole state with a snapshot's. */
  restore(chunks: Iterable<Uint8Array>, index: number): void | Promise<void>;
}

export interface NodeLogger {
  info(msg: string): void;
  warn(msg: string): void;
  error(msg: string): void;
}

export interface RaftNodeOptions<R = unknown> {
  /** This member's id (stable for its life). */
  readonly id: NodeId;
  /**
   * Every initial member's id and the URL this node reaches it at (self included). These URLs win
   * over the ones recorded in the configuration for the ids they list, so a node can reach a peer
   * through a proxy or NAT. With `join`, the members the cluster reported (self need not be one).
   */
  readonly members: ReadonlyMap<NodeId, string> | Readonly<Record<NodeId, string>>;
  /**
   * This node joins a running cluster instead of forming one: a new data directory starts with no
   * configuration and this cluster id, and the node waits to be added (as a learner) by the
   * leader. An existing data directory is simply recovered.
   */
  readonly join?: {
    readonly clusterId?: string;
    readonly url: string;
    /** Where the cluster said its members are: used until the configuration says otherwise. */
    readonly seeds?: ReadonlyMap<NodeId, string>;
  };
  /**
   * Disaster recovery when a majority is lost for good: before starting, this node's data
   * directory is made the whole cluster — every entry it holds counts as committed and a
   * configuration with this node as the only voter is appended. Other members must join again
   * with empty data directories. Doing it twice is harmless; doing it while the old majority is
   * alive splits the cluster in two (the operator's call, as with etcd's --force-new-cluster).
   */
  readonly forceNewCluster?: boolean;
  /**
   * Leadership priority (default 0). A leader hands leadership to a voter with a strictly higher
   * priority once that voter has been answering and caught up for a few election timeouts, so
   * the preferred member (the primary data centre) leads whenever it is healthy. Elections never
   * wait for it: any voter can still win one.
   */
  readonly priority?: number;
  /**
   * Follower read leases (default false): while this node leads, it lends its lease to every
   * follower, so `readBarrier({ consistency: "lease" })` on a follower is answered locally with no
   * round trip (and stays linearizable under the same clock-drift bound as the leader's lease).
   * The price is on writes: an entry commits only once every member holding a lease has it — the
   * farthest member rather than the nearest majority — and a lease holder that is lost holds
   * writes back until its lease runs out (at most an election timeout). Set it on every member;
   * a follower takes the leases of any leader that grants them.
   */
  readonly followerReadLeases?: boolean;
  readonly dataDir: string;
  readonly stateMachine: StateMachine<R>;
  /** Part of the cluster's identity with the initial member ids; nodes of different clusters never talk. Default "ballot". */
  readonly clusterToken?: string;
  /** Leader heartbeat interval. Default 100 ms (one data centre); across regions, about the RTT to the farthest member. */
  readonly heartbeatIntervalMs?: number;
  /** Election timeout base (randomized in [1, 2) × this). Default 500 ms; across regions, about 10 × the RTT. */
  readonly electionTimeoutMs?: number;
  /** Take a snapshot every this many applied entries. Default 100,000 (etcd's default too): a snapshot pauses the event loop while it is written. */
  readonly snapshotEntries?: number;
  /** Entries kept behind a snapshot for slow followers. Default 5,000. */
  readonly trailingEntries?: number;
  /** How long propose() waits before answering OutcomeUnknownError. Default 10 s. */
  readonly proposalTimeoutMs?: number;
  /**
   * Bounds on new client work (see AdmissionLimits; defaults in DEFAULT_ADMISSION): past them
   * propose() rejects with OverloadedError before anything reaches the log.
   */
  readonly admission?: Partial<AdmissionLimits>;
  readonly logger?: NodeLogger;
  /** TLS for the peer streams of the HTTP transport (PEM certificate, key, CA; see transport/tls.ts). */
  readonly tls?: import("../transport/tls.js").TlsMaterial;
  /** A transport to use instead of the HTTP one (tests use the in-memory twin). */
  readonly transport?: Transport;
  /** A file system to use instead of the real one (tests inject faults). */
  readonly fs?: FileSystem;
  /** @internal Set by PartitionedNode: this node is one partition (Raft group) of a node. */
  readonly partition?: PartitionSlot;
}

/**
 * @internal What a partitioned node gives each of its groups: the group's storage in the shared
 * WAL, the cluster id, and the promise that it drives the clock (one timer for every group).
 */
export interface PartitionSlot {
  readonly group: number;
  readonly count: number;
  readonly storage: DiskStorage;
  readonly clusterId: string;
  /**
   * The event loop's lag probe, one for every group: the shared clock samples it on each tick,
   * since it does not tick quiet groups (a probe per group would read a quiet spell as a stall).
   */
  readonly lagProbe: (tickMs: number) => LagProbe;
  /**
   * Runs `drain` in the member's next turn with every other partition's kicked this turn: the
   * Ready loops of all partitions then start together, their saves leave in one WAL write and
   * one fdatasync, and their sends share one socket write per peer.
   */
  readonly schedule: (drain: () => void) => void;
}

/**
 * How a read barrier is confirmed: by the leader's lease, by a follower's read lease (no round
 * trip), by a quorum round on the leader, or by asking the leader (one round trip, then its way).
 */
export type ReadConfirmation = "leader_lease" | "follower_lease" | "quorum" | "asked_leader";

export interface MemberStatus {
  readonly id: NodeId;
  readonly url: string;
  readonly voter: boolean;
  /** A learner the leader will promote to voter once it has caught up. */
  readonly promoting: boolean;
  /** Leadership priority as announced to this node (null: not known here). */
  readonly priority: number | null;
  /** Leader's view: follower state and replication. Null on followers. */
  readonly matchIndex: number | null;
  readonly lagEntries: number | null;
}

export interface NodeStatus {
  readonly clusterId: string;
  readonly self: NodeId;
  readonly role: Role;
  readonly term: number;
  readonly leader: { readonly id: NodeId; readonly url: string | null } | null;
  readonly commitIndex: number;
  readonly appliedIndex: number;
  readonly lastIndex: number;
  readonly members: readonly MemberStatus[];
  readonly leaseValid: boolean;
  /** Follower: a read lease from the leader is in force (lease reads are answered here, no round trip). */
  readonly followerReadLease: boolean;
  /** Index of the configuration in effect, and whether it is committed yet. */
  readonly configIndex: number;
  readonly configCommitted: boolean;
}

interface PendingProposal {
  readonly term: number;
  /** When it was proposed (performance.now()). */
  readonly at: number;
  resolve(v: unknown): void;
  reject(e: Error): void;
  timer: NodeJS.Timeout;
}

interface ApplyWaiter {
  readonly index: number;
  resolve(index: number): void;
}

const consoleLogger: NodeLogger = {
  info: (m) => console.log(m),
  warn: (m) => console.warn(m),
  error: (m) => console.error(m),
};

/** The cluster identity written in every data dir: the token plus the initial member ids. */
export function clusterIdOf(token: string, memberIds: readonly string[]): string {
  const h = createHash("sha256")
    .update(`${token}\n${[...memberIds].sort().join("\n")}`)
    .digest("hex");
  return `${token}-${h.slice(0, 12)}`;
}

/** Member ids travel in URLs, headers and file names: keep them plain. */
export function checkMemberId(id: string): void {
  if (!/^[A-Za-z0-9._-]{1,64}$/.test(id))
    throw new RangeError(`member id '${id}' must be 1-64 of A-Z a-z 0-9 . _ -`);
}

export function checkMemberUrl(id: string, url: string): void {
  try {
    const u = new URL(url);
    if (u.protocol !== "http:" && u.protocol !== "https:") throw new Error();
  } catch {
    throw new RangeError(`member ${id}: '${url}' is not an http(s) URL`);
  }
}

/** A learner is caught up when it is this close to the leader's commit index (and replicating normally). */
export const CATCH_UP_ENTRIES = 64;

/**
 * A running cluster member. Start it with {@link RaftNode.start}; stop it with {@link RaftNode.stop}.
 * Events: `role` (Role), `leader` ({id, url} | null), `applied` (index); for metrics:
 * `persisted` (ms, entries) after each fdatasync'd save, `proposal` (committed: boolean) when a
 * proposal made here settles, `snapshot` ({index, bytes, ms}), `peerRtt` (peer, ms) from heartbeats,
 * `readBarrier` (ReadConfirmation) as each read barrier starts.
 */
export class RaftNode<R = unknown> extends EventEmitter {
  readonly id: NodeId;
  readonly clusterId: string;
  private readonly raw: RawNode;
  private readonly storage: DiskStorage;
  private readonly transport: Transport;
  private readonly sm: StateMachine<R>;
  private readonly log: NodeLogger;
  /** Where each member is reached: the configuration's URLs, overridden by the ones given at start. */
  private urls: Map<NodeId, string>;
  private readonly givenUrls: ReadonlyMap<NodeId, string>;
  private readonly seedUrls: ReadonlyMap<NodeId, string>;
  /** The configuration the transport and `urls` were last set from. */
  private seenConfig: Configuration | null = null;
  private removed = false;
  /** How many removed ids the committed configuration lists (a change cuts their streams). */
  private seenTombstones = 0;
  readonly priority: number;
  /** Leader: since when (ms) each higher-priority voter has been seen healthy, and when a handover may next be tried. */
  private readonly healthySince = new Map<NodeId, number>();
  private nextPlacementAt = 0;
  private placementFailures = 0;
  private placingTerm = -1;
  private placing = false;
  readonly tickMs: number;
  readonly electionTimeoutMs: number;
  readonly heartbeatIntervalMs: number;
  /** Ticks in two heartbeat intervals: a clock catch-up this long is a stall (see syncClock). */
  private readonly stallTicks: number;
  /** See RaftNodeOptions.followerReadLeases. */
  readonly followerReadLeases: boolean;
  private readonly snapshotEntries: number;
  private readonly proposalTimeoutMs: number;
  /** See RaftNodeOptions.admission. */
  readonly admissionLimits: AdmissionLimits;
  /** The tick timer's lateness: the event loop's lag where it matters, on the clock's own path. */
  private readonly lag: LagProbe;

  private applied: number;
  private lastTickAt: number;
  private tickTimer: NodeJS.Timeout | null = null;
  private scheduled = false;
  private readonly slot: PartitionSlot | null;
  private busy = false;
  private stopped = false;
  private failed: Error | null = null;
  private role: Role = "follower";
  private leader: NodeId | null = null;
  private readonly pending = new Map<number, PendingProposal>();
  private readonly reads = new Map<
    number,
    { resolve(index: number): void; reject(e: Error): void; timer: NodeJS.Timeout }
  >();
  private nextReadId = 1;
  private waiters: ApplyWaiter[] = [];
  /** This node's Raft group (0 unless it is one partition of a PartitionedNode). */
  readonly group: number;
  private readonly partitioned: boolean;
  /** Run code only while this node is the one healthy leader (see Leadership). */
  readonly leadership: Leadership;

  private constructor(
    opts: RaftNodeOptions<R>,
    storage: DiskStorage,
    clusterId: string,
    urls: Map<NodeId, string>,
  ) {
    super();
    this.id = opts.id;
    this.clusterId = clusterId;
    this.storage = storage;
    this.group = opts.partition?.group ?? 0;
    this.slot = opts.partition ?? null;
    this.partitioned = opts.partition !== undefined;
    this.sm = opts.stateMachine;
    this.log = opts.logger ?? consoleLogger;
    this.priority = opts.priority ?? 0;
    this.givenUrls = opts.join ? new Map([...urls, [opts.id, opts.join.url]]) : urls;
    this.seedUrls = opts.join?.seeds ?? new Map();
    this.urls = new Map(this.givenUrls);
    const heartbeat = opts.heartbeatIntervalMs ?? 100;
    this.heartbeatIntervalMs = heartbeat;
    this.electionTimeoutMs = opts.electionTimeoutMs ?? 500;
    if (!(heartbeat > 0 && this.electionTimeoutMs >= 2 * heartbeat)) {
      throw new RangeError("the election timeout must be at least twice the heartbeat interval");
    }
    // A tick fine enough for both: fifty ticks per election timeout at least (capped at 10 ms), so
    // the randomized election timeout takes enough distinct values that two followers rarely
    // time out together (with ten, bench/geo saw split votes in 15-24 % of failovers).
    this.tickMs = Math.max(
      1,
      Math.min(
        heartbeat,
        Math.max(10, Math.floor(this.electionTimeoutMs / 50)),
        Math.floor(this.electionTimeoutMs / 10),
      ),
    );
    this.stallTicks = 2 * Math.max(1, Math.round(heartbeat / this.tickMs));
    this.snapshotEntries = opts.snapshotEntries ?? 100_000;
    this.proposalTimeoutMs = opts.proposalTimeoutMs ?? 10_000;
    this.admissionLimits = { ...DEFAULT_ADMISSION, ...opts.admission };
    checkLimits(this.admissionLimits);
    this.lag = opts.partition?.lagProbe(this.tickMs) ?? new LagProbe(this.tickMs);
    this.applied = storage.snapshotMetadata().index;
    this.raw = new RawNode({
      id: opts.id,
      storage,
      random: seededRandom(
        Number.parseInt(createHash("sha256").update(`${opts.id}${Date.now()}`).digest("hex").slice(0, 8), 16),
      ),
      electionTicks: Math.round(this.electionTimeoutMs / this.tickMs),
      heartbeatTicks: Math.max(1, Math.round(heartbeat / this.tickMs)),
      // Timer drift between machines over one election timeout stays far below 10 %.
      leaseDriftTicks: Math.max(1, Math.ceil(Math.round(this.electionTimeoutMs / this.tickMs) / 10)),
      applied: this.applied,
      followerReadLeases: opts.followerReadLeases ?? false,
      // A partitioned node's idle partitions go quiet (its PartitionedNode detects failed peers);
      // partition 0, which holds the cluster's elections and leases, never does.
      quiesce: opts.partition !== undefined && opts.partition.group > 0,
    });
    this.followerReadLeases = opts.followerReadLeases ?? false;
    this.transport =
      opts.transport ??
      new HttpTransport({
        self: opts.id,
        clusterId,
        peers: new Map(),
        logger: { info: (m) => this.log.info(m), warn: (m) => this.log.warn(m) },
        idleTimeoutMs: Math.max(3000, 6 * this.electionTimeoutMs),
        formerClusterId: storage.forced?.from,
        admit: (from) => this.admitPeer(from),
        priority: opts.priority ?? 0,
        onRemoved: (peer) =>
          void this.leaveCluster(`${peer} says its removal from the configuration is committed`),
        tls: opts.tls,
      });
    this.syncMembership();
    this.lastTickAt = performance.now();
    const raft = this.raw.raft;
    this.leadership = new Leadership(
      {
        syncClock: () => this.syncClock(),
        holds: () =>
          !this.stopped &&
          raft.role === "leader" &&
          raft.leaseValid() &&
          raft.log.term(raft.log.committed) === raft.term,
        term: () => raft.term,
        leader: () => this.leaderInfo,
        wantLease: () => {
          this.updateQuiescence();
          this.kick();
        },
      },
      (m) => this.log.error(m),
    );
    this.on("leader", (l) => {
      const info = l === null ? null : { ...l, term: raft.term };
      this.leadership.emit("leader", info);
      this.leadership.emit("leader-changed", info); // the issue's name for it; both are kept
    });
  }

  /**
   * Opens (or creates) the data directory, recovers the log and the state machine, and starts
   * taking part in the cluster. Fails with a one-line reason for a data directory of another node
   * or cluster, or a corrupt one.
   */
  static async start<R>(opts: RaftNodeOptions<R>): Promise<RaftNode<R>> {
    const urls = new Map(opts.members instanceof Map ? opts.members : Object.entries(opts.members));
    if (!opts.join && !urls.has(opts.id))
      throw new RangeError(`members must include this node ('${opts.id}')`);
    checkMemberId(opts.id);
    if (opts.priority !== undefined && !(Number.isSafeInteger(opts.priority) && opts.priority >= 0))
      throw new RangeError(`priority must be a whole number of at least 0 (got ${opts.priority})`);
    for (const [id, url] of urls) {
      checkMemberId(id);
      checkMemberUrl(id, url);
    }
    if (opts.join) checkMemberUrl(opts.id, opts.join.url);
    const token = opts.clusterToken ?? "ballot";
    if (opts.partition) {
      if (opts.forceNewCluster)
        throw new RangeError(
          "a partitioned node forces a new cluster for all its groups at once (PartitionedNode)",
        );
      return RaftNode.begin(new RaftNode<R>(opts, opts.partition.storage, opts.partition.clusterId, urls));
    }
    const fresh = !DiskStorage.exists(opts.dataDir, opts.fs);
    let clusterId: string;
    let initialConfig: Configuration;
    if (opts.join) {
      if (fresh && !opts.join.clusterId)
        throw new RangeError("a node joining a cluster with an empty data directory needs the cluster's id");
      clusterId = opts.join.clusterId ?? "";
      initialConfig = EMPTY_CONFIG; // the configuration arrives from the leader, with this node in it
    } else {
      clusterId = clusterIdOf(token, [...urls.keys()]);
      initialConfig = { voters: [...urls.keys()], learners: [], urls: Object.fromEntries(urls) };
    }
    const log = opts.logger ?? consoleLogger;
    const storage = DiskStorage.open({
      dir: opts.dataDir,
      nodeId: opts.id,
      clusterId,
      // The member list given at start only forms a new cluster: once the membership has changed
      // at runtime, the data directory's cluster is the one to rejoin (same token, other ids).
      adoptCluster: (stored) => {
        const ok = opts.join !== undefined || stored.replace(/-[0-9a-f]{12}$/, "") === token;
        if (ok && !opts.join)
          log.warn(
            `the data directory belongs to cluster ${stored}: the members given at start differ from the ones it was formed with, which is expected after membership changes`,
          );
        return ok;
      },
      initialConfig,
      fs: opts.fs,
      trailingEntries: opts.trailingEntries,
      logger: { warn: (m) => log.warn(m) },
    });
    clusterId = storage.clusterId;
    if (opts.forceNewCluster) {
      try {
        if (fresh) throw new RangeError("forcing a new cluster needs this node's existing data directory");
        if (opts.join) throw new RangeError("forcing a new cluster and joining one exclude each other");
        await forceNewCluster(storage, opts.id, urls.get(opts.id)!, log);
        clusterId = storage.clusterId;
      } catch (e) {
        storage.close();
        throw e;
      }
    }
    return RaftNode.begin(new RaftNode<R>(opts, storage, clusterId, urls));
  }

  /** Restores the state machine from the snapshot and starts taking part. */
  private static async begin<R>(node: RaftNode<R>): Promise<RaftNode<R>> {
    try {
      await node.restoreStateMachine();
    } catch (e) {
      node.storage.close();
      throw e;
    }
    node.transport.start((m, group) => {
      if (node.stopped || group !== node.group) return;
      // A leader stamps a follower's clock reading with its own tick count on arrival: a count left
      // behind by a stalled event loop would stretch the read lease computed from it.
      if (node.followerReadLeases && node.raw.raft.role === "leader") node.syncClock();
      else node.catchUpQuiet();
      if (m.type === "heartbeatResp") node.observeRtt(m.from);
      node.raw.step(m);
      node.kick();
    });
    // A partitioned node's groups share one timer (PartitionedNode calls clockSync() and clockCheck()).
    if (!node.partitioned) node.tickTimer = setInterval(() => node.onTimer(), node.tickMs);
    node.kick();
    return node;
  }

  /**
   * @internal The shared clock of a partitioned node, in two halves: its timer calls clockSync()
   * on every group, then, in the check phase of the same turn (after the input that arrived was
   * read, see onTimer), clockCheck() on every group — one immediate for all groups, not one each.
   */
  clockSync(now: number): boolean {
    if (this.stopped) return false;
    // A group quiet before these ticks has nothing to act on and is not ticked at all: its clock
    // is caught up (catchUpQuiet) before anything reads it. One that went quiet during these
    // ticks still has its last heartbeat to send.
    this.checkDue = !this.raw.raft.quiesced;
    if (!this.checkDue) {
      this.asleep = true;
      return false;
    }
    this.syncClock(now);
    return true;
  }

  /**
   * @internal Called when a partition the shared clock found quiet (clockSync returned false)
   * may be awake again: anything that wakes a core either kicks the Ready loop or changes
   * whether it may stay quiet, and both pass through noteAwake().
   */
  onAwake: (() => void) | null = null;
  private asleep = false;

  private noteAwake(): void {
    if (!this.asleep) return;
    this.asleep = false;
    this.onAwake?.();
  }

  /**
   * Catches the clock of a quiet partition up before its core is used: the shared clock skips
   * quiet partitions (clockSync), and a core acting on a stale clock would stamp acknowledgements
   * and clock readings in the past.
   */
  private catchUpQuiet(): void {
    if (this.partitioned && this.raw.raft.quiesced) this.syncClock();
  }

  /** @internal See clockSync(); called for the partitions it returned true for. */
  clockCheck(): void {
    if (this.checkDue) this.afterInput();
  }

  private checkDue = true;

  /** @internal Whether this partition is quiet (idle: no heartbeats, no election timer). */
  get quiesced(): boolean {
    return this.raw.raft.quiesced;
  }

  /** @internal The core, for a partitioned node's failure detector (multiraft/host.ts FailureDetector). */
  get core(): Raft {
    this.catchUpQuiet();
    return this.raw.raft;
  }

  /** @internal Runs the Ready loop after the failure detector changed the core. */
  poke(): void {
    this.kick();
  }

  private readonly awakeHolds: (() => boolean)[] = [];
  private keptAwake = false;

  /**
   * @internal Keeps this partition awake while `hold()` is true (checked every tick while awake,
   * and before it goes quiet): state whose upkeep needs a leader with a valid lease (a store's
   * TTL leases, which only such a leader expires).
   */
  holdAwakeWhile(hold: () => boolean): void {
    this.awakeHolds.push(hold);
    this.updateQuiescence();
  }

  /** @internal Keeps this partition awake (leader balancing needs its acknowledgements). */
  setKeptAwake(awake: boolean): void {
    if (this.keptAwake === awake) return;
    this.keptAwake = awake;
    this.updateQuiescence();
    this.kick();
  }

  /**
   * A group may go quiet unless something needs its leader's lease: a leader-only job, a
   * listener to its leadership's events, a hold (holdAwakeWhile), or the balancer.
   */
  private updateQuiescence(): void {
    const raft = this.raw.raft;
    if (!raft.quiesceEnabled) return;
    // A learner waiting for promotion is promoted by this node's checks, which a quiet group skips.
    const promoting = (raft.config.promote?.length ?? 0) > 0;
    const awake =
      this.keptAwake || promoting || this.leadership.needsLease() || this.awakeHolds.some((h) => h());
    raft.setQuiesceAllowed(!awake);
    if (!raft.quiesced) this.noteAwake();
  }

  private async restoreStateMachine(): Promise<void> {
    const meta = this.storage.snapshotMetadata();
    if (meta.index > 0) await this.sm.restore(this.snapshotChunks(), meta.index);
  }

  private *snapshotChunks(): Iterable<Uint8Array> {
    const size = this.storage.snapshotSize();
    for (let at = 0; at < size; ) {
      const chunk = this.storage.readSnapshot(at, 1 << 20);
      if (chunk.byteLength === 0) break;
      at += chunk.byteLength;
      yield chunk;
    }
  }

  // ---------------------------------------------------------------- clock

  private onTimer(): void {
    this.lag.sample(performance.now());
    // Timers run before I/O in each turn of Node's event loop. After a stall (a long batch, GC, a
    // slow disk) the heartbeats and acknowledgements that arrived meanwhile are still unread in
    // the sockets: timing out now would call an election, or make a leader step down for want
    // of a quorum, on messages that are already here. So the clock is caught up here with the
    // timeouts held, and they are acted on in the check phase, after this turn's input was read.
    this.syncClock();
    setImmediate(this.afterInput);
  }

  private readonly afterInput = (): void => {
    if (this.stopped) return;
    this.syncClock();
    this.updateQuiescence();
    this.raw.checkTimeouts();
    this.leadership.check();
    this.maybePromote();
    this.maybeMoveLeadership();
    this.kick();
  };

  /**
   * Ticks the core for the time that really passed. Timers fire late when the event loop stalls
   * or the process was paused; counting timer callbacks would then make a leader believe its
   * lease lasts longer than it does. The ticks hold their timeouts (see onTimer): callers may
   * run before pending input is read, and only afterInput acts on the deadlines.
   */
  syncClock(now = performance.now()): void {
    if (this.stopped) return;
    let due = Math.floor((now - this.lastTickAt) / this.tickMs);
    if (due <= 0) return;
    this.lastTickAt += due * this.tickMs;
    // A quiet group's ticks only move its clock: no loop, and no stall to record.
    if (this.raw.elapseQuiet(due)) return;
    if (due > this.maxTickBurst) this.maxTickBurst = due;
    if (due > 10_000) due = 10_000;
    for (let i = 0; i < due; i++) this.raw.tickHeld();
    // A stall of two heartbeat intervals or more: nobody could be heard meanwhile, and if the
    // whole machine stalled the leader did too. Its next heartbeat gets two intervals to arrive.
    if (due >= this.stallTicks) this.raw.graceAfterStall(this.stallTicks + 1);
  }

  /** A moving average of how long proposals made here take to settle (ms): the retry hint under overload. */
  private settleMs = 0;

  /** The most ticks one catch-up of the clock applied at once (a stall of that many tick periods). */
  maxTickBurst = 0;

  // ---------------------------------------------------------------- the Ready loop

  private kick(): void {
    this.noteAwake();
    if (this.scheduled || this.stopped) return;
    this.scheduled = true;
    const run = () => {
      this.scheduled = false;
      void this.drain();
    };
    if (this.slot) this.slot.schedule(run);
    else setImmediate(run);
  }

  private async drain(): Promise<void> {
    if (this.busy || this.stopped) return;
    this.busy = true;
    try {
      while (!this.stopped && this.raw.hasReady()) await this.handle(this.raw.ready());
    } catch (e) {
      this.fail(e instanceof Error ? e : new Error(String(e)));
    } finally {
      this.busy = false;
    }
  }

  private async handle(rd: Ready): Promise<void> {
    // Before sending: a leader that just added a member must have a link to it.
    this.syncMembership();
    if (rd.softState) this.onSoftState(rd.softState.role, rd.softState.leader);
    // 0. A leader's appends leave now: its own disk write overlaps replication.
    this.noteHeartbeats(rd.leaderMessages);
    this.transport.send(rd.leaderMessages);
    // 1. Durable first: votes, acknowledgements and commits leave only after this.
    const saveStart = performance.now();
    await new Promise<void>((resolve, reject) =>
      this.storage.save(rd, (err) => (err ? reject(err) : resolve())),
    );
    if (this.stopped) return;
    if (rd.mustSync) this.emit("persisted", performance.now() - saveStart, rd.entries.length);
    // 2. Send.
    this.noteHeartbeats(rd.messages);
    this.transport.send(rd.messages);
    // 3. Apply.
    if (rd.snapshot) await this.installSnapshot(rd.snapshot);
    for (const e of rd.committedEntries) await this.apply(e);
    for (const rs of rd.readStates) this.onReadState(rs);
    this.raw.advance(rd);
    this.syncMembership();
    const tombstones = this.raw.raft.configAt(this.raw.raft.log.committed).removed?.length ?? 0;
    if (tombstones !== this.seenTombstones) {
      this.seenTombstones = tombstones;
      this.transport.recheckInbound?.();
    }
    this.leadership.check();
    this.resolveWaiters();
    this.maybeSnapshot();
    if (this.removed) void this.leaveCluster("its removal from the configuration was committed");
  }

  // ---------------------------------------------------------------- membership

  /** Points `urls` and the transport at the configuration in effect (the latest in the log). */
  private syncMembership(): void {
    const r = this.raw.raft;
    const c = r.config;
    if (c === this.seenConfig) return;
    const first = this.seenConfig === null;
    this.seenConfig = c;
    const urls = new Map<NodeId, string>(this.seedUrls);
    for (const [id, u] of Object.entries(c.urls ?? {})) urls.set(id, u);
    for (const [id, u] of this.givenUrls) urls.set(id, u);
    this.urls = urls;
    // Links to everyone known but removed members: a node behind on the configuration must still
    // answer a newer member that leads (links are opened only when there is something to send).
    const removed = new Set(c.removed ?? []);
    const peers = new Map<NodeId, string>();
    for (const [id, u] of urls) if (id !== this.id && !removed.has(id)) peers.set(id, u);
    this.transport.setPeers(peers);
    if (!first) {
      const learners = c.learners.length > 0 ? `; learners ${c.learners.join(", ")}` : "";
      this.log.info(
        `membership: voters ${c.voters.join(", ")}${learners} (configuration at index ${r.configIndex})`,
      );
      this.emit("membership", { voters: [...c.voters], learners: [...c.learners], index: r.configIndex });
    }
  }

  /**
   * Peer streams are refused only to members whose removal is committed (tombstoned ids are
   * never reused): a node behind on the configuration, or one just joining, must still be heard.
   */
  private admitPeer(from: NodeId): string | null {
    const r = this.raw.raft;
    return r.configAt(r.log.committed).removed?.includes(from)
      ? `'${from}' was removed from this cluster (configuration committed at or before index ${r.log.committed})`
      : null;
  }

  /** @internal Whether a peer stream from `from` is admitted (a partitioned node's transport asks partition 0). */
  admits(from: NodeId): string | null {
    return this.admitPeer(from);
  }

  /** @internal A peer said this node's removal is committed (a partitioned node's transport tells partition 0). */
  removedBy(peer: NodeId): void {
    void this.leaveCluster(`${peer} says its removal from the configuration is committed`);
  }

  private async leaveCluster(why: string): Promise<void> {
    if (this.stopped || this.leaving) return;
    this.leaving = true;
    this.log.warn(`this node was removed from the cluster: ${why}; stopping`);
    this.emit("removed");
    await this.stop({ transferLeadership: false });
  }
  private leaving = false;

  /**
   * Proposes one membership change (leader only) and resolves once it is committed and applied
   * here. Adding takes the new member's URL; a learner added with `promote` becomes a voter once
   * caught up. Rejects with NotLeaderError, MembershipError (refused, nothing changed),
   * UnavailableError, ProposalDroppedError or OutcomeUnknownError.
   */
  async changeMembership(
    change:
      | { type: "add"; id: NodeId; url: string; promote: boolean }
      | { type: "promote"; id: NodeId }
      | { type: "remove"; id: NodeId },
  ): Promise<void> {
    if (this.stopped) throw new StoppedError();
    // A partitioned member's change is made partition by partition (the API's partitioned
    // membership route drives it), each through this, on that partition's leader.
    this.catchUpQuiet();
    const r = this.raw.raft;
    if (r.role !== "leader") throw this.notLeader();
    const members = new Set([...r.config.voters, ...r.config.learners]);
    // Record the URLs this leader knows for members whose configuration entry lacks one (data
    // directories formed before URLs were recorded), so a node joining later can reach everyone.
    const urls: Record<NodeId, string> = {};
    for (const id of members) {
      const u = this.urls.get(id);
      if (u && !r.config.urls?.[id]) urls[id] = u;
    }
    let cc: ConfChange;
    if (change.type === "add") {
      checkMemberId(change.id);
      checkMemberUrl(change.id, change.url);
      urls[change.id] = change.url;
      cc = { type: "addLearner", id: change.id, urls, promote: change.promote };
    } else if (change.type === "promote") {
      if (!r.config.learners.includes(change.id))
        throw new MembershipError("invalid_config_change", `'${change.id}' is not a learner`);
      const behind = this.catchUpGap(change.id);
      if (behind !== null) throw new MembershipError("learner_behind", behind);
      cc = { type: "addVoter", id: change.id, urls };
    } else {
      if (!members.has(change.id))
        throw new MembershipError("invalid_config_change", `'${change.id}' is not a member`);
      // A leader elected a moment ago has not heard back from its followers yet: give them an
      // election timeout to show they are healthy before calling the removal unsafe.
      let risk = this.removalRisk(change.id);
      for (
        const until = performance.now() + this.electionTimeoutMs;
        risk !== null && performance.now() < until;
      ) {
        await new Promise((res) => setTimeout(res, this.tickMs));
        if (this.raw.raft.role !== "leader") throw this.notLeader();
        risk = this.removalRisk(change.id);
      }
      if (risk !== null) throw new MembershipError("quorum_at_risk", risk);
      cc = { type: "remove", id: change.id, urls };
    }
    this.catchUpQuiet();
    const res = this.raw.proposeConfChange(cc);
    if (!res.ok) {
      if (res.error === "not_leader") throw this.notLeader();
      if (res.error === "config_pending" || res.error === "invalid_config_change")
        throw new MembershipError(res.error, res.message);
      throw new UnavailableError(res.message);
    }
    this.log.info(`proposed a membership change at index ${res.index}: ${describeChange(cc)}`);
    this.kick();
    await this.awaitEntry(res.index, res.term);
  }

  /** Null when learner `id` is caught up with this leader, else why not. */
  private catchUpGap(id: NodeId): string | null {
    const r = this.raw.raft;
    const pr = r.progress.get(id);
    if (!pr) return `no replication state for '${id}' yet`;
    const gap = r.log.committed - pr.match;
    if (pr.state !== "replicate" || gap > CATCH_UP_ENTRIES)
      return `'${id}' has not caught up yet: it holds index ${pr.match} of ${r.log.committed} (${pr.state})`;
    if (r.tickCount - pr.ackedTick > r.electionTicks)
      return `'${id}' has not answered within an election timeout`;
    return null;
  }

  /** Null when the voters left after removing `id` can still form a majority among those answering, else why not. */
  private removalRisk(id: NodeId): string | null {
    const r = this.raw.raft;
    const voters = r.config.voters.filter((v) => v !== id);
    if (!r.config.voters.includes(id)) return null; // removing a learner never touches a quorum
    // Counted: voters that answer and are caught up (one still receiving a snapshot would stall every commit).
    const live = voters.filter((v) => v === this.id || this.isHealthyFollower(v));
    const need = Math.floor(voters.length / 2) + 1;
    if (live.length < need)
      return `after removing '${id}', only ${live.length} of the ${voters.length} remaining voters answer, fewer than the ${need} a majority needs`;
    return null;
  }

  /** The priority a member announced (this node's own for itself); undefined when not known here. */
  priorityOf(id: NodeId): number | undefined {
    if (id === this.id) return this.priority;
    return this.transport instanceof HttpTransport ? this.transport.peerPriority(id) : undefined;
  }

  /**
   * Leader: hands leadership to the voter with the highest priority above its own once that voter
   * has been answering and caught up for three election timeouts (so a member that just came
   * back is not handed leadership while it may still fail again).
   */
  private maybeMoveLeadership(): void {
    // A partitioned node places its groups' leaders itself (PartitionedNode's balancing).
    if (this.partitioned) return;
    const r = this.raw.raft;
    if (r.role !== "leader") {
      this.healthySince.clear();
      return;
    }
    const now = performance.now();
    if (this.placingTerm !== r.term) {
      // A new term (ours or after a handover that did not hold): wait for it to settle first, so
      // a target that cannot keep leadership is not handed it over and over.
      this.placingTerm = r.term;
      this.nextPlacementAt = Math.max(this.nextPlacementAt, now + 5 * this.electionTimeoutMs);
    }
    if (this.placing || this.stopped || now < this.nextPlacementAt || r.transferee !== null) return;
    if (r.log.term(r.log.committed) !== r.term) return;
    let best: NodeId | null = null;
    let bestPriority = this.priority;
    for (const id of r.config.voters) {
      if (id === this.id) continue;
      const p = this.priorityOf(id);
      const pr = r.progress.get(id);
      const healthy = p !== undefined && p > this.priority && pr !== undefined && this.isHealthyFollower(id);
      if (!healthy) {
        this.healthySince.delete(id);
        continue;
      }
      if (!this.healthySince.has(id)) this.healthySince.set(id, now);
      if (now - this.healthySince.get(id)! < 3 * this.electionTimeoutMs) continue;
      if (p > bestPriority) {
        best = id;
        bestPriority = p;
      }
    }
    if (best === null) return;
    const target = best;
    this.placing = true;
    this.log.info(
      `handing leadership to ${target}: its priority ${bestPriority} is above this node's ${this.priority}`,
    );
    this.transferLeadership(target)
      .then(() => {
        this.placementFailures = 0;
      })
      .catch((e: Error) => {
        // Back off exponentially: 5, 10, 20 … up to 80 election timeouts.
        const wait = 5 * 2 ** Math.min(4, this.placementFailures++) * this.electionTimeoutMs;
        this.log.warn(
          `leadership did not move to ${target}: ${e.message}; trying again in ${Math.round(wait)} ms at the earliest`,
        );
        this.nextPlacementAt = performance.now() + wait;
      })
      .finally(() => {
        this.placing = false;
        this.healthySince.clear();
      });
  }

  /** Leader: whether `id` answered within an election timeout and is within CATCH_UP_ENTRIES, replicating normally. */
  isHealthyFollower(id: NodeId): boolean {
    const r = this.raw.raft;
    const pr = r.progress.get(id);
    return (
      r.role === "leader" &&
      pr !== undefined &&
      pr.state === "replicate" &&
      r.tickCount - pr.ackedTick <= r.electionTicks &&
      r.log.lastIndex() - pr.match <= CATCH_UP_ENTRIES
    );
  }

  /** Leader: the healthy voter best placed to take over, waiting up to an election timeout for one. */
  async awaitHandoverTarget(): Promise<NodeId | null> {
    const until = performance.now() + this.electionTimeoutMs;
    let t = this.handoverTarget();
    while (t === null && performance.now() < until && this.raw.raft.role === "leader") {
      await new Promise((res) => setTimeout(res, this.tickMs));
      t = this.handoverTarget();
    }
    return t;
  }

  /** Leader: the healthy voter (other than itself) best placed to take over, or null. */
  handoverTarget(): NodeId | null {
    const r = this.raw.raft;
    let best: NodeId | null = null;
    let bestMatch = -1;
    for (const id of r.config.voters) {
      const m = r.progress.get(id)?.match ?? -1;
      if (id !== this.id && this.isHealthyFollower(id) && m > bestMatch) {
        best = id;
        bestMatch = m;
      }
    }
    return best;
  }

  /** Leader: promotes one learner marked for promotion once it has caught up (one change at a time). */
  private maybePromote(): void {
    const r = this.raw.raft;
    const waiting = r.config.promote;
    if (r.role !== "leader" || !waiting || waiting.length === 0 || r.configIndex > r.log.committed) return;
    for (const id of waiting) {
      if (!r.config.learners.includes(id) || this.catchUpGap(id) !== null) continue;
      this.catchUpQuiet();
      const res = this.raw.proposeConfChange({ type: "addVoter", id });
      if (res.ok) {
        this.log.info(`learner ${id} has caught up: promoting it to voter (index ${res.index})`);
        this.kick();
      }
      return;
    }
  }

  /** When the oldest unanswered heartbeat to each peer left: its response gives the round trip. */
  private readonly heartbeatSentAt = new Map<NodeId, number>();

  private noteHeartbeats(messages: readonly Message[]): void {
    const now = performance.now();
    for (const m of messages) {
      if (m.type !== "heartbeat") continue;
      const at = this.heartbeatSentAt.get(m.to);
      // A lost heartbeat must not make the next answer look seconds slow.
      if (at === undefined || now - at > 5000) this.heartbeatSentAt.set(m.to, now);
    }
  }

  private observeRtt(peer: NodeId): void {
    const at = this.heartbeatSentAt.get(peer);
    if (at === undefined) return;
    this.heartbeatSentAt.delete(peer);
    this.emit("peerRtt", peer, performance.now() - at);
  }

  private async installSnapshot(meta: SnapshotMetadata): Promise<void> {
    await this.sm.restore(this.snapshotChunks(), meta.index);
    this.applied = meta.index;
    for (const [index, p] of this.pending) {
      if (index <= meta.index) {
        this.pending.delete(index);
        clearTimeout(p.timer);
        p.reject(
          new OutcomeUnknownError(
            "a snapshot from the leader replaced the log before the proposal's fate was known here",
          ),
        );
      }
    }
    this.log.info(`installed a snapshot from the leader at index ${meta.index}`);
  }

  private async apply(e: Entry): Promise<void> {
    let result: unknown;
    let error: Error | null = null;
    if (e.type === "normal" && e.data.byteLength > 0) {
      try {
        result = await this.sm.apply(e.data, e.index);
      } catch (err) {
        error = err instanceof Error ? err : new Error(String(err));
      }
    }
    if (e.type === "config") {
      // Judged on committed configurations only, and on the tombstone: ids are never reused, so a
      // joining node replaying older configurations without itself is not mistaken for removed.
      if (decodeConfig(e.data).removed?.includes(this.id)) this.removed = true;
    }
    this.applied = e.index;
    const p = this.pending.get(e.index);
    if (p) {
      this.pending.delete(e.index);
      clearTimeout(p.timer);
      this.settleMs += (performance.now() - p.at - this.settleMs) / 64;
      if (p.term !== e.term) p.reject(new ProposalDroppedError(e.index));
      else if (error) p.reject(error);
      else p.resolve(result);
      this.emit("proposal", p.term === e.term && !error);
    }
    this.emit("applied", e.index);
  }

  private maybeSnapshot(): void {
    const snap = this.storage.snapshotMetadata();
    if (this.applied - snap.index < this.snapshotEntries) return;
    const index = this.applied;
    const meta = { index, term: this.storage.term(index), config: this.raw.raft.configAt(index) };
    const started = performance.now();
    this.storage.writeSnapshot(meta, this.sm.snapshot());
    this.storage.compactToSnapshot();
    this.raw.compacted();
    const ms = performance.now() - started;
    this.emit("snapshot", { index, bytes: this.storage.snapshotSize(), ms });
    this.log.info(`snapshot at index ${index} (${this.storage.snapshotSize()} bytes, ${Math.round(ms)} ms)`);
  }

  private onSoftState(role: Role, leader: NodeId | null): void {
    if (role !== this.role) {
      const was = this.role;
      this.role = role;
      if (role === "leader") this.log.info(`became leader in term ${this.raw.raft.term}`);
      // Why leadership moved, in the log of the member that moved it (one line per change; the
      // partitions of a member report through partition 0 only, or a member's death says it P times).
      const says = !this.partitioned || this.group === 0;
      if (says && was === "leader" && role !== "leader")
        this.log.warn(
          `stepped down in term ${this.raw.raft.term} (leader now: ${leader ?? "none known"}; longest clock catch-up ${this.maxTickBurst} ticks)`,
        );
      // A PreVote round starts only on an election timeout (a transfer campaigns at once).
      if (says && was === "follower" && role === "preCandidate" && this.leader !== null)
        this.log.warn(
          `heard nothing from leader ${this.leader} for an election timeout: campaigning (term ${this.raw.raft.term}; longest clock catch-up ${this.maxTickBurst} ticks)`,
        );
      this.emit("role", role);
    }
    if (leader !== this.leader) {
      this.leader = leader;
      if (leader !== null && leader !== this.id)
        this.log.info(`leader is ${leader} (term ${this.raw.raft.term})`);
      this.emit("leader", leader === null ? null : { id: leader, url: this.urls.get(leader) ?? null });
    }
  }

  private fail(e: Error): void {
    if (this.failed) return;
    this.failed = e;
    this.log.error(`stopping: ${e.message}`);
    void this.stop({ transferLeadership: false });
  }

  // ---------------------------------------------------------------- requests

  /**
   * Proposes a command. Resolves with the state machine's result once the command is committed by
   * a majority (durably) and applied here. Rejects with NotLeaderError (nothing proposed),
   * UnavailableError (nothing proposed, retry), ProposalDroppedError (definitely not applied) or
   * OutcomeUnknownError (it may still be applied).
   */
  propose(command: Uint8Array): Promise<R> {
    if (this.stopped) return Promise.reject(new StoppedError());
    // Before the core sees it: a refused proposal must leave no trace in the log.
    const refused = this.admission("proposal", 0);
    if (refused) return Promise.reject(refused);
    this.catchUpQuiet();
    const res = this.raw.propose(command);
    if (!res.ok) {
      if (res.error === "not_leader") return Promise.reject(this.notLeader());
      return Promise.reject(new UnavailableError(res.message));
    }
    this.kick();
    return this.awaitEntry(res.index, res.term) as Promise<R>;
  }

  /**
   * Whether new client work is admitted now: null, or the OverloadedError to answer with. Kind
   * `request` is for a server about to handle a client request, with the count it is handling.
   */
  admission(kind: "proposal" | "request", queuedRequests: number): OverloadedError | null {
    return admit(
      {
        inFlightProposals: this.pending.size,
        queuedRequests,
        lagMs: this.lag.sustainedMs(performance.now()),
        settleMs: this.settleMs,
      },
      this.admissionLimits,
      kind,
    );
  }

  /** Proposals made here and not yet settled. */
  get inFlightProposals(): number {
    return this.pending.size;
  }

  /** The event loop's recent lag (ms): how late the tick timer has been over the last 250-500 ms. */
  get eventLoopLagMs(): number {
    return this.lag.recentMs(performance.now());
  }

  /** The event loop's worst lag (ms) since this node started. */
  get eventLoopLagMaxMs(): number {
    return this.lag.maxMs;
  }

  /** Resolves with the apply result once the entry proposed at (index, term) is applied here. */
  private awaitEntry(index: number, term: number): Promise<unknown> {
    return new Promise<unknown>((resolve, reject) => {
      const timer = setTimeout(() => {
        if (this.pending.get(index)?.timer === timer) {
          this.pending.delete(index);
          this.emit("proposal", false);
          reject(
            new OutcomeUnknownError(
              `no outcome for the proposal at index ${index} within ${this.proposalTimeoutMs} ms`,
            ),
          );
        }
      }, this.proposalTimeoutMs);
      this.pending.set(index, { term, at: performance.now(), resolve, reject, timer });
    });
  }

  private notLeader(): NotLeaderError {
    const leader = this.raw.raft.leader;
    return new NotLeaderError(leader, leader ? (this.urls.get(leader) ?? null) : null);
  }

  /**
   * Waits until local reads are linearizable: the leader confirms with a quorum (or, with
   * `lease`, by its lease) that its commit index is current, and this node has applied up to it.
   * Works on followers too: with `lease`, a follower holding a read lease (`followerReadLeases`
   * on the leader) answers from it without asking the leader; without one in force, it asks.
   * Resolves with the index that was waited for.
   */
  readBarrier(opts: { consistency?: "linearizable" | "lease"; timeoutMs?: number } = {}): Promise<number> {
    if (this.stopped) return Promise.reject(new StoppedError());
    // Never trust a lease on a stale clock. The core checks a follower's read lease in readIndex()
    // itself, on the clock just brought up to date: an expired one falls back to asking the leader.
    if (opts.consistency === "lease") this.syncClock();
    else this.catchUpQuiet();
    const id = this.nextReadId++;
    const timeoutMs = opts.timeoutMs ?? 2 * this.electionTimeoutMs;
    return new Promise<number>((resolve, reject) => {
      const timer = setTimeout(() => {
        if (this.reads.delete(id))
          reject(new UnavailableError(`read barrier not confirmed within ${timeoutMs} ms`));
      }, timeoutMs);
      this.reads.set(id, { resolve, reject, timer });
      this.emit("readBarrier", this.howConfirmed(opts.consistency === "lease"));
      this.raw.readIndex(id, opts.consistency === "lease" ? "lease" : "quorum");
      this.kick();
    });
  }

  /**
   * How the core is about to confirm a read, for metrics: the leader's own lease, a follower's
   * read lease, a quorum round on the leader, or a question to the leader. Mirrors readIndex().
   */
  private howConfirmed(lease: boolean): ReadConfirmation {
    const r = this.raw.raft;
    if (r.role === "leader") return lease && r.leaseValid() ? "leader_lease" : "quorum";
    return lease && r.followerLeaseValid() ? "follower_lease" : "asked_leader";
  }

  private onReadState(rs: ReadState): void {
    const r = this.reads.get(rs.requestId);
    if (!r) return;
    this.reads.delete(rs.requestId);
    clearTimeout(r.timer);
    if (rs.index < 0) {
      r.reject(
        this.raw.raft.leader === null
          ? new UnavailableError("no leader to confirm the read")
          : this.notLeader(),
      );
      return;
    }
    this.waitApplied(rs.index).then(r.resolve, r.reject);
  }

  /** Resolves once this node has applied `index`. */
  waitApplied(index: number): Promise<number> {
    if (this.applied >= index) return Promise.resolve(this.applied);
    return new Promise((resolve) => {
      this.waiters.push({ index, resolve });
    });
  }

  private resolveWaiters(): void {
    if (this.waiters.length === 0) return;
    const keep: ApplyWaiter[] = [];
    for (const w of this.waiters) {
      if (w.index <= this.applied) w.resolve(this.applied);
      else keep.push(w);
    }
    this.waiters = keep;
  }

  /** Starts handing leadership to `id`; resolves once it leads, rejects after an election timeout. */
  async transferLeadership(id: NodeId): Promise<void> {
    // Our leader-only jobs stop before the target can start its own.
    await this.leadership.pause();
    try {
      await this.handOver(id);
    } finally {
      this.leadership.resume();
    }
  }

  private async handOver(id: NodeId): Promise<void> {
    this.catchUpQuiet();
    const res = this.raw.transferLeadership(id);
    if (!res.ok) throw new UnavailableError(res.message);
    this.kick();
    const deadline = performance.now() + 2 * this.electionTimeoutMs;
    while (performance.now() < deadline) {
      if (this.raw.raft.leader === id && this.raw.raft.role !== "leader") return;
      await new Promise((r) => setTimeout(r, this.tickMs));
    }
    throw new UnavailableError(`leadership did not move to ${id} within ${2 * this.electionTimeoutMs} ms`);
  }

  // ---------------------------------------------------------------- status

  get isLeader(): boolean {
    return this.raw.raft.role === "leader";
  }

  /** The current term as this node knows it. */
  get term(): number {
    return this.raw.raft.term;
  }

  /** The highest log index this node knows to be committed. */
  get commitIndex(): number {
    return this.raw.raft.log.committed;
  }

  /** The highest log index applied to the state machine here. */
  get appliedIndex(): number {
    return this.applied;
  }

  /** The current leader, as this node knows it. */
  get leaderInfo(): { id: NodeId; url: string | null; term: number } | null {
    const l = this.raw.raft.leader;
    return l === null ? null : { id: l, url: this.urls.get(l) ?? null, term: this.raw.raft.term };
  }

  urlOf(id: NodeId): string | null {
    return this.urls.get(id) ?? null;
  }

  status(): NodeStatus {
    this.catchUpQuiet();
    const r = this.raw.raft;
    const st = this.raw.status();
    const last = r.log.lastIndex();
    const members: MemberStatus[] = [];
    for (const id of [...r.config.voters, ...r.config.learners]) {
      const pr = st.progress.get(id);
      members.push({
        id,
        url: this.urls.get(id) ?? "",
        voter: r.config.voters.includes(id),
        promoting: r.config.promote?.includes(id) ?? false,
        priority: this.priorityOf(id) ?? null,
        matchIndex: pr ? pr.match : null,
        lagEntries: pr ? Math.max(0, last - pr.match) : null,
      });
    }
    return {
      clusterId: this.clusterId,
      self: this.id,
      role: r.role,
      term: r.term,
      leader: r.leader === null ? null : { id: r.leader, url: this.urls.get(r.leader) ?? null },
      commitIndex: r.log.committed,
      appliedIndex: this.applied,
      lastIndex: last,
      members,
      leaseValid: st.leaseValid,
      followerReadLease: st.followerLeaseValid,
      configIndex: r.configIndex,
      configCommitted: r.configIndex <= r.log.committed,
    };
  }

  /** Peer stream status from the transport. */
  peers() {
    return this.transport.status();
  }

  /** Serves the peer protocol on an application's own HTTP server (the node's single port). */
  attach(server: http.Server): void {
    if (!(this.transport instanceof HttpTransport)) throw new Error("attach() needs the HTTP transport");
    this.transport.attach(server);
  }

  /** The HTTP transport, for servers that route upgrades themselves. */
  httpTransport(): HttpTransport | null {
    return this.transport instanceof HttpTransport ? this.transport : null;
  }

  /**
   * Stops the node. A leader first hands leadership to the most up-to-date voter (so the cluster
   * does not wait an election timeout), unless `transferLeadership` is false.
   */
  async stop(opts: { transferLeadership?: boolean } = {}): Promise<void> {
    if (this.stopped) return;
    await this.leadership.close();
    if (opts.transferLeadership !== false && this.isLeader) {
      const st = this.raw.status();
      let best: NodeId | null = null;
      let bestMatch = -1;
      for (const id of this.raw.raft.config.voters) {
        const m = st.progress.get(id)?.match ?? -1;
        if (id !== this.id && m > bestMatch) {
          best = id;
          bestMatch = m;
        }
      }
      if (best) {
        try {
          await this.transferLeadership(best);
        } catch (e) {
          this.log.warn(`stopping without handing over leadership: ${(e as Error).message}`);
        }
      }
    }
    this.stopped = true;
    if (this.tickTimer) clearInterval(this.tickTimer);
    // Let an in-flight save finish so the storage closes cleanly.
    while (this.busy) await new Promise((r) => setTimeout(r, 1));
    for (const p of this.pending.values()) {
      clearTimeout(p.timer);
      p.reject(new OutcomeUnknownError("the node stopped before the proposal's outcome was known"));
    }
    this.pending.clear();
    for (const r of this.reads.values()) {
      clearTimeout(r.timer);
      r.reject(new StoppedError());
    }
    this.reads.clear();
    await this.transport.close();
    this.storage.close();
    this.emit("stopped", this.failed);
  }
}

async function forceNewCluster(
  storage: DiskStorage,
  id: NodeId,
  url: string,
  log: NodeLogger,
): Promise<void> {
  // One shot: once forced, the flag left in a unit must not force again after the cluster grew.
  const done = storage.forced;
  if (done) {
    log.warn(
      `force-new-cluster: already done at index ${done.index} (from cluster ${done.from}); ignoring the flag — remove it`,
    );
    return;
  }
  const f = await forceGroup(storage, id, url);
  const from = storage.clusterId;
  const clusterId = forcedClusterId(from, f.index);
  storage.markForced(clusterId, { index: f.index, term: f.term, from });
  log.warn(
    `force-new-cluster: this node is now the only member of cluster ${clusterId} (was: ${f.was.join(", ")} of ${from}); ` +
      `its ${f.uncommitted} uncommitted entries count as committed; other members must join again with empty data directories`,
  );
}

/** The id of a cluster forced from `from` by an entry at `index`: same token, a new hash. */
function forcedClusterId(from: string, index: number): string {
  return `${from.replace(/-[0-9a-f]{12}$/, "")}-${createHash("sha256").update(`${from}\nforced at ${index}`).digest("hex").slice(0, 12)}`;
}

/**
 * Makes one group's log the whole group: a configuration with `id` as its only voter, appended
 * at a term no old member's entry can carry, committed with everything before it (durably).
 */
async function forceGroup(
  storage: DiskStorage,
  id: NodeId,
  url: string,
): Promise<{ index: number; term: number; was: NodeId[]; uncommitted: number }> {
  const last = storage.lastIndex();
  let latest = storage.snapshotMetadata().config;
  for (let i = storage.firstIndex(); i <= last; ) {
    const batch = storage.entries(i, last + 1, 8 << 20);
    for (const e of batch) if (e.type === "config") latest = decodeConfig(e.data);
    i += batch.length;
  }
  const hard = storage.hardState();
  // A term no old member's entry at this index can carry, and a new cluster id, so the old
  // members' logs can never be mistaken for this one's.
  const term = Math.max(hard.term, storage.term(last)) + 1;
  const others = [...latest.voters, ...latest.learners, ...(latest.removed ?? [])].filter((m) => m !== id);
  const config: Configuration = {
    voters: [id],
    learners: [],
    urls: { [id]: url },
    removed: [...new Set(others)],
  };
  const entry: Entry = { term, index: last + 1, type: "config", data: encodeConfig(config) };
  await new Promise<void>((resolve, reject) =>
    storage.save(
      {
        entries: [entry],
        snapshotChunks: [],
        hardState: { term, vote: id, commit: entry.index },
        mustSync: true,
      },
      (err) => (err ? reject(err) : resolve()),
    ),
  );
  return {
    index: entry.index,
    term,
    was: [...latest.voters, ...latest.learners],
    uncommitted: last - hard.commit,
  };
}

/**
 * --force-new-cluster for a partitioned member: every group's log made the whole group (as for
 * one group), then the directory marked once, with the new cluster id. A crash before the mark
 * leaves it unforced and the flag does it again (a second forced entry in a group is harmless:
 * this member is that group's only voter either way).
 */
export async function forceNewPartitionedCluster(
  log: SharedLog,
  id: NodeId,
  url: string,
  logger: NodeLogger,
): Promise<string> {
  const g0 = log.group(0);
  const done = g0.forced;
  if (done) {
    logger.warn(`force-new-cluster: already done (from cluster ${done.from}); ignoring the flag — remove it`);
    return g0.clusterId;
  }
  const from = g0.clusterId;
  let first: { index: number; term: number; was: NodeId[] } | null = null;
  let uncommitted = 0;
  for (let g = 0; g < log.groups; g++) {
    const f = await forceGroup(log.group(g), id, url);
    first ??= f;
    uncommitted += f.uncommitted;
  }
  const clusterId = forcedClusterId(from, first!.index);
  log.markForced(clusterId, { index: first!.index, term: first!.term, from });
  logger.warn(
    `force-new-cluster: this node is now the only member of every one of the ${log.groups} partitions of cluster ${clusterId} (was: ${first!.was.join(", ")} of ${from}); ` +
      `their ${uncommitted} uncommitted entries count as committed; other members must join again with empty data directories`,
  );
  return clusterId;
}

function describeChange(cc: ConfChange): string {
  if (cc.type === "addLearner")
    return `add ${cc.id} as a learner${cc.promote ? " (to be promoted once caught up)" : ""}`;
  if (cc.type === "addVoter") return `promote ${cc.id} to voter`;
  return `remove ${cc.id}`;
}
