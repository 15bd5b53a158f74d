/**
 * bench/core: entries committed per second by a 3-node cluster of pure cores in one process
 * (100-byte entries, messages passed in memory, storage in memory). It measures the algorithm's
 * own cost — stepping, batching, Ready handling — with no disk or network in the way.
 *
 * Usage: npm run bench:core [-- --seconds S]   (writes bench/results/core.json)
 */
import { writeFileSync } from "node:fs";
import { seededRandom } from "../../src/raft/random.js";
import { RawNode } from "../../src/raft/rawnode.js";
import type { Message } from "../../src/raft/types.js";
import { MemoryStorage } from "../../src/storage/memory.js";
import { describeMachine } from "../machine.js";

interface Node {
  id: string;
  raw: RawNode;
  storage: MemoryStorage;
  applied: number;
}

function cluster(): Node[] {
  const ids = ["n1", "n2", "n3"];
  return ids.map((id, i) => {
    const storage = MemoryStorage.bootstrap({ voters: ids, learners: [] });
    const raw = new RawNode({
      id,
      storage,
      random: seededRandom(i + 1),
      maxInflight: 256,
      maxMsgBytes: 1 << 20,
    });
    return { id, raw, storage, applied: 0 };
  });
}

/** Drives every node until no Ready and no message is left. */
function pump(nodes: Node[], byId: Map<string, Node>): void {
  let inbox: Message[] = [];
  for (;;) {
    let progressed = false;
    for (const n of nodes) {
      while (n.raw.hasReady()) {
        progressed = true;
        const rd = n.raw.ready();
        n.storage.save(rd, (err) => {
          if (err) throw err;
        });
        for (const m of rd.leaderMessages) inbox.push(m);
        for (const m of rd.messages) inbox.push(m);
        if (rd.committedEntries.length > 0)
          n.applied = rd.committedEntries[rd.committedEntries.length - 1]!.index;
        n.raw.advance(rd);
      }
    }
    if (inbox.length === 0 && !progressed) return;
    const batch = inbox;
    inbox = [];
    for (const m of batch) byId.get(m.to)!.raw.step(m);
  }
}

function compact(n: Node): void {
  const applied = n.applied;
  if (applied - n.storage.firstIndex() < 200_000) return;
  const config = n.raw.raft.configAt(applied);
  n.storage.writeSnapshot({ index: applied, term: n.storage.term(applied), config }, []);
  n.storage.compact(applied - 1000);
  n.raw.compacted();
}

function run(batch: number, seconds: number): { entriesPerSec: number; entries: number; seconds: number } {
  const nodes = cluster();
  const byId = new Map(nodes.map((n) => [n.id, n]));
  nodes[0]!.raw.campaign();
  // Nodes refuse votes during their first election timeout (lease safety after restart): tick past it.
  for (let i = 0; i < 12; i++) for (const n of nodes) n.raw.tick();
  nodes[0]!.raw.campaign();
  pump(nodes, byId);
  const leader = nodes.find((n) => n.raw.raft.role === "leader")!;
  const payload = new Uint8Array(100).fill(7);
  const datas = Array.from({ length: batch }, () => payload);
  const startCommit = leader.raw.raft.log.committed;
  const t0 = process.hrtime.bigint();
  const deadline = t0 + BigInt(Math.round(seconds * 1e9));
  let rounds = 0;
  for (;;) {
    // Keep several batches in flight so the pipeline stays full, as many concurrent clients would.
    for (let k = 0; k < 4; k++) {
      const res = leader.raw.propose(datas);
      if (!res.ok) throw new Error(`propose refused: ${res.message}`);
    }
    pump(nodes, byId);
    if (++rounds % 64 === 0) {
      for (const n of nodes) compact(n);
      if (process.hrtime.bigint() > deadline) break;
    }
  }
  const elapsed = Number(process.hrtime.bigint() - t0) / 1e9;
  const entries = leader.raw.raft.log.committed - startCommit;
  for (const n of nodes)
    if (n.applied !== leader.raw.raft.log.committed) throw new Error("a follower did not apply everything");
  return { entriesPerSec: Math.round(entries / elapsed), entries, seconds: Math.round(elapsed * 100) / 100 };
}

const secondsArg = process.argv.indexOf("--seconds");
const seconds = secondsArg > 0 ? Number(process.argv[secondsArg + 1]) : 5;
const results = [];
for (const batch of [1, 16, 256]) {
  run(batch, 0.5); // warm-up
  const r = run(batch, seconds);
  results.push({ proposalsPerCall: batch, inFlightCalls: 4, ...r });
  console.log(
    `batch ${String(batch).padStart(3)}: ${r.entriesPerSec.toLocaleString("en-US")} entries/s committed (${r.entries} in ${r.seconds}s)`,
  );
}
const out = {
  benchmark: "core",
  description:
    "3-node cluster of pure Raft cores in one process; 100-byte entries; in-memory messages and storage",
  date: new Date().toISOString(),
  machine: describeMachine(),
  target: { entriesPerSec: 300_000 },
  results,
};
writeFileSync(
  new URL("../../../bench/results/core.json", import.meta.url),
  `${JSON.stringify(out, null, 2)}\n`,
);
