/**
 * Runs one simulated seed and turns the outcome into a report: on failure, the seed is replayed
 * with tracing on (runs are deterministic) so the report carries the last events before the fault.
 * Owns nothing else.
 */
import type { PlantedBugs } from "../../src/raft/raft.js";
import { SimFailure, type SimOptions, type SimStats, Simulation } from "./cluster.js";

export interface SeedOutcome {
  seed: number;
  ok: boolean;
  error?: string;
  trace?: string[];
  stats?: SimStats;
}

export interface RunOptions {
  nodes?: number;
  bugs?: PlantedBugs;
  faultRate?: number;
  chaosMs?: number;
  /** Forces follower read leases on or off in every seed (default: on for even seeds). */
  followerReadLeases?: boolean;
  /** Raft groups per node (default 1). */
  groups?: number;
}

export function runSeed(seed: number, opts: RunOptions = {}): SeedOutcome {
  const simOpts: SimOptions = {
    seed,
    nodes: opts.nodes,
    bugs: opts.bugs,
    faultRate: opts.faultRate,
    chaosMs: opts.chaosMs,
    followerReadLeases: opts.followerReadLeases,
    groups: opts.groups,
  };
  try {
    const stats = new Simulation(simOpts).run();
    return { seed, ok: true, stats };
  } catch (e) {
    const error =
      e instanceof SimFailure
        ? e.message
        : `crash: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`;
    let trace: string[] = [];
    const again = new Simulation({ ...simOpts, trace: true });
    try {
      again.run();
    } catch {
      // expected: the same failure, now with a trace
    }
    trace = again.traceTail(Number(process.env.BALLOT_SIM_TRACE ?? 60));
    return { seed, ok: false, error, trace };
  }
}

/** The command that replays a seed. */
export function replayCommand(seed: number, opts: RunOptions): string {
  let cmd = `npm run sim -- --seeds 1 --from ${seed}`;
  if (opts.nodes) cmd += ` --nodes ${opts.nodes}`;
  if (opts.groups && opts.groups > 1) cmd += ` --groups ${opts.groups}`;
  if (opts.faultRate && opts.faultRate !== 1) cmd += ` --fault-rate ${opts.faultRate}`;
  if (opts.followerReadLeases !== undefined)
    cmd += ` --follower-read-leases ${opts.followerReadLeases ? "on" : "off"}`;
  for (const [k, v] of Object.entries(opts.bugs ?? {})) if (v) cmd += ` --bug ${k}`;
  return cmd;
}
