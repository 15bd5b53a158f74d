/**
 * A member that runs P Raft groups (partitions) at once — the seed's "split the load, one leader
 * per partition". Every group has the same members (a change is made in every group, partition 0
 * first when adding and last when removing: server/partitioned-membership.ts; partition 0's
 * configuration admits peers); the node's groups share one data directory
 * (one WAL, see storage/shared-log.ts), one peer stream per node pair (see transport/groups.ts),
 * and one clock. Leaders are spread: partition p prefers the (p mod M)-th member, and a node that
 * leads a partition another healthy member prefers hands it over. Owns the groups' lifecycle, the
 * shared clock, leader balancing and running a job per led partition. `--priority` places
 * partition 0 (where elections and leases live unless a request names another): it goes to the
 * member of highest priority, the first by id among equals; the others are spread. Must never make a Raft
 * decision (each group's core does) and never run a partition's job on a node that does not hold
 * that partition's leadership (each group's Leadership decides, as for one group).
 */
import type * as http from "node:http";
import { FailureDetector } from "../multiraft/host.js";
import type { Raft } from "../raft/raft.js";
import type { Configuration, NodeId } from "../raft/types.js";
import { SharedLog } from "../storage/shared-log.js";
import { GroupTransports } from "../transport/groups.js";
import { HttpTransport } from "../transport/http.js";
import type { LeadershipContext, RunHandle } from "./leadership.js";
import { LagProbe } from "./overload.js";
import {
  checkMemberId,
  checkMemberUrl,
  clusterIdOf,
  forceNewPartitionedCluster,
  type NodeLogger,
  RaftNode,
  type RaftNodeOptions,
  type StateMachine,
} from "./raft-node.js";

/**
 * A partitioned cluster's id: the partition count and rule are part of its identity, so members
 * created with different ones never talk (and a data directory says which it was made for).
 */
export function partitionedClusterId(
  token: string,
  partitions: number,
  rule: string,
  memberIds: readonly string[],
): string {
  return clusterIdOf(
    `${token}.p${partitions}${rule === "hash" ? "" : `.${Buffer.from(rule).toString("hex")}`}`,
    memberIds,
  );
}

/** At most this many partitions (a group tag is 16 bits; far more than one process serves well). */
export const MAX_PARTITIONS = 4096;

export interface PartitionedNodeOptions<R = unknown>
  extends Omit<RaftNodeOptions<R>, "stateMachine" | "transport" | "partition"> {
  /** How many partitions (Raft groups); fixed when the cluster is created, and checked on every start. */
  readonly partitions: number;
  /** Each partition's state machine. */
  readonly stateMachine: (partition: number) => StateMachine<R>;
  /**
   * The application's rule mapping its keys to partitions (e.g. `prefix:/`), recorded in the data
   * directory and checked on every start like the partition count. Default: hash.
   */
  readonly partitionBy?: string;
  /**
   * Serve the peer protocol on this server from the start (before the partitions have recovered),
   * so peers that dial early are answered rather than left waiting. Else call attach() later.
   */
  readonly server?: http.Server;
}

/** What a partition's job is given: its leadership's context, and which partition it is. */
export interface PartitionContext extends LeadershipContext {
  readonly partition: number;
}

export type PartitionJob = (signal: AbortSignal, ctx: PartitionContext) => Promise<void> | void;

export interface PartitionStatus {
  readonly partition: number;
  readonly leader: { readonly id: NodeId; readonly url: string | null } | null;
  readonly term: number;
  readonly commitIndex: number;
  /** The member this partition's leadership is balanced to. */
  readonly preferred: NodeId;
  /** Idle and quiet here: no heartbeats, no election timer (woken by any write, read or failure). */
  readonly quiet: boolean;
}

/** A partitioned node's partitions (PartitionedNode.partitions). */
export interface Partitions<R> {
  count(): number;
  /** Partition `p`'s node: propose, read, wait, watch its leadership, as with a one-group RaftNode. */
  get(p: number): RaftNode<R>;
  /** The member partition `p`'s leadership is balanced to. */
  preferredLeader(p: number): NodeId;
  /** Who leads each partition, as this node knows it. */
  status(): PartitionStatus[];
  /**
   * Runs `job` for each partition this node leads, while it leads it (each partition's
   * Leadership, with that group's term as the fencing token): across the cluster, every
   * partition's job runs on exactly one node, and the work is spread over all of them.
   */
  runWhileLeader(job: PartitionJob, opts?: { onError?: (e: unknown, partition: number) => void }): RunHandle;
}

const consoleLogger: NodeLogger = {
  info: (m) => console.log(m),
  warn: (m) => console.warn(m),
  error: (m) => console.error(m),
};

export class PartitionedNode<R = unknown> {
  readonly id: NodeId;
  readonly clusterId: string;
  private readonly nodes: RaftNode<R>[];
  private readonly log: SharedLog;
  private readonly transport: HttpTransport;
  /** Each configuration's voters in id order (leader balancing reads them often). */
  private readonly sortedVoters = new WeakMap<Configuration, NodeId[]>();

  /** Partition `p`'s voters in id order: members change in every partition, one after another. */
  private votersOf(p: number): NodeId[] {
    const config = this.nodes[p]!.core.config;
    let ids = this.sortedVoters.get(config);
    if (!ids) {
      ids = [...config.voters].sort();
      this.sortedVoters.set(config, ids);
    }
    return ids;
  }
  private readonly logger: NodeLogger;
  private readonly clock: NodeJS.Timeout;
  private readonly balancer: NodeJS.Timeout;
  /** Per partition this node leads: since when its preferred member has looked healthy. */
  private readonly healthySince = new Map<number, number>();
  private readonly handingOver = new Set<number>();
  private stopped = false;

  private constructor(
    id: NodeId,
    clusterId: string,
    nodes: RaftNode<R>[],
    log: SharedLog,
    transport: HttpTransport,
    logger: NodeLogger,
    lag: LagProbe,
  ) {
    this.id = id;
    this.clusterId = clusterId;
    this.nodes = nodes;
    this.log = log;
    this.transport = transport;
    this.logger = logger;
    this.detector = new FailureDetector(id);
    for (const n of nodes) this.byCore.set(n.core, n);
    const first = nodes[0]!;
    // One timer drives every group's clock: P timers would each wake the event loop. It ticks the
    // awake partitions only: one found quiet leaves the set until something wakes it (onAwake),
    // and its clock is caught up when next used, so 1,000 idle partitions cost no work per tick.
    const awake = new Set(nodes);
    for (const n of nodes) n.onAwake = () => awake.add(n);
    let due: RaftNode<R>[] = [];
    const check = () => {
      const list = due;
      due = [];
      for (const n of list) n.clockCheck();
    };
    const detectEvery = Math.max(1, Math.round(first.heartbeatIntervalMs / first.tickMs));
    let ticks = 0;
    this.clock = setInterval(() => {
      const now = performance.now();
      lag.sample(now);
      for (const n of awake) {
        if (n.clockSync(now)) due.push(n);
        else awake.delete(n);
      }
      if (++ticks % detectEvery === 0) this.detectSilence(now);
      if (due.length > 0) setImmediate(check);
    }, first.tickMs);
    this.balancer = setInterval(() => this.balance(), first.electionTimeoutMs);
  }

  /**
   * Opens (or creates) the data directory with its P groups and starts every partition. Fails for
   * a data directory created with another partition count, or another node's or cluster's; nodes
   * created with different partition counts have different cluster ids and never talk.
   */
  static async start<R>(opts: PartitionedNodeOptions<R>): Promise<PartitionedNode<R>> {
    const p = opts.partitions;
    if (!Number.isInteger(p) || p < 1 || p > MAX_PARTITIONS)
      throw new RangeError(`partitions must be a whole number from 1 to ${MAX_PARTITIONS} (got ${p})`);
    const urls = new Map(opts.members instanceof Map ? opts.members : Object.entries(opts.members));
    checkMemberId(opts.id);
    if (!opts.join && !urls.has(opts.id))
      throw new RangeError(`members must include this node ('${opts.id}')`);
    if (opts.join) checkMemberUrl(opts.id, opts.join.url);
    for (const [id, url] of urls) {
      checkMemberId(id);
      checkMemberUrl(id, url);
    }
    const logger = opts.logger ?? consoleLogger;
    // The partition count is part of the cluster's identity.
    const rule = opts.partitionBy ?? "hash";
    const members = [...urls.keys()].sort();
    const token = opts.clusterToken ?? "ballot";
    const formed = partitionedClusterId(token, p, rule, members);
    const fresh = !SharedLog.exists(opts.dataDir, opts.fs);
    if (opts.join && !opts.join.clusterId && fresh)
      throw new RangeError("a node joining a cluster with an empty data directory needs the cluster's id");
    const log = SharedLog.open({
      dir: opts.dataDir,
      nodeId: opts.id,
      // Joining: the cluster's id, and no configuration until the leaders add this node.
      clusterId: opts.join ? (opts.join.clusterId ?? "") : formed,
      groups: p,
      partitionBy: rule,
      initialConfig: opts.join
        ? { voters: [], learners: [], urls: {} }
        : { voters: members, learners: [], urls: Object.fromEntries(urls) },
      // The members given at start only form a new cluster: after membership changes the data
      // directory's cluster is the one to rejoin (same token and partitions, other members).
      adoptCluster: (stored) =>
        opts.join !== undefined ||
        stored.replace(/-[0-9a-f]{12}$/, "") === formed.replace(/-[0-9a-f]{12}$/, ""),
      fs: opts.fs,
      // Every partition resumes its Ready loop after each sync: their next saves leave together.
      holdAfterSync: p > 1 ? (release) => setImmediate(release) : undefined,
      trailingEntries: opts.trailingEntries,
      logger: { warn: (m) => logger.warn(m) },
    });
    let clusterId = log.group(0).clusterId;
    if (opts.forceNewCluster) {
      try {
        if (fresh) throw new RangeError("forcing a new cluster needs this node's existing data directory");
        if (opts.join) throw new RangeError("forcing a new cluster and joining one exclude each other");
        clusterId = await forceNewPartitionedCluster(log, opts.id, urls.get(opts.id)!, logger);
      } catch (e) {
        log.close();
        throw e;
      }
    }
    const electionTimeoutMs = opts.electionTimeoutMs ?? 500;
    const nodes: RaftNode<R>[] = [];
    const transport = new HttpTransport({
      self: opts.id,
      clusterId,
      peers: new Map(),
      logger: { info: (m) => logger.info(m), warn: (m) => logger.warn(m) },
      idleTimeoutMs: Math.max(3000, 6 * electionTimeoutMs),
      pingIntervalMs: opts.heartbeatIntervalMs ?? 100,
      tls: opts.tls,
      groups: p,
      priority: opts.priority ?? 0,
      // Members join partition 0 first and leave it last: its configuration says who is one.
      admit: (from) => nodes[0]?.admits(from) ?? null,
      onRemoved: (peer) => nodes[0]?.removedBy(peer),
    });
    if (opts.server) transport.attach(opts.server);
    const mux = new GroupTransports(transport, p);
    // One turn's kicked partitions drain together, with the WAL corked while their Ready loops
    // start: every first save of the turn leaves in one write and one fdatasync.
    let kicked: (() => void)[] = [];
    const schedule = (drain: () => void) => {
      if (kicked.length === 0)
        setImmediate(() => {
          const list = kicked;
          kicked = [];
          log.batch(() => {
            for (const d of list) d();
          });
        });
      kicked.push(drain);
    };
    let lag: LagProbe | null = null;
    const lagProbe = (tickMs: number) => (lag ??= new LagProbe(tickMs));
    try {
      for (let g = 0; g < p; g++) {
        nodes.push(
          await RaftNode.start<R>({
            ...opts,
            forceNewCluster: false, // done above, for every group at once
            members: urls,
            stateMachine: opts.stateMachine(g),
            transport: mux.view(g),
            partition: { group: g, count: p, storage: log.group(g), clusterId, lagProbe, schedule },
            logger: prefixed(logger, p > 1 ? `partition ${g}: ` : ""),
          }),
        );
      }
    } catch (e) {
      for (const n of nodes) await n.stop({ transferLeadership: false });
      await transport.close();
      log.close();
      throw e;
    }
    return new PartitionedNode<R>(opts.id, clusterId, nodes, log, transport, logger, lag!);
  }

  /** Whether `peer`'s node sent this one anything (pings included) within an election timeout. */
  private heard(peer: NodeId, now = performance.now()): boolean {
    const at = this.transport.lastHeard(peer);
    return at !== undefined && now - at < this.nodes[0]!.electionTimeoutMs;
  }

  /**
   * The failure detector of the quiet partitions (see multiraft/host.ts): once per heartbeat
   * interval, a quiet follower whose leader's node has been silent for an election timeout
   * restarts its election timer, and a quiet leader without a quorum it hears wakes.
   */
  private detectSilence(now: number): void {
    const c = this.nodes[0]!.core.config;
    const changed = this.detector.check(
      [...c.voters, ...c.learners],
      (peer) => this.heard(peer, now),
      this.nodes.map((n) => n.core),
    );
    for (const r of changed) this.byCore.get(r)?.poke();
  }

  private readonly detector: FailureDetector;
  private readonly byCore = new Map<Raft, RaftNode<R>>();

  /** How many partitions. */
  get count(): number {
    return this.nodes.length;
  }

  private partition(p: number): RaftNode<R> {
    const n = this.nodes[p];
    if (!n) throw new RangeError(`no partition ${p} (the cluster has ${this.nodes.length})`);
    return n;
  }

  private preferredLeader(p: number): NodeId {
    const voters = this.votersOf(p);
    if (voters.length === 0) return this.id; // joining: no configuration yet
    const spread = voters[p % voters.length]!;
    if (p !== 0) return spread;
    // Partition 0: the highest priority any member announced (this node's own included).
    let best: NodeId | null = null;
    let top = 0;
    for (const id of voters) {
      const pr = id === this.id ? (this.transport.priority ?? 0) : this.transport.peerPriority(id);
      if (pr !== undefined && pr > top) {
        best = id;
        top = pr;
      }
    }
    return best ?? spread;
  }

  /** The partitions: each one's node, who leads them, and jobs that run per led partition. */
  readonly partitions: Partitions<R> = {
    count: () => this.nodes.length,
    get: (p) => this.partition(p),
    preferredLeader: (p) => this.preferredLeader(p),
    status: () =>
      this.nodes.map((n, partition) => {
        const l = n.leaderInfo;
        return {
          partition,
          leader: l ? { id: l.id, url: l.url } : null,
          term: n.term,
          commitIndex: n.commitIndex,
          preferred: this.preferredLeader(partition),
          quiet: n.quiesced,
        };
      }),
    runWhileLeader: (job, opts = {}) => {
      const handles = this.nodes.map((n, partition) =>
        n.leadership.runWhileLeader((signal, ctx) => job(signal, { ...ctx, partition }), {
          onError: opts.onError ? (e) => opts.onError!(e, partition) : undefined,
        }),
      );
      return { stop: async () => void (await Promise.all(handles.map((h) => h.stop()))) };
    },
  };

  /** Serves the peer protocol (every partition's) on `server` (unless it was given at start). */
  attach(server: http.Server): void {
    this.transport.attach(server);
  }

  /**
   * Leader balancing: a partition this node leads but another member prefers goes to that member
   * once it has been healthy (answering, caught up) for three election timeouts, so a member that
   * just came back is not handed leadership while it may still fail again.
   */
  private balance(): void {
    if (this.stopped) return;
    const now = performance.now();
    for (let p = 0; p < this.nodes.length; p++) {
      const n = this.nodes[p]!;
      const preferred = this.preferredLeader(p);
      // A partition led here that its preferred member should lead stays awake while that member
      // answers: the hand-over waits for its acknowledgements, which a quiet group gets none of.
      n.setKeptAwake(n.isLeader && preferred !== this.id && this.heard(preferred, now));
      if (!n.isLeader || preferred === this.id || this.handingOver.has(p)) {
        this.healthySince.delete(p);
        continue;
      }
      if (!n.isHealthyFollower(preferred)) {
        this.healthySince.delete(p);
        continue;
      }
      const since = this.healthySince.get(p) ?? now;
      this.healthySince.set(p, since);
      if (now - since < 3 * n.electionTimeoutMs) continue;
      this.healthySince.delete(p);
      this.handingOver.add(p);
      n.transferLeadership(preferred)
        .then(() =>
          this.logger.info(`partition ${p}: leadership handed to ${preferred}, which it is balanced to`),
        )
        .catch((e: Error) =>
          this.logger.warn(`partition ${p}: handing leadership to ${preferred} failed: ${e.message}`),
        )
        .finally(() => this.handingOver.delete(p));
    }
  }

  /** Stops every partition (a leader hands each partition it leads to another member first, unless told not to). */
  async stop(opts: { transferLeadership?: boolean } = {}): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    clearInterval(this.balancer);
    await Promise.all(this.nodes.map((n) => n.stop(opts)));
    clearInterval(this.clock);
    await this.transport.close();
    this.log.close();
  }
}

function prefixed(log: NodeLogger, prefix: string): NodeLogger {
  if (!prefix) return log;
  return {
    info: (m) => log.info(prefix + m),
    warn: (m) => log.warn(prefix + m),
    error: (m) => log.error(prefix + m),
  };
}
