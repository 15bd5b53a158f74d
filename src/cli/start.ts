/**
 * `ballot start`: runs one server until SIGINT/SIGTERM, then stops it gracefully (a leader hands
 * leadership over first). Owns process signals and start-up errors (one line, exit code 2).
 */
import { createLogger, type LogFormat } from "../node/logger.js";
import { type Authenticator, loadTokens } from "../server/auth.js";
import { startServer } from "../server/server.js";
import type { FileSystem } from "../storage/fs.js";
import { loadTlsFiles, type TlsMaterial } from "../transport/tls.js";
import { intFlag, type Parsed, parseMembers, UsageError } from "./flags.js";

/** Runs `ballot start`; `overrides` lets a test build swap in a fault-injecting file system. */
export async function runStart(p: Parsed, overrides: { fs?: FileSystem } = {}): Promise<number> {
  if (p.positional.length > 0) throw new UsageError(`unexpected argument '${p.positional[0]}'`);
  const id = p.flags.get("id");
  if (!id) throw new UsageError("--id is required (or BALLOT_ID)");
  const dataDir = p.flags.get("data-dir");
  if (!dataDir) throw new UsageError("--data-dir is required (or BALLOT_DATA_DIR)");
  const membersText = p.flags.get("members");
  if (!membersText)
    throw new UsageError("--members is required (or BALLOT_MEMBERS), e.g. n1=http://10.0.0.1:2379,n2=...");
  const members = parseMembers(membersText);
  if (!members.has(id)) throw new UsageError(`--members does not list this node '${id}'`);
  const listen = p.flags.get("listen") ?? members.get(id)!;
  const format = (p.flags.get("log-format") ?? "json") as LogFormat;
  if (format !== "json" && format !== "pretty") throw new UsageError("--log-format must be json or pretty");
  const heartbeat = intFlag(p, "heartbeat-interval", 100, 1, 60_000);
  const election = intFlag(p, "election-timeout", Math.max(500, 5 * heartbeat), 2, 600_000);
  if (election < 2 * heartbeat)
    throw new UsageError("--election-timeout must be at least twice --heartbeat-interval");
  let tls: TlsMaterial | undefined;
  try {
    tls = loadTlsFiles({ cert: p.flags.get("cert"), key: p.flags.get("key"), ca: p.flags.get("ca") });
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
  const logger = createLogger(id, format);
  const tokensFile = p.flags.get("auth-tokens");
  let auth: Authenticator | undefined;
  if (tokensFile !== undefined) {
    try {
      auth = loadTokens(tokensFile);
    } catch (e) {
      throw new UsageError((e as Error).message);
    }
  }

  const running = await startServer({
    id,
    listen,
    members,
    dataDir,
    clusterToken: p.flags.get("cluster-token"),
    forwardWrites: p.flags.get("forward-writes") === "true",
    heartbeatIntervalMs: heartbeat,
    electionTimeoutMs: election,
    snapshotEntries: intFlag(p, "snapshot-entries", 100_000, 1, 100_000_000),
    trailingEntries: intFlag(p, "trailing-entries", 5_000, 0, 100_000_000),
    logger,
    fs: overrides.fs,
    auth,
    tls,
  });
  logger.setTermSource(() => running.node.status().term);
  await new Promise<void>((resolve) => {
    const stop = (sig: string): void => {
      logger.info(`${sig}: stopping`);
      running.stop().then(resolve, resolve);
    };
    process.once("SIGINT", () => stop("SIGINT"));
    process.once("SIGTERM", () => stop("SIGTERM"));
    running.node.once("stopped", (err: Error | null) => {
      if (err) {
        logger.error(`node stopped: ${err.message}`);
        process.exitCode = 1;
        resolve();
      }
    });
  });
  return process.exitCode === 1 ? 1 : 0;
}
