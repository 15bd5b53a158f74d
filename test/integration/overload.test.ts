/**
 * Overload is answered, not absorbed, on real processes: past `--max-in-flight-proposals` a write
 * gets 429 `overloaded` with Retry-After and a retry hint, and nothing of it is applied; probes and
 * status stay answered; the lag and in-flight gauges are in /metrics.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { call, ProcCluster } from "./procs.js";

describe("overload admission", () => {
  let c: ProcCluster;
  let leader: string;
  before(async () => {
    // Bounds small enough that a burst of 200 concurrent writes must cross them.
    c = await ProcCluster.start({
      nodes: 3,
      extraArgs: ["--max-in-flight-proposals", "4", "--max-queued-requests", "16"],
    });
    leader = c.url(await c.waitForLeader());
  });
  after(async () => {
    await c?.stop();
  });

  it("refuses past its bounds with 429 + Retry-After, and applies only what it answered 200", async () => {
    const termBefore = (await call(`${leader}/v1/cluster`)).body.term;
    const n = 200;
    const answers = await Promise.all(
      Array.from({ length: n }, async (_, i) => {
        const r = await fetch(`${leader}/v1/kv/burst/${i}`, {
          method: "PUT",
          headers: { "content-type": "application/json" },
          body: JSON.stringify({ value: i }),
        });
        return {
          i,
          status: r.status,
          retryAfter: r.headers.get("retry-after"),
          body: (await r.json()) as { error: { code: string; retryAfterMs: number } },
        };
      }),
    );
    const refused = answers.filter((a) => a.status === 429);
    const done = answers.filter((a) => a.status === 200);
    assert.equal(
      refused.length + done.length,
      n,
      JSON.stringify(answers.filter((a) => a.status !== 200 && a.status !== 429)),
    );
    assert.ok(refused.length > 0, "the burst crossed the bounds");
    assert.ok(done.length > 0, "admitted writes still complete");
    for (const a of refused) {
      assert.equal(a.body.error.code, "overloaded");
      assert.match(a.retryAfter ?? "", /^[1-9][0-9]*$/);
      assert.ok(Number.isSafeInteger(a.body.error.retryAfterMs) && a.body.error.retryAfterMs > 0);
    }
    const listed = await call(`${leader}/v1/kv?prefix=burst/&consistency=linearizable`);
    const keys = new Set(listed.body.kvs.map((k: { key: string }) => k.key));
    assert.deepEqual(
      [...keys].sort(),
      done.map((a) => `burst/${a.i}`).sort(),
      "exactly the writes answered 200 were applied",
    );
    assert.equal((await call(`${leader}/v1/cluster`)).body.term, termBefore, "no election under the burst");
  });

  it("keeps probes, status and metrics answered, with the lag and in-flight gauges", async () => {
    assert.equal((await call(`${leader}/health`)).status, 200);
    assert.equal((await call(`${leader}/v1/cluster`)).status, 200);
    const text = await (await fetch(`${leader}/metrics`)).text();
    for (const name of [
      "ballot_event_loop_lag_seconds",
      "ballot_event_loop_lag_max_seconds",
      "ballot_in_flight_proposals",
    ]) {
      assert.match(text, new RegExp(`^${name}(\\{[^}]*\\})? [0-9.e+-]+$`, "m"), name);
    }
  });
});
