/**
 * The storage contract as tests: every Storage implementation (memory, disk on the real file
 * system, disk on the fault-injecting one) runs this same suite. With `reopen`, each check is made
 * again after closing and reopening, so what is durable is checked, not what is cached.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { CompactedError, LogUnavailableError } from "../../src/raft/storage.js";
import type { Configuration, Entry, SnapshotMetadata } from "../../src/raft/types.js";
import type { SaveBatch, Storage } from "../../src/storage/storage.js";

export interface StorageFactory {
  /** A brand-new storage whose initial configuration is `config`. */
  create(config: Configuration): Storage;
  /** Closes `s` and opens the same data again (durable implementations only). */
  reopen?(s: Storage): Storage;
}

const CONFIG: Configuration = { voters: ["a", "b", "c"], learners: [] };
const enc = new TextEncoder();

export function ent(index: number, term: number, text = `e${index}t${term}`): Entry {
  return { index, term, type: "normal", data: enc.encode(text) };
}

export function save(s: Storage, batch: Partial<SaveBatch>): Promise<void> {
  return new Promise((resolve, reject) =>
    s.save({ entries: [], snapshotChunks: [], ...batch }, (err) => (err ? reject(err) : resolve())),
  );
}

function texts(es: Entry[]): string[] {
  return es.map((e) => new TextDecoder().decode(e.data));
}

export function storageSuite(name: string, f: StorageFactory): void {
  const durable = (s: Storage): Storage => (f.reopen ? f.reopen(s) : s);

  describe(`storage contract: ${name}`, () => {
    it("a new storage is empty, with the initial configuration", () => {
      const s = f.create(CONFIG);
      assert.equal(s.firstIndex(), 1);
      assert.equal(s.lastIndex(), 0);
      assert.equal(s.term(0), 0);
      assert.deepEqual(s.initialState().config, CONFIG);
      assert.deepEqual(s.initialState().hardState, { term: 0, vote: null, commit: 0 });
      assert.equal(s.snapshotMetadata().index, 0);
      s.close();
    });

    it("saved entries and hard state are read back (and survive a reopen)", async () => {
      let s = f.create(CONFIG);
      await save(s, {
        entries: [ent(1, 1), ent(2, 1), ent(3, 2)],
        hardState: { term: 2, vote: "b", commit: 2 },
      });
      s = durable(s);
      assert.equal(s.lastIndex(), 3);
      assert.deepEqual([s.term(1), s.term(2), s.term(3)], [1, 1, 2]);
      assert.deepEqual(texts(s.entries(1, 4, 1 << 20)), ["e1t1", "e2t1", "e3t2"]);
      assert.deepEqual(s.initialState().hardState, { term: 2, vote: "b", commit: 2 });
      assert.deepEqual(s.hardState(), { term: 2, vote: "b", commit: 2 });
      s.close();
    });

    it("entries that conflict replace the stored suffix from their first index", async () => {
      let s = f.create(CONFIG);
      await save(s, { entries: [ent(1, 1), ent(2, 1), ent(3, 1), ent(4, 1)] });
      await save(s, { entries: [ent(3, 2), ent(4, 2, "new")] });
      await save(s, { entries: [ent(2, 3)] });
      s = durable(s);
      assert.equal(s.lastIndex(), 2);
      assert.deepEqual(texts(s.entries(1, 3, 1 << 20)), ["e1t1", "e2t3"]);
      assert.throws(() => s.term(3), LogUnavailableError);
      s.close();
    });

    it("an append that would leave a gap is refused and changes nothing", async () => {
      let s = f.create(CONFIG);
      await save(s, { entries: [ent(1, 1)] });
      await assert.rejects(save(s, { entries: [ent(3, 1)] }));
      s = durable(s);
      assert.equal(s.lastIndex(), 1);
      s.close();
    });

    it("entries() returns at least one entry and stops before maxBytes", async () => {
      const s = f.create(CONFIG);
      await save(s, { entries: [ent(1, 1, "x".repeat(100)), ent(2, 1, "y".repeat(100)), ent(3, 1)] });
      assert.equal(s.entries(1, 4, 1).length, 1);
      assert.equal(s.entries(1, 4, 260).length, 2);
      assert.equal(s.entries(2, 2, 100).length, 0);
      s.close();
    });

    it("a local snapshot, then compaction: earlier entries are gone, later ones remain", async () => {
      let s = f.create(CONFIG);
      const es = Array.from({ length: 20 }, (_, i) => ent(i + 1, 1));
      await save(s, { entries: es, hardState: { term: 1, vote: "a", commit: 20 } });
      const meta: SnapshotMetadata = { index: 15, term: 1, config: CONFIG };
      const data = enc.encode("state-at-15".repeat(50));
      s.writeSnapshot(meta, [data.subarray(0, 100), data.subarray(100)]);
      s.compact(12);
      s = durable(s);
      assert.deepEqual(s.snapshotMetadata(), meta);
      assert.equal(s.snapshotSize(), data.byteLength);
      assert.deepEqual(s.readSnapshot(0, 1 << 20), data);
      assert.deepEqual(s.readSnapshot(7, 5), data.subarray(7, 12));
      assert.ok(s.firstIndex() <= 16, "entries after the snapshot are kept");
      assert.equal(s.lastIndex(), 20);
      assert.deepEqual(texts(s.entries(16, 21, 1 << 20)), ["e16t1", "e17t1", "e18t1", "e19t1", "e20t1"]);
      assert.throws(() => s.entries(1, 3, 1 << 20), CompactedError);
      assert.equal(s.term(s.firstIndex() - 1), 1);
      s.close();
    });

    it("entries covered by the snapshot are never rewritten: such a save is refused and changes nothing", async () => {
      let s = f.create(CONFIG);
      await save(s, { entries: [ent(1, 1), ent(2, 1), ent(3, 1), ent(4, 1)] });
      s.writeSnapshot({ index: 3, term: 1, config: CONFIG }, [enc.encode("s")]);
      await assert.rejects(save(s, { entries: [ent(3, 2), ent(4, 2)] }), /covered by the snapshot/);
      s = durable(s);
      assert.equal(s.lastIndex(), 4);
      assert.equal(s.term(4), 1);
      s.close();
    });

    it("an older or foreign snapshot is refused, and compacting past the snapshot is refused", async () => {
      const s = f.create(CONFIG);
      await save(s, { entries: [ent(1, 1), ent(2, 1), ent(3, 1)] });
      s.writeSnapshot({ index: 2, term: 1, config: CONFIG }, [enc.encode("s")]);
      assert.throws(() => s.writeSnapshot({ index: 2, term: 1, config: CONFIG }, [enc.encode("s")]));
      assert.throws(() => s.writeSnapshot({ index: 9, term: 1, config: CONFIG }, [enc.encode("s")]));
      assert.throws(() => s.compact(3));
      assert.equal(s.snapshotMetadata().index, 2);
      s.close();
    });

    it("a snapshot received from the leader in chunks replaces the whole log", async () => {
      let s = f.create({ voters: [], learners: [] });
      await save(s, { entries: [ent(1, 1), ent(2, 1), ent(3, 1)] });
      const meta: SnapshotMetadata = { index: 50, term: 4, config: CONFIG };
      const data = enc.encode("leader-state".repeat(30));
      const chunk = (offset: number, end: number) => ({
        metadata: meta,
        offset,
        totalBytes: data.byteLength,
        data: data.subarray(offset, end),
        done: end >= data.byteLength,
      });
      await save(s, { snapshotChunks: [chunk(0, 100)] });
      await save(s, {
        snapshotChunks: [chunk(100, data.byteLength)],
        snapshot: meta,
        hardState: { term: 4, vote: null, commit: 50 },
      });
      await save(s, { entries: [ent(51, 4)] });
      s = durable(s);
      assert.deepEqual(s.snapshotMetadata(), meta);
      assert.deepEqual(s.readSnapshot(0, 1 << 20), data);
      assert.equal(s.firstIndex(), 51);
      assert.equal(s.lastIndex(), 51);
      assert.equal(s.term(50), 4);
      assert.deepEqual(s.initialState().config, CONFIG);
      s.close();
    });

    it("a snapshot chunk out of order is refused", async () => {
      const s = f.create(CONFIG);
      const meta: SnapshotMetadata = { index: 5, term: 1, config: CONFIG };
      const chunk = { metadata: meta, offset: 10, totalBytes: 20, data: new Uint8Array(10), done: true };
      await assert.rejects(save(s, { snapshotChunks: [chunk], snapshot: meta }));
      assert.equal(s.snapshotMetadata().index, 0);
      s.close();
    });
  });
}
