/**
 * PartitionedNode on real sockets: three members of eight partitions each, over one shared WAL
 * and one peer stream per node pair. Leaders are balanced (each member leads the partitions it is
 * preferred for); every partition commits and applies everywhere; a member killed → every
 * partition led again by the others within about two election timeouts; a partition's jobs never
 * overlap and are spread; the member comes back with its data and gets its partitions back; the
 * partition count is fixed by the data directory.
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import * as http from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { PartitionedNode } from "../../src/index.js";
import type { StateMachine } from "../../src/node/raft-node.js";
import { StorageError } from "../../src/storage/storage.js";

const P = 8;
const ET = 400;
const quiet = { info: () => {}, warn: () => {}, error: () => {} };
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const dec = new TextDecoder();

/** A partition's state: the commands applied, in order. */
class Journal implements StateMachine<number> {
  readonly applied: string[] = [];
  apply(command: Uint8Array): number {
    if (command.byteLength > 0) this.applied.push(dec.decode(command));
    return this.applied.length;
  }
  *snapshot(): Iterable<Uint8Array> {
    yield new TextEncoder().encode(JSON.stringify(this.applied));
  }
  restore(chunks: Iterable<Uint8Array>): void {
    const text = [...chunks].map((c) => dec.decode(c)).join("");
    this.applied.splice(0, this.applied.length, ...(JSON.parse(text) as string[]));
  }
}

/** One HTTP server per member on a free loopback port (peer streams are attached to it), and the member URLs. */
async function listeners(
  ids: string[],
): Promise<{ servers: Map<string, http.Server>; members: Record<string, string> }> {
  const servers = new Map<string, http.Server>();
  for (const id of ids) {
    const s = http.createServer((_, res) => res.writeHead(404).end());
    await new Promise<void>((r) => s.listen(0, "127.0.0.1", r));
    servers.set(id, s);
  }
  const members = Object.fromEntries(
    ids.map((id) => [id, `http://127.0.0.1:${(servers.get(id)!.address() as AddressInfo).port}`]),
  );
  return { servers, members };
}

interface Run {
  node: string;
  partition: number;
  token: number;
  start: number;
  end: number;
}

describe("PartitionedNode: many Raft groups per member", () => {
  const root = mkdtempSync(join(tmpdir(), "ballot-partitioned-"));
  after(() => rmSync(root, { recursive: true, force: true }));

  it("balances leaders, commits in every partition, survives a member's loss and gives its partitions back", async () => {
    const ids = ["a", "b", "c"];
    const { servers, members } = await listeners(ids);
    const journals = new Map<string, Journal[]>();
    const runs: Run[] = [];
    const nodes = new Map<string, PartitionedNode<number>>();
    const handles = new Map<string, { stop(): Promise<void> }>();
    const open = async (id: string) => {
      const js = Array.from({ length: P }, () => new Journal());
      journals.set(id, js);
      const node = await PartitionedNode.start<number>({
        id,
        members,
        partitions: P,
        dataDir: join(root, id),
        stateMachine: (p) => js[p]!,
        heartbeatIntervalMs: 40,
        electionTimeoutMs: ET,
        logger: quiet,
      });
      node.attach(servers.get(id)!);
      nodes.set(id, node);
      handles.set(
        id,
        node.partitions.runWhileLeader(async (signal, ctx) => {
          const run: Run = {
            node: id,
            partition: ctx.partition,
            token: ctx.fencingToken,
            start: performance.now(),
            end: 0,
          };
          runs.push(run);
          await new Promise<void>((r) => signal.addEventListener("abort", () => r(), { once: true }));
          run.end = performance.now();
        }),
      );
    };
    await Promise.all(ids.map(open));

    const leadersSeenBy = (id: string) =>
      nodes
        .get(id)!
        .partitions.status()
        .map((s) => s.leader?.id ?? null);
    const ledBy = (id: string) =>
      nodes
        .get(id)!
        .partitions.status()
        .filter((_, p) => nodes.get(id)!.partitions.get(p).isLeader)
        .map((s) => s.partition);
    const waitFor = async (what: string, cond: () => boolean, ms: number) => {
      const until = performance.now() + ms;
      while (!cond()) {
        if (performance.now() > until) assert.fail(`timed out waiting for ${what}`);
        await sleep(20);
      }
    };

    // Balanced: each member leads exactly the partitions it is preferred for (p mod 3).
    const preferred = (p: number) => ids[p % ids.length]!;
    await waitFor(
      "balanced leadership",
      () =>
        ids.every(
          (id) =>
            ledBy(id).join() ===
            Array.from({ length: P }, (_, p) => p)
              .filter((p) => preferred(p) === id)
              .join(),
        ),
      20 * ET,
    );
    for (const id of ids) assert.ok(ledBy(id).length <= Math.ceil(P / ids.length));

    // Every partition commits, and every member applies it.
    for (let p = 0; p < P; p++) {
      const leader = nodes.get(preferred(p))!.partitions.get(p);
      assert.equal(await leader.propose(new TextEncoder().encode(`write ${p}`)), 1);
    }
    await waitFor(
      "every member applied every partition's write",
      () => ids.every((id) => journals.get(id)!.every((j, p) => j.applied.join() === `write ${p}`)),
      10 * ET,
    );

    // The partitions' heartbeats travel in batches, one per peer per turn (codec.ts).
    for (const id of ids) {
      const t = (nodes.get(id) as unknown as { transport: { heartbeatBatchesSent: number } }).transport;
      assert.ok(t.heartbeatBatchesSent > 0, `${id} sent heartbeat batches`);
    }

    // One job per partition, on its leader.
    await waitFor(
      "a job per partition",
      () =>
        Array.from({ length: P }, (_, p) => p).every((p) =>
          runs.some((r) => r.partition === p && r.end === 0 && r.node === preferred(p)),
        ),
      10 * ET,
    );

    // Kill c: its streams go, it answers nothing.
    const killedAt = performance.now();
    await nodes.get("c")!.stop({ transferLeadership: false });
    servers.get("c")!.closeAllConnections();
    await new Promise<void>((r) => servers.get("c")!.close(() => r()));
    await waitFor(
      "every partition led by a or b",
      () =>
        leadersSeenBy("a").every(
          (l, p) =>
            (l === "a" || l === "b") &&
            leadersSeenBy("b")[p] === l &&
            nodes.get(l)!.partitions.get(p).isLeader,
        ),
      6 * ET,
    );
    const failover = performance.now() - killedAt;
    console.log(
      `partitioned failover: every one of ${P} partitions led again ${failover.toFixed(0)} ms after a member died (election timeout ${ET} ms)`,
    );
    assert.ok(failover < 3 * ET, `failover took ${failover.toFixed(0)} ms`);
    for (const id of ["a", "b"])
      assert.ok(ledBy(id).length <= Math.ceil(P / 2) + 1, `${id} leads ${ledBy(id).length}`);
    const written = nodes.get(leadersSeenBy("a")[2]!)!.partitions.get(2);
    assert.equal(await written.propose(new TextEncoder().encode("after the loss")), 2);

    // c comes back from its data directory and is handed its partitions again.
    const server = http.createServer((_, res) => res.writeHead(404).end());
    const port = Number(new URL(members.c!).port);
    await new Promise<void>((r) => server.listen(port, "127.0.0.1", r));
    servers.set("c", server);
    await open("c");
    await waitFor("c leads its partitions again", () => ledBy("c").join() === "2,5", 20 * ET);
    await waitFor(
      "c caught up",
      () => journals.get("c")![2]!.applied.join() === "write 2,after the loss",
      10 * ET,
    );

    for (const h of handles.values()) await h.stop();
    // A partition's jobs never overlapped, and their fencing tokens grew.
    for (let p = 0; p < P; p++) {
      const mine = runs.filter((r) => r.partition === p).sort((x, y) => x.start - y.start);
      for (let i = 1; i < mine.length; i++) {
        assert.ok(
          mine[i]!.start >= mine[i - 1]!.end,
          `partition ${p}: job on ${mine[i]!.node} started before the one on ${mine[i - 1]!.node} ended`,
        );
        assert.ok(mine[i]!.token > mine[i - 1]!.token, `partition ${p}: fencing tokens grow`);
      }
    }
    await Promise.all([...nodes.values()].map((n) => n.stop()));
    for (const s of servers.values()) {
      s.closeAllConnections();
      await new Promise<void>((r) => s.close(() => r()));
    }

    // The data directory fixes the partition count.
    await assert.rejects(
      PartitionedNode.start({
        id: "a",
        members,
        partitions: 4,
        dataDir: join(root, "a"),
        stateMachine: () => new Journal(),
        logger: quiet,
      }),
      (e: unknown) => e instanceof StorageError && /created with 8 partitions, not 4/.test(e.message),
    );
  });

  it("idle partitions go quiet; writes and reads wake them; a member's death still hands its quiet partitions over within two election timeouts", async () => {
    const Q = 16;
    const HB = 40;
    const ids = ["a", "b", "c"];
    const { servers, members } = await listeners(ids);
    const journals = new Map<string, Journal[]>();
    const nodes = new Map<string, PartitionedNode<number>>();
    const open = async (id: string) => {
      const js = Array.from({ length: Q }, () => new Journal());
      journals.set(id, js);
      const node = await PartitionedNode.start<number>({
        id,
        members,
        partitions: Q,
        dataDir: join(root, `quiet-${id}`),
        stateMachine: (p) => js[p]!,
        heartbeatIntervalMs: HB,
        electionTimeoutMs: ET,
        logger: quiet,
      });
      node.attach(servers.get(id)!);
      nodes.set(id, node);
    };
    await Promise.all(ids.map(open));
    const status = (id: string) => nodes.get(id)!.partitions.status();
    const waitFor = async (what: string, cond: () => boolean, ms: number) => {
      const until = performance.now() + ms;
      while (!cond()) {
        if (performance.now() > until)
          assert.fail(
            `timed out waiting for ${what}: ${ids
              .filter((id) => nodes.has(id))
              .map((id) => `${id}: ${status(id).map((s) => `${s.leader?.id ?? "-"}${s.quiet ? "q" : ""}`)}`)
              .join("; ")}`,
          );
        await sleep(10);
      }
    };
    const live = () => ids.filter((id) => nodes.has(id));
    const settled = (who: string[], leaderOf: (p: number) => string) =>
      who.every((id) =>
        status(id).every((s) => s.leader?.id === leaderOf(s.partition) && (s.partition === 0 || s.quiet)),
      );

    // Balanced, then quiet: every partition but 0 idles with no heartbeats on every member.
    const preferred = (p: number) => ids[p % ids.length]!;
    await waitFor("balanced and quiet", () => settled(ids, preferred), 30 * ET);
    assert.equal(
      status("a")[0]!.quiet,
      false,
      "partition 0 (elections, leases, configuration) never goes quiet",
    );

    // A write wakes a quiet partition, commits and is applied everywhere; the partition goes quiet again.
    const enc = new TextEncoder();
    for (const p of [1, 2, 3]) {
      const leader = nodes.get(preferred(p))!.partitions.get(p);
      assert.equal(await leader.propose(enc.encode(`write ${p}`)), 1);
    }
    await waitFor(
      "applied everywhere, quiet again",
      () =>
        settled(ids, preferred) &&
        ids.every((id) => [1, 2, 3].every((p) => journals.get(id)![p]!.applied.join() === `write ${p}`)),
      20 * ET,
    );
    // A linearizable read on a quiet partition (its lease ran out): a quorum round wakes it.
    const reader = nodes.get("a")!.partitions.get(4);
    assert.ok(status("a")[4]!.quiet);
    assert.ok((await reader.readBarrier({ consistency: "linearizable", timeoutMs: 10 * ET })) >= 1);
    // A follower's read too (it asks the leader, which wakes).
    assert.ok(
      (await nodes
        .get("b")!
        .partitions.get(4)
        .readBarrier({ timeoutMs: 10 * ET })) >= 1,
    );
    await waitFor("quiet after the reads", () => settled(ids, preferred), 20 * ET);

    // Kill c while its partitions are quiet: only the failure detector (pings stop) can tell.
    const cLeads = status("a")
      .filter((s) => s.leader?.id === "c")
      .map((s) => s.partition);
    assert.ok(cLeads.length >= 5 && cLeads.every((p) => status("a")[p]!.quiet && status("b")[p]!.quiet));
    const killedAt = performance.now();
    await nodes.get("c")!.stop({ transferLeadership: false });
    nodes.delete("c");
    servers.get("c")!.closeAllConnections();
    await new Promise<void>((r) => servers.get("c")!.close(() => r()));
    await waitFor(
      "every partition led by a or b",
      () =>
        status("a").every(
          (s, p) =>
            (s.leader?.id === "a" || s.leader?.id === "b") &&
            status("b")[p]!.leader?.id === s.leader.id &&
            nodes.get(s.leader.id)!.partitions.get(p).isLeader,
        ),
      10 * ET,
    );
    const failover = performance.now() - killedAt;
    console.log(
      `quiet partitions: every one of ${Q} led again ${failover.toFixed(0)} ms after a member died (election timeout ${ET} ms, ${cLeads.length} of them quiet on it)`,
    );
    // Two election timeouts and a failure-detector period, with room for a loaded 2-core machine.
    assert.ok(failover < 3 * ET, `failover took ${failover.toFixed(0)} ms`);
    // With c down the survivors' partitions go quiet again (c cannot take its back).
    await waitFor(
      "quiet without c",
      () => live().every((id) => status(id).every((s) => s.partition === 0 || s.quiet)),
      30 * ET,
    );

    // c comes back: it is handed its partitions again, and everything goes quiet once more.
    const server = http.createServer((_, res) => res.writeHead(404).end());
    await new Promise<void>((r) => server.listen(Number(new URL(members.c!).port), "127.0.0.1", r));
    servers.set("c", server);
    await open("c");
    await waitFor("balanced and quiet again", () => settled(ids, preferred), 40 * ET);
    assert.equal(journals.get("c")![2]!.applied.join(), "write 2");

    await Promise.all([...nodes.values()].map((n) => n.stop()));
    for (const s of servers.values()) {
      s.closeAllConnections();
      await new Promise<void>((r) => s.close(() => r()));
    }
  });

  it("--priority places partition 0 on the member of highest priority; the others stay spread", async () => {
    const ids = ["a", "b", "c"];
    const { servers, members } = await listeners(ids);
    const nodes = await Promise.all(
      ids.map((id) =>
        PartitionedNode.start({
          id,
          members,
          partitions: 4,
          dataDir: join(root, `prio-${id}`),
          stateMachine: () => new Journal(),
          heartbeatIntervalMs: 40,
          electionTimeoutMs: ET,
          priority: id === "c" ? 5 : 0,
          server: servers.get(id)!,
          logger: quiet,
        }),
      ),
    );
    try {
      const want = ["c", "b", "c", "a"];
      const until = performance.now() + 20 * ET;
      const led = () =>
        [0, 1, 2, 3].map((p) => ids.find((_, i) => nodes[i]!.partitions.get(p).isLeader) ?? null);
      while (led().join() !== want.join()) {
        if (performance.now() > until) assert.fail(`leaders ${led().join()} never became ${want.join()}`);
        await sleep(20);
      }
      for (const n of nodes) assert.equal(n.partitions.preferredLeader(0), "c");
    } finally {
      await Promise.all(nodes.map((n) => n.stop()));
      for (const s of servers.values()) {
        s.closeAllConnections();
        await new Promise<void>((r) => s.close(() => r()));
      }
    }
  });

  it("refuses bad options with a clear error", async () => {
    const members = { a: "http://127.0.0.1:1" };
    for (const partitions of [0, -1, 1.5, 5000, Number.NaN]) {
      await assert.rejects(
        PartitionedNode.start({
          id: "a",
          members,
          partitions,
          dataDir: join(root, "bad"),
          stateMachine: () => new Journal(),
          logger: quiet,
        }),
        /partitions must be a whole number from 1 to 4096/,
      );
    }
    await assert.rejects(
      PartitionedNode.start({
        id: "z",
        members,
        partitions: 2,
        dataDir: join(root, "bad"),
        stateMachine: () => new Journal(),
        logger: quiet,
      }),
      /members must include this node/,
    );
  });
});
