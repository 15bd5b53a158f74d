/**
 * Transactions in the state machine: the branch the compares choose, each compare target and
 * operator, atomicity when a check refuses, revisions, watch events, limits, idempotency, and
 * the snapshot round trip.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  decodeCommand,
  encodeCommand,
  type KvCommand,
  type KvResult,
  LIMITS,
  type TxnCompare,
  type TxnOp,
  validateCommand,
} from "../../src/kv/commands.js";
import { KvStore, REMEMBERED_TXN_VALUE_BYTES, type StoreEvent } from "../../src/kv/store.js";
import { WatchHub } from "../../src/kv/watch-hub.js";

const j = JSON.stringify;
const put = (key: string, value: unknown, lease?: number): TxnOp => ({
  put: { key, value: j(value), ...(lease ? { lease } : {}) },
});
const del = (key: string): TxnOp => ({ delete: { key } });
const get = (key: string): TxnOp => ({ get: { key } });
const txn = (
  compare: TxnCompare[],
  success: TxnOp[],
  failure: TxnOp[] = [],
  extra: { fence?: number; idem?: string } = {},
): Extract<KvCommand, { op: "txn" }> => ({ op: "txn", compare, success, failure, ...extra });

function ok(r: KvResult): Extract<KvResult, { ok: true }> {
  assert.equal(r.ok, true, JSON.stringify(r));
  return r as Extract<KvResult, { ok: true }>;
}
/** Applies through the log's encoding, as a replica would. */
const apply = (s: KvStore, c: KvCommand): KvResult => s.apply(encodeCommand(c));

function seeded(): KvStore {
  const s = new KvStore();
  ok(s.applyCommand({ op: "put", key: "acct/a", value: "100" })); // rev 1
  ok(s.applyCommand({ op: "put", key: "acct/b", value: "100" })); // rev 2
  ok(s.applyCommand({ op: "put", key: "name", value: j("m") })); // rev 3
  ok(s.applyCommand({ op: "put", key: "acct/a", value: "100" })); // rev 4: a has version 2
  return s;
}

describe("transactions in the store", () => {
  it("run the success branch when every compare holds, the failure branch otherwise", () => {
    const s = seeded();
    const move = (expect: number) =>
      txn(
        [{ key: "acct/a", target: "value", op: "==", value: j(expect) }],
        [put("acct/a", expect - 40), put("acct/b", 140), get("acct/a")],
        [get("acct/a")],
      );
    const r1 = ok(apply(s, move(100)));
    assert.equal(r1.txn!.succeeded, true);
    assert.equal(r1.revision, 6, "two changes: revisions 5 and 6");
    assert.deepEqual(
      r1.txn!.results.map((x) => x.op),
      ["put", "put", "get"],
    );
    const seen = r1.txn!.results[2]!;
    assert.ok(seen.op === "get" && seen.kv?.value === "60", "a get sees the puts before it");
    assert.equal(s.get("acct/a")!.modRevision, 5);
    assert.equal(s.get("acct/b")!.modRevision, 6);
    const r2 = ok(apply(s, move(100)));
    assert.equal(r2.txn!.succeeded, false);
    assert.equal(r2.revision, 6, "the failure branch only read");
    assert.equal(s.get("acct/a")!.value, "60");
  });

  it("compare each target with each operator; a missing key counts as 0 and has no value", () => {
    const s = seeded(); // acct/a: value 100, createRevision 1, revision 4, version 2
    const holds = (c: TxnCompare): boolean => ok(apply(s, txn([c], [], []))).txn!.succeeded;
    const cases: [TxnCompare["target"], TxnCompare["op"], number | string, boolean][] = [
      ["version", "==", 2, true],
      ["version", "!=", 2, false],
      ["version", "<", 3, true],
      ["version", ">", 2, false],
      ["createRevision", "==", 1, true],
      ["createRevision", ">", 0, true],
      ["revision", "==", 4, true],
      ["revision", "<", 4, false],
      ["value", "==", j(100), true],
      ["value", "!=", j(100), false],
      ["value", "<", j(101), true],
      ["value", ">", j(99.5), true],
      ["value", ">", j("a"), false], // a number is not ordered against a string
    ];
    for (const [target, op, value, want] of cases)
      assert.equal(holds({ key: "acct/a", target, op, value }), want, `${target} ${op} ${value}`);
    assert.equal(holds({ key: "name", target: "value", op: "<", value: j("n") }), true, "strings order");
    for (const target of ["version", "createRevision", "revision"] as const)
      assert.equal(holds({ key: "nope", target, op: "==", value: 0 }), true, `missing ${target} is 0`);
    assert.equal(
      holds({ key: "nope", target: "value", op: "!=", value: j(1) }),
      false,
      "no value to compare",
    );
    assert.equal(holds({ key: "nope", target: "value", op: "==", value: j(null) }), false);
    assert.equal(s.revision, 4, "compares change nothing");
  });

  it("are whole or nothing: a stale fencing token or a missing lease refuses all of it", () => {
    const s = seeded();
    ok(s.applyCommand({ op: "put", key: "acct/b", value: "1", fence: 9 })); // rev 5, b's fence 9
    const before = [...s.snapshot()].map((c) => Buffer.from(c).toString()).join("");
    const events: StoreEvent[] = [];
    s.subscribe((e) => events.push(e));
    const stale = apply(s, txn([], [put("acct/a", 1), put("acct/b", 2)], [], { fence: 8 }));
    assert.deepEqual(stale, { ok: false, code: "stale_token", revision: 5, fence: 9 });
    const noLease = apply(s, txn([], [put("acct/a", 1), put("x", 2, 77)]));
    assert.deepEqual(noLease, { ok: false, code: "lease_not_found", revision: 5, lease: 77 });
    assert.deepEqual(events, [], "no change was emitted");
    assert.equal([...s.snapshot()].map((c) => Buffer.from(c).toString()).join(""), before);
    // A token at least as high is accepted, and raises every written key's fence.
    ok(apply(s, txn([], [put("acct/a", 1), del("acct/b")], [], { fence: 10 })));
    assert.deepEqual(apply(s, { op: "put", key: "acct/a", value: "0", fence: 9 }), {
      ok: false,
      code: "stale_token",
      revision: 7,
      fence: 10,
    });
  });

  it("tell watchers every change, one revision each, in order", () => {
    const s = seeded();
    const hub = new WatchHub(s);
    const cur = hub.open("acct/", 5, () => {});
    ok(apply(s, txn([], [put("acct/a", 1), del("acct/b"), put("acct/c", 3), get("acct/a")])));
    const got: string[] = [];
    for (let e = cur.next(); e; e = cur.next())
      got.push(e.type === "put" ? `put ${e.kv.key}@${e.kv.modRevision}` : `delete ${e.key}@${e.revision}`);
    assert.deepEqual(got, ["put acct/a@5", "delete acct/b@6", "put acct/c@7"]);
  });

  it("apply once per Idempotency-Key, and refuse the key for another transaction", () => {
    const s = seeded();
    const t = txn([], [put("acct/a", 5), get("name")], [], { idem: "k1" });
    const first = ok(apply(s, t));
    const again = ok(apply(s, t));
    assert.equal(s.revision, 5, "applied once");
    assert.equal(again.revision, first.revision);
    assert.equal(again.txn!.succeeded, true);
    const g = again.txn!.results[1]!;
    assert.ok(g.op === "get" && g.kv?.value === j("m"), "small get values are remembered");
    assert.deepEqual(apply(s, txn([], [put("acct/a", 6)], [], { idem: "k1" })), {
      ok: false,
      code: "idempotency_key_reused",
      revision: 5,
    });
    // A get too large to remember: the replay says its values are left out.
    const big = "x".repeat(REMEMBERED_TXN_VALUE_BYTES + 1);
    ok(apply(s, { op: "put", key: "big", value: j(big) }));
    const tb = txn([], [get("big")], [], { idem: "k2" });
    assert.equal(ok(apply(s, tb)).txn!.valuesOmitted, undefined);
    assert.equal(ok(apply(s, tb)).txn!.valuesOmitted, true);
  });

  it("survive a snapshot round trip with their remembered outcomes", () => {
    const s = seeded();
    const t = txn([], [put("acct/a", 5)], [], { idem: "k" });
    ok(apply(s, t));
    const copy = new KvStore();
    copy.restore(s.snapshot());
    assert.equal(ok(apply(copy, t)).revision, 5);
    assert.equal(copy.revision, 5, "the replay was recognised after restore");
  });

  it("refuse malformed or oversized transactions before they reach the log", () => {
    const big = j("y".repeat(LIMITS.txnValueBytes / 2));
    const bad: [unknown, RegExp][] = [
      [{ op: "txn", compare: [], success: [] }, /failure must be a list/],
      [
        txn(
          [],
          Array.from({ length: LIMITS.txnOps + 1 }, () => get("a")),
        ),
        /more than 128/,
      ],
      [txn([], [put("a", 1), del("a")]), /written twice/],
      [txn([], [{ put: { key: "", value: "1" } }]), /key is empty/],
      [txn([], [{ put: { key: "a", value: "1", extra: 1 } } as unknown as TxnOp]), /unknown field/],
      [txn([], [{ get: { key: "a" }, put: { key: "b", value: "1" } } as unknown as TxnOp]), /one of/],
      [txn([{ key: "a", target: "version", op: "==", value: "1" }], []), /non-negative integer/],
      [txn([{ key: "a", target: "value", op: "=~" as "==", value: "1" }], []), /op must be/],
      [txn([{ key: "a", target: "size" as "value", op: "==", value: "1" }], []), /target must be/],
      [txn([], [{ put: { key: "a", value: big } }, { put: { key: "b", value: big } }]), /bytes of values/],
      [txn([], [], [], { fence: -1 }), /fencing token/],
    ];
    for (const [c, why] of bad) assert.match(validateCommand(c) ?? "accepted", why, j(c).slice(0, 80));
    assert.throws(() => decodeCommand(encodeCommand(txn([], [put("a", 1), put("a", 2)]))), /written twice/);
    // Reads only, and no compares at all: both valid.
    assert.equal(validateCommand(txn([], [get("a")])), null);
  });
});
