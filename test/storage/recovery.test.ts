/**
 * Crash safety of DiskStorage, proven on the fault-injecting file system: torn and zero-filled
 * tails are repaired (and said so), every other damage stops the node with the file and offset
 * named, a data directory of another node or cluster is refused, and — over many seeded crash
 * loops — every acknowledged write survives and nothing unacknowledged appears out of order.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { seededRandom } from "../../src/raft/random.js";
import type { Entry, HardState } from "../../src/raft/types.js";
import { DiskStorage, type DiskStorageOptions } from "../../src/storage/disk.js";
import { StorageError } from "../../src/storage/storage.js";
import { segmentName } from "../../src/storage/wal.js";
import { FaultFs } from "../lib/faultfs.js";
import { ent, save } from "./suite.js";

const CONFIG = { voters: ["a", "b", "c"], learners: [] };
const SEG = `/data/wal/${segmentName(1)}`;

function opts(
  fs: FaultFs,
  warnings: string[] = [],
  extra: Partial<DiskStorageOptions> = {},
): DiskStorageOptions {
  return {
    dir: "/data",
    nodeId: "a",
    clusterId: "c1",
    initialConfig: CONFIG,
    fs,
    logger: { warn: (m) => warnings.push(m) },
    ...extra,
  };
}

async function fiveEntries(fs: FaultFs): Promise<void> {
  const s = DiskStorage.open(opts(fs));
  await save(s, {
    entries: [1, 2, 3, 4, 5].map((i) => ent(i, 1)),
    hardState: { term: 1, vote: "a", commit: 3 },
  });
  s.close();
}

function storageError(code: string, pattern: RegExp) {
  return (e: unknown) => e instanceof StorageError && e.code === code && pattern.test(e.message);
}

describe("WAL recovery", () => {
  it("a tail torn at any byte of the last records is truncated and the log before it is intact", async () => {
    const probe = new FaultFs();
    await fiveEntries(probe);
    const full = probe.fileSize(SEG);
    // The batch ends with entry 5 (12-byte frame + 14-byte head + "e5t1") and the hard state (12 + 15 + "a").
    const hsStart = full - (12 + 15 + 1);
    const e5Start = hsStart - (12 + 14 + 4);
    for (let cut = full - 1; cut >= e5Start; cut--) {
      const fs = new FaultFs();
      await fiveEntries(fs);
      fs.cut(SEG, cut);
      const warnings: string[] = [];
      const s = DiskStorage.open(opts(fs, warnings));
      const boundary = cut === hsStart || cut === e5Start;
      assert.equal(s.lastIndex(), cut >= hsStart ? 5 : 4, `cut at ${cut}`);
      // The hard state record went with the tail: the one the segment started with remains.
      assert.deepEqual(s.hardState(), { term: 0, vote: null, commit: 0 }, `cut at ${cut}`);
      if (boundary) assert.equal(warnings.length, 0, `cut at ${cut} is a clean end`);
      else assert.match(warnings.join("\n"), /truncating a torn tail at offset/, `cut at ${cut}`);
      // The repaired log takes new writes, and they survive a reopen.
      await save(s, { entries: [ent(s.lastIndex() + 1, 2)] });
      const last = s.lastIndex();
      s.close();
      const again = DiskStorage.open(opts(fs));
      assert.equal(again.lastIndex(), last);
      assert.equal(again.term(last), 2);
      again.close();
    }
  });

  it("a zero-filled tail is truncated and said so", async () => {
    const fs = new FaultFs();
    await fiveEntries(fs);
    const fd = fs.open(SEG);
    fs.write(fd, new Uint8Array(4096), fs.size(fd));
    fs.syncNow(fd);
    const warnings: string[] = [];
    const s = DiskStorage.open(opts(fs, warnings));
    assert.equal(s.lastIndex(), 5);
    assert.match(warnings.join("\n"), /zero-filled tail/);
    s.close();
  });

  it("a flipped bit in the middle of the log stops the node, naming the file and offset", async () => {
    const fs = new FaultFs();
    await fiveEntries(fs);
    fs.corrupt(SEG, 90, 0x10);
    assert.throws(
      () => DiskStorage.open(opts(fs)),
      storageError("BALLOT_ERR_WAL_CORRUPT", /0000000000000001\.wal offset \d+: .*refusing to start/),
    );
  });

  it("a flipped bit in the last record is corruption too, not a torn write to drop quietly", async () => {
    const fs = new FaultFs();
    await fiveEntries(fs);
    fs.corrupt(SEG, fs.fileSize(SEG) - 2, 0x04);
    assert.throws(
      () => DiskStorage.open(opts(fs)),
      storageError("BALLOT_ERR_WAL_CORRUPT", /checksum mismatch/),
    );
  });

  it("a flipped bit in a record's length field is caught by the header checksum", async () => {
    const fs = new FaultFs();
    await fiveEntries(fs);
    // The first entry record follows the segment header and the hard state frame.
    const s = DiskStorage.open(opts(fs));
    s.close();
    const headerLen = 12 + 1 + 9 + 1 + 12;
    const hsLen = 12 + 15;
    fs.corrupt(SEG, headerLen + hsLen + 2, 0x80);
    assert.throws(
      () => DiskStorage.open(opts(fs)),
      storageError("BALLOT_ERR_WAL_CORRUPT", /header checksum/),
    );
  });

  it("damage in a segment that is not the last is corruption, whatever it looks like", async () => {
    const fs = new FaultFs();
    const s = DiskStorage.open(opts(fs, [], { segmentBytes: 200 }));
    for (let i = 1; i <= 30; i++) await save(s, { entries: [ent(i, 1)] });
    assert.ok(s.segmentSeqs().length > 2);
    s.close();
    fs.cut(`/data/wal/${segmentName(1)}`, fs.fileSize(`/data/wal/${segmentName(1)}`) - 3);
    assert.throws(
      () => DiskStorage.open(opts(fs, [], { segmentBytes: 200 })),
      storageError("BALLOT_ERR_WAL_CORRUPT", /not the last/),
    );
  });

  it("a missing segment in the middle is corruption", async () => {
    const fs = new FaultFs();
    const s = DiskStorage.open(opts(fs, [], { segmentBytes: 200 }));
    for (let i = 1; i <= 30; i++) await save(s, { entries: [ent(i, 1)] });
    s.close();
    fs.unlink(`/data/wal/${segmentName(2)}`);
    assert.throws(() => DiskStorage.open(opts(fs)), storageError("BALLOT_ERR_WAL_CORRUPT", /is missing/));
  });

  it("a damaged snapshot file stops the node, naming it", async () => {
    const fs = new FaultFs();
    const s = DiskStorage.open(opts(fs));
    await save(s, { entries: [1, 2, 3].map((i) => ent(i, 1)) });
    s.writeSnapshot({ index: 2, term: 1, config: CONFIG }, [new TextEncoder().encode("x".repeat(500))]);
    s.close();
    const snap = fs.list("/data/snap").find((n) => n.endsWith(".snap"))!;
    fs.corrupt(`/data/snap/${snap}`, 200, 0x01);
    assert.throws(
      () => DiskStorage.open(opts(fs)),
      storageError("BALLOT_ERR_SNAPSHOT_CORRUPT", new RegExp(snap)),
    );
  });

  it("a crash between installing a leader's snapshot and logging it: the log restarts from the snapshot, and stays readable after more writes and crashes", async () => {
    for (const contradicting of [false, true]) {
      // Completions held: the install's WAL record is never made durable before the crash.
      const held: (() => void)[] = [];
      const fs = new FaultFs({ schedule: (fn) => held.push(fn) });
      let s = DiskStorage.open(opts(fs));
      // The old log: 1..9 in term 1, or 1..45 in term 1 (contradicting a snapshot of term 4 at 40).
      const old = contradicting ? 45 : 9;
      const saved = save(s, { entries: Array.from({ length: old }, (_, i) => ent(i + 1, 1)) });
      for (const fn of held.splice(0)) fn();
      await saved;
      const meta = { index: 40, term: 4, config: CONFIG };
      const data = new TextEncoder().encode("leader state");
      s.save(
        {
          entries: [],
          snapshotChunks: [{ metadata: meta, offset: 0, totalBytes: data.byteLength, data, done: true }],
          snapshot: meta,
          hardState: { term: 4, vote: null, commit: 40 },
        },
        () => {},
      );
      fs.crash("lose");
      s = DiskStorage.open(opts(fs));
      assert.equal(s.firstIndex(), 41, `contradicting=${contradicting}`);
      assert.equal(s.lastIndex(), 40);
      // The leader sends on from the snapshot; a few entries, then another crash (all durable).
      const more = save(s, {
        entries: [ent(41, 4), ent(42, 4)],
        hardState: { term: 4, vote: null, commit: 42 },
      });
      for (const fn of held.splice(0)) fn();
      await more;
      fs.crash("lose");
      s = DiskStorage.open(opts(fs));
      assert.equal(s.firstIndex(), 41);
      assert.equal(s.lastIndex(), 42);
      assert.deepEqual(
        s.entries(41, 43, 1 << 20).map((e) => [e.index, e.term]),
        [
          [41, 4],
          [42, 4],
        ],
      );
      s.close();
    }
  });

  it("a data directory of another node or cluster, or of nobody, is refused", async () => {
    const fs = new FaultFs();
    await fiveEntries(fs);
    assert.throws(
      () => DiskStorage.open({ ...opts(fs), nodeId: "b" }),
      storageError("BALLOT_ERR_DATA_DIR_IDENTITY", /belongs to node 'a' of cluster 'c1'/),
    );
    assert.throws(
      () => DiskStorage.open({ ...opts(fs), clusterId: "c2" }),
      storageError("BALLOT_ERR_DATA_DIR_IDENTITY", /not node 'a' of cluster 'c2'/),
    );
    fs.unlink("/data/ballot.json");
    assert.throws(() => DiskStorage.open(opts(fs)), storageError("BALLOT_ERR_DATA_DIR", /no ballot\.json/));
  });

  it("compactToSnapshot keeps the configured number of entries behind the snapshot and removes older segments", async () => {
    const fs = new FaultFs();
    const s = DiskStorage.open(opts(fs, [], { segmentBytes: 300, trailingEntries: 10 }));
    for (let i = 1; i <= 60; i++) await save(s, { entries: [ent(i, 1)] });
    const before = s.segmentSeqs().length;
    s.writeSnapshot({ index: 50, term: 1, config: CONFIG }, [new TextEncoder().encode("s")]);
    assert.equal(s.compactToSnapshot(), 41);
    assert.ok(s.segmentSeqs().length < before, "whole segments below the kept entries are gone");
    s.close();
    const again = DiskStorage.open(opts(fs, [], { segmentBytes: 300, trailingEntries: 10 }));
    assert.equal(again.firstIndex(), 41);
    assert.equal(again.lastIndex(), 60);
    again.close();
  });

  it("memory stays bounded: the entry cache keeps within its budget and older entries are read back from disk", async () => {
    const fs = new FaultFs();
    const s = DiskStorage.open(opts(fs, [], { cacheBytes: 1024 }));
    const big = (i: number) => ent(i, 1, `${i}:${"x".repeat(200)}`);
    for (let i = 1; i <= 500; i += 10)
      await save(s, { entries: Array.from({ length: 10 }, (_, k) => big(i + k)) });
    assert.ok(s.cacheSize() <= 1024 + 10 * 210, `cache holds ${s.cacheSize()} bytes`);
    const all = s.entries(1, 501, 1 << 30);
    assert.equal(all.length, 500);
    assert.ok(all.every((e, k) => new TextDecoder().decode(e.data).startsWith(`${k + 1}:`)));
    s.close();
  });

  it("a failed fdatasync fails that save and every later one (the page cache cannot be trusted after it)", async () => {
    const fs = new FaultFs();
    const s = DiskStorage.open(opts(fs));
    await save(s, { entries: [ent(1, 1)] });
    fs.failSyncs = 1;
    await assert.rejects(save(s, { entries: [ent(2, 1)] }), /EIO/);
    await assert.rejects(save(s, { entries: [ent(3, 1)] }), /storage is stopped/);
    s.close();
  });
});

/** The recovered log and hard state must be the acknowledged state with a prefix of the later, unacknowledged records applied. */
interface Model {
  log: Entry[];
  hard: HardState;
}

function applyRecords(m: Model, recs: ({ e: Entry } | { h: HardState })[]): Model {
  const log = m.log.slice();
  let hard = m.hard;
  for (const r of recs) {
    if ("e" in r) {
      log.length = r.e.index - 1;
      log.push(r.e);
    } else hard = r.h;
  }
  return { log, hard };
}

describe("crash loops: acknowledged writes survive any crash", () => {
  const SEEDS = Number(process.env.BALLOT_CRASH_SEEDS ?? 150);
  it(`${SEEDS} seeded runs of writes, overwrites, snapshots and crashes (torn, zeroed, lost tails)`, async () => {
    for (let seed = 1; seed <= SEEDS; seed++) {
      const rand = seededRandom(seed);
      const fs = new FaultFs({ random: rand, schedule: (fn) => queueMicrotask(fn) });
      const o = opts(fs, [], { segmentBytes: 400 + Math.floor(rand() * 2000), cacheBytes: 64 });
      let s = DiskStorage.open(o);
      let acked: Model = { log: [], hard: { term: 0, vote: null, commit: 0 } };
      let term = 1;
      for (let round = 0; round < 12; round++) {
        const pending: ({ e: Entry } | { h: HardState })[][] = [];
        const waits: Promise<void>[] = [];
        let model = acked;
        const saves = 1 + Math.floor(rand() * 4);
        for (let k = 0; k < saves; k++) {
          const recs: ({ e: Entry } | { h: HardState })[] = [];
          const last = model.log.length;
          const from = rand() < 0.2 && last > 3 ? last - Math.floor(rand() * 3) : last + 1;
          if (from <= last) term++;
          const n = Math.floor(rand() * 5);
          // Like Raft, never rewrite what a snapshot covers (it is committed).
          const lowest = Math.max(s.firstIndex(), s.snapshotMetadata().index + 1);
          const entries = Array.from({ length: n }, (_, i) =>
            ent(Math.max(from, lowest) + i, term, `s${seed}r${round}k${k}i${i}`),
          );
          for (const e of entries) recs.push({ e });
          const hs = rand() < 0.5 ? { term, vote: rand() < 0.5 ? "a" : null, commit: 0 } : undefined;
          if (hs) recs.push({ h: hs });
          model = applyRecords(model, recs);
          pending.push(recs);
          const mySnapshot = model;
          waits.push(
            save(s, { entries, hardState: hs }).then(() => {
              acked = mySnapshot;
            }),
          );
        }
        // Let a random number of syncs complete, then maybe crash with the rest in flight.
        const settle = Math.floor(rand() * (saves + 1));
        for (let i = 0; i < settle; i++)
          await Promise.race([waits[i], new Promise((r) => setTimeout(r, 50))]);
        if (rand() < 0.6) {
          const before = acked;
          fs.crash();
          s = DiskStorage.open(o);
          const got: Model = {
            log: s.lastIndex() >= s.firstIndex() ? s.entries(s.firstIndex(), s.lastIndex() + 1, 1 << 30) : [],
            hard: s.hardState(),
          };
          const flat = pending.flat();
          const candidates = Array.from({ length: flat.length + 1 }, (_, j) =>
            applyRecords(before, flat.slice(0, j)),
          );
          const first = s.firstIndex();
          const matches = (c: Model): boolean =>
            c.log.length === s.lastIndex() &&
            got.log.every((e, i) => {
              const want = c.log[first - 1 + i];
              return want !== undefined && want.term === e.term && Buffer.compare(want.data, e.data) === 0;
            }) &&
            got.hard.term === c.hard.term &&
            got.hard.vote === c.hard.vote;
          const found = candidates.find(matches);
          assert.ok(
            found,
            `seed ${seed} round ${round}: recovered log (last ${s.lastIndex()}, hard ${JSON.stringify(got.hard)}) is not the acknowledged state (last ${before.log.length}) plus a prefix of the ${flat.length} later records`,
          );
          acked = found;
        } else {
          await Promise.all(waits);
        }
        if (rand() < 0.2 && s.lastIndex() >= s.firstIndex() + 3) {
          const at = s.lastIndex() - 2;
          if (at > s.snapshotMetadata().index) {
            s.writeSnapshot({ index: at, term: s.term(at), config: CONFIG }, [
              new TextEncoder().encode(`snap${at}`),
            ]);
            s.compact(at - 1);
          }
        }
      }
      s.close();
    }
  });
});
