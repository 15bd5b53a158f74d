/**
 * The leader-only job of examples/leader-only-job under the faults the issue names — kill -9 of
 * the leader, SIGSTOP beyond the lease then SIGCONT, and cutting the leader off — with leadership
 * held three ways: consensus embedded in the instances, a Ballot cluster through ballot/client,
 * and etcd through ballot/etcd. In every case another instance takes over within the documented
 * bound, the old leader's signal is already aborted when it could act again (and, when cut off,
 * before the new leader is elected), and the store's history never accepts a stale token.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { Etcd3 } from "etcd3";
import { type EtcdServer, startEtcd } from "../lib/etcd-server.js";
import { checkHistory, JobInstances, type JobMode } from "./jobs.js";
import { ProcCluster, readEvents, sleep } from "./procs.js";

const ET = 500;
const TTL = 2;

type Record_ = { instance: string; fencingToken: number };

async function ballotHistory(url: string): Promise<Record_[]> {
  const r = await readEvents(`${url}/v1/watch?prefix=job/last&fromRevision=1`, () => false, {
    timeoutMs: 1500,
  });
  assert.equal(r.status, 200, JSON.stringify(r.body));
  return r.events.filter((e) => e.event === "put").map((e) => e.data.value);
}

async function etcdHistory(endpoint: string): Promise<Record_[]> {
  const client = new Etcd3({ hosts: endpoint });
  try {
    const out: Record_[] = [];
    const w = await client.watch().key("job/last").startRevision("1").create();
    w.on("put", (kv) => out.push(JSON.parse(kv.value.toString()) as Record_));
    await sleep(1000);
    await w.cancel();
    return out;
  } finally {
    client.close();
  }
}

interface Setup {
  readonly mode: () => Promise<JobMode>;
  /** Documented bound from the fault to the next leader's first job run. */
  readonly boundMs: number;
  /** The store's history; `live` names an instance known to be up (embedded mode reads from it). */
  readonly history: (j: JobInstances, live: string) => Promise<Record_[]>;
  readonly teardown: () => Promise<void>;
}

function scenarios(title: string, setup: Setup): void {
  describe(title, { timeout: 240_000 }, () => {
    let j: JobInstances;
    before(async () => {
      j = await JobInstances.start(await setup.mode());
    });
    after(async () => {
      await j?.stop();
      await setup.teardown();
    });

    it("kill -9 of the leader: another instance takes over within the bound", async () => {
      const old = await j.currentLeader();
      await sleep(300);
      const t0 = Date.now();
      await j.signal(old.id, "SIGKILL");
      const next = await j.takeover(old.id, t0);
      console.log(`# ${title}: kill -9 → next leader ran the job after ${next.at - t0} ms`);
      assert.ok(next.at - t0 <= setup.boundMs, `took ${next.at - t0} ms`);
      assert.ok(next.fencingToken! > old.token);
      j.spawn(old.id);
      checkHistory(await setup.history(j, next.instance!));
      j.checkNoOverlap();
    });

    it("SIGSTOP beyond the lease, then SIGCONT: the old leader's signal is already aborted", async () => {
      await sleep(1000);
      const old = await j.currentLeader(20_000, Date.now() - 400);
      const t0 = Date.now();
      await j.signal(old.id, "SIGSTOP");
      const next = await j.takeover(old.id, t0);
      console.log(`# ${title}: SIGSTOP → next leader ran the job after ${next.at - t0} ms`);
      assert.ok(next.at - t0 <= setup.boundMs, `took ${next.at - t0} ms`);
      await sleep(500);
      const resumedAt = Date.now();
      await j.signal(old.id, "SIGCONT");
      await sleep(1500);
      const later = j.lines.filter(
        (l) => l.instance === old.id && l.at >= resumedAt && l.fencingToken === old.token,
      );
      assert.ok(
        later.every((l) => l.event === "stopped"),
        `the resumed old leader acted: ${JSON.stringify(later)}`,
      );
      assert.ok(later.length >= 1, "the old leader reported its job stopped");
      checkHistory(await setup.history(j, next.instance!));
      j.checkNoOverlap();
    });

    it("the leader cut off: its job stops before another instance is elected", async () => {
      await sleep(1000);
      const old = await j.currentLeader(20_000, Date.now() - 400);
      const t0 = Date.now();
      j.cut(old.id);
      const next = await j.takeover(old.id, t0);
      console.log(`# ${title}: cut off → next leader ran the job after ${next.at - t0} ms`);
      assert.ok(next.at - t0 <= setup.boundMs, `took ${next.at - t0} ms`);
      const stopped = j.lines.find(
        (l) => l.instance === old.id && l.event === "stopped" && l.fencingToken === old.token,
      );
      assert.ok(stopped, "the cut-off leader stopped its job");
      const elected = j.lines.find(
        (l) => l.instance === next.instance && l.event === "elected" && l.fencingToken === next.fencingToken,
      )!;
      assert.ok(stopped.at <= elected.at, `old stopped at ${stopped.at}, new elected at ${elected.at}`);
      j.heal(old.id);
      await sleep(1500);
      checkHistory(await setup.history(j, next.instance!));
      j.checkNoOverlap();
    });
  });
}

// Embedded: the randomized election timeout is up to 2 × ET, and a job interval on top.
scenarios("leader-only job, consensus embedded", {
  mode: async () => ({ mode: "embedded", electionTimeoutMs: ET }),
  boundMs: 2 * 2 * ET + 1000,
  history: (j, live) => ballotHistory(j.apiUrls.get(live)!),
  teardown: async () => {},
});

// Through a service: the lease's TTL must run out on the server first.
let cluster: ProcCluster | null = null;
scenarios("leader-only job, Ballot service via ballot/client", {
  mode: async () => {
    // Followers forward writes, so a client reaches the cluster only through its proxies (a 307
    // would hand it the leader's real address, around the cut).
    cluster = await ProcCluster.start({ electionTimeoutMs: ET, extraArgs: ["--forward-writes"] });
    return { mode: "client", endpoints: cluster.ids.map((id) => cluster!.url(id)), ttl: TTL };
  },
  boundMs: TTL * 1000 + 2000,
  history: () => ballotHistory(cluster!.url(cluster!.ids[0]!)),
  teardown: async () => {
    await cluster?.stop();
  },
});

let etcd: EtcdServer | null = null;
scenarios("leader-only job, etcd via ballot/etcd", {
  mode: async () => {
    etcd = await startEtcd();
    return { mode: "etcd", endpoint: etcd.endpoint, ttl: TTL };
  },
  boundMs: TTL * 1000 + 2000,
  history: () => etcdHistory(etcd!.endpoint),
  teardown: async () => {
    await etcd?.stop();
  },
});

/** Partition → the instance whose job for it runs now (elected, not yet stopped, not dead), from the instances' lines. */
function partitionRunners(j: JobInstances, dead: Set<string>): Map<number, string> {
  const now = new Map<number, string>();
  for (const l of j.lines) {
    if (l.partition === undefined || dead.has(l.instance)) continue;
    if (l.event === "elected") now.set(l.partition, l.instance);
    if (l.event === "stopped" && now.get(l.partition) === l.instance) now.delete(l.partition);
  }
  for (const [p, who] of now) if (dead.has(who)) now.delete(p);
  return now;
}

async function waitForJobs(j: JobInstances, what: string, cond: () => boolean, ms: number): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end)
      throw new Error(`timed out: ${what}; running ${JSON.stringify([...partitionRunners(j, new Set())])}`);
    await sleep(50);
  }
}

/**
 * SIGSTOP of `paused` until the others run every partition (`othersCover`), then SIGCONT: its old
 * jobs must report stopped (their signals aborted while it was stopped).
 */
async function pauseHandsOver(j: JobInstances, paused: string, othersCover: () => boolean): Promise<void> {
  const held = [...partitionRunners(j, new Set())].filter(([, w]) => w === paused).map(([p]) => p);
  const linesBefore = j.lines.length;
  await j.signal(paused, "SIGSTOP");
  await waitForJobs(j, "the others lead every partition while it is stopped", othersCover, 20_000);
  await j.signal(paused, "SIGCONT");
  await waitForJobs(
    j,
    "its old jobs report stopped",
    () =>
      held.every((p) =>
        j.lines
          .slice(linesBefore)
          .some((l) => l.instance === paused && l.event === "stopped" && l.partition === p),
      ),
    10_000,
  );
}

describe("leader-only job, partitioned by user id via ballot/client", { timeout: 120_000 }, () => {
  const P = 6;
  let cluster: ProcCluster;
  let j: JobInstances;
  before(async () => {
    cluster = await ProcCluster.start({ electionTimeoutMs: ET });
    j = await JobInstances.start({
      mode: "client",
      endpoints: cluster.ids.map((id) => cluster.url(id)),
      ttl: TTL,
      partitions: P,
    });
  });
  after(async () => {
    await j?.stop();
    await cluster?.stop();
  });

  const runningNow = (dead: Set<string>) => partitionRunners(j, dead);
  const share = (now: Map<number, string>, live: string[]) => {
    const counts = live.map((id) => [...now.values()].filter((w) => w === id).length);
    return now.size === P && counts.every((n) => n >= 1 && n <= Math.ceil(P / live.length));
  };
  const waitFor = (what: string, cond: () => boolean, ms: number) => waitForJobs(j, what, cond, ms);

  it("each instance leads two of six partitions; a kill -9 or a SIGSTOP moves its two to the others; every user handled once per partition", async () => {
    await waitFor("two partitions each", () => share(runningNow(new Set()), j.ids), 30_000);
    // The users are split by partition: every user in exactly one partition.
    const users = new Map<number, string[]>();
    for (const l of j.lines) if (l.event === "elected" && l.users) users.set(l.partition!, l.users);
    const all = [...users.values()].flat();
    assert.equal(all.length, 24);
    assert.equal(new Set(all).size, 24);

    const victim = "j1";
    const lost = [...runningNow(new Set())].filter(([, w]) => w === victim).map(([p]) => p);
    const t0 = Date.now();
    await j.signal(victim, "SIGKILL");
    await waitFor(
      "the others lead all six",
      () => share(runningNow(new Set([victim])), ["j2", "j3"]),
      20_000,
    );
    const movedIn = Date.now() - t0;
    console.log(
      `# partitioned job: kill -9 of ${victim} → its partitions ${lost} led elsewhere after ${movedIn} ms`,
    );
    assert.ok(movedIn <= TTL * 1000 + 5000, `took ${movedIn} ms`);
    // It comes back and gets its share again.
    j.spawn(victim);
    await waitFor("two each again", () => share(runningNow(new Set()), j.ids), 30_000);

    // SIGSTOP beyond the lease: the others take its two partitions; on SIGCONT its jobs find their
    // signals aborted (they stop, their late writes are refused by the fence), and it takes a share again.
    await pauseHandsOver(j, "j2", () => share(runningNow(new Set(["j2"])), ["j1", "j3"]));
    await waitFor("two each after the pause", () => share(runningNow(new Set()), j.ids), 30_000);

    // The store: per partition, accepted records never go back in token, and a token is one instance's.
    const r = await readEvents(
      `${cluster.url("n1")}/v1/watch?prefix=job/last/p&fromRevision=1`,
      () => false,
      {
        timeoutMs: 1500,
      },
    );
    const byPartition = new Map<number, Record_[]>();
    for (const e of r.events.filter((x) => x.event === "put")) {
      const v = e.data.value as Record_ & { partition: number };
      assert.equal(e.data.key, `job/last/p${v.partition}`);
      byPartition.set(v.partition, [...(byPartition.get(v.partition) ?? []), v]);
    }
    assert.equal(byPartition.size, P);
    for (const records of byPartition.values()) checkHistory(records);
  });
});

describe("leader-only job, partitioned consensus embedded (node.partitions.runWhileLeader)", {
  timeout: 120_000,
}, () => {
  const P = 6;
  let j: JobInstances;
  before(async () => {
    j = await JobInstances.start({ mode: "embedded", electionTimeoutMs: ET, partitions: P });
  });
  after(async () => {
    await j?.stop();
  });

  const runningNow = (dead: Set<string>) => partitionRunners(j, dead);
  const counts = (now: Map<number, string>, live: string[]) =>
    live.map((id) => [...now.values()].filter((w) => w === id).length);
  /** Every partition's job runs, on a live instance, none holding more than ceil(P / live) + 1. */
  const covered = (now: Map<number, string>, live: string[]) =>
    now.size === P && counts(now, live).every((n) => n <= Math.ceil(P / live.length) + 1);
  const balanced = (now: Map<number, string>, live: string[]) =>
    now.size === P && counts(now, live).every((n) => n === P / live.length);
  const waitFor = (what: string, cond: () => boolean, ms: number) => waitForJobs(j, what, cond, ms);

  it("two of six partitions each; kill -9, SIGSTOP and rejoin move them and back; a partition's jobs never overlap", async () => {
    await waitFor("two partitions each", () => balanced(runningNow(new Set()), j.ids), 30_000);
    const victim = "j1";
    const t0 = Date.now();
    await j.signal(victim, "SIGKILL");
    await waitFor(
      "the others lead all six",
      () => covered(runningNow(new Set([victim])), ["j2", "j3"]),
      10_000,
    );
    const movedIn = Date.now() - t0;
    console.log(
      `# partitioned consensus: kill -9 of ${victim} → all ${P} partitions led by the others after ${movedIn} ms (election timeout ${ET} ms)`,
    );
    assert.ok(movedIn <= 4 * ET + 1000, `took ${movedIn} ms`);
    j.spawn(victim);
    await waitFor("two each again", () => balanced(runningNow(new Set()), j.ids), 30_000);

    await pauseHandsOver(j, "j2", () => covered(runningNow(new Set(["j2"])), ["j1", "j3"]));
    await waitFor("two each after the pause", () => balanced(runningNow(new Set()), j.ids), 30_000);

    // Each partition's own store: accepted records never go back in token, and a token is one instance's.
    for (let p = 0; p < P; p++) {
      const r = await readEvents(
        `${j.apiUrls.get("j3")}/v1/watch?prefix=job/last/p${p}.&fromRevision=1`,
        () => false,
        {
          timeoutMs: 1000,
          headers: { "X-Ballot-Partition": String(p) },
        },
      );
      assert.equal(r.status, 200, JSON.stringify(r.body));
      const records = r.events.filter((e) => e.event === "put").map((e) => e.data.value as Record_);
      checkHistory(records);
    }
  });
});
