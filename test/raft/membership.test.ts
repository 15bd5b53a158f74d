/**
 * Membership changes one server at a time (dissertation §4.1-4.3): learners, promotion, removal,
 * the rules that keep two changes from overlapping, and a configuration taking effect on append.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { ConfChange } from "../../src/raft/types.js";
import { MemoryStorage } from "../../src/storage/memory.js";
import { TestCluster } from "./harness.js";
import { BASIC, cutBetween, drain, ET, isCampaign, settle, tickOnly, withLeader } from "./util.js";

function change(c: TestCluster, leader: string, cc: ConfChange) {
  const res = c.node(leader).raw.proposeConfChange(cc);
  c.process(leader);
  return res;
}

/** A three-voter cluster led by a, plus brand-new nodes (empty storage) added one by one as learners. */
function withLearners(learners: string[]): TestCluster {
  const c = withLeader(["a", "b", "c"], BASIC);
  for (const id of learners) {
    c.add(id, new MemoryStorage());
    assert.ok(change(c, "a", { type: "addLearner", id }).ok);
    settle(c, 3);
  }
  return c;
}

describe("membership", () => {
  it("§4.2.1 a learner receives and applies entries, but its acknowledgements do not count and it does not vote", () => {
    const c = withLearners(["l", "m"]);
    assert.deepEqual(c.raft("l").config, { voters: ["a", "b", "c"], learners: ["l", "m"] });
    c.propose("a", "x");
    settle(c, 2);
    assert.deepEqual(c.appliedTexts("l"), ["x"]);
    // With b and c cut off, a, l and m hold y: three copies of five, but only one of three voters.
    cutBetween(c, "a", ["b", "c"]);
    const y = c.propose("a", "y");
    assert.ok(y.ok);
    tickOnly(c, ["a", "l", "m"], 5);
    for (const id of ["l", "m"]) assert.equal(c.raft(id).log.lastIndex(), y.index, `${id} holds y`);
    assert.ok(c.raft("a").log.committed < y.index, "learners' copies do not count toward commit");
    c.heal();
    settle(c, 2);
    assert.deepEqual(c.appliedTexts("l"), ["x", "y"]);
    // A candidate asks only voters.
    c.crash("a");
    c.campaign("b");
    const asked = c.queue.filter((m) => m.type === "vote").map((m) => m.to);
    assert.deepEqual(asked.sort(), ["a", "c"]);
    c.deliverAll();
    assert.equal(c.raft("b").role, "leader", "b wins with c's vote: two of three voters");
  });

  it("§4.2.1 a learner promoted to voter counts toward the quorum", () => {
    const c = withLearners(["l"]);
    assert.ok(change(c, "a", { type: "addVoter", id: "l" }).ok);
    settle(c, 2);
    for (const id of ["a", "l"]) {
      assert.deepEqual(c.raft(id).config, { voters: ["a", "b", "c", "l"], learners: [] });
    }
    // Four voters: a, b and l are a majority; a and b alone are not.
    cutBetween(c, "a", ["c"]);
    const x = c.propose("a", "x");
    tickOnly(c, ["a", "b", "l"], 3);
    assert.ok(x.ok && c.raft("a").log.committed >= x.index, "a, b and l commit x");
    cutBetween(c, "a", ["l"]);
    const y = c.propose("a", "y");
    tickOnly(c, ["a", "b"], 3);
    assert.ok(y.ok && c.raft("a").log.committed < y.index, "a and b are two of four");
  });

  it("§4.1 removing a follower shrinks the quorum", () => {
    const c = withLeader(["a", "b", "c", "d"], BASIC);
    cutBetween(c, "a", ["c", "d"]);
    const x = c.propose("a", "x");
    tickOnly(c, ["a", "b"], 3);
    assert.ok(x.ok && c.raft("a").log.committed < x.index, "two of four voters are no majority");
    c.heal();
    settle(c, 3);
    assert.ok(change(c, "a", { type: "remove", id: "d" }).ok);
    settle(c, 2);
    assert.deepEqual(c.raft("a").config, { voters: ["a", "b", "c"], learners: [], removed: ["d"] });
    assert.equal(c.raft("a").log.committed, c.raft("a").log.lastIndex());
    cutBetween(c, "a", ["c", "d"]);
    const y = c.propose("a", "y");
    tickOnly(c, ["a", "b"], 3);
    assert.ok(y.ok && c.raft("a").log.committed >= y.index, "two of three voters are");
  });

  it("§4.1 a second change is refused with config_pending while one is uncommitted", () => {
    const c = withLeader(["a", "b", "c"], BASIC);
    assert.ok(change(c, "a", { type: "addLearner", id: "l" }).ok);
    const second = change(c, "a", { type: "remove", id: "c" });
    assert.ok(!second.ok);
    assert.equal(second.error, "config_pending");
    c.deliverAll();
    assert.ok(change(c, "a", { type: "remove", id: "c" }).ok, "accepted once the first commits");
  });

  it("§4.1 (erratum) a change is refused with no_commit_in_term until the new leader commits in its term", () => {
    const c = new TestCluster(["a", "b", "c"], BASIC);
    c.campaign("a");
    c.deliverRound(); // vote requests
    c.deliverRound(); // votes
    assert.equal(c.raft("a").role, "leader");
    const early = change(c, "a", { type: "addLearner", id: "l" });
    assert.ok(!early.ok);
    assert.equal(early.error, "no_commit_in_term");
    assert.equal(c.raft("a").log.lastIndex(), 1, "only the no-op was appended");
    c.deliverAll();
    assert.ok(change(c, "a", { type: "addLearner", id: "l" }).ok);
  });

  it("§4.1 a configuration takes effect when appended, and is undone when a new leader overwrites the entry", () => {
    const c = withLeader(["a", "b", "c", "d", "e"], BASIC);
    const before = c.raft("b").config;
    const res = change(c, "a", { type: "addLearner", id: "l" });
    assert.ok(res.ok);
    assert.deepEqual(c.raft("a").config.learners, ["l"], "in effect on the leader at once");
    c.drop((m) => m.to !== "b");
    c.deliverRound();
    assert.ok(c.raft("b").log.committed < res.index, "uncommitted on b");
    assert.deepEqual(c.raft("b").config.learners, ["l"], "in effect on b once appended");
    c.crash("a");
    c.campaign("c");
    c.deliverAll();
    assert.equal(c.raft("c").role, "leader", "c wins with d and e");
    assert.notEqual(c.raft("b").log.term(res.index), res.term, "b's config entry was overwritten");
    assert.deepEqual(c.raft("b").config, before, "b is back to the previous configuration");
  });

  it("§4.2.2 a removed leader replicates until the change commits, then steps down, never campaigns, and the rest elect a leader", () => {
    const c = withLeader(["a", "b", "c"]);
    const term = c.raft("a").term;
    const res = change(c, "a", { type: "remove", id: "a" });
    assert.ok(res.ok);
    assert.deepEqual(c.raft("a").config.voters, ["b", "c"]);
    assert.equal(c.raft("a").role, "leader", "it manages the change it started");
    const after = c.propose("a", "after");
    assert.ok(after.ok, "and still accepts proposals");
    c.deliverRound((m) => m.type === "append");
    assert.equal(c.raft("a").role, "leader");
    for (const id of ["b", "c"]) assert.equal(c.raft(id).log.lastIndex(), after.index);
    c.deliverAll();
    assert.equal(c.raft("a").role, "follower", "steps down once the change commits");
    assert.ok(c.raft("a").log.committed >= res.index);
    const campaigns: string[] = [];
    for (let i = 0; i < 10 * ET; i++) {
      c.tickAll(1);
      drain(c, {
        seen: (m) => {
          if (isCampaign(m) && m.from === "a") campaigns.push(m.type);
        },
      });
    }
    assert.deepEqual(campaigns, []);
    const leaders = c.leaders();
    assert.equal(leaders.length, 1);
    const leader = leaders[0]!;
    assert.ok(leader === "b" || leader === "c");
    assert.ok(c.raft(leader).term > term);
    assert.deepEqual(c.appliedTexts(leader), ["after"]);
  });

  it("§4.1 invalid changes are refused with invalid_config_change and change nothing", () => {
    const c = withLeader(["a", "b", "c"], BASIC);
    const config = c.raft("a").config;
    const last = c.raft("a").log.lastIndex();
    const invalid: ConfChange[] = [
      { type: "remove", id: "z" },
      { type: "addVoter", id: "b" },
      { type: "addLearner", id: "b" },
    ];
    for (const cc of invalid) {
      const res = change(c, "a", cc);
      assert.ok(!res.ok);
      assert.equal(res.error, "invalid_config_change", JSON.stringify(cc));
    }
    assert.deepEqual(c.raft("a").config, config);
    assert.equal(c.raft("a").log.lastIndex(), last);
    assert.deepEqual(c.queue, []);

    const single = withLeader(["a"], BASIC);
    const res = change(single, "a", { type: "remove", id: "a" });
    assert.ok(!res.ok);
    assert.equal(res.error, "invalid_config_change", "the last voter cannot be removed");
    assert.deepEqual(single.raft("a").config, { voters: ["a"], learners: [] });
  });

  it("§4.2.1 a brand-new node (empty storage, empty configuration) added as a learner catches up", () => {
    const c = withLeader(["a", "b", "c"], BASIC);
    const texts = ["one", "two", "three", "four", "five"];
    for (const t of texts) c.propose("a", t);
    c.deliverAll();
    const l = c.add("l", new MemoryStorage());
    assert.deepEqual(l.raw.raft.config, { voters: [], learners: [] });
    assert.ok(change(c, "a", { type: "addLearner", id: "l" }).ok);
    settle(c, 3);
    assert.deepEqual(c.appliedTexts("l"), texts);
    assert.deepEqual(c.logTerms("l"), c.logTerms("a"));
    assert.equal(c.raft("l").log.committed, c.raft("a").log.committed);
    assert.deepEqual(c.raft("l").config, { voters: ["a", "b", "c"], learners: ["l"] });
  });

  it("member URLs and the learners to promote travel in the configuration entries, to every node", () => {
    const c = withLeader(["a", "b", "c"], BASIC);
    c.add("l", new MemoryStorage());
    const urls = { a: "http://a:1", b: "http://b:1", c: "http://c:1", l: "http://l:1" };
    assert.ok(change(c, "a", { type: "addLearner", id: "l", urls, promote: true }).ok);
    settle(c, 3);
    for (const id of ["a", "b", "l"])
      assert.deepEqual(c.raft(id).config, { voters: ["a", "b", "c"], learners: ["l"], urls, promote: ["l"] });
    // A second change waits for the first to commit; here it has, so promotion goes ahead and clears the mark.
    assert.ok(change(c, "a", { type: "addVoter", id: "l" }).ok);
    settle(c, 3);
    assert.deepEqual(c.raft("l").config, { voters: ["a", "b", "c", "l"], learners: [], urls });
    // Removal takes the member's URL with it.
    assert.ok(change(c, "a", { type: "remove", id: "c" }).ok);
    settle(c, 3);
    const { c: _gone, ...rest } = urls;
    assert.deepEqual(c.raft("b").config, {
      voters: ["a", "b", "l"],
      learners: [],
      urls: rest,
      removed: ["c"],
    });
    // A removed id is never a member again: a node that comes back under it is told it was removed.
    const again = change(c, "a", { type: "addLearner", id: "c", urls: { c: "http://c:2" } });
    assert.equal(again.ok, false);
    assert.match(again.ok ? "" : again.message, /removed id is never reused/);
  });
});
