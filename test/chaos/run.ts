/**
 * One chaos run against real processes: a 3- or 5-node cluster (cluster.ts), concurrent clients
 * doing reads, writes, deletes and compare-and-set on a few keys (so they conflict), watchers
 * that reconnect to random nodes, and leader-only jobs (ballot/client elections) writing fenced
 * records — while faults are injected and healed in a cycle from a seeded schedule. Then every
 * fault is healed and the history is checked: linearizable (unknown outcomes may or may not have
 * happened), watch streams in order with nothing missing or repeated, and no two job holders
 * acting at once. With `partitions`, the nodes run that many Raft groups (`--partitions`): keys
 * spread over them (linearizability is per key, so the history is checked as one), each watcher
 * follows one partition (a watch spans one), and every partition must have a leader once healed.
 * Owns the run's folder: removed on success, kept (history, summary, node logs)
 * on failure. Must stop every process and proxy it started, whatever happens.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { BallotClient } from "../../src/client/index.js";
import { Partitioner } from "../../src/kv/partitioner.js";
import { randomInt, seededRandom } from "../../src/raft/random.js";
import { sleep } from "../integration/procs.js";
import {
  checkLinearizable,
  type KvInput,
  type KvOutput,
  kvModel,
  type Operation,
} from "../lib/linearizability.js";
import { ChaosCluster } from "./cluster.js";

export const FAULTS = [
  "kill-random",
  "kill-leader",
  "pause",
  "partition-leader",
  "partition-split",
  "one-way",
  "slow-disk",
] as const;
export type Fault = (typeof FAULTS)[number];

export interface ChaosOptions {
  readonly seed: number;
  readonly nodes: 3 | 5;
  readonly seconds: number;
  readonly faults?: readonly Fault[];
  readonly clients?: number;
  readonly keys?: number;
  readonly electionTimeoutMs?: number;
  /**
   * Every node runs with --follower-read-leases, and reads ask for `?consistency=lease` on
   * whichever node they reach (answered from that node's read lease when it holds one).
   */
  readonly followerReadLeases?: boolean;
  /** Raft groups per node (`ballot start --partitions`); default 1. */
  readonly partitions?: number;
  /** Where to keep a failed run's artifacts (default: the OS temp dir). */
  readonly baseDir?: string;
  readonly log?: (line: string) => void;
}

export interface ChaosSummary {
  seed: number;
  nodes: number;
  seconds: number;
  followerReadLeases: boolean;
  partitions: number;
  operations: number;
  ok: number;
  failed: number;
  unknown: number;
  faults: Record<string, number>;
  linearizable: boolean | "unknown";
  watch: { events: number; reconnects: number; resyncs: number; ok: boolean };
  jobs: { leaderships: number; fencedWrites: number; ok: boolean };
  longestWriteUnavailabilityMs: number;
  passed: boolean;
  problems: string[];
  artifacts?: string;
}

type Op = Operation<KvInput, KvOutput>;

/** One HTTP call to a node, following the leader's redirects. */
async function call(
  url: string,
  method: string,
  body: unknown,
  headers: Record<string, string>,
  timeoutMs: number,
): Promise<{ status: number; body: any } | { error: "refused" | "unknown" }> {
  let target = url;
  for (let hop = 0; hop < 3; hop++) {
    try {
      const res = await fetch(target, {
        method,
        headers: body === undefined ? headers : { "Content-Type": "application/json", ...headers },
        body: body === undefined ? undefined : JSON.stringify(body),
        redirect: "manual",
        signal: AbortSignal.timeout(timeoutMs),
      });
      const text = await res.text();
      if (res.status === 307) {
        target = res.headers.get("location") ?? target;
        continue;
      }
      let parsed: unknown = text;
      try {
        parsed = JSON.parse(text);
      } catch {}
      return { status: res.status, body: parsed };
    } catch (e) {
      // Only a refused connection proves the request never arrived.
      const code = (e as { cause?: { code?: string } }).cause?.code;
      return { error: code === "ECONNREFUSED" ? "refused" : "unknown" };
    }
  }
  return { error: "refused" }; // redirected in circles: never accepted
}

export async function runChaos(opts: ChaosOptions): Promise<ChaosSummary> {
  const rand = seededRandom(opts.seed);
  const pick = <T>(xs: readonly T[]): T => xs[randomInt(rand, 0, xs.length)]!;
  const log = opts.log ?? (() => {});
  const faultsEnabled = opts.faults ?? FAULTS;
  const ET = opts.electionTimeoutMs ?? 500;
  const dir = mkdtempSync(join(opts.baseDir ?? tmpdir(), `ballot-chaos-${opts.seed}-`));
  const partitions = opts.partitions ?? 1;
  const partitioner = new Partitioner(partitions);
  const keys = Array.from({ length: opts.keys ?? Math.max(4, partitions) }, (_, i) => `k${i}`);
  /** A key of partition `p` for the watchers' sentinel ("watch-end" with one partition). */
  const sentinelKey = (p: number): string => {
    if (partitions === 1) return "watch-end";
    for (let i = 0; ; i++) if (partitioner.of(`watch-end-${i}`) === p) return `watch-end-${i}`;
  };
  const history: Op[] = [];
  const problems: string[] = [];
  const faultCounts: Record<string, number> = {};
  let okCount = 0;
  let failedCount = 0;
  let unknownCount = 0;
  const writeOkTimes: number[] = [];
  const t0 = performance.now();
  const leases = opts.followerReadLeases ?? false;
  const cluster = await ChaosCluster.start({
    nodes: opts.nodes,
    dir,
    electionTimeoutMs: ET,
    extraArgs: [
      ...(leases ? ["--follower-read-leases"] : []),
      ...(partitions > 1 ? ["--partitions", String(partitions)] : []),
    ],
  });
  const readQuery = leases ? "?consistency=lease" : "";
  const stopAll = new AbortController();
  const clients: BallotClient[] = [];
  try {
    await cluster.waitForLeader();

    // --- the KV workload: each client one op at a time, against a random node.
    let seq = 0;
    const clientLoop = async (clientId: number): Promise<void> => {
      const r = seededRandom(opts.seed * 1000 + clientId);
      while (!stopAll.signal.aborted) {
        const key = keys[randomInt(r, 0, keys.length)]!;
        const node = cluster.urls[randomInt(r, 0, cluster.urls.length)]!;
        const roll = r();
        const record = (
          input: KvInput,
          callTime: number,
          res: Awaited<ReturnType<typeof call>>,
          ok?: boolean,
        ) => {
          if ("error" in res) {
            if (res.error === "refused" || input.op === "get") failedCount++;
            else {
              unknownCount++;
              history.push({ clientId, input, output: undefined, callTime, returnTime: Infinity });
            }
            return;
          }
          if (res.status === 503 || (res.status >= 400 && res.status !== 404 && res.status !== 412)) {
            if (res.status === 504 && input.op !== "get") {
              unknownCount++;
              history.push({ clientId, input, output: undefined, callTime, returnTime: Infinity });
            } else failedCount++;
            return;
          }
          okCount++;
          const returnTime = performance.now();
          let output: KvOutput;
          if (input.op === "get")
            output = { value: res.status === 404 ? null : JSON.stringify(res.body.value) };
          else output = { ok: ok ?? true };
          if (input.op !== "get" && (ok ?? true)) writeOkTimes.push(returnTime);
          history.push({ clientId, input, output, callTime, returnTime });
        };
        const url = `${node}/v1/kv/${key}`;
        if (roll < 0.4) {
          const callTime = performance.now();
          record({ op: "get", key }, callTime, await call(`${url}${readQuery}`, "GET", undefined, {}, 3000));
        } else if (roll < 0.7) {
          const value = `c${clientId}-${++seq}`;
          const callTime = performance.now();
          record(
            { op: "put", key, value: JSON.stringify(value) },
            callTime,
            await call(url, "PUT", { value }, {}, 3000),
          );
        } else if (roll < 0.8) {
          const callTime = performance.now();
          const res = await call(url, "DELETE", undefined, {}, 3000);
          record({ op: "delete", key }, callTime, res);
        } else {
          // Compare-and-set: read, then write conditionally on the revision read. Values are
          // unique, so "the revision I read" and "the value I read" name the same state.
          let callTime = performance.now();
          const read = await call(`${url}${readQuery}`, "GET", undefined, {}, 3000);
          record({ op: "get", key }, callTime, read);
          if ("error" in read || (read.status !== 200 && read.status !== 404)) continue;
          const expected = read.status === 404 ? null : JSON.stringify(read.body.value);
          const value = `c${clientId}-${++seq}`;
          const cond: Record<string, string> =
            read.status === 404 ? { "If-None-Match": "*" } : { "If-Match": `"${read.body.revision}"` };
          callTime = performance.now();
          const res = await call(url, "PUT", { value }, cond, 3000);
          const input: KvInput = { op: "cas", key, expected, value: JSON.stringify(value) };
          if (!("error" in res) && res.status === 412) record(input, callTime, res, false);
          else record(input, callTime, res, true);
        }
      }
    };

    // --- watchers: every change of every key, reconnecting to random nodes with Last-Event-ID.
    interface Seen {
      rev: number;
      key: string;
      type: string;
      value?: string;
    }
    const watchers: {
      events: Seen[];
      last: number;
      reconnects: number;
      resyncs: number;
      base: Map<string, Seen>;
      /** The partition it follows, as request headers (none with one partition). */
      scope: Record<string, string>;
      partition: number;
    }[] = [];
    const watchLoop = async (w: (typeof watchers)[number], r: () => number): Promise<void> => {
      while (!stopAll.signal.aborted) {
        const node = cluster.urls[Math.floor(r() * cluster.urls.length)]!;
        const ctl = new AbortController();
        const stop = () => ctl.abort();
        stopAll.signal.addEventListener("abort", stop, { once: true });
        let idle: NodeJS.Timeout | undefined;
        const kick = () => {
          clearTimeout(idle);
          idle = setTimeout(() => ctl.abort(), 3000);
        };
        try {
          kick();
          const res = await fetch(`${node}/v1/watch?prefix=`, {
            headers: w.last > 0 ? { ...w.scope, "Last-Event-ID": String(w.last) } : w.scope,
            signal: ctl.signal,
          });
          if (res.status === 410) {
            // This node's history does not reach back: start over from a full read.
            w.resyncs++;
            await res.text();
            const all = await call(`${node}/v1/kv?prefix=&limit=10000`, "GET", undefined, w.scope, 3000);
            if ("error" in all || all.status !== 200) continue;
            w.base = new Map();
            for (const kv of all.body.kvs as { key: string; value: unknown; revision: number }[])
              w.base.set(kv.key, {
                rev: kv.revision,
                key: kv.key,
                type: "put",
                value: JSON.stringify(kv.value),
              });
            w.events.length = 0;
            w.last = all.body.revision as number;
            continue;
          }
          if (res.status !== 200 || !res.body) {
            await res.text().catch(() => {});
            continue;
          }
          let buf = "";
          const dec = new TextDecoder();
          for await (const chunk of res.body) {
            kick();
            buf += dec.decode(chunk as Uint8Array, { stream: true });
            for (let i = buf.indexOf("\n\n"); i >= 0; i = buf.indexOf("\n\n")) {
              const block = buf.slice(0, i);
              buf = buf.slice(i + 2);
              let id = 0;
              let event = "";
              let data = "";
              for (const line of block.split("\n")) {
                if (line.startsWith("id: ")) id = Number(line.slice(4));
                else if (line.startsWith("event: ")) event = line.slice(7);
                else if (line.startsWith("data: ")) data += line.slice(6);
              }
              if (event === "error") throw new Error(data);
              if (event !== "put" && event !== "delete") continue;
              const d = JSON.parse(data) as { key: string; value?: unknown };
              if (id <= w.last)
                problems.push(`watch: revision ${id} after ${w.last} (duplicate or out of order)`);
              w.last = id;
              w.events.push({
                rev: id,
                key: d.key,
                type: event,
                value: event === "put" ? JSON.stringify(d.value) : undefined,
              });
            }
          }
        } catch {
          // a dead, paused or cut-off node, or an idle stream: go elsewhere
        } finally {
          clearTimeout(idle);
          stopAll.signal.removeEventListener("abort", stop);
        }
        w.reconnects++;
        await sleep(50);
      }
    };

    // --- leader-only jobs: two holders through ballot/client, writing fenced records.
    const tenures: { runner: number; token: number; start: number; end: number }[] = [];
    let fencedWrites = 0;
    const jobHandles = [0, 1].map((runner) => {
      const client = new BallotClient({ endpoints: cluster.urls, timeoutMs: 3000 });
      clients.push(client);
      return client.election("chaos-job", { ttlSeconds: 2 }).runWhileLeader(
        async (signal, ctx) => {
          const tenure = { runner, token: ctx.fencingToken, start: performance.now(), end: Infinity };
          tenures.push(tenure);
          signal.addEventListener("abort", () => {
            tenure.end = performance.now();
          });
          while (!signal.aborted) {
            try {
              ctx.assertLeader();
              await client.put(
                "job/last",
                { runner, token: ctx.fencingToken },
                { fencingToken: ctx.fencingToken, signal },
              );
              fencedWrites++;
            } catch {
              // refused (stale), unavailable or aborted: the signal decides whether to go on
            }
            await sleep(100);
          }
          if (tenure.end === Infinity) tenure.end = performance.now();
        },
        { value: { runner }, onError: () => {} },
      );
    });

    const loops = [
      ...Array.from({ length: opts.clients ?? 6 }, (_, i) => clientLoop(i)),
      ...[0, 1].map((i) => {
        // With partitions, the two watchers follow the partition of job/last (so the fencing
        // check below sees the store's record) and another one.
        const jobs = partitioner.of("job/last");
        const partition = i === 0 ? jobs : (jobs + 1) % partitions;
        const w = {
          events: [] as Seen[],
          last: 0,
          reconnects: 0,
          resyncs: 0,
          base: new Map<string, Seen>(),
          scope:
            partitions > 1 ? { "X-Ballot-Partition": String(partition) } : ({} as Record<string, string>),
          partition,
        };
        watchers.push(w);
        return watchLoop(w, seededRandom(opts.seed * 7 + i));
      }),
    ];

    // --- the fault schedule.
    const endAt = performance.now() + opts.seconds * 1000;
    while (performance.now() < endAt) {
      await sleep(randomInt(rand, 1000, 2500));
      const fault = pick(faultsEnabled);
      faultCounts[fault] = (faultCounts[fault] ?? 0) + 1;
      const leader = (await cluster.leader()) ?? pick(cluster.ids);
      const hold = randomInt(rand, 2 * ET, 6 * ET);
      log(`${((performance.now() - t0) / 1000).toFixed(1)}s ${fault} (leader ${leader}, ${hold} ms)`);
      switch (fault) {
        case "kill-random":
        case "kill-leader": {
          const victim = fault === "kill-leader" ? leader : pick(cluster.ids);
          await cluster.kill(victim);
          await sleep(hold);
          cluster.spawn(victim);
          break;
        }
        case "pause": {
          const victim = rand() < 0.5 ? leader : pick(cluster.ids);
          cluster.pause(victim);
          await sleep(hold);
          cluster.resume(victim);
          break;
        }
        case "partition-leader":
          cluster.partition([[leader], cluster.ids.filter((id) => id !== leader)]);
          await sleep(hold);
          cluster.healNetwork();
          break;
        case "partition-split": {
          const shuffled = [...cluster.ids].sort(() => rand() - 0.5);
          const minority = shuffled.slice(0, Math.floor(cluster.ids.length / 2));
          cluster.partition([minority, shuffled.slice(minority.length)]);
          await sleep(hold);
          cluster.healNetwork();
          break;
        }
        case "one-way": {
          // The leader can hear but not speak (or a random link dies one way).
          if (rand() < 0.5)
            for (const id of cluster.ids)
              if (id !== leader) cluster.cutOneWay(leader, id);
              else {
                const from = pick(cluster.ids);
                cluster.cutOneWay(from, pick(cluster.ids.filter((id) => id !== from)));
              }
          await sleep(hold);
          cluster.healNetwork();
          break;
        }
        case "slow-disk": {
          const victim = rand() < 0.5 ? leader : pick(cluster.ids);
          cluster.toggleSlowDisk(victim);
          await sleep(hold);
          cluster.toggleSlowDisk(victim);
          break;
        }
      }
    }

    // --- heal, let the cluster settle, stop the workload.
    await cluster.healAll();
    await cluster.waitForLeader(30_000);
    await sleep(1500);
    stopAll.abort();
    await Promise.all(jobHandles.map((h) => h.stop()));
    await Promise.all(loops);

    // --- checks.
    const lin = checkLinearizable(kvModel, history, { maxSteps: 50_000_000 });
    if (lin.linearizable === false) problems.push(`not linearizable:\n${lin.explanation}`);

    // Every partition has a leader again, as every node sees it.
    if (partitions > 1) {
      const by = performance.now() + 30_000;
      let missing: string[] = ["not checked"];
      while (performance.now() < by) {
        missing = [];
        for (const [i, url] of cluster.urls.entries()) {
          const r = await call(`${url}/v1/cluster`, "GET", undefined, {}, 3000);
          if ("error" in r || r.status !== 200) {
            missing.push(`${cluster.ids[i]}: no answer`);
            continue;
          }
          for (const p of r.body.partitions as { id: number; leader: unknown }[])
            if (p.leader === null) missing.push(`${cluster.ids[i]}: partition ${p.id}`);
        }
        if (missing.length === 0) break;
        await sleep(250);
      }
      if (missing.length > 0)
        problems.push(`partitions without a leader 30 s after healing: ${missing.join(", ")}`);
    }

    // Watch: a sentinel write every watcher must see (in the partition it follows), then each
    // key's last event = its final state.
    let watchOk = true;
    for (const [i, w] of watchers.entries()) {
      // Just healed, the cluster may still move its leader once: retry for a while, and report the
      // answers if it never settles (that would be a liveness bug).
      let leaderUrl = "";
      let sentinel: Awaited<ReturnType<typeof call>> = { error: "unknown" };
      let final: Awaited<ReturnType<typeof call>> = { error: "unknown" };
      const settleBy = performance.now() + 30_000;
      while (performance.now() < settleBy) {
        leaderUrl = cluster.url(await cluster.waitForLeader(30_000));
        sentinel = await call(
          `${leaderUrl}/v1/kv/${sentinelKey(w.partition)}`,
          "PUT",
          { value: 1 },
          {},
          5000,
        );
        if ("error" in sentinel || sentinel.status !== 200) {
          await sleep(250);
          continue;
        }
        final = await call(`${leaderUrl}/v1/kv?prefix=&limit=10000`, "GET", undefined, w.scope, 5000);
        if (!("error" in final) && final.status === 200) break;
        await sleep(250);
      }
      if ("error" in sentinel || "error" in final || sentinel.status !== 200 || final.status !== 200) {
        const show = (r: typeof sentinel) =>
          "error" in r ? r.error : `${r.status} ${JSON.stringify(r.body)}`;
        problems.push(
          `watch ${i}: could not write and read the final state within 30 s of healing: sentinel ${show(sentinel)}, read ${show(final)}`,
        );
        watchOk = false;
        continue;
      }
      const endRev = sentinel.body.revision as number;
      const finalKvs = new Map(
        (final.body.kvs as { key: string; value: unknown; revision: number }[]).map((kv) => [kv.key, kv]),
      );
      // Catch up: the watch loops stopped; one more read with Last-Event-ID (from the node that
      // answered the sentinel: with partitions, any node serves a watch of any partition).
      const rest = await fetch(`${leaderUrl}/v1/watch?prefix=`, {
        headers: { ...w.scope, "Last-Event-ID": String(w.last) },
        signal: AbortSignal.timeout(2000),
      })
        .then(async (res) => {
          let text = "";
          try {
            for await (const c of res.body!) {
              text += new TextDecoder().decode(c as Uint8Array);
              if (text.includes(`id: ${endRev}\n`)) break;
            }
          } catch {}
          return text;
        })
        .catch(() => "");
      for (const block of rest.split("\n\n")) {
        const id = Number(/^id: (\d+)$/m.exec(block)?.[1] ?? 0);
        const event = /^event: (\w+)$/m.exec(block)?.[1];
        const data = /^data: (.*)$/m.exec(block)?.[1];
        if (!id || !data || (event !== "put" && event !== "delete")) continue;
        if (id <= w.last) problems.push(`watch ${i}: revision ${id} after ${w.last} on catch-up`);
        w.last = id;
        const d = JSON.parse(data) as { key: string; value?: unknown };
        w.events.push({
          rev: id,
          key: d.key,
          type: event,
          value: event === "put" ? JSON.stringify(d.value) : undefined,
        });
      }
      const lastByKey = new Map(w.base);
      for (const e of w.events) lastByKey.set(e.key, e);
      if (w.last < endRev) {
        problems.push(`watch ${i}: stopped at revision ${w.last}, before the sentinel ${endRev}`);
        watchOk = false;
        continue;
      }
      for (const key of new Set([...lastByKey.keys(), ...finalKvs.keys()])) {
        const e = lastByKey.get(key);
        const kv = finalKvs.get(key);
        const seen = e && e.type === "put" ? e.value : undefined;
        const actual = kv ? JSON.stringify(kv.value) : undefined;
        if (seen !== actual) {
          problems.push(
            `watch ${i}: key ${key} last seen ${seen ?? "deleted"}, but it is ${actual ?? "absent"}`,
          );
          watchOk = false;
        }
      }
    }
    // Two watchers of one partition must have seen the same event at every revision both saw.
    const [a, b] = watchers;
    if (a && b && a.partition === b.partition) {
      const byRev = new Map(a.events.map((e) => [e.rev, e]));
      for (const e of b.events) {
        const o = byRev.get(e.rev);
        if (o && (o.key !== e.key || o.type !== e.type || o.value !== e.value)) {
          problems.push(`watchers disagree at revision ${e.rev}`);
          watchOk = false;
        }
      }
    }

    // Jobs: tenures never overlap, and tokens grow from one holder to the next.
    let jobsOk = true;
    const sorted = [...tenures].sort((x, y) => x.start - y.start);
    for (let i = 1; i < sorted.length; i++) {
      const prev = sorted[i - 1]!;
      const cur = sorted[i]!;
      if (cur.start < prev.end && cur.runner !== prev.runner) {
        problems.push(
          `jobs overlap: runner ${prev.runner} (token ${prev.token}) and ${cur.runner} (token ${cur.token})`,
        );
        jobsOk = false;
      }
      if (cur.token <= prev.token && cur.runner !== prev.runner) {
        problems.push(`job token did not grow: ${prev.token} then ${cur.token}`);
        jobsOk = false;
      }
    }
    // The store's own record of fenced writes, as the watchers saw it: tokens never go down.
    for (const [i, w] of watchers.entries()) {
      let prev = 0;
      for (const e of w.events) {
        if (e.key !== "job/last" || e.type !== "put" || e.value === undefined) continue;
        const token = (JSON.parse(e.value) as { token: number }).token;
        if (token < prev) {
          problems.push(`watch ${i}: job/last accepted token ${token} after ${prev} (revision ${e.rev})`);
          jobsOk = false;
        }
        prev = Math.max(prev, token);
      }
    }
    if (watchers.length > 0 && problems.some((p) => p.startsWith("watch"))) watchOk = false;

    let longest = 0;
    const times = [t0, ...writeOkTimes.sort((x, y) => x - y)];
    for (let i = 1; i < times.length; i++) longest = Math.max(longest, times[i]! - times[i - 1]!);

    const summary: ChaosSummary = {
      seed: opts.seed,
      nodes: opts.nodes,
      seconds: opts.seconds,
      followerReadLeases: leases,
      partitions,
      operations: okCount + failedCount + unknownCount,
      ok: okCount,
      failed: failedCount,
      unknown: unknownCount,
      faults: faultCounts,
      linearizable: lin.linearizable,
      watch: {
        events: watchers.reduce((n, w) => n + w.events.length, 0),
        reconnects: watchers.reduce((n, w) => n + w.reconnects, 0),
        resyncs: watchers.reduce((n, w) => n + w.resyncs, 0),
        ok: watchOk,
      },
      jobs: { leaderships: tenures.length, fencedWrites, ok: jobsOk },
      longestWriteUnavailabilityMs: Math.round(longest),
      passed: problems.length === 0 && lin.linearizable !== false,
      problems,
    };
    if (!summary.passed) {
      writeFileSync(join(dir, "history.json"), JSON.stringify(history));
      writeFileSync(join(dir, "summary.json"), `${JSON.stringify(summary, null, 2)}\n`);
      summary.artifacts = dir;
    }
    return summary;
  } catch (e) {
    writeFileSync(join(dir, "error.txt"), String((e as Error).stack ?? e));
    writeFileSync(join(dir, "history.json"), JSON.stringify(history));
    throw new Error(`chaos run failed: ${(e as Error).message} (artifacts in ${dir})`);
  } finally {
    stopAll.abort();
    for (const c of clients) c.close();
    await cluster.stop();
    // A passing run leaves nothing behind.
    if (problems.length === 0) {
      try {
        const fs = await import("node:fs");
        if (!fs.existsSync(join(dir, "summary.json")) && !fs.existsSync(join(dir, "error.txt")))
          rmSync(dir, { recursive: true, force: true });
      } catch {}
    }
  }
}
