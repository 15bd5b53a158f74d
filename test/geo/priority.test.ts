/**
 * Active–passive across regions with --priority: five members in three regions, 2-2-1 (primary
 * data centre A, standby B, a tie-breaker in C), A's members preferred. The primary data centre
 * leads when it is healthy; losing its preferred member moves leadership to the other member in
 * A; losing all of A elects a leader at once (elections never wait for the preferred member) and
 * leadership settles in B, not on the tie-breaker; once A is back and caught up, leadership
 * returns to n1. Clients in every region write throughout, and no acknowledged write is lost.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { sleep } from "../integration/procs.js";
import { failoverBoundMs, GeoCluster, RegionWriters } from "../lib/geo-cluster.js";

/** Election rounds (a split vote costs one) before the test calls it a failure. */
const MAX_ROUNDS = 6;
const PRIORITY: Record<string, number> = { n1: 10, n2: 9, n3: 5, n4: 5, n5: 0 };

describe("geo: leader placement with --priority, 2-2-1 in three regions", { timeout: 150_000 }, () => {
  let g: GeoCluster;
  let w: RegionWriters;
  before(async () => {
    g = await GeoCluster.start({
      regions: { A: ["n1", "n2"], B: ["n3", "n4"], C: ["n5"] },
      rttMs: { "A-B": 30, "A-C": 60, "B-C": 60 },
      nodeArgs: (id) => ["--priority", String(PRIORITY[id])],
      seed: 5,
    });
    w = new RegionWriters(g, "placement", g.regionNames, 100);
  });
  after(async () => {
    await w?.stop();
    await g?.stop();
  });

  /** Waits until every live node agrees that one of `ids` leads; returns who and how long it took. */
  const leaderAmong = async (ids: string[], timeoutMs: number): Promise<{ id: string; ms: number }> => {
    const started = Date.now();
    while (Date.now() - started < timeoutMs) {
      const l = await g.waitForLeader(timeoutMs).catch(() => null);
      if (l && ids.includes(l)) return { id: l, ms: Date.now() - started };
      await sleep(100);
    }
    throw new Error(`no leader among ${ids} within ${timeoutMs} ms\n${g.tail()}`);
  };

  it("timing from the largest RTT (60 ms → the 70 ms row)", () => {
    assert.deepEqual(g.timing, { heartbeatMs: 100, electionTimeoutMs: 1000 });
  });

  it("the preferred member of the primary data centre leads once healthy, even after leadership is moved to the tie-breaker by hand", async () => {
    await leaderAmong(["n1"], 30_000);
    await g.moveLeader("n5");
    const moved = Date.now();
    await leaderAmong(["n1"], 30_000);
    console.log(`# placement: leadership moved to n5 by hand, back on n1 after ${Date.now() - moved} ms`);
  });

  it("losing n1 alone: the other member of A leads; n1 leads again after it recovers", async () => {
    const oldTerm = (await g.status("n1")).term as number;
    const t0 = Date.now();
    await g.signal("n1", "SIGKILL");
    const first = await g.waitForLeader(failoverBoundMs(g.timing, 60, 1500, MAX_ROUNDS), ["n1"]);
    const electedMs = Date.now() - t0;
    const rounds = ((await g.status(first)).term as number) - oldTerm;
    console.log(`# placement: n1 killed, ${first} elected after ${electedMs} ms (${rounds} round(s))`);
    assert.ok(electedMs <= failoverBoundMs(g.timing, 60, 1500, rounds), `election took ${electedMs} ms`);
    // A leader of a new term lets it settle (five election timeouts) before handing over.
    const a = await leaderAmong(["n2"], 15 * g.timing.electionTimeoutMs);
    console.log(`# placement: n2 (A) leads ${Date.now() - t0} ms after n1 died`);
    assert.equal(a.id, "n2");
    const restarted = Date.now();
    g.spawn("n1");
    await leaderAmong(["n1"], 30_000);
    console.log(`# placement: leadership back on n1 ${Date.now() - restarted} ms after it restarted`);
  });

  it("losing region A: a leader at once, then one in B (not the tie-breaker); back to n1 when A recovers", async () => {
    const rtt = g.rtt("B", "C")!;
    const oldTerm = (await g.status("n1")).term as number;
    const t0 = Date.now();
    await g.stopRegion("A");
    const first = await g.waitForLeader(failoverBoundMs(g.timing, rtt, 1500, MAX_ROUNDS), ["n1", "n2"]);
    const electedMs = Date.now() - t0;
    const rounds = ((await g.status(first)).term as number) - oldTerm;
    const bound = failoverBoundMs(g.timing, rtt, 1500, rounds);
    console.log(
      `# placement: region A lost, ${first} elected after ${electedMs} ms (${rounds} round(s), bound ${bound} ms)`,
    );
    const b = await leaderAmong(["n3", "n4"], 15 * g.timing.electionTimeoutMs + bound);
    console.log(`# placement: ${b.id} (B) leads ${Date.now() - t0} ms after A was lost`);
    const ack = await w.waitAckSentAfter(t0, bound, ["B", "C"]);
    assert.ok(
      ack.ackedAt - t0 <= bound,
      `first write after the loss acknowledged after ${ack.ackedAt - t0} ms`,
    );
    const restarted = Date.now();
    await g.restartRegion("A");
    await leaderAmong(["n1"], 30_000);
    console.log(`# placement: leadership back on n1 ${Date.now() - restarted} ms after region A restarted`);
    const all = g.ids.flatMap((id) => g.logs.get(id) ?? []).join("\n");
    assert.match(all, /handing leadership to n1: its priority 10 is above this node's/);
  });

  it("no acknowledged write was lost", async () => {
    await w.stop();
    assert.ok(w.acks.length > 50, `only ${w.acks.length} writes acknowledged`);
    assert.deepEqual(await w.lost(g.url(await g.waitForLeader())), []);
  });
});
