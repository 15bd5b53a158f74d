/**
 * Leader-only jobs in process (node.leadership.runWhileLeader) on three RaftNodes over the
 * in-memory transport: exactly one job runs; when the leader is cut off, its signal aborts before
 * another node's job starts, and the fencing token grows; across isolation, healing, transfer and
 * stop, no two jobs ever run at overlapping times.
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { NotLeaderError } from "../../src/node/errors.js";
import type { LeadershipContext } from "../../src/node/leadership.js";
import { RaftNode, type StateMachine } from "../../src/node/raft-node.js";
import { MemoryNetwork } from "../../src/transport/memory.js";

class Nothing implements StateMachine<void> {
  apply(): void {}
  *snapshot(): Iterable<Uint8Array> {}
  restore(): void {}
}

interface Run {
  node: string;
  token: number;
  start: number;
  end: number;
  assertFailedAt: number;
}

const quiet = { info: () => {}, warn: () => {}, error: () => {} };
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function cluster(dir: string) {
  const net = new MemoryNetwork();
  const ids = ["a", "b", "c"];
  const members = Object.fromEntries(ids.map((id) => [id, `http://${id}.invalid:1`]));
  const nodes = await Promise.all(
    ids.map((id) =>
      RaftNode.start({
        id,
        members,
        dataDir: join(dir, id),
        stateMachine: new Nothing(),
        transport: net.transport(id),
        heartbeatIntervalMs: 30,
        electionTimeoutMs: 300,
        logger: quiet,
      }),
    ),
  );
  const runs: Run[] = [];
  const job = (id: string) => async (signal: AbortSignal, ctx: LeadershipContext) => {
    const run: Run = {
      node: id,
      token: ctx.fencingToken,
      start: performance.now(),
      end: 0,
      assertFailedAt: 0,
    };
    runs.push(run);
    try {
      while (!signal.aborted) {
        ctx.assertLeader(); // throws once the lease lapses, possibly a tick before the signal aborts
        await sleep(5);
      }
    } catch (e) {
      assert.ok(e instanceof NotLeaderError);
    }
    // Once aborted, leadership is never asserted again for this run.
    try {
      ctx.assertLeader();
    } catch (e) {
      assert.ok(e instanceof NotLeaderError);
      run.assertFailedAt = performance.now();
    }
    run.end = performance.now();
  };
  const handles = nodes.map((n) => n.leadership.runWhileLeader(job(n.id)));
  const holder = async (exclude: string[] = []) => {
    for (let t = 0; t < 400; t++) {
      const r = runs.find((x) => x.end === 0 && !exclude.includes(x.node));
      if (r) return r;
      await sleep(10);
    }
    throw new Error("no job started");
  };
  const stop = async () => {
    await Promise.all(handles.map((h) => h.stop()));
    await Promise.all(nodes.map((n) => n.stop({ transferLeadership: false })));
  };
  return { net, nodes, runs, holder, stop };
}

function noOverlap(runs: Run[]): void {
  const sorted = runs.slice().sort((x, y) => x.start - y.start);
  for (let i = 1; i < sorted.length; i++) {
    const prev = sorted[i - 1]!;
    assert.ok(
      prev.end > 0 && prev.end <= sorted[i]!.start,
      `runs overlap: ${JSON.stringify(prev)} and ${JSON.stringify(sorted[i])}`,
    );
    assert.ok(sorted[i]!.token >= prev.token, "the fencing token never goes back");
  }
}

describe("node.leadership.runWhileLeader", () => {
  const dir = mkdtempSync(join(tmpdir(), "ballot-lead-"));
  after(() => rmSync(dir, { recursive: true, force: true }));

  it("exactly one job runs, with the leader's term as fencing token; a cut-off leader's job stops before another starts", async () => {
    const c = await cluster(join(dir, "1"));
    try {
      const first = await c.holder();
      const leader = c.nodes.find((n) => n.id === first.node)!;
      await sleep(300);
      assert.equal(c.runs.filter((r) => r.end === 0).length, 1, "one job at a time");
      assert.equal(first.token, leader.status().term);
      assert.equal(leader.leadership.isLeader, true);

      c.net.isolate(first.node);
      const second = await c.holder([first.node]);
      assert.ok(first.end > 0, "the cut-off leader's job was aborted");
      assert.ok(first.end <= second.start, `aborted at ${first.end}, the next started at ${second.start}`);
      assert.ok(
        first.assertFailedAt > 0 && first.assertFailedAt <= second.start,
        "assertLeader refused before the next leader began",
      );
      assert.ok(second.token > first.token, "a new leadership has a larger token");

      c.net.heal();
      await sleep(600);
      assert.equal(
        c.runs.filter((r) => r.node === first.node).length,
        1,
        "the old leader, now a follower, never restarts",
      );
      noOverlap(c.runs);
    } finally {
      await c.stop();
    }
  });

  it("a transfer and a stop end the job before the next leader starts one", async () => {
    const c = await cluster(join(dir, "2"));
    try {
      const first = await c.holder();
      const target = c.nodes.find((n) => n.id !== first.node)!;
      await c.nodes.find((n) => n.id === first.node)!.transferLeadership(target.id);
      const second = await c.holder([first.node]);
      assert.equal(second.node, target.id);
      assert.ok(first.end > 0 && first.end <= second.start);
      await target.stop();
      const third = await c.holder([target.id]); // stop() hands over to the most up-to-date voter, possibly the first
      assert.ok(second.end > 0 && second.end <= third.start);
      noOverlap(c.runs);
    } finally {
      await c.stop();
    }
  });

  it("waitForLeadership resolves on the leader and times out with NotLeaderError elsewhere; a failing job is reported, not fatal", async () => {
    const c = await cluster(join(dir, "3"));
    try {
      const first = await c.holder();
      const leader = c.nodes.find((n) => n.id === first.node)!;
      const follower = c.nodes.find((n) => n.id !== first.node)!;
      assert.deepEqual(await leader.leadership.waitForLeadership({ timeoutMs: 1000 }), {
        term: first.token,
        fencingToken: first.token,
      });
      await assert.rejects(follower.leadership.waitForLeadership({ timeoutMs: 200 }), NotLeaderError);
      assert.equal(follower.leadership.leader?.id, first.node);
      // A transfer: every node reports the new leader through 'leader-changed'.
      const seen = new Promise<{ id: string; term: number } | null>((resolve) =>
        follower.leadership.on("leader-changed", (l) => {
          if (l && l.id !== first.node) resolve(l);
        }),
      );
      await leader.transferLeadership(follower.id);
      const changed = await seen;
      assert.ok(changed && changed.term > first.token);
      await follower.leadership.waitForLeadership({ timeoutMs: 2000 });
      const errors: unknown[] = [];
      const h = follower.leadership.runWhileLeader(
        () => {
          throw new Error("job bug");
        },
        { onError: (e) => errors.push(e) },
      );
      await sleep(50);
      assert.equal(errors.length, 1);
      assert.equal(follower.leadership.isLeader, true, "a failing job does not disturb the node");
      await h.stop();
    } finally {
      await c.stop();
    }
  });
});
