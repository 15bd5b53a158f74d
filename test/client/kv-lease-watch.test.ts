/**
 * BallotClient against real 3-node clusters (`ballot start` processes): key-value operations
 * through a list of follower endpoints (leader discovery), writes retried across a SIGKILL of the
 * leader applied exactly once, leases kept alive past their TTL and their keys deleted after
 * revoke or once keepalives stop, watch delivering every change once and in order across a kill
 * of the node serving it, and `compacted` from a node whose history starts at a snapshot.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { BallotClient, BallotClientError, type WatchEvent } from "../../src/client/index.js";
import { call, freePorts, ProcCluster } from "../integration/procs.js";
import { type Attempt, cuttableFetch, recordingFetch, sleep, until, within } from "./helpers.js";

describe("BallotClient: key-value, leases and watch", { timeout: 90_000 }, () => {
  let c: ProcCluster;
  const all = () => c.ids.map((id) => c.url(id));

  before(async () => {
    c = await ProcCluster.start({ electionTimeoutMs: 300 });
  });
  after(async () => {
    await c?.stop();
  });

  /** Restarts the nodes that were killed and waits until all agree on a leader. */
  async function heal(): Promise<void> {
    for (const id of c.ids) if (!c.alive().includes(id)) c.spawn(id);
    await c.waitForLeader(15_000);
  }

  it("reads and writes through follower endpoints: finds the leader, CAS, create-only, fencing, list, delete", async () => {
    const leader = await c.waitForLeader();
    const followers = c.ids.filter((id) => id !== leader).map((id) => c.url(id));
    const [dead] = await freePorts(1);
    const client = new BallotClient({ endpoints: [`http://127.0.0.1:${dead}`, ...followers] });

    const p1 = await client.put("app/config", { replicas: 3 });
    assert.equal(p1.version, 1);
    assert.equal(client.preferredEndpoint, c.url(leader), "the leader was learned from the redirect");
    const g = await client.get("app/config");
    assert.deepEqual(g, {
      key: "app/config",
      value: { replicas: 3 },
      revision: p1.revision,
      createRevision: p1.revision,
      version: 1,
    });
    for (const consistency of ["lease", "local"] as const) {
      assert.deepEqual((await client.get("app/config", { consistency }))?.value, { replicas: 3 });
    }

    const p2 = await client.put("app/config", { replicas: 5 }, { ifRevision: p1.revision });
    assert.equal(p2.version, 2);
    await assert.rejects(
      client.put("app/config", 0, { ifRevision: p1.revision }),
      (e: BallotClientError) =>
        e.status === 412 && e.code === "precondition_failed" && e.details.revision === p2.revision,
    );
    await assert.rejects(
      client.put("app/config", 0, { createOnly: true }),
      (e: BallotClientError) => e.status === 412,
    );
    assert.equal((await client.put("app/new", "x", { createOnly: true })).version, 1);

    await client.put("app/fenced", 1, { fencingToken: 7 });
    await client.put("app/fenced", 2, { fencingToken: 7 });
    await assert.rejects(
      client.put("app/fenced", 3, { fencingToken: 6 }),
      (e: BallotClientError) => e.code === "stale_token" && e.details.fencingToken === 7,
    );
    await assert.rejects(
      client.delete("app/fenced", { fencingToken: 1 }),
      (e: BallotClientError) => e.code === "stale_token",
    );

    const keys = ["app/a/b", "app/sp ace", "app/ünï"];
    for (const k of keys) await client.put(k, k);
    for (const k of keys) assert.equal((await client.get(k))?.value, k);
    const l = await client.list("app/", { limit: 3 });
    assert.deepEqual(
      l.kvs.map((kv) => kv.key),
      ["app/a/b", "app/config", "app/fenced"],
    );
    assert.equal(l.more, true);
    assert.ok(l.revision >= p2.revision);

    const d = await client.delete("app/new");
    assert.equal(d.deleted, true);
    assert.equal((await client.delete("app/new")).deleted, false);
    assert.equal(await client.get("app/new"), null);
    await assert.rejects(
      client.delete("app/config", { ifRevision: p1.revision }),
      (e: BallotClientError) => e.code === "precondition_failed",
    );

    const st = await client.status();
    assert.equal(st.leader?.id, leader);
    assert.equal(st.members.length, 3);
  });

  it("writes in flight when the leader is SIGKILLed are retried and applied exactly once", async (t) => {
    await heal();
    const attempts: Attempt[] = [];
    const client = new BallotClient({ endpoints: all(), fetch: recordingFetch(attempts) });
    const writers = 4;
    const counts = new Array<number>(writers).fill(0);
    let stop = false;
    let killedAt = 0;
    const afterKill = new Array<number>(writers).fill(0);
    const loops = counts.map(async (_, w) => {
      while (!stop) {
        const next = counts[w]! + 1;
        // Throws on anything but success (outcome_unknown included): the test then fails.
        const r = await client.put(`retry/w${w}`, next);
        assert.equal(r.value, next);
        counts[w] = next;
        if (killedAt) afterKill[w]!++;
      }
    });
    await sleep(400);
    const leader = await c.waitForLeader();
    await c.signal(leader, "SIGKILL");
    killedAt = performance.now();
    await c.waitForLeader(10_000, [leader]);
    await until(() => afterKill.every((n) => n >= 5), 15_000, "writes after the kill");
    stop = true;
    await Promise.all(loops);

    for (let w = 0; w < writers; w++) {
      const kv = await client.get(`retry/w${w}`);
      assert.equal(kv?.value, counts[w]);
      assert.equal(kv?.version, counts[w], `writer ${w}: every put applied once`);
    }
    const byKey = new Map<string, Attempt[]>();
    for (const a of attempts) if (a.key) byKey.set(a.key, [...(byKey.get(a.key) ?? []), a]);
    const retried = [...byKey.values()].filter((as) => as.length > 1);
    const brokenAfterSend = retried.filter((as) =>
      as.some((a) => typeof a.outcome === "string" && a.outcome !== "ECONNREFUSED"),
    );
    t.diagnostic(
      `${counts.reduce((a, b) => a + b)} writes; ${retried.length} sent more than once, ${brokenAfterSend.length} after a broken connection or timeout`,
    );
    assert.ok(retried.length > 0, "some write was retried with its Idempotency-Key");
    assert.ok(retried.every((as) => as.at(-1)!.outcome === 200));
  });

  it("a lease kept alive keeps its key past the TTL; the key goes on revoke, on server-side revoke the signal aborts", async () => {
    await heal();
    const client = new BallotClient({ endpoints: all() });
    const lease = await client.grantLease(1);
    assert.equal(lease.ttlSeconds, 1);
    await client.put("lease/a", "held", { lease });
    assert.equal((await client.get("lease/a"))?.lease, lease.id);
    await sleep(2500);
    assert.equal(lease.signal.aborted, false);
    assert.ok(lease.validUntil() > performance.now());
    assert.equal((await client.get("lease/a"))?.value, "held", "alive 2.5 TTLs later");
    await lease.revoke();
    assert.equal(lease.signal.aborted, true);
    assert.equal(await client.get("lease/a"), null, "deleted with the revoke");
    await lease.revoke(); // the lease is gone: not an error

    // Revoked behind the client's back: the next keepalive answers 404 and the signal aborts.
    const other = await client.grantLease(3);
    const leader = await c.waitForLeader();
    assert.equal((await call(`${c.url(leader)}/v1/leases/${other.id}`, "DELETE")).status, 200);
    await until(() => other.signal.aborted, 3000, "the keepalive to notice");
    assert.equal((other.signal.reason as BallotClientError).code, "lease_lost");
    await assert.rejects(
      client.put("lease/b", 1, { lease: other }),
      (e: BallotClientError) => e.code === "lease_not_found",
    );
  });

  it("when keepalives stop, the signal aborts before the server deletes the lease's key, which then goes", async () => {
    const net = cuttableFetch();
    const client = new BallotClient({ endpoints: all(), fetch: net.fetch });
    const observer = new BallotClient({ endpoints: all() });
    const lease = await client.grantLease(2);
    await client.put("lease/cut", 1, { lease });
    await sleep(1000);
    net.cut();
    const cutAt = performance.now();
    await new Promise<void>((r) => lease.signal.addEventListener("abort", () => r(), { once: true }));
    const abortedAt = performance.now();
    assert.equal((lease.signal.reason as BallotClientError).code, "lease_expired");
    // The client gave up first: the server still has the key at that moment.
    assert.equal(
      (await observer.get("lease/cut"))?.value,
      1,
      "still there when the client stopped trusting the lease",
    );
    await until(async () => (await observer.get("lease/cut")) === null, 6000, "the key to expire");
    const goneAt = performance.now();
    assert.ok(abortedAt - cutAt < 2000, `signal aborted ${abortedAt - cutAt} ms after the cut`);
    assert.ok(goneAt > abortedAt);
    net.heal();
  });

  it("watch delivers puts and deletes in order, once each, across a SIGKILL of the node serving it", async () => {
    await heal();
    const writer = new BallotClient({ endpoints: all() });
    const served = await c.waitForLeader(); // the watch's first endpoint: the leader, killed below
    const watcher = new BallotClient({
      endpoints: [c.url(served), ...c.ids.filter((id) => id !== served).map((id) => c.url(id))],
    });
    const from = (await writer.list("w/", { limit: 1 })).revision + 1;
    const ac = new AbortController();
    const got: WatchEvent[] = [];
    const expected: [string, string, number][] = [];
    let lastRevision = Number.POSITIVE_INFINITY;
    const done = (async () => {
      for await (const e of watcher.watch("w/", { fromRevision: from, signal: ac.signal })) {
        got.push(e);
        if (e.revision >= lastRevision) ac.abort();
      }
    })();
    const N = 60;
    for (let i = 1; i <= N; i++) {
      const key = `w/k${i % 5}`;
      if (i % 7 === 0 && (await writer.get(key))) {
        const d = await writer.delete(key);
        expected.push(["delete", key, d.revision]);
      } else {
        const p = await writer.put(key, i);
        expected.push(["put", key, p.revision]);
      }
      await writer.put("other/noise", i); // not under the prefix: never delivered
      if (i === 20) {
        await until(() => got.length >= 10, 5000, "the watch to deliver");
        await c.signal(served, "SIGKILL");
      }
    }
    lastRevision = expected.at(-1)![2];
    if (got.at(-1) && got.at(-1)!.revision >= lastRevision) ac.abort();
    await within(done, 15_000, `the watch to deliver everything (got ${got.length})`);
    assert.deepEqual(
      got.map((e) => [e.type, e.key, e.revision]),
      expected,
    );
    const puts = got.filter((e) => e.type === "put");
    assert.ok(puts.every((e) => e.type === "put" && typeof e.value === "number" && e.version >= 1));
  });
});

describe("BallotClient watch: compacted history", { timeout: 60_000 }, () => {
  let c: ProcCluster;
  before(async () => {
    c = await ProcCluster.start({ electionTimeoutMs: 300, extraArgs: ["--snapshot-entries", "10"] });
  });
  after(async () => {
    await c?.stop();
  });

  it("a node whose history starts at a snapshot answers 410: the client throws compacted with compactRevision", async () => {
    const client = new BallotClient({ endpoints: c.ids.map((id) => c.url(id)) });
    for (let i = 0; i < 30; i++) await client.put(`c/k${i}`, i);
    const leader = await c.waitForLeader();
    const victim = c.ids.find((id) => id !== leader)!;
    await c.signal(victim, "SIGKILL");
    c.spawn(victim);
    await c.waitForLeader(15_000);
    const only = new BallotClient({ endpoints: [c.url(victim)] });
    let err: unknown;
    try {
      for await (const _ of only.watch("c/", { fromRevision: 1 }))
        assert.fail("no event expected from revision 1");
    } catch (e) {
      err = e;
    }
    assert.ok(err instanceof BallotClientError, String(err));
    assert.equal(err.code, "compacted");
    assert.equal(err.status, 410);
    assert.ok(err.compactRevision! > 1, `compactRevision ${err.compactRevision}`);

    // Re-read, then watch from the list's revision + 1 as the docs say.
    const l = await only.list("c/", { consistency: "local" });
    assert.equal(l.kvs.length, 30);
    const ac = new AbortController();
    const it = only.watch("c/", { fromRevision: l.revision + 1, signal: ac.signal })[Symbol.asyncIterator]();
    const next = it.next();
    const p = await client.put("c/after", "x");
    const ev = await next;
    assert.equal(ev.done, false);
    assert.equal(ev.value?.revision, p.revision);
    ac.abort();
    await it.return?.();
  });
});
