/**
 * `ballot elect` with real processes: the runner (in this process, or as a child process that
 * tests SIGSTOP and SIGKILL), the guard, and a CMD (fixtures/worker.js) that logs to a file.
 * Leadership comes from an in-memory election (fixtures/fake-election.ts). Every test kills
 * what it started, by pid, in afterEach — also when it fails.
 */
import assert from "node:assert/strict";
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, afterEach, describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { ELECT_FLAGS, parseElect, runElect } from "../../src/cli/elect.js";
import { parseFlags } from "../../src/cli/flags.js";
import { GUARD_EXIT } from "../../src/cli/guard.js";
import { ProcCluster } from "../integration/procs.js";
import { startEtcd } from "../lib/etcd-server.js";
import { FakeElection } from "./fixtures/fake-election.js";

const fixture = (f: string) => fileURLToPath(new URL(`./fixtures/${f}`, import.meta.url));
const worker = fixture("worker.js");
const runner = fixture("runner.js");
const mainJs = fileURLToPath(new URL("../../src/cli/main.js", import.meta.url));

const dir = mkdtempSync(join(tmpdir(), "ballot-elect-"));
let files = 0;
const newFile = () => join(dir, `cmd-${++files}.log`);

/** Every pid a test started (runner, guard, CMD): killed after each test whatever happened. */
const pids = new Set<number>();
const cleanups: (() => Promise<void>)[] = [];

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Alive and not a zombie (an orphaned guard may wait for a reaper that never comes in a container). */
function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === "EPERM";
  }
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2)[0] !== "Z";
  } catch {
    return false;
  }
}

function state(pid: number): string {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  return stat.slice(stat.lastIndexOf(")") + 2)[0]!;
}

async function waitFor<T>(
  what: string,
  probe: () => T | undefined | null | false,
  timeoutMs = 5000,
): Promise<T> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const v = probe();
    if (v !== undefined && v !== null && v !== false) return v;
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await sleep(5);
  }
}

interface Start {
  readonly at: number;
  readonly pid: number;
  readonly pgid: number;
  readonly token: string;
  readonly election: string;
}

function lines(file: string): { at: number; text: string }[] {
  let text = "";
  try {
    text = readFileSync(file, "utf8");
  } catch {
    return [];
  }
  return text
    .split("\n")
    .filter(Boolean)
    .map((l) => ({ at: Number(l.slice(0, l.indexOf(" "))), text: l.slice(l.indexOf(" ") + 1) }));
}

function starts(file: string): Start[] {
  const out: Start[] = [];
  for (const l of lines(file)) {
    const m = /^start pid=(\d+) pgid=(\d+) token=(\S+) election=(\S+)/.exec(l.text);
    if (!m) continue;
    const s = { at: l.at, pid: Number(m[1]), pgid: Number(m[2]), token: m[3]!, election: m[4]! };
    pids.add(s.pid);
    out.push(s);
  }
  return out;
}

const sigterms = (file: string) => lines(file).filter((l) => l.text.startsWith("sigterm "));

/** Registers the guard pids a log line names. */
function trackLog(line: string): void {
  const m = /guard pid (\d+)/.exec(line);
  if (m) pids.add(Number(m[1]));
}

/** runElect in this process, on an in-memory election, with CMD = worker.js in `mode`. */
function inProcess(mode: string, o: { graceMs?: number; restartDelayMs?: number } = {}) {
  const file = newFile();
  const election = new FakeElection("jobs", 5000);
  const logs: string[] = [];
  const ac = new AbortController();
  const done = runElect({
    election,
    command: process.execPath,
    args: [worker, file, mode],
    graceMs: o.graceMs ?? 1000,
    log: (l) => {
      logs.push(l);
      trackLog(l);
    },
    signal: ac.signal,
    restartDelayMs: o.restartDelayMs ?? 100,
  });
  const stop = async () => {
    ac.abort();
    await done;
  };
  cleanups.push(() => Promise.race([stop(), sleep(3000)]).catch(() => {}));
  return { file, election, logs, stop };
}

const cleanEnv = () =>
  Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith("BALLOT_")));

/** runner.js (`ballot elect` on the in-memory election), or main.js for the real one, as a child process. */
function runnerProcess(args: string[], script = runner) {
  const child: ChildProcess = spawn(process.execPath, [script, ...args], {
    stdio: ["ignore", "ignore", "pipe"],
    env: cleanEnv(),
  });
  pids.add(child.pid!);
  let stderr = "";
  child.stderr!.setEncoding("utf8").on("data", (d: string) => {
    stderr += d;
    for (const l of d.split("\n")) trackLog(l);
  });
  const exited = new Promise<number | null>((r) => child.on("exit", (code) => r(code)));
  return { child, pid: child.pid!, exited, stderr: () => stderr };
}

afterEach(async () => {
  for (const c of cleanups.splice(0)) await c();
  for (const pid of pids) {
    for (const sig of ["SIGCONT", "SIGKILL"] as const) {
      try {
        process.kill(pid, sig);
      } catch {
        // already gone
      }
    }
  }
  pids.clear();
});
after(() => rmSync(dir, { recursive: true, force: true }));

/** Two real `ballot elect` on a real backend: one runs CMD; a SIGSTOPped leader's CMD stops before the other's starts. */
async function twoElects(backend: string[], tail: () => string): Promise<void> {
  const file = newFile();
  const args = ["elect", "jobs", ...backend, "--ttl", "2", "--"];
  const cmd = [process.execPath, worker, file, "graceful"];
  const a = runnerProcess([...args, ...cmd], mainJs);
  const first = await waitFor("the first CMD", () => starts(file)[0], 15_000).catch((e: Error) => {
    throw new Error(`${e.message}\n${a.stderr()}\n${tail()}`);
  });
  const b = runnerProcess([...args, ...cmd], mainJs);
  await waitFor("the second to campaign", () => /campaigning/.test(b.stderr()));
  await sleep(1000);
  assert.equal(starts(file).length, 1, "only the leader runs CMD");

  process.kill(a.pid, "SIGSTOP");
  const second = await waitFor("the second CMD", () => starts(file)[1], 10_000);
  assert.equal(state(a.pid), "T");
  assert.equal(alive(first.pid), false);
  const term = sigterms(file)[0];
  assert.ok(term && term.at <= second.at, "the deposed leader's CMD stopped before the new one started");
  assert.ok(Number(second.token) > Number(first.token), `tokens ${first.token} then ${second.token}`);

  process.kill(a.pid, "SIGCONT");
  await waitFor("the deposed one to campaign again", () => a.stderr().match(/campaigning/g)?.length === 2);
  process.kill(a.pid, "SIGTERM");
  process.kill(b.pid, "SIGTERM");
  assert.equal(await a.exited, 0, a.stderr());
  assert.equal(await b.exited, 0, b.stderr());
  assert.equal(alive(second.pid), false);
  assert.equal(starts(file).length, 2);
}

describe("ballot elect", () => {
  it("runs CMD in its own process group with the fencing token; shutting down stops it and resigns", async () => {
    const h = inProcess("graceful");
    const [s] = await waitFor("CMD to start", () => starts(h.file).length > 0 && starts(h.file));
    assert.equal(s!.token, "1");
    assert.equal(s!.election, "jobs");
    assert.equal(s!.pgid, s!.pid, "CMD leads its own process group");
    assert.ok(h.logs.some((l) => /leading 'jobs' with fencing token 1/.test(l)));

    await h.stop();
    assert.equal(sigterms(h.file).length, 1);
    assert.equal(alive(s!.pid), false);
    assert.equal(h.election.resigns, 1);
    assert.ok(h.logs.some((l) => /stopping CMD because ballot elect is shutting down/.test(l)));
  });

  it("lost leadership: CMD gets SIGTERM and exits, then it campaigns again and runs CMD with a new token", async () => {
    const h = inProcess("graceful");
    const [first] = await waitFor("CMD to start", () => starts(h.file).length > 0 && starts(h.file));
    h.election.current!.lose();
    await waitFor("CMD to exit", () => !alive(first!.pid));
    assert.equal(sigterms(h.file).length, 1);
    const second = await waitFor("CMD to start again", () => starts(h.file)[1]);
    assert.equal(second.token, "2");
    assert.ok(
      h.logs.some((l) => /stopping CMD because leadership of 'jobs' was lost or is in doubt/.test(l)),
    );
    assert.ok(h.election.campaigns >= 2);
  });

  it("a CMD that ignores SIGTERM is SIGKILLed after the grace period", async () => {
    const graceMs = 400;
    const h = inProcess("ignore-term", { graceMs });
    const [s] = await waitFor("CMD to start", () => starts(h.file).length > 0 && starts(h.file));
    h.election.current!.lose();
    const term = await waitFor("SIGTERM", () => sigterms(h.file)[0]);
    await waitFor("CMD to be killed", () => !alive(s!.pid), 3000);
    const lived = Date.now() - term.at;
    assert.ok(lived >= graceMs - 50, `killed ${lived} ms after SIGTERM, before the ${graceMs} ms grace`);
    assert.ok(lived <= graceMs + 300, `killed ${lived} ms after SIGTERM, grace was ${graceMs} ms`);
    await waitFor("the exit to be logged", () =>
      h.logs.find((l) => /signal SIGKILL \(SIGKILL after the grace/.test(l)),
    );
  });

  it("a CMD that exits by itself: resign, pause, campaign again", async () => {
    const h = inProcess("exit=3", { restartDelayMs: 300 });
    const second = await waitFor("CMD to start again", () => starts(h.file)[1]);
    const first = starts(h.file)[0]!;
    assert.equal(second.token, "2");
    assert.ok(h.logs.some((l) => /exited with code 3 by itself while leading/.test(l)));
    assert.ok(h.election.resigns >= 1);
    // first.at + 200 ms is when it exited; the pause comes on top.
    assert.ok(second.at - first.at >= 200 + 300, `restarted after ${second.at - first.at} ms`);
  });

  it("SIGSTOPped longer than the lease: the guard stops CMD by the deadline; on SIGCONT it campaigns again; SIGTERM exits 0", async () => {
    const file = newFile();
    const ttlMs = 1000;
    const r = runnerProcess([
      "jobs",
      "--ttl",
      "1",
      "--grace",
      "0.3",
      "--",
      process.execPath,
      worker,
      file,
      "graceful",
    ]);
    const [s] = await waitFor("CMD to start", () => starts(file).length > 0 && starts(file));
    // Longer than the validity: renewals must be reaching the guard.
    await sleep(1500);
    assert.ok(alive(s!.pid), "CMD must keep running while leadership is renewed");
    assert.equal(sigterms(file).length, 0);

    process.kill(r.pid, "SIGSTOP");
    const stoppedAt = Date.now();
    await waitFor("the guard to stop CMD", () => !alive(s!.pid), 3000);
    const after = Date.now() - stoppedAt;
    assert.equal(state(r.pid), "T", "the runner is still stopped: the guard did it alone");
    assert.equal(sigterms(file).length, 1, "stopped by SIGTERM at the deadline");
    // The server could expire the lease at the earliest ttl after the last keepalive was sent.
    assert.ok(after <= ttlMs + 200, `CMD ran ${after} ms after the runner stopped (ttl ${ttlMs} ms)`);

    process.kill(r.pid, "SIGCONT");
    const second = await waitFor("CMD to start again", () => starts(file)[1]);
    assert.equal(second.token, "2", r.stderr());
    assert.match(r.stderr(), /the guard stopped it because the lease deadline passed without renewal/);

    process.kill(r.pid, "SIGTERM");
    assert.equal(await r.exited, 0);
    assert.equal(alive(second.pid), false);
    assert.equal(sigterms(file).length, 2);
    assert.match(r.stderr(), /received SIGTERM/);
    assert.match(r.stderr(), /resigned leadership of 'jobs'/);
  });

  it("SIGKILL of ballot elect: the guard still stops CMD within the grace period", async () => {
    const file = newFile();
    const graceMs = 500;
    const r = runnerProcess([
      "jobs",
      "--ttl",
      "10",
      "--grace",
      "0.5",
      "--",
      process.execPath,
      worker,
      file,
      "ignore-term",
    ]);
    const [s] = await waitFor("CMD to start", () => starts(file).length > 0 && starts(file));
    const guardPid = Number(await waitFor("guard pid", () => /guard pid (\d+)/.exec(r.stderr())?.[1]));

    process.kill(r.pid, "SIGKILL");
    const killedAt = Date.now();
    await r.exited;
    await waitFor("CMD to be gone", () => !alive(s!.pid), 3000);
    const after = Date.now() - killedAt;
    assert.ok(after <= graceMs + 300, `CMD lived ${after} ms after ballot elect died (grace ${graceMs} ms)`);
    assert.equal(sigterms(file).length, 1, "SIGTERM first, SIGKILL after the grace");
    await waitFor("the guard to exit", () => !alive(guardPid), 1000);
  });

  it("on a real node: two ballot elect, one runs CMD; a SIGSTOPped leader's CMD stops before the other's starts", async () => {
    const cluster = await ProcCluster.start({ nodes: 1 });
    cleanups.push(() => cluster.stop());
    for (const p of cluster.procs.values()) pids.add(p.pid!);
    await twoElects(["--endpoints", cluster.url("n1")], () => cluster.tail());
  });

  it("the same on etcd (--etcd): one runs CMD; a SIGSTOPped leader's CMD stops before the other's starts", async () => {
    const etcd = await startEtcd();
    cleanups.push(() => etcd.stop());
    await twoElects(["--etcd", etcd.endpoint], () => "");
  });

  it("--partitions on a real node: two ballot elect run two CMDs each; SIGKILL one and the other runs all four; a partition's CMDs never overlap", async () => {
    const cluster = await ProcCluster.start({ nodes: 1 });
    cleanups.push(() => cluster.stop());
    for (const p of cluster.procs.values()) pids.add(p.pid!);
    const files = [newFile(), newFile()];
    const elect = (i: number) =>
      runnerProcess(
        ["elect", "jobs", "--endpoints", cluster.url("n1"), "--ttl", "2", "--partitions", "4", "--"].concat([
          process.execPath,
          worker,
          files[i]!,
          "graceful",
        ]),
        mainJs,
      );
    /** Per file: the partitions whose CMD runs now (started, no sigterm line from that pid yet). */
    const running = (file: string): Map<number, number> => {
      const now = new Map<number, number>();
      const byPid = new Map<number, number>();
      for (const l of lines(file)) {
        const m = /^start pid=(\d+) .*election=jobs partition=(\d+)$/.exec(l.text);
        if (m) {
          pids.add(Number(m[1]));
          byPid.set(Number(m[1]), Number(m[2]));
        }
      }
      for (const [pid, part] of byPid) if (alive(pid)) now.set(part, pid);
      return now;
    };
    const a = elect(0);
    await waitFor("A runs all four", () => running(files[0]!).size === 4, 15_000).catch((e: Error) => {
      throw new Error(`${e.message}\n${a.stderr()}\n${cluster.tail()}`);
    });
    const b = elect(1);
    await waitFor(
      "two each",
      () => running(files[0]!).size === 2 && running(files[1]!).size === 2,
      20_000,
    ).catch((e: Error) => {
      throw new Error(`${e.message}\nA: ${a.stderr()}\nB: ${b.stderr()}`);
    });
    const parts = [...running(files[0]!).keys(), ...running(files[1]!).keys()].sort();
    assert.deepEqual(parts, [0, 1, 2, 3], "each partition runs once");
    assert.match(b.stderr(), /holding partitions \[\d,\d\] of 'jobs'/);
    assert.match(a.stderr(), /partition \d+ was given back to balance the load/);

    // SIGKILL A: its guards stop its CMDs; B takes every partition over.
    process.kill(a.pid, "SIGKILL");
    await waitFor(
      "B runs all four",
      () => running(files[1]!).size === 4 && running(files[0]!).size === 0,
      20_000,
    );

    // Per partition, across both files: each CMD stopped (sigterm) before the next one started.
    for (let part = 0; part < 4; part++) {
      const spans: { start: number; end: number; token: number }[] = [];
      for (const file of files) {
        const log = lines(file);
        for (const s of starts(file)) {
          if (
            !log.some((l) => l.text.startsWith(`start pid=${s.pid} `) && l.text.endsWith(`partition=${part}`))
          )
            continue;
          // A CMD that has not stopped yet runs until now.
          const end = alive(s.pid)
            ? Number.POSITIVE_INFINITY
            : (log.find((l) => l.text === `sigterm pid=${s.pid}`)?.at ?? Number.POSITIVE_INFINITY);
          spans.push({ start: s.at, end, token: Number(s.token) });
        }
      }
      spans.sort((x, y) => x.start - y.start);
      for (let i = 1; i < spans.length; i++) {
        assert.ok(
          spans[i - 1]!.end <= spans[i]!.start,
          `partition ${part}: CMDs overlap ${JSON.stringify(spans)}`,
        );
        assert.ok(
          spans[i]!.token > spans[i - 1]!.token,
          `partition ${part}: tokens ${JSON.stringify(spans)}`,
        );
      }
    }
    process.kill(b.pid, "SIGTERM");
    assert.equal(await b.exited, 0, b.stderr());
    assert.equal(running(files[1]!).size, 0, "SIGTERM stops every CMD");
  });

  it("the guard never starts CMD on a deadline already passed, but applies renewals queued while it booted", async () => {
    const guard = fileURLToPath(new URL("../../src/cli/guard.js", import.meta.url));
    const runGuard = async (renewal: bigint) => {
      const file = newFile();
      const past = process.hrtime.bigint() - 1_000_000n;
      const g = spawn(process.execPath, [guard, String(past), "100", "--", process.execPath, worker, file], {
        stdio: ["pipe", "ignore", "ignore"],
      });
      pids.add(g.pid!);
      g.stdin!.write(`${JSON.stringify({ validUntilNs: String(renewal) })}\n`);
      const exited = new Promise<number | null>((r) => g.on("exit", (code) => r(code)));
      return { file, g, exited };
    };
    const stale = await runGuard(process.hrtime.bigint() - 1n);
    assert.equal(await stale.exited, GUARD_EXIT.expired);
    assert.equal(starts(stale.file).length, 0);

    const fresh = await runGuard(process.hrtime.bigint() + 60_000_000_000n);
    const [s] = await waitFor("CMD to start", () => starts(fresh.file).length > 0 && starts(fresh.file));
    fresh.g.stdin!.end(); // as if elect died
    assert.equal(await fresh.exited, GUARD_EXIT.orphaned);
    assert.equal(alive(s!.pid), false);
  });

  it("usage errors exit 2 with a one-line reason", () => {
    const env = cleanEnv();
    const cases: [string[], RegExp][] = [
      [["elect"], /needs an election NAME/],
      [["elect", "jobs", "sleep", "1"], /unexpected 'sleep' before '--'/],
      [["elect", "jobs", "--"], /needs a command after '--'/],
      [["elect", "jobs", "--ttl", "abc", "--", "true"], /--ttl must be an integer/],
      [["elect", "jobs", "--ttl", "0", "--", "true"], /--ttl must be an integer/],
      [["elect", "jobs", "--grace", "-1", "--", "true"], /--grace must be a number of seconds/],
      [["elect", "jobs", "--etcd", "x", "--endpoints", "http://a:1", "--", "true"], /not both/],
      [["elect", "jobs", "--etcd", "not a url", "--", "true"], /--etcd: 'not a url' is not a URL/],
    ];
    for (const [args, reason] of cases) {
      const r = spawnSync(process.execPath, [mainJs, ...args], { encoding: "utf8", env });
      assert.equal(r.status, 2, `${args.join(" ")}: ${r.stderr}`);
      assert.equal(r.stderr.trim().split("\n").length, 1, r.stderr);
      assert.match(r.stderr, reason);
    }
  });

  it("the grace period defaults to min(5 s, ttl / 5)", () => {
    const parse = (...a: string[]) => parseElect(parseFlags(a, ELECT_FLAGS, {}));
    assert.equal(parse("jobs", "--ttl", "3", "--", "x").graceMs, 600);
    assert.equal(parse("jobs", "--", "x").graceMs, 1000);
    assert.equal(parse("jobs", "--ttl", "60", "--", "x").graceMs, 5000);
    assert.equal(parse("jobs", "--grace", "0.25", "--", "x", "y").graceMs, 250);
    assert.deepEqual(parse("jobs", "--", "x", "--y").args, ["--y"]);
  });
});
