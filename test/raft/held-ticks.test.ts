/**
 * Held ticks: the clock of a driver catching up after a stall moves with tickHeld(), and the
 * election timeout and the leader's quorum check wait for checkTimeouts(), after the messages
 * that arrived during the stall have been stepped. Scripted on a hand-driven cluster.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { ET, isCampaign, settle, withLeader } from "./util.js";

type Cluster = ReturnType<typeof withLeader>;

/** `id`'s loop stalls for `ticks` tick periods: its clock catches up with the timeouts held. */
function stall(c: Cluster, id: string, ticks: number): void {
  for (let i = 0; i < ticks; i++) c.node(id).raw.tickHeld();
}

/**
 * Leader a stalls past a quorum check that passes (its held ticks still heartbeat, and are
 * answered), then is cut off and stalls past the next one, which is not acted on yet.
 */
function leaderStalledAlone(c: Cluster): void {
  stall(c, "a", 2 * ET);
  c.deliverAll();
  c.node("a").raw.checkTimeouts();
  assert.equal(c.raft("a").role, "leader");
  c.isolate("a");
  stall(c, "a", 2 * ET);
  c.deliverAll();
}

describe("held ticks", () => {
  it("a follower stalled past its election timeout does not campaign when the leader's heartbeat is waiting", () => {
    const c = withLeader(["a", "b", "c"]);
    settle(c, ET);
    const term = c.raft("a").term;
    // b's loop stalls for three election timeouts; meanwhile a's heartbeats reach its socket.
    stall(c, "b", 3 * ET);
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
    stall(c, "b", 3 * ET);
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
    // Stalls with its answers waiting keep it leading; the same stall with every answer lost
    // fails the quorum check once it is acted on.
    leaderStalledAlone(c);
    assert.equal(c.raft("a").role, "leader", "held ticks never step down");
    c.node("a").raw.checkTimeouts();
    assert.equal(c.raft("a").role, "follower", "checkTimeouts does, without a live quorum");
  });

  it("after a stall of the whole machine, a follower waits the grace for the leader's next heartbeat before campaigning", () => {
    const c = withLeader(["a", "b", "c"]);
    settle(c, ET);
    const term = c.raft("a").term;
    const GRACE = 3;
    // Everyone stalled (nothing was sent meanwhile); b resumes first.
    stall(c, "b", 3 * ET);
    c.node("b").raw.graceAfterStall(GRACE);
    c.node("b").raw.checkTimeouts();
    c.process("b");
    assert.ok(!c.queue.some((m) => m.from === "b" && isCampaign(m)), "no campaign on resuming");
    // b does not grant another's PreVote meanwhile either: it is back inside the leader's lease.
    c.node("b").raw.step({ type: "preVote", from: "c", to: "b", term: term + 1, index: 100, logTerm: term });
    c.process("b");
    assert.ok(
      !c.queue.some((m) => m.type === "preVoteResp" && m.from === "b" && !m.reject),
      "no PreVote granted",
    );
    c.queue.length = 0;
    // The leader resumes and heartbeats within the grace: b stays a follower.
    c.tick("a", 1);
    c.deliverAll();
    for (let i = 0; i < GRACE; i++) c.tick("b", 1);
    c.deliverAll();
    assert.equal(c.raft("b").role, "follower");
    assert.equal(c.raft("b").term, term);
  });

  it("the grace only delays: with the leader really gone, the follower campaigns once it has passed", () => {
    const c = withLeader(["a", "b", "c"]);
    settle(c, ET);
    c.isolate("a");
    stall(c, "b", 3 * ET);
    c.node("b").raw.graceAfterStall(3);
    c.node("b").raw.checkTimeouts();
    c.process("b");
    assert.ok(!c.queue.some((m) => m.from === "b" && isCampaign(m)));
    // Within one randomized election timeout (below 2 × ET) of the grace's start, not before it ends.
    let ticks = 0;
    while (!c.queue.some((m) => m.from === "b" && isCampaign(m)) && ticks < 2 * ET) {
      c.node("b").raw.tick();
      c.process("b");
      ticks++;
    }
    assert.ok(
      c.queue.some((m) => m.from === "b" && isCampaign(m)),
      "campaigns once the grace ran out",
    );
    assert.ok(ticks >= 3, `not before the grace ended (${ticks} ticks)`);
  });

  it("a leader's quorum check after its own stall waits the grace for acknowledgements", () => {
    const c = withLeader(["a", "b", "c"]);
    settle(c, ET);
    // A quorum check that passes, so the next one counts afresh; then a's stall alone.
    leaderStalledAlone(c);
    c.node("a").raw.graceAfterStall(3);
    c.node("a").raw.checkTimeouts();
    assert.equal(c.raft("a").role, "leader", "still leading during the grace");
    for (let i = 0; i < 3; i++) c.node("a").raw.tick();
    assert.equal(c.raft("a").role, "follower", "steps down once the grace passed without a quorum");
  });
});
