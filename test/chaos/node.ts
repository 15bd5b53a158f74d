/**
 * A chaos test build of `ballot start`: the same command, on LossyFs (unsynced writes die with the
 * process; SIGUSR2 toggles a slow fdatasync of CHAOS_FSYNC_DELAY_MS, default 200 ms). Owns only
 * that wiring; must never differ from `ballot start` in anything else.
 */
import { parseFlags } from "../../src/cli/flags.js";
import { START_FLAGS } from "../../src/cli/main.js";
import { runStart } from "../../src/cli/start.js";
import { LossyFs } from "./lossy-fs.js";

const fs = new LossyFs();
const delay = Number(process.env.CHAOS_FSYNC_DELAY_MS ?? "200");
process.on("SIGUSR2", () => {
  fs.slowMs = fs.slowMs > 0 ? 0 : delay;
  process.stderr.write(`chaos: fsync delay now ${fs.slowMs} ms\n`);
});
runStart(parseFlags(process.argv.slice(2), START_FLAGS), { fs }).then(
  (code) => {
    process.exitCode = code;
  },
  (e: unknown) => {
    console.error(`ballot: ${(e as Error).message}`);
    process.exitCode = 2;
  },
);
