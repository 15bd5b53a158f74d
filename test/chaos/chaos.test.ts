/**
 * The short chaos pass of `npm test`: one run on 3 nodes and one on 5, every fault type, with
 * fixed seeds (replay a failure with `npm run chaos -- --seed S --nodes N --minutes 0
 * --run-seconds 40`). Long runs: `npm run chaos -- --minutes 60`.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { runChaos } from "./run.js";

describe("chaos: linearizable under faults, real processes", { timeout: 300_000 }, () => {
  for (const [seed, nodes] of [
    [1001, 3],
    [2002, 5],
  ] as const) {
    it(`seed ${seed}, ${nodes} nodes, 40 s of faults`, async () => {
      const summary = await runChaos({ seed, nodes, seconds: 40 });
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
