/**
 * In-memory storage: the twin of DiskStorage for unit tests and benchmarks. Owns a log, hard state
 * and snapshot held in arrays. Must never be used where durability is promised.
 */
import { CompactedError, type InitialState, LogUnavailableError } from "../raft/storage.js";
import {
  type Configuration,
  EMPTY_CONFIG,
  type Entry,
  type HardState,
  type SnapshotChunk,
  type SnapshotMetadata,
} from "../raft/types.js";
import type { SaveBatch, SaveCallback, Storage } from "./storage.js";

const EMPTY = new Uint8Array(0);

export class MemoryStorage implements Storage {
  private hard: HardState = { term: 0, vote: null, commit: 0 };
  private snapMeta: SnapshotMetadata = { index: 0, term: 0, config: EMPTY_CONFIG };
  private snapData: Uint8Array = EMPTY;
  private incoming: { meta: SnapshotMetadata; parts: Uint8Array[]; size: number } | null = null;
  /** ents[0] is a dummy standing for the snapshot's last entry (index and term). */
  private ents: Entry[] = [{ index: 0, term: 0, type: "normal", data: EMPTY }];

  /** A fresh storage for a brand-new cluster member with the initial configuration. */
  static bootstrap(config: Configuration): MemoryStorage {
    const s = new MemoryStorage();
    s.snapMeta = { index: 0, term: 0, config };
    return s;
  }

  initialState(): InitialState {
    return { hardState: this.hard, config: this.snapMeta.config };
  }

  private get offset(): number {
    return this.ents[0]!.index;
  }

  entries(lo: number, hi: number, maxBytes: number): Entry[] {
    if (lo <= this.offset) throw new CompactedError(lo, this.offset + 1);
    if (hi > this.lastIndex() + 1) throw new LogUnavailableError(hi - 1, this.lastIndex());
    const out: Entry[] = [];
    let size = 0;
    for (let i = lo; i < hi; i++) {
      const e = this.ents[i - this.offset]!;
      size += e.data.byteLength + 24;
      if (out.length > 0 && size > maxBytes) break;
      out.push(e);
    }
    return out;
  }

  term(index: number): number {
    if (index < this.offset) throw new CompactedError(index, this.offset + 1);
    if (index > this.lastIndex()) throw new LogUnavailableError(index, this.lastIndex());
    return this.ents[index - this.offset]!.term;
  }

  firstIndex(): number {
    return this.offset + 1;
  }

  lastIndex(): number {
    return this.offset + this.ents.length - 1;
  }

  snapshotMetadata(): SnapshotMetadata {
    return this.snapMeta;
  }

  snapshotSize(): number {
    return this.snapData.byteLength;
  }

  readSnapshot(offset: number, maxBytes: number): Uint8Array {
    return this.snapData.subarray(offset, Math.min(this.snapData.byteLength, offset + maxBytes));
  }

  hardState(): HardState {
    return this.hard;
  }

  save(batch: SaveBatch, done: SaveCallback): void {
    try {
      const first = batch.entries[0]?.index;
      if (first !== undefined && !batch.snapshot && first > this.lastIndex() + 1) {
        throw new Error(`storage: gap appending index ${first} after last index ${this.lastIndex()}`);
      }
      for (const c of batch.snapshotChunks) this.receiveChunk(c);
      if (batch.snapshot) this.install(batch.snapshot);
      if (batch.entries.length > 0) this.append(batch.entries);
      if (batch.hardState) this.hard = batch.hardState;
    } catch (e) {
      done(e instanceof Error ? e : new Error(String(e)));
      return;
    }
    done(null);
  }

  private receiveChunk(c: SnapshotChunk): void {
    if (c.offset === 0) this.incoming = { meta: c.metadata, parts: [], size: 0 };
    const inc = this.incoming;
    if (!inc || inc.meta.index !== c.metadata.index || inc.size !== c.offset) {
      throw new Error(`storage: snapshot chunk at offset ${c.offset} does not follow what was received`);
    }
    inc.parts.push(c.data.slice());
    inc.size += c.data.byteLength;
  }

  private install(meta: SnapshotMetadata): void {
    const inc = this.incoming;
    if (!inc || inc.meta.index !== meta.index || inc.meta.term !== meta.term) {
      throw new Error(`storage: no received snapshot to install at ${meta.index}`);
    }
    this.incoming = null;
    if (meta.index <= this.snapMeta.index) return;
    this.snapMeta = meta;
    this.snapData = concat(inc.parts, inc.size);
    this.ents = [{ index: meta.index, term: meta.term, type: "normal", data: EMPTY }];
  }

  /** Appends entries, replacing any stored suffix from entries[0].index. */
  private append(entries: readonly Entry[]): void {
    const first = entries[0]!.index;
    if (first <= Math.max(this.offset, this.snapMeta.index)) {
      throw new Error(
        `storage: entry ${first} is covered by the snapshot at ${this.snapMeta.index}: committed entries are never replaced`,
      );
    }
    const at = entries[0]!.index - this.offset;
    if (at > this.ents.length) {
      throw new Error(
        `storage: gap appending index ${entries[0]!.index} after last index ${this.lastIndex()}`,
      );
    }
    this.ents.length = at;
    for (const e of entries) this.ents.push(e);
  }

  writeSnapshot(metadata: SnapshotMetadata, chunks: Iterable<Uint8Array>): void {
    if (metadata.index <= this.snapMeta.index)
      throw new Error("storage: snapshot is not newer than the current one");
    if (metadata.index > this.lastIndex()) throw new Error("storage: snapshot beyond the last index");
    const parts: Uint8Array[] = [];
    let size = 0;
    for (const c of chunks) {
      parts.push(c.slice());
      size += c.byteLength;
    }
    this.snapMeta = metadata;
    this.snapData = concat(parts, size);
  }

  compact(index: number): void {
    if (index <= this.offset) return;
    if (index > this.snapMeta.index) throw new Error("storage: compacting past the snapshot");
    const e = this.ents[index - this.offset]!;
    this.ents = [
      { index: e.index, term: e.term, type: "normal", data: EMPTY },
      ...this.ents.slice(index - this.offset + 1),
    ];
  }

  close(): void {}
}

function concat(parts: Uint8Array[], size: number): Uint8Array {
  if (parts.length === 1) return parts[0]!;
  const out = new Uint8Array(size);
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.byteLength;
  }
  return out;
}
