/**
 * A real single-member etcd for tests: the `etcd` binary (Debian's etcd-server package, installed
 * by scripts/install-etcd.sh) on free loopback ports with a temporary data dir, plus a TCP proxy
 * that can cut a client off from it. Owns the process and the directory it creates and always
 * removes them (the process by PID); must never touch an etcd it did not start, nor fall back to
 * skipping when etcd is missing (a missing etcd is a failure with a clear message).
 */
import { type ChildProcess, spawn } from "node:child_process";
import { accessSync, constants, mkdtempSync, rmSync } from "node:fs";
import { createServer, type Server, type Socket, connect as tcpConnect } from "node:net";
import { tmpdir } from "node:os";
import { delimiter, join } from "node:path";
import { freePorts } from "../integration/procs.js";

export interface EtcdServer {
  /** The client URL, e.g. `http://127.0.0.1:23790`. */
  readonly endpoint: string;
  readonly clientPort: number;
  readonly pid: number;
  /** Kills the process (by PID) and removes its data dir. Idempotent. */
  stop(): Promise<void>;
}

/** Where the `etcd` binary is, or a clear error naming the install script. */
export function findEtcd(): string {
  for (const dir of (process.env.PATH ?? "").split(delimiter)) {
    if (!dir) continue;
    const p = join(dir, "etcd");
    try {
      accessSync(p, constants.X_OK);
      return p;
    } catch {
      // not here
    }
  }
  throw new Error(
    "the etcd binary was not found on PATH: these tests need a real etcd. Install it with `bash scripts/install-etcd.sh` (as root; it installs Debian's etcd-server package).",
  );
}

const live = new Set<ChildProcess>();
// A test runner that exits without calling stop() must not leave an etcd behind.
process.on("exit", () => {
  for (const p of live) if (p.pid !== undefined && p.exitCode === null) process.kill(p.pid, "SIGKILL");
});

/** Starts etcd and resolves once it answers /health. Short Raft timings so leases of 1 s are allowed. */
export async function startEtcd(opts: { startTimeoutMs?: number } = {}): Promise<EtcdServer> {
  const bin = findEtcd();
  let lastError: unknown = null;
  // A free port can be taken by someone else between freePorts() and etcd's bind: try again.
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      return await startOnce(bin, opts.startTimeoutMs ?? 15_000);
    } catch (e) {
      lastError = e;
    }
  }
  throw lastError;
}

async function startOnce(bin: string, startTimeoutMs: number): Promise<EtcdServer> {
  const [clientPort, peerPort] = (await freePorts(2)) as [number, number];
  const dir = mkdtempSync(join(tmpdir(), "ballot-etcd-"));
  const clientUrl = `http://127.0.0.1:${clientPort}`;
  const peerUrl = `http://127.0.0.1:${peerPort}`;
  // Only our flags: an ETCD_* variable from the environment would silently change the server.
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith("ETCD_")) env[k] = v;
  const proc = spawn(
    bin,
    [
      "--name",
      "ballot-test",
      "--data-dir",
      join(dir, "data"),
      "--listen-client-urls",
      clientUrl,
      "--advertise-client-urls",
      clientUrl,
      "--listen-peer-urls",
      peerUrl,
      "--initial-advertise-peer-urls",
      peerUrl,
      "--initial-cluster",
      `ballot-test=${peerUrl}`,
      "--initial-cluster-state",
      "new",
      // etcd's minimum lease TTL is ceil(1.5 × election timeout): 500 ms allows TTLs of 1 s.
      "--heartbeat-interval",
      "50",
      "--election-timeout",
      "500",
      "--logger",
      "zap",
      "--log-level",
      "error",
    ],
    { stdio: ["ignore", "pipe", "pipe"], env },
  );
  live.add(proc);
  const output: string[] = [];
  const keep = (d: Buffer): void => {
    output.push(d.toString());
    if (output.length > 200) output.shift();
  };
  proc.stdout?.on("data", keep);
  proc.stderr?.on("data", keep);
  const exited = new Promise<void>((resolve) => proc.once("exit", () => resolve()));

  let stopped: Promise<void> | null = null;
  const stop = (): Promise<void> => {
    stopped ??= (async () => {
      if (proc.exitCode === null && proc.signalCode === null && proc.pid !== undefined) {
        process.kill(proc.pid, "SIGKILL");
        await exited;
      }
      live.delete(proc);
      rmSync(dir, { recursive: true, force: true });
    })();
    return stopped;
  };

  const deadline = performance.now() + startTimeoutMs;
  try {
    for (;;) {
      if (proc.exitCode !== null || proc.signalCode !== null)
        throw new Error(
          `etcd exited at start (${proc.exitCode ?? proc.signalCode}): ${output.join("").slice(-2000)}`,
        );
      try {
        const res = await fetch(`${clientUrl}/health`, { signal: AbortSignal.timeout(1000) });
        const body = (await res.json()) as { health?: string };
        if (res.ok && body.health === "true") break;
      } catch {
        // not up yet
      }
      if (performance.now() > deadline)
        throw new Error(
          `etcd did not become healthy within ${startTimeoutMs} ms: ${output.join("").slice(-2000)}`,
        );
      await new Promise((r) => setTimeout(r, 50));
    }
  } catch (e) {
    await stop();
    throw e;
  }
  return { endpoint: clientUrl, clientPort, pid: proc.pid!, stop };
}

/** A TCP proxy on loopback in front of a port, that can stop passing bytes (a network partition). */
export interface TcpProxy {
  readonly port: number;
  readonly endpoint: string;
  /**
   * From now on no byte passes in either direction (connections stay open; what arrives is
   * dropped, so there is no healing), and new connections are accepted but not forwarded: the
   * client sees a silent network, not a refused one.
   */
  partition(): void;
  /** Closes every connection and the listener. */
  close(): Promise<void>;
}

export async function startTcpProxy(targetPort: number): Promise<TcpProxy> {
  const sockets = new Set<Socket>();
  let partitioned = false;
  const server: Server = createServer((downstream) => {
    sockets.add(downstream);
    downstream.on("close", () => sockets.delete(downstream));
    downstream.on("error", () => undefined);
    if (partitioned) {
      downstream.pause();
      return;
    }
    const upstream = tcpConnect(targetPort, "127.0.0.1");
    sockets.add(upstream);
    upstream.on("close", () => {
      sockets.delete(upstream);
      downstream.destroy();
    });
    upstream.on("error", () => undefined);
    downstream.on("close", () => upstream.destroy());
    // Forward by hand rather than pipe(): a partition must stop bytes already read, too.
    downstream.on("data", (d) => {
      if (!partitioned) upstream.write(d);
    });
    upstream.on("data", (d) => {
      if (!partitioned) downstream.write(d);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as import("node:net").AddressInfo).port;
  return {
    port,
    endpoint: `http://127.0.0.1:${port}`,
    partition: () => {
      partitioned = true;
      for (const s of sockets) s.pause();
    },
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
