/**
 * `ballot dev` as a developer uses it: it starts a 3-node cluster of separate processes with its
 * ports printed, Ctrl-C stops every one of them, and started again it resumes the same data.
 */
import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { CLI, call, freePorts, sleep } from "./procs.js";

async function startDev(dir: string, base: number): Promise<{ p: ChildProcess; out: string[] }> {
  const out: string[] = [];
  const p = spawn(process.execPath, [CLI, "dev", "--base-port", String(base), "--dir", dir], {
    stdio: ["ignore", "pipe", "pipe"],
  });
  p.stdout!.on("data", (d: Buffer) => out.push(d.toString()));
  p.stderr!.on("data", (d: Buffer) => out.push(d.toString()));
  for (let t = 0; t < 200; t++) {
    const r = await call(`http://127.0.0.1:${base}/v1/cluster`).catch(() => null);
    if (r?.status === 200 && r.body.leader) return { p, out };
    await sleep(50);
  }
  throw new Error(`ballot dev did not come up:\n${out.join("")}`);
}

describe("ballot dev", () => {
  const dir = mkdtempSync(join(tmpdir(), "ballot-dev-"));
  after(() => rmSync(dir, { recursive: true, force: true }));

  it("prints its nodes, stops them all on Ctrl-C, and resumes the same data", async () => {
    // Three consecutive free ports: find a base whose next two are free too.
    let base = 0;
    for (let t = 0; t < 20 && !base; t++) {
      const [p] = await freePorts(1);
      const taken = await Promise.all(
        [1, 2].map((k) =>
          call(`http://127.0.0.1:${p! + k}/health`).then(
            () => true,
            () => false,
          ),
        ),
      );
      if (!taken.some(Boolean) && p! < 65_000) base = p!;
    }
    const first = await startDev(dir, base);
    const printed = first.out.join("");
    for (let i = 0; i < 3; i++)
      assert.match(printed, new RegExp(`n${i + 1}\\s+http://127\\.0\\.0\\.1:${base + i}`));
    const put = await call(
      `http://127.0.0.1:${base + 1}/v1/kv/kept`,
      "PUT",
      { value: "across restarts" },
      {},
      true,
    );
    assert.equal(put.status, 200);

    const exited = new Promise<number | null>((r) => first.p.once("exit", (code) => r(code)));
    first.p.kill("SIGINT");
    assert.equal(await exited, 0);
    for (let i = 0; i < 3; i++) {
      const up = await call(`http://127.0.0.1:${base + i}/health`).then(
        () => true,
        () => false,
      );
      assert.equal(up, false, `node ${i + 1} still answers after Ctrl-C`);
    }
    assert.deepEqual(readdirSync(dir).sort(), ["n1", "n2", "n3"]);

    const second = await startDev(dir, base);
    const got = await call(`http://127.0.0.1:${base + 2}/v1/kv/kept`);
    assert.equal(got.body.value, "across restarts");
    const done = new Promise((r) => second.p.once("exit", r));
    second.p.kill("SIGINT");
    await done;
  });
});
