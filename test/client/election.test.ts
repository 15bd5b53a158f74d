/**
 * Elections through BallotClient on a real 3-node cluster: campaign queues behind the leader,
 * fencing tokens grow, proclaim and observe, resign hands over, an aborted campaign withdraws;
 * runWhileLeader jobs of two clients never overlap (intervals measured with performance.now())
 * while the Raft leader node is SIGKILLed, the holder stops, and the holder is cut off from the
 * network (its job stops on the lease deadline, before the other client's job starts).
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import {
  BallotClient,
  type BallotClientError,
  type ElectionJob,
  type ElectionLeader,
} from "../../src/client/index.js";
import { call, ProcCluster } from "../integration/procs.js";
import { cuttableFetch, sleep, until, within } from "./helpers.js";

describe("BallotClient elections", { timeout: 90_000 }, () => {
  let c: ProcCluster;
  const all = () => c.ids.map((id) => c.url(id));

  before(async () => {
    c = await ProcCluster.start({ electionTimeoutMs: 300 });
  });
  after(async () => {
    await c?.stop();
  });

  it("campaign waits its turn; tokens grow; proclaim, observe, resign hand over; an aborted campaign withdraws", async () => {
    const a = new BallotClient({ endpoints: all() });
    const b = new BallotClient({ endpoints: [...all()].reverse() });
    const eA = a.election("e1", { ttlSeconds: 2 });
    const eB = b.election("e1", { ttlSeconds: 2 });

    const seen: (ElectionLeader | null)[] = [];
    const obs = new AbortController();
    const observing = (async () => {
      for await (const l of new BallotClient({ endpoints: all() })
        .election("e1")
        .observe({ signal: obs.signal }))
        seen.push(l);
    })();
    await until(() => seen.length === 1, 5000, "the first observe event");
    assert.deepEqual(seen, [null]);
    assert.equal(await eA.leader(), null);

    const hA = await eA.campaign("A");
    assert.equal(hA.name, "e1");
    assert.ok(hA.fencingToken > 0);
    assert.ok(hA.validUntil() > performance.now());
    hA.assertLeader();
    assert.deepEqual(await eB.leader(), { value: "A", fencingToken: hA.fencingToken });

    let bWon = false;
    const pB = eB.campaign("B").then((h) => {
      bWon = true;
      return h;
    });
    await sleep(2500); // longer than the TTL: B's lease is kept alive while it waits, A keeps leading
    assert.equal(bWon, false);
    assert.equal(hA.signal.aborted, false);

    await hA.proclaim("A2");
    assert.deepEqual(await eB.leader(), { value: "A2", fencingToken: hA.fencingToken });

    await hA.resign();
    assert.equal(hA.signal.aborted, true);
    assert.throws(
      () => hA.assertLeader(),
      (e: BallotClientError) => e.code === "leadership_lost",
    );
    await assert.rejects(hA.proclaim("late"), (e: BallotClientError) => e.code === "leadership_lost");
    const hB = await within(pB, 5000, "B to win after A resigned");
    assert.ok(hB.fencingToken > hA.fencingToken, "the token grows with each leadership");

    // A campaign whose signal aborts rejects with the reason and leaves the queue.
    const ac = new AbortController();
    const pA2 = eA.campaign("A-again", { signal: ac.signal });
    await sleep(300);
    ac.abort(new Error("changed my mind"));
    await assert.rejects(pA2, /changed my mind/);
    const leader = await c.waitForLeader();
    const info = await call(`${c.url(leader)}/v1/elections/e1`);
    assert.equal(info.body.candidates, 1, "only B is left in the queue");

    await hB.resign();
    assert.equal(await eA.leader(), null);
    await until(() => seen.length === 5, 5000, "observe to report every change");
    assert.deepEqual(seen, [
      null,
      { value: "A", fencingToken: hA.fencingToken },
      { value: "A2", fencingToken: hA.fencingToken },
      { value: "B", fencingToken: hB.fencingToken },
      null,
    ]);
    obs.abort();
    await observing;
  });

  it("runWhileLeader: jobs never overlap across a Raft leader kill, a stop, and the holder being cut off", async (t) => {
    interface Interval {
      who: string;
      token: number;
      start: number;
      end: number;
    }
    const intervals: Interval[] = [];
    const running = new Set<string>();
    const errors: unknown[] = [];
    const job =
      (who: string): ElectionJob =>
      async (signal, ctx) => {
        const iv: Interval = { who, token: ctx.fencingToken, start: performance.now(), end: Number.NaN };
        intervals.push(iv);
        running.add(who);
        ctx.assertLeader();
        await new Promise<void>((r) => signal.addEventListener("abort", () => r(), { once: true }));
        iv.end = performance.now();
        running.delete(who);
        assert.throws(() => ctx.assertLeader());
      };
    const netA = cuttableFetch();
    const netB = cuttableFetch();
    const a = new BallotClient({ endpoints: all(), fetch: netA.fetch });
    const b = new BallotClient({ endpoints: [...all()].reverse(), fetch: netB.fetch });
    const opts = { onError: (e: unknown) => errors.push(e), retryDelayMs: 100 };
    let runA = a.election("jobs", { ttlSeconds: 2 }).runWhileLeader(job("A"), opts);
    let runB = b.election("jobs", { ttlSeconds: 2 }).runWhileLeader(job("B"), opts);
    const holderNow = () => (running.size === 1 ? [...running][0]! : undefined);

    const first = await until(holderNow, 5000, "a first holder");

    // The Raft leader dies: both clients carry on through the other nodes.
    const raftLeader = await c.waitForLeader();
    await c.signal(raftLeader, "SIGKILL");
    await c.waitForLeader(10_000, [raftLeader]);
    await sleep(2500); // longer than the TTL: the holder's keepalives must have reached the new leader
    assert.ok(running.size <= 1);
    const holder = await until(holderNow, 5000, "a holder after the leader kill");
    for (const cl of [a, b]) assert.equal((await cl.put(`jobs/alive-${holder}`, 1)).value, 1);
    c.spawn(raftLeader);
    await c.waitForLeader(15_000);

    // The holder stops (resigns): the other takes over at once.
    const other = holder === "A" ? "B" : "A";
    const t0 = performance.now();
    if (holder === "A") await runA.stop();
    else await runB.stop();
    await until(() => holderNow() === other, 5000, `${other} to take over after the stop`);
    assert.ok(performance.now() - t0 < 3000);
    // ...and campaigns again, queued behind.
    if (holder === "A") runA = a.election("jobs", { ttlSeconds: 2 }).runWhileLeader(job("A"), opts);
    else runB = b.election("jobs", { ttlSeconds: 2 }).runWhileLeader(job("B"), opts);

    // The current holder is cut off from every node: its job stops by its lease deadline, and the
    // other client's job starts only after the server expired the lease.
    const cutNet = other === "A" ? netA : netB;
    const cutAt = performance.now();
    cutNet.cut();
    await until(() => holderNow() === holder, 8000, `${holder} to take over from the cut-off ${other}`);
    const cutIv = intervals.filter((iv) => iv.who === other).at(-1)!;
    assert.ok(cutIv.end - cutAt < 2000, `the cut-off job ended ${cutIv.end - cutAt} ms after the cut`);
    cutNet.heal();

    await runA.stop();
    await runB.stop();
    assert.equal(running.size, 0);

    const sorted = [...intervals].sort((x, y) => x.start - y.start);
    for (let i = 1; i < sorted.length; i++) {
      const prev = sorted[i - 1]!;
      const cur = sorted[i]!;
      assert.ok(cur.start >= prev.end, `overlap: ${JSON.stringify(prev)} then ${JSON.stringify(cur)}`);
      assert.ok(cur.token > prev.token, "fencing tokens grow with each leadership");
    }
    assert.ok(sorted.length >= 3, `intervals: ${JSON.stringify(sorted)}`);
    assert.equal(sorted[0]!.who, first);
    t.diagnostic(`holders in order: ${sorted.map((iv) => `${iv.who}#${iv.token}`).join(" ")}`);
    assert.ok(
      errors.every((e) => e instanceof Error),
      String(errors),
    );
  });
});
