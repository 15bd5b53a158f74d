/**
 * The deterministic cluster simulator: real Raft cores (RawNode) on a simulated network, disk and
 * clock, driven from one seed. Injects message loss, duplication, delay and reordering, symmetric
 * and one-way partitions, crashes that lose whatever was not persisted, slow disks, membership
 * changes, leadership transfers and snapshots; runs clients against a key-value state machine
 * (with follower read leases on in every other seed, and lease reads on followers then); checks
 * Raft's safety properties after every event and liveness once faults heal.
 *
 * Every node runs its groups the way a partitioned node does (`groups` > 1): all of them in one
 * MultiRaft host over one shared WAL (one fdatasync per batch of groups, so a crash tears several
 * groups' records at once), their messages coalesced into one envelope per peer per batch. Every
 * check is made per group; clients' keys are spread over the groups.
 *
 * Owns the simulated world and the invariants. Must never use real time, real I/O or
 * Math.random: any run replays exactly from its seed.
 */
import { type Envelope, MultiRaft, type MultiReady } from "../../src/multiraft/host.js";
import type { PlantedBugs } from "../../src/raft/raft.js";
import { type RandomSource, randomInt, seededRandom } from "../../src/raft/random.js";
import type { RawNode } from "../../src/raft/rawnode.js";
import type { Entry, Message, NodeId, Ready } from "../../src/raft/types.js";
import type { DiskStorage } from "../../src/storage/disk.js";
import { SharedLog } from "../../src/storage/shared-log.js";
import { StorageError } from "../../src/storage/storage.js";
import { FaultFs } from "../lib/faultfs.js";
import {
  checkLinearizable,
  type KvInput,
  type KvOutput,
  kvModel,
  type Operation,
} from "../lib/linearizability.js";
import { EventHeap } from "./heap.js";
import { chainHash, decodeCommand, encodeCommand, type SimCommand, SimKv } from "./kv.js";

export interface SimOptions {
  readonly seed: number;
  /** Initial voters (3–7). Default: drawn from the seed. */
  readonly nodes?: number;
  /** Extra nodes that start outside the cluster, for membership changes. Default 1. */
  readonly spares?: number;
  /** Simulated milliseconds of faults before everything heals. Default 3000. */
  readonly chaosMs?: number;
  /** Simulated milliseconds allowed, after healing, for a leader to emerge and a write to reach every member. Default 8000. */
  readonly livenessMs?: number;
  readonly clients?: number;
  readonly keys?: number;
  /** Test-only planted bugs, switched on in every node. */
  readonly bugs?: PlantedBugs;
  /** Multiplies the rate of faults (crashes especially). Default 1. */
  readonly faultRate?: number;
  /** Keep a readable trace of events (costs time; the runner turns it on to replay a failure). */
  readonly trace?: boolean;
  /**
   * Run every node with follower read leases, and send clients' lease reads to followers too.
   * Default: on for even seeds, so a run of seeds tests both modes and a seed alone replays.
   */
  readonly followerReadLeases?: boolean;
  /** Raft groups per node (partitions), all over one shared WAL and one envelope per peer. Default 1. */
  readonly groups?: number;
}

export interface SimStats {
  nodes: number;
  groups: number;
  events: number;
  messages: number;
  ops: number;
  opsOk: number;
  opsUnknown: number;
  leaders: number;
  crashes: number;
  partitions: number;
  confChanges: number;
  transfers: number;
  snapshotsSent: number;
  maxTerm: number;
  followerReadLeases: boolean;
  /** Lease reads a follower answered from its own read lease, without asking the leader. */
  localLeaseReads: number;
  /** Envelopes that carried messages of several groups at once (coalesced heartbeats among them). */
  coalesced: number;
  /** Times a group's leader went quiet (multi-group runs quiesce idle groups). */
  quietSpells: number;
}

export class SimFailure extends Error {}

const TICK_MS = 10;
/** Trace lines kept for a failure's report (BALLOT_SIM_TRACE=N keeps more, to debug a seed). */
const TRACE_KEEP = Math.max(300, Number(process.env.BALLOT_SIM_TRACE ?? 0) || 0);
const ELECTION_TICKS = 10;
const HEARTBEAT_TICKS = 2;
const SNAPSHOT_EVERY = 40;
const KEEP_TRAILING = 8;
const WRITE_TIMEOUT_MS = 1500;
const READ_TIMEOUT_MS = 800;

interface PendingWrite {
  readonly term: number;
  readonly op: OpRecord;
}

interface OpRecord {
  readonly clientId: number;
  readonly group: number;
  readonly input: KvInput;
  readonly callTime: number;
  done: boolean;
  /** Index and term of an acknowledged write, checked for durability at the end. */
  index?: number;
  term?: number;
  node?: NodeId;
}

interface SimNode {
  readonly id: NodeId;
  alive: boolean;
  incarnation: number;
  /** The node's own disk: crashes lose, tear or zero-fill what it had not synced. */
  readonly fs: FaultFs;
  /** The real shared WAL on that disk (null while the node is down). */
  log: SharedLog | null;
  /** Every group of the node, in one host (null while the node is down). */
  host: MultiRaft | null;
  readonly initialConfig: { voters: NodeId[]; learners: NodeId[] };
  readonly groups: SimGroup[];
  tickMs: number;
  slowDiskUntil: number;
  persisting: boolean;
}

/** One group on one node: its core, its storage in the shared WAL, its state machine, its requests. */
interface SimGroup {
  readonly node: SimNode;
  readonly group: number;
  raw: RawNode | null;
  storage: DiskStorage | null;
  kv: SimKv;
  pendingWrites: Map<number, PendingWrite>;
  pendingReads: Map<number, OpRecord>;
  readWaiters: { index: number; requestId: number; op: OpRecord }[];
  lastCommit: number;
  wasLeaderInTerm: number;
  /** Whether this group was a quiet leader when last checked. */
  wasQuiet: boolean;
  firstCommitInTerm: number;
}

/** What the checker knows about one group across the whole run. */
interface GroupCheck {
  readonly leaderOfTerm: Map<number, NodeId>;
  readonly committedTerm: number[];
  readonly hashAt: number[];
  maxCommitted: number;
  readonly history: Operation<KvInput, KvOutput>[];
  readonly acked: OpRecord[];
  livenessMarker: { index: number; term: number; node: NodeId } | null;
  live: boolean;
}

type SimEvent =
  | { kind: "tick"; node: NodeId; inc: number; time: number; seq: number }
  | { kind: "deliver"; env: Envelope; time: number; seq: number }
  | { kind: "io"; complete: () => void; time: number; seq: number }
  | { kind: "client"; client: number; time: number; seq: number }
  | { kind: "opTimeout"; op: OpRecord; nodeId: NodeId; inc: number; time: number; seq: number }
  | { kind: "restart"; node: NodeId; time: number; seq: number }
  | { kind: "crashAt"; node: NodeId; inc: number; restartAfter: number; time: number; seq: number }
  | { kind: "chaos"; time: number; seq: number }
  | { kind: "heal"; what: "partition" | "drop"; id: number; time: number; seq: number }
  | { kind: "endChaos"; time: number; seq: number }
  | { kind: "livenessProbe"; time: number; seq: number };

export class Simulation {
  readonly opts: Required<Omit<SimOptions, "bugs">> & { bugs: PlantedBugs };
  private readonly rng: RandomSource;
  private now = 0;
  private seq = 0;
  private readonly queue = new EventHeap<SimEvent>();
  readonly nodes = new Map<NodeId, SimNode>();
  private readonly ids: NodeId[] = [];

  // Network faults.
  private blocked = new Map<string, number>(); // "a>b" -> partition id
  private partitionSeq = 0;
  private dropRate = 0;
  private dupRate = 0;
  private dropEpoch = 0;
  /** Directed links running slow: "a>b" -> extra one-way delay in ms, until healed. */
  private slowLinks = new Map<string, { extraMs: number; until: number }>();
  private chaos = true;

  // Checker state, per group.
  private readonly checks: GroupCheck[] = [];
  /** Every client operation not yet finished; writes still open at the end count as unknown outcomes. */
  private readonly inflight = new Set<OpRecord>();
  private readonly traceLog: string[] = [];
  private nextRequestId = 1;
  private clientSeq: number[] = [];
  /** Per client, per group: the node it last heard leads that group. */
  private clientLeaderGuess: (NodeId | null)[][] = [];
  private livenessDone = false;
  /** Flow-control limits drawn per seed: tiny batches and windows reach interleavings large ones hide. */
  private readonly maxMsgBytes: number;
  private readonly maxInflight: number;
  /** Multi-group seeds: whether the network delivers a whole envelope (a stream) or each message on its own. */
  private readonly wholeEnvelopes: boolean;
  readonly stats: SimStats;

  constructor(opts: SimOptions) {
    this.rng = seededRandom(opts.seed ^ 0x5eed);
    const nodes = opts.nodes ?? randomInt(this.rng, 3, 8);
    const groups = opts.groups ?? 1;
    if (!Number.isInteger(groups) || groups < 1 || groups > 64) throw new RangeError("groups: 1 to 64");
    this.opts = {
      seed: opts.seed,
      nodes,
      spares: opts.spares ?? 1,
      chaosMs: opts.chaosMs ?? 3000,
      livenessMs: opts.livenessMs ?? 8000,
      clients: opts.clients ?? 3 + Math.floor(groups / 2),
      // Enough keys that every group gets some (key k lives in group k mod groups).
      keys: opts.keys ?? Math.max(3, 2 * groups),
      bugs: opts.bugs ?? {},
      faultRate: opts.faultRate ?? 1,
      trace: opts.trace ?? false,
      followerReadLeases: opts.followerReadLeases ?? opts.seed % 2 === 0,
      groups,
    };
    this.stats = {
      nodes,
      groups,
      events: 0,
      messages: 0,
      ops: 0,
      opsOk: 0,
      opsUnknown: 0,
      leaders: 0,
      crashes: 0,
      partitions: 0,
      confChanges: 0,
      transfers: 0,
      snapshotsSent: 0,
      maxTerm: 0,
      followerReadLeases: this.opts.followerReadLeases,
      localLeaseReads: 0,
      coalesced: 0,
      quietSpells: 0,
    };
    this.maxMsgBytes = [1, 200, 4096][randomInt(this.rng, 0, 3)]!;
    this.maxInflight = [1, 4, 64][randomInt(this.rng, 0, 3)]!;
    this.wholeEnvelopes = groups > 1 && this.rng() < 0.5;
    for (let g = 0; g < groups; g++) {
      this.checks.push({
        leaderOfTerm: new Map(),
        committedTerm: [],
        hashAt: [],
        maxCommitted: 0,
        history: [],
        acked: [],
        livenessMarker: null,
        live: false,
      });
    }
    const total = nodes + this.opts.spares;
    for (let i = 1; i <= total; i++) this.ids.push(`n${i}`);
    const voters = this.ids.slice(0, nodes);
    for (const id of this.ids) {
      const config = voters.includes(id) ? { voters, learners: [] } : { voters: [], learners: [] };
      const node: SimNode = {
        id,
        alive: false,
        incarnation: 0,
        fs: new FaultFs({
          random: this.rng,
          // fdatasync completes after this node's disk latency, in simulated time.
          schedule: (complete) =>
            this.schedule({ kind: "io", complete, time: this.now + this.diskLatency(id), seq: 0 }),
        }),
        log: null,
        host: null,
        initialConfig: config,
        groups: [],
        tickMs: TICK_MS * (1 + (this.rng() - 0.5) * 0.06),
        slowDiskUntil: 0,
        persisting: false,
      };
      for (let g = 0; g < groups; g++) {
        node.groups.push({
          node,
          group: g,
          raw: null,
          storage: null,
          kv: new SimKv(),
          pendingWrites: new Map(),
          pendingReads: new Map(),
          readWaiters: [],
          lastCommit: 0,
          wasLeaderInTerm: 0,
          wasQuiet: false,
          firstCommitInTerm: 0,
        });
      }
      this.nodes.set(id, node);
      this.start(node);
    }
    for (let c = 0; c < this.opts.clients; c++) {
      this.clientSeq.push(0);
      this.clientLeaderGuess.push(Array(groups).fill(null));
      this.schedule({ kind: "client", client: c, time: randomInt(this.rng, 0, 50), seq: 0 });
    }
    this.schedule({ kind: "chaos", time: 200 + randomInt(this.rng, 0, 200), seq: 0 });
    this.schedule({ kind: "endChaos", time: this.opts.chaosMs, seq: 0 });
  }

  private schedule(e: SimEvent): void {
    e.seq = this.seq++;
    this.queue.push(e);
  }

  private trace(line: string): void {
    if (!this.opts.trace) return;
    this.traceLog.push(`${this.now.toFixed(1).padStart(7)}ms ${line}`);
    if (this.traceLog.length > TRACE_KEEP + 100) this.traceLog.splice(0, this.traceLog.length - TRACE_KEEP);
  }

  traceTail(n: number): string[] {
    return this.traceLog.slice(-n);
  }

  private fail(message: string): never {
    this.trace(`FAIL ${message}`);
    throw new SimFailure(`t=${this.now.toFixed(1)}ms: ${message}`);
  }

  // ---------------------------------------------------------------- node lifecycle

  private start(node: SimNode): void {
    node.incarnation++;
    node.alive = true;
    node.persisting = false;
    try {
      node.log = SharedLog.open({
        groups: this.opts.groups,
        dir: `/${node.id}`,
        nodeId: node.id,
        clusterId: "sim",
        initialConfig: node.initialConfig,
        fs: node.fs,
        // Small segments, frames and cache: rotation, segment removal and reads from disk all happen.
        segmentBytes: 4096,
        snapshotFrameBytes: 128,
        cacheBytes: 2048 * this.opts.groups,
        trailingEntries: KEEP_TRAILING,
        logger: { warn: (m) => this.trace(`${node.id} storage: ${m}`) },
      });
    } catch (e) {
      if (e instanceof StorageError)
        this.fail(`${node.id} cannot recover its data after a crash: ${e.message}`);
      throw e;
    }
    const log = node.log;
    for (const sg of node.groups) {
      const storage = log.group(sg.group);
      sg.storage = storage;
      const snap = storage.snapshotMetadata();
      sg.kv = SimKv.restore(storage.readSnapshot(0, storage.snapshotSize()));
      sg.kv.appliedIndex = snap.index;
      if (snap.index > 0) this.checkHash(sg, snap.index, sg.kv.hash, "restart from snapshot");
    }
    node.host = new MultiRaft({
      id: node.id,
      groups: this.opts.groups,
      // As a partitioned node runs: idle groups go quiet, the host detects failed peers.
      quiesce: this.opts.groups > 1,
      group: (g) => ({
        storage: log.group(g),
        random: seededRandom(Math.floor(this.rng() * 2 ** 32)),
        electionTicks: ELECTION_TICKS,
        heartbeatTicks: HEARTBEAT_TICKS,
        applied: log.group(g).snapshotMetadata().index,
        maxMsgBytes: this.maxMsgBytes,
        maxInflight: this.maxInflight,
        maxSnapshotChunkBytes: 256,
        followerReadLeases: this.opts.followerReadLeases,
        bugs: this.opts.bugs,
      }),
    });
    for (const sg of node.groups) {
      sg.raw = node.host.group(sg.group);
      sg.lastCommit = sg.raw.raft.log.committed;
      sg.wasLeaderInTerm = 0;
    }
    this.schedule({
      kind: "tick",
      node: node.id,
      inc: node.incarnation,
      time: this.now + node.tickMs * this.rng(),
      seq: 0,
    });
    this.trace(
      `${node.id} starts (${node.groups.map((sg) => `${this.gname(sg.group)}term ${sg.raw!.raft.term}, commit ${sg.lastCommit}, last ${sg.raw!.raft.log.lastIndex()}`).join("; ")})`,
    );
  }

  /** A group's name in the trace ("" with one group). */
  private gname(g: number): string {
    return this.opts.groups > 1 ? `g${g} ` : "";
  }

  private crash(node: SimNode): void {
    if (!node.alive) return;
    this.stats.crashes++;
    node.alive = false;
    node.host = null;
    node.persisting = false;
    // Power cut: what was not synced is lost, torn or zero-filled; syncs in flight never complete.
    node.fs.crash("random");
    node.log = null;
    for (const sg of node.groups) {
      sg.raw = null;
      sg.storage = null;
      for (const w of sg.pendingWrites.values()) this.unknown(w.op);
      sg.pendingWrites.clear();
      sg.pendingReads.clear();
      sg.readWaiters = [];
    }
    this.trace(`${node.id} CRASH`);
  }

  // ---------------------------------------------------------------- main loop

  /** Runs to the end; throws SimFailure on any violated property. */
  run(): SimStats {
    const deadline = this.opts.chaosMs + this.opts.livenessMs;
    while (!this.livenessDone) {
      const e = this.queue.pop();
      if (!e) this.fail("event queue ran dry");
      if (e.time > deadline) {
        this.fail(
          `liveness: no leader committed a write to every member within ${this.opts.livenessMs}ms after faults healed (${this.describeCluster()})`,
        );
      }
      this.now = e.time;
      this.stats.events++;
      this.handle(e);
      if (this.stats.events % 512 === 0) this.checkLogMatching();
    }
    this.checkLogMatching();
    this.finalChecks();
    return this.stats;
  }

  private handle(e: SimEvent): void {
    switch (e.kind) {
      case "tick": {
        const node = this.nodes.get(e.node)!;
        if (!node.alive || node.incarnation !== e.inc) return;
        node.host!.tick();
        this.afterStep(node);
        this.schedule({
          kind: "tick",
          node: node.id,
          inc: node.incarnation,
          time: this.now + node.tickMs,
          seq: 0,
        });
        return;
      }
      case "deliver": {
        const env = e.env;
        const node = this.nodes.get(env.to);
        if (!node?.alive) return;
        if (this.blocked.has(`${env.from}>${env.to}`)) return;
        if (this.opts.trace)
          for (const gm of env.messages)
            this.trace(`${env.to} <- ${this.gname(gm.group)}${describeMessage(gm.message)}`);
        node.host!.step(env);
        this.afterStep(node);
        return;
      }
      case "io":
        e.complete();
        return;
      case "client":
        this.clientStep(e.client);
        return;
      case "opTimeout": {
        if (e.op.done) return;
        const node = this.nodes.get(e.nodeId)!;
        if (e.op.input.op === "get") {
          e.op.done = true; // a read that timed out changed nothing; it is left out of the history
          this.scheduleClient(e.op.clientId, 5);
        } else {
          this.unknown(e.op);
        }
        if (node.incarnation === e.inc) {
          const sg = node.groups[e.op.group]!;
          for (const [i, w] of sg.pendingWrites) if (w.op === e.op) sg.pendingWrites.delete(i);
        }
        return;
      }
      case "crashAt": {
        const node = this.nodes.get(e.node)!;
        if (!node.alive || node.incarnation !== e.inc || !this.chaos) return;
        this.crash(node);
        this.schedule({ kind: "restart", node: node.id, time: this.now + e.restartAfter, seq: 0 });
        return;
      }
      case "restart": {
        const node = this.nodes.get(e.node)!;
        if (!node.alive) this.start(node);
        return;
      }
      case "chaos":
        if (!this.chaos) return;
        this.injectFault();
        this.schedule({
          kind: "chaos",
          time: this.now + randomInt(this.rng, 40, 260) / this.opts.faultRate,
          seq: 0,
        });
        return;
      case "heal":
        if (e.what === "partition") {
          for (const [k, id] of [...this.blocked]) if (id === e.id) this.blocked.delete(k);
          this.trace(`heal partition #${e.id}`);
        } else if (e.id === this.dropEpoch) {
          this.dropRate = 0;
          this.dupRate = 0;
        }
        return;
      case "endChaos":
        this.endChaos();
        return;
      case "livenessProbe":
        this.livenessProbe();
        return;
    }
  }

  // ---------------------------------------------------------------- Ready handling

  private afterStep(node: SimNode): void {
    this.checkNode(node);
    this.pump(node);
  }

  private pump(node: SimNode): void {
    const host = node.host!;
    if (node.persisting || !host.hasReady()) return;
    const batch = host.ready();
    node.persisting = true;
    const inc = node.incarnation;
    for (const env of batch.early) this.send(env); // before the disk write, as RaftNode does
    // The real shared WAL: every group's save in one write and one fdatasync, completing in
    // simulated time (or never, if we crash first).
    let waiting = batch.groups.length;
    let failed = false;
    const saved = (err: Error | null): void => {
      if (failed || !node.alive || node.incarnation !== inc) return;
      if (err) {
        failed = true;
        this.fail(`${node.id} storage failed: ${err.message}`);
      }
      if (--waiting === 0) this.finishReady(node, batch);
    };
    if (waiting === 0) {
      this.finishReady(node, batch);
      return;
    }
    node.log!.batch(() => {
      for (const { group, ready } of batch.groups) node.groups[group]!.storage!.save(ready, saved);
    });
  }

  private diskLatency(id: NodeId): number {
    const slow = this.nodes.get(id)!.slowDiskUntil > this.now;
    return slow ? randomInt(this.rng, 10, 60) : this.rng() * 1.5;
  }

  private finishReady(node: SimNode, batch: MultiReady): void {
    // 1. Persisted (every save called back). 2. Send.
    for (const env of batch.late) this.send(env);
    // 3. Apply, group by group.
    for (const { group, ready } of batch.groups) this.applyReady(node.groups[group]!, ready);
    node.host!.advance(batch);
    node.persisting = false;
    for (const sg of node.groups) this.maybeSnapshot(sg);
    this.checkNode(node);
    this.pump(node);
  }

  private applyReady(sg: SimGroup, rd: Ready): void {
    const storage = sg.storage!;
    const name = `${sg.node.id} ${this.gname(sg.group)}`;
    if (rd.snapshot) {
      const kv = SimKv.restore(storage.readSnapshot(0, storage.snapshotSize()));
      kv.appliedIndex = rd.snapshot.index;
      this.checkHash(sg, kv.appliedIndex, kv.hash, "installed snapshot");
      sg.kv = kv;
      this.trace(`${name}installed snapshot at ${kv.appliedIndex}`);
      for (const [i, w] of sg.pendingWrites) {
        if (i <= kv.appliedIndex) {
          sg.pendingWrites.delete(i);
          this.unknown(w.op); // its fate is in the snapshot, which does not say
        }
      }
    }
    for (const e of rd.committedEntries) this.apply(sg, e);
    for (const rs of rd.readStates) {
      const op = sg.pendingReads.get(rs.requestId);
      if (!op) continue;
      sg.pendingReads.delete(rs.requestId);
      if (rs.index < 0) {
        op.done = true; // definite failure: not in the history
        this.scheduleClient(op.clientId, 5);
      } else {
        sg.readWaiters.push({ index: rs.index, requestId: rs.requestId, op });
      }
    }
    this.serveReads(sg);
  }

  private apply(sg: SimGroup, e: Entry): void {
    const kv = sg.kv;
    if (e.index !== kv.appliedIndex + 1)
      this.fail(`${sg.node.id} ${this.gname(sg.group)}applied index ${e.index} after ${kv.appliedIndex}`);
    kv.hash = chainHash(kv.hash, e.term, e.index, e.data);
    kv.appliedIndex = e.index;
    this.checkHash(sg, e.index, kv.hash, `apply of ${e.index}`);
    let ok = true;
    if (e.type === "normal" && e.data.byteLength > 0) ok = kv.apply(decodeCommand(e.data)).ok;
    const w = sg.pendingWrites.get(e.index);
    if (w) {
      sg.pendingWrites.delete(e.index);
      if (w.term === e.term) {
        this.complete(w.op, { ok }, e.index, e.term, sg.node.id);
      } else {
        // Another entry took this index: ours can never commit.
        w.op.done = true;
        this.scheduleClient(w.op.clientId, 5);
      }
    }
    const check = this.checks[sg.group]!;
    const marker = check.livenessMarker;
    if (marker && marker.index === e.index && marker.term !== e.term) check.livenessMarker = null;
  }

  private serveReads(sg: SimGroup): void {
    if (sg.readWaiters.length === 0) return;
    const keep: typeof sg.readWaiters = [];
    for (const w of sg.readWaiters) {
      if (sg.kv.appliedIndex >= w.index) {
        if (w.op.input.op !== "get") continue;
        this.complete(w.op, { value: sg.kv.data.get(w.op.input.key) ?? null });
      } else keep.push(w);
    }
    sg.readWaiters = keep;
  }

  private maybeSnapshot(sg: SimGroup): void {
    const raw = sg.raw!;
    const applied = sg.kv.appliedIndex;
    const storage = sg.storage!;
    const snapIndex = storage.snapshotMetadata().index;
    if (applied - snapIndex < SNAPSHOT_EVERY) return;
    storage.writeSnapshot(
      { index: applied, term: storage.term(applied), config: raw.raft.configAt(applied) },
      [sg.kv.snapshot()],
    );
    storage.compactToSnapshot();
    raw.compacted(); // cheap and idempotent: the core drops configurations it no longer needs
  }

  /**
   * Puts an envelope on the network. Multi-group seeds deliver it whole half the time (a stream:
   * one delay, lost or kept together); otherwise, and always with one group, each message meets
   * the faults on its own, as datagrams would.
   */
  private send(env: Envelope): void {
    if (env.messages.length > 1 && env.messages.some((gm) => gm.group !== env.messages[0]!.group))
      this.stats.coalesced++;
    if (this.wholeEnvelopes) {
      this.stats.messages++;
      for (const gm of env.messages) if (gm.message.type === "snapshot") this.stats.snapshotsSent++;
      this.transmit(env);
      return;
    }
    for (const gm of env.messages) {
      this.stats.messages++;
      if (gm.message.type === "snapshot") this.stats.snapshotsSent++;
      this.transmit({ from: env.from, to: env.to, messages: [gm] });
    }
  }

  private transmit(env: Envelope): void {
    if (this.blocked.has(`${env.from}>${env.to}`)) return;
    if (this.dropRate > 0 && this.rng() < this.dropRate) return;
    const copies = this.dupRate > 0 && this.rng() < this.dupRate ? 2 : 1;
    for (let i = 0; i < copies; i++) {
      // Mostly short delays; sometimes a long one, so messages overtake each other.
      let delay = this.rng() < 0.05 ? randomInt(this.rng, 10, 80) : 0.5 + this.rng() * 4;
      const slow = this.slowLinks.get(`${env.from}>${env.to}`);
      if (slow && slow.until > this.now) delay += slow.extraMs * (0.5 + this.rng());
      this.schedule({ kind: "deliver", env, time: this.now + delay, seq: 0 });
    }
  }

  // ---------------------------------------------------------------- clients

  private scheduleClient(client: number, delayMs: number): void {
    this.schedule({ kind: "client", client, time: this.now + delayMs + this.rng() * 5, seq: 0 });
  }

  private clientStep(client: number): void {
    if (!this.chaos) return; // clients stop with the faults, so the end state can be checked whole
    const keyNo = randomInt(this.rng, 0, this.opts.keys);
    const key = `k${keyNo}`;
    const group = keyNo % this.opts.groups;
    const seq = ++this.clientSeq[client]!;
    const value = `c${client}.${seq}`;
    const r = this.rng();
    let input: KvInput;
    if (r < 0.4) input = { op: "get", key };
    else if (r < 0.75) input = { op: "put", key, value };
    else if (r < 0.8) input = { op: "delete", key };
    else {
      const cur = this.pickExpected(group, key);
      input = { op: "cas", key, expected: cur, value };
    }
    const members = this.ids.filter((id) => this.nodes.get(id)!.alive);
    const guesses = this.clientLeaderGuess[client]!;
    let target = guesses[group] ?? null;
    if (input.op === "get" && this.rng() < 0.5)
      target = members[randomInt(this.rng, 0, members.length)] ?? null;
    if (!target || !this.nodes.get(target)!.alive)
      target = members[randomInt(this.rng, 0, members.length)] ?? null;
    if (!target) {
      this.scheduleClient(client, 20);
      return;
    }
    const node = this.nodes.get(target)!;
    const sg = node.groups[group]!;
    const raw = sg.raw!;
    const op: OpRecord = { clientId: client, group, input, callTime: this.now, done: false };
    this.inflight.add(op);
    if (input.op === "get") {
      const requestId = this.nextRequestId++;
      sg.pendingReads.set(requestId, op);
      // Lease reads on the leader always; on followers too with follower read leases (a follower
      // without a lease in force asks the leader, which answers from its own lease).
      const lease = (raw.raft.role === "leader" || this.opts.followerReadLeases) && this.rng() < 0.3;
      if (lease && raw.raft.role !== "leader" && raw.raft.followerLeaseValid()) this.stats.localLeaseReads++;
      raw.readIndex(requestId, lease ? "lease" : "quorum");
      this.schedule({
        kind: "opTimeout",
        op,
        nodeId: node.id,
        inc: node.incarnation,
        time: this.now + READ_TIMEOUT_MS,
        seq: 0,
      });
      this.afterStep(node);
      return;
    }
    const cmd: SimCommand =
      input.op === "put"
        ? { id: value, op: "put", key, value }
        : input.op === "delete"
          ? { id: value, op: "delete", key }
          : { id: value, op: "cas", key, expected: input.expected, value: input.value };
    const res = raw.propose(encodeCommand(cmd));
    if (!res.ok) {
      guesses[group] = res.leader;
      op.done = true;
      this.scheduleClient(client, res.leader ? 1 : 30);
      return;
    }
    sg.pendingWrites.set(res.index, { term: res.term, op });
    this.schedule({
      kind: "opTimeout",
      op,
      nodeId: node.id,
      inc: node.incarnation,
      time: this.now + WRITE_TIMEOUT_MS,
      seq: 0,
    });
    this.afterStep(node);
  }

  private pickExpected(group: number, key: string): string | null {
    // Use what some live node currently holds, so compare-and-set sometimes succeeds.
    for (const id of this.ids) {
      const n = this.nodes.get(id)!;
      if (n.alive && this.rng() < 0.5) return n.groups[group]!.kv.data.get(key) ?? null;
    }
    return null;
  }

  private complete(op: OpRecord, output: KvOutput, index?: number, term?: number, node?: NodeId): void {
    if (op.done) return;
    op.done = true;
    this.inflight.delete(op);
    this.stats.ops++;
    this.stats.opsOk++;
    this.checks[op.group]!.history.push({
      clientId: op.clientId,
      input: op.input,
      output,
      callTime: op.callTime,
      returnTime: this.now,
    });
    if (index !== undefined && term !== undefined) {
      op.index = index;
      op.term = term;
      op.node = node;
      this.checks[op.group]!.acked.push(op);
    }
    this.scheduleClient(op.clientId, 1);
  }

  private unknown(op: OpRecord): void {
    if (op.done) return;
    op.done = true;
    this.inflight.delete(op);
    this.stats.ops++;
    this.stats.opsUnknown++;
    this.checks[op.group]!.history.push({
      clientId: op.clientId,
      input: op.input,
      output: undefined,
      callTime: op.callTime,
      returnTime: Number.POSITIVE_INFINITY,
    });
    this.scheduleClient(op.clientId, 10);
  }

  // ---------------------------------------------------------------- faults

  /** The newest leader of group `g`. */
  private leaderOf(g: number): SimGroup | null {
    let best: SimGroup | null = null;
    for (const n of this.nodes.values()) {
      if (!n.alive) continue;
      const sg = n.groups[g]!;
      if (sg.raw!.raft.role === "leader" && (!best || sg.raw!.raft.term > best.raw!.raft.term)) best = sg;
    }
    return best;
  }

  /** A group for a fault to aim at (no draw with one group, so one-group seeds run as they always did). */
  private pickGroup(): number {
    return this.opts.groups === 1 ? 0 : randomInt(this.rng, 0, this.opts.groups);
  }

  private injectFault(): void {
    const r = this.rng();
    const alive = [...this.nodes.values()].filter((n) => n.alive);
    const pick = <T>(xs: T[]): T => xs[randomInt(this.rng, 0, xs.length)]!;
    if (r < 0.22) {
      // Crash a node (a group's leader half of the time), restart it later.
      const leader = this.leaderOf(this.pickGroup())?.node ?? null;
      const victim = leader && this.rng() < 0.5 ? leader : alive.length > 0 ? pick(alive) : null;
      if (victim) {
        this.crash(victim);
        this.schedule({
          kind: "restart",
          node: victim.id,
          time: this.now + randomInt(this.rng, 20, 700),
          seq: 0,
        });
      }
    } else if (r < 0.42) {
      // Partition: isolate the leader, split in two, or cut single links one way.
      const id = ++this.partitionSeq;
      this.stats.partitions++;
      const shape = this.rng();
      const leader = this.leaderOf(this.pickGroup())?.node ?? null;
      if (shape < 0.35 && leader) {
        for (const o of this.ids) if (o !== leader.id) this.cut(leader.id, o, id, true);
        this.trace(`partition #${id}: isolate leader ${leader.id}`);
      } else if (shape < 0.75) {
        const side = new Set(this.ids.filter(() => this.rng() < 0.5));
        for (const a of side) for (const b of this.ids) if (!side.has(b)) this.cut(a, b, id, true);
        this.trace(`partition #${id}: {${[...side].join(",")}} | rest`);
      } else {
        const cuts = randomInt(this.rng, 1, 4);
        for (let i = 0; i < cuts; i++) {
          const a = pick(this.ids);
          const b = pick(this.ids);
          if (a !== b) this.cut(a, b, id, false);
        }
        this.trace(`partition #${id}: one-way cuts`);
      }
      this.schedule({
        kind: "heal",
        what: "partition",
        id,
        time: this.now + randomInt(this.rng, 50, 1200),
        seq: 0,
      });
    } else if (r < 0.52) {
      this.dropEpoch++;
      this.dropRate = this.rng() * 0.3;
      this.dupRate = this.rng() * 0.1;
      this.trace(`network: drop ${this.dropRate.toFixed(2)} dup ${this.dupRate.toFixed(2)}`);
      this.schedule({
        kind: "heal",
        what: "drop",
        id: this.dropEpoch,
        time: this.now + randomInt(this.rng, 100, 800),
        seq: 0,
      });
    } else if (r < 0.56) {
      if (alive.length > 0) {
        const n = pick(alive);
        n.slowDiskUntil = this.now + randomInt(this.rng, 100, 800);
        this.trace(`${n.id} slow disk`);
      }
    } else if (r < 0.62) {
      // Slow links (a congested WAN path): in-flight messages linger while the world moves on.
      const n = randomInt(this.rng, 1, 4);
      for (let i = 0; i < n; i++) {
        const a = pick(this.ids);
        const b = pick(this.ids);
        if (a === b) continue;
        const extraMs = randomInt(this.rng, 10, 60);
        this.slowLinks.set(`${a}>${b}`, { extraMs, until: this.now + randomInt(this.rng, 200, 1500) });
        this.trace(`slow link ${a}>${b} +${extraMs}ms`);
      }
    } else if (r < 0.75) {
      this.changeMembership(this.pickGroup());
    } else if (r < 0.85) {
      const leader = this.leaderOf(this.pickGroup());
      if (leader) {
        const id = leader.node.id;
        const voters = leader.raw!.raft.config.voters.filter((v) => v !== id);
        if (voters.length > 0) {
          const to = pick(voters);
          const res = leader.raw!.transferLeadership(to);
          if (res.ok) this.stats.transfers++;
          this.trace(
            `${this.gname(leader.group)}transfer leadership ${id} -> ${to}: ${res.ok ? "started" : res.message}`,
          );
          this.afterStep(leader.node);
        }
      }
    }
    // else: a quiet interval
  }

  /**
   * Faults at the dangerous moments (just elected, just committed), in the spirit of FoundationDB's
   * "buggify": random faults alone almost never land in the few milliseconds that matter.
   */
  private triggeredFault(node: SimNode, probability: number, withinMs: number): void {
    if (!this.chaos || this.rng() >= probability * this.opts.faultRate) return;
    const at = this.now + this.rng() * withinMs;
    // Mostly isolation: unlike a crash, it also stops what the node already sent.
    if (this.rng() < 0.25) {
      this.schedule({
        kind: "crashAt",
        node: node.id,
        inc: node.incarnation,
        restartAfter: randomInt(this.rng, 10, 400),
        time: at,
        seq: 0,
      });
    } else {
      const id = ++this.partitionSeq;
      this.stats.partitions++;
      for (const o of this.ids) if (o !== node.id) this.cut(node.id, o, id, true);
      this.trace(`partition #${id}: isolate ${node.id} (triggered)`);
      this.schedule({ kind: "heal", what: "partition", id, time: at + randomInt(this.rng, 50, 600), seq: 0 });
    }
  }

  private cut(a: NodeId, b: NodeId, id: number, both: boolean): void {
    this.blocked.set(`${a}>${b}`, id);
    if (both) this.blocked.set(`${b}>${a}`, id);
  }

  /** A membership change in group `g` (groups change apart here: a superset of what the product does). */
  private changeMembership(g: number): void {
    const leader = this.leaderOf(g);
    if (!leader) return;
    const raft = leader.raw!.raft;
    const { voters, learners } = raft.config;
    const outside = this.ids.filter((id) => !voters.includes(id) && !learners.includes(id));
    const pick = <T>(xs: readonly T[]): T => xs[randomInt(this.rng, 0, xs.length)]!;
    let res: ReturnType<RawNode["proposeConfChange"]> | null = null;
    let what = "";
    const r = this.rng();
    if (learners.length > 0 && r < 0.4) {
      const id = pick(learners);
      what = `promote ${id}`;
      res = leader.raw!.proposeConfChange({ type: "addVoter", id });
    } else if (outside.length > 0 && r < 0.7) {
      const id = pick(outside);
      what = `add learner ${id}`;
      res = leader.raw!.proposeConfChange({ type: "addLearner", id });
    } else if (voters.length > 3 || (learners.length > 0 && r < 0.85)) {
      const id = voters.length > 3 ? pick(voters) : pick(learners);
      what = `remove ${id}`;
      res = leader.raw!.proposeConfChange({ type: "remove", id });
    }
    if (!res) return;
    if (res.ok) this.stats.confChanges++;
    this.trace(
      `${leader.node.id} ${this.gname(g)}conf change ${what}: ${res.ok ? `index ${res.index}` : res.message}`,
    );
    this.afterStep(leader.node);
  }

  private endChaos(): void {
    this.chaos = false;
    this.blocked.clear();
    this.slowLinks.clear();
    this.dropRate = 0;
    this.dupRate = 0;
    for (const n of this.nodes.values()) {
      n.slowDiskUntil = 0;
      if (!n.alive) this.start(n);
    }
    this.trace("all faults healed");
    this.schedule({ kind: "livenessProbe", time: this.now + 50, seq: 0 });
  }

  /** After healing: every group has a leader that accepts a write, and every member of its configuration applies it. */
  private livenessProbe(): void {
    this.schedule({ kind: "livenessProbe", time: this.now + 50, seq: 0 });
    for (let g = 0; g < this.opts.groups; g++) {
      const check = this.checks[g]!;
      if (check.live) continue;
      const leader = this.leaderOf(g);
      if (!leader) continue;
      const raft = leader.raw!.raft;
      const marker = check.livenessMarker;
      if (!marker || marker.term !== raft.term || marker.node !== leader.node.id) {
        const res = leader.raw!.propose(
          encodeCommand({ id: "liveness", op: "put", key: "liveness", value: `t${this.now}` }),
        );
        if (res.ok) check.livenessMarker = { index: res.index, term: res.term, node: leader.node.id };
        this.afterStep(leader.node);
        continue;
      }
      const members = [...raft.config.voters, ...raft.config.learners];
      const everywhere = members.every((id) => {
        const n = this.nodes.get(id)!;
        return n.alive && n.groups[g]!.kv.appliedIndex >= marker.index;
      });
      if (everywhere && check.committedTerm[marker.index] === marker.term) check.live = true;
    }
    if (this.checks.every((c) => c.live)) this.livenessDone = true;
  }

  // ---------------------------------------------------------------- invariants

  private checkHash(sg: SimGroup, index: number, hash: number, what: string): void {
    const hashAt = this.checks[sg.group]!.hashAt;
    const known = hashAt[index];
    if (known === undefined) hashAt[index] = hash;
    else if (known !== hash) {
      this.fail(
        `state machine safety: ${sg.node.id} ${this.gname(sg.group)}${what} diverges at index ${index} from what another node applied`,
      );
    }
  }

  private checkNode(node: SimNode): void {
    if (!node.alive) return;
    for (const sg of node.groups) this.checkGroup(sg);
  }

  private checkGroup(sg: SimGroup): void {
    const node = sg.node;
    const check = this.checks[sg.group]!;
    const name = `${node.id} ${this.gname(sg.group)}`;
    const raft = sg.raw!.raft;
    if (raft.term > this.stats.maxTerm) this.stats.maxTerm = raft.term;
    const quiet = raft.quiesced && raft.role === "leader";
    if (quiet && !sg.wasQuiet) this.stats.quietSpells++;
    sg.wasQuiet = quiet;
    // Commit index never decreases within a node's life.
    const commit = raft.log.committed;
    if (commit < sg.lastCommit) this.fail(`${name}commit index went back from ${sg.lastCommit} to ${commit}`);
    if (commit > sg.lastCommit) {
      // No two nodes ever commit different entries at one index.
      for (let i = sg.lastCommit + 1; i <= commit; i++) {
        const t = raft.log.term(i);
        if (t < 0) continue;
        const known = check.committedTerm[i];
        if (known === undefined) check.committedTerm[i] = t;
        else if (known !== t)
          this.fail(`${name}committed term ${t} at index ${i}, but term ${known} was committed there`);
      }
      sg.lastCommit = commit;
      if (commit > check.maxCommitted) check.maxCommitted = commit;
      if (raft.role === "leader") {
        // A new leader's first commit (it carries earlier terms' entries with it) is the most dangerous moment.
        const first = sg.firstCommitInTerm !== raft.term;
        sg.firstCommitInTerm = raft.term;
        this.triggeredFault(node, first ? 0.25 : 0.02, 3);
      }
    }
    if (raft.role === "leader" && sg.wasLeaderInTerm !== raft.term) {
      sg.wasLeaderInTerm = raft.term;
      this.stats.leaders++;
      // Election safety: at most one leader per term.
      const other = check.leaderOfTerm.get(raft.term);
      if (other !== undefined && other !== node.id)
        this.fail(
          `election safety: ${node.id} and ${other} both lead ${this.gname(sg.group)}term ${raft.term}`,
        );
      check.leaderOfTerm.set(raft.term, node.id);
      this.trace(`${name}becomes leader of term ${raft.term}`);
      this.triggeredFault(node, 0.2, 3);
      // Leader completeness: the new leader holds every committed entry.
      const first = raft.log.firstIndex();
      for (let i = Math.max(first, 1); i <= check.maxCommitted; i++) {
        const want = check.committedTerm[i];
        if (want === undefined) continue;
        const have = raft.log.term(i);
        if (have !== want) {
          this.fail(
            `leader completeness: ${node.id} leads ${this.gname(sg.group)}term ${raft.term} but has term ${have} at committed index ${i} (want ${want})`,
          );
        }
      }
    }
  }

  /** Log matching, per group: if two logs hold an entry with the same index and term, they agree on everything before it. */
  private checkLogMatching(): void {
    const live = [...this.nodes.values()].filter((n) => n.alive);
    for (let g = 0; g < this.opts.groups; g++) {
      for (let a = 0; a < live.length; a++) {
        for (let b = a + 1; b < live.length; b++) {
          const la = live[a]!.groups[g]!.raw!.raft.log;
          const lb = live[b]!.groups[g]!.raw!.raft.log;
          const lo = Math.max(la.firstIndex(), lb.firstIndex());
          const hi = Math.min(la.lastIndex(), lb.lastIndex());
          let top = -1;
          for (let i = hi; i >= lo; i--) {
            if (la.term(i) === lb.term(i)) {
              top = i;
              break;
            }
          }
          for (let i = lo; i <= top; i++) {
            if (la.term(i) !== lb.term(i)) {
              this.fail(
                `log matching: ${live[a]!.id} and ${live[b]!.id} ${this.gname(g)}agree at ${top} but differ at ${i}`,
              );
            }
          }
        }
      }
    }
  }

  private finalChecks(): void {
    for (const op of [...this.inflight]) if (!op.done && op.input.op !== "get") this.unknown(op);
    for (let g = 0; g < this.opts.groups; g++) {
      const check = this.checks[g]!;
      // Every acknowledged write is committed where it was acknowledged, and applied on every member.
      const leader = this.leaderOf(g) ?? this.nodes.get(check.livenessMarker!.node)!.groups[g]!;
      const members = [...leader.raw!.raft.config.voters, ...leader.raw!.raft.config.learners];
      for (const op of check.acked) {
        if (check.committedTerm[op.index!] !== op.term) {
          this.fail(
            `durability: ${this.gname(g)}write ${JSON.stringify(op.input)} acknowledged at ${op.index}/${op.term} by ${op.node} is not what was committed there`,
          );
        }
      }
      const markerIndex = check.livenessMarker?.index ?? 0;
      for (const id of members) {
        const sg = this.nodes.get(id)!.groups[g]!;
        for (const op of check.acked) {
          if (op.index! <= markerIndex && sg.kv.appliedIndex < op.index!) {
            this.fail(
              `durability: ${id} ${this.gname(g)}has applied only ${sg.kv.appliedIndex}, missing acknowledged write at ${op.index}`,
            );
          }
        }
      }
      // Linearizability is local (Herlihy & Wing): keys of different groups never share an
      // operation, so each group's history is checked on its own.
      const res = checkLinearizable(kvModel, check.history, { maxSteps: 2_000_000 });
      if (res.linearizable === false)
        this.fail(`linearizability: ${this.gname(g)}${res.explanation ?? "history is not linearizable"}`);
    }
  }

  private describeCluster(): string {
    return [...this.nodes.values()]
      .map((n) => {
        if (!n.alive) return `${n.id}:down`;
        return n.groups
          .map((sg) => {
            const r = sg.raw!.raft;
            return `${n.id}:${this.gname(sg.group)}${r.role}/t${r.term}/c${r.log.committed}/l${r.log.lastIndex()}/v[${r.config.voters.join(",")}]`;
          })
          .join(" ");
      })
      .join(" ");
  }
}

function describeMessage(m: Message): string {
  let s = `${m.type} from ${m.from} t${m.term}`;
  if (m.index !== undefined) s += ` i${m.index}`;
  if (m.logTerm !== undefined) s += ` lt${m.logTerm}`;
  if (m.entries && m.entries.length > 0) s += ` +${m.entries.length}`;
  if (m.commit !== undefined) s += ` c${m.commit}`;
  if (m.reject) s += m.rejectHint !== undefined ? ` REJECT hint ${m.rejectHint}` : " REJECT";
  if (m.snapshot)
    s += ` snap@${m.snapshot.metadata.index} off ${m.snapshot.offset}${m.snapshot.done ? " done" : ""}`;
  return s;
}
