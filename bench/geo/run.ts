/**
 * bench/geo: a 3-node Ballot cluster in three emulated regions — RTTs 70 ms (A–B), 150 ms (A–C),
 * 220 ms (B–C), every peer link and client path through a userspace delaying proxy
 * (test/lib/wan.ts) on loopback; timing from the largest RTT (heartbeat 300 ms, election timeout
 * 3000 ms, docs/geo.md). The leader is moved to n1 (region A) for the latency figures.
 *
 *   npm run bench:geo -- [--writes 200] [--reads 30] [--trials 10] [--seconds 10]
 *
 * Reports (and writes bench/results/geo.json):
 * - write latency p50/p99 for a client in each region writing through its own region's node
 *   (at the leader in A; through a follower in B or C, which answers 307 and the client follows);
 * - read latency per consistency level (local, lease, linearizable) per region, from the
 *   client's own region's node;
 * - writes/s with 64 concurrent connections at the leader (autocannon, as bench/http);
 * - a second cluster, started with --follower-read-leases: write latency at the leader and lease reads per
 *   region (answered locally on every member);
 * - failover on region loss, `trials` times each way: all members of the leader's region SIGKILLed,
 *   and the region cut off; time until the survivors agree on a leader, and until a client in
 *   another region has a write acknowledged, and how many terms (election rounds: a split vote
 *   costs one) it took; every acknowledged write is checked afterwards. The lost region is
 *   whichever leads at the time (trial 1: A).
 */

import { writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { parseArgs } from "node:util";
import { sleep } from "../../test/integration/procs.js";
import {
  failoverBoundMs,
  GeoCluster,
  percentile,
  RegionWriters,
  timedCall,
} from "../../test/lib/geo-cluster.js";
import { describeMachine } from "../machine.js";

const { values } = parseArgs({
  options: {
    writes: { type: "string", default: "200" },
    reads: { type: "string", default: "30" },
    trials: { type: "string", default: "10" },
    seconds: { type: "string", default: "10" },
  },
});
const WRITES = Number(values.writes);
const READS = Number(values.reads);
const TRIALS = Number(values.trials);
const SECONDS = Number(values.seconds);

const REGIONS = { A: ["n1"], B: ["n2"], C: ["n3"] };
const RTT = { "A-B": 70, "A-C": 150, "B-C": 220 };
const value = "v".repeat(100);
const log = (s: string) => process.stderr.write(`${s}\n`);
const round = (x: number) => Math.round(x * 10) / 10;

interface AutocannonResult {
  requests: { average: number };
  latency: { p50: number; p99: number };
  non2xx: number;
  errors: number;
  timeouts: number;
}
type Autocannon = (opts: Record<string, unknown>) => Promise<AutocannonResult>;
const autocannon = createRequire(import.meta.url)("autocannon") as Autocannon;

function summary(ms: number[]) {
  return {
    samples: ms.length,
    p50Ms: round(percentile(ms, 50)),
    p99Ms: round(percentile(ms, 99)),
    minMs: round(Math.min(...ms)),
    maxMs: round(Math.max(...ms)),
  };
}

async function writes(g: GeoCluster, region: string, n: number, tag: string) {
  const id = g.nodesIn(region)[0]!;
  const ms: number[] = [];
  for (let i = 0; i < n; i++) {
    const r = await timedCall(
      `${g.clientUrl(region, id)}/v1/kv/bench/${tag}/${i % 100}`,
      "PUT",
      { value },
      true,
    );
    if (r.status !== 200) throw new Error(`write from ${region}: ${r.status} ${JSON.stringify(r.body)}`);
    ms.push(r.ms);
  }
  return ms;
}

async function reads(g: GeoCluster, region: string, consistency: string, n: number) {
  const id = g.nodesIn(region)[0]!;
  const ms: number[] = [];
  for (let i = 0; i < n; i++) {
    const r = await timedCall(
      `${g.clientUrl(region, id)}/v1/kv/bench/w/${i % 20}?consistency=${consistency}`,
    );
    if (r.status !== 200)
      throw new Error(`read ${consistency} in ${region}: ${r.status} ${JSON.stringify(r.body)}`);
    ms.push(r.ms);
  }
  return ms;
}

/** Waits until every member has every acknowledged write (local reads) and one leader is agreed. */
async function settle(g: GeoCluster, w: RegionWriters): Promise<void> {
  const deadline = Date.now() + 60_000;
  for (const id of g.ids) {
    for (;;) {
      const lost = await w.lost(g.url(id), "local").catch(() => ["?"]);
      if (lost.length === 0) break;
      if (Date.now() > deadline) throw new Error(`${id} did not catch up\n${g.tail()}`);
      await sleep(200);
    }
  }
  await g.waitForLeader(30_000);
}

interface Trial {
  readonly kind: "stopped" | "cut";
  readonly lostRegion: string;
  readonly oldLeader: string;
  readonly newLeader: string;
  readonly survivorsRttMs: number;
  /** Terms the election took: 1, or more after split votes. */
  readonly rounds: number;
  readonly electedMs: number;
  readonly firstWriteMs: number;
  /** rounds × (2 election timeouts + 2 RTTs): until the survivors have a leader. */
  readonly electionBoundMs: number;
  /** electionBoundMs + 1 RTT: until the new leader's first commit (a client's write also needs its path to the leader). */
  readonly boundMs: number;
  readonly acknowledged: number;
  readonly lost: number;
}

async function failover(g: GeoCluster, kind: "stopped" | "cut", trial: number): Promise<Trial> {
  // Whoever leads now loses its region, as in a real run of failures: the previous trial's lost
  // member is back (restarted, or healed), which is when split votes used to be likeliest (its peer
  // streams were opened lazily; now every member dials every other at start).
  const old = await g.waitForLeader();
  const region = g.regionOf(old);
  const others = g.regionNames.filter((r) => r !== region);
  const survivorsRttMs = g.rtt(others[0]!, others[1]!)!;
  const oldTerm = (await g.status(old)).term as number;
  const w = new RegionWriters(g, `failover/${kind}/${trial}`);
  await sleep(1500);
  const t0 = Date.now();
  if (kind === "stopped") await g.stopRegion(region);
  else g.cutRegion(region);
  const newLeader = await g.waitForLeader(60_000, g.nodesIn(region));
  const electedMs = Date.now() - t0;
  const rounds = ((await g.status(newLeader)).term as number) - oldTerm;
  const ack = await w.waitAckSentAfter(t0, 60_000, others);
  await sleep(500);
  await w.stop();
  const lost = await w.lost(g.url(newLeader));
  if (kind === "stopped") await g.restartRegion(region);
  else g.healRegion(region);
  await settle(g, w);
  const t: Trial = {
    kind,
    lostRegion: region,
    oldLeader: old,
    newLeader,
    survivorsRttMs,
    rounds,
    electedMs,
    firstWriteMs: ack.ackedAt - t0,
    electionBoundMs: failoverBoundMs(g.timing, survivorsRttMs, 0, rounds) - survivorsRttMs,
    boundMs: failoverBoundMs(g.timing, survivorsRttMs, 0, rounds),
    acknowledged: w.acks.length,
    lost: lost.length,
  };
  log(
    `failover ${kind} ${trial + 1}/${TRIALS}: region ${region} (${old}) lost → ${newLeader} elected ${t.electedMs} ms in ${t.rounds} round(s) ` +
      `(bound ${t.electionBoundMs} ms), first write ${t.firstWriteMs} ms, ${t.acknowledged} acknowledged, ${t.lost} lost`,
  );
  if (lost.length > 0) throw new Error(`acknowledged writes lost: ${lost.slice(0, 5).join(", ")}`);
  return t;
}

async function followerLeasePhase() {
  const f = await GeoCluster.start({
    regions: REGIONS,
    rttMs: RTT,
    seed: 2,
    extraArgs: ["--follower-read-leases"],
  });
  try {
    await f.moveLeader("n1");
    await writes(f, "A", 20, "warmup");
    const w = summary(await writes(f, "A", WRITES, "wA"));
    log(`follower read leases: write at the leader p50 ${w.p50Ms} ms, p99 ${w.p99Ms} ms`);
    await writes(f, "A", 20, "w");
    const readRows = [];
    for (const region of f.regionNames) {
      const row = {
        clientRegion: region,
        node: f.nodesIn(region)[0],
        role: region === "A" ? "leader" : "follower",
        consistency: "lease",
        ...summary(await reads(f, region, "lease", READS)),
      };
      log(`follower read leases: lease read in ${region}: p50 ${row.p50Ms} ms, p99 ${row.p99Ms} ms`);
      readRows.push(row);
    }
    return {
      flag: "--follower-read-leases",
      writeAtLeader: { clientRegion: "A", via: "n1", ...w },
      reads: readRows,
    };
  } finally {
    await f.stop();
  }
}

const started = Date.now();
const g = await GeoCluster.start({ regions: REGIONS, rttMs: RTT, seed: 1 });
const out: Record<string, unknown> = {
  description:
    "3 ballot start processes in 3 emulated regions on one machine: every peer link and client path through a userspace proxy adding the one-way latency (test/lib/wan.ts); clients in a region reach their own region's node with no added latency",
  date: new Date().toISOString(),
  machine: describeMachine(),
  map: { regions: REGIONS, rttMs: RTT },
  timing: g.timing,
};
try {
  await g.moveLeader("n1");
  log(`leader n1 in A; timing ${JSON.stringify(g.timing)}`);
  await writes(g, "A", 20, "warmup");

  const writeRows = [];
  for (const region of g.regionNames) {
    const ms = await writes(g, region, region === "A" ? WRITES : Math.ceil(WRITES / 2), `w${region}`);
    const row = {
      clientRegion: region,
      via: g.nodesIn(region)[0],
      path: region === "A" ? "at the leader" : "307 from the local follower, followed to the leader",
      ...summary(ms),
    };
    log(`write from ${region}: p50 ${row.p50Ms} ms, p99 ${row.p99Ms} ms`);
    writeRows.push(row);
  }
  out.writes = writeRows;
  await writes(g, "A", 20, "w"); // keys bench/w/0..19 for the reads

  const readRows = [];
  for (const region of g.regionNames)
    for (const consistency of ["local", "lease", "linearizable"]) {
      const ms = await reads(g, region, consistency, READS);
      const row = {
        clientRegion: region,
        node: g.nodesIn(region)[0],
        role: region === "A" ? "leader" : "follower",
        consistency,
        ...summary(ms),
      };
      log(`read ${consistency} in ${region}: p50 ${row.p50Ms} ms, p99 ${row.p99Ms} ms`);
      readRows.push(row);
    }
  out.reads = readRows;

  const r = await autocannon({
    url: `${g.clientUrl("A", "n1")}/v1/kv/bench/load`,
    connections: 64,
    duration: SECONDS,
    method: "PUT",
    body: JSON.stringify({ value }),
    headers: { "content-type": "application/json" },
  });
  out.throughput = {
    connections: 64,
    seconds: SECONDS,
    at: "the leader (n1, region A), client in A",
    writesPerSec: Math.round(r.requests.average),
    p50Ms: r.latency.p50,
    p99Ms: r.latency.p99,
    non2xx: r.non2xx,
    errors: r.errors + r.timeouts,
  };
  log(`64 connections at the leader: ${Math.round(r.requests.average)} writes/s, p50 ${r.latency.p50} ms`);

  // The same cluster shape with follower read leases: lease reads answer locally on every member,
  // and writes wait for every lease holder (the farthest member) instead of the nearest majority.
  out.followerReadLeases = await followerLeasePhase();

  const trials: Trial[] = [];
  for (const kind of ["stopped", "cut"] as const)
    for (let i = 0; i < TRIALS; i++) trials.push(await failover(g, kind, i));
  const by = (kind: string) => {
    const t = trials.filter((x) => x.kind === kind);
    return {
      kind,
      trials: t.length,
      electedMs: summary(t.map((x) => x.electedMs)),
      firstWriteMs: summary(t.map((x) => x.firstWriteMs)),
      splitVotes: t.filter((x) => x.rounds > 1).length,
      oneRound: summary(t.filter((x) => x.rounds === 1).map((x) => x.firstWriteMs)),
      electedWithinBound: t.filter((x) => x.electedMs <= x.electionBoundMs).length,
      acknowledged: t.reduce((s, x) => s + x.acknowledged, 0),
      lost: t.reduce((s, x) => s + x.lost, 0),
    };
  };
  out.failover = { summary: [by("stopped"), by("cut")], trials };
} finally {
  await g.stop();
}
out.runSeconds = Math.round((Date.now() - started) / 1000);
writeFileSync(
  new URL("../../../bench/results/geo.json", import.meta.url),
  `${JSON.stringify(out, null, 2)}\n`,
);
console.log(
  JSON.stringify(
    {
      writes: out.writes,
      throughput: out.throughput,
      followerReadLeases: out.followerReadLeases,
      failover: (out.failover as { summary: unknown }).summary,
    },
    null,
    2,
  ),
);
