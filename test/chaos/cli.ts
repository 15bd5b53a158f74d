/**
 * `npm run chaos -- [--minutes M] [--seed S] [--nodes 3|5] [--faults a,b,...] [--run-seconds N]
 * [--follower-read-leases] [--partitions P]`:
 * chaos runs back to back (alternating 3 and 5 nodes unless --nodes is given), each with its own
 * seed (S, S+1, ...), for M minutes in all. Prints one JSON summary line per run and exits 1 at
 * the first failing run (its artifacts' folder is in the line). Replay a run with its seed.
 */
import { parseArgs } from "node:util";
import { FAULTS, type Fault, runChaos } from "./run.js";

const { values } = parseArgs({
  options: {
    minutes: { type: "string", default: "5" },
    seed: { type: "string" },
    nodes: { type: "string" },
    faults: { type: "string" },
    "run-seconds": { type: "string", default: "60" },
    verbose: { type: "boolean", default: false },
    "follower-read-leases": { type: "boolean", default: false },
    partitions: { type: "string", default: "1" },
  },
});
const minutes = Number(values.minutes);
const runSeconds = Number(values["run-seconds"]);
let seed = values.seed !== undefined ? Number(values.seed) : Date.now() % 1_000_000;
const faults = values.faults ? (values.faults.split(",") as Fault[]) : [...FAULTS];
for (const f of faults)
  if (!FAULTS.includes(f)) throw new Error(`unknown fault '${f}' (known: ${FAULTS.join(", ")})`);
const endAt = Date.now() + minutes * 60_000;
let runs = 0;
while (runs === 0 || Date.now() + runSeconds * 1000 < endAt) {
  const nodes = values.nodes !== undefined ? (Number(values.nodes) as 3 | 5) : runs % 2 === 0 ? 3 : 5;
  const summary = await runChaos({
    seed,
    nodes,
    seconds: runSeconds,
    faults,
    followerReadLeases: values["follower-read-leases"],
    partitions: Number(values.partitions),
    log: values.verbose ? (l) => console.error(`  [seed ${seed}] ${l}`) : undefined,
  });
  console.log(JSON.stringify(summary));
  if (!summary.passed) {
    console.error(
      `chaos: seed ${seed} FAILED; artifacts in ${summary.artifacts}; replay: npm run chaos -- --seed ${seed} --nodes ${nodes} --minutes 0 --run-seconds ${runSeconds}${values["follower-read-leases"] ? " --follower-read-leases" : ""}${values.partitions !== "1" ? ` --partitions ${values.partitions}` : ""}`,
    );
    process.exit(1);
  }
  runs++;
  seed++;
}
