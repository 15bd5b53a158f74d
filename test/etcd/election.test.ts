/**
 * `ballot/etcd` against a real etcd process: campaign, leader, observe, proclaim and resign;
 * candidates queue by arrival and fencing tokens grow with every leader; aborting a campaign
 * withdraws it; runWhileLeader on two clients never runs both jobs at once and hands over when
 * the holder's lease is revoked from outside; and a holder cut off from etcd has its signal
 * aborted before the other candidate is told it leads (the bug etcd's own Campaign had).
 * Needs the etcd binary (`bash scripts/install-etcd.sh`); without it these tests fail.
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { after, before, describe, it } from "node:test";
import { Etcd3 } from "etcd3";
import type { ElectionJob } from "../../src/client/election.js";
import { CandidacyLostError, etcdElection, LeadershipLostError } from "../../src/etcd/index.js";
import { type EtcdServer, startEtcd, startTcpProxy } from "../lib/etcd-server.js";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function waitFor(
  what: string,
  cond: () => boolean | Promise<boolean>,
  timeoutMs = 10_000,
): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (!(await cond())) {
    if (performance.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

const uniqueName = (tag: string) => `${tag}-${randomBytes(4).toString("hex")}`;

describe("ballot/etcd election on a real etcd", () => {
  let etcd: EtcdServer;
  const clients: Etcd3[] = [];
  const client = (hosts?: string): Etcd3 => {
    const c = new Etcd3({ hosts: hosts ?? etcd.endpoint });
    clients.push(c);
    return c;
  };
  let adminClient: Etcd3 | null = null;
  /** One client for the tests' own reads and for revoking leases behind a candidate's back. */
  const admin = (): Etcd3 => {
    adminClient ??= client();
    return adminClient;
  };
  /** Candidate keys of an election, as etcd has them now. */
  const candidates = async (name: string) =>
    (await admin().getAll().prefix(`ballot-election/${name}/`).sort("Create", "Ascend").exec()).kvs;

  before(async () => {
    etcd = await startEtcd();
  });
  after(async () => {
    for (const c of clients) c.close();
    await etcd?.stop();
  });

  it("refuses bad input with a clear error and writes nothing", async () => {
    const c = client();
    assert.throws(() => etcdElection(c, ""), /name must be a non-empty string/);
    assert.throws(() => etcdElection(c, "x".repeat(257)), /at most 256 bytes/);
    assert.throws(
      () => etcdElection(c, "x", { ttlSeconds: 0 }),
      /ttlSeconds must be a whole number of seconds ≥ 1/,
    );
    assert.throws(() => etcdElection(c, "x", { ttlSeconds: 1.5 }), /ttlSeconds/);
    assert.throws(() => etcdElection(c, "x", { ttlSeconds: Number.NaN }), /ttlSeconds/);
    const name = uniqueName("bad");
    const e = etcdElection(c, name, { ttlSeconds: 1 });
    await assert.rejects(e.campaign(undefined), /JSON-serializable/);
    await assert.rejects(e.campaign(10n), /JSON-serializable/);
    assert.throws(() => e.runWhileLeader(() => {}, { retryDelayMs: -1 }), /retryDelayMs/);
    assert.equal((await candidates(name)).length, 0);
    assert.equal(await e.leader(), null);
  });

  it("campaign, leader, observe, proclaim and resign", async () => {
    const c = client();
    const name = uniqueName("basic");
    const e = etcdElection(c, name, { ttlSeconds: 1 });
    assert.equal(await e.leader(), null);

    const stopObserving = new AbortController();
    const seen: unknown[] = [];
    const observing = (async () => {
      for await (const l of e.observe({ signal: stopObserving.signal })) seen.push(l);
    })();
    await waitFor("observe's first answer", () => seen.length === 1);

    const held = await e.campaign({ who: "a" });
    assert.equal(held.name, name);
    assert.deepEqual(await e.leader(), { value: { who: "a" }, fencingToken: held.fencingToken });
    // The key layout is etcd's concurrency package's: prefix + name + "/" + lease id in hex.
    const [kv] = await candidates(name);
    assert.ok(kv);
    const hex = kv.key.toString().slice(`ballot-election/${name}/`.length);
    assert.match(hex, /^[0-9a-f]+$/);
    assert.equal(BigInt(`0x${hex}`).toString(), kv.lease);
    assert.equal(Number(kv.create_revision), held.fencingToken);
    assert.equal(kv.value.toString(), JSON.stringify({ who: "a" }));

    held.assertLeader();
    assert.ok(held.validUntil() > performance.now());
    await held.proclaim({ who: "a", phase: 2 });
    assert.deepEqual(await e.leader(), { value: { who: "a", phase: 2 }, fencingToken: held.fencingToken });

    // Our own keepalives keep the 1 s lease alive well past its TTL.
    await sleep(2500);
    held.assertLeader();
    assert.equal(held.signal.aborted, false);
    assert.equal((await candidates(name)).length, 1);

    await held.resign();
    assert.equal(held.signal.aborted, true);
    assert.ok(held.signal.reason instanceof LeadershipLostError);
    assert.throws(() => held.assertLeader(), LeadershipLostError);
    assert.equal(held.validUntil(), Number.NEGATIVE_INFINITY);
    await assert.rejects(held.proclaim("late"), LeadershipLostError);
    assert.equal(await e.leader(), null);
    assert.equal((await candidates(name)).length, 0);
    const ttl = await c.leaseClient.leaseTimeToLive({ ID: kv.lease });
    assert.equal(Number(ttl.TTL), -1, "resign revokes the lease");

    await waitFor("observe to see the resignation", () => seen.length === 4);
    stopObserving.abort();
    await observing; // the iteration ends when its signal aborts
    assert.deepEqual(seen, [
      null,
      { value: { who: "a" }, fencingToken: held.fencingToken },
      { value: { who: "a", phase: 2 }, fencingToken: held.fencingToken },
      null,
    ]);
  });

  it("candidates queue by arrival; fencing tokens strictly increase across leaders", async () => {
    const name = uniqueName("queue");
    const a = etcdElection(client(), name, { ttlSeconds: 1 });
    const b = etcdElection(client(), name, { ttlSeconds: 1 });
    const tokens: number[] = [];

    let held = await a.campaign("a");
    tokens.push(held.fencingToken);
    for (const [next, value] of [
      [b, "b"],
      [a, "a"],
      [b, "b"],
    ] as const) {
      let won = false;
      const waiting = next.campaign(value).then((h) => {
        won = true;
        return h;
      });
      await waitFor("the second candidate to queue", async () => (await candidates(name)).length === 2);
      await sleep(300);
      assert.equal(won, false, "the second candidate waits while the first leads");
      assert.equal(held.signal.aborted, false);
      const leader = await a.leader();
      assert.equal(leader?.fencingToken, held.fencingToken);

      await held.resign();
      held = await waiting;
      assert.equal(held.signal.aborted, false);
      assert.deepEqual(await b.leader(), { value, fencingToken: held.fencingToken });
      tokens.push(held.fencingToken);
    }
    await held.resign();
    for (let i = 1; i < tokens.length; i++) assert.ok(tokens[i]! > tokens[i - 1]!, `tokens ${tokens}`);
  });

  it("aborting a campaign withdraws the candidacy", async () => {
    const name = uniqueName("abort");
    const a = etcdElection(client(), name, { ttlSeconds: 1 });
    const b = etcdElection(client(), name, { ttlSeconds: 1 });
    const held = await a.campaign("a");
    const ac = new AbortController();
    const waiting = b.campaign("b", { signal: ac.signal });
    await waitFor("b to queue", async () => (await candidates(name)).length === 2);
    const bLease = (await candidates(name))[1]!.lease;

    ac.abort(new Error("changed my mind"));
    await assert.rejects(waiting, /changed my mind/);
    assert.equal((await candidates(name)).length, 1, "b's key is gone");
    assert.equal(
      Number((await admin().leaseClient.leaseTimeToLive({ ID: bLease })).TTL),
      -1,
      "b's lease is revoked",
    );

    // The campaign rejects with the signal's reason, whatever it is.
    const ac2 = new AbortController();
    const waiting2 = b.campaign("b", { signal: ac2.signal });
    await waitFor("b to queue again", async () => (await candidates(name)).length === 2);
    ac2.abort();
    await assert.rejects(waiting2, { name: "AbortError" });
    assert.equal((await candidates(name)).length, 1);

    // An already aborted signal sends nothing.
    await assert.rejects(b.campaign("b", { signal: AbortSignal.abort(new Error("no")) }), /no/);
    assert.equal((await candidates(name)).length, 1);

    assert.equal(held.signal.aborted, false);
    await held.resign();
    assert.equal(await a.leader(), null);
  });

  it("runWhileLeader on two clients: never both jobs at once; hands over when the holder's lease is revoked", async () => {
    const name = uniqueName("run");
    const elections = {
      a: etcdElection(client(), name, { ttlSeconds: 1 }),
      b: etcdElection(client(), name, { ttlSeconds: 1 }),
    };
    interface Run {
      who: string;
      token: number;
      start: number;
      end: number;
      reason: unknown;
    }
    const runs: Run[] = [];
    let active = 0;
    let overlaps = 0;
    // A lease revoked behind the holder's back reaches the two candidates through two separate
    // watch streams, in either order: the new holder may start a moment before the old one hears.
    // That is what fencing tokens are for; the overlap is bounded, not zero, and counted apart.
    let revoked = false;
    const errors: unknown[] = [];
    const job =
      (who: string): ElectionJob =>
      async (signal, ctx) => {
        if (active > 0 && !revoked) overlaps++;
        active++;
        const run: Run = { who, token: ctx.fencingToken, start: performance.now(), end: 0, reason: null };
        runs.push(run);
        ctx.assertLeader();
        await new Promise<void>((resolve) =>
          signal.addEventListener(
            "abort",
            () => {
              // The job stops acting the moment its signal aborts.
              active--;
              run.end = performance.now();
              run.reason = signal.reason;
              resolve();
            },
            { once: true },
          ),
        );
        assert.throws(() => ctx.assertLeader());
      };
    const handles = {
      a: elections.a.runWhileLeader(job("a"), {
        value: "a",
        onError: (e) => errors.push(e),
        retryDelayMs: 50,
      }),
      b: elections.b.runWhileLeader(job("b"), {
        value: "b",
        onError: (e) => errors.push(e),
        retryDelayMs: 50,
      }),
    };
    try {
      await waitFor("a first leader", () => runs.length === 1);
      await waitFor("both candidates queued", async () => (await candidates(name)).length === 2);
      const first = runs[0]!;
      const holderKv = (await candidates(name))[0]!;
      assert.equal(Number(holderKv.create_revision), first.token);

      // Someone revokes the holder's lease behind its back.
      revoked = true;
      await admin().leaseClient.leaseRevoke({ ID: holderKv.lease });
      await waitFor("the other candidate to take over", () => runs.length === 2);
      await waitFor("the old job to be stopped", () => first.end > 0);
      revoked = false;
      const second = runs[1]!;
      assert.notEqual(second.who, first.who);
      assert.ok(
        first.end <= second.start + 500,
        `the old job's signal aborted within 500 ms of the new job's start (${Math.round(first.end - second.start)} ms)`,
      );
      assert.ok(first.reason instanceof LeadershipLostError);
      assert.ok(second.token > first.token);

      // The deposed one campaigns again and queues; stopping the holder hands over once more.
      await waitFor(
        "the deposed candidate to queue again",
        async () => (await candidates(name)).length === 2,
      );
      await handles[second.who as "a" | "b"].stop();
      await waitFor("the third leadership", () => runs.length === 3);
      const third = runs[2]!;
      assert.equal(third.who, first.who);
      assert.ok(second.end <= third.start);
      assert.ok(third.token > second.token);
    } finally {
      await handles.a.stop();
      await handles.b.stop();
    }
    assert.equal(overlaps, 0, "two jobs ran at once");
    assert.equal(active, 0);
    assert.deepEqual(errors, []);
    assert.equal((await candidates(name)).length, 0, "stop() resigns");
  });

  it("a holder cut off from etcd is deposed (signal aborted) before another candidate is told it leads", async (t) => {
    const name = uniqueName("partition");
    const proxy = await startTcpProxy(etcd.clientPort);
    try {
      const a = etcdElection(client(proxy.endpoint), name, { ttlSeconds: 2 });
      const b = etcdElection(client(), name, { ttlSeconds: 2 });
      const heldA = await a.campaign("a");
      let aDeposedAt = 0;
      heldA.signal.addEventListener("abort", () => {
        aDeposedAt = performance.now();
      });
      let bLeadsAt = 0;
      const waitingB = b.campaign("b").then((h) => {
        bLeadsAt = performance.now();
        return h;
      });
      await waitFor("b to queue", async () => (await candidates(name)).length === 2);
      await sleep(1500); // a few keepalives pass through the proxy: a still leads
      heldA.assertLeader();

      const cutAt = performance.now();
      proxy.partition(); // a's keepalives (and everything else of a) stop reaching etcd
      const heldB = await waitingB;

      t.diagnostic(
        `after the cut: a deposed at +${Math.round(aDeposedAt - cutAt)} ms, b led at +${Math.round(bLeadsAt - cutAt)} ms`,
      );
      assert.ok(aDeposedAt > 0, "a's signal aborted");
      assert.ok(
        aDeposedAt < bLeadsAt,
        `a deposed at +${aDeposedAt - cutAt} ms, b led at +${bLeadsAt - cutAt} ms`,
      );
      assert.ok(aDeposedAt - cutAt < 2000, "a learns within one TTL of its last keepalive");
      assert.ok(heldA.signal.reason instanceof LeadershipLostError);
      assert.match((heldA.signal.reason as Error).message, /lease may have expired/);
      assert.throws(() => heldA.assertLeader(), LeadershipLostError);
      assert.ok(heldB.fencingToken > heldA.fencingToken);
      assert.deepEqual(await b.leader(), { value: "b", fencingToken: heldB.fencingToken });
      await heldB.resign();
    } finally {
      await proxy.close();
    }
  });

  it("a candidate whose key is deleted while it waits is told so", async () => {
    const name = uniqueName("withdrawn");
    const a = etcdElection(client(), name, { ttlSeconds: 1 });
    const b = etcdElection(client(), name, { ttlSeconds: 1 });
    const held = await a.campaign("a");
    const waiting = b.campaign("b");
    await waitFor("b to queue", async () => (await candidates(name)).length === 2);
    const bKv = (await candidates(name))[1]!;
    await admin().leaseClient.leaseRevoke({ ID: bKv.lease });
    await assert.rejects(waiting, CandidacyLostError);
    await held.resign();
  });

  it("partitions: two instances lead two of four each; when one stops the other leads all four; candidates() counts", async () => {
    const name = uniqueName("parts");
    assert.throws(() => etcdElection(client(), name, { partitions: 0 }), RangeError);
    assert.throws(
      () => etcdElection(client(), "x".repeat(250), { partitions: 2 }),
      /room for the partition suffix/,
    );
    const holding = new Map<string, Set<number>>([
      ["A", new Set()],
      ["B", new Set()],
    ]);
    const last = new Map<number, number>();
    const runs = ["A", "B"].map((who) =>
      etcdElection(client(), name, { partitions: 4, ttlSeconds: 2 }).runForEach(
        async (signal, ctx) => {
          // One election per partition: its tokens grow, whoever holds it.
          assert.ok(ctx.fencingToken > (last.get(ctx.partition) ?? 0));
          last.set(ctx.partition, ctx.fencingToken);
          for (const [w, s] of holding)
            assert.ok(w === who || !s.has(ctx.partition), "one job per partition");
          holding.get(who)!.add(ctx.partition);
          await new Promise((r) => signal.addEventListener("abort", r, { once: true }));
          holding.get(who)!.delete(ctx.partition);
        },
        { intervalMs: 200 },
      ),
    );
    const split = () => holding.get("A")!.size === 2 && holding.get("B")!.size === 2;
    await waitFor("2 and 2", split, 15_000);
    assert.equal(await etcdElection(admin(), `${name}:roster`).candidates(), 2);
    await runs[1]!.stop();
    await waitFor(
      "A leads all four",
      () => holding.get("A")!.size === 4 && holding.get("B")!.size === 0,
      15_000,
    );
    assert.equal(await etcdElection(admin(), `${name}:roster`).candidates(), 1);
    await runs[0]!.stop();
    assert.equal((await candidates(`${name}:p0`)).length, 0, "stop resigns");
  });
});
