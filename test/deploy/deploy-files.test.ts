/**
 * The deployment files (systemd unit, Dockerfile, Kubernetes manifest) pass flags and BALLOT_*
 * variables to `ballot start`; this checks that every one of them exists in the CLI, so the files
 * cannot rot when a flag is renamed. It also checks the probes point at real routes, and that
 * every flag of `ballot start` is in the usage text and parses from its BALLOT_* variable.
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { describe, it } from "node:test";
import { envName, parseFlags } from "../../src/cli/flags.js";
import { main, START_FLAGS } from "../../src/cli/main.js";

const root = new URL("../../../", import.meta.url);
const read = (path: string): string => readFileSync(new URL(path, root), "utf8");
const startFlags = new Set([...START_FLAGS.values, ...(START_FLAGS.booleans ?? [])]);
const startEnv = new Set([...startFlags].map(envName));
/** Variables Ballot sets for others (ballot elect's CMD), not settings. */
const OUTPUTS = new Set(["BALLOT_FENCING_TOKEN", "BALLOT_ELECTION"]);

function checkEnv(file: string, text: string): number {
  let n = 0;
  for (const m of text.matchAll(/\bBALLOT_[A-Z0-9_]+/g)) {
    if (OUTPUTS.has(m[0])) continue;
    assert.ok(startEnv.has(m[0]), `${file}: ${m[0]} is not a setting of ballot start`);
    n++;
  }
  return n;
}

function checkFlags(file: string, args: string[]): void {
  assert.equal(args[0], "start", `${file}: runs '${args[0]}', not 'ballot start'`);
  for (const a of args.slice(1)) {
    if (!a.startsWith("--")) continue;
    const name = a.slice(2).split("=")[0]!;
    assert.ok(startFlags.has(name), `${file}: --${name} is not a flag of ballot start`);
  }
}

describe("deployment files name only flags the CLI has", () => {
  it("systemd unit", () => {
    const text = read("deploy/systemd/ballot@.service");
    assert.ok(checkEnv("ballot@.service", text) >= 3);
    const exec = /^ExecStart=.*\bballot (.*)$/m.exec(text);
    assert.ok(exec, "ExecStart runs ballot");
    checkFlags("ballot@.service", exec[1]!.trim().split(/\s+/));
  });

  it("Dockerfile: settings, command, health check on /ready, non-root, data volume", () => {
    const text = read("Dockerfile");
    assert.ok(checkEnv("Dockerfile", text) >= 3);
    const cmd = /^CMD (\[.*\])$/m.exec(text);
    assert.ok(cmd);
    checkFlags("Dockerfile", JSON.parse(cmd[1]!) as string[]);
    assert.match(text, /^ENTRYPOINT \["node", "dist\/src\/cli\/main.js"\]$/m);
    assert.match(text, /HEALTHCHECK[\s\S]*\/ready/);
    assert.match(text, /^USER ballot$/m);
    assert.match(text, /^VOLUME \/data$/m);
  });

  it("Kubernetes manifest: settings, args, probes, member list from the pods' stable names", () => {
    const text = read("deploy/kubernetes/ballot.yaml");
    assert.ok(checkEnv("ballot.yaml", text) >= 4);
    const args = /^\s+args: (\[.*\])$/m.exec(text);
    assert.ok(args);
    checkFlags("ballot.yaml", JSON.parse(args[1]!) as string[]);
    assert.match(text, /path: \/ready/);
    assert.match(text, /path: \/health/);
    const replicas = Number(/replicas: (\d+)/.exec(text)?.[1]);
    const members = /name: BALLOT_MEMBERS\n\s+value: (\S+)/.exec(text)?.[1] ?? "";
    const ids = members.split(",").map((m) => m.split("=")[0]);
    assert.deepEqual(
      ids,
      Array.from({ length: replicas }, (_, i) => `ballot-${i}`),
      "one member per replica, named like the pods",
    );
    for (const m of members.split(",")) assert.match(m, /^ballot-\d+=http:\/\/ballot-\d+\.ballot:2379$/);
  });
});

describe("every flag of ballot start is documented and settable", () => {
  it("the usage text names every flag", async () => {
    const lines: string[] = [];
    const log = console.log;
    console.log = (...a: unknown[]) => lines.push(a.join(" "));
    try {
      await main(["help"]);
    } finally {
      console.log = log;
    }
    const usage = lines.join("\n");
    for (const f of startFlags) assert.ok(usage.includes(`--${f}`), `--${f} is missing from the usage text`);
  });

  it("booleans parse from the flag and from BALLOT_*, --follower-read-leases included", () => {
    for (const f of START_FLAGS.booleans ?? []) {
      assert.equal(parseFlags([`--${f}`], START_FLAGS, {}).flags.get(f), "true");
      assert.equal(parseFlags([], START_FLAGS, { [envName(f)]: "true" }).flags.get(f), "true");
      assert.equal(parseFlags([], START_FLAGS, { [envName(f)]: "false" }).flags.get(f), "false");
    }
    assert.ok(START_FLAGS.booleans.includes("follower-read-leases"));
    assert.match(read("deploy/systemd/ballot@.service"), /BALLOT_FOLLOWER_READ_LEASES=true/);
  });
});
