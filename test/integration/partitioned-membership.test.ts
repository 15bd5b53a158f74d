/**
 * Membership of a partitioned cluster, with real processes (`--partitions 4 --partition-by
 * prefix:/`): a new node started with --join (and no --partitions: it takes the cluster's) joins
 * every partition, is promoted in each and serves their keys; a learner joins every partition and
 * one request promotes it in each; bad members are refused with nothing changed; a member removed through the CLI
 * leaves every partition and stops, and the rest keep every partition led and writable; removing
 * the member that receives the request sends it elsewhere; a formed member restarted with its
 * original --members after the changes recovers its data directory; --force-new-cluster makes a
 * survivor the whole of every partition. A joiner asking for another partition count is refused
 * before it touches anything.
 */
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { after, before, describe, it } from "node:test";
import { promisify } from "node:util";
import { BallotClient } from "../../src/client/index.js";
import { CLI, call, freePorts, ProcCluster } from "./procs.js";

const run = promisify(execFile);
const P = 4;
const ET = 400;

interface Member {
  id: string;
  voter: boolean;
}

describe("membership of a partitioned cluster (--partitions 4)", { timeout: 240_000 }, () => {
  let c: ProcCluster;
  let spare: number[];
  before(async () => {
    c = await ProcCluster.start({
      electionTimeoutMs: ET,
      extraArgs: ["--partitions", String(P), "--partition-by", "prefix:/"],
    });
    spare = await freePorts(3);
  });
  after(async () => {
    await c?.stop();
  });

  const joinNode = (id: string, port: number, via: string[], extra: string[] = []) =>
    c.spawnJoiner(id, port, via, extra);
  const waitFor = (what: string, ok: () => Promise<boolean>, timeoutMs = 40_000) =>
    c.waitUntil(what, ok, timeoutMs);

  /** Partition p's voters, as member `via` sees them. */
  const voters = async (via: string, p: number): Promise<string[]> => {
    const r = await call(`${c.url(via)}/v1/cluster/members`, "GET", undefined, {
      "X-Ballot-Partition": String(p),
    });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    return (r.body.members as Member[])
      .filter((m) => m.voter)
      .map((m) => m.id)
      .sort();
  };

  /** Every partition has the same voters `ids` on member `via`, and a leader among them. */
  const settled = async (via: string, ids: string[]): Promise<boolean> => {
    for (let p = 0; p < P; p++) if ((await voters(via, p)).join() !== [...ids].sort().join()) return false;
    const r = await call(`${c.url(via)}/v1/cluster`);
    return (r.body.partitions as { leader: { id: string } | null }[]).every(
      (x) => x.leader !== null && ids.includes(x.leader.id),
    );
  };

  const writeUsers = async (client: BallotClient, tag: string) => {
    for (let u = 0; u < 12; u++) await client.put(`user${u}/${tag}`, u);
  };

  it("refuses a joiner that asks for another partition count, before it touches anything", async () => {
    const p = joinNode("bad", spare[2]!, ["n1"], ["--partitions", "8"]);
    const code = await new Promise<number | null>((r) => p.once("exit", (c) => r(c)));
    assert.equal(code, 2);
    assert.match(c.logs.get("bad")!.join("\n"), /has 4 partitions, not 8: start with --partitions 4/);
    c.ids.splice(c.ids.indexOf("bad"), 1);
    c.procs.delete("bad");
  });

  it("a node started with --join joins every partition, is promoted in each, and serves their keys", async () => {
    const client = new BallotClient({ endpoints: ["n1", "n2", "n3"].map((id) => c.url(id)) });
    try {
      await writeUsers(client, "before");
      joinNode("n4", spare[0]!, ["n1", "n2"]);
      await waitFor("n4 is a voter of every partition", () => settled("n1", ["n1", "n2", "n3", "n4"]));
      await waitFor("n4 sees the four voters in every partition", () =>
        settled("n4", ["n1", "n2", "n3", "n4"]),
      );
      const cluster = await call(`${c.url("n4")}/v1/cluster`);
      assert.equal(cluster.body.partitions.length, P, "it took the cluster's partition count");
      assert.equal(cluster.body.partitionBy, "prefix:/");
      await writeUsers(client, "after");
      // n4 holds every partition's data: what was written before it joined, and after.
      await waitFor("n4 has every key", async () => {
        for (let u = 0; u < 12; u++)
          for (const tag of ["before", "after"]) {
            const r = await call(`${c.url("n4")}/v1/kv/user${u}/${tag}?consistency=local`);
            if (r.status !== 200 || r.body.value !== u) return false;
          }
        return true;
      });
      assert.match(c.logs.get("n4")!.join("\n"), /joined the cluster as a learner/);
    } finally {
      await client.close();
    }
  });

  it("bad or unreachable members are refused by the first partition, and no partition changes", async () => {
    for (const [body, status, code] of [
      [{ id: "not ok", url: "http://127.0.0.1:1" }, 400, "invalid_request"],
      [{ id: "n9", url: "not a url" }, 400, "invalid_request"],
      [{ id: "n9", url: "http://127.0.0.1:1" }, 422, "member_unreachable"],
      [{ id: "n9", url: c.url("n3") }, 409, "url_in_use"],
    ] as const) {
      const r = await call(`${c.url("n2")}/v1/cluster/members`, "POST", body, {}, true);
      assert.equal(r.status, status, JSON.stringify(r.body));
      assert.equal(r.body.error.code, code);
    }
    assert.equal(await settled("n1", ["n1", "n2", "n3", "n4"]), true, "every partition unchanged");
    const none = await call(`${c.url("n1")}/v1/cluster/members/n9`, "GET", undefined, {
      "X-Ballot-Partition": "3",
    });
    assert.equal(none.status, 404);
  });

  it("a learner joins every partition with --learner, and one request promotes it in every partition", async () => {
    joinNode("n5", spare[1]!, ["n3"], ["--learner"]);
    await waitFor("n5 is a learner of every partition", async () => {
      for (let p = 0; p < P; p++) {
        const r = await call(`${c.url("n1")}/v1/cluster/members/n5`, "GET", undefined, {
          "X-Ballot-Partition": String(p),
        });
        if (r.status !== 200 || r.body.member.voter !== false) return false;
      }
      return true;
    });
    const r = await call(`${c.url("n4")}/v1/cluster/members/n5/promote`, "POST", undefined, {}, true);
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.equal(r.body.promoted, "n5");
    await waitFor("n5 is a voter of every partition", () => settled("n1", ["n1", "n2", "n3", "n4", "n5"]));
  });

  it("a member removed through the CLI leaves every partition and stops; the others keep every partition", async () => {
    const { stdout } = await run(process.execPath, [
      CLI,
      "members",
      "remove",
      "n2",
      "--endpoints",
      c.url("n1"),
    ]);
    assert.equal(JSON.parse(stdout).removed, "n2");
    await waitFor("n2 is gone from every partition", () => settled("n1", ["n1", "n3", "n4", "n5"]));
    const p = c.procs.get("n2")!;
    await waitFor("n2 stops", async () => p.exitCode !== null);
    assert.equal(p.exitCode, 0);
    assert.match(c.logs.get("n2")!.join("\n"), /this node was removed from the cluster/);
    const client = new BallotClient({ endpoints: ["n1", "n3", "n4", "n5"].map((id) => c.url(id)) });
    try {
      await writeUsers(client, "three");
      for (let u = 0; u < 12; u++) assert.equal((await client.get(`user${u}/three`))?.value, u);
    } finally {
      await client.close();
    }
    // Asked again: every partition already has it.
    const again = await call(`${c.url("n3")}/v1/cluster/members/n2`, "DELETE", undefined, {}, true);
    assert.equal(again.status, 404);
  });

  it("removing the member that receives the request sends it to another voter", async () => {
    const r = await call(`${c.url("n4")}/v1/cluster/members/n4`, "DELETE");
    assert.equal(r.status, 307, JSON.stringify(r.body));
    const location = r.headers.get("location")!;
    assert.ok(!location.startsWith(c.url("n4")), `sent elsewhere: ${location}`);
    const done = await call(location, "DELETE", undefined, {}, true);
    assert.equal(done.status, 200, JSON.stringify(done.body));
    await waitFor("n4 is gone from every partition", () => settled("n1", ["n1", "n3", "n5"]));
    const p = c.procs.get("n4")!;
    await waitFor("n4 stops", async () => p.exitCode !== null);
  });

  it("a formed member restarted with its original --members recovers, membership changes and all", async () => {
    await c.signal("n3", "SIGTERM");
    c.spawn("n3");
    await waitFor("n3 is back in every partition", () => settled("n3", ["n1", "n3", "n5"]));
    assert.match(c.logs.get("n3")!.join("\n"), /differ from the ones it was formed with|serving on/);
    const client = new BallotClient({ endpoints: ["n1", "n3", "n5"].map((id) => c.url(id)) });
    try {
      await writeUsers(client, "restarted");
      for (let u = 0; u < 12; u++) assert.equal((await client.get(`user${u}/before`))?.value, u);
    } finally {
      await client.close();
    }
  });
  it("--force-new-cluster makes a survivor the whole of every partition, with every acknowledged write", async () => {
    const client = new BallotClient({ endpoints: ["n1", "n3", "n5"].map((id) => c.url(id)) });
    try {
      await writeUsers(client, "doomed");
    } finally {
      await client.close();
    }
    // Let the survivor apply everything that was acknowledged.
    await waitFor("n1 has every key", async () => {
      for (let u = 0; u < 12; u++) {
        const r = await call(`${c.url("n1")}/v1/kv/user${u}/doomed`);
        if (r.status !== 200) return false;
      }
      return true;
    });
    for (const id of ["n3", "n5"]) await c.signal(id, "SIGKILL");
    await c.signal("n1", "SIGTERM");
    c.spawn("n1", ["--force-new-cluster"]);
    await waitFor("n1 alone leads every partition", () => settled("n1", ["n1"]));
    assert.match(
      c.logs.get("n1")!.join("\n"),
      /force-new-cluster: this node is now the only member of every one of the 4 partitions of cluster \S+ \(was: /,
    );
    for (let u = 0; u < 12; u++) {
      const r = await call(`${c.url("n1")}/v1/kv/user${u}/doomed`);
      assert.equal(r.body.value, u, `user${u}'s write survived`);
      assert.equal((await call(`${c.url("n1")}/v1/kv/user${u}/alone`, "PUT", { value: u })).status, 200);
    }
    // The flag left in place does nothing the second time.
    await c.signal("n1", "SIGTERM");
    c.spawn("n1", ["--force-new-cluster"]);
    await waitFor("n1 is back", () => settled("n1", ["n1"]));
    assert.match(c.logs.get("n1")!.join("\n"), /force-new-cluster: already done/);
    assert.equal((await call(`${c.url("n1")}/v1/kv/user3/alone`)).body.value, 3);
  });
});
