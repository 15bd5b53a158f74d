#!/usr/bin/env node
// Runs every compiled test file with Node's built-in runner. Node 20's `--test` takes no globs,
// so the files are listed here; the runner's own summary (`# pass N`, `# fail N`) closes the output.
import { spawn, spawnSync } from "node:child_process";
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
// The discovery tests serve DNS records from a real dnsmasq (Debian's dnsmasq-base).
const dnsmasq = spawnSync("bash", ["scripts/install-dnsmasq.sh"], { stdio: ["ignore", "ignore", "inherit"] });
if (dnsmasq.status !== 0)
  console.error("run-tests: dnsmasq could not be installed; the discovery tests will fail");
// The dashboard's browser test drives Debian's chromium through playwright-core.
const chromium = spawnSync("bash", ["scripts/install-chromium.sh"], {
  stdio: ["ignore", "ignore", "inherit"],
});
if (chromium.status !== 0)
  console.error("run-tests: chromium could not be installed; the dashboard browser test will fail");
// The TLS tests make their certificates with Debian's openssl command.
const openssl = spawnSync("bash", ["scripts/install-openssl.sh"], { stdio: ["ignore", "ignore", "inherit"] });
if (openssl.status !== 0) console.error("run-tests: openssl could not be installed; the TLS tests will fail");
// No test may hang the run: each test gets at most four minutes unless it says otherwise
// (--test-timeout), a file whose tests are done exits even if something it started leaked a handle
// (--test-force-exit), and the whole run is stopped, with everything it started, after 25 minutes.
const RUN_LIMIT_MS = Number(process.env.BALLOT_TEST_RUN_LIMIT_MS ?? 25 * 60_000);
const child = spawn(
  process.execPath,
  ["--test", "--test-reporter=spec", "--test-timeout=240000", "--test-force-exit", ...files],
  { stdio: "inherit", detached: true },
);
const killAll = (signal) => {
  try {
    process.kill(-child.pid, signal);
  } catch {
    // already gone
  }
};
const watchdog = setTimeout(() => {
  console.error(
    `run-tests: the suite ran past ${RUN_LIMIT_MS / 60_000} minutes; stopping it and everything it started`,
  );
  killAll("SIGKILL");
}, RUN_LIMIT_MS);
for (const sig of ["SIGINT", "SIGTERM"]) process.on(sig, () => killAll(sig));
child.on("exit", (code, signal) => {
  clearTimeout(watchdog);
  // Whatever the tests left running (a node a failed test did not stop) goes with the run.
  killAll("SIGKILL");
  process.exit(code ?? (signal ? 1 : 0));
});
