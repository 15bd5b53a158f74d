/**
 * The leader-election seed, on Ballot: three instances of one service ("regions"), each running
 * this same code; only the elected, healthy leader runs a periodic job, which records
 * `{instance, fencingToken, tick}` in a store that refuses stale fencing tokens. When the leader
 * dies, pauses or is cut off, its job is stopped (its signal aborts) before another instance can
 * be elected, and whatever it still tries to write is refused by the store.
 *
 * Three ways to hold the election, one job:
 *   --mode embedded   each instance is a Ballot node (consensus in-process, node.leadership);
 *                     records go to the cluster's own key-value store.
 *   --mode client     instances use a separate Ballot cluster (--endpoints) through ballot/client;
 *                     records go to that cluster.
 *   --mode etcd       instances use an existing etcd (--etcd) through ballot/etcd; records go to
 *                     etcd, fenced by a compare-and-swap transaction on a fence key.
 *
 *   node dist/examples/leader-only-job/job.js --mode embedded --id n1 --data-dir ./data/n1 \
 *        --members n1=http://127.0.0.1:7001,n2=http://127.0.0.1:7002,n3=http://127.0.0.1:7003
 *
 * Partitioned (--partitions P): the work is split by user id into P partitions, one leader each,
 * spread over the running instances; an instance's job for partition i handles the users that
 * hash to i and records under job/last/p<i>, fenced by that partition's own token. With --mode
 * client or etcd, each partition is an election (each instance leads at most ceil(P / live)); a
 * dead instance's partitions move to the others once its leases expire, a new instance takes its
 * share. With --mode embedded, the consensus itself is partitioned (`ballot start --partitions P`):
 * each partition is a Raft group led by one instance (node.partitions.runWhileLeader), its records
 * go to that group's own store (under a key of that partition, job/last/p<i>.<n>), and a dead
 * instance's partitions are led by the others within about two election timeouts.
 *
 *   node dist/examples/leader-only-job/job.js --mode client --id j1 --endpoints http://127.0.0.1:2379 --partitions 6
 *
 * Each instance prints one JSON line per event (elected, tick, stopped) on stdout.
 * (An application outside this repository imports from "ballot", "ballot/client", "ballot/etcd".)
 */
import { setTimeout as sleep } from "node:timers/promises";
import { parseArgs } from "node:util";
import { parseMembers } from "../../src/cli/flags.js";
import type { Election, ElectionJobContext } from "../../src/client/election.js";
import { BallotClient, PartitionedElection } from "../../src/client/index.js";
import { encodeCommand, type KvResult, Partitioner, startServer } from "../../src/index.js";

const { values } = parseArgs({
  options: {
    mode: { type: "string", default: "embedded" },
    id: { type: "string" },
    "data-dir": { type: "string" },
    members: { type: "string" },
    listen: { type: "string" },
    endpoints: { type: "string" },
    etcd: { type: "string" },
    "interval-ms": { type: "string", default: "200" },
    ttl: { type: "string", default: "2" },
    "election-timeout": { type: "string", default: "500" },
    partitions: { type: "string" },
  },
});
const fail = (msg: string): never => {
  console.error(`leader-only-job: ${msg}`);
  process.exit(2);
};
const instance = values.id ?? fail("--id is required");
const intervalMs = Number(values["interval-ms"]);
const ttlSeconds = Number(values.ttl);
const partitions = values.partitions === undefined ? undefined : Number(values.partitions);
if (partitions !== undefined && !(Number.isInteger(partitions) && partitions >= 1 && partitions <= 1024))
  fail("--partitions must be a whole number from 1 to 1024");
/** The users the work is about; a user belongs to the partition its id hashes to (FNV-1a). */
const USERS = Array.from({ length: 24 }, (_, i) => `user${i + 1}`);
const partitionOf = (user: string, p: number): number => {
  let h = 2166136261;
  for (let i = 0; i < user.length; i++) h = Math.imul(h ^ user.charCodeAt(i), 16777619);
  return (h >>> 0) % p;
};
const print = (o: Record<string, unknown>): void => {
  process.stdout.write(`${JSON.stringify({ instance, at: Date.now(), ...o })}\n`);
};

/** Where records go. `write` resolves true when accepted, false when refused as stale. */
interface FencedStore {
  /** `key` is job/last, or job/last/p<i> for partition i: each has its own fence. */
  write(key: string, record: Record<string, unknown>, fencingToken: number): Promise<boolean>;
  /** Where partition i's records go, when the store decides it (embedded: a key of that partition). */
  keyFor?(partition: number): string;
}

/** The job: the same code whichever way leadership is held, for the whole work or one partition. */
async function job(
  store: FencedStore,
  signal: AbortSignal,
  ctx: Pick<ElectionJobContext, "fencingToken" | "assertLeader">,
  partition?: number,
): Promise<void> {
  const key = partition === undefined ? "job/last" : (store.keyFor?.(partition) ?? `job/last/p${partition}`);
  const part =
    partition === undefined
      ? {}
      : { partition, users: USERS.filter((u) => partitionOf(u, partitions!) === partition) };
  print({ event: "elected", fencingToken: ctx.fencingToken, ...part });
  const partOnly = partition === undefined ? {} : { partition };
  const aborted = new Promise<"aborted">((resolve) => {
    if (signal.aborted) resolve("aborted");
    signal.addEventListener("abort", () => resolve("aborted"), { once: true });
  });
  for (let tick = 1; !signal.aborted; tick++) {
    try {
      // Right before acting: a process that was paused learns here that its leadership is gone.
      ctx.assertLeader();
    } catch {
      break;
    }
    // An operation in flight when leadership goes is abandoned at once, not awaited: the store
    // refuses it anyway if it lands late, and the job must be seen to stop now.
    const write = store.write(
      key,
      { instance, fencingToken: ctx.fencingToken, tick, ...partOnly },
      ctx.fencingToken,
    );
    const accepted = await Promise.race([write, aborted]).catch((e: Error) => {
      print({ event: "write-failed", fencingToken: ctx.fencingToken, tick, error: e.message, ...partOnly });
      return null;
    });
    if (accepted === "aborted") {
      write.catch(() => {});
      break;
    }
    if (accepted !== null)
      print({ event: "tick", fencingToken: ctx.fencingToken, tick, accepted, ...partOnly });
    await sleep(intervalMs, undefined, { signal }).catch(() => {});
  }
  print({
    event: "stopped",
    fencingToken: ctx.fencingToken,
    reason: String(signal.reason ?? "returned"),
    ...partOnly,
  });
}

const shutdown: (() => Promise<void>)[] = [];
for (const sig of ["SIGINT", "SIGTERM"] as const) {
  process.once(sig, () => {
    void Promise.all(shutdown.map((f) => f())).finally(() => process.exit(0));
  });
}

if (values.mode === "embedded") {
  const members = parseMembers(values.members ?? fail("--members is required"));
  const running = await startServer({
    id: instance,
    listen: values.listen ?? members.get(instance) ?? fail(`--members does not list ${instance}`),
    members,
    dataDir: values["data-dir"] ?? fail("--data-dir is required"),
    electionTimeoutMs: Number(values["election-timeout"]),
    partitions,
    logger: { info: () => {}, warn: () => {}, error: (m) => console.error(m) },
  });
  // The replicated store itself refuses a token lower than one it has accepted for the key.
  const put = (node: typeof running.node, key: string, record: Record<string, unknown>, fence: number) =>
    node
      .propose(encodeCommand({ op: "put", key, value: JSON.stringify(record), fence }))
      .then((r: KvResult) => r.ok);
  let handle: { stop(): Promise<void> };
  const partitioned = running.partitioned;
  if (partitioned) {
    // Each partition's records go to its own group, under a key the cluster's rule puts there.
    const rule = new Partitioner(partitions!);
    const keyFor = (i: number): string => {
      for (let n = 0; ; n++) if (rule.of(`job/last/p${i}.${n}`) === i) return `job/last/p${i}.${n}`;
    };
    const store: FencedStore = {
      keyFor,
      write: (key, record, fence) => put(partitioned.partitions.get(rule.of(key)), key, record, fence),
    };
    handle = partitioned.partitions.runWhileLeader((signal, ctx) => job(store, signal, ctx, ctx.partition));
  } else {
    const store: FencedStore = { write: (key, record, fence) => put(running.node, key, record, fence) };
    handle = running.node.leadership.runWhileLeader((signal, ctx) => job(store, signal, ctx));
  }
  shutdown.push(async () => {
    await handle.stop();
    await running.stop();
  });
  print({
    event: "started",
    mode: "embedded",
    url: running.url,
    ...(partitions === undefined ? {} : { partitions }),
  });
} else {
  let election: Election | PartitionedElection;
  let store: FencedStore;
  if (values.mode === "client") {
    const endpoints = (values.endpoints ?? fail("--endpoints is required")).split(",");
    const client = new BallotClient({ endpoints });
    election =
      partitions === undefined
        ? client.election("leader-only-job", { ttlSeconds })
        : client.election("leader-only-job", { ttlSeconds, partitions });
    store = {
      async write(key, record, fencingToken) {
        try {
          await client.put(key, record, { fencingToken });
          return true;
        } catch (e) {
          if ((e as { code?: string }).code === "stale_token") return false;
          throw e;
        }
      },
    };
  } else if (values.mode === "etcd") {
    // Loaded only here: etcd3 is an optional dependency, needed only for this mode.
    const { Etcd3 } = await import("etcd3");
    const { etcdElection } = await import("../../src/etcd/index.js");
    const etcd = new Etcd3({ hosts: (values.etcd ?? fail("--etcd is required")).split(",") });
    election =
      partitions === undefined
        ? etcdElection(etcd, "leader-only-job", { ttlSeconds })
        : etcdElection(etcd, "leader-only-job", { ttlSeconds, partitions });
    // etcd has no fencing of its own: a transaction accepts the write only if no higher token
    // was stored before. Tokens are zero-padded so etcd's byte comparison is numeric.
    const pad = (n: number): string => String(n).padStart(20, "0");
    store = {
      async write(key, record, fencingToken) {
        const fence = key.replace(/^job\/last/, "job/fence");
        await etcd
          .if(fence, "Create", "==", 0)
          .then(etcd.put(fence).value(pad(0)))
          .commit();
        const r = await etcd
          .if(fence, "Value", "<", pad(fencingToken + 1))
          .then(etcd.put(fence).value(pad(fencingToken)), etcd.put(key).value(JSON.stringify(record)))
          .commit();
        return r.succeeded;
      },
    };
  } else {
    fail("--mode must be embedded, client or etcd");
  }
  const onError = (e: unknown): void => print({ event: "error", error: (e as Error).message });
  const e = election!;
  const handle =
    e instanceof PartitionedElection
      ? e.runForEach((signal, ctx) => job(store!, signal, ctx, ctx.partition), {
          value: { instance },
          onError,
          onChange: (held) => print({ event: "holding", partitions: held }),
        })
      : e.runWhileLeader((signal, ctx) => job(store!, signal, ctx), { value: { instance }, onError });
  shutdown.push(() => handle.stop());
  print({ event: "started", mode: values.mode, ...(partitions === undefined ? {} : { partitions }) });
}
