/**
 * Leader placement with --priority, with real processes: the member with the highest priority
 * leads once it is healthy, a failure still elects someone else at once (elections never wait
 * for the preferred member), and leadership returns to it after it recovers.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { call, ProcCluster, sleep } from "./procs.js";

describe("leader placement: --priority", { timeout: 90_000 }, () => {
  let c: ProcCluster;
  before(async () => {
    c = await ProcCluster.start({
      electionTimeoutMs: 400,
      nodeArgs: (id) => (id === "n1" ? ["--priority", "10"] : id === "n2" ? ["--priority", "5"] : []),
    });
  });
  after(async () => {
    await c?.stop();
  });

  const leaderBecomes = async (id: string, timeoutMs = 20_000): Promise<number> => {
    const started = Date.now();
    while (Date.now() - started < timeoutMs) {
      if ((await c.waitForLeader(10_000).catch(() => null)) === id) return Date.now() - started;
      await sleep(100);
    }
    throw new Error(`${id} did not become leader within ${timeoutMs} ms\n${c.tail(20)}`);
  };

  it("the highest-priority member leads once healthy, even after leadership is moved away by hand", async () => {
    await leaderBecomes("n1");
    const moved = await call(`${c.url("n1")}/v1/cluster/transfer-leader`, "POST", { id: "n3" });
    assert.equal(moved.status, 200, JSON.stringify(moved.body));
    await leaderBecomes("n1");
    const st = (await call(`${c.url("n1")}/v1/cluster`)).body;
    const priorities = Object.fromEntries(
      (st.members as { id: string; priority: number }[]).map((m) => [m.id, m.priority]),
    );
    assert.deepEqual(priorities, { n1: 10, n2: 5, n3: 0 });
  });

  it("losing it elects another member at once; the next-best takes over; it leads again after it recovers", async () => {
    await leaderBecomes("n1");
    assert.equal((await call(`${c.url("n1")}/v1/kv/p`, "PUT", { value: 1 })).status, 200);
    await c.signal("n1", "SIGKILL");
    const failover = Date.now();
    const next = await c.waitForLeader(10_000, ["n1"]);
    assert.notEqual(next, "n1");
    console.log(
      `# priority: a new leader (${next}) ${Date.now() - failover} ms after the preferred one died`,
    );
    // With n1 gone, n2 (priority 5) is preferred over n3 (0).
    await leaderBecomes("n2");
    assert.equal((await call(`${c.url("n2")}/v1/kv/p`, "PUT", { value: 2 })).status, 200);
    c.spawn("n1", ["--priority", "10"]);
    const back = await leaderBecomes("n1", 30_000);
    console.log(`# priority: leadership back on n1 ${back} ms after it restarted`);
    assert.equal((await call(`${c.url("n1")}/v1/kv/p`)).body.value, 2, "nothing acknowledged was lost");
    const all = c.ids.flatMap((id) => c.logs.get(id) ?? []).join("\n");
    assert.match(all, /handing leadership to n1: its priority 10 is above this node's [05]/);
  });
});
