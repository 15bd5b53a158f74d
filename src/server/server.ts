/**
 * A Ballot server process: one HTTP port that serves the client API, health and the peer
 * protocol, in front of a RaftNode running the key-value state machine. Owns startup order and
 * shutdown. Must never start serving clients before the node has recovered its data.
 */

import * as http from "node:http";
import * as https from "node:https";
import type { AddressInfo } from "node:net";
import { encodeCommand, type KvResult } from "../kv/commands.js";
import { LeaseExpiry } from "../kv/lease-expiry.js";
import { formatPartitionRule, Partitioner, parsePartitionRule } from "../kv/partitioner.js";
import { KvStore } from "../kv/store.js";
import { WatchHub } from "../kv/watch-hub.js";
import type { AdmissionLimits } from "../node/overload.js";
import { PartitionedNode } from "../node/partitioned-node.js";
import { type NodeLogger, RaftNode } from "../node/raft-node.js";
import type { FileSystem } from "../storage/fs.js";
import { serverTlsOptions, type TlsMaterial, tlsWarnings } from "../transport/tls.js";
import { type ApiOptions, createApi } from "./api.js";
import type { Authenticator } from "./auth.js";
import { ConfigError } from "./config-error.js";
import { addPartitionMetrics, createMetrics } from "./metrics.js";
import { CONNECTIONS_CHECKING_INTERVAL_MS, hardenWire, type WireDeadlines } from "./wire.js";

export interface ServerOptions {
  readonly id: string;
  /** URL to listen on, e.g. http://127.0.0.1:2379; https:// needs `tls`. */
  readonly listen: string;
  readonly members: ReadonlyMap<string, string>;
  /** Join a running cluster rather than form one (see RaftNodeOptions.join). */
  readonly join?: {
    readonly clusterId?: string;
    readonly url: string;
    readonly seeds?: ReadonlyMap<string, string>;
  };
  /** Leadership priority (see RaftNodeOptions.priority). */
  readonly priority?: number;
  /** Lend the leader's lease to followers for local lease reads (see RaftNodeOptions.followerReadLeases). */
  readonly followerReadLeases?: boolean;
  /** Make this node's data the whole cluster (see RaftNodeOptions.forceNewCluster). */
  readonly forceNewCluster?: boolean;
  readonly dataDir: string;
  readonly clusterToken?: string;
  readonly forwardWrites?: boolean;
  readonly heartbeatIntervalMs?: number;
  readonly electionTimeoutMs?: number;
  readonly snapshotEntries?: number;
  readonly trailingEntries?: number;
  /** Bounds on new client work: past them, 429 with Retry-After and nothing applied (see AdmissionLimits). */
  readonly admission?: Partial<AdmissionLimits>;
  readonly logger: NodeLogger;
  /** The file system under the data dir. Default: the real one (tests inject faults through it). */
  readonly fs?: FileSystem;
  /** Bearer-token authentication of clients (--auth-tokens); absent = open. */
  readonly auth?: Authenticator;
  /** TLS (--cert, --key, --ca): the port serves HTTPS, and peers and forwarded requests use it (see transport/tls.ts). */
  readonly tls?: TlsMaterial;
  /** Deadlines for a request's headers and body (see wire.ts). */
  readonly deadlines?: WireDeadlines;
  /**
   * Partitions (Raft groups) of the key space (--partitions; default 1). Fixed when the cluster is
   * created and recorded in the data directory; every member must be started with the same.
   */
  readonly partitions?: number;
  /** How keys map to partitions (--partition-by): `hash` (default) or `prefix:D`. */
  readonly partitionBy?: string;
}

export interface RunningServer {
  /** The node (partition 0's, when partitioned). */
  readonly node: RaftNode<KvResult>;
  /** The key-value store (partition 0's, when partitioned). */
  readonly kv: KvStore;
  /** Every partition, when started with --partitions N > 1. */
  readonly partitioned?: PartitionedNode<KvResult>;
  readonly server: http.Server;
  readonly url: string;
  stop(): Promise<void>;
}

export { ConfigError };

export async function startServer(opts: ServerOptions): Promise<RunningServer> {
  let listen: URL;
  try {
    listen = new URL(opts.listen);
  } catch {
    throw new ConfigError(`--listen '${opts.listen}' is not a URL`);
  }
  checkTlsConfig(opts, listen);
  const port = listen.port === "" ? (opts.tls ? 443 : 80) : Number(listen.port);
  const host = listen.hostname.replace(/^\[|\]$/g, "");

  // Bind the port before touching the data: "address in use" is the commonest start-up mistake.
  const wireOptions = { connectionsCheckingInterval: CONNECTIONS_CHECKING_INTERVAL_MS };
  const server: http.Server = opts.tls
    ? https.createServer({ ...serverTlsOptions(opts.tls), ...wireOptions })
    : http.createServer(wireOptions);
  server.keepAliveTimeout = 65_000;
  hardenWire(server, opts.deadlines);
  await new Promise<void>((resolve, reject) => {
    server.once("error", (e: NodeJS.ErrnoException) => {
      reject(
        e.code === "EADDRINUSE"
          ? new ConfigError(`cannot listen on ${opts.listen}: the address is in use`)
          : new ConfigError(`cannot listen on ${opts.listen}: ${e.message}`),
      );
    });
    server.listen(port, host, () => resolve());
  });
  // Until the data is recovered and the API is mounted, a request is told to come back (a probe
  // or client that connects this early would otherwise wait for an answer that never comes).
  server.on("request", starting);

  if ((opts.partitions ?? 1) > 1 || (opts.partitionBy !== undefined && opts.partitionBy !== "hash"))
    return startPartitioned(opts, server);
  const kv = new KvStore((e) => opts.logger.error(`a key-value listener failed: ${(e as Error).message}`));
  // Before the node starts, so the changes replayed from the log are in the watch history.
  const hub = new WatchHub(kv);
  let node: RaftNode<KvResult>;
  try {
    node = await RaftNode.start<KvResult>({
      id: opts.id,
      members: opts.members,
      join: opts.join,
      forceNewCluster: opts.forceNewCluster,
      stateMachine: kv,
      ...nodeOptions(opts),
    });
  } catch (e) {
    server.close();
    throw new ConfigError((e as Error).message);
  }
  const expiry = leaseExpiry(node, kv);
  const metrics = createMetrics(node as RaftNode<unknown>);
  server.off("request", starting);
  server.on(
    "request",
    createApi({
      node,
      kv,
      hub,
      expiry,
      metrics,
      auth: opts.auth,
      forwardWrites: opts.forwardWrites,
      tls: opts.tls,
    }),
  );
  node.attach(server);
  const addr = server.address() as AddressInfo;
  const url = `${opts.tls ? "https" : "http"}://${addr.family === "IPv6" ? `[${addr.address}]` : addr.address}:${addr.port}`;
  opts.logger.info(`serving on ${url} (cluster ${node.clusterId}, data in ${opts.dataDir})`);
  if (opts.tls) for (const w of tlsWarnings(opts.tls, opts.id)) opts.logger.warn(w);
  else if (!isLoopback(host))
    opts.logger.warn(
      `listening on ${host} without TLS: client requests${opts.auth ? " (and their tokens)" : ""} and peer traffic travel in the clear; keep this network private`,
    );

  let stopping: Promise<void> | null = null;
  return {
    node,
    kv,
    server,
    url,
    stop() {
      stopping ??= (async () => {
        expiry.stop();
        metrics.stop();
        await node.stop();
        hub.stop();
        server.closeAllConnections?.();
        await new Promise<void>((r) => server.close(() => r()));
      })();
      return stopping;
    },
  };
}

/** What every node of this server is started with, whatever its partitions. */
function nodeOptions(opts: ServerOptions) {
  return {
    priority: opts.priority,
    followerReadLeases: opts.followerReadLeases,
    dataDir: opts.dataDir,
    clusterToken: opts.clusterToken,
    heartbeatIntervalMs: opts.heartbeatIntervalMs,
    electionTimeoutMs: opts.electionTimeoutMs,
    snapshotEntries: opts.snapshotEntries,
    trailingEntries: opts.trailingEntries,
    admission: opts.admission,
    logger: opts.logger,
    fs: opts.fs,
    tls: opts.tls,
  };
}

/** Expires `kv`'s leases through `node` while it leads. */
function leaseExpiry(node: RaftNode<KvResult>, kv: KvStore, intervalMs?: number): LeaseExpiry {
  return new LeaseExpiry({
    intervalMs,
    store: kv,
    propose: (c) => node.propose(encodeCommand(c)),
    isLeader: () => node.leadership.isLeader,
    progress: () => ({ commitIndex: node.commitIndex, appliedIndex: node.appliedIndex }),
  });
}

function starting(_req: http.IncomingMessage, res: http.ServerResponse): void {
  const text = `${JSON.stringify({ error: { code: "unavailable", message: "the node is starting (recovering its data); retry" } })}\n`;
  res.writeHead(503, {
    "Content-Type": "application/json",
    "Content-Length": Buffer.byteLength(text),
    "Retry-After": "1",
  });
  res.end(text);
}

/** A member of a partitioned cluster: P key-value stores, each its own Raft group, behind one API. */
async function startPartitioned(opts: ServerOptions, server: http.Server): Promise<RunningServer> {
  const count = opts.partitions ?? 1;
  let partitioner: Partitioner;
  try {
    partitioner = new Partitioner(count, parsePartitionRule(opts.partitionBy ?? "hash"));
  } catch (e) {
    server.close();
    throw new ConfigError((e as Error).message);
  }
  const onError = (e: unknown) => opts.logger.error(`a key-value listener failed: ${(e as Error).message}`);
  const stores = Array.from({ length: count }, (_, index) => new KvStore(onError, { index, count }));
  // Before the nodes start, so the changes replayed from the log are in the watch history.
  const hubs = stores.map((kv) => new WatchHub(kv));
  let pnode: PartitionedNode<KvResult>;
  try {
    pnode = await PartitionedNode.start<KvResult>({
      id: opts.id,
      members: opts.members,
      join: opts.join,
      forceNewCluster: opts.forceNewCluster,
      partitions: count,
      partitionBy: formatPartitionRule(partitioner.rule),
      stateMachine: (p) => stores[p]!,
      server,
      ...nodeOptions(opts),
    });
  } catch (e) {
    server.close();
    throw new ConfigError((e as Error).message);
  }
  const parts: ApiOptions[] = stores.map((kv, p) => {
    const node = pnode.partitions.get(p);
    // Checked by one timer for every partition (below), not one each.
    const expiry = leaseExpiry(node, kv, 0);
    // Only a leader with a valid lease expires leases: a partition holding any stays awake.
    node.holdAwakeWhile(() => kv.leaseCount > 0);
    return {
      node,
      kv,
      hub: hubs[p]!,
      expiry,
      auth: opts.auth,
      forwardWrites: opts.forwardWrites,
      tls: opts.tls,
    };
  });
  const expiryTimer = setInterval(() => {
    for (const p of parts) p.expiry.check();
  }, 100);
  expiryTimer.unref();
  // Metrics and the dashboard are partition 0's for now (the partition grid is not built yet).
  const metrics = createMetrics(pnode.partitions.get(0) as RaftNode<unknown>);
  addPartitionMetrics(metrics, pnode);
  const { createPartitionedApi } = await import("./partitioned-api.js");
  server.off("request", starting);
  server.on(
    "request",
    metrics.instrument(
      createPartitionedApi({
        node: pnode,
        partitioner,
        parts: parts.map((p, i) =>
          i === 0
            ? { ...p, metrics, dashboardPartitions: () => pnode.partitions.status() }
            : { ...p, dashboard: false },
        ),
      }),
    ),
  );
  const addr = server.address() as AddressInfo;
  const url = `${opts.tls ? "https" : "http"}://${addr.family === "IPv6" ? `[${addr.address}]` : addr.address}:${addr.port}`;
  opts.logger.info(
    `serving on ${url} (cluster ${pnode.clusterId}, ${count} partitions by ${formatPartitionRule(partitioner.rule)}, data in ${opts.dataDir})`,
  );
  let stopping: Promise<void> | null = null;
  return {
    node: pnode.partitions.get(0),
    kv: stores[0]!,
    partitioned: pnode,
    server,
    url,
    stop() {
      stopping ??= (async () => {
        clearInterval(expiryTimer);
        for (const p of parts) p.expiry.stop();
        metrics.stop();
        await pnode.stop();
        for (const h of hubs) h.stop();
        server.closeAllConnections?.();
        await new Promise<void>((r) => server.close(() => r()));
      })();
      return stopping;
    },
  };
}

/** The listen URL and the members' URLs agree with the TLS setting: no peer traffic in the clear beside TLS. */
function checkTlsConfig(opts: ServerOptions, listen: URL): void {
  if (listen.protocol !== "http:" && listen.protocol !== "https:")
    throw new ConfigError(`--listen must be an http:// or https:// URL (got ${listen.protocol})`);
  if (listen.protocol === "https:" && !opts.tls)
    throw new ConfigError(
      `${opts.listen}: an https:// URL needs --cert and --key (or BALLOT_CERT, BALLOT_KEY)`,
    );
  if (listen.protocol === "http:" && opts.tls)
    throw new ConfigError(`--cert, --key and --ca need an https:// listen URL (got ${opts.listen})`);
  for (const [id, url] of opts.members) {
    if (id === opts.id) continue;
    const secure = new URL(url).protocol === "https:";
    if (opts.tls && !secure)
      throw new ConfigError(`this node runs TLS, so every member URL must be https:// (${id} is ${url})`);
    if (!opts.tls && secure)
      throw new ConfigError(
        `member ${id} is reached over https:// (${url}): start this node with TLS too (--cert, --key, --ca)`,
      );
  }
}

function isLoopback(host: string): boolean {
  return host === "localhost" || host === "::1" || /^127\./.test(host);
}
