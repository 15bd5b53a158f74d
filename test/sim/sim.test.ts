/**
 * The simulator as a test: thousands of hostile seeds must pass every safety check — half of them
 * with follower read leases on and lease reads sent to followers — and the simulator must have
 * teeth: each planted bug is caught within a bounded number of seeds. Runs are deterministic, so a
 * failing seed printed here replays with `npm run sim -- --seeds 1 --from SEED`.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { PlantedBugs } from "../../src/raft/raft.js";
import { runSeeds } from "./pool.js";
import { replayCommand } from "./run.js";

const SEEDS = Number(process.env.BALLOT_SIM_SEEDS ?? 4000);
const FROM = Number(process.env.BALLOT_SIM_FROM ?? 1);

describe("deterministic simulation", () => {
  it(`${SEEDS} seeds from ${FROM}: no safety violation, a leader and progress after faults heal, linearizable history`, async () => {
    const res = await runSeeds(FROM, SEEDS, {});
    const first = res.failed[0];
    const detail = first
      ? `seed ${first.seed}: ${first.error}\nreplay: ${replayCommand(first.seed, {})}\n${(first.trace ?? []).join("\n")}`
      : "";
    const leased = res.outcomes.filter((o) => o.stats?.followerReadLeases);
    const localReads = leased.reduce((n, o) => n + (o.stats?.localLeaseReads ?? 0), 0);
    console.log(
      `sim: ${res.passed} seeds passed, ${res.failed.length} failed (${res.elapsedMs} ms); ` +
        `${leased.length} with follower read leases, ${localReads} lease reads answered by a follower alone`,
    );
    assert.equal(res.failed.length, 0, detail);
    if (SEEDS >= 100) {
      assert.ok(Math.abs(leased.length - SEEDS / 2) <= 1, "every other seed runs with follower read leases");
      assert.ok(localReads >= leased.length, "followers answered lease reads from their own leases");
    }
  });

  it("the same seed replays the same run", async () => {
    const a = await runSeeds(4242, 1, {}, 1);
    const b = await runSeeds(4242, 1, {}, 1);
    assert.deepEqual(a.outcomes[0]!.stats, b.outcomes[0]!.stats);
    assert.ok((a.outcomes[0]!.stats?.events ?? 0) > 1000);
  });
});

/**
 * Each planted bug, with the fault rate and the number of seeds within which the simulator finds it.
 * Measured: vote without log check — about half of all seeds; forgotten vote — about 1 in 50 at 2×
 * faults; Figure 8 — about 1 in 270 at 2× faults (its chain needs two leaders lost within
 * milliseconds of their election). The scripted Figure 8 in test/raft/figure8.test.ts shows the
 * last one deterministically too. Commits that do not wait for follower read-lease holders — about 1
 * in 8 seeds with the option on, as a stale read from a follower's lease.
 */
const planted: {
  bug: keyof PlantedBugs;
  faultRate: number;
  within: number;
  expect: RegExp;
  followerReadLeases?: boolean;
}[] = [
  {
    bug: "grantVoteWithoutLogCheck",
    faultRate: 1,
    within: 50,
    expect: /leader completeness|state machine safety|committed term/,
  },
  { bug: "skipVotePersist", faultRate: 2, within: 400, expect: /election safety/ },
  {
    bug: "commitOldTermEntries",
    faultRate: 2,
    within: 800,
    expect: /leader completeness|state machine safety|committed term/,
  },
  {
    bug: "commitIgnoringReadLeases",
    faultRate: 1,
    within: 100,
    expect: /linearizability/,
    followerReadLeases: true,
  },
];

describe("deterministic simulation of partitioned nodes (many Raft groups per node)", () => {
  const MULTI = Math.max(1, Math.round(SEEDS / 25));
  for (const groups of [4, 16]) {
    const count = groups === 4 ? MULTI : Math.max(1, Math.round(MULTI / 4));
    it(`${count} seeds with ${groups} groups per node over one shared WAL: every group safe, live and linearizable`, async () => {
      const res = await runSeeds(FROM, count, { groups });
      const first = res.failed[0];
      const detail = first
        ? `seed ${first.seed}: ${first.error}\nreplay: ${replayCommand(first.seed, { groups })}\n${(first.trace ?? []).join("\n")}`
        : "";
      const coalesced = res.outcomes.reduce((n, o) => n + (o.stats?.coalesced ?? 0), 0);
      console.log(
        `sim, ${groups} groups: ${res.passed} seeds passed, ${res.failed.length} failed (${res.elapsedMs} ms); ${coalesced} envelopes carried several groups' messages`,
      );
      assert.equal(res.failed.length, 0, detail);
      assert.ok(res.outcomes.every((o) => o.stats?.groups === groups));
      assert.ok(coalesced > count * 10, "groups' messages to one peer leave together");
      const quiet = res.outcomes.reduce((n, o) => n + (o.stats?.quietSpells ?? 0), 0);
      console.log(`sim, ${groups} groups: ${quiet} quiet spells of idle groups`);
      assert.ok(quiet > count * 5, "idle groups go quiet (and wake again: the runs stay live)");
    });
  }

  it("planted bugs are still caught when every node runs 4 groups", async () => {
    for (const p of [
      { bug: "grantVoteWithoutLogCheck" as const, faultRate: 1, within: 50 },
      { bug: "skipVotePersist" as const, faultRate: 2, within: 200 },
    ]) {
      const res = await runSeeds(
        1,
        p.within,
        { bugs: { [p.bug]: true }, faultRate: p.faultRate, groups: 4 },
        undefined,
        true,
      );
      const caught = res.failed[0];
      assert.ok(caught, `${p.bug} went unnoticed over ${p.within} seeds with 4 groups`);
      assert.match(caught.error ?? "", / g[0-3] /);
      console.log(`${p.bug} with 4 groups: caught at seed ${caught.seed}: ${caught.error}`);
    }
  });
});

describe("the simulator catches planted bugs", () => {
  for (const p of planted) {
    it(`${p.bug}: caught within ${p.within} seeds`, async () => {
      const opts = {
        bugs: { [p.bug]: true },
        faultRate: p.faultRate,
        followerReadLeases: p.followerReadLeases,
      };
      const res = await runSeeds(1, p.within, opts, undefined, true);
      const caught = res.failed[0];
      assert.ok(caught, `${p.bug} went unnoticed over ${p.within} seeds`);
      assert.match(caught.error ?? "", p.expect);
      console.log(`${p.bug}: caught at seed ${caught.seed}: ${caught.error}`);
    });
  }
});
