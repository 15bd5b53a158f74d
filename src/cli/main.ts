#!/usr/bin/env node
/**
 * The `ballot` command. Owns argument parsing and exit codes; must never hold protocol logic.
 * Today it answers `--version` and `help`; `start`, `dev` and the client commands arrive with the
 * node runtime. Any unknown command or flag is a one-line error and exit code 2.
 */
import { readFileSync } from "node:fs";

const USAGE = `usage: ballot <command>

commands available in this version:
  help            this text
  --version       print the version

coming with the node runtime (see DESIGN.md): start, dev, get, put, del, list, status,
members, transfer-leader, elect, snapshot`;

function version(): string {
  const pkg = JSON.parse(readFileSync(new URL("../../../package.json", import.meta.url), "utf8")) as {
    version: string;
  };
  return pkg.version;
}

export function main(argv: readonly string[]): number {
  const [cmd, ...rest] = argv;
  if (cmd === undefined || cmd === "help" || cmd === "--help" || cmd === "-h") {
    console.log(USAGE);
    return cmd === undefined ? 2 : 0;
  }
  if (cmd === "--version" || cmd === "-v") {
    if (rest.length > 0) {
      console.error(`ballot: --version takes no arguments (got ${rest[0]})`);
      return 2;
    }
    console.log(version());
    return 0;
  }
  console.error(`ballot: unknown command '${cmd}' (run 'ballot help')`);
  return 2;
}

process.exitCode = main(process.argv.slice(2));
