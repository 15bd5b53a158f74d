/**
 * bench/profile: where the CPU goes on the write path. Three real nodes (their CLI wrapped by
 * bench/profile/node.ts, which profiles a window of each), one driver keeping K = 64 PUTs of
 * 100-byte values in flight for 12 s — once through an undici Pool (one request per write, the
 * server's per-request path) and once through `ballot/client` (what a service calls) — and, per
 * run, each node's idle share and the leader's top functions by self time. The leader's
 * .cpuprofile files are kept in bench/results/profiles/ (flame graphs: Chrome DevTools, speedscope).
 *
 * Usage: npm run bench:profile   (writes bench/results/profile.json and bench/results/profiles/)
 */
import { copyFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { Pool } from "undici";
import { BallotClient } from "../../src/client/index.js";
import { ProcCluster, sleep } from "../../test/integration/procs.js";
import { describeMachine } from "../machine.js";
import { summarize } from "./summarize.js";

const K = 64;
const SECONDS = 12;
const results = new URL("../../../bench/results/", import.meta.url);
const wrapper = fileURLToPath(new URL("./node.js", import.meta.url));
const value = "v".repeat(100);

async function profiled(name: string, drive: (c: ProcCluster, leader: string) => Promise<number>) {
  const dir = mkdtempSync(join(tmpdir(), "ballot-profile-"));
  process.env.BALLOT_PROFILE_DIR = dir;
  // The window opens once the cluster is up and the driver has warmed up, and closes before it stops.
  process.env.BALLOT_PROFILE_START_MS = "4000";
  process.env.BALLOT_PROFILE_MS = "7000";
  const c = await ProcCluster.start({ cli: wrapper });
  try {
    const leader = await c.waitForLeader();
    const writesPerSec = await drive(c, leader);
    await sleep(500);
    const nodes: Record<string, { idlePct: number }> = {};
    let leaderTop: { fn: string; selfPct: number }[] = [];
    for (const id of c.ids) {
      const s = summarize(join(dir, `${id}.cpuprofile`));
      nodes[id] = { idlePct: s.idlePct };
      if (id === leader) leaderTop = s.top;
    }
    mkdirSync(new URL("profiles/", results), { recursive: true });
    copyFileSync(
      join(dir, `${leader}.cpuprofile`),
      fileURLToPath(new URL(`profiles/${name}-leader.cpuprofile`, results)),
    );
    console.log(`${name}: ${writesPerSec} w/s; idle ${JSON.stringify(nodes)}`);
    for (const t of leaderTop.slice(0, 12)) console.log(`  ${String(t.selfPct).padStart(5)}% ${t.fn}`);
    return { name, k: K, seconds: SECONDS, writesPerSec, leader, nodes, leaderTopSelf: leaderTop };
  } finally {
    await c.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

/** K loops of `op` for SECONDS; writes per second. */
async function loop(op: (i: number) => Promise<unknown>): Promise<number> {
  let n = 0;
  const end = performance.now() + SECONDS * 1000;
  await Promise.all(
    Array.from({ length: K }, async (_, w) => {
      for (let i = w; performance.now() < end; i += K) {
        await op(i);
        n++;
      }
    }),
  );
  return Math.round(n / SECONDS);
}

const runs = [
  await profiled("put-k64-undici", async (c, leader) => {
    const pool = new Pool(c.url(leader), { connections: K, keepAliveTimeout: 60_000 });
    const body = JSON.stringify({ value });
    const w = await loop(async (i) => {
      const r = await pool.request({
        path: `/v1/kv/k${i % 1000}`,
        method: "PUT",
        headers: { "content-type": "application/json" },
        body,
      });
      await r.body.text();
      if (r.statusCode !== 200) throw new Error(`status ${r.statusCode}`);
    });
    await pool.close();
    return w;
  }),
  await profiled("put-k64-ballot-client", async (c) => {
    const client = new BallotClient({ endpoints: c.ids.map((id) => c.url(id)) });
    const w = await loop((i) => client.put(`k${i % 1000}`, value));
    client.close();
    return w;
  }),
];
writeFileSync(
  new URL("profile.json", results),
  `${JSON.stringify({ benchmark: "profile", date: new Date().toISOString(), machine: describeMachine(), description: `3 nodes on this machine, K=${K} PUTs of 100-byte values for ${SECONDS} s, each node CPU-profiled for 7 s in the middle (200 µs sampling); selfPct is of all samples, idle included`, runs }, null, 2)}\n`,
);
