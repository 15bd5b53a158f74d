/** The `ballot` binary as a user runs it: a real process, its output and exit code. */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { describe, it } from "node:test";

const bin = new URL("../../src/cli/main.js", import.meta.url).pathname;
const run = (...args: string[]) => spawnSync(process.execPath, [bin, ...args], { encoding: "utf8" });

describe("ballot command", () => {
  it("prints the package version", () => {
    const pkg = JSON.parse(readFileSync(new URL("../../../package.json", import.meta.url), "utf8")) as {
      version: string;
    };
    const r = run("--version");
    assert.equal(r.status, 0);
    assert.equal(r.stdout.trim(), pkg.version);
  });

  it("an unknown command is a one-line error with exit code 2", () => {
    const r = run("frobnicate");
    assert.equal(r.status, 2);
    assert.equal(r.stderr.trim().split("\n").length, 1);
    assert.match(r.stderr, /unknown command 'frobnicate'/);
  });

  it("no command prints usage and exits 2; help exits 0", () => {
    assert.equal(run().status, 2);
    const h = run("help");
    assert.equal(h.status, 0);
    assert.match(h.stdout, /usage: ballot/);
  });
});
