#!/usr/bin/env node
// Runs every compiled test file with Node's built-in runner. Node 20's `--test` takes no globs,
// so the files are listed here; the runner's own summary (`# pass N`, `# fail N`) closes the output.
import { spawnSync } from "node:child_process";
import { readdirSync, statSync } from "node:fs";
import { join } from "node:path";

function collect(dir) {
  const out = [];
  for (const name of readdirSync(dir).sort()) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...collect(p));
    else if (name.endsWith(".test.js")) out.push(p);
  }
  return out;
}

const filter = process.argv.slice(2);
let files = collect("dist/test");
if (filter.length > 0) files = files.filter((f) => filter.some((x) => f.includes(x)));
if (files.length === 0) {
  console.error("run-tests: no test files found under dist/test");
  process.exit(1);
}
// The etcd backend's tests need a real etcd; a fresh machine has none (Debian's etcd-server).
const etcd = spawnSync("bash", ["scripts/install-etcd.sh"], { stdio: ["ignore", "ignore", "inherit"] });
if (etcd.status !== 0) console.error("run-tests: etcd could not be installed; the etcd tests will fail");
// The dashboard's browser test drives Debian's chromium through playwright-core.
const chromium = spawnSync("bash", ["scripts/install-chromium.sh"], {
  stdio: ["ignore", "ignore", "inherit"],
});
if (chromium.status !== 0)
  console.error("run-tests: chromium could not be installed; the dashboard browser test will fail");
// The TLS tests make their certificates with Debian's openssl command.
const openssl = spawnSync("bash", ["scripts/install-openssl.sh"], { stdio: ["ignore", "ignore", "inherit"] });
if (openssl.status !== 0) console.error("run-tests: openssl could not be installed; the TLS tests will fail");
const res = spawnSync(process.execPath, ["--test", "--test-reporter=spec", ...files], { stdio: "inherit" });
process.exit(res.status ?? 1);
