/**
 * The seed service's README session, run as written with real curl against three real processes:
 * read from any node, write to a follower with `curl -i -L -X PUT` and watch the redirect, read the
 * value from the other follower; every answer names the leader and the current instance. State
 * survives a restart of the whole service.
 */
import assert from "node:assert/strict";
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { freePorts, sleep } from "./procs.js";

const SERVICE = new URL("../../examples/stateful-service/service.js", import.meta.url).pathname;

describe("the seed stateful service (examples/stateful-service)", () => {
  const dir = mkdtempSync(join(tmpdir(), "ballot-seed-"));
  const procs = new Map<string, ChildProcess>();
  let urls: string[] = [];
  let members = "";
  const start = (i: number) => {
    const id = `n${i + 1}`;
    const p = spawn(
      process.execPath,
      [SERVICE, "--id", id, "--listen", urls[i]!, "--data-dir", join(dir, id), "--members", members],
      {
        stdio: "ignore",
      },
    );
    procs.set(id, p);
  };
  const curl = (...args: string[]) =>
    execFileSync("curl", ["-s", ...args], { encoding: "utf8", timeout: 10_000 });
  const leaderUrl = async (): Promise<string> => {
    for (let t = 0; t < 200; t++) {
      try {
        const r = JSON.parse(curl(`${urls[0]}/1`)) as { leader: string | null };
        if (r.leader) return r.leader;
      } catch {
        // not up yet
      }
      await sleep(50);
    }
    throw new Error("no leader");
  };

  before(async () => {
    const ports = await freePorts(3);
    urls = ports.map((p) => `http://127.0.0.1:${p}`);
    members = urls.map((u, i) => `n${i + 1}=${u}`).join(",");
    for (let i = 0; i < 3; i++) start(i);
    await leaderUrl();
  });
  after(() => {
    for (const p of procs.values()) p.kill("SIGKILL");
    rmSync(dir, { recursive: true, force: true });
  });

  it("reads from any node name the leader and the current instance", async () => {
    const leader = await leaderUrl();
    for (const u of urls) {
      const r = JSON.parse(curl(`${u}/1`));
      assert.deepEqual(r, { leader, current: u, id: 1, state: null });
    }
  });

  it("a PUT to a follower is redirected to the leader (curl -i -L) and the other follower reads it", async () => {
    const leader = await leaderUrl();
    const [f1, f2] = urls.filter((u) => u !== leader);
    const out = curl(
      "-i",
      "-L",
      "-X",
      "PUT",
      "-d",
      '{"state":"Some String State"}',
      "-H",
      "Content-Type: application/json",
      `${f1}/1`,
    );
    assert.match(out, /HTTP\/1\.1 307 Temporary Redirect/);
    assert.match(out, new RegExp(`Location: ${leader}/1`, "i"));
    assert.match(out, /HTTP\/1\.1 200 OK/);
    const body = JSON.parse(out.slice(out.lastIndexOf("\r\n\r\n") + 4));
    assert.deepEqual(body, { leader, current: leader, id: 1, state: "Some String State" });
    let seen: any = null;
    for (let t = 0; t < 100; t++) {
      seen = JSON.parse(curl(`${f2}/1`));
      if (seen.state) break;
      await sleep(20);
    }
    assert.deepEqual(seen, { leader, current: f2, id: 1, state: "Some String State" });
  });

  it("the state survives a restart of every instance", async () => {
    for (const p of procs.values()) {
      const exited = new Promise((r) => p.once("exit", r));
      p.kill("SIGTERM");
      await exited;
    }
    for (let i = 0; i < 3; i++) start(i);
    await leaderUrl();
    let r: any = null;
    for (let t = 0; t < 100; t++) {
      r = JSON.parse(curl(`${urls[2]}/1`));
      if (r.state) break;
      await sleep(50);
    }
    assert.equal(r.state, "Some String State");
  });

  it("bad input is refused: a non-integer id, malformed JSON, a non-string state", async () => {
    const leader = await leaderUrl();
    assert.match(curl("-i", `${leader}/abc`), /404/);
    assert.match(curl("-i", "-X", "PUT", "-d", "{nope", `${leader}/2`), /400/);
    assert.match(curl("-i", "-X", "PUT", "-d", '{"state":5}', `${leader}/2`), /400/);
    assert.equal(JSON.parse(curl(`${leader}/2`)).state, null);
  });

  it("concurrent transfers through every instance conserve the total, each applied exactly once", async () => {
    const leader = await leaderUrl();
    const names = ["alice", "bob", "carol", "dave", "erin"];
    const put = (name: string, balance: number) =>
      fetch(`${leader}/accounts/${name}`, {
        method: "PUT",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ balance }),
      });
    for (const n of names) assert.equal((await put(n, 100)).status, 200);
    const expected = new Map(names.map((n) => [n, 100]));
    // A seeded sequence of transfers, 12 in flight at a time, each sent to an instance in turn
    // (followers redirect with 307, which fetch follows with the body).
    let seed = 20261206;
    const rand = (n: number) => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed % n;
    };
    const jobs = Array.from({ length: 240 }, (_, i) => {
      const from = names[rand(5)]!;
      let to = names[rand(5)]!;
      if (to === from) to = names[(names.indexOf(from) + 1) % 5]!;
      return { from, to, amount: 1 + rand(60), via: urls[i % 3]! };
    });
    const statuses = new Map<number, number>();
    let next = 0;
    const worker = async () => {
      while (next < jobs.length) {
        const j = jobs[next++]!;
        const r = await fetch(`${j.via}/transfer`, {
          method: "POST",
          headers: { "Content-Type": "application/json" },
          body: JSON.stringify({ from: j.from, to: j.to, amount: j.amount }),
        });
        const body = (await r.json()) as { leader: string };
        assert.ok(body.leader, "every answer names the leader");
        statuses.set(r.status, (statuses.get(r.status) ?? 0) + 1);
        if (r.status === 200) {
          expected.set(j.from, expected.get(j.from)! - j.amount);
          expected.set(j.to, expected.get(j.to)! + j.amount);
        }
      }
    };
    await Promise.all(Array.from({ length: 12 }, worker));
    console.log(`# transfers: ${JSON.stringify(Object.fromEntries(statuses))}`);
    assert.deepEqual(
      [...statuses.keys()].filter((s) => s !== 200 && s !== 409),
      [],
      "every transfer was done or refused for lack of funds",
    );
    assert.ok((statuses.get(200) ?? 0) > 100, "most transfers went through");
    // Every instance converges on the same balances: the total is kept and each committed
    // transfer is in them exactly once.
    for (const u of urls) {
      let got: Map<string, number> = new Map();
      for (let t = 0; t < 100; t++) {
        got = new Map();
        for (const n of names) {
          const r = (await (await fetch(`${u}/accounts/${n}`)).json()) as { balance: number };
          got.set(n, r.balance);
        }
        if ([...got].every(([n, b]) => b === expected.get(n))) break;
        await sleep(50);
      }
      assert.deepEqual(Object.fromEntries(got), Object.fromEntries(expected), `balances on ${u}`);
      assert.equal(
        [...got.values()].reduce((a, b) => a + b, 0),
        500,
      );
    }
  });

  it("transfers refuse what they cannot do, and change nothing", async () => {
    const leader = await leaderUrl();
    const before = curl(`${leader}/accounts/alice`);
    const post = (body: string) =>
      execFileSync(
        "curl",
        ["-s", "-o", "/dev/null", "-w", "%{http_code}", "-L", "-X", "POST", "-d", body, `${leader}/transfer`],
        {
          encoding: "utf8",
        },
      );
    assert.equal(post('{"from":"alice","to":"bob","amount":100000}'), "409"); // insufficient funds
    assert.equal(post('{"from":"alice","to":"nobody","amount":1}'), "404");
    assert.equal(post('{"from":"alice","to":"alice","amount":1}'), "400");
    assert.equal(post('{"from":"alice","to":"bob","amount":-1}'), "400");
    assert.equal(post('{"from":"alice","to":"bob","amount":1.5}'), "400");
    assert.equal(post('{"from":"alice","to":"bob","amount":1,"x":1}'), "400");
    assert.equal(post("{nope"), "400");
    assert.equal(curl(`${leader}/accounts/alice`), before);
  });
});
