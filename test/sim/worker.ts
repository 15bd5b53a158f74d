/** Worker thread body for the seed pool: runs each seed it is sent and posts the outcome back. */
import { parentPort, workerData } from "node:worker_threads";
import { type RunOptions, runSeed } from "./run.js";

const opts = workerData as RunOptions;
parentPort!.on("message", (seed: number) => {
  parentPort!.postMessage(runSeed(seed, opts));
});
