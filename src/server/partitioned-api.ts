/**
 * The HTTP API of a partitioned member: the same routes as one group's, in front of P partitions.
 * Owns choosing the partition a request acts on — a key's by the cluster's partition rule, a
 * lease's by its id, a range's or watch's by its prefix, anything else by X-Ballot-Partition
 * (default 0) — and refusing, 400 `cross_partition`, a request that would span partitions (a
 * range or a watch that does is answered by merging every partition's). Each partition's own routes then do
 * the rest (leader routing included: a write goes to *that partition's* leader). Must never let a
 * request act on a partition it did not name or imply.
 *
 * Ordering: one partition's revisions are its own (every partition counts from 1); a transaction
 * sees one partition, a watch each partition's changes in that partition's revision order.
 * Nothing orders changes across partitions: a merged range is each partition's part as of its
 * own read, a merged watch interleaves partitions as this member applies them.
 */
import type * as http from "node:http";
import { httpsFetch } from "../client/https-fetch.js";
import { type KvResult, LIMITS, utf8Length } from "../kv/commands.js";
import { formatPartitionRule, type Partitioner } from "../kv/partitioner.js";
import { KvStore } from "../kv/store.js";
import type { PartitionedNode } from "../node/partitioned-node.js";
import { type ApiOptions, createGate, createRoutes, exemptFromAdmission, kvJsonOf } from "./api.js";
import { clusterJson } from "./cluster-api.js";
import { HttpError } from "./http-util.js";
import { handleMergedWatch, type WatchedPartition } from "./merged-watch.js";
import {
  changeEveryPartition,
  type MembershipOp,
  type PartitionedMembershipOptions,
} from "./partitioned-membership.js";
import type { Match } from "./validate.js";

export interface PartitionedApiOptions {
  readonly node: PartitionedNode<KvResult>;
  readonly partitioner: Partitioner;
  /** Partition p's node, store, hub and lease expiry (ApiOptions.node is partition p's RaftNode). */
  readonly parts: readonly ApiOptions[];
}

const HEADER = "x-ballot-partition";
/** choose()'s answer for a range over every partition. */
const ALL = -1;
/** choose()'s answer for a watch over every partition. */
const ALL_WATCH = -2;
/** choose()'s answer for a membership change (made in every partition). */
const ALL_MEMBERS = -3;

function crossPartition(message: string): HttpError {
  return new HttpError(400, "cross_partition", message);
}

export function createPartitionedApi(opts: PartitionedApiOptions): http.RequestListener {
  const { partitioner, parts } = opts;
  const count = parts.length;
  const first = parts[0]!;
  const gate = createGate(first);
  const routes = parts.map((p) => createRoutes(p, gate));

  const named = (req: http.IncomingMessage): number | null => {
    const v = req.headers[HEADER];
    if (v === undefined) return null;
    const text = Array.isArray(v) ? v[0]! : v;
    if (!/^\s*\d{1,5}\s*$/.test(text) || Number(text) >= count)
      throw new HttpError(
        400,
        "invalid_header",
        `X-Ballot-Partition must be a partition number from 0 to ${count - 1}`,
      );
    return Number(text);
  };
  const leaseHome = (lease: unknown, p: number, what: string): void => {
    if (typeof lease !== "number") return;
    const home = KvStore.leasePartition(lease, count);
    if (home !== p)
      throw crossPartition(
        `lease ${lease} is held by partition ${home}, but ${what} lives in partition ${p}: grant the lease with X-Ballot-Partition: ${p}`,
      );
  };
  const keyHome = (key: string, asked: number | null): number => {
    const p = partitioner.of(key);
    if (asked !== null && asked !== p)
      throw crossPartition(`key '${key}' lives in partition ${p}, not ${asked} (X-Ballot-Partition)`);
    return p;
  };

  /** The partition a request acts on. */
  const choose = (req: http.IncomingMessage, url: URL, match: Match): number => {
    const asked = named(req);
    const id = match.route.operationId;
    switch (id) {
      case "getKey":
      case "putKey":
      case "deleteKey": {
        const key = String(match.params.key);
        const p = keyHome(key, asked);
        if (id === "putKey") leaseHome(gate.checked(req).json?.lease, p, `key '${key}'`);
        return p;
      }
      case "listKeys":
      case "watch": {
        const prefix = url.searchParams.get("prefix") ?? "";
        const p = asked ?? partitioner.ofPrefix(prefix);
        if (p === null) return id === "listKeys" ? ALL : ALL_WATCH;
        if (id === "watch" && url.searchParams.has("fromRevisions"))
          throw new HttpError(
            400,
            "invalid_request",
            `this watch sees one partition (${p}): give fromRevision, not fromRevisions`,
          );
        return p;
      }
      case "txn": {
        const body = gate.checked(req).json ?? {};
        const keys: string[] = [];
        const leases: unknown[] = [];
        for (const c of (body.compare as { key: string }[] | undefined) ?? []) keys.push(c.key);
        for (const branch of [body.success, body.failure] as Record<
          string,
          { key: string; lease?: number }
        >[][]) {
          for (const op of branch ?? []) {
            const inner = op.put ?? op.delete ?? op.get;
            if (inner) keys.push(inner.key);
            if (op.put?.lease !== undefined) leases.push(op.put.lease);
          }
        }
        if (keys.length === 0) return asked ?? 0;
        const homes = new Set(keys.map((k) => partitioner.of(k)));
        if (homes.size > 1)
          throw crossPartition(
            `a transaction acts within one partition; its keys live in partitions ${[...homes].sort((a, b) => a - b).join(", ")}`,
          );
        const p = keyHome(keys[0]!, asked);
        for (const l of leases) leaseHome(l, p, "the transaction");
        return p;
      }
      case "getLease":
      case "revokeLease":
      case "keepAliveLease": {
        const p = KvStore.leasePartition(Number(match.params.id), count);
        if (asked !== null && asked !== p)
          throw crossPartition(`lease ${match.params.id} is held by partition ${p}, not ${asked}`);
        return p;
      }
      case "addMember":
      case "removeMember":
      case "promoteMember":
        // A member joins or leaves every partition; naming one changes that partition alone
        // (how the change in every partition is made, one partition at a time).
        return asked ?? (count > 1 ? ALL_MEMBERS : 0);
      case "dashboard":
      case "dashboardEvents":
        // One dashboard per member, with every partition in its grid.
        return 0;
      case "listLeases":
      case "saveSnapshot":
        if (asked === null && count > 1)
          throw crossPartition(`this cluster has ${count} partitions: name one with X-Ballot-Partition`);
        return asked ?? 0;
      case "campaign":
      case "proclaim":
      case "resign": {
        const p = asked ?? 0;
        leaseHome(gate.checked(req).json?.lease, p, `election '${match.params.name}'`);
        return p;
      }
      default:
        // Elections (in partition 0 unless named), leases granted, the cluster, probes.
        return asked ?? 0;
    }
  };

  const partitionsJson = () =>
    opts.node.partitions.status().map((s) => ({
      id: s.partition,
      leader: s.leader,
      term: s.term,
      commitIndex: s.commitIndex,
      quiet: s.quiet,
    }));

  /**
   * A range over several partitions: each partition's part read as the request asks (a
   * linearizable read confirms every partition), merged in key order. Each part is what its
   * partition held at its read; the whole is not one moment of the cluster (nothing orders
   * partitions), which is why `revisions` lists every partition's.
   */
  const mergedRange = async (res: http.ServerResponse, url: URL): Promise<void> => {
    const prefix = url.searchParams.get("prefix") ?? "";
    if (utf8Length(prefix) > LIMITS.keyBytes)
      throw new HttpError(400, "invalid_request", "the prefix is too long");
    const limit = Number(url.searchParams.get("limit") ?? "1000");
    await Promise.all(routes.map((r) => r.read(url)));
    let more = false;
    const kvs: ReturnType<KvStore["range"]>["kvs"][number][] = [];
    for (const o of parts) {
      const r = o.kv.range(prefix, limit);
      more ||= r.more;
      kvs.push(...r.kvs);
    }
    kvs.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
    if (kvs.length > limit) {
      kvs.length = limit;
      more = true;
    }
    routes[0]!.send(res, 200, {
      kvs: kvs.map(kvJsonOf),
      more,
      revision: parts[0]!.kv.revision,
      revisions: parts.map((o) => o.kv.revision),
    });
  };

  const watched: WatchedPartition[] = parts.map((o) => ({
    kv: o.kv,
    hub: o.hub,
    hasLeader: () => o.node.leaderInfo !== null,
  }));
  let queued = 0;
  const node0 = first.node;
  const membership: PartitionedMembershipOptions = {
    count,
    self: node0.id,
    leaderUrl: (p) => parts[p]!.node.leaderInfo?.url ?? null,
    selfUrl: node0.urlOf(node0.id) ?? "http://127.0.0.1",
    otherVoters: (exclude) =>
      node0
        .status()
        .members.filter((m) => m.voter && m.id !== exclude && m.url !== "")
        .map((m) => ({ id: m.id, url: m.url })),
    fetch: first.tls ? httpsFetch(first.tls) : (input, init) => fetch(input, init),
    partitionDeadlineMs: Math.max(10_000, 20 * node0.electionTimeoutMs),
  };
  // Every answer says how the cluster partitions, so a client can send a key to its partition's leader.
  const announce = `${count} ${formatPartitionRule(partitioner.rule)}`;
  return (req, res) => {
    res.setHeader("X-Ballot-Partitions", announce);
    routes[0]!.headers(res);
    if (!exemptFromAdmission(req.url ?? "/", req.method ?? "GET")) {
      const refused = node0.admission("request", queued);
      if (refused) {
        routes[0]!.fail(res, refused);
        return;
      }
      queued++;
      res.once("close", () => queued--);
    }
    let part = routes[0]!;
    gate
      .check(req)
      .then(async ({ url, match }) => {
        const p = choose(req, url, match);
        if (p === ALL) {
          await mergedRange(res, url);
          return;
        }
        if (p === ALL_WATCH) {
          handleMergedWatch(watched, node0.electionTimeoutMs, req, res, url);
          return;
        }
        if (p === ALL_MEMBERS) {
          const op = match.route.operationId as MembershipOp;
          const checked = gate.checked(req);
          const memberId = op === "addMember" ? String(checked.json?.id) : String(match.params.id);
          const out = await changeEveryPartition(membership, op, memberId, req, checked.raw, url.pathname);
          routes[0]!.send(res, out.status, out.body, out.headers);
          return;
        }
        part = routes[p]!;
        res.setHeader("X-Ballot-Partition", String(p));
        part.headers(res);
        if (match.route.operationId === "getCluster") {
          part.send(res, 200, {
            ...clusterJson(parts[0]!.node.status()),
            partitionBy: formatPartitionRule(partitioner.rule),
            partitions: partitionsJson(),
          });
          return;
        }
        if (match.route.operationId === "ready") {
          // Ready when every partition has a leader and this member has applied close to its commits.
          const all = parts.map((o) => o.node.status());
          const behind = all
            .map((st, i) => ({ st, i }))
            .filter(({ st }) => st.leader === null || st.appliedIndex < st.commitIndex - 1000)
            .map(({ i }) => i);
          const st = all[0]!;
          part.send(
            res,
            behind.length === 0 ? 200 : 503,
            {
              ready: behind.length === 0,
              leader: st.leader?.id ?? null,
              appliedIndex: st.appliedIndex,
              commitIndex: st.commitIndex,
              partitionsNotReady: behind,
            },
            behind.length === 0 ? {} : { "Retry-After": "1" },
          );
          return;
        }
        await part.handle(req, res, url, match);
      })
      .catch((e: unknown) => part.fail(res, e));
  };
}
