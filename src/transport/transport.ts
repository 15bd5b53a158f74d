/**
 * What the node needs from a peer transport. Owns the interface; the HTTP stream transport and an
 * in-memory twin for tests implement it. A transport never retries a message: Raft does.
 */
import type { Message, NodeId } from "../raft/types.js";

export interface PeerStatus {
  readonly id: NodeId;
  readonly url: string;
  readonly connected: boolean;
  /** Bytes waiting to go out to this peer. */
  readonly queuedBytes: number;
  /** Messages dropped because the peer could not keep up or was unreachable. */
  readonly dropped: number;
}

export interface Transport {
  /**
   * Starts delivering received messages to `onMessage`, with the Raft group each belongs to (0
   * unless the nodes are partitioned: see multiraft/ and node/partitioned-node.ts).
   */
  start(onMessage: (m: Message, group: number) => void): void;
  /** Sends messages of one group (default 0), best effort, in order per peer. */
  send(messages: readonly Message[], group?: number): void;
  /** Where each peer is, as this node reaches it. */
  setPeers(peers: ReadonlyMap<NodeId, string>): void;
  status(): PeerStatus[];
  /**
   * Cuts the streams of peers no longer admitted (members whose removal just committed), so they
   * learn it when they dial again. Transports without admission need not have it.
   */
  recheckInbound?(): void;
  close(): Promise<void>;
}
