/**
 * Follower read leases with real processes: three `ballot start --follower-read-leases` nodes. A
 * follower answers `?consistency=lease` from its own lease — still while the leader is paused with
 * SIGSTOP, which no read that asks the leader could do — and a follower cut off from the leader
 * stops answering lease reads within about an election timeout (503) instead of answering stale.
 * After a failover, no node (the paused old leader included, once resumed) returns a value older
 * than a write the new leader acknowledged.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { call, ProcCluster, sleep } from "./procs.js";

const ET = 500;

interface Read {
  /** Milliseconds after the fault when the read was sent. */
  readonly at: number;
  readonly ms: number;
  readonly status: number;
  readonly value: unknown;
}

describe("follower read leases (--follower-read-leases), 3 real processes", { timeout: 120_000 }, () => {
  let c: ProcCluster;
  const paused = new Set<string>();

  const pause = async (id: string): Promise<void> => {
    paused.add(id);
    await c.signal(id, "SIGSTOP");
  };
  const resume = async (id: string): Promise<void> => {
    await c.signal(id, "SIGCONT");
    paused.delete(id);
  };
  const leaseRead = async (id: string, key: string, since = Date.now()): Promise<Read> => {
    const at = Date.now() - since;
    const t0 = Date.now();
    const r = await call(`${c.url(id)}/v1/kv/${key}?consistency=lease`).catch(() => null);
    return { at, ms: Date.now() - t0, status: r?.status ?? 0, value: r?.body?.value };
  };
  /** Writes through whichever of `via` leads (no redirect is followed: it could lead to a paused node). */
  const put = async (via: string[], key: string, value: unknown): Promise<boolean> => {
    for (const id of via) {
      const r = await call(`${c.url(id)}/v1/kv/${key}`, "PUT", { value }).catch(() => null);
      if (r?.status === 200) return true;
    }
    return false;
  };
  /** Polls until a lease read on `id` answers `value` within 50 ms (on loopback, with or without a lease). */
  const untilQuick = async (id: string, key: string, value: unknown): Promise<Read> => {
    const deadline = Date.now() + 10_000;
    for (;;) {
      const r = await leaseRead(id, key);
      if (r.status === 200 && r.value === value && r.ms < 50) return r;
      assert.ok(Date.now() < deadline, `no quick lease read on ${id}: ${JSON.stringify(r)}\n${c.tail()}`);
      await sleep(20);
    }
  };

  before(async () => {
    c = await ProcCluster.start({ electionTimeoutMs: ET, extraArgs: ["--follower-read-leases"] });
  });
  after(async () => {
    for (const id of paused) await c?.signal(id, "SIGCONT");
    await c?.stop();
  });

  it("a write, then a lease read on a follower returns it — from the follower alone, even with the leader paused", async () => {
    const leader = await c.waitForLeader();
    const follower = c.ids.find((id) => id !== leader)!;
    assert.ok(await put([leader], "k", "v1"));
    const first = await leaseRead(follower, "k");
    assert.deepEqual([first.status, first.value], [200, "v1"], "the acknowledged write is visible at once");
    await untilQuick(follower, "k", "v1");
    const metrics = await (await fetch(`${c.url(follower)}/metrics`)).text();
    assert.match(metrics, /^ballot_follower_read_lease\{[^}]*\} 1$/m, "the follower reports its lease");
    const served = /^ballot_read_barriers_total\{confirmed_by="follower_lease"[^}]*\} (\d+)$/m.exec(metrics);
    assert.ok(Number(served?.[1]) >= 1, "lease reads served from the follower's lease are counted");
    await pause(leader);
    const stoppedAt = Date.now();
    const r = await leaseRead(follower, "k", stoppedAt);
    await resume(leader);
    console.log(`# lease read on follower ${follower} with the leader paused: ${r.status} in ${r.ms} ms`);
    // Asking the paused leader would have waited for the read timeout (2 × ET) and answered 503.
    assert.deepEqual([r.status, r.value], [200, "v1"]);
    assert.ok(r.ms < ET / 2, `answered in ${r.ms} ms`);
    await c.waitForLeader();
  });

  it("a follower cut off from the leader stops answering lease reads within about an election timeout (503), instead of answering stale", async () => {
    const leader = await c.waitForLeader();
    const [follower, other] = c.ids.filter((id) => id !== leader) as [string, string];
    await untilQuick(follower, "k", "v1");
    // Pausing the leader and the other follower leaves `follower` alone: no leader, no election.
    await pause(other);
    await pause(leader);
    const stoppedAt = Date.now();
    const reads: Read[] = [];
    while (Date.now() - stoppedAt < 4 * ET) {
      reads.push(await leaseRead(follower, "k", stoppedAt));
      await sleep(25);
    }
    await resume(leader);
    await resume(other);
    const served = reads.filter((r) => r.status === 200);
    const lastServed = served.at(-1);
    console.log(
      `# cut-off follower ${follower}: ${served.length} lease reads served, the last sent ${lastServed?.at} ms after the cut; ` +
        `then ${reads.length - served.length} refused (${[...new Set(reads.filter((r) => r.status !== 200).map((r) => r.status))].join(", ")})`,
    );
    assert.ok(served.length > 0, "the lease still covered the first reads");
    for (const r of served) assert.equal(r.value, "v1");
    assert.ok(lastServed!.at <= ET, `served a lease read sent ${lastServed!.at} ms after it was cut off`);
    const late = reads.filter((r) => r.at > ET + 100);
    assert.ok(late.length > 0);
    for (const r of late) assert.equal(r.status, 503, `a read sent ${r.at} ms after the cut: ${r.status}`);
    await c.waitForLeader();
  });

  it("after a failover, no lease read anywhere returns a value older than a write the new leader acknowledged", async () => {
    const old = await c.waitForLeader();
    await pause(old);
    const survivors = c.ids.filter((id) => id !== old);
    const deadline = Date.now() + 15_000;
    while (!(await put(survivors, "k", "v2"))) {
      assert.ok(Date.now() < deadline, `no new leader took the write\n${c.tail()}`);
      await sleep(50);
    }
    for (const id of survivors) {
      const r = await leaseRead(id, "k");
      assert.deepEqual([r.status, r.value], [200, "v2"], `${id} after the acknowledged write`);
    }
    // The old leader wakes with a stale clock, a stale term and a stale state machine.
    await resume(old);
    const resumedAt = Date.now();
    const reads: Read[] = [];
    while (Date.now() - resumedAt < 4 * ET) {
      const r = await leaseRead(old, "k", resumedAt);
      reads.push(r);
      if (r.status === 200)
        assert.equal(r.value, "v2", `stale read from the old leader ${r.at} ms after it resumed`);
      await sleep(25);
    }
    assert.ok(
      reads.some((r) => r.status === 200),
      `the old leader answers again once it follows: ${JSON.stringify(reads.slice(-3))}`,
    );
    await untilQuick(old, "k", "v2");
  });
});
