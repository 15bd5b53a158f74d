/**
 * bench/overload: 3 real Ballot nodes on this machine, one driver (this process) keeping K PUTs of
 * 100-byte values over 1,000 keys in flight at the leader with undici, for a fixed time at each K.
 * A refused write (429/503) is retried after the server's retry hint, backing off exponentially
 * while refusals repeat, as a well-behaved client would. Reports, per K: the term on every node before and after (the
 * requirement is zero term changes), writes/s, p50/p99 of the 200s, the count of each status, and
 * the largest event-loop lag the leader reported (ballot_event_loop_lag_max_seconds).
 *
 * Usage: npm run bench:overload [-- --seconds S] [--k 256,1024] [--out PATH] [-- node flags…]
 *   (default 300 s per K; writes bench/results/overload.json unless --out says otherwise)
 */
import { writeFileSync } from "node:fs";
import { Pool } from "undici";
import { ProcCluster, sleep } from "../../test/integration/procs.js";
import { describeMachine } from "../machine.js";

function arg(name: string): string | undefined {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1] : undefined;
}
const seconds = Number(arg("seconds") ?? 300);
const ks = (arg("k") ?? "256,1024").split(",").map(Number);
const outPath = arg("out") ?? new URL("../../../bench/results/overload.json", import.meta.url).pathname;
const dash = process.argv.indexOf("--");
const nodeFlags = dash > 0 ? process.argv.slice(dash + 1) : [];
const body = JSON.stringify({ value: "v".repeat(100) });

async function json(url: string): Promise<Record<string, unknown>> {
  const r = await fetch(url);
  return (await r.json()) as Record<string, unknown>;
}

async function terms(c: ProcCluster): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  for (const id of c.ids) out[id] = (await json(`${c.url(id)}/v1/cluster`)).term as number;
  return out;
}

async function metric(url: string, name: string): Promise<number | null> {
  const text = await (await fetch(`${url}/metrics`)).text();
  const m = new RegExp(`^${name}\\{[^}]*\\} ([0-9.e+-]+)$`, "m").exec(text);
  return m ? Number(m[1]) : null;
}

function percentile(sorted: Float64Array, p: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))]!;
}

async function drive(c: ProcCluster, leader: string, k: number) {
  const pool = new Pool(c.url(leader), { connections: k, pipelining: 1, keepAliveTimeout: 60_000 });
  const latencies: number[] = [];
  const statuses: Record<string, number> = {};
  let retryWaitMs = 0;
  const started = performance.now();
  const until = started + seconds * 1000;
  let n = 0;
  let maxLag = 0;
  let lastProgress = started;
  const endToEnd: number[] = [];
  // A refused write is retried (the same write) after the server's retry hint, doubled for each
  // refusal in a row up to 2 s, with jitter, as ballot/client backs off; the end-to-end latency
  // counts from its first attempt.
  const slot = async (): Promise<void> => {
    let first = 0;
    let refusals = 0;
    let key = "";
    while (performance.now() < until) {
      if (refusals === 0) {
        key = `k${n++ % 1000}`;
        first = performance.now();
      }
      const t0 = performance.now();
      let status: string;
      let wait = 0;
      try {
        const r = await pool.request({
          path: `/v1/kv/${key}`,
          method: "PUT",
          body,
          headers: { "content-type": "application/json" },
        });
        status = String(r.statusCode);
        if (r.statusCode === 200) {
          await r.body.dump();
          const now = performance.now();
          latencies.push(now - t0);
          endToEnd.push(now - first);
          refusals = 0;
        } else {
          const text = await r.body.text();
          if (r.statusCode === 429 || r.statusCode === 503) {
            let ms = Number(r.headers["retry-after"] ?? 1) * 1000;
            try {
              const hint = (JSON.parse(text) as { error?: { retryAfterMs?: number } }).error?.retryAfterMs;
              if (typeof hint === "number") ms = hint;
            } catch {}
            wait = Math.min(2000, ms * 2 ** Math.min(refusals, 5)) * (0.5 + Math.random());
            refusals++;
          } else refusals = 0;
        }
      } catch (e) {
        status = `error:${(e as { code?: string }).code ?? (e as Error).message}`;
        wait = 100;
        refusals = 0;
      }
      statuses[status] = (statuses[status] ?? 0) + 1;
      if (wait > 0) {
        retryWaitMs += wait;
        await sleep(wait);
      }
    }
  };
  const lagProbe = (async () => {
    while (performance.now() < until) {
      await sleep(1000);
      const lag = await metric(c.url(leader), "ballot_event_loop_lag_seconds").catch(() => null);
      if (lag !== null) maxLag = Math.max(maxLag, lag);
      if (performance.now() - lastProgress > 30_000) {
        lastProgress = performance.now();
        console.log(
          `  K=${k}: ${Math.round((performance.now() - started) / 1000)} s, ${latencies.length} writes, statuses ${JSON.stringify(statuses)}`,
        );
      }
    }
  })();
  await Promise.all([...Array.from({ length: k }, slot), lagProbe]);
  const elapsed = (performance.now() - started) / 1000;
  await pool.close();
  const sorted = Float64Array.from(latencies).sort();
  const p50 = percentile(sorted, 0.5);
  const p99 = percentile(sorted, 0.99);
  const e2e = Float64Array.from(endToEnd).sort();
  const leaderMaxLag = await metric(c.url(leader), "ballot_event_loop_lag_max_seconds").catch(() => null);
  return {
    inFlight: k,
    seconds: Math.round(elapsed),
    writesPerSec: Math.round(latencies.length / elapsed),
    p50Ms: Math.round(p50 * 100) / 100,
    p99Ms: Math.round(p99 * 100) / 100,
    maxMs: Math.round((sorted[sorted.length - 1] ?? 0) * 100) / 100,
    p99OverP50: Math.round((p99 / p50) * 10) / 10,
    endToEndP50Ms: Math.round(percentile(e2e, 0.5) * 100) / 100,
    endToEndP99Ms: Math.round(percentile(e2e, 0.99) * 100) / 100,
    statuses,
    retryWaitSeconds: Math.round(retryWaitMs / 1000),
    leaderEventLoopLagMaxMs: leaderMaxLag === null ? null : Math.round(leaderMaxLag * 1000),
    leaderEventLoopLagMaxScrapedMs: Math.round(maxLag * 1000),
  };
}

const out: Record<string, unknown> = {
  benchmark: "overload",
  description: `3 Ballot nodes on one machine; one driver process keeps K PUTs of 100-byte values over 1,000 keys in flight at the leader (undici Pool, one connection per in-flight request); refused writes are retried after the retry hint, doubled per refusal in a row (up to 2 s, jittered); ${seconds} s per K`,
  date: new Date().toISOString(),
  machine: describeMachine(),
  nodeFlags,
};
const rows = [];
for (const k of ks) {
  // A fresh cluster per K: a term change in one run must not hide in the next one's "before".
  const c = await ProcCluster.start({ extraArgs: nodeFlags });
  try {
    const leader = await c.waitForLeader();
    const before = await terms(c);
    console.log(`K=${k}: leader ${leader}, terms ${JSON.stringify(before)}, ${seconds} s`);
    const r = await drive(c, leader, k);
    await sleep(1000);
    const after = await terms(c);
    const termChanges = Math.max(...c.ids.map((id) => after[id]! - before[id]!));
    const lost = c.ids
      .flatMap((id) => (c.logs.get(id) ?? []).map((l) => `${id}: ${l}`))
      .filter((l) => /became leader|leader is|campaign|election/i.test(l))
      .slice(-20);
    const row = { ...r, leader, termBefore: before, termAfter: after, termChanges, leadershipLog: lost };
    rows.push(row);
    console.log(JSON.stringify(row));
  } finally {
    await c.stop();
  }
}
out.results = rows;
writeFileSync(outPath, `${JSON.stringify(out, null, 2)}\n`);
console.log(`wrote ${outPath}`);
