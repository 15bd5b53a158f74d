/**
 * `ballot` with a CPU profile of a window of its life: the profiler (node:inspector) starts
 * BALLOT_PROFILE_START_MS after launch and stops BALLOT_PROFILE_MS later, writing
 * `<dir>/<id>.cpuprofile` (open it in Chrome DevTools or speedscope for the flame graph). Used by
 * bench/profile as the CLI of its nodes; `--cpu-prof` cannot be given through NODE_OPTIONS and
 * would only write at exit. Must never change what the node does otherwise.
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { Session } from "node:inspector/promises";
import { join } from "node:path";
import { main } from "../../src/cli/main.js";

const dir = process.env.BALLOT_PROFILE_DIR;
if (dir) {
  const startMs = Number(process.env.BALLOT_PROFILE_START_MS ?? 3000);
  const lengthMs = Number(process.env.BALLOT_PROFILE_MS ?? 8000);
  const id = process.argv[process.argv.indexOf("--id") + 1] ?? String(process.pid);
  const session = new Session();
  session.connect();
  await session.post("Profiler.enable");
  await session.post("Profiler.setSamplingInterval", { interval: 200 });
  setTimeout(async () => {
    await session.post("Profiler.start");
    setTimeout(async () => {
      const { profile } = await session.post("Profiler.stop");
      mkdirSync(dir, { recursive: true });
      writeFileSync(join(dir, `${id}.cpuprofile`), JSON.stringify(profile));
    }, lengthMs).unref();
  }, startMs).unref();
}
process.exitCode = await main(process.argv.slice(2));
