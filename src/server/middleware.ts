/**
 * Leader routing for applications that embed a RaftNode in their own HTTP server (node:http,
 * Express, Fastify's raw handlers): writes that reach a follower are redirected (307) to the
 * leader's URL with the same path, the way the seed service does it. Owns that decision only.
 */
import type * as http from "node:http";
import type { RaftNode } from "../node/raft-node.js";

export interface RedirectOptions {
  /** Which requests must go to the leader. Default: every method but GET, HEAD and OPTIONS. */
  readonly mustLead?: (req: http.IncomingMessage) => boolean;
}

const READS = new Set(["GET", "HEAD", "OPTIONS"]);

/**
 * Returns a handler that answers a request that must go to the leader but reached a follower:
 * 307 with Location at the leader, or 503 with Retry-After when no leader is known. It returns
 * true when it answered; otherwise it calls `next` (Express style) when given and returns false.
 */
export function redirectToLeader(node: RaftNode<unknown>, opts: RedirectOptions = {}) {
  const mustLead = opts.mustLead ?? ((req) => !READS.has(req.method ?? "GET"));
  return (req: http.IncomingMessage, res: http.ServerResponse, next?: () => void): boolean => {
    res.setHeader("X-Ballot-Node", node.id);
    res.setHeader("X-Ballot-Leader", node.leaderInfo?.id ?? "");
    if (!mustLead(req) || node.isLeader) {
      next?.();
      return false;
    }
    const leader = node.leaderInfo;
    if (!leader?.url) {
      res.writeHead(503, { "Retry-After": "1", "Content-Type": "application/json" });
      res.end(
        `${JSON.stringify({ error: { code: "no_leader", message: "no leader is known right now; retry" } })}\n`,
      );
      return true;
    }
    res.writeHead(307, { Location: new URL(req.url ?? "/", leader.url).toString() });
    res.end();
    return true;
  };
}
