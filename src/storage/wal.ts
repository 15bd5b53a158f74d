/**
 * The segmented write-ahead log: numbered segment files of framed records, appended with group
 * commit (everything that arrives while an fdatasync is in flight goes out in the next single
 * write and single fdatasync), rotated by size, scanned and repaired at recovery. Owns files,
 * offsets and durability ordering. Must never interpret what records mean (that is DiskStorage's).
 *
 * Durability rules kept here:
 * - a segment is fdatasync'd in full before the next one is created, so only the last segment can
 *   have a torn tail; a bad record anywhere else is corruption;
 * - a new segment is made durable (file, then directory) before anything is written after it;
 * - a callback runs only after the fdatasync that covers its bytes has completed.
 */
import type { FileSystem } from "./fs.js";
import { join } from "./fs.js";
import { decodeSegmentHeader, encodeSegmentHeader, framePayloads, readFrame } from "./record.js";
import { type SaveCallback, StorageError } from "./storage.js";

export interface WalLogger {
  warn(msg: string): void;
}

export interface WalOptions {
  /** Rotate to a new segment once the current one passes this size. Default 64 MiB. */
  readonly segmentBytes?: number;
  readonly logger?: WalLogger;
  /**
   * Holds the next write back after a sync's callbacks until `release` is called by this
   * scheduler (e.g. setImmediate: the next turn). Writers that save again from async
   * continuations of those callbacks (many Raft groups, each resuming its Ready loop) then leave
   * together rather than the first alone. Absent: the next write goes out at once.
   */
  readonly holdAfterSync?: (release: () => void) => void;
}

interface Segment {
  readonly seq: number;
  readonly path: string;
  fd: number;
  size: number;
}

/** Where a record landed. */
export interface Placement {
  readonly seq: number;
  readonly offset: number;
}

interface Pending {
  /** Where its bytes sit in the staging buffer. */
  readonly start: number;
  readonly placed: ((p: Placement) => void) | null;
  readonly done: SaveCallback;
  /** Whether its caller waits for durability (else it rides along with the next sync). */
  readonly sync: boolean;
}

const SEGMENT_RE = /^([0-9a-f]{16})\.wal$/;

export function segmentName(seq: number): string {
  return `${seq.toString(16).padStart(16, "0")}.wal`;
}

export class Wal {
  private readonly fs: FileSystem;
  readonly dir: string;
  private readonly segmentBytes: number;
  private readonly logger: WalLogger;
  private segments: Segment[] = [];
  private pending: Pending[] = [];
  /** Records are encoded straight into this buffer (no allocation per write) and leave it in one write. */
  private stage = new Uint8Array(1 << 20);
  private stageDv = new DataView(this.stage.buffer);
  private stageLen = 0;
  private syncing = false;
  /** While > 0, writes wait in the staging buffer (see cork()). */
  private corked = 0;
  private failed: Error | null = null;
  /** Supplies the frames a new segment starts with after its header (the current hard state), so old segments can go. */
  startFrames: () => Uint8Array[] = () => [];

  constructor(fs: FileSystem, dir: string, opts: WalOptions = {}) {
    this.fs = fs;
    this.dir = dir;
    this.segmentBytes = opts.segmentBytes ?? 64 << 20;
    this.logger = opts.logger ?? { warn: () => {} };
    this.holdAfterSync = opts.holdAfterSync ?? null;
  }
  private readonly holdAfterSync: ((release: () => void) => void) | null;

  /**
   * Opens the log: calls `onRecord` for every valid record in order, truncates a torn tail of the
   * last segment (saying so), and throws a StorageError naming the file and offset for anything
   * that is corruption rather than a crash.
   */
  recover(onRecord: (payload: Uint8Array, at: Placement) => void): void {
    this.fs.mkdirp(this.dir);
    const names = this.fs
      .list(this.dir)
      .filter((n) => SEGMENT_RE.test(n))
      .sort();
    const seqs = names.map((n) => Number.parseInt(SEGMENT_RE.exec(n)![1]!, 16));
    for (let i = 1; i < seqs.length; i++) {
      if (seqs[i] !== seqs[i - 1]! + 1) {
        throw new StorageError(
          "BALLOT_ERR_WAL_CORRUPT",
          `WAL ${this.dir}: segment ${segmentName(seqs[i - 1]! + 1)} is missing between ${names[i - 1]} and ${names[i]}`,
        );
      }
    }
    for (let i = 0; i < names.length; i++) {
      const path = join(this.dir, names[i]!);
      const last = i === names.length - 1;
      const fd = this.fs.open(path);
      const size = this.fs.size(fd);
      const buf = this.fs.read(fd, 0, size);
      const seg: Segment = { seq: seqs[i]!, path, fd, size };
      // The header: a last segment whose header never became durable was being created at the crash.
      const head = readFrame(buf, 0);
      if (head.kind !== "ok") {
        if (last && head.kind !== "corrupt") {
          this.logger.warn(
            `WAL ${path}: removing a segment whose creation did not complete (${head.kind === "torn" ? head.reason : "empty"})`,
          );
          this.fs.close(fd);
          this.fs.unlink(path);
          this.fs.syncDir(this.dir);
          continue;
        }
        throw new StorageError(
          "BALLOT_ERR_WAL_CORRUPT",
          `WAL ${path} offset 0: bad segment header; refusing to start`,
        );
      }
      try {
        const h = decodeSegmentHeader(head.payload);
        if (h.seq !== seg.seq) throw new Error(`header says segment ${h.seq}`);
      } catch (e) {
        throw new StorageError(
          "BALLOT_ERR_WAL_CORRUPT",
          `WAL ${path} offset 0: ${(e as Error).message}; refusing to start`,
        );
      }
      let at = head.next;
      for (;;) {
        const r = readFrame(buf, at);
        if (r.kind === "end") break;
        if (r.kind === "ok") {
          onRecord(r.payload, { seq: seg.seq, offset: at });
          at = r.next;
          continue;
        }
        if (r.kind === "torn" && last) {
          this.logger.warn(`WAL ${path}: truncating a torn tail at offset ${at} of ${size} (${r.reason})`);
          this.fs.truncate(fd, at);
          this.fs.syncNow(fd);
          seg.size = at;
          break;
        }
        const why = r.kind === "torn" ? `${r.reason} in a segment that is not the last` : r.reason;
        throw new StorageError(
          "BALLOT_ERR_WAL_CORRUPT",
          `WAL ${path} offset ${at}: ${why}; refusing to start`,
        );
      }
      this.segments.push(seg);
    }
  }

  /** Starts a segment when the log has none (a new data directory, or after every segment was removed). */
  ensureSegment(): void {
    if (this.segments.length === 0) this.createSegment(1);
  }

  private createSegment(seq: number): void {
    const path = join(this.dir, segmentName(seq));
    const fd = this.fs.create(path);
    const frames = framePayloads([encodeSegmentHeader({ seq, firstIndex: 0 }), ...this.startFrames()]);
    this.fs.write(fd, frames, 0);
    this.fs.syncNow(fd);
    this.fs.syncDir(this.dir);
    this.segments.push({ seq, path, fd, size: frames.byteLength });
  }

  /** The segments, oldest first. */
  segmentSeqs(): number[] {
    return this.segments.map((s) => s.seq);
  }

  currentSeq(): number {
    return this.segments[this.segments.length - 1]!.seq;
  }

  /**
   * Queues framed records. `placed` learns where they land (at write time); `done` runs once they
   * are durable. One write and one fdatasync carry everything queued while the previous sync ran.
   */
  write(frames: Uint8Array, placed: ((p: Placement) => void) | null, done: SaveCallback, sync = true): void {
    this.append(frames.byteLength, (buf, _dv, at) => buf.set(frames, at), placed, done, sync);
  }

  /**
   * Like write(), but `fill` encodes `size` bytes of records straight into the staging buffer at
   * `at` (synchronously): the hot path allocates nothing per call.
   */
  append(
    size: number,
    fill: (buf: Uint8Array, dv: DataView, at: number) => void,
    placed: ((p: Placement) => void) | null,
    done: SaveCallback,
    sync = true,
  ): void {
    if (this.failed) {
      done(this.failed);
      return;
    }
    if (this.stageLen + size > this.stage.byteLength) {
      const bigger = new Uint8Array(Math.max(this.stage.byteLength * 2, this.stageLen + size));
      bigger.set(this.stage.subarray(0, this.stageLen));
      this.stage = bigger;
      this.stageDv = new DataView(bigger.buffer);
    }
    const start = this.stageLen;
    fill(this.stage, this.stageDv, start);
    this.stageLen += size;
    // A write nobody waits on is queued in order behind earlier ones and made durable by the next sync.
    this.pending.push({ start, placed, done: sync ? done : () => {}, sync });
    if (!this.syncing && this.corked === 0) this.flush();
    if (!sync) done(null);
  }

  /**
   * Holds writes back until uncork(), so that several writers (the groups of a shared WAL saving
   * one Ready each) leave in one write and one fdatasync rather than the first going out alone.
   */
  cork(): void {
    this.corked++;
  }

  uncork(): void {
    if (this.corked === 0) throw new Error("uncork() without cork()");
    this.corked--;
    if (this.corked === 0 && !this.syncing && this.pending.length > 0 && !this.failed) this.flush();
  }

  private flush(): void {
    const batch = this.pending;
    this.pending = [];
    try {
      let seg = this.segments[this.segments.length - 1]!;
      if (seg.size >= this.segmentBytes) {
        this.fs.syncNow(seg.fd);
        this.createSegment(seg.seq + 1);
        seg = this.segments[this.segments.length - 1]!;
      }
      const base = seg.size;
      for (const p of batch) p.placed?.({ seq: seg.seq, offset: base + p.start });
      // A synchronous write: once it returns, the staging buffer can be filled again.
      this.fs.write(seg.fd, this.stage.subarray(0, this.stageLen), base);
      seg.size += this.stageLen;
      this.stageLen = 0;
      if (!batch.some((p) => p.sync)) return; // written; the next sync makes it durable
      this.syncing = true;
      this.fs.sync(seg.fd, (err) => this.synced(batch, err));
    } catch (e) {
      this.stageLen = 0;
      this.fail(batch, e instanceof Error ? e : new Error(String(e)));
    }
  }

  private synced(batch: Pending[], err: Error | null): void {
    if (err) {
      this.syncing = false;
      // After a failed fdatasync the page cache cannot be trusted (fsyncgate): stop for good.
      this.fail(batch, err);
      return;
    }
    // Still "syncing" while the callbacks run, so the writes they trigger queue up and leave
    // together in the next flush instead of the first of them going out alone.
    for (const p of batch) p.done(null);
    if (this.holdAfterSync) this.holdAfterSync(() => this.release());
    else this.release();
  }

  private release(): void {
    this.syncing = false;
    if (this.pending.length > 0 && !this.failed && this.corked === 0) this.flush();
  }

  private fail(batch: Pending[], err: Error): void {
    const e = new StorageError(
      "BALLOT_ERR_WAL_WRITE",
      `WAL ${this.dir}: write failed, storage is stopped: ${err.message}`,
    );
    this.failed = e;
    for (const p of batch) p.done(e);
    const rest = this.pending;
    this.pending = [];
    for (const p of rest) p.done(e);
  }

  /** Reads `length` bytes at `offset` of segment `seq` (to fetch an entry not in the cache). */
  read(seq: number, offset: number, length: number): Uint8Array {
    const seg = this.segments.find((s) => s.seq === seq);
    if (!seg) throw new StorageError("BALLOT_ERR_WAL_CORRUPT", `WAL ${this.dir}: segment ${seq} is not open`);
    return this.fs.read(seg.fd, offset, length);
  }

  /** Deletes every segment older than `seq` (never the current one). */
  removeBefore(seq: number): void {
    const keep: Segment[] = [];
    let removed = false;
    for (const s of this.segments) {
      if (s.seq < seq && s !== this.segments[this.segments.length - 1]) {
        this.fs.close(s.fd);
        this.fs.unlink(s.path);
        removed = true;
      } else keep.push(s);
    }
    this.segments = keep;
    if (removed) this.fs.syncDir(this.dir);
  }

  /** Closes the segments. Writes still queued fail (their callers were never told they were durable). */
  close(): void {
    // What is staged is written (not synced): records nobody waits on (compactions) would
    // otherwise be lost to a close that comes while a write is held back (holdAfterSync).
    const seg = this.segments[this.segments.length - 1];
    if (seg && !this.failed && this.stageLen > 0) {
      try {
        this.fs.write(seg.fd, this.stage.subarray(0, this.stageLen), seg.size);
        seg.size += this.stageLen;
      } catch {
        // closing anyway: the waiters below are failed
      }
    }
    for (const s of this.segments) this.fs.close(s.fd);
    this.segments = [];
    if (this.failed) return;
    this.failed = new StorageError("BALLOT_ERR_CLOSED", `WAL ${this.dir} is closed`);
    const rest = this.pending;
    this.pending = [];
    this.stageLen = 0;
    for (const p of rest) p.done(this.failed);
  }
}
