/**
 * The running system, as an operator sees it: three `ballot start` processes on loopback. A leader
 * is elected; writes through any node (following the redirect) read back from every node; a killed
 * leader is replaced within two election timeouts; a killed node restarts and catches up (also
 * through a snapshot when it fell behind compaction); the whole cluster stopped and started keeps
 * every acknowledged write, including writes acknowledged while the leader was being killed.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { call, ProcCluster, sleep } from "./procs.js";

async function put(c: ProcCluster, via: string, key: string, value: unknown) {
  return call(`${c.url(via)}/v1/kv/${key}`, "PUT", { value }, {}, true);
}

describe("a 3-node cluster of real processes", () => {
  let c: ProcCluster;
  before(async () => {
    c = await ProcCluster.start({ extraArgs: ["--snapshot-entries", "100", "--trailing-entries", "10"] });
  });
  after(async () => {
    await c?.stop();
  });

  it("elects one leader that every node names, in X-Ballot-Leader too", async () => {
    const leader = await c.waitForLeader();
    for (const id of c.ids) {
      const r = await call(`${c.url(id)}/health`);
      assert.equal(r.status, 200);
      assert.equal(r.headers.get("x-ballot-node"), id);
      assert.equal(r.headers.get("x-ballot-leader"), leader);
    }
  });

  it("a write to a follower is redirected to the leader; every node reads it back", async () => {
    const leader = await c.waitForLeader();
    const follower = c.ids.find((id) => id !== leader)!;
    const direct = await call(`${c.url(follower)}/v1/kv/greeting`, "PUT", { value: "hello" });
    assert.equal(direct.status, 307);
    assert.equal(direct.headers.get("location"), `${c.url(leader)}/v1/kv/greeting`);
    const r = await put(c, follower, "greeting", { text: "hello", n: 1 });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    for (const id of c.ids) {
      const g = await call(`${c.url(id)}/v1/kv/greeting`);
      assert.equal(g.status, 200);
      assert.deepEqual(g.body.value, { text: "hello", n: 1 });
      assert.equal(g.headers.get("etag"), `"${r.body.revision}"`);
    }
  });

  it("the leader killed with SIGKILL: a new leader takes writes within two election timeouts", async () => {
    const old = await c.waitForLeader();
    await c.signal(old, "SIGKILL");
    const killedAt = Date.now();
    const survivor = c.alive()[0]!;
    let took = -1;
    while (Date.now() - killedAt < 10_000) {
      const r = await put(c, survivor, "after-kill", 1).catch(() => null);
      if (r?.status === 200) {
        took = Date.now() - killedAt;
        break;
      }
      await sleep(20);
    }
    assert.ok(took >= 0, `no write accepted after the leader died\n${c.tail()}`);
    // The randomized timeout is below 2 × 500 ms; detection plus one election round fits in 2 × that.
    assert.ok(took < 2 * 2 * c.electionTimeoutMs, `the first write after the kill took ${took} ms`);
    console.log(`first write accepted ${took} ms after the leader was killed`);
    // A survivor's log says why leadership moved.
    assert.ok(
      c
        .alive()
        .some((id) => (c.logs.get(id) ?? []).some((l) => l.includes(`heard nothing from leader ${old}`))),
      `no survivor logged the election timeout\n${c.tail()}`,
    );
    c.spawn(old);
    await c.waitForLeader();
  });

  it("a node that missed writes beyond compaction catches up through a snapshot", async () => {
    const leader = await c.waitForLeader();
    const victim = c.ids.find((id) => id !== leader)!;
    await c.signal(victim, "SIGKILL");
    for (let i = 0; i < 300; i++) {
      const r = await put(c, leader, `bulk/${i}`, i);
      assert.equal(r.status, 200);
    }
    c.spawn(victim);
    const deadline = Date.now() + 10_000;
    let got: any = null;
    while (Date.now() < deadline) {
      got = await call(`${c.url(victim)}/v1/kv/bulk/299?consistency=local`).catch(() => null);
      if (got?.status === 200) break;
      await sleep(50);
    }
    assert.equal(got?.status, 200, c.tail());
    assert.equal(got.body.value, 299);
    assert.ok(
      (c.logs.get(victim) ?? []).some((l) => l.includes("installed a snapshot from the leader")),
      `the lagging node caught up from a snapshot\n${c.tail()}`,
    );
    const list = await call(`${c.url(victim)}/v1/kv?prefix=bulk/&consistency=local&limit=1000`);
    assert.equal(list.body.kvs.length, 300);
  });

  it("writes acknowledged while the leader is killed, then a full stop and start: every one is there", async () => {
    const leader = await c.waitForLeader();
    const acked: string[] = [];
    let stop = false;
    const writers = [0, 1, 2, 3].map(async (w) => {
      for (let i = 0; !stop; i++) {
        const key = `chaos/${w}/${i}`;
        const via = c.alive()[i % c.alive().length]!;
        const r = await put(c, via, key, i).catch(() => null);
        if (r?.status === 200) acked.push(key);
        else await sleep(20);
      }
    });
    await sleep(300);
    await c.signal(leader, "SIGKILL");
    await sleep(1500);
    c.spawn(leader);
    await sleep(500);
    stop = true;
    await Promise.all(writers);
    for (const id of c.ids) await c.signal(id, "SIGTERM");
    for (const id of c.ids) c.spawn(id);
    await c.waitForLeader();
    const any = c.ids[1]!;
    const list = await call(`${c.url(any)}/v1/kv?prefix=chaos/&limit=10000`);
    assert.equal(list.status, 200);
    const present = new Set(list.body.kvs.map((k: { key: string }) => k.key));
    const missing = acked.filter((k) => !present.has(k));
    assert.deepEqual(missing, [], `${acked.length} writes were acknowledged`);
    assert.ok(acked.length > 20, `only ${acked.length} writes were acknowledged`);
  });
});
