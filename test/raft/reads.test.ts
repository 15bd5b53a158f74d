/**
 * Linearizable reads without writing to the log (dissertation §6.4): ReadIndex confirmed by a
 * heartbeat round, the new leader's wait for its first commit, follower reads, and lease reads.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { TestCluster } from "./harness.js";
import { BASIC, ET, read, settle, withLeader } from "./util.js";

describe("reads", () => {
  it("§6.4 ReadIndex: a leader answers a read only after a quorum acknowledges a heartbeat round, with the commit index at request time", () => {
    const c = withLeader(["a", "b", "c", "d", "e"], BASIC);
    c.propose("a", "x");
    c.deliverAll();
    const commitAtRequest = c.raft("a").log.committed;
    read(c, "a", 1);
    const heartbeats = c.drop((m) => m.type === "heartbeat" && m.from === "a");
    assert.equal(heartbeats.length, 4, "the read starts a heartbeat round");
    c.propose("a", "y"); // replication goes on meanwhile; its acknowledgements confirm nothing
    c.deliverAll();
    assert.ok(c.raft("a").log.committed > commitAtRequest);
    assert.deepEqual(c.node("a").readStates, [], "no heartbeat acknowledged yet");
    for (const [i, to] of ["b", "c"].entries()) {
      c.queue.push(heartbeats.find((m) => m.to === to)!);
      c.deliverAll();
      const expected = i === 0 ? [] : [{ requestId: 1, index: commitAtRequest }];
      assert.deepEqual(c.node("a").readStates, expected, `after ${i + 2} of 5 acknowledged`);
    }
  });

  it("§6.4 a new leader answers no read until the first entry of its term commits", () => {
    const c = withLeader(["a", "b", "c"], BASIC);
    c.propose("a", "x");
    c.deliverAll();
    c.campaign("b");
    c.deliverRound(); // vote requests
    c.deliverRound(); // votes
    const b = c.raft("b");
    assert.equal(b.role, "leader");
    const termStart = b.log.lastIndex();
    assert.ok(b.log.committed < termStart, "its no-op is not committed yet");
    read(c, "b", 7);
    assert.deepEqual(c.node("b").readStates, []);
    assert.equal(c.queue.filter((m) => m.type === "heartbeat").length, 0, "no read round yet");
    c.deliverAll();
    assert.equal(b.log.committed, termStart);
    assert.deepEqual(c.node("b").readStates, [{ requestId: 7, index: termStart }]);
  });

  it("§6.4 a follower's read is forwarded to the leader and answered with the leader's commit index", () => {
    const c = withLeader(["a", "b", "c"], BASIC);
    c.propose("a", "x");
    c.deliverRound((m) => m.type === "append");
    c.deliverRound((m) => m.type === "appendResp");
    c.drop((m) => m.type === "append"); // followers do not hear of the new commit index yet
    const leaderCommit = c.raft("a").log.committed;
    assert.ok(c.raft("b").log.committed < leaderCommit);
    read(c, "b", 5);
    assert.deepEqual(
      c.queue.map((m) => [m.type, m.from, m.to]),
      [["readIndex", "b", "a"]],
    );
    assert.deepEqual(c.node("b").readStates, []);
    c.deliverAll();
    assert.deepEqual(c.node("b").readStates, [{ requestId: 5, index: leaderCommit }]);
  });

  it("§6.4 a leader that loses leadership answers its pending reads with index -1", () => {
    const c = withLeader(["a", "b", "c"], BASIC);
    read(c, "a", 9);
    c.drop((m) => m.type === "heartbeat");
    assert.deepEqual(c.node("a").readStates, []);
    c.campaign("b");
    c.deliverRound((m) => m.type === "vote" && m.to === "a");
    assert.equal(c.raft("a").role, "follower");
    assert.deepEqual(c.node("a").readStates, [{ requestId: 9, index: -1 }]);
  });

  it("§6.4 a node that knows no leader answers a read with index -1 at once", () => {
    const c = new TestCluster(["a", "b", "c"], BASIC);
    read(c, "b", 3);
    assert.deepEqual(c.node("b").readStates, [{ requestId: 3, index: -1 }]);
    c.campaign("a");
    read(c, "a", 4);
    assert.equal(c.raft("a").role, "candidate");
    assert.deepEqual(c.node("a").readStates, [{ requestId: 4, index: -1 }]);
  });

  it("§6.4.1 lease read: answered at once, without a heartbeat round, while the lease is valid", () => {
    const c = withLeader(["a", "b", "c"]);
    settle(c, 1);
    assert.equal(c.node("a").raw.status().leaseValid, true);
    read(c, "a", 1, "lease");
    assert.deepEqual(c.node("a").readStates, [{ requestId: 1, index: c.raft("a").log.committed }]);
    assert.deepEqual(c.queue, [], "nothing was sent");
  });

  it("§6.4.1 lease read: the lease ends (electionTicks - leaseDriftTicks) ticks after the last heartbeat a quorum acknowledged", () => {
    const drift = 3;
    const c = withLeader(["a", "b", "c"], { leaseDriftTicks: drift });
    settle(c, 1); // a heartbeat sent now is acknowledged by everyone
    const a = c.node("a").raw;
    c.isolate("a");
    c.tick("a", ET - drift - 1);
    assert.equal(a.status().leaseValid, true, `valid ${ET - drift - 1} ticks later`);
    c.tick("a");
    assert.equal(a.raft.role, "leader", "still leader: CheckQuorum has not fired yet");
    assert.equal(a.status().leaseValid, false, `expired ${ET - drift} ticks later`);
    read(c, "a", 2, "lease");
    assert.deepEqual(c.node("a").readStates, [], "not answered from an expired lease");
    c.deliverAll(); // cut off: the quorum round it falls back to cannot complete
    assert.deepEqual(c.node("a").readStates, []);
  });

  it("§6.4.1 lease read: never served from the lease once the leader has sent TimeoutNow", () => {
    const c = withLeader(["a", "b", "c"]);
    settle(c, 1);
    const a = c.node("a");
    const answered = () => a.readStates.map((r) => r.requestId);
    assert.equal(a.raw.status().leaseValid, true);
    assert.ok(a.raw.transferLeadership("b").ok);
    c.process("a");
    assert.equal(c.drop((m) => m.type === "timeoutNow").length, 1, "TimeoutNow sent (and lost)");
    assert.equal(a.raw.status().leaseValid, false);
    read(c, "a", 1, "lease");
    assert.deepEqual(answered(), [], "needs a heartbeat round");
    c.deliverAll();
    assert.deepEqual(answered(), [1]);
    // The transfer is abandoned after an election timeout, but the lost TimeoutNow could still
    // arrive and win b forced votes: the lease stays void for the rest of the term.
    settle(c, 2 * ET);
    assert.equal(a.raw.raft.role, "leader");
    assert.ok(c.propose("a", "after").ok, "transfer abandoned");
    assert.equal(a.raw.status().leaseValid, false);
    read(c, "a", 2, "lease");
    assert.deepEqual(answered(), [1], "read 2 waits for a heartbeat round");
    c.deliverAll();
    assert.deepEqual(answered(), [1, 2]);
  });
});
