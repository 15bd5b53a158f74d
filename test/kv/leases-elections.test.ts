import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { type KvCommand, type KvResult, validateCommand } from "../../src/kv/commands.js";
import { LeaseExpiry } from "../../src/kv/lease-expiry.js";
import { KvStore, type StoreEvent } from "../../src/kv/store.js";
import { CompactedError, WatchHub } from "../../src/kv/watch-hub.js";

const put = (
  key: string,
  value: unknown,
  extra: Partial<Extract<KvCommand, { op: "put" }>> = {},
): KvCommand => ({
  op: "put",
  key,
  value: JSON.stringify(value),
  ...extra,
});

function ok(r: KvResult): Extract<KvResult, { ok: true }> {
  assert.equal(r.ok, true, JSON.stringify(r));
  return r as Extract<KvResult, { ok: true }>;
}

function grant(s: KvStore, ttlMs = 5000): number {
  return ok(s.applyCommand({ op: "lease_grant", ttlMs })).lease!.id;
}

describe("leases", () => {
  it("keys attached to a lease are deleted, one revision each, when it is revoked", () => {
    const s = new KvStore();
    const events: StoreEvent[] = [];
    s.subscribe((e) => events.push(e));
    const id = grant(s);
    ok(s.applyCommand(put("b", 1, { lease: id })));
    ok(s.applyCommand(put("a", 2, { lease: id })));
    ok(s.applyCommand(put("c", 3)));
    assert.deepEqual([...s.lease(id)!.keys].sort(), ["a", "b"]);
    const r = ok(s.applyCommand({ op: "lease_revoke", id }));
    assert.equal(r.revision, 5);
    assert.equal(s.get("a"), undefined);
    assert.equal(s.get("b"), undefined);
    assert.ok(s.get("c"));
    const deletes = events.filter((e) => e.type === "delete");
    assert.deepEqual(deletes, [
      { type: "delete", key: "a", revision: 4 },
      { type: "delete", key: "b", revision: 5 },
    ]);
    assert.deepEqual(s.applyCommand({ op: "lease_revoke", id }), {
      ok: false,
      code: "lease_not_found",
      revision: 5,
    });
  });

  it("a put to a missing lease fails and changes nothing", () => {
    const s = new KvStore();
    assert.deepEqual(s.applyCommand(put("a", 1, { lease: 9 })), {
      ok: false,
      code: "lease_not_found",
      revision: 0,
    });
    assert.equal(s.get("a"), undefined);
  });

  it("a put without the lease detaches the key", () => {
    const s = new KvStore();
    const id = grant(s);
    ok(s.applyCommand(put("a", 1, { lease: id })));
    ok(s.applyCommand(put("a", 2)));
    ok(s.applyCommand({ op: "lease_revoke", id }));
    assert.equal(s.get("a")?.value, "2");
  });

  it("an expiry decided before a keepalive was applied is void", () => {
    const s = new KvStore();
    const id = grant(s);
    const seq = s.lease(id)!.seq;
    ok(s.applyCommand({ op: "lease_keepalive", id }));
    assert.equal(ok(s.applyCommand({ op: "lease_expire", id, seq })).removed, false);
    assert.ok(s.lease(id));
    assert.equal(ok(s.applyCommand({ op: "lease_expire", id, seq: seq + 1 })).removed, true);
    assert.equal(s.lease(id), undefined);
    assert.equal(s.applyCommand({ op: "lease_keepalive", id }).ok, false);
  });

  it("the leader proposes expiry a full TTL after the renewal it applied, only while it leads, once caught up", async () => {
    const s = new KvStore();
    let now = 0;
    let leader = false;
    let progress = { commitIndex: 10, appliedIndex: 10 };
    const proposed: KvCommand[] = [];
    const expiry = new LeaseExpiry({
      store: s,
      propose: async (c) => {
        proposed.push(c);
        return s.applyCommand(c);
      },
      isLeader: () => leader,
      progress: () => progress,
      now: () => now,
      intervalMs: 0,
    });
    try {
      const id = grant(s, 1000);
      now = 900;
      ok(s.applyCommand({ op: "lease_keepalive", id })); // renewed until 1900 by this node's clock
      now = 1500;
      expiry.check();
      now = 2000;
      expiry.check();
      assert.equal(proposed.length, 0, "a follower never proposes expiry");
      // Comes to lead at 2000 with entries committed but not yet applied: nothing is decided,
      // since one of them may be a renewal acknowledged under the previous leader.
      leader = true;
      progress = { commitIndex: 12, appliedIndex: 11 };
      expiry.check();
      assert.equal(proposed.length, 0, "not before it has applied what was committed");
      progress = { commitIndex: 13, appliedIndex: 12 };
      expiry.check();
      await new Promise((r) => setImmediate(r));
      // The lease's TTL is not restarted by the leader change: it was due at 1900.
      assert.deepEqual(proposed, [{ op: "lease_expire", id, seq: 1 }]);
      assert.equal(s.lease(id), undefined);
    } finally {
      expiry.stop();
    }
  });

  it("checkpoints a lease nobody renews, once per half TTL, and a node that starts later counts from it", async () => {
    const s = new KvStore();
    let now = 0;
    const proposed: KvCommand[] = [];
    const expiry = new LeaseExpiry({
      store: s,
      propose: async (c) => {
        proposed.push(c);
        return s.applyCommand(c);
      },
      isLeader: () => true,
      progress: () => ({ commitIndex: 1, appliedIndex: 1 }),
      now: () => now,
      intervalMs: 0,
    });
    try {
      const id = grant(s, 10_000); // due at 10 000
      for (now = 0; now <= 7000; now += 100) expiry.check();
      await new Promise((r) => setImmediate(r));
      assert.deepEqual(
        proposed,
        [{ op: "lease_checkpoint", id, seq: 0, remainingMs: 5000 }],
        "one per half TTL",
      );
      assert.equal(s.lease(id)!.remainingMs, 5000);
      // A node restored from this state (a restart, a snapshot) counts 5 s, not a new 10 s.
      const copy = new KvStore();
      copy.restore(s.snapshot());
      const later = new LeaseExpiry({
        store: copy,
        propose: async () => undefined,
        isLeader: () => false,
        progress: () => ({ commitIndex: 1, appliedIndex: 1 }),
        now: () => 7000,
        intervalMs: 0,
      });
      assert.equal(later.remainingMs(id), 5000);
      later.stop();
      // A renewal clears it; a checkpoint decided before a renewal is void.
      ok(s.applyCommand({ op: "lease_keepalive", id }));
      assert.equal(s.lease(id)!.remainingMs, undefined);
      ok(s.applyCommand({ op: "lease_checkpoint", id, seq: 0, remainingMs: 1 }));
      assert.equal(s.lease(id)!.remainingMs, undefined);
      assert.equal(expiry.remainingMs(id), 10_000);
    } finally {
      expiry.stop();
    }
  });

  it("under leadership that moves every 300 ms, an unrenewed lease still expires about a TTL after its last renewal", async () => {
    // Three replicas of one store (as if each applied the log at once) and their expiry timers.
    const stores = [new KvStore(), new KvStore(), new KvStore()];
    let now = 0;
    let leader = 0;
    const applyAll = (c: KvCommand) => stores.map((st) => st.applyCommand(c))[leader]!;
    const timers = stores.map(
      (store, i) =>
        new LeaseExpiry({
          store,
          propose: async (c) => (i === leader ? applyAll(c) : Promise.reject(new Error("not leader"))),
          isLeader: () => i === leader,
          progress: () => ({ commitIndex: 1, appliedIndex: 1 }),
          now: () => now,
          intervalMs: 0,
        }),
    );
    try {
      const id = ok(applyAll({ op: "lease_grant", ttlMs: 1000 })).lease!.id;
      let expiredAt: number | null = null;
      for (now = 0; now < 10_000 && expiredAt === null; now += 50) {
        if (now % 300 === 0) leader = (leader + 1) % 3;
        for (const t of timers) t.check();
        await new Promise((r) => setImmediate(r));
        if (!stores[0]!.lease(id)) expiredAt = now;
      }
      assert.ok(expiredAt !== null, "the lease expired despite the leader changes");
      assert.ok(expiredAt <= 1000 + 100, `expired at ${expiredAt} ms, TTL 1000 ms`);
      assert.ok(expiredAt >= 1000, "and never early");
    } finally {
      for (const t of timers) t.stop();
    }
  });

  it("refuses bad lease commands", () => {
    assert.match(validateCommand({ op: "lease_grant", ttlMs: 10 }) ?? "", /ttl/);
    assert.match(validateCommand({ op: "lease_grant", ttlMs: 5000, x: 1 }) ?? "", /unknown field/);
    assert.match(validateCommand({ op: "lease_keepalive", id: 0 }) ?? "", /lease id/);
    assert.match(validateCommand({ op: "put", key: "a", value: "1", lease: -1 }) ?? "", /lease/);
  });
});

describe("idempotency keys", () => {
  it("a retry gets the first outcome; the same key for another request is refused; values are not kept", () => {
    const s = new KvStore();
    const first = ok(s.applyCommand(put("a", "big", { idem: "k1" })));
    const again = ok(s.applyCommand(put("a", "big", { idem: "k1" })));
    assert.equal(again.revision, first.revision);
    assert.equal(again.kv?.value, "", "the remembered outcome carries no value");
    assert.equal(s.revision, 1, "applied once");
    assert.deepEqual(s.applyCommand(put("a", "other", { idem: "k1" })), {
      ok: false,
      code: "idempotency_key_reused",
      revision: 1,
    });
    assert.equal(s.applyCommand({ op: "del", key: "a", idem: "k1" }).ok, false);
    const t = new KvStore();
    t.restore([...s.snapshot()]);
    assert.equal(
      ok(t.applyCommand(put("a", "big", { idem: "k1" }))).revision,
      1,
      "remembered across snapshots",
    );
    assert.equal(t.applyCommand(put("a", "x", { idem: "k1" })).ok, false);
  });

  it("a listener that throws does not cut a command short", () => {
    const errors: unknown[] = [];
    const s = new KvStore((e) => errors.push(e));
    s.subscribe(() => {
      throw new Error("listener bug");
    });
    const id = grant(s);
    ok(s.applyCommand(put("a", 1, { lease: id })));
    ok(s.applyCommand(put("b", 1, { lease: id })));
    ok(s.applyCommand({ op: "lease_revoke", id }));
    assert.equal(s.get("a"), undefined);
    assert.equal(s.get("b"), undefined);
    assert.equal(s.lease(id), undefined);
    assert.ok(errors.length >= 4);
    assert.match(String(errors[0]), /listener bug/);
  });
});

describe("fencing tokens", () => {
  it("a write with a token lower than one already accepted for the key is refused, also after a delete", () => {
    const s = new KvStore();
    ok(s.applyCommand(put("job", "a", { fence: 5 })));
    ok(s.applyCommand(put("job", "b", { fence: 5 })));
    assert.deepEqual(s.applyCommand(put("job", "old", { fence: 4 })), {
      ok: false,
      code: "stale_token",
      revision: 2,
      fence: 5,
    });
    ok(s.applyCommand({ op: "del", key: "job", fence: 6 }));
    assert.equal(s.applyCommand(put("job", "old", { fence: 5 })).ok, false);
    ok(s.applyCommand(put("job", "new", { fence: 7 })));
    ok(s.applyCommand(put("job", "untokened")));
  });
});

describe("elections", () => {
  it("queues candidates by arrival; tokens grow with every leader; campaign is idempotent per lease", () => {
    const s = new KvStore();
    const a = grant(s);
    const b = grant(s);
    const ca = ok(s.applyCommand({ op: "campaign", name: "e", lease: a, value: '"a"' })).candidate!;
    const cb = ok(s.applyCommand({ op: "campaign", name: "e", lease: b, value: '"b"' })).candidate!;
    assert.equal(s.candidates("e")[0]!.lease, a);
    const again = ok(s.applyCommand({ op: "campaign", name: "e", lease: a, value: '"x"' })).candidate!;
    assert.deepEqual(again, ca);
    assert.equal(s.candidates("e").length, 2);
    // Only the leader may proclaim.
    assert.equal(s.applyCommand({ op: "proclaim", name: "e", lease: b, value: '"b2"' }).ok, false);
    ok(s.applyCommand({ op: "proclaim", name: "e", lease: a, value: '"a2"' }));
    assert.equal(s.candidates("e")[0]!.value, '"a2"');
    assert.equal(s.candidates("e")[0]!.createRevision, ca.createRevision, "proclaim keeps the token");
    // The leader's lease expires: the next in line leads with a higher token.
    ok(s.applyCommand({ op: "lease_expire", id: a, seq: 0 }));
    assert.equal(s.candidates("e")[0]!.lease, b);
    assert.ok(cb.createRevision > ca.createRevision);
    assert.equal(ok(s.applyCommand({ op: "resign", name: "e", lease: b })).removed, true);
    assert.equal(s.candidates("e").length, 0);
    assert.equal(ok(s.applyCommand({ op: "resign", name: "e", lease: b })).removed, false);
    // Campaigning anew gives a higher token than any earlier leader.
    const c = ok(s.applyCommand({ op: "campaign", name: "e", lease: b, value: '"b"' })).candidate!;
    assert.ok(c.createRevision > cb.createRevision);
    assert.equal(s.applyCommand({ op: "campaign", name: "e", lease: 99, value: "1" }).ok, false);
  });
});

describe("snapshots", () => {
  it("carry leases, fences, elections and idempotency keys", () => {
    const s = new KvStore();
    const a = grant(s);
    ok(s.applyCommand(put("k", 1, { lease: a, fence: 3 })));
    ok(s.applyCommand({ op: "campaign", name: "e", lease: a, value: "1", idem: "x" }));
    const t = new KvStore();
    const events: StoreEvent[] = [];
    t.subscribe((e) => events.push(e));
    t.restore([...s.snapshot()]);
    assert.deepEqual(events, [{ type: "reset", revision: s.revision }]);
    assert.deepEqual([...t.lease(a)!.keys], ["k"]);
    assert.deepEqual([...t.lease(a)!.elections], ["e"]);
    assert.equal(t.applyCommand(put("k", 2, { fence: 2 })).ok, false);
    assert.equal(grant(t), a + 1, "lease ids continue");
    assert.deepEqual(
      t.applyCommand({ op: "campaign", name: "zz", lease: a, value: "1", idem: "x" }),
      s.applyCommand({ op: "campaign", name: "zz", lease: a, value: "1", idem: "x" }),
    );
    ok(t.applyCommand({ op: "lease_revoke", id: a }));
    assert.equal(t.get("k"), undefined);
    assert.equal(t.candidates("e").length, 0);
  });
});

describe("watch history", () => {
  it("replays from a revision, filters by prefix, and reports compaction", () => {
    const s = new KvStore();
    const hub = new WatchHub(s, { maxEvents: 3 });
    let woken = 0;
    ok(s.applyCommand(put("a/1", 1)));
    ok(s.applyCommand(put("b/1", 1)));
    const c = hub.open("a/", 1, () => woken++);
    assert.equal(c.next()?.type, "put");
    assert.equal(c.next(), null);
    ok(s.applyCommand({ op: "del", key: "a/1" }));
    assert.equal(woken, 1);
    const e = c.next();
    assert.deepEqual(e, { type: "delete", key: "a/1", revision: 3 });
    ok(s.applyCommand(put("a/2", 1)));
    ok(s.applyCommand(put("a/3", 1)));
    assert.throws(
      () => hub.open("", 1, () => {}),
      (err: unknown) => err instanceof CompactedError && err.compactRevision === 3,
    );
    assert.equal(c.next()?.type, "put");
    // Falling out of the history while behind is a compaction too.
    const slow = hub.open("", 3, () => {});
    for (let i = 0; i < 5; i++) ok(s.applyCommand(put(`z${i}`, i)));
    assert.throws(() => slow.next(), CompactedError);
    // A snapshot install resets the history.
    const live = hub.open("", s.revision + 1, () => {});
    const t = new KvStore();
    ok(t.applyCommand(put("q", 1)));
    s.restore([...t.snapshot()]);
    assert.throws(() => live.next(), CompactedError);
    hub.stop();
  });
});
