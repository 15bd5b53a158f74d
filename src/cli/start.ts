/**
 * `ballot start`: runs one server until SIGINT/SIGTERM, then stops it gracefully (a leader hands
 * leadership over first). Owns process signals and start-up errors (one line, exit code 2).
 */
import { type DiscoverOptions, DiscoveryRefused, discover, lookupCandidates } from "../discovery/discover.js";
import { EtcdRegistry } from "../discovery/etcd-registry.js";
import { type DiscoverySpec, parseDiscovery, parseDnsServer } from "../discovery/spec.js";
import { createLogger, type LogFormat } from "../node/logger.js";
import { DEFAULT_ADMISSION } from "../node/overload.js";
import { type Authenticator, loadTokens } from "../server/auth.js";
import { startServer } from "../server/server.js";
import { DiskStorage } from "../storage/disk.js";
import type { FileSystem } from "../storage/fs.js";
import { nodeFileSystem } from "../storage/fs.js";
import { loadTlsFiles, type TlsMaterial } from "../transport/tls.js";
import { endpointList, fetchFor } from "./client.js";
import { intFlag, type Parsed, parseMembers, UsageError } from "./flags.js";
import { askToJoin, fetchCluster } from "./join.js";

/** Runs `ballot start`; `overrides` lets a test build swap in a fault-injecting file system. */
export async function runStart(p: Parsed, overrides: { fs?: FileSystem } = {}): Promise<number> {
  if (p.positional.length > 0) throw new UsageError(`unexpected argument '${p.positional[0]}'`);
  const id = p.flags.get("id");
  if (!id) throw new UsageError("--id is required (or BALLOT_ID)");
  const dataDir = p.flags.get("data-dir");
  if (!dataDir) throw new UsageError("--data-dir is required (or BALLOT_DATA_DIR)");
  const membersText = p.flags.get("members");
  const joinText = p.flags.get("join");
  const discoveryText = p.flags.get("discovery");
  if (!membersText && !joinText && !discoveryText)
    throw new UsageError(
      "--members is required (or BALLOT_MEMBERS), e.g. n1=http://10.0.0.1:2379,n2=...; or --join URL,... to join a running cluster; or --discovery to find the members",
    );
  if (discoveryText && (membersText || joinText))
    throw new UsageError("--discovery replaces --members and --join: give one of them");
  for (const f of ["bootstrap-expect", "dns-server", "discovery-port", "discovery-srv-name"])
    if (p.flags.has(f) && !discoveryText) throw new UsageError(`--${f} only applies with --discovery`);
  let members = membersText ? parseMembers(membersText) : new Map<string, string>();
  if (membersText && !members.has(id)) throw new UsageError(`--members does not list this node '${id}'`);
  const listen = p.flags.get("listen") ?? members.get(id);
  if (!listen)
    throw new UsageError(
      `--listen is required with ${joinText ? "--join" : "--discovery"} (the URL this node serves on)`,
    );
  const advertise = p.flags.get("advertise") ?? members.get(id) ?? listen;
  let joinUrls = joinText ? endpointList(joinText, "--join") : [];
  if (joinText || discoveryText) {
    let host = "";
    try {
      host = new URL(advertise).hostname;
    } catch {
      throw new UsageError(`--advertise '${advertise}' is not a URL`);
    }
    if (host === "0.0.0.0" || host === "[::]")
      throw new UsageError(
        "--advertise is required when --listen is a wildcard address: the URL peers reach this node at",
      );
  }
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

  let join: { clusterId?: string; url: string; seeds?: ReadonlyMap<string, string> } | undefined;
  const fsys = overrides.fs ?? nodeFileSystem;
  let registry: EtcdRegistry | undefined;
  let discovery: DiscoverOptions | undefined;
  if (discoveryText) {
    let spec: DiscoverySpec;
    let dnsServer: string | undefined;
    try {
      spec = parseDiscovery(discoveryText, p.flags.get("discovery-srv-name"));
      const ds = p.flags.get("dns-server");
      dnsServer = ds === undefined ? undefined : parseDnsServer(ds);
    } catch (e) {
      throw new UsageError((e as Error).message);
    }
    if (spec.kind === "etcd") registry = new EtcdRegistry(spec.endpoint, spec.prefix, logger);
    const own = new URL(advertise);
    discovery = {
      id,
      advertise,
      listen,
      clusterToken: p.flags.get("cluster-token") ?? "ballot",
      expect: p.flags.has("bootstrap-expect") ? intFlag(p, "bootstrap-expect", 1, 1, 1000) : undefined,
      spec,
      dnsServer,
      port: intFlag(
        p,
        "discovery-port",
        Number(own.port || (own.protocol === "https:" ? 443 : 80)),
        1,
        65535,
      ),
      registry,
      apiToken: p.flags.get("token"),
      fetchImpl: fetchFor(p),
      tls,
      log: logger,
    };
    if (DiskStorage.exists(dataDir, fsys)) {
      // Idempotent, as in rqlite: a member's data dir says which cluster it is in and who its peers
      // are; what DNS or etcd lists now must not change that.
      logger.info(
        "discovery: this data directory already holds this node's state; recovering it, not discovering",
      );
      join = { url: advertise };
      registry
        ?.register(id, advertise)
        .catch((e: Error) => logger.warn(`discovery: cannot register on etcd (${e.message})`));
    } else {
      try {
        const d = await discover(discovery);
        if (d.kind === "join") {
          join = { clusterId: d.clusterId, url: advertise, seeds: d.members };
          joinUrls = [...d.members.values()];
        } else members = new Map(d.members);
      } catch (e) {
        await registry?.stop();
        if (e instanceof DiscoveryRefused) throw new UsageError(e.message);
        throw e;
      }
    }
  }
  let joinedPartitions: { count: number; rule: string } | undefined;
  if (joinText) {
    if (DiskStorage.exists(dataDir, fsys)) {
      logger.info("--join: the data directory already holds this node's state; recovering it");
      join = { url: advertise };
    } else {
      const info = await fetchCluster(joinUrls, p.flags.get("token"), logger, fetchFor(p));
      // A member coming back with an empty data dir has forgotten its votes and its log: letting
      // it in under its old id could elect two leaders in one term or lose a committed write.
      if (info.members.has(id))
        throw new UsageError(
          `'${id}' is already a member of cluster ${info.clusterId} (at ${info.members.get(id)}), and this data directory is empty: ` +
            "a member that lost its data must not return under its old id; remove it (ballot members remove) and join under a new id",
        );
      join = { clusterId: info.clusterId, url: advertise, seeds: info.members };
      // A partitioned cluster's members all run its partitions: the joiner takes the cluster's
      // count and rule, and a flag that says otherwise is a mistake worth stopping for.
      const givenP = p.flags.get("partitions");
      const givenRule = p.flags.get("partition-by");
      if (givenP !== undefined && Number(givenP) !== info.partitions)
        throw new UsageError(
          `--join: cluster ${info.clusterId} has ${info.partitions} partition${info.partitions === 1 ? "" : "s"}, not ${givenP}: start with --partitions ${info.partitions} (or leave it out)`,
        );
      if (givenRule !== undefined && givenRule !== info.partitionBy && info.partitions > 1)
        throw new UsageError(
          `--join: cluster ${info.clusterId} partitions by ${info.partitionBy}, not ${givenRule}: start with --partition-by ${info.partitionBy} (or leave it out)`,
        );
      joinedPartitions = { count: info.partitions, rule: info.partitionBy };
    }
  }

  const running = await startServer({
    id,
    listen,
    members,
    join,
    forceNewCluster: p.flags.get("force-new-cluster") === "true",
    priority: intFlag(p, "priority", 0, 0, 1_000_000),
    partitions: joinedPartitions?.count ?? intFlag(p, "partitions", 1, 1, 4096),
    partitionBy:
      joinedPartitions && joinedPartitions.count > 1 ? joinedPartitions.rule : p.flags.get("partition-by"),
    followerReadLeases: p.flags.get("follower-read-leases") === "true",
    dataDir,
    clusterToken: p.flags.get("cluster-token"),
    forwardWrites: p.flags.get("forward-writes") === "true",
    heartbeatIntervalMs: heartbeat,
    electionTimeoutMs: election,
    snapshotEntries: intFlag(p, "snapshot-entries", 100_000, 1, 100_000_000),
    trailingEntries: intFlag(p, "trailing-entries", 5_000, 0, 100_000_000),
    admission: {
      maxInFlightProposals: intFlag(
        p,
        "max-in-flight-proposals",
        DEFAULT_ADMISSION.maxInFlightProposals,
        1,
        1_000_000,
      ),
      maxQueuedRequests: intFlag(p, "max-queued-requests", DEFAULT_ADMISSION.maxQueuedRequests, 1, 1_000_000),
      maxEventLoopLagMs: intFlag(p, "max-event-loop-lag", DEFAULT_ADMISSION.maxEventLoopLagMs, 0, 600_000),
    },
    logger,
    fs: overrides.fs,
    auth,
    tls,
  });
  logger.setTermSource(() => running.node.status().term);
  if (join && !running.node.status().members.some((m) => m.id === id)) {
    try {
      // Not in the configuration this data dir holds: a new node, or one whose earlier request to
      // join failed (ask again, of the cluster the data belongs to), or one added but not yet told.
      const fresh = join.clusterId !== undefined;
      // A restarted discovered node that is not in its own configuration asks whoever is listed now.
      if (!fresh && discovery && joinUrls.length === 0)
        joinUrls = await lookupCandidates(discovery).catch(() => []);
      const info = fresh ? null : await fetchCluster(joinUrls, p.flags.get("token"), logger, fetchFor(p));
      if (info && info.clusterId !== running.node.clusterId)
        throw new UsageError(
          `--join: the data directory belongs to cluster ${running.node.clusterId}, but ${joinUrls.join(",")} is cluster ${info.clusterId}`,
        );
      if (!info?.members.has(id))
        await askToJoin(
          joinUrls,
          { id, url: advertise, learner: p.flags.get("learner") === "true" },
          p.flags.get("token"),
          logger,
          fetchFor(p),
        );
    } catch (e) {
      logger.error((e as Error).message);
      await running.stop();
      await registry?.stop();
      return 2;
    }
  }
  await new Promise<void>((resolve) => {
    const stop = (sig: string): void => {
      logger.info(`${sig}: stopping`);
      running.stop().then(resolve, resolve);
    };
    process.once("SIGINT", () => stop("SIGINT"));
    process.once("SIGTERM", () => stop("SIGTERM"));
    running.node.once("removed", () => {
      running.stop().then(resolve, resolve);
    });
    running.node.once("stopped", (err: Error | null) => {
      if (err) {
        logger.error(`node stopped: ${err.message}`);
        process.exitCode = 1;
        resolve();
      }
    });
  });
  await registry?.stop();
  return process.exitCode === 1 ? 1 : 0;
}
