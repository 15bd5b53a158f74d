/**
 * The deterministic cluster simulator: real Raft cores (RawNode) on a simulated network, disk and
 * clock, driven from one seed. Injects message loss, duplication, delay and reordering, symmetric
 * and one-way partitions, crashes that lose whatever was not persisted, slow disks, membership
 * changes, leadership transfers and snapshots; runs clients against a key-value state machine
 * (with follower read leases on in every other seed, and lease reads on followers then); checks
 * Raft's safety properties after every event and liveness once faults heal.
 *
 * Owns the simulated world and the invariants. Must never use real time, real I/O or
 * Math.random: any run replays exactly from its seed.
 */
import type { PlantedBugs } from "../../src/raft/raft.js";
import { type RandomSource, randomInt, seededRandom } from "../../src/raft/random.js";
import { RawNode } from "../../src/raft/rawnode.js";
import type { Entry, Message, NodeId, Ready } from "../../src/raft/types.js";
import { DiskStorage } from "../../src/storage/disk.js";
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
}

export interface SimStats {
  nodes: number;
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
}

export class SimFailure extends Error {}

const TICK_MS = 10;
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
  /** The real WAL storage on that disk (null while the node is down). */
  storage: DiskStorage | null;
  readonly initialConfig: { voters: NodeId[]; learners: NodeId[] };
  raw: RawNode | null;
  kv: SimKv;
  tickMs: number;
  slowDiskUntil: number;
  persisting: boolean;
  pendingWrites: Map<number, PendingWrite>;
  pendingReads: Map<number, OpRecord>;
  readWaiters: { index: number; requestId: number; op: OpRecord }[];
  lastCommit: number;
  wasLeaderInTerm: number;
  firstCommitInTerm: number;
}

type SimEvent =
  | { kind: "tick"; node: NodeId; inc: number; time: number; seq: number }
  | { kind: "deliver"; msg: Message; time: number; seq: number }
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

  // Checker state.
  private readonly leaderOfTerm = new Map<number, NodeId>();
  private readonly committedTerm: number[] = [];
  private readonly hashAt: number[] = [];
  private maxCommitted = 0;
  private readonly history: Operation<KvInput, KvOutput>[] = [];
  private readonly acked: OpRecord[] = [];
  /** Every client operation not yet finished; writes still open at the end count as unknown outcomes. */
  private readonly inflight = new Set<OpRecord>();
  private readonly traceLog: string[] = [];
  private nextRequestId = 1;
  private clientSeq: number[] = [];
  private clientLeaderGuess: (NodeId | null)[] = [];
  private livenessDone = false;
  /** Flow-control limits drawn per seed: tiny batches and windows reach interleavings large ones hide. */
  private readonly maxMsgBytes: number;
  private readonly maxInflight: number;
  private livenessMarker: { index: number; term: number; node: NodeId } | null = null;
  readonly stats: SimStats;

  constructor(opts: SimOptions) {
    this.rng = seededRandom(opts.seed ^ 0x5eed);
    const nodes = opts.nodes ?? randomInt(this.rng, 3, 8);
    this.opts = {
      seed: opts.seed,
      nodes,
      spares: opts.spares ?? 1,
      chaosMs: opts.chaosMs ?? 3000,
      livenessMs: opts.livenessMs ?? 8000,
      clients: opts.clients ?? 3,
      keys: opts.keys ?? 3,
      bugs: opts.bugs ?? {},
      faultRate: opts.faultRate ?? 1,
      trace: opts.trace ?? false,
      followerReadLeases: opts.followerReadLeases ?? opts.seed % 2 === 0,
    };
    this.stats = {
      nodes,
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
    };
    this.maxMsgBytes = [1, 200, 4096][randomInt(this.rng, 0, 3)]!;
    this.maxInflight = [1, 4, 64][randomInt(this.rng, 0, 3)]!;
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
        storage: null,
        initialConfig: config,
        raw: null,
        kv: new SimKv(),
        tickMs: TICK_MS * (1 + (this.rng() - 0.5) * 0.06),
        slowDiskUntil: 0,
        persisting: false,
        pendingWrites: new Map(),
        pendingReads: new Map(),
        readWaiters: [],
        lastCommit: 0,
        wasLeaderInTerm: 0,
        firstCommitInTerm: 0,
      };
      this.nodes.set(id, node);
      this.start(node);
    }
    for (let c = 0; c < this.opts.clients; c++) {
      this.clientSeq.push(0);
      this.clientLeaderGuess.push(null);
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
    if (this.traceLog.length > 400) this.traceLog.splice(0, this.traceLog.length - 300);
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
      node.storage = DiskStorage.open({
        dir: `/${node.id}`,
        nodeId: node.id,
        clusterId: "sim",
        initialConfig: node.initialConfig,
        fs: node.fs,
        // Small segments, frames and cache: rotation, segment removal and reads from disk all happen.
        segmentBytes: 4096,
        snapshotFrameBytes: 128,
        cacheBytes: 2048,
        trailingEntries: KEEP_TRAILING,
        logger: { warn: (m) => this.trace(`${node.id} storage: ${m}`) },
      });
    } catch (e) {
      if (e instanceof StorageError)
        this.fail(`${node.id} cannot recover its data after a crash: ${e.message}`);
      throw e;
    }
    const storage = node.storage;
    const snap = storage.snapshotMetadata();
    node.kv = SimKv.restore(storage.readSnapshot(0, storage.snapshotSize()));
    node.kv.appliedIndex = snap.index;
    if (snap.index > 0) this.checkHash(node, snap.index, node.kv.hash, "restart from snapshot");
    node.raw = new RawNode({
      id: node.id,
      storage,
      random: seededRandom(Math.floor(this.rng() * 2 ** 32)),
      electionTicks: ELECTION_TICKS,
      heartbeatTicks: HEARTBEAT_TICKS,
      applied: snap.index,
      maxMsgBytes: this.maxMsgBytes,
      maxInflight: this.maxInflight,
      maxSnapshotChunkBytes: 256,
      followerReadLeases: this.opts.followerReadLeases,
      bugs: this.opts.bugs,
    });
    node.lastCommit = node.raw.raft.log.committed;
    node.wasLeaderInTerm = 0;
    this.schedule({
      kind: "tick",
      node: node.id,
      inc: node.incarnation,
      time: this.now + node.tickMs * this.rng(),
      seq: 0,
    });
    this.trace(
      `${node.id} starts (term ${node.raw.raft.term}, commit ${node.lastCommit}, last ${node.raw.raft.log.lastIndex()})`,
    );
  }

  private crash(node: SimNode): void {
    if (!node.alive) return;
    this.stats.crashes++;
    node.alive = false;
    node.raw = null;
    node.persisting = false;
    // Power cut: what was not synced is lost, torn or zero-filled; syncs in flight never complete.
    node.fs.crash("random");
    node.storage = null;
    for (const w of node.pendingWrites.values()) this.unknown(w.op);
    node.pendingWrites.clear();
    node.pendingReads.clear();
    node.readWaiters = [];
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
        node.raw!.tick();
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
        const m = e.msg;
        const node = this.nodes.get(m.to);
        if (!node?.alive) return;
        if (this.blocked.has(`${m.from}>${m.to}`)) return;
        this.trace(`${m.to} <- ${describeMessage(m)}`);
        node.raw!.step(m);
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
          for (const [i, w] of node.pendingWrites) if (w.op === e.op) node.pendingWrites.delete(i);
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
    const raw = node.raw!;
    if (node.persisting || !raw.hasReady()) return;
    const rd = raw.ready();
    node.persisting = true;
    const inc = node.incarnation;
    for (const m of rd.leaderMessages) this.send(m); // before the disk write, as RaftNode does
    // The real WAL: group-committed, fdatasync completing in simulated time (or never, if we crash first).
    node.storage!.save(rd, (err) => {
      if (!node.alive || node.incarnation !== inc) return;
      if (err) this.fail(`${node.id} storage failed: ${err.message}`);
      this.finishReady(node, rd);
    });
  }

  private diskLatency(id: NodeId): number {
    const slow = this.nodes.get(id)!.slowDiskUntil > this.now;
    return slow ? randomInt(this.rng, 10, 60) : this.rng() * 1.5;
  }

  private finishReady(node: SimNode, rd: Ready): void {
    const raw = node.raw!;
    const storage = node.storage!;
    // 1. Persisted (save() called back). 2. Send.
    for (const m of rd.messages) this.send(m);
    // 3. Apply.
    if (rd.snapshot) {
      const kv = SimKv.restore(storage.readSnapshot(0, storage.snapshotSize()));
      kv.appliedIndex = rd.snapshot.index;
      this.checkHash(node, kv.appliedIndex, kv.hash, "installed snapshot");
      node.kv = kv;
      this.trace(`${node.id} installed snapshot at ${kv.appliedIndex}`);
      for (const [i, w] of node.pendingWrites) {
        if (i <= kv.appliedIndex) {
          node.pendingWrites.delete(i);
          this.unknown(w.op); // its fate is in the snapshot, which does not say
        }
      }
    }
    for (const e of rd.committedEntries) this.apply(node, e);
    for (const rs of rd.readStates) {
      const op = node.pendingReads.get(rs.requestId);
      if (!op) continue;
      node.pendingReads.delete(rs.requestId);
      if (rs.index < 0) {
        op.done = true; // definite failure: not in the history
        this.scheduleClient(op.clientId, 5);
      } else {
        node.readWaiters.push({ index: rs.index, requestId: rs.requestId, op });
      }
    }
    this.serveReads(node);
    raw.advance(rd);
    node.persisting = false;
    this.maybeSnapshot(node);
    this.checkNode(node);
    this.pump(node);
  }

  private apply(node: SimNode, e: Entry): void {
    const kv = node.kv;
    if (e.index !== kv.appliedIndex + 1)
      this.fail(`${node.id} applied index ${e.index} after ${kv.appliedIndex}`);
    kv.hash = chainHash(kv.hash, e.term, e.index, e.data);
    kv.appliedIndex = e.index;
    this.checkHash(node, e.index, kv.hash, `apply of ${e.index}`);
    let ok = true;
    if (e.type === "normal" && e.data.byteLength > 0) ok = kv.apply(decodeCommand(e.data)).ok;
    const w = node.pendingWrites.get(e.index);
    if (w) {
      node.pendingWrites.delete(e.index);
      if (w.term === e.term) {
        this.complete(w.op, { ok }, e.index, e.term, node.id);
      } else {
        // Another entry took this index: ours can never commit.
        w.op.done = true;
        this.scheduleClient(w.op.clientId, 5);
      }
    }
    const marker = this.livenessMarker;
    if (marker && marker.index === e.index && marker.term !== e.term) this.livenessMarker = null;
  }

  private serveReads(node: SimNode): void {
    if (node.readWaiters.length === 0) return;
    const keep: typeof node.readWaiters = [];
    for (const w of node.readWaiters) {
      if (node.kv.appliedIndex >= w.index) {
        if (w.op.input.op !== "get") continue;
        this.complete(w.op, { value: node.kv.data.get(w.op.input.key) ?? null });
      } else keep.push(w);
    }
    node.readWaiters = keep;
  }

  private maybeSnapshot(node: SimNode): void {
    const raw = node.raw!;
    const applied = node.kv.appliedIndex;
    const storage = node.storage!;
    const snapIndex = storage.snapshotMetadata().index;
    if (applied - snapIndex < SNAPSHOT_EVERY) return;
    storage.writeSnapshot(
      { index: applied, term: storage.term(applied), config: raw.raft.configAt(applied) },
      [node.kv.snapshot()],
    );
    storage.compactToSnapshot();
    raw.compacted(); // cheap and idempotent: the core drops configurations it no longer needs
  }

  private send(m: Message): void {
    this.stats.messages++;
    if (m.type === "snapshot") this.stats.snapshotsSent++;
    if (this.blocked.has(`${m.from}>${m.to}`)) return;
    if (this.dropRate > 0 && this.rng() < this.dropRate) return;
    const copies = this.dupRate > 0 && this.rng() < this.dupRate ? 2 : 1;
    for (let i = 0; i < copies; i++) {
      // Mostly short delays; sometimes a long one, so messages overtake each other.
      let delay = this.rng() < 0.05 ? randomInt(this.rng, 10, 80) : 0.5 + this.rng() * 4;
      const slow = this.slowLinks.get(`${m.from}>${m.to}`);
      if (slow && slow.until > this.now) delay += slow.extraMs * (0.5 + this.rng());
      this.schedule({ kind: "deliver", msg: m, time: this.now + delay, seq: 0 });
    }
  }

  // ---------------------------------------------------------------- clients

  private scheduleClient(client: number, delayMs: number): void {
    this.schedule({ kind: "client", client, time: this.now + delayMs + this.rng() * 5, seq: 0 });
  }

  private clientStep(client: number): void {
    if (!this.chaos) return; // clients stop with the faults, so the end state can be checked whole
    const key = `k${randomInt(this.rng, 0, this.opts.keys)}`;
    const seq = ++this.clientSeq[client]!;
    const value = `c${client}.${seq}`;
    const r = this.rng();
    let input: KvInput;
    if (r < 0.4) input = { op: "get", key };
    else if (r < 0.75) input = { op: "put", key, value };
    else if (r < 0.8) input = { op: "delete", key };
    else {
      const cur = this.pickExpected(key);
      input = { op: "cas", key, expected: cur, value };
    }
    const members = this.ids.filter((id) => this.nodes.get(id)!.alive);
    let target = this.clientLeaderGuess[client];
    if (input.op === "get" && this.rng() < 0.5)
      target = members[randomInt(this.rng, 0, members.length)] ?? null;
    if (!target || !this.nodes.get(target)!.alive)
      target = members[randomInt(this.rng, 0, members.length)] ?? null;
    if (!target) {
      this.scheduleClient(client, 20);
      return;
    }
    const node = this.nodes.get(target)!;
    const raw = node.raw!;
    const op: OpRecord = { clientId: client, input, callTime: this.now, done: false };
    this.inflight.add(op);
    if (input.op === "get") {
      const requestId = this.nextRequestId++;
      node.pendingReads.set(requestId, op);
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
      this.clientLeaderGuess[client] = res.leader;
      op.done = true;
      this.scheduleClient(client, res.leader ? 1 : 30);
      return;
    }
    node.pendingWrites.set(res.index, { term: res.term, op });
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

  private pickExpected(key: string): string | null {
    // Use what some live node currently holds, so compare-and-set sometimes succeeds.
    for (const id of this.ids) {
      const n = this.nodes.get(id)!;
      if (n.alive && this.rng() < 0.5) return n.kv.data.get(key) ?? null;
    }
    return null;
  }

  private complete(op: OpRecord, output: KvOutput, index?: number, term?: number, node?: NodeId): void {
    if (op.done) return;
    op.done = true;
    this.inflight.delete(op);
    this.stats.ops++;
    this.stats.opsOk++;
    this.history.push({
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
      this.acked.push(op);
    }
    this.scheduleClient(op.clientId, 1);
  }

  private unknown(op: OpRecord): void {
    if (op.done) return;
    op.done = true;
    this.inflight.delete(op);
    this.stats.ops++;
    this.stats.opsUnknown++;
    this.history.push({
      clientId: op.clientId,
      input: op.input,
      output: undefined,
      callTime: op.callTime,
      returnTime: Number.POSITIVE_INFINITY,
    });
    this.scheduleClient(op.clientId, 10);
  }

  // ---------------------------------------------------------------- faults

  private leaderNode(): SimNode | null {
    let best: SimNode | null = null;
    for (const n of this.nodes.values()) {
      if (n.alive && n.raw!.raft.role === "leader" && (!best || n.raw!.raft.term > best.raw!.raft.term))
        best = n;
    }
    return best;
  }

  private injectFault(): void {
    const r = this.rng();
    const alive = [...this.nodes.values()].filter((n) => n.alive);
    const pick = <T>(xs: T[]): T => xs[randomInt(this.rng, 0, xs.length)]!;
    if (r < 0.22) {
      // Crash a node (the leader half of the time), restart it later.
      const leader = this.leaderNode();
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
      const leader = this.leaderNode();
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
      this.changeMembership();
    } else if (r < 0.85) {
      const leader = this.leaderNode();
      if (leader) {
        const voters = leader.raw!.raft.config.voters.filter((v) => v !== leader.id);
        if (voters.length > 0) {
          const to = pick(voters);
          const res = leader.raw!.transferLeadership(to);
          if (res.ok) this.stats.transfers++;
          this.trace(`transfer leadership ${leader.id} -> ${to}: ${res.ok ? "started" : res.message}`);
          this.afterStep(leader);
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

  private changeMembership(): void {
    const leader = this.leaderNode();
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
    this.trace(`${leader.id} conf change ${what}: ${res.ok ? `index ${res.index}` : res.message}`);
    this.afterStep(leader);
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

  /** After healing: a leader exists, accepts a write, and every member of its configuration applies it. */
  private livenessProbe(): void {
    this.schedule({ kind: "livenessProbe", time: this.now + 50, seq: 0 });
    const leader = this.leaderNode();
    if (!leader) return;
    const raft = leader.raw!.raft;
    const marker = this.livenessMarker;
    if (!marker || marker.term !== raft.term || marker.node !== leader.id) {
      const res = leader.raw!.propose(
        encodeCommand({ id: "liveness", op: "put", key: "liveness", value: `t${this.now}` }),
      );
      if (res.ok) this.livenessMarker = { index: res.index, term: res.term, node: leader.id };
      this.afterStep(leader);
      return;
    }
    const members = [...raft.config.voters, ...raft.config.learners];
    const everywhere = members.every((id) => {
      const n = this.nodes.get(id)!;
      return n.alive && n.kv.appliedIndex >= marker.index;
    });
    if (everywhere && this.committedTerm[marker.index] === marker.term) this.livenessDone = true;
  }

  // ---------------------------------------------------------------- invariants

  private checkHash(node: SimNode, index: number, hash: number, what: string): void {
    const known = this.hashAt[index];
    if (known === undefined) this.hashAt[index] = hash;
    else if (known !== hash) {
      this.fail(
        `state machine safety: ${node.id} ${what} diverges at index ${index} from what another node applied`,
      );
    }
  }

  private checkNode(node: SimNode): void {
    if (!node.alive) return;
    const raft = node.raw!.raft;
    if (raft.term > this.stats.maxTerm) this.stats.maxTerm = raft.term;
    // Commit index never decreases within a node's life.
    const commit = raft.log.committed;
    if (commit < node.lastCommit)
      this.fail(`${node.id} commit index went back from ${node.lastCommit} to ${commit}`);
    if (commit > node.lastCommit) {
      // No two nodes ever commit different entries at one index.
      for (let i = node.lastCommit + 1; i <= commit; i++) {
        const t = raft.log.term(i);
        if (t < 0) continue;
        const known = this.committedTerm[i];
        if (known === undefined) this.committedTerm[i] = t;
        else if (known !== t)
          this.fail(`${node.id} committed term ${t} at index ${i}, but term ${known} was committed there`);
      }
      node.lastCommit = commit;
      if (commit > this.maxCommitted) this.maxCommitted = commit;
      if (raft.role === "leader") {
        // A new leader's first commit (it carries earlier terms' entries with it) is the most dangerous moment.
        const first = node.firstCommitInTerm !== raft.term;
        node.firstCommitInTerm = raft.term;
        this.triggeredFault(node, first ? 0.25 : 0.02, 3);
      }
    }
    if (raft.role === "leader" && node.wasLeaderInTerm !== raft.term) {
      node.wasLeaderInTerm = raft.term;
      this.stats.leaders++;
      // Election safety: at most one leader per term.
      const other = this.leaderOfTerm.get(raft.term);
      if (other !== undefined && other !== node.id)
        this.fail(`election safety: ${node.id} and ${other} both lead term ${raft.term}`);
      this.leaderOfTerm.set(raft.term, node.id);
      this.trace(`${node.id} becomes leader of term ${raft.term}`);
      this.triggeredFault(node, 0.2, 3);
      // Leader completeness: the new leader holds every committed entry.
      const first = raft.log.firstIndex();
      for (let i = Math.max(first, 1); i <= this.maxCommitted; i++) {
        const want = this.committedTerm[i];
        if (want === undefined) continue;
        const have = raft.log.term(i);
        if (have !== want) {
          this.fail(
            `leader completeness: ${node.id} leads term ${raft.term} but has term ${have} at committed index ${i} (want ${want})`,
          );
        }
      }
    }
  }

  /** Log matching: if two logs hold an entry with the same index and term, they agree on everything before it. */
  private checkLogMatching(): void {
    const live = [...this.nodes.values()].filter((n) => n.alive);
    for (let a = 0; a < live.length; a++) {
      for (let b = a + 1; b < live.length; b++) {
        const la = live[a]!.raw!.raft.log;
        const lb = live[b]!.raw!.raft.log;
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
            this.fail(`log matching: ${live[a]!.id} and ${live[b]!.id} agree at ${top} but differ at ${i}`);
          }
        }
      }
    }
  }

  private finalChecks(): void {
    // Every acknowledged write is committed where it was acknowledged, and applied on every member.
    const leader = this.leaderNode()!;
    const members = [...leader.raw!.raft.config.voters, ...leader.raw!.raft.config.learners];
    for (const op of this.acked) {
      if (this.committedTerm[op.index!] !== op.term) {
        this.fail(
          `durability: write ${JSON.stringify(op.input)} acknowledged at ${op.index}/${op.term} by ${op.node} is not what was committed there`,
        );
      }
    }
    const markerIndex = this.livenessMarker?.index ?? 0;
    for (const id of members) {
      const n = this.nodes.get(id)!;
      for (const op of this.acked) {
        if (op.index! <= markerIndex && n.kv.appliedIndex < op.index!) {
          this.fail(
            `durability: ${id} has applied only ${n.kv.appliedIndex}, missing acknowledged write at ${op.index}`,
          );
        }
      }
    }
    for (const op of [...this.inflight]) if (!op.done && op.input.op !== "get") this.unknown(op);
    const res = checkLinearizable(kvModel, this.history, { maxSteps: 2_000_000 });
    if (res.linearizable === false)
      this.fail(`linearizability: ${res.explanation ?? "history is not linearizable"}`);
  }

  private describeCluster(): string {
    return [...this.nodes.values()]
      .map((n) => {
        if (!n.alive) return `${n.id}:down`;
        const r = n.raw!.raft;
        return `${n.id}:${r.role}/t${r.term}/c${r.log.committed}/l${r.log.lastIndex()}/v[${r.config.voters.join(",")}]`;
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
