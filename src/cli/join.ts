/**
 * `ballot start --join`: what a brand-new node asks of the running cluster before and after it
 * starts serving: the cluster's identity and members, then to be added (as a learner that the
 * leader promotes once it has caught up). Owns those two requests and their retries; must never
 * touch the data directory (start.ts decides whether joining is needed at all).
 */
import type { NodeLogger } from "../node/raft-node.js";
import { request } from "./client.js";

import { UsageError } from "./flags.js";

export interface ClusterInfo {
  readonly clusterId: string;
  readonly members: Map<string, string>;
  /** The cluster's partition count (1 unless it was created with --partitions). */
  readonly partitions: number;
  /** Its partition rule (`hash` unless created with --partition-by). */
  readonly partitionBy: string;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Asks the cluster who it is and where its members are; retries for a while (the cluster may be starting too). */
export async function fetchCluster(
  urls: string[],
  token: string | undefined,
  log: NodeLogger,
  fetchImpl: typeof fetch,
  deadlineMs = 60_000,
): Promise<ClusterInfo> {
  const deadline = Date.now() + deadlineMs;
  let last = "";
  for (let attempt = 0; ; attempt++) {
    try {
      const r = await request(urls, "GET", "/v1/cluster", undefined, token, fetchImpl);
      const b = r.body as {
        clusterId?: unknown;
        members?: unknown;
        partitions?: unknown;
        partitionBy?: unknown;
      };
      if (r.status === 401 || r.status === 403)
        throw new UsageError(`--join: the cluster refused the request (${r.status}): give an admin --token`);
      if (r.status === 200 && typeof b.clusterId === "string" && Array.isArray(b.members)) {
        const members = new Map<string, string>();
        for (const m of b.members as { id?: unknown; url?: unknown }[])
          if (typeof m.id === "string" && typeof m.url === "string" && m.url !== "") members.set(m.id, m.url);
        const partitions = Array.isArray(b.partitions) ? b.partitions.length : 1;
        const partitionBy = typeof b.partitionBy === "string" ? b.partitionBy : "hash";
        return { clusterId: b.clusterId, members, partitions, partitionBy };
      }
      last = `GET /v1/cluster answered ${r.status}`;
    } catch (e) {
      if (e instanceof UsageError) throw e;
      last = (e as Error).message;
    }
    if (Date.now() > deadline) throw new UsageError(`--join: no member of the cluster answered (${last})`);
    if (attempt === 0) log.warn(`--join: cannot reach the cluster yet (${last}); retrying`);
    await sleep(Math.min(2000, 200 * 2 ** attempt));
  }
}

/**
 * Asks the leader to add this node. Done once this node serves, because the leader checks that
 * the new member answers at its URL. "Already a member at this URL" counts as success (a retry).
 */
export async function askToJoin(
  urls: string[],
  me: { id: string; url: string; learner: boolean },
  token: string | undefined,
  log: NodeLogger,
  fetchImpl: typeof fetch,
  deadlineMs = 120_000,
): Promise<void> {
  const deadline = Date.now() + deadlineMs;
  let last = "";
  for (let attempt = 0; ; attempt++) {
    try {
      const r = await request(urls, "POST", "/v1/cluster/members", me, token, fetchImpl);
      const err = (r.body as { error?: { code?: string; message?: string; member?: { url?: string } } })
        .error;
      if (r.status === 201) {
        log.info(
          `joined the cluster as a learner${me.learner ? "" : "; the leader promotes it to voter once it has caught up"}`,
        );
        return;
      }
      if (r.status === 409 && err?.code === "member_exists" && err.member?.url === me.url) {
        log.info("already a member of the cluster");
        return;
      }
      const retryable =
        r.status >= 500 || err?.code === "config_pending" || err?.code === "member_unreachable";
      last = `${r.status} ${err?.code ?? ""}: ${err?.message ?? JSON.stringify(r.body)}`;
      if (!retryable) throw new UsageError(`--join: the cluster refused to add this node: ${last}`);
    } catch (e) {
      if (e instanceof UsageError) throw e;
      last = (e as Error).message;
    }
    if (Date.now() > deadline) throw new UsageError(`--join: could not be added to the cluster (${last})`);
    if (attempt === 0) log.warn(`--join: not added yet (${last}); retrying`);
    await sleep(Math.min(2000, 200 * 2 ** attempt));
  }
}
