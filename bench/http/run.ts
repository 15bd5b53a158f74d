/**
 * bench/http: a 3-node Ballot cluster against a 3-node etcd 3.4 cluster (Debian's etcd-server,
 * installed by scripts/install-etcd.sh and started here), same machine, same run: PUT of 100-byte
 * values to the leader at 1, 64 and 256 connections (autocannon), and linearizable GETs on a
 * follower. Reports throughput, p50 and p99, and the Ballot/etcd ratios.
 *
 * Usage: npm run bench:http [-- --seconds S]   (writes bench/results/http.json)
 */
import { execFileSync } from "node:child_process";
import { writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { ProcCluster } from "../../test/integration/procs.js";
import { etcdCluster } from "../etcd-cluster.js";
import { describeMachine } from "../machine.js";

interface AutocannonResult {
  requests: { average: number };
  latency: { p50: number; p99: number };
  non2xx: number;
  errors: number;
  timeouts: number;
}
type Autocannon = (opts: Record<string, unknown>) => Promise<AutocannonResult>;
const autocannon = createRequire(import.meta.url)("autocannon") as Autocannon;

const secondsArg = process.argv.indexOf("--seconds");
const seconds = secondsArg > 0 ? Number(process.argv[secondsArg + 1]) : 5;
const value = "v".repeat(100);

async function load(url: string, connections: number, method: string, body?: string) {
  const r = await autocannon({
    url,
    connections,
    duration: seconds,
    method,
    body,
    headers: body ? { "content-type": "application/json" } : {},
  });
  return {
    requestsPerSec: Math.round(r.requests.average),
    p50Ms: r.latency.p50,
    p99Ms: r.latency.p99,
    non2xx: r.non2xx,
    errors: r.errors + r.timeouts,
  };
}

const out: Record<string, unknown> = {
  benchmark: "http",
  description: `3-node clusters on one machine; PUT of 100-byte values at the leader; linearizable GET on a follower; ${seconds} s per run`,
  date: new Date().toISOString(),
  machine: describeMachine(),
};

const ballot = await ProcCluster.start();
const etcd = await etcdCluster();
try {
  const leader = await ballot.waitForLeader();
  const follower = ballot.ids.find((id) => id !== leader)!;
  const etcdVersion = execFileSync("etcd", ["--version"], { encoding: "utf8" }).split("\n")[0];
  out.etcd = etcdVersion;
  const rows = [];
  const b64 = (s: string) => Buffer.from(s).toString("base64");
  await fetch(`${ballot.url(leader)}/v1/kv/bench`, {
    method: "PUT",
    body: JSON.stringify({ value }),
    headers: { "content-type": "application/json" },
  });
  await fetch(`${etcd.leader}/v3/kv/put`, {
    method: "POST",
    body: JSON.stringify({ key: b64("bench"), value: b64(value) }),
  });
  for (const c of [1, 64, 256]) {
    const b = await load(`${ballot.url(leader)}/v1/kv/bench`, c, "PUT", JSON.stringify({ value }));
    const e = await load(
      `${etcd.leader}/v3/kv/put`,
      c,
      "POST",
      JSON.stringify({ key: b64("bench"), value: b64(value) }),
    );
    rows.push({
      workload: "put",
      connections: c,
      ballot: b,
      etcd: e,
      throughputRatio: Math.round((b.requestsPerSec / e.requestsPerSec) * 100) / 100,
    });
    console.log(
      `PUT  ${String(c).padStart(3)} conns: ballot ${b.requestsPerSec} req/s p50 ${b.p50Ms} p99 ${b.p99Ms} | etcd ${e.requestsPerSec} req/s p50 ${e.p50Ms} p99 ${e.p99Ms}`,
    );
  }
  for (const c of [64]) {
    const b = await load(`${ballot.url(follower)}/v1/kv/bench`, c, "GET");
    const e = await load(`${etcd.follower}/v3/kv/range`, c, "POST", JSON.stringify({ key: b64("bench") }));
    rows.push({
      workload: "linearizable get on a follower",
      connections: c,
      ballot: b,
      etcd: e,
      throughputRatio: Math.round((b.requestsPerSec / e.requestsPerSec) * 100) / 100,
    });
    console.log(
      `GET  ${String(c).padStart(3)} conns: ballot ${b.requestsPerSec} req/s p50 ${b.p50Ms} p99 ${b.p99Ms} | etcd ${e.requestsPerSec} req/s p50 ${e.p50Ms} p99 ${e.p99Ms}`,
    );
  }
  out.results = rows;
  writeFileSync(
    new URL("../../../bench/results/http.json", import.meta.url),
    `${JSON.stringify(out, null, 2)}\n`,
  );
} finally {
  await ballot.stop();
  etcd.stop();
}
