/**
 * A Fastify plugin that mounts a RaftNode's peer protocol on the Fastify server's own port (what
 * node.attach() does for a node:http server). Owns only that; typed structurally so Ballot does
 * not depend on Fastify.
 *
 *   await app.register(ballotPlugin(node));
 */
import type * as http from "node:http";
import type { RaftNode } from "../node/raft-node.js";

interface FastifyLike {
  readonly server: http.Server;
}

/** A Fastify plugin function (callback style). */
export type BallotFastifyPlugin = (instance: FastifyLike, opts: unknown, done: (err?: Error) => void) => void;

export function ballotPlugin(node: RaftNode<unknown>): BallotFastifyPlugin {
  const plugin: BallotFastifyPlugin = (instance, _opts, done) => {
    node.attach(instance.server);
    done();
  };
  // Register at the root, not in an encapsulated child context (fastify-plugin's convention).
  Object.defineProperty(plugin, Symbol.for("skip-override"), { value: true });
  return plugin;
}
