/**
 * bench/api: what the HTTP layer costs on the path users call, same run, same driver. Three front
 * doors on 3-node clusters of this machine, measured in turn, two rounds, interleaved:
 *  - `node:http`: this checkout's server (`ballot start`: a hand-written router over node:http,
 *    every route checked against src/api/schemas.ts);
 *  - `fastify` (`--fastify DIR`, a built checkout of 5f6084e): the same server ported to Fastify
 *    (its router, hooks, content-type hook and fast-json-stringify replies), with the same checks
 *    as its hooks, since Fastify's defaults do not give them;
 *  - `before` (`--before DIR`, a built checkout of 035dc62): the server before the schema gate.
 * One driver (this process, undici Pool) keeps K requests in flight: PUT of 100-byte values over
 * 1,000 keys at K=64 and 256 on the leader, linearizable GET at K=64. Reports writes/s, p50/p99,
 * non-2xx, the leader's term before/after, and the ratios fastify/node:http (issue 8 moves the
 * server to Fastify unless that costs more than 10 %) and node:http/before (the gate may cost at
 * most 10 %).
 *
 * Usage: npm run bench:api -- --fastify DIR --before DIR [--seconds S]   (writes bench/results/api.json)
 *   git worktree add /tmp/ballot-fastify 5f6084e && (cd /tmp/ballot-fastify && npm ci && npm run build)
 *   git worktree add /tmp/ballot-before 035dc62 && (cd /tmp/ballot-before && npm ci && npm run build)
 */
import { execFileSync } from "node:child_process";
import { writeFileSync } from "node:fs";
import { Pool } from "undici";
import { ProcCluster } from "../../test/integration/procs.js";
import { describeMachine } from "../machine.js";

function arg(name: string): string | undefined {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1] : undefined;
}
const seconds = Number(arg("seconds") ?? 5);
const beforeDir = arg("before");
const fastifyDir = arg("fastify");
const body = JSON.stringify({ value: "v".repeat(100) });
const KEYS = 1000;

interface Cell {
  readonly perSec: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly non2xx: number;
}

async function drive(origin: string, k: number, method: "PUT" | "GET"): Promise<Cell> {
  const pool = new Pool(origin, { connections: k, pipelining: 1, keepAliveTimeout: 60_000 });
  const lat: number[] = [];
  let non2xx = 0;
  let i = 0;
  const until = performance.now() + seconds * 1000;
  const worker = async () => {
    while (performance.now() < until) {
      const path = `/v1/kv/bench/k${i++ % KEYS}`;
      const t = performance.now();
      const r = await pool.request(
        method === "PUT"
          ? { path, method, body, headers: { "content-type": "application/json" } }
          : { path, method },
      );
      await r.body.dump();
      if (r.statusCode >= 200 && r.statusCode < 300) lat.push(performance.now() - t);
      else non2xx++;
    }
  };
  const started = performance.now();
  await Promise.all(Array.from({ length: k }, worker));
  const elapsed = (performance.now() - started) / 1000;
  await pool.close();
  lat.sort((a, b) => a - b);
  const pct = (p: number) =>
    Math.round(lat[Math.min(lat.length - 1, Math.floor(p * lat.length))]! * 100) / 100;
  return { perSec: Math.round(lat.length / elapsed), p50Ms: pct(0.5), p99Ms: pct(0.99), non2xx };
}

async function leaderOf(c: ProcCluster): Promise<{ id: string; term: number }> {
  const id = await c.waitForLeader();
  const s = (await (await fetch(`${c.url(id)}/v1/cluster`)).json()) as { term: number };
  return { id, term: s.term };
}

if (!beforeDir || !fastifyDir)
  throw new Error("--fastify DIR and --before DIR (built checkouts) are required");
const clusters = {
  "node:http": await ProcCluster.start(),
  fastify: await ProcCluster.start({ cli: `${fastifyDir}/dist/src/cli/main.js` }),
  before: await ProcCluster.start({ cli: `${beforeDir}/dist/src/cli/main.js` }),
};
const doors = Object.entries(clusters).map(([name, cluster]) => ({ name, cluster }));

const workloads = [
  { name: "put", k: 64, method: "PUT" as const },
  { name: "put", k: 256, method: "PUT" as const },
  { name: "get linearizable", k: 64, method: "GET" as const },
];

const rows: Record<string, unknown>[] = [];
try {
  // Keys exist before the reads, on every cluster.
  for (const d of doors) {
    const l = await leaderOf(d.cluster);
    await drive(d.cluster.url(l.id), 16, "PUT");
  }
  for (let round = 1; round <= 2; round++) {
    for (const w of workloads) {
      for (const d of doors) {
        const l0 = await leaderOf(d.cluster);
        const cell = await drive(d.cluster.url(l0.id), w.k, w.method);
        const l1 = await leaderOf(d.cluster);
        rows.push({
          round,
          workload: w.name,
          k: w.k,
          door: d.name,
          ...cell,
          termBefore: l0.term,
          termAfter: l1.term,
        });
        console.log(
          `round ${round} ${w.name} K=${w.k} ${d.name.padEnd(8)} ${cell.perSec}/s p50 ${cell.p50Ms} ms p99 ${cell.p99Ms} ms non2xx ${cell.non2xx} term ${l0.term}→${l1.term}`,
        );
      }
    }
  }
} finally {
  for (const c of Object.values(clusters)) await c.stop();
}

// Ratios from the sums over both rounds (each door saw the same noise, interleaved).
const sum = (door: string, w: string, k: number) =>
  rows
    .filter((r) => r.door === door && r.workload === w && r.k === k)
    .reduce((a, r) => a + (r.perSec as number), 0);
const ratio = (a: string, b: string, w: { name: string; k: number }) =>
  Math.round((sum(a, w.name, w.k) / sum(b, w.name, w.k)) * 100) / 100;
const ratios = workloads.map((w) => ({
  workload: w.name,
  k: w.k,
  fastifyOverNodeHttp: ratio("fastify", "node:http", w),
  nodeHttpOverBefore: ratio("node:http", "before", w),
}));
console.table(ratios);
const out = {
  benchmark: "api",
  description: `3-node clusters on one machine; ${seconds} s per cell; 100-byte values over ${KEYS} keys; undici Pool with K connections`,
  date: new Date().toISOString(),
  machine: describeMachine(),
  commits: {
    "node:http": execFileSync("git", ["log", "-1", "--format=%h %s"], { encoding: "utf8" })
      .trim()
      .slice(0, 120),
    fastify: execFileSync("git", ["-C", fastifyDir, "log", "-1", "--format=%h %s"], { encoding: "utf8" })
      .trim()
      .slice(0, 120),
    before: execFileSync("git", ["-C", beforeDir, "log", "-1", "--format=%h %s"], { encoding: "utf8" })
      .trim()
      .slice(0, 120),
  },
  results: rows,
  ratios,
};
writeFileSync(
  new URL("../../../bench/results/api.json", import.meta.url),
  `${JSON.stringify(out, null, 2)}\n`,
);
