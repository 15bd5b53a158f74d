/**
 * The live dashboard of one node: `GET /` serves the page (./dashboard-page.ts) and `GET /v1/events`
 * streams what it shows as server-sent events — a `status` snapshot on connect (with the recent
 * history) and then whenever something changed (checked every 500 ms), a `leader` event on each
 * leader change and a `membership` event on each change of the member set. Owns the per-node hub
 * (one timer and one listener on the node however many viewers there are), the write-rate window,
 * the bounded history and the bounded set of viewers. Must never change state or propose anything,
 * never block the node, never queue without bound for a slow viewer, and never keep a viewer's
 * resources after it disconnects.
 */
import type * as http from "node:http";
import { performance } from "node:perf_hooks";
import type { NodeStatus, RaftNode } from "../node/raft-node.js";
import { DASHBOARD_CSP, DASHBOARD_HTML } from "./dashboard-page.js";
import { HttpError, startEventStream } from "./http-util.js";

export const DASHBOARD_LIMITS = {
  /** Concurrent /v1/events streams per node; more get 503 + Retry-After. */
  viewers: 64,
  /** Leader and membership events kept for viewers that connect later. */
  history: 50,
  /** How often the status is sampled (and sent, when it changed). */
  tickMs: 500,
  /** Heartbeat comment on idle streams, so proxies and dead peers are noticed. */
  heartbeatMs: 5_000,
  /** The write rate is the commit index delta over this window. */
  rateWindowMs: 5_000,
  /** A viewer with this much unsent is skipped this tick; with 4× this much it is cut off. */
  queuedBytes: 256 * 1024,
  /** How soon EventSource should reconnect after the stream breaks. */
  retryMs: 1_000,
} as const;

/** One entry of the recent history: a leader change or a membership change, as this node saw it. */
export interface DashboardEvent {
  /** Wall-clock time (ms since the epoch) at which this node saw it. */
  readonly at: number;
  readonly kind: "leader" | "membership";
  readonly term: number;
  /** For `leader`: the new leader's id, or null when this node knows of none. */
  readonly leader?: string | null;
  /** For `membership`: the member concerned. */
  readonly member?: string;
  readonly text: string;
}

/** The `status` event's data (the initial one also carries `history` and `historySince`). */
export interface DashboardStatus {
  readonly at: number;
  readonly clusterId: string;
  readonly self: string;
  readonly role: NodeStatus["role"];
  readonly term: number;
  readonly leader: { readonly id: string; readonly url: string | null } | null;
  readonly commitIndex: number;
  readonly appliedIndex: number;
  readonly lastIndex: number;
  readonly leaseValid: boolean;
  /** Committed entries per second over the last `rateWindowMs`. */
  readonly commitRate: number;
  readonly members: readonly {
    readonly id: string;
    readonly url: string;
    readonly voter: boolean;
    readonly role: string;
    readonly self: boolean;
    /** Leader's view only; null elsewhere. */
    readonly matchIndex: number | null;
    readonly lagEntries: number | null;
    /** The leader's peer stream to the member: up, down, or null (not the leader, itself, no stream yet). */
    readonly link: "up" | "down" | null;
  }[];
  /** A partitioned member: who leads each partition, as this member sees it (the rest is partition 0's). */
  readonly partitions?: readonly {
    readonly id: number;
    readonly leader: string | null;
    readonly term: number;
  }[];
}

/** Where a partitioned member's dashboard learns who leads each partition. */
export type PartitionSource = () => readonly {
  readonly partition: number;
  readonly leader: { readonly id: string } | null;
  readonly term: number;
}[];

export interface Dashboard {
  /** GET /: the page. */
  page(res: http.ServerResponse, method: string): void;
  /** GET /v1/events: the event stream. */
  events(res: http.ServerResponse, method: string): void;
  /** Ends every stream and stops the timer (also done when the node stops). */
  close(): void;
}

interface Viewer {
  readonly res: http.ServerResponse;
  readonly stream: ReturnType<typeof startEventStream>;
  /** The last status sent to it, serialized without its timestamp. */
  last: string;
}

const PAGE = Buffer.from(DASHBOARD_HTML, "utf8");

const onlyGet = (method: string): void => {
  if (method !== "GET") throw new HttpError(405, "method_not_allowed", "use GET", { Allow: "GET" });
};

/** Builds the dashboard of `node`; call once per server. */
export function createDashboard<R>(node: RaftNode<R>, partitions?: PartitionSource): Dashboard {
  const viewers = new Set<Viewer>();
  const history: DashboardEvent[] = [];
  const historySince = Date.now();
  const samples: { t: number; commit: number }[] = [];
  let closed = false;

  const writable = (v: Viewer): boolean => {
    if (v.res.destroyed || v.res.writableEnded) return false;
    if (v.res.writableLength > 4 * DASHBOARD_LIMITS.queuedBytes) {
      // Not reading: cut it off rather than queue without bound (EventSource will reconnect).
      v.res.destroy();
      return false;
    }
    return v.res.writableLength <= DASHBOARD_LIMITS.queuedBytes;
  };

  const record = (e: DashboardEvent, name: "leader" | "membership"): void => {
    history.push(e);
    if (history.length > DASHBOARD_LIMITS.history)
      history.splice(0, history.length - DASHBOARD_LIMITS.history);
    for (const v of viewers) if (writable(v)) v.stream.event(name, e);
  };

  const memberKey = (st: NodeStatus): Map<string, boolean> => new Map(st.members.map((m) => [m.id, m.voter]));
  let members = memberKey(node.status());

  const sample = (st: NodeStatus): void => {
    const t = performance.now();
    samples.push({ t, commit: st.commitIndex });
    // Keep one sample older than the window so the rate spans the whole window.
    while (samples.length > 2 && samples[1]!.t <= t - DASHBOARD_LIMITS.rateWindowMs) samples.shift();
  };

  const commitRate = (): number => {
    if (samples.length < 2) return 0;
    const a = samples[0]!;
    const b = samples[samples.length - 1]!;
    const dt = (b.t - a.t) / 1000;
    return dt > 0 ? Math.round((10 * Math.max(0, b.commit - a.commit)) / dt) / 10 : 0;
  };

  const checkMembership = (st: NodeStatus): void => {
    const now = memberKey(st);
    for (const [id, voter] of now) {
      const before = members.get(id);
      if (before === undefined) {
        record(
          {
            at: Date.now(),
            kind: "membership",
            term: st.term,
            member: id,
            text: `${id} joined as a ${voter ? "voter" : "learner"}`,
          },
          "membership",
        );
      } else if (before !== voter) {
        record(
          {
            at: Date.now(),
            kind: "membership",
            term: st.term,
            member: id,
            text: voter ? `${id} was promoted to voter` : `${id} became a learner`,
          },
          "membership",
        );
      }
    }
    for (const id of members.keys()) {
      if (!now.has(id))
        record(
          { at: Date.now(), kind: "membership", term: st.term, member: id, text: `${id} was removed` },
          "membership",
        );
    }
    members = now;
  };

  const snapshot = (st: NodeStatus): Omit<DashboardStatus, "at"> => {
    const links = new Map<string, boolean>();
    try {
      for (const p of node.peers()) links.set(p.id, p.connected);
    } catch {
      // The transport is closing: no link information.
    }
    return {
      clusterId: st.clusterId,
      self: st.self,
      role: st.role,
      term: st.term,
      leader: st.leader,
      commitIndex: st.commitIndex,
      appliedIndex: st.appliedIndex,
      lastIndex: st.lastIndex,
      leaseValid: st.leaseValid,
      commitRate: commitRate(),
      members: st.members.map((m) => {
        const link = links.get(m.id);
        return {
          id: m.id,
          url: m.url,
          voter: m.voter,
          role:
            m.id === st.leader?.id
              ? "leader"
              : !m.voter
                ? "learner"
                : m.id === st.self
                  ? st.role
                  : "follower",
          self: m.id === st.self,
          matchIndex: m.matchIndex,
          lagEntries: m.lagEntries,
          // Only a leader keeps a stream to every member: elsewhere "down" would mislead.
          link: st.role !== "leader" || m.id === st.self || link === undefined ? null : link ? "up" : "down",
        };
      }),
      ...(partitions
        ? {
            partitions: partitions().map((p) => ({
              id: p.partition,
              leader: p.leader?.id ?? null,
              term: p.term,
            })),
          }
        : {}),
    };
  };

  /** Sends the current status to every viewer whose last one differs. */
  const push = (st: NodeStatus = node.status()): void => {
    if (viewers.size === 0) return;
    const body = snapshot(st);
    const key = JSON.stringify(body);
    let data: DashboardStatus | null = null;
    for (const v of viewers) {
      if (v.last === key || !writable(v)) continue;
      data ??= { at: Date.now(), ...body };
      v.stream.event("status", data);
      v.last = key;
    }
  };

  const tick = (): void => {
    if (closed) return;
    const st = node.status();
    sample(st);
    checkMembership(st);
    push(st);
  };

  const leaderChanged = (l: { id: string } | null, term: number): void =>
    record(
      {
        at: Date.now(),
        kind: "leader",
        term,
        leader: l?.id ?? null,
        text: l ? `${l.id} is the leader (term ${term})` : `no leader (term ${term})`,
      },
      "leader",
    );

  const onLeader = (l: { id: string; url: string | null } | null): void => {
    if (closed) return;
    leaderChanged(l, node.status().term);
    // Let the node settle its state, then show the change without waiting for the next tick.
    setImmediate(() => {
      if (!closed) push();
    });
  };

  const first = node.status();
  sample(first);
  // The leader known when the dashboard starts is the first entry of its history.
  if (first.leader) leaderChanged(first.leader, first.term);
  const timer = setInterval(tick, DASHBOARD_LIMITS.tickMs);
  timer.unref();
  node.on("leader", onLeader);

  const close = (): void => {
    if (closed) return;
    closed = true;
    clearInterval(timer);
    node.off("leader", onLeader);
    for (const v of viewers) v.res.end();
    viewers.clear();
  };
  node.once("stopped", close);

  return {
    page(res, method) {
      onlyGet(method);
      res.writeHead(200, {
        "Content-Type": "text/html; charset=utf-8",
        "Content-Length": PAGE.length,
        "Cache-Control": "no-cache",
        "Content-Security-Policy": DASHBOARD_CSP,
        "X-Content-Type-Options": "nosniff",
        "X-Frame-Options": "DENY",
        "Referrer-Policy": "no-referrer",
      });
      res.end(PAGE);
    },

    events(res, method) {
      onlyGet(method);
      if (closed) throw new HttpError(503, "unavailable", "the node is stopping", { "Retry-After": "1" });
      if (viewers.size >= DASHBOARD_LIMITS.viewers) {
        throw new HttpError(
          503,
          "too_many_viewers",
          `this node already streams to ${DASHBOARD_LIMITS.viewers} dashboards`,
          { "Retry-After": "5" },
        );
      }
      const stream = startEventStream(res, DASHBOARD_LIMITS.heartbeatMs);
      res.write(`retry: ${DASHBOARD_LIMITS.retryMs}\n\n`);
      const st = node.status();
      const body = snapshot(st);
      const v: Viewer = { res, stream, last: JSON.stringify(body) };
      viewers.add(v);
      res.on("close", () => viewers.delete(v));
      stream.event("status", { at: Date.now(), ...body, historySince, history });
    },

    close,
  };
}
