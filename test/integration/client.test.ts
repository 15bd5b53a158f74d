/**
 * The client side of a running cluster: the ballot get/put/del/list/status commands against any
 * endpoint (following the leader, moving past a dead endpoint), lease and local reads, and a
 * cluster started with --forward-writes answering a write at a follower itself.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { after, before, describe, it } from "node:test";
import { CLI, call, ProcCluster } from "./procs.js";

const ballot = (...args: string[]) =>
  spawnSync(process.execPath, [CLI, ...args], { encoding: "utf8", timeout: 20_000 });

describe("ballot client commands and read consistency", () => {
  let c: ProcCluster;
  before(async () => {
    c = await ProcCluster.start();
  });
  after(async () => {
    await c?.stop();
  });

  it("put, get, list, del and status work through any endpoint, a dead one first", async () => {
    const leader = await c.waitForLeader();
    const follower = c.ids.find((id) => id !== leader)!;
    const endpoints = `http://127.0.0.1:1,${c.url(follower)}`; // nothing listens on port 1
    const put = ballot("put", "app/config", '{"replicas": 3}', "--endpoints", endpoints);
    assert.equal(put.status, 0, put.stderr);
    assert.equal(JSON.parse(put.stdout).value.replicas, 3);
    const get = ballot("get", "app/config", "--endpoints", endpoints);
    assert.equal(get.status, 0, get.stderr);
    assert.deepEqual(JSON.parse(get.stdout).value, { replicas: 3 });
    assert.equal(
      JSON.parse(ballot("put", "app/name", "plain text", "--endpoints", endpoints).stdout).value,
      "plain text",
    );
    const list = JSON.parse(ballot("list", "app/", "--endpoints", endpoints).stdout);
    assert.deepEqual(
      list.kvs.map((k: { key: string }) => k.key),
      ["app/config", "app/name"],
    );
    const status = JSON.parse(ballot("status", "--endpoints", endpoints).stdout);
    assert.equal(status.leader.id, leader);
    assert.equal(status.members.length, 3);
    assert.equal(ballot("del", "app/name", "--endpoints", endpoints).status, 0);
    const missing = ballot("get", "app/name", "--endpoints", endpoints);
    assert.equal(missing.status, 1);
    assert.match(missing.stderr, /not_found/);
    const usage = ballot("put", "only-a-key", "--endpoints", endpoints);
    assert.equal(usage.status, 2);
  });

  it("lease and local reads answer on the leader and on followers", async () => {
    const leader = await c.waitForLeader();
    assert.equal((await call(`${c.url(leader)}/v1/kv/r`, "PUT", { value: 7 })).status, 200);
    for (const id of c.ids) {
      const lease = await call(`${c.url(id)}/v1/kv/r?consistency=lease`);
      assert.equal(lease.status, 200, `${id}: ${JSON.stringify(lease.body)}`);
      assert.equal(lease.body.value, 7);
    }
    const local = await call(`${c.url(leader)}/v1/kv/r?consistency=local`);
    assert.equal(local.body.value, 7);
  });
});

describe("--forward-writes", () => {
  let c: ProcCluster;
  before(async () => {
    c = await ProcCluster.start({ extraArgs: ["--forward-writes"] });
  });
  after(async () => {
    await c?.stop();
  });

  it("a write to a follower is applied through the leader and answered by the follower, no redirect", async () => {
    const leader = await c.waitForLeader();
    const follower = c.ids.find((id) => id !== leader)!;
    const r = await call(`${c.url(follower)}/v1/kv/fwd`, "PUT", { value: "via follower" });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.equal(r.headers.get("location"), null);
    assert.equal(r.body.value, "via follower");
    const cas = await call(`${c.url(follower)}/v1/kv/fwd`, "PUT", { value: "x" }, { "If-Match": '"999"' });
    assert.equal(cas.status, 412, "conditions travel with the forwarded write");
    const read = await call(`${c.url(leader)}/v1/kv/fwd`);
    assert.equal(read.body.value, "via follower");
  });
});
