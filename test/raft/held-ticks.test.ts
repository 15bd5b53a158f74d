/**
 * Held ticks: the clock of a driver catching up after a stall moves with tickHeld(), and the
 * election timeout and the leader's quorum check wait for checkTimeouts(), after the messages
 * that arrived during the stall have been stepped. Scripted on a hand-driven cluster.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { ET, isCampaign, settle, withLeader } from "./util.js";

describe("held ticks", () => {
  it("a follower stalled past its election timeout does not campaign when the leader's heartbeat is waiting", () => {
    const c = withLeader(["a", "b", "c"]);
    settle(c, ET);
    const term = c.raft("a").term;
    // b's loop stalls for three election timeouts; meanwhile a's heartbeats reach its socket.
    for (let i = 0; i < 3 * ET; i++) c.node("b").raw.tickHeld();
    c.process("b");
    assert.ok(!c.queue.some((m) => m.from === "b" && isCampaign(m)), "held ticks call no election");
    c.tick("a", 1); // a's heartbeat, read by b before it acts on its timeouts
    c.deliverAll();
    c.node("b").raw.checkTimeouts();
    c.process("b");
    assert.ok(!c.queue.some((m) => isCampaign(m)), "the heartbeat that was waiting keeps b a follower");
    assert.equal(c.raft("b").role, "follower");
    assert.equal(c.raft("b").term, term);
  });

  it("a follower whose stall brought no heartbeat campaigns on checkTimeouts", () => {
    const c = withLeader(["a", "b", "c"]);
    settle(c, ET);
    for (let i = 0; i < 3 * ET; i++) c.node("b").raw.tickHeld();
    c.node("b").raw.checkTimeouts();
    c.process("b");
    assert.ok(
      c.queue.some((m) => m.from === "b" && isCampaign(m)),
      "the timeout that fell due is acted on",
    );
  });

  it("a leader stalled past its quorum check keeps leading when the acknowledgements are waiting", () => {
    const c = withLeader(["a", "b", "c"]);
    settle(c, ET);
    // a stalls for two election timeouts: its held ticks still send heartbeats, which are answered.
    for (let i = 0; i < 2 * ET; i++) c.node("a").raw.tickHeld();
    c.deliverAll();
    c.node("a").raw.checkTimeouts();
    assert.equal(c.raft("a").role, "leader");
    // The same stall with every answer lost: the quorum check fails once it is acted on.
    c.isolate("a");
    for (let i = 0; i < 2 * ET; i++) c.node("a").raw.tickHeld();
    c.deliverAll();
    assert.equal(c.raft("a").role, "leader", "held ticks never step down");
    c.node("a").raw.checkTimeouts();
    assert.equal(c.raft("a").role, "follower", "checkTimeouts does, without a live quorum");
  });
});
