/**
 * What a hostile request must never change, as every node of a test cluster sees it: revision,
 * keys and values, membership, leases, and the holder of one election. Owns only reading that
 * state over the public API; never writes.
 */
import assert from "node:assert/strict";
import { call, type ProcCluster } from "../integration/procs.js";

/** One node's view of the state a hostile request must not move. */
export interface NodeState {
  readonly revision: number;
  readonly kvs: readonly string[];
  readonly members: readonly string[];
  readonly leases: number;
  readonly election: unknown;
}

/** Every node's view, in `c.ids` order (`election` names the election to watch). */
export function clusterState(c: ProcCluster, election = "job"): Promise<NodeState[]> {
  return Promise.all(
    c.ids.map(async (id) => {
      const base = c.url(id);
      const kvs = await call(`${base}/v1/kv?consistency=local`);
      const members = await call(`${base}/v1/cluster`);
      const leases = await call(`${base}/v1/leases?consistency=local`);
      const job = await call(`${base}/v1/elections/${election}?consistency=local`);
      return {
        revision: kvs.body.revision,
        kvs: kvs.body.kvs.map((k: { key: string; value: unknown }) => `${k.key}=${JSON.stringify(k.value)}`),
        members: members.body.members.map((m: { id: string; voter: boolean }) => `${m.id}:${m.voter}`),
        leases: leases.body.leases.length,
        election: job.body.leader,
      };
    }),
  );
}

/** The state once every node agrees (followers apply a moment after the leader). */
export async function settledState(c: ProcCluster, election = "job"): Promise<NodeState[]> {
  for (let i = 0; ; i++) {
    const s = await clusterState(c, election);
    if (s.every((x) => JSON.stringify(x) === JSON.stringify(s[0]))) return s;
    assert.ok(i < 100, `the nodes do not agree: ${JSON.stringify(s)}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}
