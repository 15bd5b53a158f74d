/**
 * Small helpers shared by the Raft unit tests: cluster set-up, delivery loops that let a test watch
 * or hold back messages, and single cores built from a hand-written log. Plumbing only; every
 * decision under test is the core's.
 */
import assert from "node:assert/strict";
import type { ReadMode } from "../../src/raft/raft.js";
import { seededRandom } from "../../src/raft/random.js";
import { RawNode } from "../../src/raft/rawnode.js";
import type { Configuration, Entry, Message, NodeId, Ready } from "../../src/raft/types.js";
import { MemoryStorage } from "../../src/storage/memory.js";
import type { SaveBatch } from "../../src/storage/storage.js";
import { type NodeOptions, TestCluster } from "./harness.js";

/** The harness default electionTicks, which every test here keeps. */
export const ET = 10;

/** The paper's basic algorithm: no PreVote, no CheckQuorum (so no start-up lease either). */
export const BASIC: NodeOptions = { preVote: false, checkQuorum: false };

export function enc(text: string): Uint8Array {
  return new TextEncoder().encode(text);
}

export function entry(index: number, term: number, text = ""): Entry {
  return { index, term, type: "normal", data: enc(text) };
}

/**
 * With CheckQuorum on, a node refuses votes for its first electionTicks ticks; tick every node past
 * that window and discard any campaign that started meanwhile (its messages are lost).
 */
export function warmUp(c: TestCluster): void {
  for (const id of c.nodes.keys()) c.tick(id, ET);
  c.drop(() => true);
}

/** A cluster of voters, warmed up when CheckQuorum is on (the default). */
export function cluster(ids: NodeId[], opts: NodeOptions = {}): TestCluster {
  const c = new TestCluster(ids, opts);
  if (opts.checkQuorum !== false) warmUp(c);
  return c;
}

/** A cluster whose first node has been elected and whose term-start entry has been delivered. */
export function withLeader(ids: NodeId[], opts: NodeOptions = {}): TestCluster {
  const c = cluster(ids, opts);
  assert.ok(c.elect(ids[0]!), `${ids[0]} should win the first election`);
  return c;
}

/** A cluster in which every node starts from the same configuration (which may hold learners). */
export function clusterOf(config: Configuration, opts: NodeOptions = {}): TestCluster {
  const c = new TestCluster([], opts);
  for (const id of [...config.voters, ...config.learners]) c.add(id, MemoryStorage.bootstrap(config));
  if (opts.checkQuorum !== false) warmUp(c);
  return c;
}

/** `rounds` times: tick every live node once, then deliver until quiet. */
export function settle(c: TestCluster, rounds = 3): void {
  for (let i = 0; i < rounds; i++) {
    c.tickAll(1);
    c.deliverAll();
  }
}

/**
 * Delivers queued messages (and what they cause) in order until none are left. `seen` observes each
 * message just before delivery; messages for which `hold` is true are kept back and returned.
 */
export function drain(
  c: TestCluster,
  opts: { seen?: (m: Message) => void; hold?: (m: Message) => boolean } = {},
): Message[] {
  c.processAll();
  const held: Message[] = [];
  for (let n = 0; c.queue.length > 0; n++) {
    if (n > 100_000) throw new Error("drain: no quiescence");
    const m = c.queue.shift()!;
    if (opts.hold?.(m)) {
      held.push(m);
      continue;
    }
    opts.seen?.(m);
    c.deliver(m);
  }
  return held;
}

/** Starts a read on `id` and hands its Ready to the cluster. */
export function read(c: TestCluster, id: NodeId, requestId: number, mode: ReadMode = "quorum"): void {
  c.node(id).raw.readIndex(requestId, mode);
  c.process(id);
}

/** Records every Ready the node's current RawNode hands out (install again after a restart). */
export function spyReadies(c: TestCluster, id: NodeId): Ready[] {
  const raw = c.node(id).raw;
  const seen: Ready[] = [];
  const ready = raw.ready.bind(raw);
  raw.ready = () => {
    const rd = ready();
    seen.push(rd);
    return rd;
  };
  return seen;
}

export function isCampaign(m: Message): boolean {
  return m.type === "vote" || m.type === "preVote";
}

/**
 * A single core whose storage already holds entries with the given terms (index 1, 2, ...), as a
 * node restarted with that log would be. Messages to it are stepped by hand.
 */
export function nodeWithLog(
  id: NodeId,
  terms: number[],
  opts: NodeOptions & { voters?: NodeId[]; term?: number; commit?: number } = {},
): { raw: RawNode; storage: MemoryStorage } {
  const { voters = ["a", "b", "c"], term = terms.at(-1) ?? 0, commit = 0, ...rest } = opts;
  const storage = MemoryStorage.bootstrap({ voters, learners: [] });
  const entries = terms.map((t, i) => entry(i + 1, t, `e${i + 1}`));
  save(storage, { entries, snapshotChunks: [], hardState: { term, vote: null, commit } });
  const raw = new RawNode({ id, storage, random: seededRandom(7), applied: commit, ...BASIC, ...rest });
  return { raw, storage };
}

/** Takes the node's Ready, persists it to `storage` and advances: a one-node driver. */
export function handleReady(raw: RawNode, storage: MemoryStorage): Ready {
  const rd = raw.ready();
  save(storage, rd);
  raw.advance(rd);
  return rd;
}

/** Persists a batch to memory storage (which completes at once), failing the test on error. */
export function save(storage: MemoryStorage, batch: SaveBatch): void {
  storage.save(batch, (err) => {
    if (err) throw err;
  });
}

/** Terms of a core's log from its first index to its last. */
export function termsOf(raw: RawNode): number[] {
  const log = raw.raft.log;
  const out: number[] = [];
  for (let i = log.firstIndex(); i <= log.lastIndex(); i++) out.push(log.term(i));
  return out;
}

/** Cuts the links both ways between `id` and each of `others`. */
export function cutBetween(c: TestCluster, id: NodeId, others: NodeId[]): void {
  for (const o of others) {
    c.cut.add(`${id}>${o}`);
    c.cut.add(`${o}>${id}`);
  }
}

/** `rounds` times: tick only the nodes in `ids`, then deliver until quiet (the others' clocks stand still). */
export function tickOnly(c: TestCluster, ids: NodeId[], rounds: number): void {
  for (let i = 0; i < rounds; i++) {
    for (const id of ids) c.tick(id);
    c.deliverAll();
  }
}

/**
 * The application snapshots `id`'s state machine at its applied index (`data` standing for the
 * state), compacts the log up to it and tells the core. Returns the snapshot index.
 */
export function snapshotAndCompact(c: TestCluster, id: NodeId, data: Uint8Array): number {
  const n = c.node(id);
  const r = n.raw.raft;
  const index = r.log.applied;
  n.storage.writeSnapshot({ index, term: r.log.term(index), config: r.configAt(index) }, [data]);
  n.storage.compact(index);
  n.raw.compacted();
  return index;
}
