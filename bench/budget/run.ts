/**
 * bench/budget: where the CPU of one HTTP write goes, process by process, and what the machine's
 * cores would allow. One driver (this process, undici Pools, as bench/client) keeps K PUTs of
 * 100-byte values over 1,000 keys in flight against, in the same run and interleaved per round:
 * etcd's JSON gateway (3 members, Debian's etcd), Ballot's HTTP API (3 members, at the leader),
 * and a node:http server that only parses the request and answers it (bench/budget/noop-server.ts:
 * node:http's own floor for this request). For each run: writes/s, and the CPU per write of the
 * driver and of every server process, from /proc (user + system, all threads).
 *
 * From those, per K: the CPU per write the whole machine could spend if Ballot served twice the
 * gateway's rate (its cores fully busy, which is optimistic), and what that leaves for Ballot's
 * own code once the driver's share and node:http's floor are paid. Measured on the same machine
 * in the same run, so the figures explain a ratio rather than state an absolute.
 *
 * Usage: npm run bench:budget [-- --seconds S] [--k 64,256] [--rounds N]
 *   (default 5 s after 1 s unmeasured per run, K = 64 and 256, two rounds; writes
 *   bench/results/budget.json)
 */
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { cpus } from "node:os";
import { fileURLToPath } from "node:url";
import { Pool } from "undici";
import { freePorts, ProcCluster } from "../../test/integration/procs.js";
import { drive as driveFor } from "../drive.js";
import { etcdCluster } from "../etcd-cluster.js";
import { describeMachine } from "../machine.js";

function arg(name: string): string | undefined {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1] : undefined;
}
const seconds = Number(arg("seconds") ?? 5);
const ks = (arg("k") ?? "64,256").split(",").map(Number);
const rounds = Number(arg("rounds") ?? 2);
const warmSeconds = 1;
const KEYS = 1000;
const value = "v".repeat(100);
const b64 = (s: string) => Buffer.from(s).toString("base64");
const CLK_TCK = Number(execFileSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).trim()) || 100;

/** CPU time a process has used so far, in µs (all its threads, user + system). */
function cpuUs(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return ((Number(f[11]) + Number(f[12])) / CLK_TCK) * 1e6;
}

interface Run {
  writesPerSec: number;
  p50Ms: number;
  p99Ms: number;
  errors: number;
  /** CPU µs per successful write: the driver, then each server process by name. */
  cpuUsPerWrite: Record<string, number>;
  /** Sum of all the above: what one write cost the machine. */
  totalUsPerWrite: number;
}

/** The closed-loop load (bench/drive.ts), with the CPU every process spent on it. */
async function drive(
  k: number,
  op: (i: number) => Promise<void>,
  procs: Record<string, number>,
  secs: number,
): Promise<Run> {
  const before = Object.fromEntries(Object.entries(procs).map(([name, pid]) => [name, cpuUs(pid)]));
  const driverBefore = process.cpuUsage();
  const f = await driveFor(k, op, secs);
  const d = process.cpuUsage(driverBefore);
  const writes = Math.max(1, f.opsPerSec * secs);
  const per: Record<string, number> = { driver: Math.round((d.user + d.system) / writes) };
  for (const [name, pid] of Object.entries(procs))
    per[name] = Math.round((cpuUs(pid) - before[name]!) / writes);
  return {
    writesPerSec: f.opsPerSec,
    p50Ms: f.p50Ms,
    p99Ms: f.p99Ms,
    errors: f.errors,
    cpuUsPerWrite: per,
    totalUsPerWrite: Object.values(per).reduce((a, b) => a + b, 0),
  };
}

function pooled(url: string, k: number, request: (i: number) => Parameters<Pool["request"]>[0]) {
  const pool = new Pool(url, { connections: k, keepAliveTimeout: 60_000 });
  return {
    op: async (i: number) => {
      const r = await pool.request(request(i));
      await r.body.text();
      if (r.statusCode !== 200) throw new Error(String(r.statusCode));
    },
    close: () => pool.close(),
  };
}

async function startNoop(): Promise<{ url: string; proc: ChildProcess }> {
  const [port] = await freePorts(1);
  const proc = spawn(
    process.execPath,
    [fileURLToPath(new URL("./noop-server.js", import.meta.url)), String(port)],
    {
      stdio: ["ignore", "pipe", "inherit"],
    },
  );
  await new Promise<void>((resolve, reject) => {
    proc.stdout!.once("data", () => resolve());
    proc.once("exit", (c) => reject(new Error(`the no-op server exited (${c})`)));
  });
  return { url: `http://127.0.0.1:${port}`, proc };
}

const cores = cpus().length;
const ballot = await ProcCluster.start();
const etcd = await etcdCluster();
const noop = await startNoop();
const out: Record<string, unknown> = {
  benchmark: "budget",
  description: `One driver process keeps K HTTP PUTs of 100-byte values over ${KEYS} keys in flight through undici Pools (as bench/client), ${seconds} s per run after ${warmSeconds} s unmeasured, ${rounds} rounds, paths interleaved; CPU per write of every process from /proc (user + system, all threads)`,
  date: new Date().toISOString(),
  machine: describeMachine(),
  etcd: execFileSync("etcd", ["--version"], { encoding: "utf8" }).split("\n")[0],
};
try {
  const leader = await ballot.waitForLeader();
  const ballotProcs = Object.fromEntries(
    ballot.ids.map((id) => [id === leader ? `${id} (leader)` : id, ballot.procs.get(id)!.pid!]),
  );
  const etcdProcs = Object.fromEntries(
    etcd.pids.map((pid, i) => [etcd.clients[i] === etcd.leader ? `e${i + 1} (leader)` : `e${i + 1}`, pid]),
  );
  const body = JSON.stringify({ value });
  const paths: Record<
    string,
    { procs: Record<string, number>; make: (k: number) => ReturnType<typeof pooled> }
  > = {
    "etcd JSON gateway": {
      procs: etcdProcs,
      make: (k) =>
        pooled(etcd.leader, k, (i) => ({
          path: "/v3/kv/put",
          method: "POST",
          body: JSON.stringify({ key: b64(`k${i % KEYS}`), value: b64(value) }),
        })),
    },
    "Ballot HTTP": {
      procs: ballotProcs,
      make: (k) =>
        pooled(ballot.url(leader), k, (i) => ({
          path: `/v1/kv/k${i % KEYS}`,
          method: "PUT",
          headers: { "content-type": "application/json" },
          body,
        })),
    },
    "node:http no-op server": {
      procs: { server: noop.proc.pid! },
      make: (k) =>
        pooled(noop.url, k, (i) => ({
          path: `/v1/kv/k${i % KEYS}`,
          method: "PUT",
          headers: { "content-type": "application/json" },
          body,
        })),
    },
  };
  const runs: Record<string, unknown>[] = [];
  for (let round = 1; round <= rounds; round++) {
    for (const k of ks) {
      for (const [name, p] of Object.entries(paths)) {
        const c = p.make(k);
        await drive(k, c.op, p.procs, warmSeconds);
        const r = await drive(k, c.op, p.procs, seconds);
        await c.close();
        runs.push({ round, k, path: name, ...r });
        console.log(
          `round ${round} K=${String(k).padStart(3)} ${name.padEnd(24)} ${r.writesPerSec} w/s p99 ${r.p99Ms} ms errors ${r.errors}; µs/write ${JSON.stringify(r.cpuUsPerWrite)} total ${r.totalUsPerWrite}`,
        );
      }
    }
  }
  const mean = (xs: number[]) => Math.round(xs.reduce((a, b) => a + b, 0) / Math.max(1, xs.length));
  const of = (k: number, path: string) =>
    runs.filter((r) => r.k === k && r.path === path) as unknown as Run[];
  const leaderName = Object.keys(ballotProcs).find((n) => n.endsWith("(leader)"))!;
  out.summary = ks.map((k) => {
    const gw = of(k, "etcd JSON gateway");
    const b = of(k, "Ballot HTTP");
    const n = of(k, "node:http no-op server");
    const gwRate = mean(gw.map((r) => r.writesPerSec));
    const budget = Math.round((cores * 1e6) / (2 * gwRate));
    const ballotDriver = mean(b.map((r) => r.cpuUsPerWrite.driver!));
    const floor = mean(n.map((r) => r.cpuUsPerWrite.server!));
    const ballotServers = mean(b.map((r) => r.totalUsPerWrite - r.cpuUsPerWrite.driver!));
    return {
      k,
      gatewayWritesPerSec: gwRate,
      ballotWritesPerSec: mean(b.map((r) => r.writesPerSec)),
      ratio: Math.round((mean(b.map((r) => r.writesPerSec)) / gwRate) * 100) / 100,
      usPerWrite: {
        gateway: {
          total: mean(gw.map((r) => r.totalUsPerWrite)),
          driver: mean(gw.map((r) => r.cpuUsPerWrite.driver!)),
        },
        ballot: {
          total: mean(b.map((r) => r.totalUsPerWrite)),
          driver: ballotDriver,
          leader: mean(b.map((r) => r.cpuUsPerWrite[leaderName]!)),
          members: ballotServers,
        },
        nodeHttpFloor: floor,
      },
      // At twice the gateway's rate with every core busy: what one write may cost the machine, and
      // what is left of it for Ballot's own work once the driver and node:http's floor are paid.
      budgetAt2xUs: budget,
      ballotOwnUs: ballotServers - floor,
      ballotOwnBudgetAt2xUs: budget - ballotDriver - floor,
    };
  });
  out.runs = runs;
  console.log(JSON.stringify(out.summary, null, 2));
  writeFileSync(
    new URL("../../../bench/results/budget.json", import.meta.url),
    `${JSON.stringify(out, null, 2)}\n`,
  );
} finally {
  await ballot.stop();
  etcd.stop();
  noop.proc.kill("SIGTERM");
}
