/**
 * bench/partitions: what partitioning buys on this machine, and what idle partitions cost. For
 * each partition count, three `ballot start --partitions P` processes on loopback; one driver
 * keeps K writes of 100-byte values over 1,000 keys in flight through undici Pools, each write
 * sent straight to its partition's leader (the partition computed from the key by the cluster's
 * rule, as a partition-aware client would), one request per write; the counts interleaved per
 * round. Then the idle cost: three nodes of many partitions, doing nothing, sampled for CPU and
 * RSS from /proc. Reports writes/s and p99 per count, the ratio to one partition, and the idle
 * figures per node.
 *
 * Usage: npm run bench:partitions [-- --counts 1,4,16,64] [--k 256] [--seconds S] [--rounds N]
 *        [--idle 1000] [--idle-seconds S]     (writes bench/results/partitions.json)
 */
import { readFileSync, writeFileSync } from "node:fs";
import { Pool } from "undici";
import { Partitioner } from "../../src/kv/partitioner.js";
import { ProcCluster, sleep } from "../../test/integration/procs.js";
import { describeMachine } from "../machine.js";

function arg(name: string): string | undefined {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1] : undefined;
}
const counts = (arg("counts") ?? "1,4,16,64").split(",").map(Number);
const k = Number(arg("k") ?? 256);
const seconds = Number(arg("seconds") ?? 5);
const rounds = Number(arg("rounds") ?? 2);
const idleCount = Number(arg("idle") ?? 1000);
const idleSeconds = Number(arg("idle-seconds") ?? 10);
const KEYS = 1000;
const value = JSON.stringify({ value: "v".repeat(100) });

interface PartitionView {
  id: number;
  leader: { id: string; url: string | null } | null;
}

async function cluster(p: number): Promise<ProcCluster> {
  const c = await ProcCluster.start({ extraArgs: p > 1 ? ["--partitions", String(p)] : [] });
  // Every partition led, and led by the member it is balanced to (or 20 s passed).
  const until = Date.now() + 20_000;
  while (Date.now() < until) {
    const r = (await (await fetch(`${c.url(c.ids[0]!)}/v1/cluster`)).json()) as {
      leader: { id: string } | null;
      partitions?: PartitionView[];
    };
    const parts = r.partitions ?? [{ id: 0, leader: r.leader ? { id: r.leader.id, url: null } : null }];
    if (parts.every((x) => x.leader !== null && (p === 1 || x.leader.id === c.ids[x.id % c.ids.length])))
      break;
    await sleep(200);
  }
  return c;
}

async function leaders(c: ProcCluster): Promise<string[]> {
  const r = (await (await fetch(`${c.url(c.ids[0]!)}/v1/cluster`)).json()) as {
    leader: { id: string };
    partitions?: PartitionView[];
  };
  return r.partitions ? r.partitions.map((x) => x.leader?.id ?? r.leader.id) : [r.leader.id];
}

async function drive(
  c: ProcCluster,
  p: number,
): Promise<{ opsPerSec: number; p50Ms: number; p99Ms: number; errors: number; redirects: number }> {
  const part = new Partitioner(p);
  const lead = await leaders(c);
  const pools = new Map(
    c.ids.map((id) => [id, new Pool(c.url(id), { connections: k, keepAliveTimeout: 60_000 })]),
  );
  const lat: number[] = [];
  let errors = 0;
  let redirects = 0;
  let n = 0;
  const end = performance.now() + seconds * 1000;
  await Promise.all(
    Array.from({ length: k }, async () => {
      while (performance.now() < end) {
        const key = `k${n++ % KEYS}`;
        const t = performance.now();
        const r = await pools.get(lead[part.of(key)]!)!.request({
          path: `/v1/kv/${key}`,
          method: "PUT",
          headers: { "content-type": "application/json" },
          body: value,
        });
        await r.body.text();
        if (r.statusCode === 200) lat.push(performance.now() - t);
        else if (r.statusCode === 307) redirects++;
        else errors++;
      }
    }),
  );
  for (const pool of pools.values()) await pool.close();
  lat.sort((a, b) => a - b);
  const q = (x: number) =>
    Math.round((lat[Math.min(lat.length - 1, Math.floor(x * lat.length))] ?? 0) * 100) / 100;
  return { opsPerSec: Math.round(lat.length / seconds), p50Ms: q(0.5), p99Ms: q(0.99), errors, redirects };
}

/** How many partitions each member reports quiet (GET /v1/cluster). */
async function quietCounts(c: ProcCluster): Promise<number[]> {
  return Promise.all(
    c.ids.map(async (id) => {
      const r = await fetch(`${c.url(id)}/v1/cluster`);
      const body = (await r.json()) as { partitions?: { quiet?: boolean }[] };
      return (body.partitions ?? []).filter((p) => p.quiet).length;
    }),
  );
}

/** CPU ticks (user + system) and RSS of a process, from /proc. */
function sample(pid: number): { ticks: number; rssMb: number } {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  const ticks = Number(fields[11]) + Number(fields[12]);
  const rss = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  return { ticks, rssMb: Math.round(Number(rss?.[1] ?? 0) / 1024) };
}

const out: Record<string, unknown> = {
  benchmark: "partitions",
  description: `3 members on one machine, ballot start --partitions P (hash rule); one driver keeps K=${k} writes of 100-byte values over ${KEYS} keys in flight, each sent to its partition's leader through undici Pools, one request per write; ${seconds} s per run, ${rounds} rounds, counts interleaved. Idle: 3 members of ${idleCount} partitions doing nothing for ${idleSeconds} s, CPU and RSS per process from /proc, and the same for one partition as the baseline of any idle member`,
  date: new Date().toISOString(),
  machine: describeMachine(),
};
const runs: Record<
  string,
  { opsPerSec: number; p50Ms: number; p99Ms: number; errors: number; redirects: number }[]
> = {};
for (let round = 0; round < rounds; round++) {
  for (const p of counts) {
    const c = await cluster(p);
    try {
      const before = await leaders(c);
      const f = await drive(c, p);
      const after = await leaders(c);
      const list = runs[String(p)] ?? [];
      list.push(f);
      runs[String(p)] = list;
      console.log(
        `round ${round + 1}, ${p} partition(s): ${f.opsPerSec} w/s, p50 ${f.p50Ms} ms, p99 ${f.p99Ms} ms, errors ${f.errors}, 307s ${f.redirects}${before.join() === after.join() ? "" : " (leaders moved)"}`,
      );
    } finally {
      await c.stop();
    }
  }
}
const best = (p: number) => Math.max(...(runs[String(p)] ?? []).map((f) => f.opsPerSec));
out.writes = Object.fromEntries(
  counts.map((p) => [
    String(p),
    {
      runs: runs[String(p)],
      best: best(p),
      vsOnePartition: Math.round((best(p) / best(counts[0]!)) * 100) / 100,
    },
  ]),
);

// Idle cost: `count` partitions per member doing nothing, after they went quiet.
async function idleCost(count: number): Promise<Record<string, unknown>> {
  const startedAt = Date.now();
  const idle = await ProcCluster.start({ extraArgs: count > 1 ? ["--partitions", String(count)] : [] });
  try {
    const startMs = Date.now() - startedAt;
    // Elections and balancing settle, then idle partitions go quiet (all but partition 0).
    const settleStart = Date.now();
    await sleep(1000);
    let quiet = await quietCounts(idle);
    while (quiet.some((q) => q < count - 1) && Date.now() - settleStart < 60_000) {
      await sleep(1000);
      quiet = await quietCounts(idle);
    }
    const settleMs = Date.now() - settleStart;
    const pids = idle.ids.map((id) => idle.procs.get(id)!.pid!);
    const a = pids.map(sample);
    const t0 = performance.now();
    await sleep(idleSeconds * 1000);
    const b = pids.map(sample);
    const elapsed = (performance.now() - t0) / 1000;
    const hz = 100; // USER_HZ on Linux
    const quietAfter = await quietCounts(idle);
    const result = {
      partitions: count,
      startMs,
      quietAfterMs: settleMs,
      quietPartitions: { before: quiet, after: quietAfter },
      perNode: idle.ids.map((id, i) => ({
        id,
        cpuPercentOfCore: Math.round(((b[i]!.ticks - a[i]!.ticks) / hz / elapsed) * 1000) / 10,
        rssMb: b[i]!.rssMb,
      })),
    };
    console.log(`idle, ${count} partition(s) per node (started in ${startMs} ms):`, JSON.stringify(result));
    return result;
  } finally {
    await idle.stop();
  }
}
// The same members with one partition, in the same run: what any idle member costs (its tick
// timer, partition 0's heartbeats), against which the many partitions' cost is read.
out.idleOnePartition = await idleCost(1);
out.idle = await idleCost(idleCount);
writeFileSync(
  new URL("../../../bench/results/partitions.json", import.meta.url),
  `${JSON.stringify(out, null, 2)}\n`,
);
console.log(JSON.stringify(out.writes, null, 2));
