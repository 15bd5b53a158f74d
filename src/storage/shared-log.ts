/**
 * A data directory shared by the Raft groups (partitions) of one node: one identity, one WAL whose
 * records are tagged with their group, one snapshot directory per group. Owns the group count
 * recorded in ballot.json (fixed at creation, checked like the cluster id), handing each replayed
 * record to its group, making one write and one fdatasync out of a batch of groups' saves, and
 * deleting a segment only once every group has compacted past it. Must never interpret a group's
 * records: each group's DiskStorage does, exactly as it does with a WAL of its own.
 *
 * Layout: ballot.json and wal/ as for one group; snap/ is group 0's snapshots, groups/<g>/snap/
 * group g's. Group 0's records carry no tag, so a one-group directory is the same either way.
 */
import { DiskStorage, type DiskStorageOptions } from "./disk.js";
import { type FileSystem, join, nodeFileSystem } from "./fs.js";
import { MAX_GROUP, untag } from "./record.js";
import { StorageError } from "./storage.js";
import { Wal } from "./wal.js";

export interface SharedLogOptions extends DiskStorageOptions {
  /** How many Raft groups share the directory (1 to 65,536). Fixed when the directory is created. */
  readonly groups: number;
  /** See WalOptions.holdAfterSync: how the running node lets every group's next save leave together. */
  readonly holdAfterSync?: (release: () => void) => void;
}

export class SharedLog {
  readonly dir: string;
  private readonly wal: Wal;
  private readonly storages: DiskStorage[];
  private closed = false;
  private readonly fs: FileSystem;

  private constructor(dir: string, wal: Wal, storages: DiskStorage[], fs: FileSystem) {
    this.fs = fs;
    this.dir = dir;
    this.wal = wal;
    this.storages = storages;
  }

  /**
   * Opens (or creates) the directory and recovers every group from the one WAL. Throws a
   * StorageError when the directory was created with another number of groups, belongs to another
   * node or cluster, or holds a record that no crash explains (a group tag out of range included).
   */
  static open(opts: SharedLogOptions): SharedLog {
    const groups = opts.groups;
    if (!Number.isInteger(groups) || groups < 1 || groups > MAX_GROUP + 1)
      throw new RangeError(`groups must be an integer from 1 to ${MAX_GROUP + 1}, not ${groups}`);
    const fs: FileSystem = opts.fs ?? nodeFileSystem;
    // Refuses a directory created with another group count, before anything else is read.
    const identity = DiskStorage.checkIdentity(fs, opts, groups);
    const logger = opts.logger ?? { warn: (m: string) => console.warn(`ballot storage: ${m}`) };
    const wal = new Wal(fs, join(opts.dir, "wal"), {
      segmentBytes: opts.segmentBytes,
      logger,
      holdAfterSync: opts.holdAfterSync,
    });
    // The entry cache is one budget for the node, not one per group: 1,000 idle groups hold little.
    const cacheBytes = Math.max(256 << 10, Math.floor((opts.cacheBytes ?? 64 << 20) / groups));
    const storages: DiskStorage[] = [];
    const log = new SharedLog(opts.dir, wal, storages, fs);
    for (let g = 0; g < groups; g++) {
      const snapDir = g === 0 ? join(opts.dir, "snap") : join(opts.dir, "groups", String(g), "snap");
      storages.push(
        DiskStorage.group({ ...opts, fs, logger, cacheBytes }, identity, {
          wal,
          group: g,
          snapDir,
          releaseSegments: () => log.releaseSegments(),
        }),
      );
    }
    wal.recover((payload, at) => {
      let group: number;
      let record: Uint8Array;
      try {
        ({ group, record } = untag(payload));
        if (group >= groups) throw new Error(`a record of group ${group}, but the directory has ${groups}`);
      } catch (e) {
        throw new StorageError(
          "BALLOT_ERR_WAL_CORRUPT",
          `WAL ${wal.dir} segment ${at.seq} offset ${at.offset}: ${(e as Error).message}; refusing to start`,
        );
      }
      storages[group]!.replayRecord(record, at);
    });
    for (const s of storages) s.finishRecovery();
    // Every segment starts with every group's hard state, so any older segment can go.
    wal.startFrames = () => storages.map((s) => s.startFrame());
    wal.ensureSegment();
    return log;
  }

  /** Whether `dir` already holds a node's identity. */
  static exists(dir: string, fs: FileSystem = nodeFileSystem): boolean {
    return DiskStorage.exists(dir, fs);
  }

  get groups(): number {
    return this.storages.length;
  }

  /** Group `g`'s storage: the full Storage contract, over the shared WAL. */
  group(g: number): DiskStorage {
    const s = this.storages[g];
    if (!s) throw new RangeError(`no group ${g} (the directory has ${this.storages.length})`);
    return s;
  }

  /**
   * Runs `fn` (which saves some groups' batches) with the WAL corked: everything it saves leaves
   * in one write and is made durable by one fdatasync, whose completion calls every save back.
   */
  batch<T>(fn: () => T): T {
    this.wal.cork();
    try {
      return fn();
    } finally {
      this.wal.uncork();
    }
  }

  /**
   * Records, once for every group, that this directory now belongs to a new cluster forced from
   * its old one (durably; see --force-new-cluster). Each group's forced entry is in its own log.
   */
  markForced(clusterId: string, forced: { index: number; term: number; from: string }): void {
    const identity = { ...this.group(0).identityRecord, clusterId, forced };
    DiskStorage.writeIdentity(this.fs, this.dir, identity);
    for (const s of this.storages) s.adoptIdentity(identity);
  }

  /** Deletes the segments that no group needs any more. */
  private releaseSegments(): void {
    let oldest = Number.POSITIVE_INFINITY;
    for (const s of this.storages) oldest = Math.min(oldest, s.firstNeededSegment());
    this.wal.removeBefore(oldest);
  }

  /** WAL segment numbers held (oldest first), for tests and metrics. */
  segmentSeqs(): number[] {
    return this.wal.segmentSeqs();
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const s of this.storages) s.close();
    this.wal.close();
  }
}
