/**
 * Discovery for a node with an empty data directory: while it has no cluster it serves a beacon
 * on its own port (`GET /v1/discovery`: who it is, its cluster token, the members it sees), finds
 * candidate addresses (DNS or etcd), asks each who it is — a beacon, or a live member through
 * `GET /v1/cluster` — and repeats until bootstrap.ts decides. Owns the beacon, the probes, the
 * sticky view of peers, retries with backoff and logging each reason once; must never touch the
 * data directory, and never form, join or adopt on its own judgement (decide() does).
 */
import { randomBytes } from "node:crypto";
import * as http from "node:http";
import * as https from "node:https";
import type { NodeLogger } from "../node/raft-node.js";
import { serverTlsOptions, type TlsMaterial } from "../transport/tls.js";
import {
  absorb,
  type Beacon,
  type BootstrapState,
  type Decision,
  decide,
  type Probe,
  type TrackedPeer,
  viewOf,
} from "./bootstrap.js";
import { resolveAddressRecords, resolveSrvRecords } from "./dns.js";
import type { EtcdRegistry } from "./etcd-registry.js";
import { type DiscoverySpec, describeDiscovery } from "./spec.js";

export interface DiscoverOptions {
  readonly id: string;
  /** The URL other members reach this node at (what the cluster records). */
  readonly advertise: string;
  /** The URL this node listens on: the beacon serves there until the real server takes over. */
  readonly listen: string;
  readonly clusterToken: string;
  readonly expect: number | undefined;
  readonly spec: DiscoverySpec;
  /** `--dns-server`, as `host:port`. */
  readonly dnsServer?: string;
  /** The port A/AAAA candidates are probed at. */
  readonly port: number;
  /** For `etcd:` discovery: this node is registered there before the first lookup. */
  readonly registry?: EtcdRegistry;
  /** An admin token for live members' `GET /v1/cluster`, when the cluster checks tokens. */
  readonly apiToken?: string;
  readonly fetchImpl: typeof fetch;
  readonly tls?: TlsMaterial;
  readonly log: NodeLogger;
  /** Between rounds (ms). */
  readonly intervalMs?: number;
  /** A peer that stops answering stays in the view this long (ms): a node between its beacon and its server is not gone. */
  readonly stickyMs?: number;
  readonly signal?: AbortSignal;
}

const sleep = (ms: number, signal?: AbortSignal) =>
  new Promise<void>((resolve) => {
    const t = setTimeout(resolve, ms);
    signal?.addEventListener("abort", () => {
      clearTimeout(t);
      resolve();
    });
  });

/** The candidate URLs, once: DNS records or the etcd registry. Throws with the reason when there are none. */
export async function lookupCandidates(o: DiscoverOptions): Promise<string[]> {
  const scheme = new URL(o.advertise).protocol;
  switch (o.spec.kind) {
    case "dns":
      return resolveAddressRecords(o.spec.name, o.port, scheme, o.dnsServer);
    case "srv":
      return resolveSrvRecords(o.spec.record, scheme, o.dnsServer);
    case "etcd": {
      if (!o.registry) throw new Error("etcd discovery needs its registry");
      const urls = await o.registry.list();
      if (urls.length === 0) throw new Error(`nothing is registered on ${describeDiscovery(o.spec)}`);
      return urls;
    }
  }
}

function isBeacon(b: unknown): b is Beacon & { ballot: "discovery" } {
  const o = b as Record<string, unknown>;
  return (
    typeof o === "object" &&
    o !== null &&
    o.ballot === "discovery" &&
    typeof o.id === "string" &&
    typeof o.url === "string" &&
    typeof o.clusterToken === "string" &&
    typeof o.nonce === "string" &&
    Array.isArray(o.view) &&
    o.view.every((v) => typeof v === "string")
  );
}

async function getJson(
  o: DiscoverOptions,
  url: string,
  token?: string,
): Promise<{ status: number; body: unknown } | null> {
  const r = await o.fetchImpl(url, {
    headers: token ? { Authorization: `Bearer ${token}` } : {},
    signal: AbortSignal.timeout(1500),
    redirect: "manual",
  });
  const text = await r.text();
  try {
    return { status: r.status, body: JSON.parse(text) as unknown };
  } catch {
    return { status: r.status, body: null };
  }
}

async function probe(o: DiscoverOptions, address: string): Promise<Probe> {
  try {
    const b = await getJson(o, `${address}/v1/discovery`);
    if (b && b.status === 200 && isBeacon(b.body)) {
      const { id, url, clusterToken, nonce, view } = b.body;
      return { kind: "beacon", address, beacon: { id, url, clusterToken, nonce, view } };
    }
    const c = await getJson(o, `${address}/v1/cluster`, o.apiToken);
    if (!c) return { kind: "down", address, why: "no answer" };
    if (c.status === 401 || c.status === 403)
      return { kind: "down", address, why: `GET /v1/cluster answered ${c.status}: give an admin --token` };
    const s = c.body as {
      clusterId?: unknown;
      self?: unknown;
      commitIndex?: unknown;
      leader?: { id?: unknown } | null;
      members?: unknown;
    } | null;
    if (
      c.status !== 200 ||
      !s ||
      typeof s.clusterId !== "string" ||
      typeof s.self !== "string" ||
      !Array.isArray(s.members)
    )
      return { kind: "down", address, why: `not a Ballot node (GET /v1/cluster answered ${c.status})` };
    const members = new Map<string, string>();
    let matchOfMe: number | null = null;
    for (const m of s.members as { id?: unknown; url?: unknown; matchIndex?: unknown }[]) {
      if (typeof m.id !== "string" || typeof m.url !== "string" || m.url === "") continue;
      members.set(m.id, m.url);
      if (m.id === o.id && typeof m.matchIndex === "number") matchOfMe = m.matchIndex;
    }
    const leaderId = typeof s.leader?.id === "string" ? s.leader.id : null;
    return {
      kind: "live",
      member: {
        address,
        clusterId: s.clusterId,
        self: s.self,
        leaderId,
        members,
        matchOfMe,
        commitIndex: typeof s.commitIndex === "number" ? s.commitIndex : 0,
      },
    };
  } catch (e) {
    const err = e as Error & { cause?: { code?: string; message?: string } };
    return { kind: "down", address, why: err.cause?.code ?? err.cause?.message ?? err.message };
  }
}

/** Serves `GET /v1/discovery` on this node's port until close(); every other request gets 503. */
async function startBeacon(
  o: DiscoverOptions,
  body: () => Beacon & { ballot: "discovery" },
): Promise<{ close(): Promise<void> }> {
  const handler: http.RequestListener = (req, res) => {
    const ok = req.method === "GET" && req.url === "/v1/discovery";
    const text = `${JSON.stringify(
      ok
        ? body()
        : { error: { code: "discovering", message: "this node has not joined a cluster yet; retry" } },
    )}\n`;
    res.writeHead(ok ? 200 : 503, {
      "Content-Type": "application/json",
      "Content-Length": Buffer.byteLength(text),
      "X-Ballot-Node": o.id,
      ...(ok ? { "Cache-Control": "no-store" } : { "Retry-After": "1" }),
    });
    res.end(text);
    // A request body is never read: do not keep the connection for it.
    if (req.headers["content-length"] !== undefined || req.headers["transfer-encoding"] !== undefined)
      req.socket.end();
  };
  const server = o.tls ? https.createServer(serverTlsOptions(o.tls), handler) : http.createServer(handler);
  server.headersTimeout = 5000;
  server.requestTimeout = 5000;
  const u = new URL(o.listen);
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(
      Number(u.port || (u.protocol === "https:" ? 443 : 80)),
      u.hostname.replace(/^\[|\]$/g, ""),
      () => {
        server.off("error", reject);
        resolve();
      },
    );
  });
  return {
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

/**
 * Discovers until the node knows what to do: form a cluster (exactly the agreed members), join a
 * live one, or take its place in one just formed with it. A refusal (this node lost its data, say)
 * is thrown with the reason. The beacon is closed before this returns.
 */
export async function discover(
  o: DiscoverOptions,
): Promise<Exclude<Decision, { kind: "wait" } | { kind: "refuse" }>> {
  const interval = o.intervalMs ?? 500;
  const stickyMs = o.stickyMs ?? 10_000;
  const nonce = randomBytes(12).toString("hex");
  const peers = new Map<string, TrackedPeer>();
  const told = new Set<string>();
  const once = (m: string): void => {
    if (told.has(m)) return;
    told.add(m);
    o.log.warn(`discovery: ${m}`);
  };
  const myView = (): string[] => {
    const set = new Map<string, string>([[o.id, o.advertise]]);
    for (const [id, p] of peers) set.set(id, p.url);
    return viewOf(set);
  };
  const beacon = await startBeacon(o, () => ({
    ballot: "discovery",
    id: o.id,
    url: o.advertise,
    clusterToken: o.clusterToken,
    nonce,
    view: myView(),
  }));
  o.log.info(
    `discovery: looking for members on ${describeDiscovery(o.spec)}${o.expect !== undefined ? ` (--bootstrap-expect ${o.expect})` : ""}`,
  );
  let lastWait = "";
  let lookupFailure = "";
  let backoff = interval;
  let registered = false;
  try {
    for (;;) {
      if (o.signal?.aborted) throw new Error("discovery stopped");
      let addresses: string[];
      try {
        if (o.registry && !registered) {
          await o.registry.register(o.id, o.advertise).catch((e: Error) => {
            throw new Error(`cannot register this node on ${describeDiscovery(o.spec)} (${e.message})`);
          });
          registered = true;
        }
        addresses = await lookupCandidates(o);
        if (lookupFailure !== "") o.log.info(`discovery: ${describeDiscovery(o.spec)} answers again`);
        lookupFailure = "";
        backoff = interval;
      } catch (e) {
        const why = (e as Error).message;
        if (why !== lookupFailure) o.log.warn(`discovery: ${why}; retrying with backoff`);
        lookupFailure = why;
        await sleep(backoff, o.signal);
        backoff = Math.min(10_000, backoff * 2);
        continue;
      }
      const now = Date.now();
      const results = await Promise.all(addresses.map((a) => probe(o, a)));
      const { live, conflicts, notes, sawSelf } = absorb(
        { id: o.id, token: o.clusterToken, nonce },
        peers,
        results,
        now,
        stickyMs,
      );
      for (const n of notes) once(n);
      if (!sawSelf && live.length === 0)
        once(
          `this node's own beacon is not among the discovered addresses (${addresses.join(", ")}): check that the records include ${o.listen}`,
        );
      const state: BootstrapState = {
        me: { id: o.id, url: o.advertise, token: o.clusterToken },
        expect: o.expect,
        peers,
        live,
        conflicts,
      };
      const d = decide(state);
      if (d.kind === "refuse") throw new DiscoveryRefused(d.why);
      if (d.kind !== "wait") {
        o.log.info(
          d.kind === "form"
            ? `discovery: forming a new cluster with ${[...d.members.keys()].sort().join(", ")}`
            : d.kind === "join"
              ? `discovery: found cluster ${d.clusterId} (${[...d.members.keys()].sort().join(", ")}); joining it`
              : `discovery: cluster ${d.clusterId} was formed with this node (${[...d.members.keys()].sort().join(", ")}); taking its place`,
        );
        return d;
      }
      if (d.why !== lastWait) o.log.info(`discovery: ${d.why}`);
      lastWait = d.why;
      await sleep(interval, o.signal);
    }
  } finally {
    await beacon.close();
  }
}

/** Discovery found a reason this node must not start (see Decision `refuse`). */
export class DiscoveryRefused extends Error {}
