/**
 * bench/api: what the HTTP layer costs on the path users call, same run, same driver. Three front
 * doors on 3-node clusters of this machine, measured in turn, two rounds, interleaved:
 *  - `gate`: today's server (node:http, every route checked against src/api/schemas.ts);
 *  - `fastify`: a Fastify app with the same checks (literal target, schemas, unknown fields
 *    refused) over the same RaftNode in the same process (bench/api/fastify-node.ts);
 *  - `before` (with `--before DIR`, a built checkout of an earlier commit): the server before the gate.
 * One driver (this process, undici Pool) keeps K requests in flight: PUT of 100-byte values over
 * 1,000 keys at K=64 and 256 on the leader, linearizable GET at K=64. Reports writes/s, p50/p99,
 * non-2xx, the leader's term before/after, and the ratios fastify/gate and gate/before: issue 8
 * keeps node:http if Fastify costs more than 10 %, and the gate may cost at most 10 %.
 *
 * Usage: npm run bench:api [-- --seconds S] [--before DIR]   (writes bench/results/api.json)
 */
import { execFileSync } from "node:child_process";
import { writeFileSync } from "node:fs";
import { Pool } from "undici";
import { freePorts, ProcCluster } from "../../test/integration/procs.js";
import { describeMachine } from "../machine.js";

function arg(name: string): string | undefined {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1] : undefined;
}
const seconds = Number(arg("seconds") ?? 5);
const beforeDir = arg("before");
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

// One cluster carries both `gate` and `fastify`: the same nodes, two front doors.
const fastifyPorts = await freePorts(3);
for (const [i, p] of fastifyPorts.entries()) process.env[`BENCH_FASTIFY_PORT_n${i + 1}`] = String(p);
const both = await ProcCluster.start({ cli: new URL("./fastify-node.js", import.meta.url).pathname });
const before = beforeDir ? await ProcCluster.start({ cli: `${beforeDir}/dist/src/cli/main.js` }) : null;

const doors: { name: string; cluster: ProcCluster; origin: (leader: string) => string }[] = [
  { name: "gate", cluster: both, origin: (l) => both.url(l) },
  {
    name: "fastify",
    cluster: both,
    origin: (l) => `http://127.0.0.1:${fastifyPorts[Number(l.slice(1)) - 1]}`,
  },
];
if (before) doors.push({ name: "before", cluster: before, origin: (l) => before.url(l) });

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
    await drive(d.origin(l.id), 16, "PUT");
  }
  for (let round = 1; round <= 2; round++) {
    for (const w of workloads) {
      for (const d of doors) {
        const l0 = await leaderOf(d.cluster);
        const cell = await drive(d.origin(l0.id), w.k, w.method);
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
  await both.stop();
  await before?.stop();
}

// Ratios from the sums over both rounds (each door saw the same noise, interleaved).
const sum = (door: string, w: string, k: number) =>
  rows
    .filter((r) => r.door === door && r.workload === w && r.k === k)
    .reduce((a, r) => a + (r.perSec as number), 0);
const ratios = workloads.map((w) => ({
  workload: w.name,
  k: w.k,
  fastifyOverGate: Math.round((sum("fastify", w.name, w.k) / sum("gate", w.name, w.k)) * 100) / 100,
  ...(before
    ? { gateOverBefore: Math.round((sum("gate", w.name, w.k) / sum("before", w.name, w.k)) * 100) / 100 }
    : {}),
}));
console.table(ratios);
const out = {
  benchmark: "api",
  description: `3-node clusters on one machine; ${seconds} s per cell; 100-byte values over ${KEYS} keys; undici Pool with K connections`,
  date: new Date().toISOString(),
  machine: describeMachine(),
  before: beforeDir
    ? execFileSync("git", ["-C", beforeDir, "log", "-1", "--format=%h %s"], { encoding: "utf8" }).trim()
    : null,
  results: rows,
  ratios,
};
writeFileSync(
  new URL("../../../bench/results/api.json", import.meta.url),
  `${JSON.stringify(out, null, 2)}\n`,
);
