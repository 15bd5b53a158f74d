/**
 * Leadership transfer (dissertation §3.10): catch the target up, send it TimeoutNow, refuse
 * proposals meanwhile, and give up after an election timeout.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { MemoryStorage } from "../../src/storage/memory.js";
import type { TestCluster } from "./harness.js";
import { ET, settle, withLeader } from "./util.js";

function transfer(c: TestCluster, from: string, to: string) {
  const res = c.node(from).raw.transferLeadership(to);
  c.process(from);
  return res;
}

describe("leadership transfer", () => {
  it("§3.10 a transfer to an up-to-date follower makes it leader in the next term", () => {
    const c = withLeader(["a", "b", "c"]);
    const term = c.raft("a").term;
    assert.ok(transfer(c, "a", "b").ok);
    assert.deepEqual(
      c.queue.map((m) => [m.type, m.to]),
      [["timeoutNow", "b"]],
      "b is up to date: TimeoutNow goes at once",
    );
    c.deliverAll();
    assert.deepEqual(c.leaders(), ["b"]);
    assert.equal(c.raft("b").term, term + 1);
    for (const id of ["a", "c"]) assert.equal(c.raft(id).leader, "b");
  });

  it("§3.10 a transfer to a lagging follower first catches it up, then sends TimeoutNow", () => {
    const c = withLeader(["a", "b", "c"]);
    c.cut.add("a>b");
    for (const t of ["x", "y"]) c.propose("a", t);
    c.deliverAll();
    c.heal();
    const last = c.raft("a").log.lastIndex();
    assert.ok(c.raft("b").log.lastIndex() < last, "b lags");
    assert.ok(transfer(c, "a", "b").ok);
    let timeoutNows = 0;
    while (c.queue.length > 0) {
      const m = c.queue.shift()!;
      if (m.type === "timeoutNow") {
        timeoutNows++;
        assert.equal(
          c.raft("b").log.lastIndex(),
          last,
          "b holds the whole log before it is told to campaign",
        );
      }
      c.deliver(m);
    }
    assert.equal(timeoutNows, 1);
    assert.deepEqual(c.leaders(), ["b"]);
  });

  it("§3.10 proposals are refused with transfer_in_progress during a transfer", () => {
    const c = withLeader(["a", "b", "c"]);
    c.cut.add("a>b"); // the transfer cannot complete
    assert.ok(transfer(c, "a", "b").ok);
    const res = c.propose("a", "x");
    assert.ok(!res.ok);
    assert.equal(res.error, "transfer_in_progress");
    const cc = c.node("a").raw.proposeConfChange({ type: "addLearner", id: "l" });
    assert.ok(!cc.ok && cc.error === "transfer_in_progress");
  });

  it("§3.10 a transfer that does not complete within an election timeout is abandoned", () => {
    const c = withLeader(["a", "b", "c"]);
    const term = c.raft("a").term;
    c.crash("b");
    assert.ok(transfer(c, "a", "b").ok);
    settle(c, ET / 2);
    assert.ok(!c.propose("a", "early").ok, "still transferring half an election timeout later");
    settle(c, ET / 2);
    assert.equal(c.raft("a").role, "leader");
    assert.equal(c.raft("a").term, term);
    assert.ok(c.propose("a", "late").ok, "accepting proposals again");
    settle(c, 2);
    assert.deepEqual(c.appliedTexts("c"), ["late"]);
  });

  it("§3.10 a transfer to itself, to a learner or to a non-member is refused", () => {
    const c = withLeader(["a", "b", "c"]);
    c.add("l", new MemoryStorage());
    assert.ok(c.node("a").raw.proposeConfChange({ type: "addLearner", id: "l" }).ok);
    settle(c, 2);
    assert.deepEqual(c.raft("a").config.learners, ["l"]);
    for (const to of ["a", "l", "z"]) {
      const res = transfer(c, "a", to);
      assert.equal(res.ok, false, `transfer to ${to}`);
    }
    assert.equal(c.raft("a").transferee, null);
    assert.equal(c.queue.filter((m) => m.type === "timeoutNow").length, 0, "no TimeoutNow was sent");
    assert.ok(c.propose("a", "x").ok, "no transfer is in progress");
    assert.equal(transfer(c, "b", "c").ok, false, "only the leader transfers leadership");
  });
});
