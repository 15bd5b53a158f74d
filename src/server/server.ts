/**
 * A Ballot server process: one HTTP port that serves the client API, health and the peer
 * protocol, in front of a RaftNode running the key-value state machine. Owns startup order and
 * shutdown. Must never start serving clients before the node has recovered its data.
 */
import * as http from "node:http";
import type { AddressInfo } from "node:net";
import { encodeCommand, type KvResult } from "../kv/commands.js";
import { LeaseExpiry } from "../kv/lease-expiry.js";
import { KvStore } from "../kv/store.js";
import { WatchHub } from "../kv/watch-hub.js";
import { type NodeLogger, RaftNode } from "../node/raft-node.js";
import type { FileSystem } from "../storage/fs.js";
import { createApi } from "./api.js";
import type { Authenticator } from "./auth.js";
import { createMetrics } from "./metrics.js";

export interface ServerOptions {
  readonly id: string;
  /** URL to listen on, e.g. http://127.0.0.1:2379 (http only until TLS arrives). */
  readonly listen: string;
  readonly members: ReadonlyMap<string, string>;
  /** Join a running cluster rather than form one (see RaftNodeOptions.join). */
  readonly join?: { readonly clusterId?: string; readonly url: string };
  readonly dataDir: string;
  readonly clusterToken?: string;
  readonly forwardWrites?: boolean;
  readonly heartbeatIntervalMs?: number;
  readonly electionTimeoutMs?: number;
  readonly snapshotEntries?: number;
  readonly trailingEntries?: number;
  readonly logger: NodeLogger;
  /** The file system under the data dir. Default: the real one (tests inject faults through it). */
  readonly fs?: FileSystem;
  /** Bearer-token authentication of clients (--auth-tokens); absent = open. */
  readonly auth?: Authenticator;
}

export interface RunningServer {
  readonly node: RaftNode<KvResult>;
  readonly kv: KvStore;
  readonly server: http.Server;
  readonly url: string;
  stop(): Promise<void>;
}

/** Thrown for configuration problems the operator must fix; the CLI prints the message and exits 2. */
export class ConfigError extends Error {
  readonly code = "BALLOT_ERR_CONFIG";
}

export async function startServer(opts: ServerOptions): Promise<RunningServer> {
  let listen: URL;
  try {
    listen = new URL(opts.listen);
  } catch {
    throw new ConfigError(`--listen '${opts.listen}' is not a URL`);
  }
  if (listen.protocol !== "http:")
    throw new ConfigError(`--listen must be an http:// URL (got ${listen.protocol})`);
  const port = listen.port === "" ? 80 : Number(listen.port);
  const host = listen.hostname.replace(/^\[|\]$/g, "");

  // Bind the port before touching the data: "address in use" is the commonest start-up mistake.
  const server = http.createServer();
  server.keepAliveTimeout = 65_000;
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

  const kv = new KvStore((e) => opts.logger.error(`a key-value listener failed: ${(e as Error).message}`));
  // Before the node starts, so the changes replayed from the log are in the watch history.
  const hub = new WatchHub(kv);
  let node: RaftNode<KvResult>;
  try {
    node = await RaftNode.start<KvResult>({
      id: opts.id,
      members: opts.members,
      join: opts.join,
      dataDir: opts.dataDir,
      stateMachine: kv,
      clusterToken: opts.clusterToken,
      heartbeatIntervalMs: opts.heartbeatIntervalMs,
      electionTimeoutMs: opts.electionTimeoutMs,
      snapshotEntries: opts.snapshotEntries,
      trailingEntries: opts.trailingEntries,
      logger: opts.logger,
      fs: opts.fs,
    });
  } catch (e) {
    server.close();
    throw new ConfigError((e as Error).message);
  }
  const expiry = new LeaseExpiry({
    store: kv,
    propose: (c) => node.propose(encodeCommand(c)),
    isLeader: () => node.leadership.isLeader,
  });
  node.leadership.on("elected", () => expiry.extendAll());
  const metrics = createMetrics(node as RaftNode<unknown>);
  server.on(
    "request",
    createApi({ node, kv, hub, expiry, metrics, auth: opts.auth, forwardWrites: opts.forwardWrites }),
  );
  node.attach(server);
  const addr = server.address() as AddressInfo;
  const url = `http://${addr.family === "IPv6" ? `[${addr.address}]` : addr.address}:${addr.port}`;
  opts.logger.info(`serving on ${url} (cluster ${node.clusterId}, data in ${opts.dataDir})`);
  if (!isLoopback(host))
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

function isLoopback(host: string): boolean {
  return host === "localhost" || host === "::1" || /^127\./.test(host);
}
