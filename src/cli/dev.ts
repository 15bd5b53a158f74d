/**
 * `ballot dev`: a local cluster of separate `ballot start` processes on 127.0.0.1, data under
 * ./.ballot-dev (started again, it resumes the same data). Ctrl-C stops all of them cleanly.
 * Owns the child processes; must never leave one running after it exits.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { mkdirSync } from "node:fs";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { intFlag, type Parsed } from "./flags.js";

export async function runDev(p: Parsed): Promise<number> {
  const n = intFlag(p, "nodes", 3, 1, 9);
  const basePort = intFlag(p, "base-port", 2379, 1, 65535 - 9);
  const dir = resolve(p.flags.get("dir") ?? ".ballot-dev");
  const format = p.flags.get("log-format") ?? "pretty";
  const ids = Array.from({ length: n }, (_, i) => `n${i + 1}`);
  const urls = ids.map((_, i) => `http://127.0.0.1:${basePort + i}`);
  const members = ids.map((id, i) => `${id}=${urls[i]}`).join(",");
  mkdirSync(dir, { recursive: true });
  const cli = fileURLToPath(new URL("./main.js", import.meta.url));

  console.log(`Ballot dev cluster: ${n} nodes, data in ${dir}`);
  for (let i = 0; i < n; i++) console.log(`  ${ids[i]}  ${urls[i]}`);
  console.log(`dashboard: ${urls[0]}/  (every node serves one at /)`);
  console.log(`Try:  ballot put greeting '"hello"' --endpoints ${urls.join(",")}`);
  console.log(`      curl -s ${urls[0]}/v1/cluster`);
  console.log("Ctrl-C stops all nodes.\n");

  const children = new Map<string, ChildProcess>();
  let stopping = false;
  let exitCode = 0;
  const stopAll = (signal: NodeJS.Signals): void => {
    if (stopping) return;
    stopping = true;
    for (const c of children.values()) if (c.exitCode === null) c.kill(signal);
  };
  process.on("SIGINT", () => stopAll("SIGTERM"));
  process.on("SIGTERM", () => stopAll("SIGTERM"));

  await Promise.all(
    ids.map(
      (id, i) =>
        new Promise<void>((done) => {
          const child = spawn(
            process.execPath,
            [
              cli,
              "start",
              "--id",
              id,
              "--data-dir",
              join(dir, id),
              "--listen",
              urls[i]!,
              "--members",
              members,
              "--log-format",
              format,
            ],
            { stdio: ["ignore", "inherit", "inherit"], env: devEnv() },
          );
          children.set(id, child);
          child.on("exit", (code, signal) => {
            if (!stopping) {
              console.error(`ballot dev: ${id} exited (${signal ?? `code ${code}`}); stopping the others`);
              exitCode = code === 2 ? 2 : 1;
              stopAll("SIGTERM");
            }
            done();
          });
        }),
    ),
  );
  return exitCode;
}

/** The nodes' environment: the dev cluster is plain http on loopback, whatever TLS settings the shell has. */
function devEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, BALLOT_DEV: "1" };
  for (const name of ["BALLOT_CERT", "BALLOT_KEY", "BALLOT_CA"]) delete env[name];
  return env;
}
