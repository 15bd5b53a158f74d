/**
 * The shared WAL of a node's Raft groups: each group passes the storage contract over it; one
 * write and one fdatasync carry a batch of groups' saves; a segment goes only once every group has
 * compacted past it; the group count is fixed and checked; a tag that names no group is
 * corruption; and over seeded crash loops every group keeps every write it was told was durable.
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { seededRandom } from "../../src/raft/random.js";
import type { Entry } from "../../src/raft/types.js";
import { DiskStorage, type DiskStorageOptions } from "../../src/storage/disk.js";
import { framePayloads, tagged } from "../../src/storage/record.js";
import { SharedLog, type SharedLogOptions } from "../../src/storage/shared-log.js";
import { type Storage, StorageError } from "../../src/storage/storage.js";
import { segmentName } from "../../src/storage/wal.js";
import { FaultFs } from "../lib/faultfs.js";
import { ent, save, storageSuite } from "./suite.js";

const CONFIG = { voters: ["a", "b", "c"], learners: [] };
const quiet = { warn: () => {} };
const root = mkdtempSync(join(tmpdir(), "ballot-shared-"));
after(() => rmSync(root, { recursive: true, force: true }));

function opts(
  fs: FaultFs | undefined,
  groups: number,
  extra: Partial<DiskStorageOptions> = {},
): SharedLogOptions {
  return {
    dir: fs ? "/data" : join(root, `d${Math.random().toString(36).slice(2)}`),
    nodeId: "a",
    clusterId: "c1",
    initialConfig: CONFIG,
    fs,
    logger: quiet,
    groups,
    ...extra,
  };
}

function storageError(code: string, pattern: RegExp) {
  return (e: unknown) => e instanceof StorageError && e.code === code && pattern.test(e.message);
}

/** The storage contract on group `g` of a 4-group log, with the other groups writing alongside. */
function groupFactory(g: number, makeFs: () => FaultFs | undefined) {
  const logs = new Map<Storage, { log: SharedLog; o: SharedLogOptions }>();
  let n = 0;
  const open = (o: SharedLogOptions): Storage => {
    const log = SharedLog.open(o);
    // The neighbours' records sit between this group's in every segment.
    for (let k = 0; k < log.groups; k++) {
      if (k === g) continue;
      const s = log.group(k);
      s.save({ entries: [ent(s.lastIndex() + 1, 1, `neighbour ${k}`)], snapshotChunks: [] }, () => {});
    }
    const s = log.group(g);
    logs.set(s, { log, o });
    return s;
  };
  return {
    create(config: DiskStorageOptions["initialConfig"]): Storage {
      const fs = makeFs();
      return open({
        ...opts(fs, 4, { segmentBytes: 300, snapshotFrameBytes: 64, cacheBytes: 64 }),
        dir: fs ? `/d${++n}` : join(root, `g${g}-${++n}`),
        initialConfig: config,
      });
    },
    reopen(s: Storage): Storage {
      const { log, o } = logs.get(s)!;
      log.close();
      return open(o);
    },
  };
}

storageSuite(
  "a group of a shared WAL (group 0, untagged)",
  groupFactory(0, () => undefined),
);
storageSuite(
  "a group of a shared WAL (group 3, tagged)",
  groupFactory(3, () => undefined),
);
storageSuite(
  "a group of a shared WAL on FaultFs",
  groupFactory(2, () => new FaultFs()),
);

describe("shared WAL", () => {
  it("keeps each group's log, hard state and snapshot apart across a reopen", async () => {
    const fs = new FaultFs();
    const o = opts(fs, 3, { segmentBytes: 500 });
    let log = SharedLog.open(o);
    for (let i = 1; i <= 20; i++) {
      const g = i % 3;
      const s = log.group(g);
      await save(s, { entries: [ent(s.lastIndex() + 1, g + 1, `g${g}#${s.lastIndex() + 1}`)] });
    }
    await save(log.group(1), { hardState: { term: 2, vote: "b", commit: 3 } });
    const g2 = log.group(2);
    g2.writeSnapshot({ index: 4, term: 3, config: CONFIG }, [new TextEncoder().encode("state of g2")]);
    log.close();
    log = SharedLog.open(o);
    const text = (es: Entry[]) => es.map((e) => new TextDecoder().decode(e.data));
    assert.deepEqual(
      text(log.group(0).entries(1, 7, 1 << 20)),
      [1, 2, 3, 4, 5, 6].map((i) => `g0#${i}`),
    );
    assert.deepEqual(
      text(log.group(1).entries(1, 8, 1 << 20)),
      [1, 2, 3, 4, 5, 6, 7].map((i) => `g1#${i}`),
    );
    assert.equal(log.group(2).term(7), 3);
    assert.deepEqual(log.group(1).hardState(), { term: 2, vote: "b", commit: 3 });
    assert.deepEqual(log.group(0).hardState(), { term: 0, vote: null, commit: 0 });
    assert.equal(log.group(2).snapshotMetadata().index, 4);
    assert.equal(log.group(0).snapshotMetadata().index, 0);
    assert.equal(new TextDecoder().decode(log.group(2).readSnapshot(0, 100)), "state of g2");
    log.close();
  });

  it("one write and one fdatasync carry a batch of every group's saves", async () => {
    const fs = new FaultFs({ schedule: (fn) => setImmediate(fn) });
    const log = SharedLog.open({ ...opts(fs, 16), holdAfterSync: (release) => setImmediate(release) });
    const before = fs.syncs;
    const done: Promise<void>[] = [];
    log.batch(() => {
      for (let g = 0; g < 16; g++)
        done.push(save(log.group(g), { entries: [ent(1, 1)], hardState: { term: 1, vote: "a", commit: 0 } }));
    });
    await Promise.all(done);
    assert.equal(fs.syncs - before, 1);
    // Saves made from the continuations of a sync's callbacks (each group resuming its Ready
    // loop) are held to the next turn and leave together too.
    const before1 = fs.syncs;
    const next: Promise<void>[] = [];
    for (let g = 0; g < 16; g++) next.push(save(log.group(g), { entries: [ent(2, 1)] }));
    await Promise.all(next);
    const resumed = Array.from({ length: 16 }, (_, g) =>
      Promise.resolve().then(() => save(log.group(g), { entries: [ent(3, 1)] })),
    );
    await Promise.all(resumed);
    assert.equal(
      fs.syncs - before1,
      2,
      "one sync for the first 16 (a turn after the last), one for the resumed 16",
    );
    // Without batch(), on an idle WAL, the first save goes out alone and the rest ride the next sync together.
    await new Promise((r) => setImmediate(r));
    const before2 = fs.syncs;
    const more: Promise<void>[] = [];
    for (let g = 0; g < 16; g++) more.push(save(log.group(g), { entries: [ent(4, 1)] }));
    await Promise.all(more);
    assert.equal(fs.syncs - before2, 2);
    log.close();
  });

  it("a close while the next write is held back still writes what is staged (a compaction nobody waits on)", async () => {
    const fs = new FaultFs({ schedule: (fn) => setImmediate(fn) });
    const o = { ...opts(fs, 2), holdAfterSync: (release: () => void) => setImmediate(release) };
    const log = SharedLog.open(o);
    const g = log.group(1);
    await save(g, { entries: Array.from({ length: 10 }, (_, i) => ent(i + 1, 1)) });
    // The sync's callbacks just ran: the WAL holds writes to the next turn, and we close now.
    g.writeSnapshot({ index: 8, term: 1, config: CONFIG }, [new Uint8Array(1)]);
    g.compact(8);
    log.close();
    const again = SharedLog.open(o);
    assert.equal(again.group(1).firstIndex(), 9, "the compaction record reached the file");
    assert.equal(again.group(1).lastIndex(), 10);
    again.close();
  });

  it("deletes a segment only once every group has compacted past it", async () => {
    const fs = new FaultFs();
    const log = SharedLog.open(opts(fs, 2, { segmentBytes: 300, trailingEntries: 0 }));
    for (let i = 1; i <= 30; i++) {
      await save(log.group(0), { entries: [ent(i, 1)] });
      await save(log.group(1), { entries: [ent(i, 1)] });
    }
    const segs = log.segmentSeqs().length;
    assert.ok(segs >= 4, `${segs} segments`);
    const g0 = log.group(0);
    g0.writeSnapshot({ index: 30, term: 1, config: CONFIG }, [new Uint8Array(1)]);
    g0.compactToSnapshot();
    assert.equal(log.segmentSeqs().length, segs, "group 1 still needs every segment");
    const g1 = log.group(1);
    g1.writeSnapshot({ index: 30, term: 1, config: CONFIG }, [new Uint8Array(1)]);
    g1.compactToSnapshot();
    assert.equal(log.segmentSeqs().length, 1, "both groups are past the old segments");
    await new Promise((r) => setImmediate(r)); // the compaction records reach the disk (else the entries stay a while)
    log.close();
    const again = SharedLog.open(opts(fs, 2, { segmentBytes: 300 }));
    assert.equal(again.group(0).lastIndex(), 30);
    assert.equal(again.group(1).firstIndex(), 31);
    again.close();
  });

  it("the group count is fixed when the directory is created, and checked", () => {
    const fs = new FaultFs();
    SharedLog.open(opts(fs, 4)).close();
    assert.throws(
      () => SharedLog.open(opts(fs, 5)),
      storageError("BALLOT_ERR_DATA_DIR_IDENTITY", /created with 4 partitions, not 5/),
    );
    assert.throws(
      () => DiskStorage.open({ ...opts(fs, 1), fs }),
      storageError("BALLOT_ERR_DATA_DIR_IDENTITY", /created with 4 partitions, not 1.*--partitions 4/),
    );
    const one = new FaultFs();
    DiskStorage.open({ ...opts(one, 1), fs: one }).close();
    assert.throws(
      () => SharedLog.open(opts(one, 2)),
      storageError("BALLOT_ERR_DATA_DIR_IDENTITY", /created with 1 partition, not 2/),
    );
    SharedLog.open(opts(one, 1)).close(); // one group is the same directory either way
    assert.throws(() => SharedLog.open(opts(new FaultFs(), 0)), RangeError);
  });

  it("a record tagged with a group the directory does not have is corruption, named by file and offset", async () => {
    const fs = new FaultFs();
    const log = SharedLog.open(opts(fs, 2));
    await save(log.group(1), { entries: [ent(1, 1)] });
    log.close();
    // Append a well-framed record for group 9 at the end of the segment.
    const path = `/data/wal/${segmentName(1)}`;
    const size = fs.fileSize(path);
    const fd = fs.open(path);
    fs.write(fd, framePayloads([tagged(9, new Uint8Array([5, 1, 0, 0, 0, 0, 0]))]), size);
    fs.syncNow(fd);
    fs.close(fd);
    assert.throws(
      () => SharedLog.open(opts(fs, 2)),
      storageError(
        "BALLOT_ERR_WAL_CORRUPT",
        new RegExp(`segment 1 offset ${size}: a record of group 9, but the directory has 2`),
      ),
    );
    // And a one-group WAL never holds a tagged record.
    const one = new FaultFs();
    const s = DiskStorage.open({ ...opts(one, 1), fs: one });
    await save(s, { entries: [ent(1, 1)] });
    s.close();
    const at = one.fileSize(path);
    const fd2 = one.open(path);
    one.write(fd2, framePayloads([tagged(1, new Uint8Array([5, 1, 0, 0, 0, 0, 0]))]), at);
    one.syncNow(fd2);
    one.close(fd2);
    assert.throws(
      () => DiskStorage.open({ ...opts(one, 1), fs: one }),
      storageError("BALLOT_ERR_WAL_CORRUPT", /a record of group 1 in a one-group WAL/),
    );
  });

  it("crash loops: every group keeps every write it was told is durable", async () => {
    const SEEDS = Number(process.env.BALLOT_CRASH_SEEDS ?? 60);
    for (let seed = 1; seed <= SEEDS; seed++) {
      const rand = seededRandom(seed);
      const groups = 2 + Math.floor(rand() * 4);
      const fs = new FaultFs({ random: rand, schedule: (fn) => queueMicrotask(fn) });
      const o = opts(fs, groups, {
        segmentBytes: 300 + Math.floor(rand() * 1500),
        cacheBytes: 64,
        trailingEntries: 2,
      });
      let log = SharedLog.open(o);
      // Per group: what was acknowledged, and everything written (acknowledged or not), by index.
      const acked: number[] = Array(groups).fill(0);
      const written: Map<number, string>[] = Array.from({ length: groups }, () => new Map());
      for (let round = 0; round < 10; round++) {
        const waits: Promise<void>[] = [];
        log.batch(() => {
          const saves = 1 + Math.floor(rand() * 6);
          for (let k = 0; k < saves; k++) {
            const g = Math.floor(rand() * groups);
            const s = log.group(g);
            const from = s.lastIndex() + 1;
            const entries = Array.from({ length: 1 + Math.floor(rand() * 3) }, (_, i) =>
              ent(from + i, 1, `s${seed}r${round}g${g}i${from + i}`),
            );
            for (const e of entries) written[g]!.set(e.index, new TextDecoder().decode(e.data));
            const last = entries[entries.length - 1]!.index;
            waits.push(
              save(s, { entries }).then(
                () => {
                  acked[g] = Math.max(acked[g]!, last);
                },
                () => {}, // cut off by the crash below: never acknowledged
              ),
            );
          }
        });
        const settle = Math.floor(rand() * (waits.length + 1));
        for (let i = 0; i < settle; i++)
          await Promise.race([waits[i], new Promise((r) => setTimeout(r, 20))]);
        if (rand() < 0.3) {
          const g = Math.floor(rand() * groups);
          const s = log.group(g);
          const applied = Math.min(acked[g]!, s.lastIndex());
          if (applied > s.snapshotMetadata().index) {
            s.writeSnapshot({ index: applied, term: 1, config: CONFIG }, [new Uint8Array([g])]);
            s.compactToSnapshot();
          }
        }
        if (rand() < 0.6) {
          fs.crash();
          log = SharedLog.open(o);
          for (let g = 0; g < groups; g++) {
            const s = log.group(g);
            const why = `seed ${seed} round ${round} group ${g} (replay: BALLOT_CRASH_SEEDS=${seed})`;
            assert.ok(
              s.lastIndex() >= acked[g]!,
              `${why}: lost acknowledged entries (${s.lastIndex()} < ${acked[g]})`,
            );
            const from = Math.max(s.firstIndex(), 1);
            if (s.lastIndex() >= from) {
              for (const e of s.entries(from, s.lastIndex() + 1, 1 << 30))
                assert.equal(
                  new TextDecoder().decode(e.data),
                  written[g]!.get(e.index),
                  `${why}: entry ${e.index}`,
                );
            }
            // What the crash lost was never acknowledged: forget it, the group writes on from here.
            for (const i of [...written[g]!.keys()]) if (i > s.lastIndex()) written[g]!.delete(i);
          }
        }
      }
      log.close();
    }
  });
});
