/**
 * Failover time of a leader-only job: from `kill -9` of the instance running the job to the next
 * instance's first job run (an accepted, fenced write), over N kills, for leadership held three
 * ways on the same machine: consensus embedded in the instances (node.leadership), a Ballot
 * service through ballot/client, and etcd through ballot/etcd. Writes bench/results/failover.json.
 *
 *   npm run bench:failover -- [--kills 20]
 *
 * The embedded figure is bounded by the election timeout (the dead leader's lease must run out
 * and a randomized timeout of 1-2x fire); the service and etcd figures by the lease TTL (the
 * dead holder's lease must expire on the server). Those are the knobs to turn.
 */
import { writeFileSync } from "node:fs";
import { parseArgs } from "node:util";
import { JobInstances, type JobMode } from "../../test/integration/jobs.js";
import { ProcCluster, sleep } from "../../test/integration/procs.js";
import { type EtcdServer, startEtcd } from "../../test/lib/etcd-server.js";
import { describeMachine } from "../machine.js";

const { values } = parseArgs({ options: { kills: { type: "string", default: "20" } } });
const KILLS = Number(values.kills);
const ELECTION_TIMEOUT_MS = 500;
const TTL_S = 2;

interface Result {
  readonly backend: string;
  readonly settings: string;
  readonly kills: number;
  readonly p50Ms: number;
  readonly p90Ms: number;
  readonly maxMs: number;
  readonly minMs: number;
  readonly samplesMs: number[];
}

const pct = (sorted: number[], p: number): number =>
  sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;

async function measure(backend: string, settings: string, mode: JobMode): Promise<Result> {
  const j = await JobInstances.start(mode);
  const samples: number[] = [];
  try {
    for (let k = 0; k < KILLS; k++) {
      const old = await j.currentLeader(30_000, Date.now() - 300);
      await sleep(300);
      const t0 = Date.now();
      await j.signal(old.id, "SIGKILL");
      const next = await j.takeover(old.id, t0, 30_000);
      samples.push(next.at - t0);
      j.spawn(old.id);
      // Let the restarted instance rejoin before the next kill.
      await sleep(1500);
      process.stderr.write(`${backend}: kill ${k + 1}/${KILLS}: ${next.at - t0} ms\n`);
    }
    j.checkNoOverlap();
  } finally {
    await j.stop();
  }
  const sorted = [...samples].sort((a, b) => a - b);
  return {
    backend,
    settings,
    kills: samples.length,
    p50Ms: pct(sorted, 50),
    p90Ms: pct(sorted, 90),
    maxMs: sorted.at(-1)!,
    minMs: sorted[0]!,
    samplesMs: samples,
  };
}

const results: Result[] = [];
results.push(
  await measure("ballot, embedded (node.leadership)", `election timeout ${ELECTION_TIMEOUT_MS} ms`, {
    mode: "embedded",
    electionTimeoutMs: ELECTION_TIMEOUT_MS,
  }),
);
const cluster = await ProcCluster.start({
  electionTimeoutMs: ELECTION_TIMEOUT_MS,
  extraArgs: ["--forward-writes"],
});
try {
  results.push(
    await measure(
      "ballot service (ballot/client)",
      `lease TTL ${TTL_S} s, cluster election timeout ${ELECTION_TIMEOUT_MS} ms`,
      {
        mode: "client",
        endpoints: cluster.ids.map((id) => cluster.url(id)),
        ttl: TTL_S,
      },
    ),
  );
} finally {
  await cluster.stop();
}
let etcd: EtcdServer | null = null;
try {
  etcd = await startEtcd();
  results.push(
    await measure("etcd 3.4 (ballot/etcd)", `lease TTL ${TTL_S} s, single etcd member`, {
      mode: "etcd",
      endpoint: etcd.endpoint,
      ttl: TTL_S,
    }),
  );
} finally {
  await etcd?.stop();
}

const out = {
  description:
    "time from kill -9 of the instance running the leader-only job to the next instance's first accepted (fenced) job write; 3 instances of examples/leader-only-job on one machine, job every 200 ms",
  date: new Date().toISOString(),
  machine: describeMachine(),
  results,
};
writeFileSync(
  new URL("../../../bench/results/failover.json", import.meta.url),
  `${JSON.stringify(out, null, 2)}\n`,
);
for (const r of results)
  console.log(
    `${r.backend.padEnd(40)} p50 ${r.p50Ms} ms  p90 ${r.p90Ms} ms  max ${r.maxMs} ms  (${r.kills} kills; ${r.settings})`,
  );
