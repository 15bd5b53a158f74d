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
  /** The answering node's commit index. */
  readonly commitIndex: number;
}

/** What a beacon answers to `GET /v1/discovery` (with `"ballot": "discovery"`). */
export interface Beacon {
  readonly id: string;
  readonly url: string;
  readonly clusterToken: string;
  /** Random per process: tells this node's own beacon, and a restarted peer, apart. */
  readonly nonce: string;
  readonly view: readonly string[];
}

/** What asking one address found. */
export type Probe =
  | { readonly kind: "beacon"; readonly address: string; readonly beacon: Beacon }
  | { readonly kind: "live"; readonly member: LiveMember }
  | { readonly kind: "down"; readonly address: string; readonly why: string };

/** A discovering peer as remembered across rounds. */
export interface TrackedPeer extends DiscoveringPeer {
  readonly nonce: string;
  readonly address: string;
  readonly seenAt: number;
}

/**
 * Folds one round of probes into `peers` (updated in place): a beacon of this token is
 * remembered, a node that now serves a cluster is forgotten as a peer, and a peer not heard from
 * for `stickyMs` is dropped (one that is between its beacon and its server, or briefly
 * unreachable, stays). Returns this round's live members of this token, what blocks forming, and
 * what to log once.
 */
export function absorb(
  me: { readonly id: string; readonly token: string; readonly nonce: string },
  peers: Map<string, TrackedPeer>,
  results: readonly Probe[],
  now: number,
  stickyMs: number,
): { live: LiveMember[]; conflicts: string[]; notes: string[]; sawSelf: boolean } {
  const live: LiveMember[] = [];
  const conflicts: string[] = [];
  const notes: string[] = [];
  let sawSelf = false;
  for (const r of results) {
    if (r.kind === "down") continue;
    if (r.kind === "live") {
      const m = r.member;
      peers.delete(m.self);
      if (tokenOfClusterId(m.clusterId) !== me.token) {
        notes.push(
          `refused ${m.address}: it is ${m.self}, a member of cluster ${m.clusterId}, not of a cluster with token '${me.token}'`,
        );
        continue;
      }
      live.push(m);
      continue;
    }
    const b = r.beacon;
    if (b.id === me.id) {
      if (b.nonce === me.nonce) sawSelf = true;
      else conflicts.push(`another node at ${r.address} also calls itself '${me.id}'`);
      continue;
    }
    if (b.clusterToken !== me.token) {
      notes.push(
        `ignored ${r.address}: node ${b.id} is forming a cluster with token '${b.clusterToken}', not '${me.token}'`,
      );
      continue;
    }
    const known = peers.get(b.id);
    // The same node may answer at several addresses (A and AAAA): only another process is a conflict.
    if (known && known.nonce !== b.nonce && known.seenAt === now)
      conflicts.push(`two nodes call themselves '${b.id}' (at ${known.address} and ${r.address})`);
    peers.set(b.id, {
      url: b.url,
      view: [...b.view].sort(),
      nonce: b.nonce,
      seenAt: now,
      address: r.address,
    });
  }
  for (const [id, p] of peers) if (now - p.seenAt > stickyMs) peers.delete(id);
  return { live, conflicts, notes, sawSelf };
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

/**
 * The members a live cluster that lists this node was formed from, if it was formed by discovery
 * with this node: its id is the hash of the token and the founding ids, so the set is found by
 * trying today's members and, once the cluster has grown, each `--bootstrap-expect`-sized subset
 * of them that includes this node. Null when none matches (the cluster was formed otherwise).
 */
function foundingSet(
  s: BootstrapState,
  clusterId: string,
  members: ReadonlyMap<string, string>,
): ReadonlyMap<string, string> | null {
  if (clusterId === clusterIdOf(s.me.token, [...members.keys()])) return members;
  const k = s.expect;
  const others = [...members.keys()].filter((id) => id !== s.me.id).sort();
  // Bounded: C(15, k) subsets at most, and founding sets are small.
  if (k === undefined || k > members.size || others.length > 15) return null;
  const pick: string[] = [];
  const walk = (from: number): string[] | null => {
    if (pick.length === k - 1) {
      const ids = [s.me.id, ...pick];
      return clusterId === clusterIdOf(s.me.token, ids) ? ids : null;
    }
    for (let i = from; i < others.length; i++) {
      pick.push(others[i]!);
      const found = walk(i + 1);
      pick.pop();
      if (found) return found;
    }
    return null;
  };
  const ids = walk(0);
  return ids ? new Map(ids.map((id) => [id, members.get(id)!])) : null;
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
    const founding = foundingSet(s, clusterId, members);
    if (!founding)
      return {
        kind: "refuse",
        why: `'${s.me.id}' is already a member of cluster ${clusterId}, which was not formed from a set of nodes this node agreed to, and this data directory is empty: a member that lost its data must not return under its old id; remove it (ballot members remove) and start it under a new id`,
      };
    // Evidence that this node never ran: the leader has replicated nothing to it, or there has
    // never been a leader at all (a cluster just formed, waiting for this node to make a majority).
    const leader = probes.find((p) => p.self === p.leaderId);
    if (leader && (leader.matchOfMe ?? 0) > 0)
      return {
        kind: "refuse",
        why: `'${s.me.id}' is a member of cluster ${clusterId} that the leader ${leader.self} has already replicated to (up to index ${leader.matchOfMe}), and this data directory is empty: a member that lost its data must not return under its old id; remove it (ballot members remove) and start it under a new id`,
      };
    if (!leader) {
      const known = probes.find((p) => p.leaderId !== null);
      if (known)
        return {
          kind: "wait",
          why: `cluster ${clusterId} has a leader (${known.leaderId}) this node has not reached yet`,
        };
      if (probes.some((p) => p.commitIndex > 0))
        return {
          kind: "wait",
          why: `cluster ${clusterId} has no leader right now; waiting for one before taking this node's place`,
        };
    }
    if (members.get(s.me.id) !== s.me.url)
      return {
        kind: "refuse",
        why: `cluster ${clusterId} lists '${s.me.id}' at ${members.get(s.me.id)}, not at this node's URL ${s.me.url}`,
      };
    // The founding members, not today's: exactly the configuration the others started from (later
    // changes reach this node through the log, as for a founder started late).
    return { kind: "adopt", clusterId, members: founding };
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
