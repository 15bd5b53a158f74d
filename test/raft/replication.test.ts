/**
 * Log replication (§5.3, §5.4): the consistency check, conflict repair with fast backtracking,
 * commitment by a durable majority, flow control and the uncommitted budget.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { entrySize, type Message } from "../../src/raft/types.js";
import {
  BASIC,
  clusterOf,
  drain,
  enc,
  entry,
  handleReady,
  nodeWithLog,
  save,
  settle,
  termsOf,
  withLeader,
} from "./util.js";

/** Steps an append from leader "a" into a single core and returns its answer. */
function append(
  node: ReturnType<typeof nodeWithLog>,
  m: { term: number; index: number; logTerm: number; entries: ReturnType<typeof entry>[] },
): Message {
  node.raw.step({ type: "append", from: "a", to: "b", commit: 0, ...m });
  const resp = handleReady(node.raw, node.storage).messages.find((x) => x.type === "appendResp");
  assert.ok(resp, "an append is always answered");
  return resp;
}

describe("replication", () => {
  it("§5.3 a follower refuses an append whose previous entry it lacks or holds with another term", () => {
    const node = nodeWithLog("b", [1, 1]);
    const beyond = append(node, { term: 1, index: 3, logTerm: 1, entries: [entry(4, 1)] });
    assert.equal(beyond.reject, true, "no entry at index 3");
    const otherTerm = append(node, { term: 2, index: 2, logTerm: 2, entries: [entry(3, 2)] });
    assert.equal(otherTerm.reject, true, "entry 2 has term 1, not 2");
    assert.deepEqual(termsOf(node.raw), [1, 1], "nothing was appended");
    assert.equal(node.storage.lastIndex(), 2);
    const ok = append(node, { term: 2, index: 2, logTerm: 1, entries: [entry(3, 2)] });
    assert.equal(ok.reject, undefined);
    assert.equal(ok.index, 3);
    assert.deepEqual(termsOf(node.raw), [1, 1, 2]);
  });

  it("§5.3 conflicting entries and all that follow them are deleted and replaced by the leader's", () => {
    const node = nodeWithLog("b", [1, 1, 1, 1]);
    const resp = append(node, { term: 2, index: 1, logTerm: 1, entries: [entry(2, 2), entry(3, 2)] });
    assert.equal(resp.reject, undefined);
    assert.equal(resp.index, 3);
    assert.deepEqual(termsOf(node.raw), [1, 2, 2], "entry 4 followed a conflict and is gone");
    assert.equal(node.storage.lastIndex(), 3, "storage was truncated too");
    assert.equal(node.storage.term(2), 2);
  });

  it("§5.3 an append whose entries are all present truncates nothing (a delayed append must not undo later ones)", () => {
    const node = nodeWithLog("b", [1, 1, 1, 1]);
    const resp = append(node, { term: 1, index: 1, logTerm: 1, entries: [entry(2, 1, "e2")] });
    assert.equal(resp.reject, undefined);
    assert.deepEqual(termsOf(node.raw), [1, 1, 1, 1]);
    assert.equal(node.storage.lastIndex(), 4);
  });

  it("§5.3 fast backtracking: a follower that diverged over many entries is repaired in a few round trips", () => {
    const c = withLeader(["a", "b", "c"], BASIC); // term 1, entry 1 everywhere
    c.isolate("a");
    for (let i = 0; i < 50; i++) c.propose("a", `stale ${i}`); // a: entries 2..51 of term 1, nowhere else
    c.deliverAll();
    assert.ok(c.elect("b")); // term 2
    for (let i = 0; i < 60; i++) c.propose("b", `b ${i}`);
    c.deliverAll();
    assert.ok(c.elect("c")); // term 3: c's next index for a starts past index 60
    c.heal();
    let rejections = 0;
    for (let round = 0; round < 3; round++) {
      c.tick("c");
      drain(c, {
        seen: (m) => {
          if (m.type === "appendResp" && m.from === "a" && m.reject) rejections++;
        },
      });
    }
    assert.deepEqual(c.logTerms("a"), c.logTerms("c"), "a's log was repaired");
    const lastIndex = c.raft("c").log.lastIndex();
    assert.ok(lastIndex > 60);
    // The diverging suffixes hold terms {1} on a and {2, 3} on c: at most one rejection per term, not per entry.
    assert.ok(rejections >= 1, "a's log had to be backtracked");
    assert.ok(rejections <= 3, `${rejections} rejections`);
  });

  it("§5.3 an entry commits once a majority holds it durably; the leader's copy counts once its Ready is advanced", () => {
    const c = withLeader(["a", "b", "c"], BASIC);
    const a = c.node("a");
    const res = a.raw.propose(enc("x"));
    assert.ok(res.ok);
    const rd = a.raw.ready(); // the leader's appends may leave while its own write of x is in flight
    assert.deepEqual(
      rd.entries.map((e) => e.index),
      [res.index],
    );
    c.queue.push(...rd.leaderMessages.filter((m) => m.to === "b"));
    c.deliverAll(); // b holds x durably and acknowledges it
    assert.equal(c.raft("b").log.lastIndex(), res.index);
    assert.ok(c.raft("a").log.committed < res.index, "one durable copy of three is no majority");
    save(a.storage, rd);
    for (const e of rd.committedEntries) a.applied.push(e);
    a.raw.advance(rd);
    assert.equal(c.raft("a").log.committed, res.index, "leader's durable copy + b's make a majority");
    c.deliverAll();
    assert.deepEqual(c.appliedTexts("a"), ["x"]);
  });

  it("§5.3 Log Matching survives early appends (§10.2.1): a lone voter that crashes before its election is durable and wins the same term again leaves no learner with a different entry", () => {
    // A single voter wins at once: the Ready that makes it leader also carries its new term and vote,
    // and its appends may leave before that Ready is durable.
    const c = clusterOf({ voters: ["a"], learners: ["l"] }, BASIC);
    const a = c.node("a");
    a.raw.campaign();
    assert.equal(a.raw.raft.role, "leader");
    assert.ok(a.raw.propose(enc("x")).ok);
    const rd = a.raw.ready();
    assert.equal(rd.hardState?.term, 1);
    c.queue.push(...rd.leaderMessages); // what the Ready allows to leave before the batch is durable
    c.deliverAll();
    c.crash("a"); // ... and the disk write never completes
    c.restart("a");
    assert.ok(c.elect("a"));
    c.propose("a", "y");
    settle(c, 3);
    assert.deepEqual(c.appliedTexts("a"), ["y"]);
    assert.deepEqual(c.appliedTexts("l"), c.appliedTexts("a"), "the learner applies what the leader applies");
  });

  it("§5.3 followers apply an entry only once the leader's commit index reaches them, in log order", () => {
    const c = withLeader(["a", "b", "c"], BASIC);
    c.propose("a", "x");
    c.deliverRound((m) => m.type === "append");
    assert.equal(c.raft("b").log.lastIndex(), 2);
    assert.deepEqual(c.appliedTexts("b"), [], "held but not known to be committed");
    c.deliverRound((m) => m.type === "appendResp");
    assert.equal(c.raft("a").log.committed, 2);
    c.deliverAll();
    assert.deepEqual(c.appliedTexts("b"), ["x"]);
    for (const t of ["y", "z", "w"]) c.propose("a", t);
    settle(c, 2);
    for (const id of ["b", "c"]) {
      assert.deepEqual(c.appliedTexts(id), ["x", "y", "z", "w"]);
      assert.deepEqual(
        c.node(id).applied.map((e) => e.index),
        [1, 2, 3, 4, 5],
        "every index applied once, in order",
      );
    }
  });

  it("flow control: in replicate state at most maxInflight appends are outstanding to a silent follower", () => {
    const maxInflight = 3;
    const c = withLeader(["a", "b", "c"], { ...BASIC, maxInflight });
    assert.equal(c.node("a").raw.status().progress.get("b")?.state, "replicate");
    let sentToB = 0;
    const held: Message[] = [];
    for (let i = 0; i < 20; i++) {
      c.propose("a", `p${i}`);
      const h = drain(c, {
        hold: (m) => m.from === "b" && m.to === "a", // b's acknowledgements are held back
        seen: (m) => {
          if (m.type === "append" && m.to === "b" && (m.entries?.length ?? 0) > 0) sentToB++;
        },
      });
      held.push(...h);
    }
    assert.ok(sentToB >= 1 && sentToB <= maxInflight, `${sentToB} appends in flight to b`);
    assert.ok(c.raft("b").log.lastIndex() < c.raft("a").log.lastIndex(), "b is held back");
    assert.equal(c.raft("a").log.committed, c.raft("a").log.lastIndex(), "c keeps acknowledging: all commit");
    c.queue.push(...held);
    settle(c, 3);
    assert.deepEqual(c.logTerms("b"), c.logTerms("a"), "b catches up once its acknowledgements arrive");
  });

  it("flow control: each append carries at most maxMsgBytes of entries, and at least one", () => {
    const maxMsgBytes = 100; // two 10-byte entries (34 bytes each with overhead) fit, three do not
    const c = withLeader(["a", "b", "c"], { ...BASIC, maxMsgBytes });
    c.isolate("c");
    const texts = ["0123456789", "1123456789", "2123456789", "x".repeat(200), "3123456789", "4123456789"];
    for (const t of texts) assert.ok(c.propose("a", t).ok);
    c.deliverAll();
    c.heal();
    const appends: Message[] = [];
    for (let round = 0; round < 10; round++) {
      c.tick("a");
      drain(c, {
        seen: (m) => {
          if (m.type === "append" && m.to === "c" && (m.entries?.length ?? 0) > 0) appends.push(m);
        },
      });
    }
    assert.deepEqual(c.appliedTexts("c"), texts, "c caught up");
    assert.ok(appends.length > 0);
    for (const m of appends) {
      const bytes = m.entries!.reduce((n, e) => n + entrySize(e), 0);
      assert.ok(bytes <= maxMsgBytes || m.entries!.length === 1, `an append of ${bytes} bytes`);
    }
    const big = appends.filter((m) => m.entries!.some((e) => e.data.byteLength === 200));
    assert.ok(big.length > 0, "an entry larger than maxMsgBytes is still sent");
    for (const m of big) assert.equal(m.entries!.length, 1);
  });

  it("§5.1 a proposal on a follower is refused with not_leader and names the known leader", () => {
    const c = withLeader(["a", "b", "c"], BASIC);
    const res = c.propose("b", "x");
    assert.equal(res.ok, false);
    assert.ok(!res.ok);
    assert.equal(res.error, "not_leader");
    assert.equal(res.leader, "a");
    assert.equal(c.raft("b").log.lastIndex(), 1, "nothing was appended");
  });

  it("maxUncommittedBytes: proposals are refused with too_many_uncommitted while a majority is unreachable", () => {
    const maxUncommittedBytes = 200; // entries of 50 bytes cost 74: 3 fit under the limit (222 > 200)
    const c = withLeader(["a", "b", "c"], { ...BASIC, maxUncommittedBytes });
    c.isolate("a");
    const payload = "p".repeat(50);
    const results = [1, 2, 3, 4].map(() => c.propose("a", payload));
    assert.deepEqual(
      results.map((r) => r.ok),
      [true, true, true, false],
    );
    const refused = results[3]!;
    assert.ok(!refused.ok && refused.error === "too_many_uncommitted");
    c.heal();
    settle(c, 3);
    assert.equal(c.raft("a").log.committed, c.raft("a").log.lastIndex(), "the backlog commits");
    assert.ok(c.propose("a", payload).ok, "and proposals are accepted again");
  });

  it("§5.3 a leader cut off from the majority cannot commit", () => {
    const c = withLeader(["a", "b", "c", "d", "e"], BASIC);
    for (const o of ["c", "d", "e"]) {
      c.cut.add(`a>${o}`);
      c.cut.add(`${o}>a`);
    }
    const res = c.propose("a", "x");
    assert.ok(res.ok);
    for (let i = 0; i < 3 * 10; i++) {
      c.tick("a");
      c.tick("b");
      c.deliverAll();
    }
    assert.equal(c.raft("b").log.lastIndex(), res.index, "b holds x");
    assert.ok(c.raft("a").log.committed < res.index, "two of five is no majority");
    assert.deepEqual(c.appliedTexts("a"), []);
    c.heal();
    settle(c, 3);
    assert.deepEqual(c.appliedTexts("a"), ["x"], "once reconnected it commits");
  });

  it("§5.4 entries of a deposed leader that never reached a majority are overwritten", () => {
    const c = withLeader(["a", "b", "c"], BASIC);
    c.isolate("a");
    assert.ok(c.propose("a", "lost").ok);
    c.deliverAll();
    assert.ok(c.elect("b"));
    c.propose("b", "kept");
    c.deliverAll();
    c.heal();
    settle(c, 3);
    assert.equal(c.raft("a").role, "follower");
    assert.equal(c.raft("a").leader, "b");
    assert.deepEqual(c.logTerms("a"), c.logTerms("b"));
    for (const id of ["a", "b", "c"]) assert.deepEqual(c.appliedTexts(id), ["kept"], `${id} applied`);
  });
  it("an append that only carries the commit index to a caught-up follower is not answered, and the follower still commits", () => {
    const c = withLeader(["a", "b", "c"], BASIC);
    const seen: Message[] = [];
    c.propose("a", "x");
    drain(c, { seen: (m) => seen.push(m) });
    const index = c.raft("a").log.lastIndex();
    const commitOnly = seen.filter((m) => m.type === "append" && (m.entries?.length ?? 0) === 0);
    assert.deepEqual(
      commitOnly.map((m) => [m.to, m.force, m.commit]).sort(),
      [
        ["b", true, index],
        ["c", true, index],
      ],
      "one commit-only append per follower, each asking for no answer",
    );
    const answers = seen.filter((m) => m.type === "appendResp");
    assert.equal(answers.length, 2, "only the appends with the entry are answered");
    for (const id of ["b", "c"]) {
      assert.equal(c.raft(id).log.committed, index, `${id} learned the commit`);
      assert.deepEqual(c.appliedTexts(id), ["x"], `${id} applied`);
    }
  });

  it("a follower whose acknowledgement was lost before an unanswered commit append is answered after the next heartbeat", () => {
    const c = withLeader(["a", "b", "c"], BASIC);
    c.propose("a", "x");
    // b's acknowledgement of x is lost: the leader's match for b stays behind x.
    drain(c, { hold: (m) => m.type === "appendResp" && m.from === "b" });
    const index = c.raft("a").log.lastIndex();
    assert.ok(c.raft("a").progress.get("b")!.match < index);
    assert.equal(c.raft("b").log.committed, index, "b learned the commit all the same");
    const seen: Message[] = [];
    for (let i = 0; i < c.raft("a").heartbeatTicks; i++) {
      c.tickAll(1);
      drain(c, { seen: (m) => seen.push(m) });
    }
    assert.ok(
      seen.some((m) => m.type === "append" && m.to === "b" && !m.force),
      "the heartbeat's answer showed b behind, and the append that followed asked for an answer",
    );
    assert.equal(c.raft("a").progress.get("b")!.match, index, "b's answer arrived");
  });

  it("a follower leaves an accepted commit-only append unanswered, but answers one it must reject or that offers a lease", () => {
    const node = nodeWithLog("b", [1, 1]);
    const answers = (m: Partial<Message>): Message[] => {
      node.raw.step({
        type: "append",
        from: "a",
        to: "b",
        term: 1,
        entries: [],
        force: true,
        ...m,
      } as Message);
      return handleReady(node.raw, node.storage).messages.filter((x) => x.type === "appendResp");
    };
    assert.deepEqual(answers({ index: 2, logTerm: 1, commit: 2 }), [], "accepted: no answer");
    assert.equal(node.raw.raft.log.committed, 2, "and the commit index was taken");
    const reject = answers({ index: 5, logTerm: 1, commit: 2 });
    assert.equal(reject.length, 1, "a gap is answered");
    assert.equal(reject[0]!.reject, true);
    assert.equal(
      answers({ index: 2, logTerm: 1, commit: 2, leaseTicks: 0 }).length,
      1,
      "a lease offer is answered",
    );
  });

  it("merging a commit-only append into one with entries makes the result answered", () => {
    const c = withLeader(["a", "b", "c"], BASIC);
    c.propose("a", "x");
    drain(c);
    // Acknowledgements and a new proposal in one Ready: the commit append and the new entry merge.
    const seen: Message[] = [];
    c.propose("a", "y");
    drain(c, { seen: (m) => seen.push(m) });
    for (const m of seen) {
      if (m.type === "append" && (m.entries?.length ?? 0) > 0)
        assert.notEqual(m.force, true, "carries entries");
    }
    for (const id of ["b", "c"]) assert.deepEqual(c.appliedTexts(id), ["x", "y"]);
  });
});
