/**
 * Embedding in Fastify: two RaftNodes mounted on Fastify servers with ballotPlugin form a cluster
 * over the Fastify ports, and the app's own routes keep working beside the peer protocol.
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import Fastify from "fastify";
import { ballotPlugin, RaftNode, type StateMachine } from "../../src/index.js";
import { freePorts, sleep } from "./procs.js";

class Counter implements StateMachine<number> {
  n = 0;
  apply(): number {
    return ++this.n;
  }
  *snapshot(): Iterable<Uint8Array> {
    yield new TextEncoder().encode(String(this.n));
  }
  restore(chunks: Iterable<Uint8Array>): void {
    this.n = Number(Buffer.concat([...chunks]).toString());
  }
}

describe("ballotPlugin for Fastify", () => {
  const dir = mkdtempSync(join(tmpdir(), "ballot-fastify-"));
  after(() => rmSync(dir, { recursive: true, force: true }));

  it("two nodes on Fastify servers elect a leader and replicate; app routes still answer", async () => {
    const ports = await freePorts(2);
    const members = { a: `http://127.0.0.1:${ports[0]}`, b: `http://127.0.0.1:${ports[1]}` };
    const quiet = { info: () => {}, warn: () => {}, error: () => {} };
    const counters = [new Counter(), new Counter()];
    const nodes = await Promise.all(
      (["a", "b"] as const).map((id, i) =>
        RaftNode.start({ id, members, dataDir: join(dir, id), stateMachine: counters[i]!, logger: quiet }),
      ),
    );
    const apps = await Promise.all(
      nodes.map(async (node, i) => {
        const app = Fastify();
        await app.register(ballotPlugin(node));
        app.get("/hello", async () => ({ from: node.id }));
        await app.listen({ port: ports[i]!, host: "127.0.0.1" });
        return app;
      }),
    );
    try {
      let leader: RaftNode<number> | undefined;
      for (let t = 0; t < 200 && !leader; t++) {
        leader = nodes.find((n) => n.isLeader);
        await sleep(25);
      }
      assert.ok(leader, "a leader over the Fastify ports");
      assert.equal(await leader.propose(new Uint8Array([1])), 1);
      const follower = nodes.find((n) => n !== leader)!;
      await follower.readBarrier();
      assert.equal(counters[nodes.indexOf(follower)]!.n, 1);
      const r = await fetch(`${members.a}/hello`);
      assert.deepEqual(await r.json(), { from: "a" });
    } finally {
      await Promise.all(nodes.map((n) => n.stop({ transferLeadership: false })));
      await Promise.all(apps.map((a) => a.close()));
    }
  });
});
