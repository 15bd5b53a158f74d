/**
 * Prometheus metrics of one Ballot server (prom-client): Raft state, proposals, event loop lag, fdatasync latency
 * and batch size, per-peer replication lag and round-trip time, snapshots, and HTTP requests by
 * route. Owns its registry (one per server, so several servers can share a process) and the
 * route labels; must never label by raw path (unbounded cardinality) nor block a request.
 */
import type * as http from "node:http";
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from "prom-client";
import type { PartitionedNode, PartitionStatus } from "../node/partitioned-node.js";
import type { RaftNode, ReadConfirmation } from "../node/raft-node.js";

const ROLES = ["follower", "preCandidate", "candidate", "leader"] as const;

/** A bounded label for a request path. */
export function routeOf(path: string): string {
  if (path.startsWith("/v1/kv/")) return "/v1/kv/:key";
  if (/^\/v1\/leases\/[^/]+\/keepalive$/.test(path)) return "/v1/leases/:id/keepalive";
  if (path.startsWith("/v1/leases/")) return "/v1/leases/:id";
  const e = /^\/v1\/elections\/[^/]+(\/(campaign|observe|proclaim|resign))?$/.exec(path);
  if (e) return `/v1/elections/:name${e[1] ?? ""}`;
  if (
    [
      "/v1/kv",
      "/v1/leases",
      "/v1/watch",
      "/v1/cluster",
      "/v1/raft",
      "/health",
      "/ready",
      "/metrics",
      "/",
      "/v1/events",
    ].includes(path)
  )
    return path;
  return "other";
}

/** Long-lived requests: counted, but their duration says nothing about latency. */
const STREAMING = new Set([
  "/v1/watch",
  "/v1/elections/:name/observe",
  "/v1/elections/:name/campaign",
  "/v1/events",
]);

export interface ServerMetrics {
  readonly registry: Registry;
  /** Wraps a request handler to count and time it. */
  instrument(handler: http.RequestListener): http.RequestListener;
  /** Serves GET /metrics. */
  serve(res: http.ServerResponse): Promise<void>;
  stop(): void;
}

export function createMetrics(node: RaftNode<unknown>): ServerMetrics {
  const registry = new Registry();
  registry.setDefaultLabels({ node: node.id });
  collectDefaultMetrics({ register: registry, prefix: "ballot_" });

  new Gauge({
    name: "ballot_term",
    help: "Current Raft term",
    registers: [registry],
    collect() {
      this.set(node.status().term);
    },
  });
  new Gauge({
    name: "ballot_role",
    help: "1 for this node's current role",
    labelNames: ["role"],
    registers: [registry],
    collect() {
      const role = node.status().role;
      for (const r of ROLES) this.set({ role: r }, r === role ? 1 : 0);
    },
  });
  new Gauge({
    name: "ballot_commit_index",
    help: "Highest log index known committed",
    registers: [registry],
    collect() {
      this.set(node.status().commitIndex);
    },
  });
  new Gauge({
    name: "ballot_applied_index",
    help: "Highest log index applied to the state machine",
    registers: [registry],
    collect() {
      this.set(node.status().appliedIndex);
    },
  });
  new Gauge({
    name: "ballot_peer_lag_entries",
    help: "On the leader: entries each peer is behind the leader's log",
    labelNames: ["peer"],
    registers: [registry],
    collect() {
      this.reset();
      const st = node.status();
      if (st.role !== "leader") return;
      for (const m of st.members) if (m.id !== node.id) this.set({ peer: m.id }, m.lagEntries ?? 0);
    },
  });
  const leaderChanges = new Counter({
    name: "ballot_leader_changes_total",
    help: "Times the leader this node knows of changed",
    registers: [registry],
  });
  const proposals = new Counter({
    name: "ballot_proposals_total",
    help: "Proposals made on this node, by outcome",
    labelNames: ["outcome"],
    registers: [registry],
  });
  const reads = new Counter({
    name: "ballot_read_barriers_total",
    help: "Linearizable and lease reads started on this node, by how they are confirmed (leader_lease, follower_lease, quorum, asked_leader)",
    labelNames: ["confirmed_by"],
    registers: [registry],
  });
  new Gauge({
    name: "ballot_follower_read_lease",
    help: "1 while this follower holds a read lease from the leader (--follower-read-leases on the leader)",
    registers: [registry],
    collect() {
      this.set(node.status().followerReadLease ? 1 : 0);
    },
  });
  // The tick timer's lateness (see RaftNode.eventLoopLagMs), not prom-client's own probe: it is
  // the delay the heartbeats and election clock of this node actually suffer, and the value
  // admission refuses client work on.
  new Gauge({
    name: "ballot_event_loop_lag_seconds",
    help: "Event loop lag: how late the node's tick timer fired, worst over the last 250-500 ms",
    registers: [registry],
    collect() {
      this.set(node.eventLoopLagMs / 1000);
    },
  });
  new Gauge({
    name: "ballot_event_loop_lag_max_seconds",
    help: "Worst event loop lag (tick timer lateness) since this node started",
    registers: [registry],
    collect() {
      this.set(node.eventLoopLagMaxMs / 1000);
    },
  });
  new Gauge({
    name: "ballot_in_flight_proposals",
    help: "Proposals made on this node and not yet settled (admission bounds them)",
    registers: [registry],
    collect() {
      this.set(node.inFlightProposals);
    },
  });
  const fsync = new Histogram({
    name: "ballot_fsync_duration_seconds",
    help: "Time to write and fdatasync one batch of log entries and hard state",
    buckets: [0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1],
    registers: [registry],
  });
  const batch = new Histogram({
    name: "ballot_fsync_batch_entries",
    help: "Log entries made durable by one fdatasync",
    buckets: [0, 1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024],
    registers: [registry],
  });
  const rtt = new Histogram({
    name: "ballot_peer_rtt_seconds",
    help: "Heartbeat round-trip time to each peer (measured on the leader)",
    labelNames: ["peer"],
    buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1],
    registers: [registry],
  });
  const snapshotBytes = new Gauge({
    name: "ballot_snapshot_bytes",
    help: "Size of the last snapshot taken here",
    registers: [registry],
  });
  const snapshotSeconds = new Histogram({
    name: "ballot_snapshot_duration_seconds",
    help: "Time to take a snapshot",
    buckets: [0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30],
    registers: [registry],
  });
  const requests = new Counter({
    name: "ballot_http_requests_total",
    help: "HTTP requests by route, method and status",
    labelNames: ["route", "method", "status"],
    registers: [registry],
  });
  const latency = new Histogram({
    name: "ballot_http_request_duration_seconds",
    help: "HTTP request latency by route and method (streams excluded)",
    labelNames: ["route", "method"],
    buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
    registers: [registry],
  });

  const onLeader = (): void => leaderChanges.inc();
  const onProposal = (ok: boolean): void => proposals.inc({ outcome: ok ? "committed" : "failed" });
  const onRead = (how: ReadConfirmation): void => reads.inc({ confirmed_by: how });
  const onPersisted = (ms: number, entries: number): void => {
    fsync.observe(ms / 1000);
    batch.observe(entries);
  };
  const onRtt = (peer: string, ms: number): void => rtt.observe({ peer }, ms / 1000);
  const onSnapshot = (s: { bytes: number; ms: number }): void => {
    snapshotBytes.set(s.bytes);
    snapshotSeconds.observe(s.ms / 1000);
  };
  node.on("leader", onLeader);
  node.on("proposal", onProposal);
  node.on("readBarrier", onRead);
  node.on("persisted", onPersisted);
  node.on("peerRtt", onRtt);
  node.on("snapshot", onSnapshot);

  return {
    registry,
    instrument(handler) {
      return (req, res) => {
        const start = performance.now();
        // The raw path, not `new URL()` (a parse per request): routeOf only buckets it.
        const raw = req.url ?? "/";
        const q = raw.indexOf("?");
        const route = routeOf(q < 0 ? raw : raw.slice(0, q));
        const method = req.method ?? "GET";
        res.once("close", () => {
          requests.inc({ route, method, status: String(res.statusCode) });
          if (!STREAMING.has(route)) latency.observe({ route, method }, (performance.now() - start) / 1000);
        });
        handler(req, res);
      };
    },
    async serve(res) {
      const text = await registry.metrics();
      res.writeHead(200, { "Content-Type": registry.contentType, "Content-Length": Buffer.byteLength(text) });
      res.end(text);
    },
    stop() {
      node.off("leader", onLeader);
      node.off("proposal", onProposal);
      node.off("readBarrier", onRead);
      node.off("persisted", onPersisted);
      node.off("peerRtt", onRtt);
      node.off("snapshot", onSnapshot);
      registry.clear();
    },
  };
}

/**
 * A partitioned member's partitions, in a bounded number of series (a per-partition label would
 * grow with the partition count): how many there are, how many this member leads, how many have
 * no leader it knows of, and the highest term among them. The per-node series above are partition
 * 0's.
 */
export function addPartitionMetrics(metrics: ServerMetrics, node: PartitionedNode<unknown>): void {
  const registers = [metrics.registry];
  const count = (pred: (s: PartitionStatus) => boolean) => node.partitions.status().filter(pred).length;
  new Gauge({
    name: "ballot_partitions",
    help: "Partitions (Raft groups) of this cluster",
    registers,
    collect() {
      this.set(node.partitions.count());
    },
  });
  new Gauge({
    name: "ballot_partitions_led",
    help: "Partitions this member leads",
    registers,
    collect() {
      this.set(count((s) => s.leader?.id === node.id));
    },
  });
  new Gauge({
    name: "ballot_partitions_without_leader",
    help: "Partitions with no leader this member knows of",
    registers,
    collect() {
      this.set(count((s) => s.leader === null));
    },
  });
  new Gauge({
    name: "ballot_partitions_max_term",
    help: "Highest term among the partitions (leader changes show as it grows)",
    registers,
    collect() {
      this.set(Math.max(0, ...node.partitions.status().map((s: PartitionStatus) => s.term)));
    },
  });
}
