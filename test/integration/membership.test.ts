/**
 * Membership at runtime, with real processes: a 3-node cluster grows to 5 (new nodes started with
 * --join and an empty data dir, caught up as learners, promoted by the leader), shrinks back to 3
 * (the leader among the removed) while clients write, and replaces a dead node. Every
 * acknowledged write must be on the final members. Unsafe requests are refused and change nothing.
 */
import assert from "node:assert/strict";
import { type ChildProcess, execFile, spawn } from "node:child_process";
import * as http from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { promisify } from "node:util";
import { CLI, call, freePorts, ProcCluster, sleep } from "./procs.js";

const run = promisify(execFile);

interface Member {
  id: string;
  url: string;
  voter: boolean;
  role: string;
  promoting: boolean;
}

describe("membership at runtime", { timeout: 180_000 }, () => {
  let c: ProcCluster;
  let spare: number[];
  before(async () => {
    c = await ProcCluster.start({ electionTimeoutMs: 400 });
    spare = await freePorts(4);
  });
  after(async () => {
    await c?.stop();
  });

  /** Starts a brand-new node that joins the cluster through the URLs of the members given. */
  const joinNode = (id: string, port: number, via: string[], extra: string[] = []): ChildProcess => {
    const url = `http://127.0.0.1:${port}`;
    c.ids.push(id);
    c.urls.set(id, url);
    const p = spawn(
      process.execPath,
      [
        CLI,
        "start",
        "--id",
        id,
        "--data-dir",
        join(c.dir, id),
        "--listen",
        url,
        "--join",
        via.map((v) => c.url(v)).join(","),
        "--election-timeout",
        "400",
        "--log-format",
        "pretty",
        ...extra,
      ],
      { stdio: ["ignore", "pipe", "pipe"] },
    );
    const log: string[] = [];
    c.logs.set(id, log);
    const keep = (d: Buffer) => log.push(...d.toString().split("\n").filter(Boolean));
    p.stdout!.on("data", keep);
    p.stderr!.on("data", keep);
    c.procs.set(id, p);
    return p;
  };

  const members = async (via?: string): Promise<Member[]> => {
    const at = via ?? (await c.waitForLeader());
    const r = await call(`${c.url(at)}/v1/cluster`);
    assert.equal(r.status, 200, JSON.stringify(r.body));
    return r.body.members as Member[];
  };

  const waitFor = async (what: string, ok: () => Promise<boolean>, timeoutMs = 30_000): Promise<void> => {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      if (await ok().catch(() => false)) return;
      await sleep(100);
    }
    throw new Error(`timed out waiting until ${what}\n${c.tail(25)}`);
  };

  const voters = async (): Promise<string[]> =>
    (await members())
      .filter((m) => m.voter)
      .map((m) => m.id)
      .sort();

  /** Client load: writers that send each write to the live nodes in turn and remember what was acknowledged. */
  const acked = new Map<string, number>();
  let writing = false;
  const writers: Promise<void>[] = [];
  const startWriters = (n: number, prefix: string) => {
    writing = true;
    for (let w = 0; w < n; w++) {
      writers.push(
        (async () => {
          for (let i = 0; writing; i++) {
            const key = `${prefix}${w}-${i}`;
            for (const id of c.alive()) {
              try {
                const r = await call(`${c.url(id)}/v1/kv/${key}`, "PUT", { value: i }, {}, true);
                if (r.status === 200) {
                  acked.set(key, i);
                  break;
                }
                if (r.status === 504) break; // outcome unknown: not counted as acknowledged
              } catch {
                // that node is gone: try the next
              }
            }
            await sleep(5);
          }
        })(),
      );
    }
  };
  const stopWriters = async () => {
    writing = false;
    await Promise.all(writers.splice(0));
  };

  /** Every acknowledged write, read back (linearizably) from each of `ids`. */
  const checkAcked = async (ids: string[]) => {
    assert.ok(acked.size > 0, "the clients wrote something");
    for (const id of ids) {
      const r = await call(`${c.url(id)}/v1/kv?prefix=w/&limit=10000`).catch((e: Error) => {
        throw new Error(`${id}: ${e.message}\n${c.tail(25)}`);
      });
      assert.equal(r.status, 200, `${id}: ${JSON.stringify(r.body)}`);
      const have = new Map<string, unknown>(
        (r.body.kvs as { key: string; value: unknown }[]).map((kv) => [kv.key, kv.value]),
      );
      const missing = [...acked].filter(([k, v]) => have.get(k) !== v);
      assert.deepEqual(
        missing.slice(0, 5),
        [],
        `${id} lacks ${missing.length} of ${acked.size} acknowledged writes`,
      );
    }
  };

  it("refuses unsafe or malformed additions and changes nothing", async () => {
    const leader = await c.waitForLeader();
    const before = await members();
    const u = `${c.url(leader)}/v1/cluster/members`;
    // An id already in use.
    let r = await call(u, "POST", { id: "n2", url: `http://127.0.0.1:${spare[3]}` });
    assert.deepEqual([r.status, r.body.error.code], [409, "member_exists"]);
    // A URL already in use by another member.
    r = await call(u, "POST", { id: "n9", url: c.url("n2") });
    assert.deepEqual([r.status, r.body.error.code], [409, "url_in_use"]);
    // A URL nobody answers on.
    r = await call(u, "POST", { id: "n9", url: `http://127.0.0.1:${spare[3]}` });
    assert.deepEqual([r.status, r.body.error.code], [422, "member_unreachable"]);
    assert.match(r.body.error.message, /no Ballot node answers/);
    // Something answers, but it is not the node named.
    const impostor = http.createServer((_q, s) => {
      s.writeHead(200, { "Content-Type": "application/json" });
      s.end(JSON.stringify({ status: "ok", node: "someone-else" }));
    });
    await new Promise<void>((res) => impostor.listen(0, "127.0.0.1", res));
    const impostorUrl = `http://127.0.0.1:${(impostor.address() as AddressInfo).port}`;
    r = await call(u, "POST", { id: "n9", url: impostorUrl });
    impostor.close();
    assert.deepEqual([r.status, r.body.error.code], [409, "member_identity_mismatch"]);
    // Malformed requests.
    for (const body of [
      {},
      { id: "n9" },
      { id: "bad id!", url: impostorUrl },
      { id: "n9", url: "ftp://x" },
      { id: "n9", url: impostorUrl, learner: "yes" },
      { id: "n9", url: impostorUrl, extra: 1 },
    ]) {
      r = await call(u, "POST", body);
      assert.equal(r.status, 400, JSON.stringify(body));
    }
    assert.equal((await call(`${c.url(leader)}/v1/cluster/members/nobody`, "DELETE")).status, 404);
    assert.equal((await call(`${c.url(leader)}/v1/cluster/members/n2/promote`, "POST")).status, 409);
    // The CLI says the same, with a non-zero exit.
    await assert.rejects(
      run(process.execPath, [
        CLI,
        "members",
        "add",
        "n2",
        `http://127.0.0.1:${spare[3]}`,
        "--endpoints",
        c.url(leader),
      ]),
      (e: { code: number; stderr: string }) => e.code === 1 && /member_exists/.test(e.stderr),
    );
    // A new node claiming an id that is taken refuses to start.
    const dup = await run(process.execPath, [
      CLI,
      "start",
      "--id",
      "n2",
      "--data-dir",
      join(c.dir, "dup"),
      "--listen",
      `http://127.0.0.1:${spare[3]}`,
      "--join",
      c.url("n1"),
    ]).then(
      () => ({ code: 0, stderr: "" }),
      (e: { code: number; stderr: string }) => e,
    );
    assert.equal(dup.code, 2);
    assert.match(dup.stderr, /already a member/);
    assert.deepEqual((await members()).map(pick), before.map(pick));
    assert.deepEqual(await voters(), ["n1", "n2", "n3"]);
  });

  it("grows from 3 to 5 while clients write: new nodes join as learners and are promoted once caught up", async () => {
    startWriters(3, "w/a");
    await sleep(500);
    joinNode("n4", spare[0]!, ["n1", "n2", "n3"]);
    await waitFor("n4 is a voter", async () => (await voters()).includes("n4"));
    joinNode("n5", spare[1]!, ["n2"]);
    await waitFor("n5 is a voter", async () => (await voters()).includes("n5"));
    assert.deepEqual(await voters(), ["n1", "n2", "n3", "n4", "n5"]);
    // The leader at the time of the change logged it; leadership may have moved since, so look everywhere.
    const all = [...c.logs.values()].flat().join("\n");
    assert.match(all, /learner n4 has caught up: promoting it to voter/);
    assert.match(all, /membership: voters .*n5/);
    // Every member sees the same five, with their URLs.
    for (const id of c.alive()) {
      await waitFor(
        `${id} sees five voters`,
        async () => (await members(id)).filter((m) => m.voter).length === 5,
      );
      const seen = await members(id);
      for (const m of seen) assert.equal(m.url, c.url(m.id), `${id}'s URL for ${m.id}`);
    }
    await sleep(500);
    await stopWriters();
    await checkAcked(["n1", "n2", "n3", "n4", "n5"]);
  });

  it("shrinks from 5 to 3 while clients write, the leader among the removed; removed nodes stop", async () => {
    startWriters(3, "w/b");
    const leader = await c.waitForLeader();
    const other = ["n1", "n2", "n3"].find((id) => id !== leader)!;
    // Through the CLI, sent to a follower: it goes to the leader, which hands over before removing itself.
    const via = c.ids.find((id) => id !== leader && id !== other)!;
    const { stdout } = await run(process.execPath, [
      CLI,
      "members",
      "remove",
      leader,
      "--endpoints",
      c.url(via),
    ]);
    assert.equal(JSON.parse(stdout).removed, leader);
    await run(process.execPath, [CLI, "members", "remove", other, "--endpoints", c.url(via)]);
    const left = ["n1", "n2", "n3", "n4", "n5"].filter((id) => id !== leader && id !== other);
    assert.deepEqual(await voters(), left);
    for (const gone of [leader, other]) {
      const p = c.procs.get(gone)!;
      await waitFor(`${gone} stops`, async () => p.exitCode !== null);
      assert.equal(p.exitCode, 0);
      assert.match(c.logs.get(gone)!.join("\n"), /this node was removed from the cluster/);
    }
    await sleep(500);
    await stopWriters();
    await checkAcked(left);
  });

  it("replaces a dead node: refuses a removal that would cost the quorum, removes the dead one, joins a new one", async () => {
    const live = c.alive();
    assert.equal(live.length, 3);
    const leader = await c.waitForLeader();
    const dead = live.find((id) => id !== leader)!;
    await c.signal(dead, "SIGKILL");
    await sleep(1500); // longer than an election timeout: the leader has stopped hearing from it
    const survivor = c.alive().find((id) => id !== leader)!;
    // Removing a live voter now would leave the dead one and one live one: no majority answers.
    let r = await call(`${c.url(leader)}/v1/cluster/members/${survivor}`, "DELETE", undefined, {}, true);
    assert.deepEqual([r.status, r.body.error?.code], [409, "quorum_at_risk"], JSON.stringify(r.body));
    assert.equal((await voters()).length, 3);
    r = await call(`${c.url(leader)}/v1/cluster/members/${dead}`, "DELETE", undefined, {}, true);
    assert.equal(r.status, 200, JSON.stringify(r.body));
    startWriters(2, "w/c");
    joinNode("n6", spare[2]!, [leader, survivor]);
    await waitFor("n6 is a voter", async () => (await voters()).includes("n6"));
    assert.deepEqual(await voters(), [leader, survivor, "n6"].sort());
    await sleep(500);
    await stopWriters();
    await checkAcked([leader, survivor, "n6"]);
    // The dead node comes back with its old data: it is told it was removed, and stops.
    const ghost = c.spawn(dead);
    await waitFor(`${dead} stops`, async () => ghost.exitCode !== null);
    assert.equal(ghost.exitCode, 0);
    assert.match(c.logs.get(dead)!.join("\n"), /this node was removed from the cluster/);
    // Its id is never reused.
    r = await call(`${c.url(leader)}/v1/cluster/members`, "POST", { id: dead, url: c.url(dead) });
    assert.equal(r.status === 409 || r.status === 422, true, JSON.stringify(r.body));
    // The new member serves reads and its data survives its restart.
    await c.signal("n6", "SIGTERM");
    joinNode("n6", spare[2]!, [leader]);
    c.ids.pop(); // registered once already
    await waitFor("n6 is back", async () => (await call(`${c.url("n6")}/ready`)).status === 200);
    assert.match(c.logs.get("n6")!.join("\n"), /already holds this node.s state; recovering it/);
    await checkAcked(["n6"]);
  });

  it("a member that was down while a new one joined catches up when the new one leads", async () => {
    const leader = await c.waitForLeader();
    const behind = c.alive().find((id) => id !== leader && id !== "n6")!;
    await c.signal(behind, "SIGTERM");
    const [port] = await freePorts(1);
    joinNode("n7", port!, [leader]);
    await waitFor("n7 is a voter", async () => (await voters()).includes("n7"));
    const t = await call(`${c.url(leader)}/v1/cluster/transfer-leader`, "POST", { id: "n7" });
    assert.equal(t.status, 200, JSON.stringify(t.body));
    assert.equal((await call(`${c.url("n7")}/v1/kv/w/late`, "PUT", { value: "n7 leads" })).status, 200);
    // Its configuration does not list n7 yet: it must still take n7's stream and catch up.
    c.spawn(behind);
    await waitFor(`${behind} has the write made under n7`, async () => {
      const r = await call(`${c.url(behind)}/v1/kv/w/late?consistency=local`);
      return r.status === 200 && r.body.value === "n7 leads";
    });
    assert.ok((await members(behind)).some((m) => m.id === "n7"));
  });
});

/** Members compared without replication figures, which move between two reads. */
function pick(m: Member): Partial<Member> {
  return { id: m.id, url: m.url, voter: m.voter, role: m.role, promoting: m.promoting };
}

describe("a node joining a cluster whose log was compacted", { timeout: 60_000 }, () => {
  let c: ProcCluster;
  after(async () => {
    await c?.stop();
  });

  it("catches up through a snapshot (which carries the members' URLs) and is promoted", async () => {
    const small = ["--snapshot-entries", "50", "--trailing-entries", "0"];
    c = await ProcCluster.start({ electionTimeoutMs: 400, extraArgs: small });
    const leader = await c.waitForLeader();
    for (let i = 0; i < 200; i++) {
      const r = await call(`${c.url(leader)}/v1/kv/s/${i}`, "PUT", { value: i });
      assert.equal(r.status, 200);
    }
    const [port] = await freePorts(1);
    const url = `http://127.0.0.1:${port}`;
    c.ids.push("n4");
    c.urls.set("n4", url);
    const p = spawn(
      process.execPath,
      [
        CLI,
        "start",
        "--id",
        "n4",
        "--data-dir",
        join(c.dir, "n4"),
        "--listen",
        url,
        "--join",
        c.url("n2"),
        ...small,
      ],
      { stdio: ["ignore", "pipe", "pipe"] },
    );
    const log: string[] = [];
    c.logs.set("n4", log);
    const keep = (d: Buffer) => log.push(...d.toString().split("\n").filter(Boolean));
    p.stdout!.on("data", keep);
    p.stderr!.on("data", keep);
    c.procs.set("n4", p);
    const deadline = Date.now() + 30_000;
    for (;;) {
      const r = await call(`${c.url(leader)}/v1/cluster`);
      if ((r.body.members as Member[]).some((m) => m.id === "n4" && m.voter)) break;
      if (Date.now() > deadline) throw new Error(`n4 was not promoted\n${c.tail(20)}`);
      await sleep(100);
    }
    // The log line travels through a pipe: wait for it rather than race it.
    for (const until = Date.now() + 10_000; !/installed a snapshot from the leader/.test(log.join("\n")); ) {
      if (Date.now() > until) assert.fail(`n4 did not log a snapshot install:\n${log.join("\n")}`);
      await sleep(50);
    }
    const r = await call(`${url}/v1/kv?prefix=s/&limit=1000`);
    assert.equal(r.body.kvs.length, 200);
    // n4 learned every member's URL from the snapshot's configuration: it can lead.
    const t = await call(`${c.url(leader)}/v1/cluster/transfer-leader`, "POST", { id: "n4" });
    assert.equal(t.status, 200, JSON.stringify(t.body));
    assert.equal(await c.waitForLeader(), "n4");
    assert.equal((await call(`${url}/v1/kv/s/last`, "PUT", { value: "from n4" })).status, 200);
    for (const id of ["n1", "n2", "n3"])
      assert.equal((await call(`${c.url(id)}/v1/kv/s/last`)).body.value, "from n4");
  });
});
