/**
 * bench/client: the write path as a Node service sees it, through the client it would use, side by
 * side in one run on this machine: etcd 3.4 (Debian's) through the `etcd3` gRPC client, etcd's
 * JSON gateway through an undici Pool, Ballot's HTTP API through an undici Pool, and Ballot through
 * `ballot/client` (and, for the before/after, `ballot/client` with `coalesceWrites: false`, one
 * request per put, as it was before it merged concurrent puts). One driver (this process) keeps K writes of 100-byte values over 1,000 keys in
 * flight for a fixed time; each K twice, the paths interleaved per round. Then reads through
 * `ballot/client` (linearizable, lease, local) on the leader. Reports writes/s, p50 and p99, the
 * ratios against etcd, and Ballot's term before and after (a leader change under load is a bug).
 *
 * Usage: npm run bench:client [-- --seconds S] [--warm S] [--k 1,64,256] [--rounds N]
 *   (default 5 s after 1 s unmeasured warm-up per run, K = 1, 64, 256, two rounds; writes
 *   bench/results/client.json)
 */
import { execFileSync } from "node:child_process";
import { writeFileSync } from "node:fs";
import { Etcd3 } from "etcd3";
import { Pool } from "undici";
import { BallotClient } from "../../src/client/index.js";
import { ProcCluster } from "../../test/integration/procs.js";
import { drive as driveFor, type Figures } from "../drive.js";
import { etcdCluster } from "../etcd-cluster.js";
import { describeMachine } from "../machine.js";

function arg(name: string): string | undefined {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1] : undefined;
}
const seconds = Number(arg("seconds") ?? 5);
const ks = (arg("k") ?? "1,64,256").split(",").map(Number);
const rounds = Number(arg("rounds") ?? 2);
/**
 * Each run's clients first keep K writes in flight for this long, unmeasured: the figures are the
 * steady state, not K connections opening at once (Node accepts and warms 256 sockets far slower
 * than Go, so a cold pool's first 100 ms set Ballot's p99 and said nothing about serving).
 */
const warmSeconds = Number(arg("warm") ?? 1);
const value = "v".repeat(100);
const KEYS = 1000;

/** K workers calling `op` back to back for `secs` (default: the run's length). */
const drive = (k: number, op: (i: number) => Promise<unknown>, secs = seconds): Promise<Figures> =>
  driveFor(k, op, secs);

const b64 = (s: string) => Buffer.from(s).toString("base64");
const ballot = await ProcCluster.start();
const etcd = await etcdCluster();
const out: Record<string, unknown> = {
  benchmark: "client",
  description: `3-node clusters on one machine; one driver process keeps K writes of 100-byte values over ${KEYS} keys in flight, through the client a Node service would use; ${seconds} s per run after ${warmSeconds} s of the same load unmeasured (connections open, steady state), ${rounds} rounds; then reads through ballot/client on the leader`,
  date: new Date().toISOString(),
  machine: describeMachine(),
  etcd: execFileSync("etcd", ["--version"], { encoding: "utf8" }).split("\n")[0],
};
const termOf = async (): Promise<number[]> =>
  Promise.all(
    ballot.ids.map(
      async (id) => ((await (await fetch(`${ballot.url(id)}/v1/cluster`)).json()) as { term: number }).term,
    ),
  );
try {
  let current = await ballot.waitForLeader();
  const etcd3 = new Etcd3({ hosts: etcd.clients });
  const client = new BallotClient({ endpoints: ballot.ids.map((id) => ballot.url(id)) });
  // The client as it was before it merged concurrent puts: every put its own request.
  const single = new BallotClient({
    endpoints: ballot.ids.map((id) => ballot.url(id)),
    coalesceWrites: false,
  });
  const paths: Record<
    string,
    (k: number) => { op: (i: number) => Promise<unknown>; close: () => Promise<void> }
  > = {
    "etcd via etcd3 (gRPC)": () => ({
      op: (i) =>
        etcd3
          .put(`k${i % KEYS}`)
          .value(value)
          .exec(),
      close: async () => {},
    }),
    "etcd JSON gateway via undici Pool": (k) => {
      const pool = new Pool(etcd.leader, { connections: k, keepAliveTimeout: 60_000 });
      return {
        op: async (i) => {
          const r = await pool.request({
            path: "/v3/kv/put",
            method: "POST",
            body: JSON.stringify({ key: b64(`k${i % KEYS}`), value: b64(value) }),
          });
          await r.body.text();
          if (r.statusCode !== 200) throw new Error(String(r.statusCode));
        },
        close: () => pool.close(),
      };
    },
    "Ballot HTTP via undici Pool": (k) => {
      // At whoever leads now: a leader change during an earlier run must not zero this one.
      const pool = new Pool(ballot.url(current), { connections: k, keepAliveTimeout: 60_000 });
      const body = JSON.stringify({ value });
      return {
        op: async (i) => {
          const r = await pool.request({
            path: `/v1/kv/k${i % KEYS}`,
            method: "PUT",
            headers: { "content-type": "application/json" },
            body,
          });
          await r.body.text();
          if (r.statusCode !== 200) throw new Error(String(r.statusCode));
        },
        close: () => pool.close(),
      };
    },
    "Ballot via ballot/client": () => ({
      op: (i) => client.put(`k${i % KEYS}`, value),
      close: async () => {},
    }),
    "Ballot via ballot/client, one request per put (before)": () => ({
      op: (i) => single.put(`k${i % KEYS}`, value),
      close: async () => {},
    }),
  };
  // Warm both (JIT, connections, the leader known to the client).
  for (const make of Object.values(paths)) {
    const p = make(8);
    await drive(8, p.op);
    await p.close();
  }
  const termBefore = await termOf();
  const writes: Record<string, unknown>[] = [];
  for (let round = 1; round <= rounds; round++) {
    for (const k of ks) {
      const row: Record<string, unknown> = { round, k };
      for (const [name, make] of Object.entries(paths)) {
        current = await ballot.waitForLeader();
        const p = make(k);
        if (warmSeconds > 0) await drive(k, p.op, warmSeconds);
        const f = await drive(k, p.op);
        await p.close();
        row[name] = f;
        console.log(
          `round ${round} K=${String(k).padStart(3)} ${name.padEnd(36)} ${f.opsPerSec} w/s p50 ${f.p50Ms} p99 ${f.p99Ms} errors ${f.errors}`,
        );
      }
      const w = (n: string) => (row[n] as Figures).opsPerSec;
      row.ratios = {
        "ballot/client : etcd3":
          Math.round((w("Ballot via ballot/client") / w("etcd via etcd3 (gRPC)")) * 100) / 100,
        "ballot/client coalescing : one request per put":
          Math.round(
            (w("Ballot via ballot/client") / w("Ballot via ballot/client, one request per put (before)")) *
              100,
          ) / 100,
        "ballot/client one request per put : etcd3":
          Math.round(
            (w("Ballot via ballot/client, one request per put (before)") / w("etcd via etcd3 (gRPC)")) * 100,
          ) / 100,
        "Ballot HTTP : etcd gateway":
          Math.round((w("Ballot HTTP via undici Pool") / w("etcd JSON gateway via undici Pool")) * 100) / 100,
      };
      row.ballotTermAfter = Math.max(...(await termOf()));
      console.log(`  ratios ${JSON.stringify(row.ratios)} term ${row.ballotTermAfter}`);
      writes.push(row);
    }
  }
  const termAfter = await termOf();
  const reads: Record<string, unknown>[] = [];
  for (const consistency of ["linearizable", "lease", "local"] as const) {
    const f = await drive(64, (i) => client.get(`k${i % KEYS}`, { consistency }));
    reads.push({ k: 64, consistency, ...f });
    console.log(`read K=64 ${consistency.padEnd(12)} ${f.opsPerSec} r/s p50 ${f.p50Ms} p99 ${f.p99Ms}`);
  }
  out.ballotTerm = { before: termBefore, after: termAfter };
  if (termAfter.join() !== termBefore.join()) {
    // What the members said about it: which member campaigned, and why (a leader change under load is a bug).
    out.ballotLeadershipLog = ballot.ids
      .flatMap((id) => (ballot.logs.get(id) ?? []).map((l) => `${id}: ${l}`))
      .filter((l) => /became leader|leader is|campaign|election|stepp|lost|quorum|stall|lag/i.test(l))
      .slice(-40);
    console.log((out.ballotLeadershipLog as string[]).join("\n"));
  }
  out.writes = writes;
  out.readsViaBallotClient = reads;
  console.log(`Ballot term before ${termBefore.join(",")} after ${termAfter.join(",")}`);
  client.close();
  single.close();
  etcd3.close();
  writeFileSync(
    new URL("../../../bench/results/client.json", import.meta.url),
    `${JSON.stringify(out, null, 2)}\n`,
  );
} finally {
  await ballot.stop();
  etcd.stop();
}
