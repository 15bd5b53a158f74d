import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { after, before, describe, it } from "node:test";
import { promisify } from "node:util";
import { CLI, call, ProcCluster } from "./procs.js";

const run = promisify(execFile);

describe("cluster operations: members and leadership transfer", { timeout: 60_000 }, () => {
  let c: ProcCluster;
  before(async () => {
    c = await ProcCluster.start({ electionTimeoutMs: 400 });
  });
  after(async () => {
    await c?.stop();
  });

  it("ballot members lists every member with its role, and match index and lag from the leader", async () => {
    const leader = await c.waitForLeader();
    const { stdout } = await run(process.execPath, [CLI, "members", "--endpoints", c.url(leader)]);
    const lines = stdout.trim().split("\n");
    assert.match(lines[0]!, /^ID\s+ROLE\s+URL\s+MATCH\s+LAG$/);
    assert.equal(lines.length, 4);
    for (const id of c.ids) assert.ok(lines.some((l) => l.startsWith(`${id} `) && l.includes(c.url(id))));
    assert.ok(lines.some((l) => l.startsWith(`${leader} `) && /\bleader\b/.test(l)));
  });

  it("transfer-leader moves leadership to the member named, from any endpoint", async () => {
    const leader = await c.waitForLeader();
    const target = c.ids.find((id) => id !== leader)!;
    // Sent to the target itself (a follower): redirected to the leader, which hands over.
    const r = await call(`${c.url(target)}/v1/cluster/transfer-leader`, "POST", { id: target }, {}, true);
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.equal(r.body.leader, target);
    assert.equal(await c.waitForLeader(), target);
    const back = c.ids.find((id) => id !== target)!;
    const { stdout } = await run(process.execPath, [
      CLI,
      "transfer-leader",
      back,
      "--endpoints",
      c.url(back),
    ]);
    assert.equal(JSON.parse(stdout).leader, back);
    assert.equal(await c.waitForLeader(), back);
    const same = await call(`${c.url(back)}/v1/cluster/transfer-leader`, "POST", { id: back });
    assert.deepEqual([same.status, same.body.moved], [200, false]);
  });

  it("refuses bad requests with a clear 4xx and moves nothing", async () => {
    const leader = await c.waitForLeader();
    const u = `${c.url(leader)}/v1/cluster/transfer-leader`;
    assert.equal((await call(u, "POST", { id: "nobody" })).status, 404);
    assert.equal((await call(u, "POST", {})).status, 400);
    assert.equal((await call(u, "POST", { id: 3 })).status, 400);
    assert.equal((await call(u, "POST", { id: leader, extra: 1 })).status, 400);
    assert.equal((await call(u, "POST", "{bad")).status, 400);
    assert.equal((await call(u, "GET")).status, 405);
    assert.equal((await call(`${c.url(leader)}/v1/cluster/nope`, "POST", {})).status, 404);
    assert.equal(await c.waitForLeader(), leader);
    await assert.rejects(
      run(process.execPath, [CLI, "members", "add", "n9", "--endpoints", c.url(leader)]),
      (e: { code: number }) => e.code === 2,
    );
  });
});
