/**
 * Disaster recovery from a minority, with real processes: two of three members are lost for good,
 * the survivor is restarted with --force-new-cluster and serves alone with every acknowledged
 * write, new members join it, and a lost member that comes back with its old data learns it is
 * no longer a member and stops instead of serving stale data.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { call, freePorts, ProcCluster, sleep } from "./procs.js";

describe("disaster recovery: --force-new-cluster on a survivor", { timeout: 120_000 }, () => {
  let c: ProcCluster;
  before(async () => {
    c = await ProcCluster.start({ electionTimeoutMs: 400 });
  });
  after(async () => {
    await c?.stop();
  });

  const waitFor = async (what: string, ok: () => Promise<boolean>, timeoutMs = 20_000): Promise<void> => {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      if (await ok().catch(() => false)) return;
      await sleep(100);
    }
    throw new Error(`timed out waiting until ${what}\n${c.tail(20)}`);
  };

  it("the survivor carries on alone with every acknowledged write, and the cluster grows again", async () => {
    const leader = await c.waitForLeader();
    for (let i = 0; i < 100; i++) {
      const r = await call(`${c.url(leader)}/v1/kv/dr/${i}`, "PUT", { value: i });
      assert.equal(r.status, 200);
    }
    // Let the survivor apply everything the leader acknowledged.
    await call(`${c.url("n1")}/v1/kv/dr/99`);
    const lost = ["n2", "n3"];
    for (const id of lost) await c.signal(id, "SIGKILL");
    // Without a majority nothing is written.
    await waitFor(
      "n1 knows it has no leader",
      async () => (await call(`${c.url("n1")}/v1/cluster`)).body.leader === null,
    );
    const refused = await call(`${c.url("n1")}/v1/kv/dr/late`, "PUT", { value: "no" });
    assert.equal(refused.status, 503);

    // A node that is running is not forced: stop it, then restart it with the flag.
    await c.signal("n1", "SIGTERM");
    c.spawn("n1", ["--force-new-cluster"]);
    await waitFor("n1 leads alone", async () => {
      const st = (await call(`${c.url("n1")}/v1/cluster`)).body;
      return st.leader?.id === "n1" && st.members.length === 1;
    });
    assert.match(
      c.logs.get("n1")!.join("\n"),
      /force-new-cluster: this node is now the only member of cluster \S+ \(was: n1, n2, n3 of /,
    );
    const all = await call(`${c.url("n1")}/v1/kv?prefix=dr/&limit=1000`);
    assert.equal(all.body.kvs.length, 100, "every acknowledged write survived");
    assert.equal((await call(`${c.url("n1")}/v1/kv/dr/after`, "PUT", { value: "yes" })).status, 200);

    // Doing it again on restart changes nothing.
    await c.signal("n1", "SIGTERM");
    c.spawn("n1", ["--force-new-cluster"]);
    await waitFor(
      "n1 leads again",
      async () => (await call(`${c.url("n1")}/v1/cluster`)).body.leader?.id === "n1",
    );
    assert.match(c.logs.get("n1")!.join("\n"), /force-new-cluster: already done at index \d+/);

    // A lost member that comes back with its old data is told it is no longer a member, and stops.
    const back = c.spawn("n2");
    await waitFor("n2 stops", async () => back.exitCode !== null);
    assert.equal(back.exitCode, 0);
    assert.match(c.logs.get("n2")!.join("\n"), /this node was removed from the cluster/);

    // New members join the survivor and are promoted: three voters again.
    const ports = await freePorts(2);
    for (const [i, id] of ["n4", "n5"].entries()) {
      const url = `http://127.0.0.1:${ports[i]}`;
      c.ids.push(id);
      c.urls.set(id, url);
      c.spawn(id, ["--listen", url, "--join", c.url("n1")]);
      await waitFor(`${id} is a voter`, async () =>
        ((await call(`${c.url("n1")}/v1/cluster`)).body.members as { id: string; voter: boolean }[]).some(
          (m) => m.id === id && m.voter,
        ),
      );
    }
    for (const id of ["n4", "n5"]) {
      const r = await call(`${c.url(id)}/v1/kv?prefix=dr/&limit=1000`);
      assert.equal(r.body.kvs.length, 101, `${id} has every key`);
    }

    // The flag left in n1's unit after the cluster grew forces nothing: n4 and n5 stay members.
    await c.signal("n1", "SIGTERM");
    c.spawn("n1", ["--force-new-cluster"]);
    await waitFor("a leader among three voters", async () => {
      const st = (await call(`${c.url("n4")}/v1/cluster`)).body;
      return st.leader !== null && (st.members as { voter: boolean }[]).filter((m) => m.voter).length === 3;
    });
    assert.equal((await call(`${c.url("n4")}/v1/kv/dr/final`, "PUT", { value: 1 }, {}, true)).status, 200);
  });
});
