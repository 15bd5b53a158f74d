/**
 * `npm run sim -- --seeds N [--from S] [--nodes K] [--groups G] [--fault-rate X] [--bug NAME]
 * [--follower-read-leases on|off]`: runs seeds
 * S..S+N-1 and ends with `sim: N seeds passed, F failed` (exit 1 on any failure). A failure prints
 * its seed, the command that replays it, and the last events before it.
 */
import type { PlantedBugs } from "../../src/raft/raft.js";
import { runSeeds } from "./pool.js";
import { type RunOptions, replayCommand } from "./run.js";

const BUGS = [
  "commitOldTermEntries",
  "grantVoteWithoutLogCheck",
  "skipVotePersist",
  "commitIgnoringReadLeases",
  "readLeaseFromReceipt",
] as const;

function usage(msg: string): never {
  console.error(`sim: ${msg}`);
  console.error(
    "usage: npm run sim -- --seeds N [--from S] [--nodes 3..7] [--groups 1..64] [--fault-rate X] [--bug NAME]\n" +
      "                      [--follower-read-leases on|off] [--verbose]",
  );
  process.exit(2);
}

function intArg(name: string, v: string | undefined, lo: number, hi: number): number {
  const n = Number(v);
  if (v === undefined || !Number.isInteger(n) || n < lo || n > hi)
    usage(`${name} takes an integer from ${lo} to ${hi}`);
  return n;
}

const args = process.argv.slice(2);
let seeds = 100;
let from = 1;
let verbose = false;
const opts: RunOptions = {};
const bugs: Record<string, boolean> = {};
for (let i = 0; i < args.length; i++) {
  const a = args[i]!;
  switch (a) {
    case "--seeds":
      seeds = intArg(a, args[++i], 1, 10_000_000);
      break;
    case "--from":
      from = intArg(a, args[++i], 0, 2 ** 31);
      break;
    case "--nodes":
      opts.nodes = intArg(a, args[++i], 3, 7);
      break;
    case "--groups":
      opts.groups = intArg(a, args[++i], 1, 64);
      break;
    case "--fault-rate": {
      const x = Number(args[++i]);
      if (!(x > 0 && x <= 10)) usage("--fault-rate takes a number in (0, 10]");
      opts.faultRate = x;
      break;
    }
    case "--bug": {
      const b = args[++i];
      if (!BUGS.includes(b as (typeof BUGS)[number])) usage(`--bug takes one of ${BUGS.join(", ")}`);
      bugs[b!] = true;
      break;
    }
    case "--follower-read-leases": {
      const v = args[++i];
      if (v !== "on" && v !== "off")
        usage("--follower-read-leases takes on or off (default: on for even seeds)");
      opts.followerReadLeases = v === "on";
      break;
    }
    case "--verbose":
      verbose = true;
      break;
    default:
      usage(`unknown argument ${a}`);
  }
}
if (Object.keys(bugs).length > 0) opts.bugs = bugs as PlantedBugs;

const res = await runSeeds(from, seeds, opts);
for (const f of res.failed.slice(0, 5)) {
  console.log(`\nFAILED seed ${f.seed}: ${f.error}`);
  console.log(`replay: ${replayCommand(f.seed, opts)}`);
  if (f.trace && f.trace.length > 0) console.log(`last events:\n  ${f.trace.join("\n  ")}`);
}
if (res.failed.length > 5)
  console.log(
    `\n(${res.failed.length - 5} more failures: ${res.failed
      .slice(5, 30)
      .map((f) => f.seed)
      .join(", ")} ...)`,
  );
if (verbose) {
  const tot = {
    ops: 0,
    ok: 0,
    unknown: 0,
    leaders: 0,
    crashes: 0,
    partitions: 0,
    conf: 0,
    transfers: 0,
    snaps: 0,
    events: 0,
    withFollowerReadLeases: 0,
    localLeaseReads: 0,
    quietSpells: 0,
  };
  for (const o of res.outcomes) {
    const s = o.stats;
    if (!s) continue;
    tot.ops += s.ops;
    tot.ok += s.opsOk;
    tot.unknown += s.opsUnknown;
    tot.leaders += s.leaders;
    tot.crashes += s.crashes;
    tot.partitions += s.partitions;
    tot.conf += s.confChanges;
    tot.transfers += s.transfers;
    tot.snaps += s.snapshotsSent;
    tot.events += s.events;
    if (s.followerReadLeases) tot.withFollowerReadLeases++;
    tot.localLeaseReads += s.localLeaseReads;
    tot.quietSpells += s.quietSpells;
  }
  console.log(JSON.stringify({ ...tot, elapsedMs: res.elapsedMs }));
}
console.log(`sim: ${res.passed} seeds passed, ${res.failed.length} failed`);
process.exit(res.failed.length > 0 ? 1 : 0);
