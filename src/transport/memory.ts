/**
 * The in-memory twin of the peer transport, for tests: messages go through the real codec and
 * arrive asynchronously; links can be cut. Owns nothing durable; must never be used across processes.
 */
import type { Message, NodeId } from "../raft/types.js";
import { decodeGroupMessage, encodeMessage } from "./codec.js";
import type { PeerStatus, Transport } from "./transport.js";

export class MemoryNetwork {
  readonly nodes = new Map<NodeId, MemoryTransport>();
  /** Directed links that drop everything: "a>b". */
  readonly cut = new Set<string>();

  transport(id: NodeId): MemoryTransport {
    const t = new MemoryTransport(this, id);
    this.nodes.set(id, t);
    return t;
  }

  isolate(id: NodeId): void {
    for (const o of this.nodes.keys()) {
      if (o === id) continue;
      this.cut.add(`${id}>${o}`);
      this.cut.add(`${o}>${id}`);
    }
  }

  heal(): void {
    this.cut.clear();
  }
}

export class MemoryTransport implements Transport {
  private onMessage: ((m: Message, group: number) => void) | null = null;
  private peers = new Map<NodeId, string>();
  private closed = false;

  constructor(
    private readonly net: MemoryNetwork,
    readonly id: NodeId,
  ) {}

  start(onMessage: (m: Message, group: number) => void): void {
    this.onMessage = onMessage;
  }

  send(messages: readonly Message[], group = 0): void {
    for (const m of messages) {
      if (this.closed || this.net.cut.has(`${m.from}>${m.to}`)) continue;
      const bytes = encodeMessage(m, group);
      setImmediate(() => {
        const to = this.net.nodes.get(m.to);
        if (!to || to.closed || this.net.cut.has(`${m.from}>${m.to}`)) return;
        const d = decodeGroupMessage(bytes);
        to.onMessage?.(d.message, d.group);
      });
    }
  }

  setPeers(peers: ReadonlyMap<NodeId, string>): void {
    this.peers = new Map(peers);
  }

  status(): PeerStatus[] {
    return [...this.peers].map(([id, url]) => ({
      id,
      url,
      connected: !this.net.cut.has(`${this.id}>${id}`) && this.net.nodes.get(id)?.closed === false,
      queuedBytes: 0,
      dropped: 0,
    }));
  }

  async close(): Promise<void> {
    this.closed = true;
  }
}
