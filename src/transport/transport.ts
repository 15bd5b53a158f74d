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
  /** Starts delivering received messages to `onMessage`. */
  start(onMessage: (m: Message) => void): void;
  /** Sends messages (best effort, in order per peer). */
  send(messages: readonly Message[]): void;
  /** Where each peer is, as this node reaches it. */
  setPeers(peers: ReadonlyMap<NodeId, string>): void;
  status(): PeerStatus[];
  close(): Promise<void>;
}
