/**
 * Durable storage for one node: the data directory's identity, the write-ahead log of entries and
 * hard state, snapshots, compaction, and the index that lets the core read any held entry. Owns
 * the meaning of WAL records and recovery. Must never decide anything Raft decides.
 *
 * Memory stays bounded: per held entry only its term and position are kept; entry data lives in a
 * cache of recent entries (by bytes) and older entries are read back from their segment on demand.
 *
 * Layout of a data directory:
 *   ballot.json   identity (cluster id, node id) and the initial configuration, written once
 *   wal/          numbered segments of framed records (see wal.ts, record.ts)
 *   snap/         snapshot files (see snapshots.ts)
 */
import { CompactedError, type InitialState, LogUnavailableError } from "../raft/storage.js";
import {
  type Configuration,
  checkConfig,
  type Entry,
  type HardState,
  plainConfig,
  type SnapshotMetadata,
} from "../raft/types.js";
import { type FileSystem, join, nodeFileSystem } from "./fs.js";
import {
  decodeCompact,
  decodeEntry,
  decodeHardState,
  decodeReset,
  encodeCompact,
  encodeHardState,
  encodeReset,
  entryFrameSize,
  FRAME_HEADER,
  framePayloads,
  KIND_COMPACT,
  KIND_ENTRY,
  KIND_HARDSTATE,
  KIND_RESET,
  readFrame,
  tagged,
  untag,
  writeEntryFrame,
  writeFrame,
} from "./record.js";
import { SnapshotStore } from "./snapshots.js";
import { type SaveBatch, type SaveCallback, type Storage, StorageError } from "./storage.js";
import { type Placement, Wal, type WalLogger } from "./wal.js";

export interface DiskStorageOptions {
  readonly dir: string;
  readonly nodeId: string;
  readonly clusterId: string;
  /**
   * For a data directory that already belongs to this node but records another cluster id: whether
   * to adopt the stored one (membership changed since the directory was created). Default: refuse.
   */
  readonly adoptCluster?: (storedClusterId: string) => boolean;
  /** The configuration a brand-new data directory starts with (the initial members; empty for a joining node). */
  readonly initialConfig: Configuration;
  readonly fs?: FileSystem;
  /** WAL segment size. Default 64 MiB. */
  readonly segmentBytes?: number;
  /** Bytes of recent entry data kept in memory. Default 64 MiB. */
  readonly cacheBytes?: number;
  /** Snapshot frame size (the unit of checksums and of reads by offset). Default 1 MiB. */
  readonly snapshotFrameBytes?: number;
  /** Entries kept behind the snapshot by compactToSnapshot(), so slow followers catch up from the log, not a snapshot. Default 5000. */
  readonly trailingEntries?: number;
  readonly logger?: WalLogger;
  /** A partitioned cluster's key rule, recorded with the group count and checked like it (see SharedLog). */
  readonly partitionBy?: string;
}

/** @internal What ballot.json records (see SharedLog for `groups`). */
export interface Identity {
  format: "ballot-data";
  version: 1;
  clusterId: string;
  nodeId: string;
  initialConfig: Configuration;
  /** Raft groups sharing this directory's WAL (absent: 1). Fixed when the directory is created. */
  groups?: number;
  /** A partitioned cluster's rule mapping keys to groups (absent: hash). Fixed with `groups`. */
  partitionBy?: string;
  /** Set when --force-new-cluster made this data directory a new cluster: where, and from which. */
  forced?: { index: number; term: number; from: string };
}

/**
 * @internal How one group of a shared WAL reaches it (see shared-log.ts): the log itself, the
 * group's tag, where its snapshots live, and the owner that deletes a segment only once no group
 * needs it.
 */
export interface SharedGroup {
  readonly wal: Wal;
  readonly group: number;
  readonly snapDir: string;
  releaseSegments(): void;
}

const IDENTITY_FILE = "ballot.json";

export class DiskStorage implements Storage {
  private readonly fs: FileSystem;
  readonly dir: string;
  private readonly wal: Wal;
  private readonly snapshots: SnapshotStore;
  private readonly cacheLimit: number;
  private readonly trailingEntries: number;
  private readonly initialConfig: Configuration;
  private readonly logger: WalLogger;
  private identity: Identity;
  /** This storage's group in a shared WAL (0 when it has the WAL to itself). */
  readonly group: number;
  private readonly shared: SharedGroup | null;

  /** The cluster this data directory belongs to (as recorded in it). */
  get clusterId(): string {
    return this.identity.clusterId;
  }

  /** Index of the entry before the first one held, and its term. */
  private base = 0;
  private baseTerm = 0;
  /** During replay: whether `base` was set by a reset record (else the first entry seen sets it provisionally). */
  private baseFromReset = false;
  /**
   * A reset to the snapshot that recovery made but the WAL does not record (a crash after a
   * snapshot was installed and before its reset record was durable, or logged entries that
   * contradict the snapshot): the next write logs it first, or the next replay would read the
   * new entries as following the old log (a gap, or old entries outliving the reset).
   */
  private pendingReset: { index: number; term: number } | null = null;
  private replayStarted = false;
  /** Per held entry (position i − base − 1): term, segment and offset (−1 until written). */
  private terms: number[] = [];
  private segs: number[] = [];
  private offs: number[] = [];
  private cache: (Entry | undefined)[] = [];
  private cachedBytes = 0;
  /** Lowest position that may still be cached. */
  private cacheFrom = 0;
  private hard: HardState = { term: 0, vote: null, commit: 0 };
  /** The last hard state handed to the WAL: every new segment starts with it. */
  private writtenHard: HardState = this.hard;
  private closed = false;

  private constructor(opts: DiskStorageOptions, identity: Identity, shared: SharedGroup | null = null) {
    this.fs = opts.fs ?? nodeFileSystem;
    this.dir = opts.dir;
    this.cacheLimit = opts.cacheBytes ?? 64 << 20;
    this.trailingEntries = opts.trailingEntries ?? 5000;
    this.initialConfig = identity.initialConfig;
    this.identity = identity;
    this.logger = opts.logger ?? { warn: (m) => console.warn(`ballot storage: ${m}`) };
    this.shared = shared;
    this.group = shared?.group ?? 0;
    this.wal =
      shared?.wal ??
      new Wal(this.fs, join(opts.dir, "wal"), {
        segmentBytes: opts.segmentBytes,
        logger: this.logger,
      });
    this.snapshots = new SnapshotStore(
      this.fs,
      shared?.snapDir ?? join(opts.dir, "snap"),
      opts.snapshotFrameBytes,
    );
  }

  /**
   * Opens (or creates) a data directory and recovers it: verifies every checksum, truncates a torn
   * WAL tail (saying so), and throws a StorageError with a one-line reason naming the file and
   * offset for corruption, or when the directory belongs to another node or cluster.
   */
  static open(opts: DiskStorageOptions): DiskStorage {
    const fs = opts.fs ?? nodeFileSystem;
    const identity = DiskStorage.checkIdentity(fs, opts);
    const s = new DiskStorage(opts, identity);
    s.recover();
    return s;
  }

  /**
   * @internal One group of a shared WAL, not yet recovered: the SharedLog replays the log into
   * every group (replayRecord) and then finishes each one's recovery.
   */
  static group(opts: DiskStorageOptions, identity: Identity, shared: SharedGroup): DiskStorage {
    const s = new DiskStorage(opts, identity, shared);
    s.snapshots.open();
    return s;
  }

  /** Whether `dir` already holds a node's identity (so it is not a brand-new data directory). */
  static exists(dir: string, fs: FileSystem = nodeFileSystem): boolean {
    return fs.exists(join(dir, IDENTITY_FILE));
  }

  /** @internal Reads (or, for a new directory, writes) ballot.json and checks it is this node's. */
  static checkIdentity(fs: FileSystem, opts: DiskStorageOptions, groups = 1): Identity {
    fs.mkdirp(opts.dir);
    const path = join(opts.dir, IDENTITY_FILE);
    if (fs.exists(path)) {
      let id: Identity;
      try {
        id = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(fs.readFile(path))) as Identity;
        if (
          id.format !== "ballot-data" ||
          typeof id.nodeId !== "string" ||
          typeof id.clusterId !== "string"
        ) {
          throw new Error("not a Ballot identity file");
        }
        id.initialConfig = checkConfig(id.initialConfig, "initial configuration");
        if (id.groups !== undefined && (!Number.isInteger(id.groups) || id.groups < 1 || id.groups > 0x10000))
          throw new Error(`groups must be an integer from 1 to 65536, not ${JSON.stringify(id.groups)}`);
        if (id.partitionBy !== undefined && typeof id.partitionBy !== "string")
          throw new Error("partitionBy must be a string");
      } catch (e) {
        throw new StorageError(
          "BALLOT_ERR_DATA_DIR",
          `${path}: unreadable (${(e as Error).message}); refusing to start`,
        );
      }
      if (id.version !== 1)
        throw new StorageError(
          "BALLOT_ERR_DATA_DIR",
          `${path}: unsupported data format version ${id.version}`,
        );
      const held = id.groups ?? 1;
      if (id.nodeId === opts.nodeId && held !== groups) {
        // Said before the cluster id, which differs too (the partition count is part of it).
        throw new StorageError(
          "BALLOT_ERR_DATA_DIR_IDENTITY",
          `data directory ${opts.dir} was created with ${held} partition${held === 1 ? "" : "s"}, not ${groups}; the partition count is fixed when a cluster is created (start it with --partitions ${held})`,
        );
      }
      const rule = id.partitionBy ?? "hash";
      if (id.nodeId === opts.nodeId && groups > 1 && rule !== (opts.partitionBy ?? "hash")) {
        throw new StorageError(
          "BALLOT_ERR_DATA_DIR_IDENTITY",
          `data directory ${opts.dir} was created with --partition-by ${rule}, not ${opts.partitionBy ?? "hash"}; the rule is fixed when a cluster is created`,
        );
      }
      if (
        id.nodeId !== opts.nodeId ||
        (id.clusterId !== opts.clusterId && !opts.adoptCluster?.(id.clusterId))
      ) {
        throw new StorageError(
          "BALLOT_ERR_DATA_DIR_IDENTITY",
          `data directory ${opts.dir} belongs to node '${id.nodeId}' of cluster '${id.clusterId}', not node '${opts.nodeId}' of cluster '${opts.clusterId}'`,
        );
      }
      return id;
    }
    const leftovers = fs.list(opts.dir).filter((n) => n !== "wal" && n !== "snap" && !n.startsWith("."));
    const hasData = fs.list(join(opts.dir, "wal")).length > 0 || fs.list(join(opts.dir, "snap")).length > 0;
    if (hasData || leftovers.some((n) => n.endsWith(".wal") || n.endsWith(".snap"))) {
      throw new StorageError(
        "BALLOT_ERR_DATA_DIR",
        `data directory ${opts.dir} holds data but no ${IDENTITY_FILE}; refusing to guess whose it is`,
      );
    }
    const id: Identity = {
      format: "ballot-data",
      version: 1,
      clusterId: opts.clusterId,
      nodeId: opts.nodeId,
      initialConfig: plainConfig(opts.initialConfig),
      ...(groups > 1 ? { groups } : {}),
      ...(groups > 1 && opts.partitionBy && opts.partitionBy !== "hash"
        ? { partitionBy: opts.partitionBy }
        : {}),
    };
    DiskStorage.writeIdentity(fs, opts.dir, id);
    return id;
  }

  /** @internal Writes ballot.json durably (SharedLog.markForced uses it too). */
  static writeIdentity(fs: FileSystem, dir: string, id: Identity): void {
    const path = join(dir, IDENTITY_FILE);
    const tmp = `${path}.tmp`;
    if (fs.exists(tmp)) fs.unlink(tmp);
    const fd = fs.create(tmp);
    fs.write(fd, new TextEncoder().encode(`${JSON.stringify(id, null, 2)}\n`), 0);
    fs.syncNow(fd);
    fs.close(fd);
    fs.rename(tmp, path);
    fs.syncDir(dir);
  }

  /** Where --force-new-cluster made this directory a new cluster, if it did. */
  get forced(): { index: number; term: number; from: string } | undefined {
    return this.identity.forced;
  }

  /** Records that this directory now belongs to a new cluster, forced from its old one (durably). */
  markForced(clusterId: string, forced: { index: number; term: number; from: string }): void {
    if (this.shared) {
      throw new StorageError(
        "BALLOT_ERR_DATA_DIR",
        "--force-new-cluster applies to a one-group data directory",
      );
    }
    this.identity = { ...this.identity, clusterId, forced };
    DiskStorage.writeIdentity(this.fs, this.dir, this.identity);
  }

  /** @internal A shared directory's owner rewrote ballot.json (SharedLog.markForced): this group's view of it. */
  adoptIdentity(identity: Identity): void {
    this.identity = identity;
  }

  /** @internal The identity this storage holds (SharedLog.markForced rewrites it for every group). */
  get identityRecord(): Identity {
    return this.identity;
  }

  private recover(): void {
    this.snapshots.open();
    this.wal.recover((payload, at) => {
      let record: Uint8Array;
      try {
        const u = untag(payload);
        if (u.group !== 0) throw new Error(`a record of group ${u.group} in a one-group WAL`);
        record = u.record;
      } catch (e) {
        throw new StorageError(
          "BALLOT_ERR_WAL_CORRUPT",
          `WAL ${this.wal.dir} segment ${at.seq} offset ${at.offset}: ${(e as Error).message}; refusing to start`,
        );
      }
      this.replayRecord(record, at);
    });
    this.finishRecovery();
    this.wal.startFrames = () => [encodeHardState(this.writtenHard)];
    this.wal.ensureSegment();
  }

  /** @internal After replay: lines the log up with the snapshot and checks the hard state against it. */
  finishRecovery(): void {
    this.alignWithSnapshot(this.snapshotMetadata());
    if (this.hard.commit > this.lastIndex()) {
      throw new StorageError(
        "BALLOT_ERR_WAL_CORRUPT",
        `WAL ${this.wal.dir}: hard state commits index ${this.hard.commit} but the log ends at ${this.lastIndex()}; refusing to start`,
      );
    }
    this.writtenHard = this.hard;
  }

  /** @internal The hard-state record a new segment starts with for this group (so older segments can go). */
  startFrame(): Uint8Array {
    return tagged(this.group, encodeHardState(this.writtenHard));
  }

  /** @internal Oldest segment this group still needs (its first held entry's, else the current one). */
  firstNeededSegment(): number {
    return this.terms.length > 0 && this.segs[0]! >= 0 ? this.segs[0]! : this.wal.currentSeq();
  }

  /** @internal Replays one record of this group (its tag already taken off). */
  replayRecord(payload: Uint8Array, at: Placement): void {
    const where = () => `WAL ${this.wal.dir} segment ${at.seq} offset ${at.offset}`;
    try {
      switch (payload[0]) {
        case KIND_ENTRY: {
          const e = decodeEntry(payload);
          if (!this.replayStarted) {
            // Older segments may have been removed by compaction: the log starts where the WAL does.
            this.replayStarted = true;
            this.base = e.index - 1;
            this.baseTerm = -1;
          }
          if (e.index <= this.base) {
            if (this.baseFromReset) return; // covered by the installed snapshot
            // The segment kept after compaction began with entries that this one overwrites: they were dead.
            this.resetTo(e.index - 1, -1);
          }
          const pos = e.index - this.base - 1;
          if (pos > this.terms.length) {
            throw new Error(`entry ${e.index} follows ${this.lastIndex()}: entries are missing`);
          }
          this.truncateTo(pos);
          this.terms.push(e.term);
          this.segs.push(at.seq);
          this.offs.push(at.offset);
          this.cache.push(undefined);
          return;
        }
        case KIND_HARDSTATE:
          this.hard = decodeHardState(payload);
          return;
        case KIND_COMPACT: {
          const index = decodeCompact(payload);
          if (index > this.base && index <= this.lastIndex()) this.dropBelow(index);
          return;
        }
        case KIND_RESET: {
          const r = decodeReset(payload);
          this.resetTo(r.index, r.term);
          this.replayStarted = true;
          this.baseFromReset = true;
          return;
        }
        default:
          throw new Error(`unknown record kind ${payload[0]}`);
      }
    } catch (e) {
      if (e instanceof StorageError) throw e;
      throw new StorageError(
        "BALLOT_ERR_WAL_CORRUPT",
        `${where()}: ${(e as Error).message}; refusing to start`,
      );
    }
  }

  /**
   * After replay: the snapshot covers everything up to its index. The log must continue it without
   * a gap; logged entries that contradict it (a crash between installing a leader's snapshot and
   * logging that) are another history and are dropped.
   */
  private alignWithSnapshot(snap: SnapshotMetadata): void {
    const fail = (why: string): never => {
      throw new StorageError("BALLOT_ERR_WAL_CORRUPT", `WAL ${this.wal.dir}: ${why}; refusing to start`);
    };
    if (this.terms.length === 0 && !this.baseFromReset) {
      this.resetTo(snap.index, snap.term);
      return;
    }
    if (snap.index < this.base) {
      if (this.baseFromReset)
        fail(
          `a snapshot install at index ${this.base} is logged, but the newest snapshot is at ${snap.index}`,
        );
      fail(
        `the log starts at entry ${this.base + 1} but the snapshot ends at ${snap.index}: entries are missing`,
      );
    }
    if (snap.index === this.base) {
      if (this.baseTerm >= 0 && this.baseTerm !== snap.term) this.resetToSnapshot(snap);
      else this.baseTerm = snap.term;
      return;
    }
    if (snap.index <= this.lastIndex() && this.terms[snap.index - this.base - 1] === snap.term) {
      // The log agrees with the snapshot: keep it whole, trailing entries included (slow followers read them).
    } else {
      this.resetToSnapshot(snap);
    }
  }

  private resetToSnapshot(snap: SnapshotMetadata): void {
    this.resetTo(snap.index, snap.term);
    this.pendingReset = { index: snap.index, term: snap.term };
  }

  private truncateTo(pos: number): void {
    if (pos >= this.terms.length) return;
    for (let i = pos; i < this.cache.length; i++) {
      const c = this.cache[i];
      if (c) this.cachedBytes -= c.data.byteLength;
    }
    this.terms.length = pos;
    this.segs.length = pos;
    this.offs.length = pos;
    this.cache.length = pos;
    if (this.cacheFrom > pos) this.cacheFrom = pos;
  }

  private resetTo(index: number, term: number): void {
    this.base = index;
    this.baseTerm = term;
    this.terms = [];
    this.segs = [];
    this.offs = [];
    this.cache = [];
    this.cachedBytes = 0;
    this.cacheFrom = 0;
  }

  /** Forgets entries up to and including `index` (≤ lastIndex). */
  private dropBelow(index: number): void {
    const n = index - this.base;
    if (n <= 0) return;
    this.baseTerm = this.terms[n - 1]!;
    for (let i = 0; i < n && i < this.cache.length; i++) {
      const c = this.cache[i];
      if (c) this.cachedBytes -= c.data.byteLength;
    }
    this.terms.splice(0, n);
    this.segs.splice(0, n);
    this.offs.splice(0, n);
    this.cache.splice(0, n);
    this.cacheFrom = Math.max(0, this.cacheFrom - n);
    this.base = index;
  }

  // ---------------------------------------------------------------- LogStorage (read side)

  initialState(): InitialState {
    return { hardState: this.hard, config: this.snapshotMetadata().config };
  }

  firstIndex(): number {
    return this.base + 1;
  }

  lastIndex(): number {
    return this.base + this.terms.length;
  }

  term(index: number): number {
    if (index === this.base) return this.baseTerm;
    if (index < this.base) throw new CompactedError(index, this.base + 1);
    if (index > this.lastIndex()) throw new LogUnavailableError(index, this.lastIndex());
    return this.terms[index - this.base - 1]!;
  }

  entries(lo: number, hi: number, maxBytes: number): Entry[] {
    if (lo <= this.base) throw new CompactedError(lo, this.base + 1);
    if (hi > this.lastIndex() + 1) throw new LogUnavailableError(hi - 1, this.lastIndex());
    const out: Entry[] = [];
    let size = 0;
    for (let i = lo; i < hi; i++) {
      const e = this.entryAt(i);
      size += e.data.byteLength + 24;
      if (out.length > 0 && size > maxBytes) break;
      out.push(e);
    }
    return out;
  }

  private entryAt(index: number): Entry {
    const pos = index - this.base - 1;
    const cached = this.cache[pos];
    if (cached) return cached;
    const seq = this.segs[pos]!;
    const off = this.offs[pos]!;
    const head = this.wal.read(seq, off, FRAME_HEADER);
    const len =
      head.byteLength === FRAME_HEADER ? new DataView(head.buffer, head.byteOffset).getUint32(0, true) : 0;
    const bytes = this.wal.read(seq, off, FRAME_HEADER + len);
    const r = readFrame(bytes, 0);
    if (r.kind !== "ok") {
      throw new StorageError(
        "BALLOT_ERR_WAL_CORRUPT",
        `WAL ${this.wal.dir} segment ${seq} offset ${off}: entry ${index} unreadable`,
      );
    }
    let rec: ReturnType<typeof decodeEntry>;
    try {
      const u = untag(r.payload);
      if (u.group !== this.group) throw new Error(`record of group ${u.group}`);
      rec = decodeEntry(u.record);
    } catch (e) {
      throw new StorageError(
        "BALLOT_ERR_WAL_CORRUPT",
        `WAL ${this.wal.dir} segment ${seq} offset ${off}: entry ${index} unreadable (${(e as Error).message})`,
      );
    }
    if (rec.index !== index || rec.term !== this.terms[pos]) {
      throw new StorageError(
        "BALLOT_ERR_WAL_CORRUPT",
        `WAL ${this.wal.dir} segment ${seq} offset ${off}: expected entry ${index}`,
      );
    }
    return { index: rec.index, term: rec.term, type: rec.type, data: rec.data };
  }

  snapshotMetadata(): SnapshotMetadata {
    return this.snapshots.metadata() ?? { index: 0, term: 0, config: this.initialConfig };
  }

  snapshotSize(): number {
    return this.snapshots.size();
  }

  readSnapshot(offset: number, maxBytes: number): Uint8Array {
    return this.snapshots.read(offset, maxBytes);
  }

  hardState(): HardState {
    return this.hard;
  }

  // ---------------------------------------------------------------- writes

  save(batch: SaveBatch, done: SaveCallback): void {
    if (this.closed) {
      done(new StorageError("BALLOT_ERR_CLOSED", "storage is closed"));
      return;
    }
    let size = 0;
    let head: Uint8Array | null = null;
    let hs: Uint8Array | null = null;
    const written: { pos: number; entry: Entry; rel: number }[] = [];
    let hard: HardState | null = null;
    try {
      for (const c of batch.snapshotChunks) this.snapshots.receive(c.metadata, c.offset, c.data);
      if (batch.snapshot) {
        const meta = batch.snapshot;
        this.snapshots.installReceived(meta);
        this.resetTo(meta.index, meta.term);
        head = framePayloads([tagged(this.group, encodeReset({ index: meta.index, term: meta.term }))]);
        size += head.byteLength;
        this.pendingReset = null;
      }
      const entries = batch.entries;
      const snapIndex = this.snapshotMetadata().index;
      if (entries.length > 0 && entries[0]!.index <= Math.max(snapIndex, this.base)) {
        throw new StorageError(
          "BALLOT_ERR_LOG_REWRITE",
          `entry ${entries[0]!.index} is covered by the snapshot at ${snapIndex}: committed entries are never replaced`,
        );
      }
      for (const e of entries) size += entryFrameSize(e.data.byteLength, this.group);
      hs = batch.hardState ? tagged(this.group, encodeHardState(batch.hardState)) : null;
      if (hs) size += FRAME_HEADER + hs.byteLength;
      if (size === 0) {
        done(null);
        return;
      }
      if (this.pendingReset) {
        head = framePayloads([tagged(this.group, encodeReset(this.pendingReset))]);
        size += head.byteLength;
        this.pendingReset = null;
      }
      if (entries.length > 0) {
        const first = entries[0]!.index;
        if (first > this.lastIndex() + 1) {
          throw new StorageError(
            "BALLOT_ERR_LOG_GAP",
            `append at index ${first} after last index ${this.lastIndex()}`,
          );
        }
        this.truncateTo(first - this.base - 1);
      }
      let rel = head ? head.byteLength : 0;
      for (const e of entries) {
        const pos = this.terms.length;
        this.terms.push(e.term);
        this.segs.push(-1);
        this.offs.push(-1);
        this.cache.push(e);
        this.cachedBytes += e.data.byteLength;
        written.push({ pos, entry: e, rel });
        rel += entryFrameSize(e.data.byteLength, this.group);
      }
      if (hs && batch.hardState) {
        hard = batch.hardState;
        this.hard = hard;
      }
    } catch (e) {
      done(e instanceof Error ? e : new Error(String(e)));
      return;
    }
    const entries = batch.entries;
    this.wal.append(
      size,
      (buf, dv, start) => {
        // Encoded straight into the WAL's staging buffer: nothing is allocated per entry.
        let at = start;
        if (head) {
          buf.set(head, at);
          at += head.byteLength;
        }
        const g = this.group;
        for (const e of entries) at = writeEntryFrame(buf, at, e.type, e.term, e.index, e.data, dv, g);
        if (hs) at = writeFrame(buf, at, hs);
      },
      (p) => {
        for (const w of written) {
          // Only if that position still holds this entry: a later save may have replaced it.
          if (this.cache[w.pos] === w.entry) {
            this.segs[w.pos] = p.seq;
            this.offs[w.pos] = p.offset + w.rel;
          }
        }
        if (hard) this.writtenHard = hard;
      },
      done,
      batch.mustSync !== false || batch.entries.length > 0 || batch.snapshot !== undefined,
    );
    this.evict();
  }

  /** Drops cached data of the oldest entries that are safely on disk until the cache fits its budget. */
  private evict(): void {
    while (this.cachedBytes > this.cacheLimit && this.cacheFrom < this.cache.length) {
      const i = this.cacheFrom;
      const c = this.cache[i];
      if (c) {
        if (this.segs[i]! < 0) break; // not written yet: must stay
        this.cachedBytes -= c.data.byteLength;
        this.cache[i] = undefined;
      }
      this.cacheFrom++;
    }
  }

  writeSnapshot(metadata: SnapshotMetadata, chunks: Iterable<Uint8Array>): void {
    const cur = this.snapshotMetadata();
    if (metadata.index <= cur.index) {
      throw new StorageError(
        "BALLOT_ERR_SNAPSHOT_OLD",
        `snapshot at ${metadata.index} is not newer than the current one at ${cur.index}`,
      );
    }
    if (metadata.index > this.lastIndex() || this.term(metadata.index) !== metadata.term) {
      throw new StorageError(
        "BALLOT_ERR_SNAPSHOT_MISMATCH",
        `snapshot at ${metadata.index}/${metadata.term} is not an entry of the log`,
      );
    }
    const w = this.snapshots.writer(metadata);
    try {
      for (const c of chunks) w.write(c);
      w.finish();
    } catch (e) {
      w.abort();
      throw e;
    }
    this.snapshots.adopt(w);
  }

  compact(index: number): void {
    if (index <= this.base) return;
    if (index > this.snapshotMetadata().index) {
      throw new StorageError(
        "BALLOT_ERR_COMPACT",
        `cannot compact to ${index}: past the snapshot at ${this.snapshotMetadata().index}`,
      );
    }
    this.dropBelow(index);
    // Logged so a restart does not bring back entries of a segment that stays. No need to wait for
    // its sync: if it is lost, the entries are merely kept a little longer.
    this.wal.write(framePayloads([tagged(this.group, encodeCompact(index))]), null, () => {});
    // Segments holding nothing after `index` can go: live entries sit in non-decreasing segments.
    // In a shared WAL, only once every group is past them.
    if (this.shared) this.shared.releaseSegments();
    else this.wal.removeBefore(this.firstNeededSegment());
  }

  /** Compacts to the snapshot less `trailingEntries`; returns the first index still held. */
  compactToSnapshot(): number {
    const to = this.snapshotMetadata().index - this.trailingEntries;
    if (to > this.base) this.compact(to);
    return this.firstIndex();
  }

  /** WAL segment numbers held (oldest first), for tests and metrics. */
  segmentSeqs(): number[] {
    return this.wal.segmentSeqs();
  }

  /** Bytes of entry data in the cache. */
  cacheSize(): number {
    return this.cachedBytes;
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    if (!this.shared) this.wal.close(); // a shared WAL is closed by its owner
    this.snapshots.close();
  }
}
