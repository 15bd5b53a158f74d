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
});
