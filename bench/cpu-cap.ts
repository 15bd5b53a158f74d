/**
 * Caps a process's CPU at a fraction of one core through a cgroup of its own (v2 cpu.max, or v1
 * cpu.cfs_quota_us), so a benchmark on one machine can give each member what a core of its own
 * would be to it, and the members and the driver stop competing for the same two cores. Owns the
 * cgroups it makes (named ballot-bench-*), and removes them; must never touch any other.
 */
import { existsSync, mkdirSync, readFileSync, rmdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";

const V2 = "/sys/fs/cgroup";
const V1 = "/sys/fs/cgroup/cpu";
const PERIOD_US = 10_000; // short: a throttled member stalls for milliseconds, not tens of them

/** Where cgroups with a CPU quota can be made here, or why not. */
function root(): { dir: string; v2: boolean } {
  if (existsSync(join(V2, "cgroup.controllers"))) {
    const controllers = readFileSync(join(V2, "cgroup.controllers"), "utf8");
    if (!controllers.split(/\s+/).includes("cpu")) throw new Error("cgroup v2 without the cpu controller");
    return { dir: V2, v2: true };
  }
  if (existsSync(join(V1, "cpu.cfs_quota_us"))) return { dir: V1, v2: false };
  throw new Error("no cgroup CPU controller at /sys/fs/cgroup (cgroup v1 cpu or v2 cpu.max)");
}

/** A CPU cap on processes; throws a clear error where cgroups cannot be written (not root, no controller). */
export class CpuCap {
  private readonly made: string[] = [];

  /** Puts `pid` (all its threads) in a cgroup of its own limited to `cores` (e.g. 0.3) of a core. */
  cap(name: string, pid: number, cores: number): void {
    if (!(cores > 0 && cores <= 64)) throw new RangeError(`a CPU cap of ${cores} cores`);
    const { dir, v2 } = root();
    const g = join(dir, `ballot-bench-${name}`);
    mkdirSync(g, { recursive: true });
    this.made.push(g);
    const quota = Math.round(cores * PERIOD_US);
    if (v2) writeFileSync(join(g, "cpu.max"), `${quota} ${PERIOD_US}`);
    else {
      writeFileSync(join(g, "cpu.cfs_period_us"), String(PERIOD_US));
      writeFileSync(join(g, "cpu.cfs_quota_us"), String(quota));
    }
    writeFileSync(join(g, "cgroup.procs"), String(pid));
  }

  /** Removes the cgroups (their processes must have exited, or they are moved back to the root first). */
  release(): void {
    const { dir } = root();
    for (const g of this.made.splice(0)) {
      try {
        const procs = readFileSync(join(g, "cgroup.procs"), "utf8").split("\n").filter(Boolean);
        for (const p of procs) writeFileSync(join(dir, "cgroup.procs"), p);
        rmdirSync(g);
      } catch {
        // already gone
      }
    }
  }
}
