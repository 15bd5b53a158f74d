/**
 * Coalescing a Ready's messages (src/raft/coalesce.ts): consecutive appends to a peer become one,
 * superseded acknowledgements go, and nothing else changes — no merge across peers, terms, types
 * or gaps, no reordering of one peer's messages, no append over the size limit. Then the effect on
 * a cluster: a burst of proposals leaves as one append per follower and commits the same.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { coalesceMessages } from "../../src/raft/coalesce.js";
import type { Message } from "../../src/raft/types.js";
import { BASIC, entry, withLeader } from "./util.js";

function app(to: string, index: number, logTerm: number, n: number, commit: number, term = 2): Message {
  return {
    type: "append",
    from: "a",
    to,
    term,
    index,
    logTerm,
    entries: Array.from({ length: n }, (_, i) => entry(index + 1 + i, term, "xxxx")),
    commit,
    sentTick: index,
  };
}

function ack(to: string, index: number, extra: Partial<Message> = {}): Message {
  return { type: "appendResp", from: "b", to, term: 2, index, sentTick: index, ...extra };
}

describe("coalescing a Ready's messages", () => {
  it("an unanswered commit-only append merged with entries becomes an answered append; two commit-only ones stay unanswered", () => {
    const commitOnly = (index: number, commit: number): Message => ({
      ...app("b", index, 2, 0, commit),
      force: true,
    });
    const [afterEntries] = coalesceMessages([app("b", 5, 1, 2, 4), commitOnly(7, 7)], 1 << 20);
    assert.equal(afterEntries!.entries!.length, 2);
    assert.equal(afterEntries!.commit, 7);
    assert.equal(afterEntries!.force, undefined, "it carries entries: the follower must answer");
    const [beforeEntries] = coalesceMessages([commitOnly(5, 5), app("b", 5, 2, 1, 5)], 1 << 20);
    assert.equal(beforeEntries!.force, undefined);
    const [both] = coalesceMessages([commitOnly(5, 4), commitOnly(5, 5)], 1 << 20);
    assert.equal(both!.force, true);
    assert.equal(both!.commit, 5);
  });

  it("consecutive appends to one peer become one: the first's start, every entry, the last's commit and tick", () => {
    const out = coalesceMessages(
      [app("b", 5, 1, 2, 4), app("c", 5, 1, 2, 4), app("b", 7, 2, 3, 5), app("b", 10, 2, 0, 9)],
      1 << 20,
    );
    assert.equal(out.length, 2);
    const b = out.find((m) => m.to === "b")!;
    assert.equal(b.index, 5);
    assert.equal(b.logTerm, 1);
    assert.deepEqual(
      b.entries?.map((e) => e.index),
      [6, 7, 8, 9, 10],
    );
    assert.equal(b.commit, 9);
    assert.equal(b.sentTick, 10);
    assert.equal(out.find((m) => m.to === "c")!.entries?.length, 2);
  });

  it("does not merge appends that do not continue each other, or of another term, or over the size limit", () => {
    const gap = coalesceMessages([app("b", 5, 1, 2, 4), app("b", 8, 2, 1, 4)], 1 << 20);
    assert.equal(gap.length, 2, "entry 8 is not where the first ends");
    const wrongTerm = coalesceMessages([app("b", 5, 1, 2, 4), app("b", 7, 1, 1, 4)], 1 << 20);
    assert.equal(wrongTerm.length, 2, "the second says entry 7 has term 1, the first sent it with term 2");
    const newTerm = coalesceMessages([app("b", 5, 1, 2, 4), app("b", 7, 2, 1, 4, 3)], 1 << 20);
    assert.equal(newTerm.length, 2, "messages of two terms");
    // 4 bytes per entry: 2 + 3 entries fit in 20 bytes; 2 + 3 + 3 do not.
    const sized = coalesceMessages([app("b", 5, 1, 2, 4), app("b", 7, 2, 3, 4), app("b", 10, 2, 3, 4)], 20);
    assert.deepEqual(
      sized.map((m) => m.entries?.length),
      [5, 3],
    );
  });

  it("never reorders one peer's messages or merges across another message to it", () => {
    const hb: Message = { type: "heartbeat", from: "a", to: "b", term: 2, commit: 4 };
    const out = coalesceMessages([app("b", 5, 1, 2, 4), hb, app("b", 7, 2, 1, 5)], 1 << 20);
    assert.deepEqual(
      out.map((m) => m.type),
      ["append", "heartbeat", "append"],
    );
  });

  it("drops an acknowledgement a later one to the same peer covers, never a rejection", () => {
    assert.deepEqual(
      coalesceMessages([ack("a", 5), ack("c", 3), ack("a", 7)], 1 << 20).map((m) => [m.to, m.index]),
      [
        ["c", 3],
        ["a", 7],
      ],
    );
    const reject = ack("a", 5, { reject: true, rejectHint: 4 });
    assert.equal(coalesceMessages([reject, ack("a", 7)], 1 << 20).length, 2);
    assert.equal(
      coalesceMessages([ack("a", 7), ack("a", 5)], 1 << 20).length,
      2,
      "a lower index covers nothing",
    );
    assert.equal(coalesceMessages([ack("a", 5), ack("a", 6, { term: 3 })], 1 << 20).length, 2);
  });

  it("a burst of proposals leaves the leader as one append per follower, and every entry commits", () => {
    const c = withLeader(["a", "b", "c"], BASIC);
    const raw = c.node("a").raw;
    for (let i = 0; i < 50; i++) assert.ok(raw.propose(new TextEncoder().encode(`w${i}`)).ok);
    const rd = raw.ready();
    const appends = rd.leaderMessages.filter((m) => m.type === "append");
    assert.deepEqual(appends.map((m) => m.to).sort(), ["b", "c"]);
    for (const m of appends) assert.equal(m.entries?.length, 50);
    c.node("a").storage.save(rd, (err) => assert.ifError(err));
    for (const m of [...rd.leaderMessages, ...rd.messages]) c.queue.push(m);
    raw.advance(rd);
    c.deliverAll();
    const last = c.raft("a").log.lastIndex();
    for (const id of ["a", "b", "c"]) assert.equal(c.raft(id).log.committed, last, `${id} committed all`);
    assert.equal(c.node("b").applied.at(-1)?.index, last);
  });
});
