/**
 * Snapshots sent to a follower that fell behind the leader's compacted log (dissertation §5):
 * streamed in chunks, resent when a chunk is lost, installed through the Ready, and not needed
 * when the follower already holds the snapshot's last entry.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { Message, SnapshotChunk } from "../../src/raft/types.js";
import type { TestCluster } from "./harness.js";
import {
  BASIC,
  drain,
  ET,
  enc,
  handleReady,
  nodeWithLog,
  snapshotAndCompact,
  spyReadies,
  termsOf,
  withLeader,
} from "./util.js";

const CHUNK = 10;
const TEXTS = ["one", "two", "three", "four"];
const DATA = enc(`state after: ${TEXTS.join(",")}`); // 31 bytes: four chunks of at most 10

/**
 * c is cut off while a commits TEXTS with b; a then snapshots and compacts its log and appends one
 * more entry, so c can only catch up from the snapshot. Returns the snapshot index.
 */
function behindCompactedLog(c: TestCluster): number {
  c.isolate("c");
  for (const t of TEXTS) c.propose("a", t);
  c.deliverAll();
  const index = snapshotAndCompact(c, "a", DATA);
  assert.equal(index, c.raft("a").log.committed);
  assert.ok(c.raft("a").log.firstIndex() > c.raft("c").log.lastIndex() + 1, "c needs compacted entries");
  assert.ok(c.propose("a", "after").ok);
  c.deliverAll();
  c.heal();
  return index;
}

function chunkTo(to: string, m: Message): SnapshotChunk | undefined {
  return m.type === "snapshot" && m.to === to ? m.snapshot : undefined;
}

describe("snapshots", () => {
  it("a follower behind the compacted log receives the snapshot in chunks of maxSnapshotChunkBytes, installs it and catches up", () => {
    const c = withLeader(["a", "b", "c"], { ...BASIC, maxSnapshotChunkBytes: CHUNK });
    const index = behindCompactedLog(c);
    const readies = spyReadies(c, "c");
    const chunks: SnapshotChunk[] = [];
    for (let round = 0; round < 3; round++) {
      c.tick("a");
      drain(c, {
        seen: (m) => {
          const chunk = chunkTo("c", m);
          if (chunk) chunks.push(chunk);
        },
      });
    }
    assert.equal(chunks.length, Math.ceil(DATA.byteLength / CHUNK));
    let offset = 0;
    for (const [i, ch] of chunks.entries()) {
      assert.equal(ch.offset, offset);
      assert.ok(ch.data.byteLength <= CHUNK && ch.data.byteLength > 0);
      assert.equal(ch.done, i === chunks.length - 1);
      assert.equal(ch.metadata.index, index);
      offset += ch.data.byteLength;
    }
    assert.equal(offset, DATA.byteLength);

    const installed = readies.findIndex((rd) => rd.snapshot !== undefined);
    assert.ok(installed >= 0, "a Ready asks for the install");
    assert.equal(readies[installed]!.snapshot!.index, index);
    const appliedAfter = readies.slice(installed).flatMap((rd) => rd.committedEntries.map((e) => e.index));
    const commit = c.raft("a").log.committed;
    assert.deepEqual(
      appliedAfter,
      Array.from({ length: commit - index }, (_, i) => index + 1 + i),
      "applying resumes right after the snapshot",
    );
    assert.equal(c.node("c").storage.snapshotMetadata().index, index);
    assert.deepEqual(c.node("c").storage.readSnapshot(0, 1 << 20), DATA);
    assert.deepEqual(c.logTerms("c"), c.logTerms("a"));
    assert.deepEqual(c.appliedTexts("c"), ["after"]);
  });

  it("a lost snapshot chunk is resent after an election timeout of leader ticks, and the transfer completes", () => {
    const c = withLeader(["a", "b", "c"], { ...BASIC, maxSnapshotChunkBytes: CHUNK });
    const index = behindCompactedLog(c);
    c.tick("a");
    const lost = drain(c, { hold: (m) => chunkTo("c", m)?.offset === CHUNK });
    assert.equal(lost.length, 1, "the second chunk is lost");
    const resent: { tick: number; offset: number }[] = [];
    for (let tick = 1; tick <= ET; tick++) {
      c.tick("a");
      drain(c, {
        seen: (m) => {
          const chunk = chunkTo("c", m);
          if (chunk) resent.push({ tick, offset: chunk.offset });
        },
      });
      if (tick < ET) assert.deepEqual(resent, [], `nothing resent ${tick} ticks later`);
    }
    assert.ok(resent.length > 0, "resent after an election timeout");
    assert.deepEqual(resent[0], { tick: ET, offset: CHUNK }, "from the lost chunk on");
    assert.equal(c.node("c").storage.snapshotMetadata().index, index);
    assert.deepEqual(c.node("c").storage.readSnapshot(0, 1 << 20), DATA);
    assert.deepEqual(c.logTerms("c"), c.logTerms("a"));
  });

  it("a snapshot chunk that arrives late, after its retransmission, is ignored", () => {
    const c = withLeader(["a", "b", "c"], { ...BASIC, maxSnapshotChunkBytes: CHUNK });
    behindCompactedLog(c);
    c.tick("a");
    const delayed = drain(c, { hold: (m) => chunkTo("c", m)?.offset === CHUNK });
    assert.equal(delayed.length, 1, "the second chunk is delayed");
    for (let tick = 0; tick < ET; tick++) {
      c.tick("a");
      drain(c, {
        seen: (m) => {
          // Once the retransmission has moved the transfer on, the old copy of chunk 2 turns up.
          if (chunkTo("c", m)?.offset === 2 * CHUNK) c.queue.push(...delayed.splice(0));
        },
      });
    }
    assert.equal(delayed.length, 0, "the late copy was delivered mid-transfer");
    assert.deepEqual(c.node("c").storage.readSnapshot(0, 1 << 20), DATA);
    assert.deepEqual(c.logTerms("c"), c.logTerms("a"));
  });

  it("a snapshot whose last entry the follower already holds does not discard its log", () => {
    const node = nodeWithLog("b", [1, 1, 1, 1, 1], { commit: 2 });
    const config = { voters: ["a", "b", "c"], learners: [] };
    node.raw.step({
      type: "snapshot",
      from: "a",
      to: "b",
      term: 1,
      snapshot: {
        metadata: { index: 4, term: 1, config },
        offset: 0,
        totalBytes: 3,
        data: enc("abc"),
        done: true,
      },
    });
    const rd = handleReady(node.raw, node.storage);
    assert.equal(rd.snapshot, undefined, "nothing to install");
    assert.deepEqual(termsOf(node.raw), [1, 1, 1, 1, 1], "entry 5 is kept");
    assert.equal(node.storage.lastIndex(), 5);
    assert.equal(node.raw.raft.log.committed, 4, "the snapshot's entries are committed");
    assert.deepEqual(
      rd.committedEntries.map((e) => e.index),
      [3, 4],
    );
    const resp = rd.messages.find((m) => m.type === "appendResp");
    assert.ok(resp && !resp.reject && resp.index === 4);
  });

  it("a snapshot whose last entry conflicts with the follower's log replaces the log", () => {
    const node = nodeWithLog("b", [1, 1, 1, 1, 1], { commit: 2 });
    const config = { voters: ["a", "b", "c"], learners: [] };
    node.raw.step({
      type: "snapshot",
      from: "a",
      to: "b",
      term: 2,
      snapshot: {
        metadata: { index: 4, term: 2, config },
        offset: 0,
        totalBytes: 3,
        data: enc("abc"),
        done: true,
      },
    });
    const rd = handleReady(node.raw, node.storage);
    assert.equal(rd.snapshot?.index, 4);
    assert.equal(node.raw.raft.log.lastIndex(), 4, "entry 5 followed a conflict and is gone");
    assert.equal(node.storage.lastIndex(), 4);
    assert.equal(node.storage.snapshotMetadata().term, 2);
    assert.deepEqual(node.storage.readSnapshot(0, 100), enc("abc"));
  });
});
