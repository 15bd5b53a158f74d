/**
 * Runs many seeds across worker threads (one per core) and gathers their outcomes in seed order.
 * Owns parallelism only; each seed is still one deterministic single-threaded run.
 */
import { availableParallelism } from "node:os";
import { setFlagsFromString } from "node:v8";
import { Worker } from "node:worker_threads";
import type { RunOptions, SeedOutcome } from "./run.js";

// Worker isolates compile hot code on the main thread of each worker, not on V8's background
// threads: on Node 20 a background TurboFan job that outlives its worker's isolate can abort the
// whole process at teardown ("NodePlatform::ForIsolate ... Assertion failed: (data.first) !=
// nullptr", seen once in CI while the pool ended its workers). The simulator loses nothing by it:
// 1,500 seeds took 17.6 s without concurrent recompilation and 18.2 s with it on this machine.
setFlagsFromString("--no-concurrent-recompilation");

export interface PoolResult {
  passed: number;
  failed: SeedOutcome[];
  outcomes: SeedOutcome[];
  elapsedMs: number;
}

export async function runSeeds(
  from: number,
  count: number,
  opts: RunOptions,
  workers = Math.max(1, Math.min(availableParallelism(), count)),
  stopAtFirstFailure = false,
): Promise<PoolResult> {
  const started = Date.now();
  const outcomes: SeedOutcome[] = [];
  let next = from;
  const end = from + count;
  let stop = false;
  const workerUrl = new URL("./worker.js", import.meta.url);
  await Promise.all(
    Array.from({ length: workers }, () => {
      return new Promise<void>((resolve, reject) => {
        const w = new Worker(workerUrl, { workerData: opts });
        const feed = (): void => {
          if (stop || next >= end) {
            void w.terminate().then(() => resolve());
            return;
          }
          w.postMessage(next++);
        };
        w.on("message", (o: SeedOutcome) => {
          outcomes.push(o);
          if (!o.ok && stopAtFirstFailure) stop = true;
          feed();
        });
        w.on("error", reject);
        feed();
      });
    }),
  );
  outcomes.sort((a, b) => a.seed - b.seed);
  const failed = outcomes.filter((o) => !o.ok);
  return { passed: outcomes.length - failed.length, failed, outcomes, elapsedMs: Date.now() - started };
}
