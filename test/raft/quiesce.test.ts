/**
 * Quiescence of idle groups in the core (RaftOptions.quiesce), driven by hand: a leader whose
 * group is idle and caught up goes quiet with one marked heartbeat; quiet groups send nothing
 * however long they tick; any proposal, read or transfer wakes them; the host's failure detector
 * (leaderSilent / wake / quietIgnores) restores failure detection; the lease of a quiet leader
 * runs out, so it serves no lease read while quiet.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { TestCluster } from "./harness.js";
import { cluster } from "./util.js";

const ET = 10;

/** Three quiescing cores; `a` elected, its no-op committed everywhere, then ticked until quiet. */
function quietCluster(opts: { quiesce?: boolean } = {}): TestCluster {
  const c = cluster(["a", "b", "c"], { electionTicks: ET, heartbeatTicks: 2, quiesce: opts.quiesce ?? true });
  assert.ok(c.elect("a"));
  for (let i = 0; i < 3; i++) {
    c.tickAll(2);
    c.deliverAll();
  }
  return c;
}

/** Ticks every node `n` times, delivering as it goes; returns the messages that were sent. */
function run(c: TestCluster, n: number): string[] {
  const seen: string[] = [];
  for (let i = 0; i < n; i++) {
    c.tickAll();
    for (const m of c.queue) seen.push(`${m.type} ${m.from}>${m.to}`);
    c.deliverAll();
  }
  return seen;
}

describe("quiescence of idle groups", () => {
  it("an idle, caught-up group goes quiet with one marked heartbeat and then sends nothing", () => {
    const c = quietCluster();
    for (const id of ["a", "b", "c"]) assert.equal(c.raft(id).quiesced, true, `${id} is quiet`);
    assert.deepEqual(run(c, 20 * ET), [], "no message in twenty election timeouts");
    assert.equal(c.raft("a").role, "leader", "the quiet leader neither steps down nor is replaced");
    assert.equal(c.raft("a").term, 1);
  });

  it("without the option nothing changes: heartbeats go on", () => {
    const c = quietCluster({ quiesce: false });
    assert.equal(c.raft("a").quiesced, false);
    assert.ok(run(c, ET).some((m) => m.startsWith("heartbeat a>")));
  });

  it("a proposal wakes it, commits everywhere, and the group goes quiet again", () => {
    const c = quietCluster();
    const r = c.propose("a", "x");
    assert.ok(r.ok);
    assert.equal(c.raft("a").quiesced, false);
    c.deliverAll();
    run(c, 3);
    for (const id of ["a", "b", "c"]) assert.deepEqual(c.appliedTexts(id), ["x"], `${id} applied the write`);
    run(c, 4);
    for (const id of ["a", "b", "c"]) assert.equal(c.raft(id).quiesced, true);
  });

  it("a quiet leader's lease runs out: a lease read waits for a quorum round, which wakes it", () => {
    const c = quietCluster();
    run(c, ET);
    assert.equal(c.raft("a").leaseValid(), false, "no acknowledgements while quiet");
    c.node("a").raw.readIndex(7, "lease");
    c.process("a");
    assert.equal(c.node("a").readStates.length, 0, "not answered from the expired lease");
    assert.equal(c.raft("a").quiesced, false);
    c.deliverAll();
    assert.deepEqual(
      c.node("a").readStates.map((r) => r.requestId),
      [7],
    );
    assert.equal(c.raft("a").leaseValid(), true);
  });

  it("a quiet leader holds no lease even before it runs out, and its clock can be caught up at once", () => {
    const c = quietCluster();
    const a = c.raft("a");
    assert.equal(a.quiesced, true);
    // Just quiet: the acknowledgements are fresh, yet a host that skips quiet groups' ticks
    // (elapseQuiet) may have left its clock behind, so no lease is claimed while quiet.
    assert.equal(a.leaseValid(), false);
    const before = a.tickCount;
    assert.equal(a.elapseQuiet(5 * ET), true);
    assert.equal(a.tickCount, before + 5 * ET, "the clock moved by the ticks skipped");
    assert.deepEqual(run(c, 0), []);
    assert.ok(c.propose("a", "x").ok, "a proposal wakes it");
    assert.equal(a.elapseQuiet(1), false, "an awake group is ticked, not caught up");
    assert.equal(a.tickCount, before + 5 * ET);
    c.deliverAll();
    assert.equal(a.quiesced, false);
    assert.equal(a.leaseValid(), true, "acknowledged after waking: the lease is back");
  });

  it("a follower's read asks the leader, which wakes", () => {
    const c = quietCluster();
    c.node("b").raw.readIndex(9);
    c.process("b");
    c.deliverAll();
    assert.equal(c.node("b").readStates[0]?.requestId, 9);
    assert.ok(c.node("b").readStates[0]!.index >= 1);
  });

  it("a transfer wakes the leader and completes", () => {
    const c = quietCluster();
    assert.deepEqual(c.node("a").raw.transferLeadership("b"), { ok: true });
    c.process("a");
    c.deliverAll();
    assert.equal(c.raft("b").role, "leader");
    assert.equal(c.raft("a").role, "follower");
  });

  it("setQuiesceAllowed(false) wakes a quiet leader and keeps it awake (its lease is kept)", () => {
    const c = quietCluster();
    c.raft("a").setQuiesceAllowed(false);
    c.process("a");
    const sent = run(c, 3 * ET);
    assert.ok(sent.filter((m) => m.startsWith("heartbeat a>")).length >= ET);
    assert.equal(c.raft("a").quiesced, false);
    assert.equal(c.raft("a").leaseValid(), true);
    c.raft("a").setQuiesceAllowed(true);
    run(c, 3);
    assert.equal(c.raft("a").quiesced, true);
  });

  it("stray answers do not wake a quiet follower; its leader's traffic does", () => {
    const c = quietCluster();
    c.raft("b").step({ type: "preVoteResp", from: "c", to: "b", term: 1, reject: true });
    assert.equal(c.raft("b").quiesced, true);
    c.raft("b").step({ type: "heartbeat", from: "a", to: "b", term: 1, commit: 1 });
    assert.equal(c.raft("b").quiesced, false);
  });

  it("a dead leader: the host's leaderSilent() makes its quiet followers elect another within 1.5 election timeouts", () => {
    const c = quietCluster();
    c.crash("a");
    assert.deepEqual(run(c, 5 * ET), [], "quiet followers alone never notice");
    // The host has not heard from a's node for an election timeout.
    for (const id of ["b", "c"]) c.raft(id).leaderSilent();
    let ticks = 0;
    while (c.leaders().length === 0) {
      run(c, 1);
      assert.ok(++ticks <= ET + ET / 2, `no leader ${ticks} ticks after the failure was detected`);
    }
    assert.notEqual(c.leaders()[0], "a");
    assert.equal(c.raft(c.leaders()[0]!).term, 2);
  });

  it("a quiet follower asked for a vote by its own leader knows that leadership is over", () => {
    const c = quietCluster();
    // a restarts: its pings would tell the host it is alive, but it no longer leads.
    c.crash("a");
    c.restart("a");
    let ticks = 0;
    while (c.leaders().length === 0) {
      run(c, 1);
      assert.ok(++ticks <= 4 * ET, "the restarted leader's campaign woke its old followers");
    }
  });

  it("a follower that missed the marked heartbeat campaigns, which wakes the leader instead of replacing it", () => {
    const c = cluster(["a", "b", "c"], { electionTicks: ET, heartbeatTicks: 2, quiesce: true });
    assert.ok(c.elect("a"));
    for (let i = 0; i < 6; i++) {
      c.tickAll();
      c.drop((m) => m.type === "heartbeat" && m.to === "c" && m.force === true);
      c.deliverAll();
    }
    assert.equal(c.raft("a").quiesced, true);
    assert.equal(c.raft("c").quiesced, false);
    run(c, 4 * ET);
    assert.equal(c.raft("a").role, "leader");
    assert.equal(c.raft("a").term, 1, "nobody was elected: the pre-vote woke the leader");
    for (const id of ["a", "b", "c"]) assert.equal(c.raft(id).quiesced, true);
  });

  it("with a minority down (quietIgnores) a leader still goes quiet, and a wake brings the member back up to date", () => {
    const c = cluster(["a", "b", "c"], { electionTicks: ET, heartbeatTicks: 2, quiesce: true });
    assert.ok(c.elect("a"));
    c.crash("c");
    assert.ok(c.propose("a", "while c is down").ok);
    run(c, 2 * ET);
    assert.equal(c.raft("a").quiesced, false, "c is behind and not known to be down");
    const down = new Set(["c"]);
    for (const id of ["a", "b"]) c.raft(id).quietIgnores = down;
    run(c, 3);
    assert.equal(c.raft("a").quiesced, true);
    // c comes back; the host hears it and wakes the leader.
    c.restart("c");
    for (const id of ["a", "b"]) c.raft(id).quietIgnores = new Set();
    c.raft("a").wake();
    c.process("a");
    run(c, 3 * ET);
    assert.deepEqual(c.appliedTexts("c"), ["while c is down"]);
    assert.equal(c.raft("a").term, 1);
  });

  it("never with a majority down: a leader that cannot count on a quorum stays awake (and steps down)", () => {
    const c = quietCluster();
    c.raft("a").wake();
    for (const id of ["b", "c"]) c.crash(id);
    c.raft("a").quietIgnores = new Set(["b", "c"]);
    run(c, 3 * ET);
    assert.equal(c.raft("a").quiesced, false);
    assert.notEqual(c.raft("a").role, "leader", "the quorum check stepped it down");
  });
});
