/**
 * Follower read leases: a leader whose own lease is valid lends it to followers with its
 * heartbeats and appends, so a follower answers a `lease` read locally; in return an entry commits
 * only once every follower that may hold a lease has it. Each test names the rule it checks: a
 * grant never outlives the leader's lease (measured on the follower's clock, so a grant that
 * arrives late does not stretch it), a lost lease holder stalls commits only until its lease ends,
 * a transfer waits the leases out, any change of term or leader voids a lease, and with the option
 * off nothing of it is on the wire.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { Message } from "../../src/raft/types.js";
import type { NodeOptions, TestCluster } from "./harness.js";
import { cluster, clusterOf, cutBetween, drain, ET, read, settle, tickOnly, withLeader } from "./util.js";

const LEASES: NodeOptions = { followerReadLeases: true };
const DRIFT = 2; // the core's default leaseDriftTicks

const isGrant = (m: Message): boolean => (m.leaseTicks ?? 0) > 0;

/** A 3-node (or `ids`) cluster led by the first id, whose followers hold read leases. */
function leased(ids = ["a", "b", "c"], opts: NodeOptions = {}): TestCluster {
  const c = withLeader(ids, { ...LEASES, ...opts });
  settle(c, 2); // the first round brings the followers' clock readings, the second the grants
  for (const id of ids.slice(1)) {
    assert.equal(c.node(id).raw.status().followerLeaseValid, true, `${id} holds a read lease`);
  }
  return c;
}

/** The leader's tick until which it counts `id` as a lease holder. */
function holderUntil(c: TestCluster, leader: string, id: string): number {
  return c.raft(leader).progress.get(id)!.readLeaseUntil;
}

describe("follower read leases", () => {
  it("a follower holding a lease answers a lease read at once, sending nothing, at an index that covers every acknowledged write", () => {
    const c = leased();
    const res = c.propose("a", "x");
    assert.ok(res.ok);
    c.deliverAll();
    assert.equal(c.raft("a").log.committed, res.index, "x is acknowledged to its client");
    read(c, "b", 1, "lease");
    assert.deepEqual(c.queue, [], "no message: the read is served from the follower's lease");
    assert.deepEqual(c.node("b").readStates, [{ requestId: 1, index: res.index }]);
    assert.ok(c.raft("b").log.applied >= res.index, "b has applied x: the read can be served now");
  });

  it("a follower without a lease in force falls back to asking the leader (one round trip)", () => {
    const c = leased();
    // b's clock runs on, the leader's does not (no new grant), and b stays short of its election timeout.
    c.tick("b", ET - DRIFT - 1);
    c.drop(() => true);
    assert.equal(c.node("b").raw.status().followerLeaseValid, false);
    read(c, "b", 2, "lease");
    assert.deepEqual(
      c.queue.map((m) => [m.type, m.to, m.force]),
      [["readIndex", "a", true]],
    );
    c.deliverAll();
    assert.deepEqual(c.node("b").readStates, [{ requestId: 2, index: c.raft("a").log.committed }]);
  });

  it("a write does not commit while a lease holder lacks it, and commits once that lease has ended by the leader's clock", () => {
    const c = leased();
    const a = c.raft("a");
    cutBetween(c, "c", ["a", "b"]); // c holds a lease and hears nothing more
    const res = c.propose("a", "y");
    assert.ok(res.ok);
    c.deliverAll();
    assert.equal(a.progress.get("b")!.match, res.index, "a majority (a, b) holds y durably");
    const until = holderUntil(c, "a", "c");
    assert.ok(a.tickCount < until, "c may still hold a lease");
    assert.ok(a.log.committed < res.index, "y waits for c");
    let committedAt = -1;
    for (let i = 0; i <= ET && committedAt < 0; i++) {
      tickOnly(c, ["a", "b"], 1); // c is cut off, and its clock does not matter to the leader
      if (a.log.committed >= res.index) committedAt = a.tickCount;
      else assert.ok(a.tickCount < holderUntil(c, "a", "c"), "held back only while c may hold a lease");
    }
    assert.equal(committedAt, holderUntil(c, "a", "c"), "committed on the tick c's lease ended");
    assert.ok(
      committedAt - until < ET,
      "a lost lease holder stalls commits for less than an election timeout",
    );
    assert.deepEqual(c.appliedTexts("b"), ["y"]);
  });

  it("a learner may hold a lease too, and commits wait for it", () => {
    const c = clusterOf({ voters: ["a", "b", "c"], learners: ["l"] }, LEASES);
    assert.ok(c.elect("a"));
    settle(c, 2);
    assert.equal(c.node("l").raw.status().followerLeaseValid, true);
    read(c, "l", 1, "lease");
    assert.deepEqual(c.queue, []);
    assert.equal(c.node("l").readStates.length, 1);
    cutBetween(c, "l", ["a", "b", "c"]);
    const res = c.propose("a", "z");
    assert.ok(res.ok);
    c.deliverAll();
    assert.ok(c.raft("a").log.committed < res.index, "the voters have z, the learner does not");
    tickOnly(c, ["a", "b", "c"], ET);
    assert.equal(c.raft("a").log.committed, res.index, "committed once the learner's lease ended");
  });

  it("a lease holder removed from the configuration still holds commits back until its lease ends", () => {
    const c = leased(["a", "b", "c", "d"]);
    const a = c.raft("a");
    cutBetween(c, "d", ["a", "b", "c"]);
    const removal = a.proposeConfChange({ type: "remove", id: "d" });
    assert.ok(removal.ok);
    c.process("a");
    assert.equal(a.progress.has("d"), false, "d left the leader's progress at once");
    const res = c.propose("a", "w");
    assert.ok(res.ok);
    c.deliverAll();
    assert.ok(a.log.committed < removal.index, "d may still answer reads: nothing commits past its log");
    tickOnly(c, ["a", "b", "c"], ET);
    assert.equal(a.log.committed, res.index);
  });

  it("no grant before a new leader has committed an entry of its term", () => {
    // Until then its commit index may miss writes an earlier leader committed. Five voters: the
    // term's first entry reaches only b, so it cannot commit, while heartbeats to everyone keep
    // a's own lease valid and b answers as a follower in the replicate state.
    const c = cluster(["a", "b", "c", "d", "e"], LEASES);
    c.campaign("a");
    const a = c.raft("a");
    const blocked = (m: Message): boolean => m.type === "append" && m.from === "a" && m.to !== "b";
    let grants = 0;
    const seen = (m: Message): void => {
      if (m.from === "a" && isGrant(m)) grants++;
    };
    for (let i = 0; i < 3; i++) {
      drain(c, { hold: blocked, seen });
      c.tick("a");
    }
    drain(c, { hold: blocked, seen });
    assert.equal(a.role, "leader");
    assert.ok(a.log.committed < a.log.lastIndex(), "the term's first entry is not committed");
    assert.ok(a.leaseValid(), "a's own lease is valid");
    assert.equal(a.progress.get("b")!.state, "replicate");
    assert.ok(a.progress.get("b")!.clockReading !== null, "b's clock reading is known");
    assert.equal(grants, 0, "yet no grant");
    c.tick("a");
    drain(c, { seen });
    c.tick("a");
    drain(c, { seen });
    assert.equal(a.log.term(a.log.committed), a.term);
    assert.ok(grants > 0, "grants follow the first commit");
    assert.equal(c.node("b").raw.status().followerLeaseValid, true);
  });

  it("no grant while the leader's own lease is not valid, even to a follower that keeps answering", () => {
    // Five voters; only b still answers a: a's lease lapses (no quorum acknowledges it) while b's
    // clock readings stay fresh, and CheckQuorum has not yet made a step down.
    const c = leased(["a", "b", "c", "d", "e"]);
    const a = c.raft("a");
    cutBetween(c, "a", ["c", "d", "e"]);
    let grantsWhileValid = 0;
    let offersWhileInvalid = 0;
    for (let i = 0; i < 2 * ET && a.role === "leader"; i++) {
      c.tick("a");
      const valid = a.leaseValid();
      for (const m of c.queue) {
        if (m.from !== "a" || m.to !== "b" || m.leaseTicks === undefined) continue;
        if (valid && isGrant(m)) grantsWhileValid++;
        if (!valid) {
          assert.equal(
            isGrant(m),
            false,
            `grant at leader tick ${a.tickCount}, lease ended ${a.leaseExpiresAtTick()}`,
          );
          offersWhileInvalid++;
        }
      }
      c.deliverAll();
      c.tick("b");
      c.deliverAll();
    }
    assert.ok(grantsWhileValid > 0, "grants went on while the lease lasted");
    assert.ok(offersWhileInvalid > 0, "the lease lapsed before CheckQuorum made a step down");
  });

  it("no grant reaches beyond the leader's own lease, on the follower's clock", () => {
    const c = leased(["a", "b", "c"]);
    const a = c.raft("a");
    // The harness ticks every node in lockstep, so a follower's clock is the leader's plus a constant.
    const offset = (id: string): number => c.raft(id).tickCount - a.tickCount;
    let grants = 0;
    for (let round = 0; round < 3 * ET; round++) {
      c.tickAll(1);
      for (const m of c.queue) {
        if (m.from !== "a" || !isGrant(m)) continue;
        grants++;
        const endOnLeaderClock = m.leaseClock! + m.leaseTicks! - offset(m.to);
        assert.ok(
          endOnLeaderClock + DRIFT + 1 <= a.leaseExpiresAtTick(),
          `grant to ${m.to} ends at leader tick ${endOnLeaderClock}, lease ends at ${a.leaseExpiresAtTick()}`,
        );
        assert.ok(m.leaseTicks! <= ET - DRIFT - 1);
        assert.ok(holderUntil(c, "a", m.to) <= a.leaseExpiresAtTick(), "bookkeeping within the lease too");
        assert.ok(
          holderUntil(c, "a", m.to) >= endOnLeaderClock,
          "the leader counts the holder at least as long",
        );
      }
      // Some rounds lose b's answers: its readings go stale and its grants shrink, then stop.
      if (round % 5 === 0) c.drop((m) => m.from === "b");
      c.deliverAll();
    }
    assert.ok(grants > 20);
  });

  it("a grant that arrives late does not stretch the lease: a follower paused with it in its buffer refuses the read instead of answering stale", () => {
    for (const planted of [false, true]) {
      // With the planted bug the follower counts its lease from when the grant arrived.
      const c = leased(["a", "b", "c", "d", "e"], planted ? { bugs: { readLeaseFromReceipt: true } } : {});
      c.tickAll(1);
      const delayed = c.drop((m) => m.from === "a" && m.to === "b" && isGrant(m));
      assert.equal(delayed.length, 1);
      c.deliverAll();
      // The leader dies; b hears from nobody (its grant sits in a buffer); c, d, e elect c.
      c.crash("a");
      cutBetween(c, "b", ["c", "d", "e"]);
      tickOnly(c, ["b", "c", "d", "e"], ET);
      assert.ok(c.elect("c"));
      const x = c.propose("c", "x");
      assert.ok(x.ok);
      c.deliverAll();
      assert.equal(c.raft("c").log.committed, x.index, "x is acknowledged by the new leader");
      c.queue.push(delayed[0]!);
      c.deliverAll();
      read(c, "b", 1, "lease");
      const b = c.node("b");
      if (planted) {
        assert.equal(b.readStates.length, 1, "the bug: b serves the read from a lease it should not hold");
        assert.ok(b.readStates[0]!.index < x.index, "at an index without x: a stale read");
      } else {
        assert.deepEqual(b.readStates, [], "no lease: the read goes to the (dead) leader");
        assert.equal(b.raw.status().followerLeaseValid, false);
      }
    }
  });

  it("a restarted follower does not take a grant computed from a reading of its previous life", () => {
    const c = leased();
    c.tickAll(1);
    const grant = c.drop((m) => m.from === "a" && m.to === "b" && isGrant(m))[0]!;
    c.deliverAll();
    c.crash("b");
    c.restart("b");
    c.tick("b", grant.leaseClock!); // its new clock reaches the old reading's count
    c.drop(() => true);
    assert.equal(c.raft("b").term, grant.term, "same term: only the clock reading tells the lives apart");
    c.deliver(grant);
    assert.equal(c.node("b").raw.status().followerLeaseValid, false);
  });

  it("a leadership transfer stops granting and sends TimeoutNow only once every lease has ended", () => {
    const c = leased();
    const a = c.raft("a");
    const leasesEnd = Math.max(holderUntil(c, "a", "b"), holderUntil(c, "a", "c"));
    assert.ok(a.tickCount < leasesEnd);
    assert.ok(c.node("a").raw.transferLeadership("b").ok);
    c.process("a");
    let sentAt = -1;
    while (sentAt < 0 && a.tickCount < leasesEnd + ET) {
      assert.equal(c.queue.filter((m) => m.type === "timeoutNow").length, 0);
      assert.equal(c.queue.filter(isGrant).length, 0, "no grant once the transfer started");
      c.deliverAll();
      c.tickAll(1);
      if (c.queue.some((m) => m.type === "timeoutNow")) sentAt = a.tickCount;
    }
    assert.equal(sentAt, leasesEnd, "TimeoutNow on the tick the last lease ended");
    c.deliverAll();
    assert.deepEqual(c.leaders(), ["b"]);
  });

  it("a lease holder that keeps answering but holds an entry back for half an election timeout gets no grant for ten, so writes go on", () => {
    const c = leased();
    const a = c.raft("a");
    const res = c.propose("a", "slow");
    assert.ok(res.ok);
    // c receives everything and answers heartbeats (each with a fresh clock reading), but its
    // acknowledgements of appends are lost: a live member that never catches up.
    const lostAck = (m: Message) => m.from === "c" && m.type === "appendResp";
    const grantsToC = () => {
      let n = 0;
      return {
        seen: (m: Message) => {
          if (m.to === "c" && isGrant(m)) n++;
        },
        count: () => n,
      };
    };
    drain(c, { hold: lostAck });
    assert.ok(a.log.committed < res.index, "the entry waits for c, which holds a lease");
    const start = a.tickCount;
    let committedAt = -1;
    const before = grantsToC();
    for (let i = 0; i < 4 * ET && committedAt < 0; i++) {
      c.tickAll(1);
      drain(c, { hold: lostAck, seen: before.seen });
      if (a.log.committed >= res.index) committedAt = a.tickCount;
    }
    assert.ok(committedAt > 0, "the entry committed without c");
    assert.ok(
      committedAt - start <= ET / 2 + ET + 2,
      `held back ${committedAt - start} ticks: half an election timeout to bar c, then at most its last lease`,
    );
    assert.ok(before.count() > 0, "c was still granted while it was not yet barred");
    const barred = a.progress.get("c")!.leaseBarredUntil;
    assert.ok(barred >= committedAt + 8 * ET, "c is barred for about ten election timeouts");
    assert.ok(!(a.tickCount < a.progress.get("b")!.leaseBarredUntil), "b, which keeps up, is never barred");

    // c recovers at once, but gets no grant (and holds nothing back) until the bar ends.
    const during = grantsToC();
    while (a.tickCount < barred - 1) {
      c.tickAll(1);
      c.propose("a", "w");
      drain(c, { seen: during.seen });
    }
    assert.equal(during.count(), 0, "no grant to c while barred");
    assert.equal(c.node("c").raw.status().followerLeaseValid, false);
    assert.equal(a.log.committed, a.log.lastIndex(), "writes commit at the majority's pace");
    settle(c, 3);
    assert.equal(c.node("c").raw.status().followerLeaseValid, true, "granted again once the bar ended");
  });

  it("a change of term or of leader, or becoming a candidate, voids a follower's lease", () => {
    const c = leased();
    const b = c.node("b").raw;
    const term = b.raft.term;
    // A message of a higher term (here a transfer's forced vote, which a lease does not stop).
    b.step({ type: "vote", from: "c", to: "b", term: term + 1, index: 99, logTerm: term, force: true });
    assert.equal(b.raft.term, term + 1);
    assert.equal(b.status().followerLeaseValid, false);
    read(c, "b", 1, "lease");
    assert.deepEqual(c.node("b").readStates, [{ requestId: 1, index: -1 }], "no leader known: refused");

    const d = leased();
    const dc = d.node("c").raw;
    dc.campaign(); // PreVote: term unchanged, leader forgotten
    assert.equal(dc.raft.role, "preCandidate");
    assert.equal(dc.status().followerLeaseValid, false);
  });

  it("option off: no lease field on the wire, and a follower's lease read asks the leader", () => {
    const c = withLeader(["a", "b", "c"]);
    const seen: Message[] = [];
    for (let i = 0; i < 5; i++) {
      c.tickAll(1);
      c.propose("a", `v${i}`);
      drain(c, { seen: (m) => seen.push(m) });
    }
    assert.ok(seen.length > 20);
    for (const m of seen) {
      for (const k of ["leaseTicks", "leaseClock", "leaseNonce", "leaseCommit"]) {
        assert.equal(k in m, false, `${m.type} carries ${k}`);
      }
    }
    assert.equal(c.node("b").raw.status().followerLeaseValid, false);
    read(c, "b", 1, "lease");
    assert.deepEqual(
      c.queue.map((m) => m.type),
      ["readIndex"],
    );
  });
});
