/**
 * The decision a discovering node takes from what its probes found: wait, form a new cluster with
 * exactly the discovered set, join a live cluster, or take its place in a cluster that was just
 * formed with it. Pure (no I/O, no clock): discover.ts feeds it. Owns the rule that keeps two
 * bootstraps apart — a node forms only once it and every other node of the set report the very
 * same `--bootstrap-expect` members, so any two nodes that form hold the same membership and so
 * the same cluster id — and must never form from a partial, larger or disputed view, nor let a
 * member that lost its data return under its old id.
 */
import { clusterIdOf } from "../node/raft-node.js";

/** A node still discovering, as its beacon answered (see discover.ts). */
export interface DiscoveringPeer {
  readonly url: string;
  /** The members it sees, as sorted `id=url` strings, itself included. */
  readonly view: readonly string[];
}

/** A node already serving a cluster of this cluster token, as `GET /v1/cluster` answered. */
export interface LiveMember {
  readonly address: string;
  readonly clusterId: string;
  /** The answering node's id. */
  readonly self: string;
  readonly leaderId: string | null;
  readonly members: ReadonlyMap<string, string>;
  /** The answering node's match index for the discovering node (meaningful on the leader), or null. */
  readonly matchOfMe: number | null;
}

export interface BootstrapState {
  readonly me: { readonly id: string; readonly url: string; readonly token: string };
  /** `--bootstrap-expect`: undefined means this node only joins clusters that exist. */
  readonly expect: number | undefined;
  /** Discovering nodes of the same cluster token, other than this one, by id. */
  readonly peers: ReadonlyMap<string, DiscoveringPeer>;
  /** Live nodes of the same cluster token found in this round. */
  readonly live: readonly LiveMember[];
  /** Reasons not to form at all now (two nodes answering with one id, say). */
  readonly conflicts: readonly string[];
}

export type Decision =
  | { readonly kind: "wait"; readonly why: string }
  | { readonly kind: "form"; readonly members: ReadonlyMap<string, string> }
  | { readonly kind: "join"; readonly clusterId: string; readonly members: ReadonlyMap<string, string> }
  | { readonly kind: "adopt"; readonly clusterId: string; readonly members: ReadonlyMap<string, string> }
  | { readonly kind: "refuse"; readonly why: string };

/** The token part of a cluster id (`<token>-<12 hex>`, see clusterIdOf). */
export const tokenOfClusterId = (clusterId: string): string => clusterId.replace(/-[0-9a-f]{12}$/, "");

/** The sorted `id=url` form of a member set, as beacons report their views. */
export function viewOf(members: ReadonlyMap<string, string>): string[] {
  return [...members].map(([id, url]) => `${id}=${url}`).sort();
}

export function decide(s: BootstrapState): Decision {
  const clusters = new Map<string, LiveMember[]>();
  for (const l of s.live) clusters.set(l.clusterId, [...(clusters.get(l.clusterId) ?? []), l]);
  if (clusters.size > 1)
    return {
      kind: "wait",
      why: `nodes of ${clusters.size} different clusters with cluster token '${s.me.token}' answer (${[...clusters.keys()].join(", ")}): discovery lists more than one cluster`,
    };
  const [only] = clusters;
  if (only) {
    const [clusterId, probes] = only;
    const members = probes[0]!.members;
    if (!members.has(s.me.id)) return { kind: "join", clusterId, members };
    // Listed, with an empty data dir: either the cluster was just formed from a set that included
    // this node (another node saw the same agreement first), or this node ran and lost its data.
    if (clusterId !== clusterIdOf(s.me.token, [...members.keys()]))
      return {
        kind: "refuse",
        why: `'${s.me.id}' is already a member of cluster ${clusterId}, whose membership has changed since it was formed, and this data directory is empty: a member that lost its data must not return under its old id; remove it (ballot members remove) and start it under a new id`,
      };
    const seen = probes.find((p) => p.self === p.leaderId && (p.matchOfMe ?? 0) > 0);
    if (seen)
      return {
        kind: "refuse",
        why: `'${s.me.id}' is a member of cluster ${clusterId} that the leader ${seen.self} has already replicated to (up to index ${seen.matchOfMe}), and this data directory is empty: a member that lost its data must not return under its old id; remove it (ballot members remove) and start it under a new id`,
      };
    if (members.get(s.me.id) !== s.me.url)
      return {
        kind: "refuse",
        why: `cluster ${clusterId} lists '${s.me.id}' at ${members.get(s.me.id)}, not at this node's URL ${s.me.url}`,
      };
    return { kind: "adopt", clusterId, members };
  }
  if (s.expect === undefined)
    return {
      kind: "wait",
      why: "no live cluster found, and without --bootstrap-expect this node does not form one",
    };
  if (s.conflicts.length > 0) return { kind: "wait", why: s.conflicts[0]! };
  const set = new Map<string, string>([[s.me.id, s.me.url]]);
  for (const [id, p] of s.peers) set.set(id, p.url);
  if (set.size < s.expect)
    return { kind: "wait", why: `found ${set.size} of the ${s.expect} nodes --bootstrap-expect asks for` };
  if (set.size > s.expect)
    return {
      kind: "wait",
      why: `found ${set.size} nodes forming a cluster, more than --bootstrap-expect ${s.expect} (${[...set.keys()].sort().join(", ")}): not choosing among them; fix the records or the flag`,
    };
  const mine = viewOf(set).join(" ");
  const behind = [...s.peers].filter(([, p]) => p.view.join(" ") !== mine).map(([id]) => id);
  if (behind.length > 0)
    return { kind: "wait", why: `waiting for ${behind.sort().join(", ")} to see the same ${s.expect} nodes` };
  return { kind: "form", members: set };
}
