/**
 * Losing the leader's region under the 70/150/220 ms map (±10 % jitter), with a client in every
 * region writing all along: when all its members stop, and when it is cut off while they run, the
 * other regions elect a leader and commit again within the bound docs/geo.md gives for the map
 * (2 election timeouts + 3 RTTs among the survivors per election round — a split vote spends a
 * term and costs another round of 2 election timeouts + 2 RTTs), no acknowledged write is lost,
 * and the region rejoins and catches up once it is back.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { sleep } from "../integration/procs.js";
import { failoverBoundMs, GeoCluster, RegionWriters } from "../lib/geo-cluster.js";

/** Election rounds before the test calls it a failure (a split vote, which costs a round, is not rare: docs/geo.md). */
const MAX_ROUNDS = 6;

async function caughtUp(g: GeoCluster, w: RegionWriters, id: string, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const lost = await w.lost(g.url(id), "local").catch(() => ["?"]);
    if (lost.length === 0) return;
    if (Date.now() > deadline)
      assert.fail(`${id} still lacks ${lost.length} acknowledged writes\n${g.tail()}`);
    await sleep(200);
  }
}

describe("geo: losing the leader's region (70/150/220 ms, ±10 % jitter)", { timeout: 150_000 }, () => {
  let g: GeoCluster;
  before(async () => {
    g = await GeoCluster.start({
      regions: { A: ["n1"], B: ["n2"], C: ["n3"] },
      rttMs: { "A-B": 70, "A-C": 150, "B-C": 220 },
      jitterPct: 10,
      seed: 11,
    });
  });
  after(async () => {
    await g?.stop();
  });

  it("all of its members stopped: a new leader commits within the bound, nothing acknowledged is lost", async () => {
    // The leader in A leaves B and C, the farthest pair (220 ms), to elect: the slowest case.
    await g.moveLeader("n1");
    const rtt = g.rtt("B", "C")!;
    const oldTerm = (await g.status("n1")).term as number;
    const w = new RegionWriters(g, "stopped");
    await sleep(2000);
    const t0 = Date.now();
    await g.stopRegion("A");
    const leader = await g.waitForLeader(failoverBoundMs(g.timing, rtt, 1500, MAX_ROUNDS), ["n1"]);
    const electedMs = Date.now() - t0;
    // A split vote spends a term and costs another round: the bound is per round.
    const rounds = ((await g.status(leader)).term as number) - oldTerm;
    const bound = failoverBoundMs(g.timing, rtt, 1500, rounds);
    const ack = await w.waitAckSentAfter(t0, bound, ["B", "C"]);
    console.log(
      `# region A stopped: ${leader} leads after ${electedMs} ms (${rounds} election round(s)), first write acknowledged after ${ack.ackedAt - t0} ms (bound ${bound} ms)`,
    );
    assert.ok(rounds >= 1 && rounds <= MAX_ROUNDS, `${rounds} rounds`);
    assert.ok(ack.ackedAt - t0 <= bound, `failover took ${ack.ackedAt - t0} ms`);
    await sleep(1000);
    await w.stop();
    assert.ok(w.acks.filter((a) => a.sentAt < t0).length > 0, "writes were acknowledged before the loss");
    assert.deepEqual(await w.lost(g.url(leader)), [], "acknowledged writes lost");
    await g.restartRegion("A");
    await caughtUp(g, w, "n1");
    assert.equal(await g.waitForLeader(), leader, "the restarted region does not disturb the leader");
  });

  it("cut off while its members run: the old leader steps down, a new one commits within the bound, nothing acknowledged is lost", async () => {
    const old = await g.waitForLeader();
    const region = g.regionOf(old);
    const others = g.regionNames.filter((r) => r !== region);
    const rtt = g.rtt(others[0]!, others[1]!)!;
    const oldTerm = (await g.status(old)).term as number;
    const w = new RegionWriters(g, "cut");
    await sleep(2000);
    const t0 = Date.now();
    g.cutRegion(region);
    const leader = await g.waitForLeader(failoverBoundMs(g.timing, rtt, 1500, MAX_ROUNDS), g.nodesIn(region));
    const electedMs = Date.now() - t0;
    const rounds = ((await g.status(leader)).term as number) - oldTerm;
    const bound = failoverBoundMs(g.timing, rtt, 1500, rounds);
    const ack = await w.waitAckSentAfter(t0, bound, others);
    console.log(
      `# region ${region} (leader ${old}) cut off: ${leader} leads after ${electedMs} ms (${rounds} election round(s)), first write acknowledged after ${ack.ackedAt - t0} ms (bound ${bound} ms)`,
    );
    assert.ok(rounds >= 1 && rounds <= MAX_ROUNDS, `${rounds} rounds`);
    assert.ok(ack.ackedAt - t0 <= bound, `failover took ${ack.ackedAt - t0} ms`);
    // CheckQuorum: the cut-off leader gives up by itself within about an election timeout.
    const deadline = Date.now() + 3 * g.timing.electionTimeoutMs;
    while ((await g.status(old))?.leader?.id === old) {
      assert.ok(Date.now() < deadline, `${old} still believes it leads while cut off`);
      await sleep(100);
    }
    await sleep(1000);
    await w.stop();
    assert.ok(
      w.acks.every((a) => a.region !== region || a.sentAt < t0),
      "a client in the cut-off region got a write acknowledged",
    );
    assert.deepEqual(await w.lost(g.url(leader)), [], "acknowledged writes lost");
    g.healRegion(region);
    await caughtUp(g, w, old);
    assert.equal(await g.waitForLeader(), leader);
  });
});
