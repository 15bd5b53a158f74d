/**
 * Leadership per partition through BallotClient on a real 3-node cluster: three instances share 8
 * partitions. Alone, one instance leads all 8; each joiner gets a fair share (the others give
 * theirs back); an instance cut off from the network loses its partitions at its lease deadline
 * and the others take them over; when it comes back it gets its share again. Throughout, a
 * partition's jobs never overlap (intervals on one clock, performance.now()) and every job sees
 * its own partition's fencing token grow.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import {
  BallotClient,
  BallotClientError,
  fairShare,
  PartitionedElection,
  type PartitionJob,
  type PartitionRunHandle,
} from "../../src/client/index.js";
import { ProcCluster } from "../integration/procs.js";
import { cuttableFetch, sleep, until } from "./helpers.js";

describe("partitioned elections: the share rule and its arguments", () => {
  it("ceil(P / live), live counted as at least one", () => {
    assert.equal(fairShare(8, 0), 8);
    assert.equal(fairShare(8, 1), 8);
    assert.equal(fairShare(8, 3), 3);
    assert.equal(fairShare(8, 8), 1);
    assert.equal(fairShare(8, 20), 1);
  });
  it("refuses partition counts that are not 1 … 1024, before anything is sent", () => {
    const client = new BallotClient({ endpoints: ["http://127.0.0.1:9"] });
    for (const p of [0, -1, 1.5, 1025, Number.NaN]) {
      assert.throws(
        () => client.election("x", { partitions: p }),
        (e: unknown) => e instanceof BallotClientError && e.code === "invalid_argument",
        String(p),
      );
    }
    const e = client.election("x", { partitions: 4 });
    assert.ok(e instanceof PartitionedElection);
    assert.equal(e.partition(3).name, "x:p3");
    assert.throws(() => e.partition(4), RangeError);
    client.close();
  });
});

describe("partitioned elections on a real cluster", { timeout: 120_000 }, () => {
  const P = 8;
  let c: ProcCluster;
  before(async () => {
    c = await ProcCluster.start({ electionTimeoutMs: 300 });
  });
  after(async () => {
    await c?.stop();
  });

  it("a fair share each through joins, a cut-off instance and its return; a partition's jobs never overlap", async () => {
    interface Interval {
      who: string;
      partition: number;
      token: number;
      start: number;
      end: number;
    }
    const intervals: Interval[] = [];
    const holding = new Map<string, Set<number>>();
    const errors: { who: string; e: unknown }[] = [];
    const job =
      (who: string): PartitionJob =>
      async (signal, ctx) => {
        const iv: Interval = {
          who,
          partition: ctx.partition,
          token: ctx.fencingToken,
          start: performance.now(),
          end: Number.NaN,
        };
        intervals.push(iv);
        ctx.assertLeader();
        assert.equal(ctx.name, `jobs:p${ctx.partition}`);
        holding.get(who)!.add(ctx.partition);
        await new Promise<void>((r) => signal.addEventListener("abort", () => r(), { once: true }));
        iv.end = performance.now();
        holding.get(who)!.delete(ctx.partition);
        assert.throws(() => ctx.assertLeader());
      };
    const instances = new Map<
      string,
      { client: BallotClient; net: ReturnType<typeof cuttableFetch>; run: PartitionRunHandle }
    >();
    const endpoints = c.ids.map((id) => c.url(id));
    const launch = (who: string): void => {
      const net = cuttableFetch();
      const client = new BallotClient({ endpoints, fetch: net.fetch });
      holding.set(who, new Set());
      const run = client.election("jobs", { partitions: P, ttlSeconds: 2 }).runForEach(job(who), {
        intervalMs: 200,
        retryDelayMs: 300,
        onError: (e) => errors.push({ who, e }),
      });
      instances.set(who, { client, net, run });
    };
    /** Every partition led exactly once, and nobody above the share of `live`. */
    const balanced = (live: string[]) => () => {
      const counts = live.map((w) => holding.get(w)!.size);
      const total = counts.reduce((a, b) => a + b, 0);
      const held = new Set(live.flatMap((w) => [...holding.get(w)!]));
      return total === P && held.size === P && counts.every((n) => n <= fairShare(P, live.length) && n > 0);
    };
    const describeHolding = (): string =>
      [...holding].map(([w, s]) => `${w}=[${[...s].sort((a, b) => a - b)}]`).join(" ");

    launch("A");
    await until(balanced(["A"]), 10_000, "A alone leads all 8");
    launch("B");
    await until(balanced(["A", "B"]), 15_000, `A and B lead 4 each (${describeHolding()})`);
    launch("C");
    await until(balanced(["A", "B", "C"]), 15_000, `A, B and C lead at most 3 each (${describeHolding()})`);
    // Settled means settled: nothing moves for a while.
    // From here on, through the cut-off and the return: nobody above ceil(P / live) + 1.
    let live = 3;
    let worst = 0;
    const sampler = setInterval(() => {
      for (const set of holding.values()) worst = Math.max(worst, set.size - fairShare(P, live));
    }, 20);
    const before = describeHolding();
    await sleep(1500);
    assert.equal(describeHolding(), before, "no churn once balanced");

    // B is cut off: its jobs stop at its lease deadline, A and C take its partitions over.
    const b = instances.get("B")!;
    const lost = [...holding.get("B")!];
    const cutAt = performance.now();
    b.net.cut();
    live = 2;
    await until(() => holding.get("B")!.size === 0, 5000, "B's jobs stop once its leases may have lapsed");
    await until(balanced(["A", "C"]), 15_000, `A and C lead 4 each (${describeHolding()})`);
    const takenOver = performance.now() - cutAt;
    for (const p of lost) {
      const next = intervals.find((iv) => iv.partition === p && iv.who !== "B" && iv.start > cutAt);
      assert.ok(next, `partition ${p} was taken over`);
    }
    // B comes back: it rejoins the roster and gets its share again.
    b.net.heal();
    live = 3;
    await until(balanced(["A", "B", "C"]), 20_000, `B gets its share back (${describeHolding()})`);

    clearInterval(sampler);
    assert.ok(worst <= 1, `an instance held ${worst} above its share`);
    for (const { run } of instances.values()) await run.stop();
    for (const { client } of instances.values()) client.close();
    assert.deepEqual(
      [...holding.values()].map((s) => s.size),
      [0, 0, 0],
      "stop ends every job",
    );

    // No partition ever had two jobs at once, and its fencing tokens only grew.
    for (let p = 0; p < P; p++) {
      const mine = intervals.filter((iv) => iv.partition === p).sort((x, y) => x.start - y.start);
      for (let i = 1; i < mine.length; i++) {
        const prev = mine[i - 1]!;
        const next = mine[i]!;
        assert.ok(
          prev.end <= next.start,
          `partition ${p}: ${prev.who}'s job (until ${prev.end.toFixed(1)}) overlaps ${next.who}'s (from ${next.start.toFixed(1)})`,
        );
        assert.ok(next.token > prev.token, `partition ${p}: fencing token ${next.token} after ${prev.token}`);
      }
    }
    // The cut-off instance's errors are its own network's; nobody else failed.
    const others = errors.filter((x) => x.who !== "B");
    assert.deepEqual(
      others.map((x) => String(x.e)),
      [],
      "only the cut-off instance reports errors",
    );
    assert.ok(takenOver < 15_000, `taken over in ${takenOver.toFixed(0)} ms`);
    // Cut off for seconds at a 200 ms interval: the same failure is reported once, not every round.
    const fromB = errors.filter((x) => x.who === "B").map((x) => String(x.e));
    assert.ok(fromB.length <= 20, `B reported ${fromB.length} errors: ${fromB.slice(0, 5).join(" | ")}`);
    console.log(
      `partitions: ${intervals.length} jobs; B cut off, its partitions led again within ${takenOver.toFixed(0)} ms; B reported ${fromB.length} errors`,
    );
  });
});
