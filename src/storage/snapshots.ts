/**
 * Snapshot files: written as a stream of checksummed fixed-size frames into a temporary file, then
 * fsync, rename and directory fsync, so a snapshot is either whole or absent. Read back by offset
 * for sending to followers without loading it whole. Owns the snapshot directory. Must never know
 * what the state machine put in the data.
 *
 * File: a header frame (JSON metadata and the frame size), data frames, an end frame (total size
 * and frame count). Frames use the WAL's framing, so every byte is covered by a CRC32C.
 */
import { type Configuration, checkConfig, type SnapshotMetadata } from "../raft/types.js";
import type { FileSystem } from "./fs.js";
import { join } from "./fs.js";
import { FRAME_HEADER, readFrame, writeFrame } from "./record.js";
import { StorageError } from "./storage.js";

const KIND_HEADER = 10;
const KIND_DATA = 11;
const KIND_END = 12;
const NAME_RE = /^([0-9a-f]{16})-([0-9a-f]{16})\.snap$/;

export const DEFAULT_SNAPSHOT_FRAME = 1 << 20;

function snapName(meta: { index: number; term: number }): string {
  return `${meta.index.toString(16).padStart(16, "0")}-${meta.term.toString(16).padStart(16, "0")}.snap`;
}

function frame(kind: number, body: Uint8Array): Uint8Array {
  const payload = new Uint8Array(1 + body.byteLength);
  payload[0] = kind;
  payload.set(body, 1);
  const out = new Uint8Array(FRAME_HEADER + payload.byteLength);
  writeFrame(out, 0, payload);
  return out;
}

interface SnapshotFile {
  readonly meta: SnapshotMetadata;
  readonly path: string;
  readonly fd: number;
  readonly size: number;
  readonly frameBytes: number;
  readonly dataStart: number;
}

/** Streams one snapshot into a temporary file; finish() makes it durable and visible. */
export class SnapshotWriter {
  private readonly fs: FileSystem;
  readonly meta: SnapshotMetadata;
  private readonly tmp: string;
  private readonly final: string;
  private readonly dir: string;
  private readonly fd: number;
  private pos = 0;
  private carry: Uint8Array;
  private carryLen = 0;
  private frames = 0;
  size = 0;
  private closed = false;

  constructor(fs: FileSystem, dir: string, meta: SnapshotMetadata, frameBytes: number) {
    this.fs = fs;
    this.dir = dir;
    this.meta = meta;
    this.final = join(dir, snapName(meta));
    this.tmp = `${this.final}.tmp`;
    if (fs.exists(this.tmp)) fs.unlink(this.tmp);
    this.fd = fs.create(this.tmp);
    this.carry = new Uint8Array(frameBytes);
    const header = new TextEncoder().encode(
      JSON.stringify({ index: meta.index, term: meta.term, config: meta.config, frameBytes }),
    );
    this.append(frame(KIND_HEADER, header));
  }

  private append(bytes: Uint8Array): void {
    this.fs.write(this.fd, bytes, this.pos);
    this.pos += bytes.byteLength;
  }

  write(data: Uint8Array): void {
    let at = 0;
    while (at < data.byteLength) {
      const n = Math.min(this.carry.byteLength - this.carryLen, data.byteLength - at);
      this.carry.set(data.subarray(at, at + n), this.carryLen);
      this.carryLen += n;
      at += n;
      if (this.carryLen === this.carry.byteLength) this.flushCarry();
    }
    this.size += data.byteLength;
  }

  private flushCarry(): void {
    if (this.carryLen === 0) return;
    this.append(frame(KIND_DATA, this.carry.subarray(0, this.carryLen)));
    this.frames++;
    this.carryLen = 0;
  }

  finish(): void {
    this.flushCarry();
    const end = new Uint8Array(12);
    const dv = new DataView(end.buffer);
    dv.setFloat64(0, this.size, true);
    dv.setUint32(8, this.frames, true);
    this.append(frame(KIND_END, end));
    this.fs.syncNow(this.fd);
    this.fs.close(this.fd);
    this.closed = true;
    this.fs.rename(this.tmp, this.final);
    this.fs.syncDir(this.dir);
  }

  abort(): void {
    if (this.closed) return;
    this.closed = true;
    this.fs.close(this.fd);
    this.fs.unlink(this.tmp);
  }
}

export class SnapshotStore {
  private readonly fs: FileSystem;
  readonly dir: string;
  private readonly frameBytes: number;
  private current: SnapshotFile | null = null;
  private incoming: SnapshotWriter | null = null;

  constructor(fs: FileSystem, dir: string, frameBytes = DEFAULT_SNAPSHOT_FRAME) {
    this.fs = fs;
    this.dir = dir;
    this.frameBytes = frameBytes;
  }

  /** Finds and verifies the newest snapshot; leftovers of unfinished writes are removed. */
  open(): void {
    this.fs.mkdirp(this.dir);
    let removed = false;
    for (const n of this.fs.list(this.dir)) {
      if (n.endsWith(".tmp")) {
        this.fs.unlink(join(this.dir, n));
        removed = true;
      }
    }
    if (removed) this.fs.syncDir(this.dir);
    const names = this.fs
      .list(this.dir)
      .filter((n) => NAME_RE.test(n))
      .sort();
    const newest = names[names.length - 1];
    if (newest) this.current = this.verify(join(this.dir, newest));
  }

  private verify(path: string): SnapshotFile {
    const fd = this.fs.open(path);
    const size = this.fs.size(fd);
    const fail = (offset: number, why: string): never => {
      this.fs.close(fd);
      throw new StorageError(
        "BALLOT_ERR_SNAPSHOT_CORRUPT",
        `snapshot ${path} offset ${offset}: ${why}; refusing to start`,
      );
    };
    let pos = 0;
    const next = (): { kind: number; body: Uint8Array; at: number } => {
      if (pos >= size) fail(pos, "ends before its end record");
      const head = this.fs.read(fd, pos, FRAME_HEADER);
      const len =
        head.length === FRAME_HEADER ? new DataView(head.buffer, head.byteOffset).getUint32(0, true) : 0;
      const whole = this.fs.read(fd, pos, FRAME_HEADER + len);
      const r = readFrame(whole, 0);
      if (r.kind !== "ok") fail(pos, r.kind === "end" ? "empty" : r.reason);
      const ok = r as { payload: Uint8Array; next: number };
      const at = pos;
      pos += ok.next;
      return { kind: ok.payload[0]!, body: ok.payload.subarray(1), at };
    };
    const h = next();
    if (h.kind !== KIND_HEADER) fail(0, "missing header");
    let parsed: { index: number; term: number; config: Configuration; frameBytes: number };
    try {
      parsed = JSON.parse(new TextDecoder().decode(h.body));
      parsed.config = checkConfig(parsed.config, "snapshot header");
    } catch {
      return fail(0, "unreadable header");
    }
    const dataStart = pos;
    let dataSize = 0;
    let frames = 0;
    for (;;) {
      const f = next();
      if (f.kind === KIND_DATA) {
        dataSize += f.body.byteLength;
        frames++;
        continue;
      }
      if (f.kind !== KIND_END) fail(f.at, `unexpected record kind ${f.kind}`);
      const dv = new DataView(f.body.buffer, f.body.byteOffset, f.body.byteLength);
      if (
        f.body.byteLength !== 12 ||
        dv.getFloat64(0, true) !== dataSize ||
        dv.getUint32(8, true) !== frames
      ) {
        fail(f.at, "end record does not match the data");
      }
      break;
    }
    if (pos !== size) fail(pos, "trailing bytes after the end record");
    return {
      meta: { index: parsed.index, term: parsed.term, config: parsed.config },
      path,
      fd,
      size: dataSize,
      frameBytes: parsed.frameBytes,
      dataStart,
    };
  }

  metadata(): SnapshotMetadata | null {
    return this.current?.meta ?? null;
  }

  size(): number {
    return this.current?.size ?? 0;
  }

  /** Reads up to `maxBytes` of the current snapshot's data from `offset`, checking every frame it touches. */
  read(offset: number, maxBytes: number): Uint8Array {
    const cur = this.current;
    if (!cur || offset >= cur.size) return new Uint8Array(0);
    const end = Math.min(cur.size, offset + maxBytes);
    const fb = cur.frameBytes;
    const out = new Uint8Array(end - offset);
    let at = 0;
    for (let k = Math.floor(offset / fb); k * fb < end; k++) {
      const pos = cur.dataStart + k * (FRAME_HEADER + 1 + fb);
      const dataLen = Math.min(fb, cur.size - k * fb);
      const bytes = this.fs.read(cur.fd, pos, FRAME_HEADER + 1 + dataLen);
      const r = readFrame(bytes, 0);
      if (r.kind !== "ok" || r.payload[0] !== KIND_DATA) {
        throw new StorageError(
          "BALLOT_ERR_SNAPSHOT_CORRUPT",
          `snapshot ${cur.path} offset ${pos}: bad data frame`,
        );
      }
      const from = Math.max(offset, k * fb) - k * fb;
      const to = Math.min(end, (k + 1) * fb) - k * fb;
      out.set(r.payload.subarray(1 + from, 1 + to), at);
      at += to - from;
    }
    return out;
  }

  /** Starts writing a snapshot taken locally or received from the leader. */
  writer(meta: SnapshotMetadata): SnapshotWriter {
    return new SnapshotWriter(this.fs, this.dir, meta, this.frameBytes);
  }

  /** Makes a finished snapshot the current one and removes all but the previous one. */
  adopt(w: SnapshotWriter): void {
    const prev = this.current;
    const file = this.verify(join(this.dir, snapName(w.meta)));
    this.current = file;
    if (prev) this.fs.close(prev.fd);
    const keep = new Set([snapName(w.meta), prev ? snapName(prev.meta) : ""]);
    let removed = false;
    for (const n of this.fs.list(this.dir)) {
      if (NAME_RE.test(n) && !keep.has(n)) {
        this.fs.unlink(join(this.dir, n));
        removed = true;
      }
    }
    if (removed) this.fs.syncDir(this.dir);
  }

  /** Receives a chunk of a snapshot from the leader (offset 0 starts a new one). */
  receive(meta: SnapshotMetadata, offset: number, data: Uint8Array): void {
    if (offset === 0) {
      this.incoming?.abort();
      this.incoming = this.writer(meta);
    }
    const w = this.incoming;
    if (!w || w.meta.index !== meta.index || w.meta.term !== meta.term || w.size !== offset) {
      throw new StorageError(
        "BALLOT_ERR_SNAPSHOT_ORDER",
        `snapshot chunk at offset ${offset} does not follow what was received`,
      );
    }
    w.write(data);
  }

  /** Finishes the received snapshot and makes it current. */
  installReceived(meta: SnapshotMetadata): void {
    const w = this.incoming;
    if (!w || w.meta.index !== meta.index || w.meta.term !== meta.term) {
      throw new StorageError(
        "BALLOT_ERR_SNAPSHOT_ORDER",
        `no received snapshot to install at index ${meta.index}`,
      );
    }
    this.incoming = null;
    w.finish();
    this.adopt(w);
  }

  close(): void {
    this.incoming?.abort();
    this.incoming = null;
    if (this.current) this.fs.close(this.current.fd);
    this.current = null;
  }
}
