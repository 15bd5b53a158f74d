/**
 * Leader-only jobs across regions (70/150/220 ms): the job of one region's instance is cut off
 * with its region, and another region's instance takes over — never overlapping in time, every
 * run with a higher fencing token — in both forms: consensus embedded in the instances
 * (examples/leader-only-job, node.leadership.runWhileLeader), and `ballot elect` runners, one per
 * region, holding an election on a Ballot cluster laid out in the same regions. The handover time
 * is printed; it is bounded by the cluster's failover (embedded) or the election's TTL (elect).
 */
import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { checkHistory, JOB, type JobLine } from "../integration/jobs.js";
import { CLI, readEvents, sleep } from "../integration/procs.js";
import { failoverBoundMs, GeoCluster } from "../lib/geo-cluster.js";

const REGIONS = { A: ["n1"], B: ["n2"], C: ["n3"] };
const RTT = { "A-B": 70, "A-C": 150, "B-C": 220 };
/** Election rounds (a split vote costs one) before the test calls it a failure. */
const MAX_ROUNDS = 6;
const WORKER = new URL("../cli/fixtures/worker.js", import.meta.url).pathname;

/** The no-overlap rules of test/integration/jobs.ts, on the instances' own reports. */
function checkNoOverlap(lines: readonly JobLine[]): void {
  const owner = new Map<number, string>();
  for (const l of lines) {
    if (l.fencingToken === undefined || (l.event !== "tick" && l.event !== "elected")) continue;
    const o = owner.get(l.fencingToken);
    if (o && o !== l.instance) assert.fail(`token ${l.fencingToken} held by ${o} and ${l.instance}`);
    owner.set(l.fencingToken, l.instance);
  }
  const ticks = lines.filter((l) => l.event === "tick");
  for (const t of ticks) {
    const later = ticks.find(
      (x) => x.instance !== t.instance && x.fencingToken! > t.fencingToken! && x.at < t.at,
    );
    if (later && t.accepted)
      assert.fail(
        `${t.instance} wrote with token ${t.fencingToken} after ${later.instance} acted with ${later.fencingToken}`,
      );
  }
}

async function waitFor<T>(
  what: string,
  probe: () => T | undefined,
  timeoutMs: number,
  tail = "",
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = probe();
    if (v !== undefined) return v;
    if (Date.now() > deadline)
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}\n${tail}`);
    await sleep(20);
  }
}

describe("geo: leader-only job embedded (node.leadership), its region cut off", { timeout: 90_000 }, () => {
  let g: GeoCluster;
  const lines: JobLine[] = [];
  before(async () => {
    g = await GeoCluster.start({
      regions: REGIONS,
      rttMs: RTT,
      program: {
        script: JOB,
        // The example takes no --heartbeat-interval: it keeps the 100 ms default, below the RTT.
        args: (id, v) => [
          "--mode",
          "embedded",
          "--id",
          id,
          "--data-dir",
          v.dataDir,
          "--members",
          v.members,
          "--listen",
          v.listen,
          "--election-timeout",
          String(v.timing.electionTimeoutMs),
        ],
      },
      onLine: (_id, line) => {
        if (line.startsWith("{")) lines.push(JSON.parse(line) as JobLine);
      },
    });
  });
  after(async () => {
    await g?.stop();
  });

  it("the job stops in the cut-off region before another region's instance is elected, and never overlaps", async () => {
    const last = () => [...lines].reverse().find((l) => l.event === "tick" && l.accepted);
    const old = await waitFor("a job run", last, 20_000, g.tail());
    const region = g.regionOf(old.instance);
    const others = g.regionNames.filter((r) => r !== region);
    const rtt = g.rtt(others[0]!, others[1]!)!;
    const oldTerm = (await g.status(old.instance)).term as number;
    await sleep(1000);
    const t0 = Date.now();
    g.cutRegion(region);
    const next = await waitFor(
      "another instance's job run",
      () => lines.find((l) => l.event === "tick" && l.accepted && l.at >= t0 && l.instance !== old.instance),
      failoverBoundMs(g.timing, rtt, 1500, MAX_ROUNDS),
      g.tail(),
    );
    // The failover's election rounds (a split vote costs one), and the job's 200 ms interval on top.
    const rounds = ((await g.status(next.instance)).term as number) - oldTerm;
    const bound = failoverBoundMs(g.timing, rtt, 1500, rounds) + 500;
    console.log(
      `# embedded job: region ${region} cut off → ${next.instance} ran the job after ${next.at - t0} ms (${rounds} election round(s), bound ${bound} ms)`,
    );
    assert.ok(next.at - t0 <= bound, `handover took ${next.at - t0} ms`);
    assert.ok(next.fencingToken! > old.fencingToken!);
    const stopped = lines.find(
      (l) => l.instance === old.instance && l.event === "stopped" && l.fencingToken === old.fencingToken,
    );
    assert.ok(stopped, "the cut-off instance stopped its job");
    const elected = lines.find(
      (l) => l.instance === next.instance && l.event === "elected" && l.fencingToken === next.fencingToken,
    )!;
    assert.ok(stopped.at <= elected.at, `old stopped at ${stopped.at}, new elected at ${elected.at}`);
    g.healRegion(region);
    await sleep(2000);
    const h = await readEvents(
      `${g.url(next.instance)}/v1/watch?prefix=job/last&fromRevision=1`,
      () => false,
      {
        timeoutMs: 1500,
      },
    );
    checkHistory(h.events.filter((e) => e.event === "put").map((e) => e.data.value));
    checkNoOverlap(lines);
  });
});

/** One CMD run of a runner, from its worker's lines. */
interface Run {
  readonly runner: string;
  readonly token: number;
  readonly pid: number;
  readonly startAt: number;
  endAt: number;
}

function runsOf(runner: string, file: string): Run[] {
  if (!existsSync(file)) return [];
  const runs: Run[] = [];
  for (const line of readFileSync(file, "utf8").split("\n")) {
    const [at, what, ...rest] = line.split(" ");
    if (!at || !what) continue;
    if (what === "start") {
      const f = Object.fromEntries(rest.map((kv) => kv.split("=") as [string, string]));
      runs.push({
        runner,
        token: Number(f.token),
        pid: Number(f.pid),
        startAt: Number(at),
        endAt: Number(at),
      });
    } else if (runs.length > 0) runs.at(-1)!.endAt = Number(at);
  }
  return runs;
}

describe("geo: `ballot elect` in every region, the holder's region cut off", { timeout: 120_000 }, () => {
  const TTL_S = 8;
  let g: GeoCluster;
  const dir = mkdtempSync(join(tmpdir(), "ballot-geo-elect-"));
  const runners = new Map<string, ChildProcess>();
  const output = new Map<string, string[]>();
  const file = (r: string) => join(dir, `${r}.log`);
  const allRuns = () => g.regionNames.flatMap((r) => runsOf(r, file(r)));

  before(async () => {
    g = await GeoCluster.start({ regions: REGIONS, rttMs: RTT });
    for (const region of g.regionNames) {
      // Its own region's node first, then the others as seen from this region.
      const local = g.nodesIn(region);
      const endpoints = [...local, ...g.ids.filter((id) => !local.includes(id))].map((id) =>
        g.clientUrl(region, id),
      );
      const p = spawn(
        process.execPath,
        [
          CLI,
          "elect",
          "geo-job",
          "--endpoints",
          endpoints.join(","),
          "--ttl",
          String(TTL_S),
          "--",
          process.execPath,
          WORKER,
          file(region),
        ],
        { stdio: ["ignore", "pipe", "pipe"] },
      );
      const out: string[] = [];
      output.set(region, out);
      p.stdout!.on("data", (d: Buffer) => out.push(d.toString()));
      p.stderr!.on("data", (d: Buffer) => out.push(d.toString()));
      runners.set(region, p);
    }
  });
  after(async () => {
    for (const p of runners.values()) if (p.exitCode === null && p.signalCode === null) p.kill("SIGKILL");
    // The guard stops CMD when its runner dies; make sure of it, by the pids the workers wrote.
    await sleep(500);
    for (const r of allRuns()) {
      try {
        process.kill(r.pid, "SIGKILL");
      } catch {
        // already gone
      }
    }
    await g?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  const tail = () => [...output].map(([r, o]) => `--- runner ${r}\n${o.join("").slice(-1500)}`).join("\n");

  it("another region's runner takes over after the TTL; the two runs never overlap and tokens grow", async () => {
    const first = await waitFor("a runner to start its command", () => allRuns()[0], 30_000, tail());
    const region = first.runner;
    await sleep(1500);
    const leaderBefore = await g.waitForLeader();
    const oldTerm = (await g.status(leaderBefore)).term as number;
    const t0 = Date.now();
    g.cutRegion(region);
    const next = await waitFor(
      "another region's run",
      () => allRuns().find((r) => r.runner !== region && r.startAt >= t0),
      TTL_S * 1000 + failoverBoundMs(g.timing, g.maxRttMs, 1500, MAX_ROUNDS),
      tail(),
    );
    const old = runsOf(region, file(region)).find((r) => r.token === first.token)!;
    // When the cluster's leader was in the cut region too, its failover comes on top of the TTL
    // (a new leader gives every lease a fresh TTL).
    const leaderAfter = await g.waitForLeader(30_000, g.nodesIn(region));
    const rounds = ((await g.status(leaderAfter)).term as number) - oldTerm;
    const bound = TTL_S * 1000 + (rounds > 0 ? failoverBoundMs(g.timing, g.maxRttMs, 0, rounds) : 0) + 2000;
    console.log(
      `# ballot elect: region ${region} cut off → its command's last sign of life after ${old.endAt - t0} ms, ` +
        `${next.runner}'s command started after ${next.startAt - t0} ms (TTL ${TTL_S} s; cluster leader ${leaderBefore} → ${leaderAfter}, bound ${bound} ms)`,
    );
    assert.ok(next.token > first.token, `token ${next.token} after ${first.token}`);
    assert.ok(
      old.endAt < next.startAt,
      `the old command ran until ${old.endAt}, the new one started at ${next.startAt}`,
    );
    assert.ok(next.startAt - t0 <= bound, `handover ${next.startAt - t0} ms`);
    g.healRegion(region);
    await sleep(2000);
    const runs = allRuns().sort((a, b) => a.token - b.token);
    for (let i = 1; i < runs.length; i++)
      assert.ok(
        runs[i - 1]!.endAt < runs[i]!.startAt,
        `run of token ${runs[i - 1]!.token} (${runs[i - 1]!.runner}) overlaps ${runs[i]!.token} (${runs[i]!.runner})`,
      );
  });
});
