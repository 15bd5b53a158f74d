/**
 * The short chaos pass of `npm test`: one run on 3 nodes and one on 5, every fault type, with
 * fixed seeds (replay a failure with `npm run chaos -- --seed S --nodes N --minutes 0
 * --run-seconds 40`), and one on 3 nodes of 8 partitions each (`--partitions 8 --run-seconds 20`).
 * Long runs: `npm run chaos -- --minutes 60 [--partitions 8]`.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { runChaos } from "./run.js";

describe("chaos: linearizable under faults, real processes", { timeout: 300_000 }, () => {
  for (const [seed, nodes, partitions, seconds] of [
    [1001, 3, 1, 40],
    [2002, 5, 1, 40],
    [3003, 3, 8, 20],
  ] as const) {
    const what = partitions > 1 ? `, ${partitions} partitions (Raft groups) each` : "";
    it(`seed ${seed}, ${nodes} nodes${what}, ${seconds} s of faults`, async () => {
      const summary = await runChaos({ seed, nodes, seconds, partitions });
      console.log(`# ${JSON.stringify(summary)}`);
      assert.ok(
        summary.passed,
        `seed ${seed} failed (artifacts in ${summary.artifacts}):\n${summary.problems.join("\n")}`,
      );
      assert.equal(summary.linearizable, true);
      assert.ok(summary.ok > 50, "the workload made progress");
    });
  }
});
