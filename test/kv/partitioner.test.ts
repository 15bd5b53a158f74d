/**
 * The key → partition rule and partition-strided lease ids. The mapping is pinned: data already
 * lives where it says, so a change to it would be data loss, and these values must never change.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { encodeCommand, type KvResult } from "../../src/kv/commands.js";
import { formatPartitionRule, Partitioner, parsePartitionRule } from "../../src/kv/partitioner.js";
import { KvStore } from "../../src/kv/store.js";

describe("partitioner", () => {
  it("maps keys by FNV-1a of the key, modulo the count (pinned values)", () => {
    const p = new Partitioner(16);
    assert.deepEqual(
      ["a", "user42/name", "hello", "k1", "k2"].map((k) => p.of(k)),
      [12, 14, 11, 1, 8],
    );
    assert.equal(new Partitioner(1).of("anything"), 0);
    assert.equal(p.ofPrefix("user42/"), null, "with hash, a prefix's keys are spread");
    assert.equal(new Partitioner(1).ofPrefix(""), 0);
  });

  it("with prefix:/, a key up to its first '/' decides, so one user's keys share a partition", () => {
    const p = new Partitioner(16, parsePartitionRule("prefix:/"));
    assert.deepEqual(
      ["user42/name", "user42/email", "user42", "x/y/z", "x"].map((k) => p.of(k)),
      [0, 0, 0, 7, 7],
    );
    assert.equal(p.routingKey("user42/a/b"), "user42");
    assert.equal(p.ofPrefix("user42/"), p.of("user42/x"));
    assert.equal(p.ofPrefix("user42/na"), p.of("user42/x"));
    assert.equal(p.ofPrefix("user4"), null, "a prefix without the delimiter may span users");
    assert.equal(p.ofPrefix(""), null);
    assert.equal(formatPartitionRule(p.rule), "prefix:/");
  });

  it("refuses rules it does not know, and counts that are not positive integers", () => {
    for (const bad of ["", "prefix:", "prefix", "range:a-m", "HASH", "prefix:123456789"])
      assert.throws(() => parsePartitionRule(bad), /--partition-by must be 'hash' or 'prefix:D'/);
    assert.deepEqual(parsePartitionRule("hash"), { kind: "hash" });
    for (const bad of [0, -1, 1.5, Number.NaN]) assert.throws(() => new Partitioner(bad), RangeError);
  });

  it("a partition's lease ids say which partition holds them", async () => {
    for (const [index, count] of [
      [0, 1],
      [2, 4],
      [3, 4],
    ] as const) {
      const kv = new KvStore(undefined, { index, count });
      const ids: number[] = [];
      for (let i = 1; i <= 5; i++) {
        const r = (await kv.apply(encodeCommand({ op: "lease_grant", ttlMs: 5000 }))) as KvResult;
        assert.ok(r.ok);
        ids.push(r.lease!.id);
      }
      assert.equal(new Set(ids).size, 5);
      for (const id of ids) assert.equal(KvStore.leasePartition(id, count), index);
      if (count === 1) assert.deepEqual(ids, [1, 2, 3, 4, 5], "one partition: the ids of before");
    }
  });
});
