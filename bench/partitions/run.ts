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
 *        [--member-cpu F]  (each member capped at F of a core through a cgroup: the members stop
 *                         sharing two cores with each other and the driver, as on machines of
 *                         their own; needs root and a cgroup CPU controller)
 *        [--before DIR]  (each count also run on another built checkout, interleaved, for a
 *                         same-run A/B; printed, and written only with --ab-out FILE, the
 *                         other build described by --before-label TEXT)
 *        [--profile]   (each member CPU-profiled through the middle of each write run, and its
 *                       idle share and top functions printed; nothing is written; the profiles
 *                       are kept in $BALLOT_PROFILE_KEEP if set)
 */
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { Pool } from "undici";
import { Partitioner } from "../../src/kv/partitioner.js";
import { ProcCluster, sleep } from "../../test/integration/procs.js";
import { CpuCap } from "../cpu-cap.js";
import { describeMachine } from "../machine.js";
import { summarize } from "../profile/summarize.js";

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
const profile = process.argv.includes("--profile");
const beforeDir = arg("before");
/** With --before: also write the A/B's runs and means to this file (the before build named by --before-label). */
const abOut = arg("ab-out");
const beforeLabel = arg("before-label");
const memberCpu = arg("member-cpu") ? Number(arg("member-cpu")) : null;
const caps = new CpuCap();
const KEYS = 1000;
const value = JSON.stringify({ value: "v".repeat(100) });

interface PartitionView {
  id: number;
  leader: { id: string; url: string | null } | null;
}

async function cluster(p: number, build?: string): Promise<ProcCluster> {
  const c = await ProcCluster.start({
    extraArgs: p > 1 ? ["--partitions", String(p)] : [],
    cli: build
      ? `${build}/dist/src/cli/main.js`
      : profileDir
        ? fileURLToPath(new URL("../profile/node.js", import.meta.url))
        : undefined,
  });
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
  if (memberCpu !== null) for (const id of c.ids) caps.cap(id, c.procs.get(id)!.pid!, memberCpu);
  return c;
}

async function leaders(c: ProcCluster): Promise<string[]> {
  const r = (await (await fetch(`${c.url(c.ids[0]!)}/v1/cluster`)).json()) as {
    leader: { id: string };
    partitions?: PartitionView[];
  };
  return r.partitions ? r.partitions.map((x) => x.leader?.id ?? r.leader.id) : [r.leader.id];
}

interface WriteRun {
  opsPerSec: number;
  p50Ms: number;
  p99Ms: number;
  errors: number;
  errorStatuses?: Record<number, number>;
  redirects: number;
  cpuPercentOfCore: { members: number[]; driver: number };
}

async function drive(c: ProcCluster, p: number): Promise<WriteRun> {
  const part = new Partitioner(p);
  const lead = await leaders(c);
  const pools = new Map(
    c.ids.map((id) => [id, new Pool(c.url(id), { connections: k, keepAliveTimeout: 60_000 })]),
  );
  const lat: number[] = [];
  let errors = 0;
  let redirects = 0;
  const statuses: Record<number, number> = {};
  let n = 0;
  // Where the two cores went: each member's share and the driver's (100 % = one core).
  const pids = c.ids.map((id) => c.procs.get(id)!.pid!);
  const before = pids.map(sample);
  const driverBefore = process.cpuUsage();
  const start = performance.now();
  const end = start + seconds * 1000;
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
        else {
          errors++;
          statuses[r.statusCode] = (statuses[r.statusCode] ?? 0) + 1;
        }
      }
    }),
  );
  const wall = (performance.now() - start) / 1000;
  const after = pids.map(sample);
  const driver = process.cpuUsage(driverBefore);
  const pct = (x: number) => Math.round(x * 1000) / 10;
  const cpu = {
    members: after.map((a, i) => pct((a.ticks - before[i]!.ticks) / 100 / wall)), // USER_HZ = 100
    driver: pct((driver.user + driver.system) / 1e6 / wall),
  };
  for (const pool of pools.values()) await pool.close();
  lat.sort((a, b) => a - b);
  const q = (x: number) =>
    Math.round((lat[Math.min(lat.length - 1, Math.floor(x * lat.length))] ?? 0) * 100) / 100;
  return {
    opsPerSec: Math.round(lat.length / seconds),
    p50Ms: q(0.5),
    p99Ms: q(0.99),
    errors,
    ...(errors > 0 ? { errorStatuses: statuses } : {}),
    redirects,
    cpuPercentOfCore: cpu,
  };
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
  memberCpuCap:
    memberCpu === null
      ? "none: the members and the driver share the machine's cores"
      : `each member limited to ${memberCpu} of a core (cgroup CPU quota), the driver not`,
};
const runs: Record<string, WriteRun[]> = {};
let profileDir: string | null = null;
for (let round = 0; round < (beforeDir ? 0 : rounds); round++) {
  for (const p of counts) {
    if (profile) {
      // The window opens once the cluster settled and the driver warmed up (bench/profile/node.ts).
      profileDir = mkdtempSync(join(tmpdir(), "ballot-profile-"));
      process.env.BALLOT_PROFILE_DIR = profileDir;
      process.env.BALLOT_PROFILE_START_MS = "4000";
      process.env.BALLOT_PROFILE_MS = String(Math.max(1000, seconds * 1000 - 3000));
    }
    const c = await cluster(p);
    try {
      const before = await leaders(c);
      const f = await drive(c, p);
      const after = await leaders(c);
      const list = runs[String(p)] ?? [];
      list.push(f);
      runs[String(p)] = list;
      console.log(
        `round ${round + 1}, ${p} partition(s): ${f.opsPerSec} w/s, p50 ${f.p50Ms} ms, p99 ${f.p99Ms} ms, errors ${f.errors}${f.errorStatuses ? ` ${JSON.stringify(f.errorStatuses)}` : ""}, 307s ${f.redirects}, CPU % of a core: members ${f.cpuPercentOfCore.members.join(" ")}, driver ${f.cpuPercentOfCore.driver}${before.join() === after.join() ? "" : " (leaders moved)"}`,
      );
      if (profileDir) {
        await sleep(1500);
        for (const id of c.ids) {
          const file = join(profileDir, `${id}.cpuprofile`);
          const keep = process.env.BALLOT_PROFILE_KEEP; // a directory for the .cpuprofile files
          if (keep) copyFileSync(file, join(keep, `p${p}-round${round + 1}-${id}.cpuprofile`));
          const s = summarize(file);
          console.log(`  ${id}: idle ${s.idlePct}%`);
          for (const t of s.top.slice(0, 14)) console.log(`    ${String(t.selfPct).padStart(5)}% ${t.fn}`);
        }
      }
    } finally {
      await c.stop();
      caps.release();
      if (profileDir) rmSync(profileDir, { recursive: true, force: true });
    }
  }
}
const ab: { round: number; partitions: number; build: string; figures: WriteRun }[] = [];
if (beforeDir) {
  for (let round = 0; round < rounds; round++) {
    for (const p of counts) {
      for (const [name, build] of [
        ["this build", undefined],
        ["before", beforeDir],
      ] as const) {
        const c = await cluster(p, build);
        try {
          const f = await drive(c, p);
          ab.push({ round: round + 1, partitions: p, build: name, figures: f });
          console.log(
            `A/B round ${round + 1}, ${p} partition(s), ${name}: ${f.opsPerSec} w/s, p99 ${f.p99Ms} ms, CPU ${f.cpuPercentOfCore.members.join(" ")} / driver ${f.cpuPercentOfCore.driver}`,
          );
        } finally {
          await c.stop();
          caps.release();
        }
      }
    }
  }
}
if (beforeDir && abOut) {
  const mean = (p: number, build: string) => {
    const xs = ab.filter((r) => r.partitions === p && r.build === build).map((r) => r.figures.opsPerSec);
    return Math.round(xs.reduce((a, b) => a + b, 0) / xs.length);
  };
  const summary = Object.fromEntries(
    counts.map((p) => {
      const now = mean(p, "this build");
      const then = mean(p, "before");
      return [
        String(p),
        { meanThisBuild: now, meanBefore: then, ratio: Math.round((now / then) * 100) / 100 },
      ];
    }),
  );
  const one = counts.includes(1)
    ? Object.fromEntries(
        counts.map((p) => [
          String(p),
          {
            thisBuild: Math.round((mean(p, "this build") / mean(1, "this build")) * 100) / 100,
            before: Math.round((mean(p, "before") / mean(1, "before")) * 100) / 100,
          },
        ]),
      )
    : undefined;
  writeFileSync(
    abOut,
    `${JSON.stringify({ ...out, benchmark: "partitions A/B", before: beforeLabel ?? beforeDir, runs: ab, meanWritesPerSec: summary, vsOnePartitionOfMeans: one }, null, 1)}\n`,
  );
  console.log(`A/B written to ${abOut}: ${JSON.stringify(summary)}`);
}
if (profile || beforeDir) process.exit(0);
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
if (memberCpu === null) {
  out.idleOnePartition = await idleCost(1);
  out.idle = await idleCost(idleCount);
}
// A capped run is its own result: the same counts on members limited to a share of a core.
writeFileSync(
  new URL(
    `../../../bench/results/${memberCpu === null ? "partitions.json" : `partitions-member-cpu-${memberCpu}.json`}`,
    import.meta.url,
  ),
  `${JSON.stringify(out, null, 2)}\n`,
);
console.log(JSON.stringify(out.writes, null, 2));
