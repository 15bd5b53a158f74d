/**
 * One peer transport shared by the Raft groups (partitions) of a node: each group gets a view that
 * sends its messages tagged with its group and receives only its own. Owns the dispatch of
 * received messages by group. Must never open a link of its own (the shared transport does) and
 * never let one group's view change another's peers or close the streams under them.
 */
import type { Message, NodeId } from "../raft/types.js";
import type { PeerStatus, Transport } from "./transport.js";

export class GroupTransports {
  private readonly handlers: (((m: Message) => void) | null)[];
  private started = false;
  /** Messages for a group whose node has not started (or has stopped). */
  unrouted = 0;

  constructor(
    readonly shared: Transport,
    groups: number,
  ) {
    this.handlers = Array(groups).fill(null);
  }

  /** Group `g`'s transport. The peers come from group 0's view (every group has the same members). */
  view(g: number): Transport {
    if (!Number.isInteger(g) || g < 0 || g >= this.handlers.length) throw new RangeError(`no group ${g}`);
    return {
      start: (onMessage) => {
        this.handlers[g] = (m) => onMessage(m, g);
        if (!this.started) {
          this.started = true;
          this.shared.start((m, group) => {
            const h = this.handlers[group];
            if (h) h(m);
            else this.unrouted++;
          });
        }
      },
      send: (messages) => this.shared.send(messages, g),
      setPeers: (peers: ReadonlyMap<NodeId, string>) => {
        if (g === 0) this.shared.setPeers(peers);
      },
      status: (): PeerStatus[] => this.shared.status(),
      // Admission follows group 0's configuration (members leave it last).
      recheckInbound: () => {
        if (g === 0) this.shared.recheckInbound?.();
      },
      close: async () => {
        this.handlers[g] = null;
      },
    };
  }
}
