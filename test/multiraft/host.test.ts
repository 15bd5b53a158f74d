/**
 * The multi-group host on its own: three nodes of eight groups each, driven by hand. Every group
 * elects and commits on its own; a batch's messages leave as one envelope per peer (a tick's
 * heartbeats of every group a node leads in one); a peer's garbage changes nothing.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { type Envelope, MultiRaft } from "../../src/multiraft/host.js";
import { seededRandom } from "../../src/raft/random.js";
import type { NodeId } from "../../src/raft/types.js";
import { MemoryStorage } from "../../src/storage/memory.js";

const IDS = ["a", "b", "c"];
const GROUPS = 8;

function cluster(): Map<NodeId, { host: MultiRaft; storages: MemoryStorage[] }> {
  const out = new Map<NodeId, { host: MultiRaft; storages: MemoryStorage[] }>();
  IDS.forEach((id, i) => {
    const storages = Array.from({ length: GROUPS }, () =>
      MemoryStorage.bootstrap({ voters: IDS, learners: [] }),
    );
    const host = new MultiRaft({
      id,
      groups: GROUPS,
      group: (g) => ({
        storage: storages[g]!,
        random: seededRandom(1000 * i + g + 1),
        electionTicks: 10,
        heartbeatTicks: 2,
      }),
    });
    out.set(id, { host, storages });
  });
  return out;
}

/** Runs every node's batches until the network is quiet; returns the envelopes that went out. */
function settle(c: ReturnType<typeof cluster>): Envelope[] {
  const sent: Envelope[] = [];
  for (let round = 0; round < 1000; round++) {
    const wire: Envelope[] = [];
    for (const { host, storages } of c.values()) {
      if (!host.hasReady()) continue;
      const batch = host.ready();
      for (const { group, ready } of batch.groups) storages[group]!.save(ready, (err) => assert.ifError(err));
      wire.push(...batch.early, ...batch.late);
      host.advance(batch);
    }
    if (wire.length === 0) return sent;
    sent.push(...wire);
    for (const env of wire) c.get(env.to)!.host.step(env);
  }
  throw new Error("the cluster never went quiet");
}

function leaders(c: ReturnType<typeof cluster>): (NodeId | null)[] {
  return Array.from({ length: GROUPS }, (_, g) => {
    for (const [id, { host }] of c) if (host.group(g).raft.role === "leader") return id;
    return null;
  });
}

describe("MultiRaft host", () => {
  it("every group elects a leader and commits, and a batch sends one envelope per peer", () => {
    const c = cluster();
    for (let t = 0; t < 40 && leaders(c).includes(null); t++) {
      for (const { host } of c.values()) host.tick();
      settle(c);
    }
    const led = leaders(c);
    assert.ok(!led.includes(null), `leaders: ${led.join(",")}`);
    for (let g = 0; g < GROUPS; g++) {
      const leader = c.get(led[g]!)!.host.group(g);
      const res = leader.propose(new TextEncoder().encode(`write to group ${g}`));
      assert.ok(res.ok);
    }
    const sent = settle(c);
    for (let g = 0; g < GROUPS; g++) {
      for (const { host } of c.values()) {
        const log = host.group(g).raft.log;
        assert.equal(log.committed, log.lastIndex(), `group ${g} committed everywhere`);
      }
    }
    // One envelope per (sender, receiver) in each batch: never two to the same peer at once.
    for (const env of sent) for (const gm of env.messages) assert.equal(gm.message.to, env.to);
    // A tick's heartbeats: each node sends each peer one envelope holding every group it leads.
    settle(c);
    for (const { host } of c.values()) {
      host.tick();
      host.tick();
    }
    const beats = settle(c).filter((e) => e.messages.some((m) => m.message.type === "heartbeat"));
    for (const [id] of c) {
      const mine = led.filter((l) => l === id).length;
      if (mine === 0) continue;
      for (const peer of IDS.filter((p) => p !== id)) {
        const envs = beats.filter((e) => e.from === id && e.to === peer);
        assert.equal(envs.length, 1, `${id} -> ${peer}: one heartbeat envelope`);
        assert.equal(envs[0]!.messages.filter((m) => m.message.type === "heartbeat").length, mine);
      }
    }
  });

  it("drops garbage from a peer whole, and messages for groups it does not have, changing nothing", () => {
    const c = cluster();
    const b = c.get("b")!.host;
    const before = Array.from({ length: GROUPS }, (_, g) => b.group(g).raft.term);
    const vote = (from: string, to: string) =>
      ({ type: "vote", from, to, term: 50, index: 0, logTerm: 0 }) as const;
    b.step({ from: "a", to: "c", messages: [{ group: 0, message: vote("a", "c") }] }); // not for b
    b.step({ from: "a", to: "b", messages: [{ group: 0, message: vote("c", "b") }] }); // forged sender
    b.step({ from: "b", to: "b", messages: [] }); // from itself
    b.step({ from: "a", to: "b", messages: null as unknown as [] });
    assert.equal(b.stats.badEnvelopes, 4);
    b.step({
      from: "a",
      to: "b",
      messages: [
        { group: GROUPS, message: vote("a", "b") },
        { group: -1, message: vote("a", "b") },
        { group: 0.5, message: vote("a", "b") },
      ],
    });
    assert.equal(b.stats.unknownGroup, 3);
    assert.deepEqual(
      Array.from({ length: GROUPS }, (_, g) => b.group(g).raft.term),
      before,
    );
    assert.equal(b.hasReady(), false);
  });

  it("hands out one batch at a time", () => {
    const c = cluster();
    const a = c.get("a")!.host;
    a.group(3).campaign();
    const batch = a.ready();
    assert.deepEqual(
      batch.groups.map((g) => g.group),
      [3],
    );
    assert.throws(() => a.ready(), /before advance/);
    assert.throws(() => a.advance({ ...batch }), /not outstanding/);
    a.advance(batch);
    assert.throws(
      () =>
        new MultiRaft({
          id: "x",
          groups: 0,
          group: () => ({
            storage: MemoryStorage.bootstrap({ voters: ["x"], learners: [] }),
            random: seededRandom(1),
          }),
        }),
      RangeError,
    );
  });
});
