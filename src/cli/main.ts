#!/usr/bin/env node
/**
 * The `ballot` command. Owns dispatch, usage text and exit codes (0 done, 1 the request or the
 * node failed, 2 bad usage or configuration); must never hold protocol logic.
 */
import { readFileSync, realpathSync } from "node:fs";
import { pathToFileURL } from "node:url";
import { ConfigError } from "../server/config-error.js";
import { runClient } from "./client.js";
import { runDev } from "./dev.js";
import { ELECT_FLAGS, runElectCommand } from "./elect.js";
import { parseFlags, UsageError } from "./flags.js";
import { runSnapshot, SNAPSHOT_FLAGS } from "./snapshot.js";

const USAGE = `usage: ballot <command> [flags]

  start    run a node      --id ID --data-dir DIR --members ID=URL,... [--listen URL]
           join a cluster  --id ID --data-dir DIR --listen URL --join URL,... [--advertise URL] [--learner]
           find members     --id ID --data-dir DIR --listen URL [--advertise URL]
                            --discovery dns:NAME | dns+srv:DOMAIN | etcd:URL/PREFIX
                            [--bootstrap-expect N] (form a new cluster once N nodes agree)
                            [--discovery-port P] [--discovery-srv-name S] [--dns-server HOST:PORT]
           after losing a majority for good: [--force-new-cluster] on one survivor
                           [--token T] (an admin token, when the cluster checks tokens)
                           [--cluster-token T] [--forward-writes] [--heartbeat-interval MS]
                           [--election-timeout MS] [--snapshot-entries N] [--trailing-entries N]
                           [--log-format json|pretty] [--auth-tokens FILE] [--priority N]
                           [--max-in-flight-proposals N] [--max-queued-requests N]
                           [--max-event-loop-lag MS]  (past these: 429 + Retry-After, nothing applied)
                           [--follower-read-leases]  (lease reads on followers at no round trip;
                                                     writes then wait for every member)
                           [--partitions N [--partition-by hash|prefix:/]]  (N Raft groups, one
                                                     leader each; fixed when the cluster is created)
                           [--cert FILE --key FILE [--ca FILE]]   (https:// URLs; mutual TLS with --ca)
  dev      a local cluster [--nodes 3] [--base-port 2379] [--dir .ballot-dev]
  get KEY | put KEY VALUE | del KEY | list [PREFIX] | status      [--endpoints URL,...] [--token T]
  members | transfer-leader ID                                  [--endpoints URL,...] [--token T]
  members add ID URL [--learner] | members promote ID | members remove ID
                           (every client command: [--ca FILE] to trust a cluster's own CA)
  elect NAME -- CMD ARGS...  run CMD only while leading election NAME
                           [--endpoints URL,... | --etcd URL,...] [--ttl S] [--grace S] [--ca FILE]
                           [--partitions P]: one CMD per partition held (BALLOT_PARTITION), P shared fairly
  snapshot save FILE       a consistent backup of a running cluster   [--endpoints URL,...] [--ca FILE]
  snapshot restore FILE    seed a new member's data dir from a backup
                           --data-dir DIR --id ID --members ID=URL,... [--cluster-token T]
  help, --version

Every flag can also be given as an environment variable: --data-dir is BALLOT_DATA_DIR.`;

export const START_FLAGS = {
  values: [
    "id",
    "data-dir",
    "listen",
    "members",
    "cluster-token",
    "heartbeat-interval",
    "election-timeout",
    "snapshot-entries",
    "trailing-entries",
    "max-in-flight-proposals",
    "max-queued-requests",
    "max-event-loop-lag",
    "log-format",
    "auth-tokens",
    "join",
    "advertise",
    "priority",
    "token",
    "cert",
    "key",
    "ca",
    "discovery",
    "bootstrap-expect",
    "dns-server",
    "discovery-port",
    "discovery-srv-name",
    "partitions",
    "partition-by",
  ],
  booleans: ["forward-writes", "learner", "force-new-cluster", "follower-read-leases"],
};
const DEV_FLAGS = { values: ["nodes", "base-port", "dir", "log-format"] };
const CLIENT_FLAGS = { values: ["endpoints", "token", "ca"], booleans: ["learner"] };

function version(): string {
  const pkg = JSON.parse(readFileSync(new URL("../../../package.json", import.meta.url), "utf8")) as {
    version: string;
  };
  return pkg.version;
}

export async function main(argv: readonly string[]): Promise<number> {
  const [cmd, ...rest] = argv;
  try {
    switch (cmd) {
      case undefined:
        console.log(USAGE);
        return 2;
      case "help":
      case "--help":
      case "-h":
        console.log(USAGE);
        return 0;
      case "--version":
      case "-v":
        if (rest.length > 0) throw new UsageError(`--version takes no arguments (got ${rest[0]})`);
        console.log(version());
        return 0;
      case "start":
        // Loaded only to start a server: client commands never pay for the server's modules.
        return await (await import("./start.js")).runStart(parseFlags(rest, START_FLAGS));
      case "dev":
        return await runDev(parseFlags(rest, DEV_FLAGS));
      case "get":
      case "put":
      case "del":
      case "list":
      case "status":
      case "members":
      case "transfer-leader":
        return await runClient(cmd, parseFlags(rest, CLIENT_FLAGS));
      case "elect":
        return await runElectCommand(parseFlags(rest, ELECT_FLAGS));
      case "snapshot":
        return await runSnapshot(parseFlags(rest, SNAPSHOT_FLAGS));
      default:
        throw new UsageError(`unknown command '${cmd}' (run 'ballot help')`);
    }
  } catch (e) {
    if (e instanceof UsageError || e instanceof ConfigError) {
      console.error(`ballot: ${e.message}`);
      return 2;
    }
    console.error(`ballot: ${(e as Error).message}`);
    return 1;
  }
}

// Run only as a program (npm links the bin through a symlink, hence realpath).
if (process.argv[1] && import.meta.url === pathToFileURL(realpathSync(process.argv[1])).href) {
  main(process.argv.slice(2)).then(
    (code) => {
      process.exitCode = code;
    },
    (e: unknown) => {
      console.error(`ballot: ${(e as Error).message}`);
      process.exitCode = 1;
    },
  );
}
