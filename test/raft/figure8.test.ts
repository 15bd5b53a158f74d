/**
 * Figure 8 of the Raft paper, scripted message by message: why a leader must not commit an entry
 * from an earlier term by counting replicas (§5.4.2). The same script runs against the real core
 * (safe) and against the core with that rule planted wrong (two nodes apply different entries at
 * one index), so the test would fail if the rule were ever lost.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { PlantedBugs } from "../../src/raft/raft.js";
import type { Entry, Message } from "../../src/raft/types.js";
import { TestCluster } from "./harness.js";

const ids = ["s1", "s2", "s3", "s4", "s5"];

function entriesOf(m: Message): readonly Entry[] {
  return m.entries ?? [];
}

/** Runs the Figure 8 script; returns the entries each node applied, by index. */
function figure8(bugs: PlantedBugs): Map<string, Map<number, string>> {
  // One entry per message, no PreVote/CheckQuorum: the paper's basic algorithm.
  const c = new TestCluster(ids, { preVote: false, checkQuorum: false, maxMsgBytes: 1, bugs });
  const applied = new Map<string, Map<number, string>>();
  const record = (): void => {
    for (const id of ids) {
      const m = applied.get(id) ?? new Map<number, string>();
      for (const e of c.node(id).applied) m.set(e.index, `${e.term}:${new TextDecoder().decode(e.data)}`);
      applied.set(id, m);
    }
  };

  // (a) S1 leads term 1 and replicates entry 2 ("x") to S2 only.
  assert.ok(c.elect("s1"));
  c.propose("s1", "x");
  c.drop((m) => m.from === "s1" && m.to !== "s2");
  c.deliverAll();
  assert.deepEqual(c.logTerms("s2"), c.logTerms("s1"));
  assert.equal(c.raft("s1").log.committed, 1, "entry 2 is on only two of five servers");

  // (b) S1 crashes; S5 wins term 2 with votes from S3, S4 and itself, appends at index 2, and crashes.
  record();
  c.crash("s1");
  c.campaign("s5");
  c.deliverRound(); // vote requests
  c.deliverRound(); // vote responses
  assert.equal(c.raft("s5").role, "leader");
  c.crash("s5");

  // (c) S1 restarts and is elected (term 3 after a lost round); it replicates index 2 to S3 but
  // nothing of its own term reaches anyone before it crashes.
  c.restart("s1");
  for (let round = 0; round < 3 && c.raft("s1").role !== "leader"; round++) {
    c.campaign("s1");
    c.deliverRound();
    c.deliverRound();
  }
  assert.equal(c.raft("s1").role, "leader");
  const ownTerm = c.raft("s1").term;
  for (let i = 0; i < 20; i++) {
    // Its own-term entries never arrive (as if every message carrying them were cut short).
    c.queue = c.queue.map((m) =>
      m.from === "s1" ? { ...m, entries: entriesOf(m).filter((e) => e.term !== ownTerm) } : m,
    );
    c.drop((m) => m.from === "s1" && m.to !== "s3" && m.to !== "s2");
    if (c.queue.length === 0) break;
    c.deliverRound();
  }
  assert.deepEqual(c.logTerms("s3").slice(0, 2), [1, 1], "S3 now holds entry 2 from term 1");
  record();
  c.crash("s1");

  // (d) S5 restarts, wins with votes from S2, S3, S4 (their last term 1 < its 2), and overwrites index 2.
  c.restart("s5");
  for (let round = 0; round < 3 && c.raft("s5").role !== "leader"; round++) {
    c.campaign("s5");
    c.deliverRound();
    c.deliverRound();
  }
  assert.equal(c.raft("s5").role, "leader", "S5 can win: its log is more up to date than S2's and S3's");
  // Bounded rounds, not "until quiet": with the bug planted, S3 holds a committed entry S5 contradicts,
  // and the two can argue forever.
  for (let round = 0; round < 50 && c.queue.length > 0; round++) c.deliverRound();
  record();
  return applied;
}

function divergences(applied: Map<string, Map<number, string>>): string[] {
  const seen = new Map<number, { id: string; v: string }>();
  const out: string[] = [];
  for (const [id, m] of applied) {
    for (const [i, v] of m) {
      const first = seen.get(i);
      if (!first) seen.set(i, { id, v });
      else if (first.v !== v) out.push(`index ${i}: ${first.id} applied ${first.v}, ${id} applied ${v}`);
    }
  }
  return out;
}

describe("§5.4.2 Figure 8: committing entries from previous terms", () => {
  it("a leader never commits an earlier term's entry by counting replicas, so no two servers apply different entries", () => {
    const applied = figure8({});
    assert.deepEqual(divergences(applied), []);
    // The index-2 entry that survives is S5's (term 2), and every live server applied it.
    assert.equal(applied.get("s5")!.get(2), "2:");
  });

  it("with the rule planted wrong, the same script makes two servers apply different entries at index 2", () => {
    const applied = figure8({ commitOldTermEntries: true });
    const d = divergences(applied);
    assert.ok(d.length > 0, "the planted bug should break state machine safety");
    assert.match(d.join("\n"), /index 2/);
  });
});
