/**
 * A hand-driven cluster of real cores for unit tests: messages wait in a queue until the test
 * delivers them, so a test can script the exact interleavings the Raft paper describes (who hears
 * what, who crashes when). Owns nothing but plumbing; every decision is the core's.
 */
import { seededRandom } from "../../src/raft/random.js";
import { RawNode, type RawNodeOptions } from "../../src/raft/rawnode.js";
import type { Entry, Message, NodeId, ReadState } from "../../src/raft/types.js";
import { MemoryStorage } from "../../src/storage/memory.js";

export interface TestNode {
  id: NodeId;
  storage: MemoryStorage;
  raw: RawNode;
  applied: Entry[];
  readStates: ReadState[];
  alive: boolean;
}

export type NodeOptions = Partial<Omit<RawNodeOptions, "id" | "storage" | "random">>;

export class TestCluster {
  readonly nodes = new Map<NodeId, TestNode>();
  /** Messages sent and not yet delivered, in order. */
  queue: Message[] = [];
  /** Directed links that drop everything: "a>b". */
  readonly cut = new Set<string>();
  private readonly opts: NodeOptions;
  private seed = 1;

  constructor(ids: NodeId[], opts: NodeOptions = {}, voters: NodeId[] = ids) {
    this.opts = { electionTicks: 10, heartbeatTicks: 1, ...opts };
    for (const id of ids) {
      const config = voters.includes(id) ? { voters, learners: [] } : { voters: [], learners: [] };
      this.add(id, MemoryStorage.bootstrap(config));
    }
  }

  add(id: NodeId, storage: MemoryStorage): TestNode {
    const node: TestNode = {
      id,
      storage,
      raw: this.makeRaw(id, storage),
      applied: [],
      readStates: [],
      alive: true,
    };
    this.nodes.set(id, node);
    return node;
  }

  private makeRaw(id: NodeId, storage: MemoryStorage): RawNode {
    return new RawNode({
      id,
      storage,
      random: seededRandom(this.seed++),
      applied: storage.snapshotMetadata().index,
      ...this.opts,
    });
  }

  node(id: NodeId): TestNode {
    const n = this.nodes.get(id);
    if (!n) throw new Error(`no node ${id}`);
    return n;
  }

  raft(id: NodeId) {
    return this.node(id).raw.raft;
  }

  /** Handles every pending Ready of a node: persist, queue messages, apply. */
  process(id: NodeId): void {
    const n = this.node(id);
    if (!n.alive) return;
    while (n.raw.hasReady()) {
      const rd = n.raw.ready();
      n.storage.save(rd, (err) => {
        if (err) throw err;
      });
      for (const m of rd.leaderMessages) this.queue.push(m);
      for (const m of rd.messages) this.queue.push(m);
      for (const e of rd.committedEntries) n.applied.push(e);
      for (const r of rd.readStates) n.readStates.push(r);
      n.raw.advance(rd);
    }
  }

  processAll(): void {
    for (const id of this.nodes.keys()) this.process(id);
  }

  /** Delivers queued messages (and what they cause) until none are left; returns how many were delivered. */
  deliverAll(limit = 100_000): number {
    this.processAll();
    let delivered = 0;
    while (this.queue.length > 0) {
      if (delivered++ > limit) throw new Error("deliverAll: no quiescence");
      const m = this.queue.shift()!;
      this.deliver(m);
    }
    return delivered;
  }

  /** Delivers one message if its link is up and its target alive. */
  deliver(m: Message): void {
    const to = this.nodes.get(m.to);
    if (!to?.alive || this.cut.has(`${m.from}>${m.to}`)) return;
    to.raw.step(m);
    this.process(m.to);
  }

  /**
   * Delivers the messages queued right now that match `pred` (what they cause waits for the next
   * round); the rest stay queued.
   */
  deliverRound(pred: (m: Message) => boolean = () => true): void {
    const round = this.queue;
    this.queue = [];
    const held: Message[] = [];
    for (const m of round) {
      if (pred(m)) this.deliver(m);
      else held.push(m);
    }
    this.queue = [...held, ...this.queue];
  }

  /** Removes queued messages matching `pred` (they are lost) and returns them. */
  drop(pred: (m: Message) => boolean): Message[] {
    const dropped = this.queue.filter(pred);
    this.queue = this.queue.filter((m) => !pred(m));
    return dropped;
  }

  tick(id: NodeId, n = 1): void {
    for (let i = 0; i < n; i++) {
      this.node(id).raw.tick();
      this.process(id);
    }
  }

  tickAll(n = 1): void {
    for (let i = 0; i < n; i++) for (const [id, node] of this.nodes) if (node.alive) this.tick(id);
  }

  /** Cuts every link to and from `id`. */
  isolate(id: NodeId): void {
    for (const o of this.nodes.keys()) {
      if (o === id) continue;
      this.cut.add(`${id}>${o}`);
      this.cut.add(`${o}>${id}`);
    }
  }

  heal(): void {
    this.cut.clear();
  }

  /** Loses everything not persisted: the in-memory core goes, storage stays. */
  crash(id: NodeId): void {
    const n = this.node(id);
    n.alive = false;
    this.queue = this.queue.filter((m) => m.from !== id);
  }

  restart(id: NodeId): void {
    const n = this.node(id);
    n.raw = this.makeRaw(id, n.storage);
    n.applied = [];
    n.alive = true;
  }

  /** Makes `id` start an election now; its vote requests are queued, not delivered. */
  campaign(id: NodeId): void {
    this.node(id).raw.campaign();
    this.process(id);
  }

  /** Makes `id` campaign now and delivers until quiet; returns whether it won. */
  elect(id: NodeId): boolean {
    this.campaign(id);
    this.deliverAll();
    return this.raft(id).role === "leader";
  }

  propose(id: NodeId, text: string) {
    const res = this.node(id).raw.propose(new TextEncoder().encode(text));
    this.process(id);
    return res;
  }

  leaders(): NodeId[] {
    return [...this.nodes.values()].filter((n) => n.alive && n.raw.raft.role === "leader").map((n) => n.id);
  }

  /** Text payloads a node has applied (skipping no-ops and config entries). */
  appliedTexts(id: NodeId): string[] {
    const dec = new TextDecoder();
    return this.node(id)
      .applied.filter((e) => e.type === "normal" && e.data.byteLength > 0)
      .map((e) => dec.decode(e.data));
  }

  logTerms(id: NodeId): number[] {
    const log = this.raft(id).log;
    const out: number[] = [];
    for (let i = log.firstIndex(); i <= log.lastIndex(); i++) out.push(log.term(i));
    return out;
  }
}
