/**
 * Many Raft groups on one node, as one pure state machine: the partitions of a node share its
 * clock, its peer streams and its WAL. Owns the set of groups, ticking them together, routing an
 * incoming envelope's messages to their groups, and collecting every ready group's output into one
 * batch whose messages go out as one envelope per peer — so a tick's heartbeats for all the groups
 * a node leads leave as one message per peer (CockroachDB's and dragonboat's coalesced
 * heartbeats), and one fdatasync covers every group's entries (see storage/shared-log.ts).
 *
 * With `quiesce`, idle groups go quiet (RaftOptions.quiesce) and the host becomes their failure
 * detector, as CockroachDB's node liveness is for its quiescent ranges: it pings every peer once
 * per heartbeat interval (an empty envelope), notes when it last heard from each, and when a
 * peer has been silent for an election timeout it restarts the election timers of the quiet
 * groups that peer leads, and wakes the quiet groups it leads itself that no longer hear from a
 * quorum (so they check it and step down); see FailureDetector. Group 0 never goes quiet.
 *
 * Must never do I/O, read a clock or draw randomness: like RawNode, it is driven by the layer
 * around it, and the simulator drives it from a seed. It never makes a Raft decision either: each
 * group's core does, exactly as it would alone.
 */
import type { Raft } from "../raft/raft.js";
import { RawNode, type RawNodeOptions } from "../raft/rawnode.js";
import type { Message, NodeId, Ready } from "../raft/types.js";

/** A message of one group. */
export interface GroupMessage {
  readonly group: number;
  readonly message: Message;
}

/**
 * Everything one node sends another in one go: messages of any number of groups. `from` and `to`
 * are the nodes; every message inside is between the same two.
 */
export interface Envelope {
  readonly from: NodeId;
  readonly to: NodeId;
  readonly messages: readonly GroupMessage[];
}

/** One group's part of a batch. */
export interface GroupReady {
  readonly group: number;
  readonly ready: Ready;
}

/**
 * The output of every group that had any, since the last batch. The driver saves every group's
 * durable part together (one write, one sync), sends `late` once that is durable, applies each
 * group's committed entries, then calls advance().
 */
export interface MultiReady {
  readonly groups: readonly GroupReady[];
  /** Leaders' appends, heartbeats and snapshot chunks: may leave before the save (see Ready.leaderMessages). */
  readonly early: readonly Envelope[];
  /** Everything else: only once every group's save in this batch is durable. */
  readonly late: readonly Envelope[];
  /** Whether anything in the batch must be fdatasync'd before `late` leaves. */
  readonly mustSync: boolean;
}

export interface MultiRaftOptions {
  readonly id: NodeId;
  /** Group ids 0..groups-1. */
  readonly groups: number;
  /** Options of group `g`'s core (its storage, its seeded randomness, ...). `id` is this node's. */
  readonly group: (g: number) => Omit<RawNodeOptions, "id">;
  /** Idle groups (all but group 0) go quiet, with this host detecting failed peers. Default false. */
  readonly quiesce?: boolean;
}

export interface MultiRaftStats {
  /** Envelopes refused whole: not addressed to this node, or holding a message between other nodes. */
  badEnvelopes: number;
  /** Messages for a group this node does not have. */
  unknownGroup: number;
}

export class MultiRaft {
  readonly id: NodeId;
  private readonly nodes: RawNode[] = [];
  private outstanding: MultiReady | null = null;
  readonly stats: MultiRaftStats = { badEnvelopes: 0, unknownGroup: 0 };
  private readonly quiesce: boolean;
  /** The host's own clock (ticks), for its failure detector. */
  private ticks = 0;
  /** When (host ticks) each peer was last heard from. */
  private readonly heardAt = new Map<NodeId, number>();
  private pingDue = false;
  private readonly detector: FailureDetector;

  constructor(opts: MultiRaftOptions) {
    if (!Number.isInteger(opts.groups) || opts.groups < 1)
      throw new RangeError(`groups must be a positive integer, not ${opts.groups}`);
    this.id = opts.id;
    this.quiesce = opts.quiesce ?? false;
    this.detector = new FailureDetector(opts.id);
    for (let g = 0; g < opts.groups; g++)
      this.nodes.push(new RawNode({ ...opts.group(g), id: opts.id, quiesce: this.quiesce && g > 0 }));
  }

  get groups(): number {
    return this.nodes.length;
  }

  /** Group `g`'s driver handle: for proposals, reads, transfers and status. */
  group(g: number): RawNode {
    const n = this.nodes[g];
    if (!n) throw new RangeError(`no group ${g} (this node has ${this.nodes.length})`);
    return n;
  }

  /** One tick of the node's clock, for every group. */
  tick(): void {
    this.ticks++;
    for (const n of this.nodes) n.tick();
    if (!this.quiesce) return;
    const first = this.nodes[0]!.raft;
    if (this.ticks % first.heartbeatTicks !== 0) return;
    this.pingDue = true;
    this.detector.check(
      this.peers(),
      (peer) => this.ticks - (this.heardAt.get(peer) ?? Number.NEGATIVE_INFINITY) < first.electionTicks,
      this.nodes.map((n) => n.raft),
    );
  }

  /** The members of any group but this node: whom the failure detector pings. */
  private peers(): Set<NodeId> {
    const peers = new Set<NodeId>();
    for (const n of this.nodes) {
      for (const id of n.raft.config.voters) peers.add(id);
      for (const id of n.raft.config.learners) peers.add(id);
    }
    peers.delete(this.id);
    return peers;
  }

  /**
   * Delivers an envelope from a peer. A malformed one (addressed elsewhere, or carrying a message
   * between other nodes) is dropped whole and counted; a message for a group this node lacks is
   * dropped and counted. Never throws on what a peer sent.
   */
  step(env: Envelope): void {
    if (env.to !== this.id || env.from === this.id || !Array.isArray(env.messages)) {
      this.stats.badEnvelopes++;
      return;
    }
    for (const gm of env.messages) {
      if (gm.message.from !== env.from || gm.message.to !== env.to) {
        this.stats.badEnvelopes++;
        return;
      }
    }
    this.heardAt.set(env.from, this.ticks);
    for (const gm of env.messages) {
      const n = Number.isInteger(gm.group) ? this.nodes[gm.group] : undefined;
      if (!n) {
        this.stats.unknownGroup++;
        continue;
      }
      n.step(gm.message);
    }
  }

  /** Whether ready() has anything to hand out. */
  hasReady(): boolean {
    if (this.outstanding) return false;
    if (this.pingDue) return true;
    for (const n of this.nodes) if (n.hasReady()) return true;
    return false;
  }

  /**
   * Takes the output of every group that has some. Only one batch is outstanding at a time;
   * groups that become ready meanwhile wait for the next one.
   */
  ready(): MultiReady {
    if (this.outstanding) throw new Error("multiraft: ready() called again before advance()");
    const groups: GroupReady[] = [];
    const early = new Map<NodeId, GroupMessage[]>();
    const late = new Map<NodeId, GroupMessage[]>();
    let mustSync = false;
    const put = (into: Map<NodeId, GroupMessage[]>, group: number, ms: readonly Message[]) => {
      for (const message of ms) {
        const list = into.get(message.to);
        if (list) list.push({ group, message });
        else into.set(message.to, [{ group, message }]);
      }
    };
    for (let g = 0; g < this.nodes.length; g++) {
      const n = this.nodes[g]!;
      if (!n.hasReady()) continue;
      const ready = n.ready();
      groups.push({ group: g, ready });
      if (ready.mustSync) mustSync = true;
      put(early, g, ready.leaderMessages);
      put(late, g, ready.messages);
    }
    if (this.pingDue) {
      this.pingDue = false;
      // A peer that gets nothing else in this batch gets an empty envelope: the ping.
      for (const peer of this.peers()) if (!early.has(peer) && !late.has(peer)) early.set(peer, []);
    }
    const envelopes = (m: Map<NodeId, GroupMessage[]>): Envelope[] =>
      [...m].map(([to, messages]) => ({ from: this.id, to, messages }));
    const batch: MultiReady = { groups, early: envelopes(early), late: envelopes(late), mustSync };
    this.outstanding = batch;
    return batch;
  }

  /** Acknowledges the outstanding batch: saved, sent and applied. */
  advance(batch: MultiReady): void {
    if (this.outstanding !== batch)
      throw new Error("multiraft: advance() of a batch that is not outstanding");
    this.outstanding = null;
    for (const { group, ready } of batch.groups) this.nodes[group]!.advance(ready);
  }
}

/**
 * The failure detector of quiet groups (shared by this host and the running node, which feed it
 * what they heard). Once per heartbeat interval: a quiet follower whose leader's node is silent
 * restarts its election timer; a quiet leader that no longer hears from a quorum of voters wakes,
 * so its quorum check can step it down; a leader may go quiet while a minority of members is down
 * (it ignores them), and wakes when one comes back, to bring it up to date.
 */
export class FailureDetector {
  private dead: ReadonlySet<NodeId> = new Set();

  constructor(private readonly self: NodeId) {}

  /** Applies what was heard to `groups`; returns those whose core changed (their driver must run them). */
  check(peers: Iterable<NodeId>, heard: (peer: NodeId) => boolean, groups: Iterable<Raft>): Raft[] {
    const dead = new Set<NodeId>();
    for (const p of peers) if (p !== this.self && !heard(p)) dead.add(p);
    let revived = false;
    for (const p of this.dead) if (!dead.has(p)) revived = true;
    if (dead.size > 0 || this.dead.size > 0) this.dead = dead;
    const changed: Raft[] = [];
    for (const r of groups) {
      r.quietIgnores = this.dead;
      if (!r.quiesced) continue;
      if (r.role !== "leader") {
        if (r.leader !== null && this.dead.has(r.leader)) {
          r.leaderSilent();
          changed.push(r);
        }
        continue;
      }
      const voters = r.config.voters;
      let live = 0;
      for (const id of voters) if (!this.dead.has(id)) live++;
      if (revived || live < (voters.length >> 1) + 1) {
        r.wake();
        changed.push(r);
      }
    }
    return changed;
  }
}
