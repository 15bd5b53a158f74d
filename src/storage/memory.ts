/**
 * In-memory stable storage: the twin of the write-ahead log for tests and the simulator. Owns a
 * log, hard state and snapshot held in arrays. Must never be used where durability is promised;
 * in the simulator it stands for "what reached the disk".
 */
import { CompactedError, type InitialState, type LogStorage, UnavailableError } from "../raft/storage.js";
import {
  type Configuration,
  EMPTY_CONFIG,
  type Entry,
  type HardState,
  type Snapshot,
  type SnapshotMetadata,
} from "../raft/types.js";

export class MemoryStorage implements LogStorage {
  private hard: HardState = { term: 0, vote: null, commit: 0 };
  private snap: Snapshot = { metadata: { index: 0, term: 0, config: EMPTY_CONFIG }, data: new Uint8Array(0) };
  /** ents[0] is a dummy standing for the snapshot's last entry (index and term). */
  private ents: Entry[] = [{ index: 0, term: 0, type: "normal", data: new Uint8Array(0) }];

  /** A fresh storage for a brand-new cluster member with the initial configuration. */
  static bootstrap(config: Configuration): MemoryStorage {
    const s = new MemoryStorage();
    s.snap = { metadata: { index: 0, term: 0, config }, data: new Uint8Array(0) };
    return s;
  }

  initialState(): InitialState {
    return { hardState: this.hard, config: this.snap.metadata.config };
  }

  private get offset(): number {
    return this.ents[0]!.index;
  }

  entries(lo: number, hi: number, maxBytes: number): Entry[] {
    if (lo <= this.offset) throw new CompactedError(lo, this.offset + 1);
    if (hi > this.lastIndex() + 1) throw new UnavailableError(hi - 1, this.lastIndex());
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
    if (index > this.lastIndex()) throw new UnavailableError(index, this.lastIndex());
    return this.ents[index - this.offset]!.term;
  }

  firstIndex(): number {
    return this.offset + 1;
  }

  lastIndex(): number {
    return this.offset + this.ents.length - 1;
  }

  snapshot(): Snapshot {
    return this.snap;
  }

  hardState(): HardState {
    return this.hard;
  }

  // ---------------------------------------------------------------- writes (by the driver, from a Ready)

  setHardState(hs: HardState): void {
    this.hard = hs;
  }

  /** Appends entries, replacing any stored suffix from entries[0].index. */
  append(entries: readonly Entry[]): void {
    if (entries.length === 0) return;
    const first = entries[0]!.index;
    if (first <= this.offset) {
      // Already covered by the snapshot: keep only what lies after it.
      const skip = this.offset + 1 - first;
      if (skip >= entries.length) return;
      entries = entries.slice(skip);
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

  /** Installs a snapshot received from the leader; the log is replaced by it. */
  applySnapshot(snap: Snapshot): void {
    if (snap.metadata.index <= this.snap.metadata.index) return;
    this.snap = snap;
    this.ents = [
      { index: snap.metadata.index, term: snap.metadata.term, type: "normal", data: new Uint8Array(0) },
    ];
  }

  /** Records a snapshot taken locally at an applied index (the log is kept; compact() trims it). */
  createSnapshot(metadata: SnapshotMetadata, data: Uint8Array): Snapshot {
    if (metadata.index <= this.snap.metadata.index)
      throw new Error("storage: snapshot is older than the current one");
    if (metadata.index > this.lastIndex()) throw new Error("storage: snapshot beyond the last index");
    this.snap = { metadata, data };
    return this.snap;
  }

  /** Discards entries up to and including `index` (which must be ≤ the snapshot index). */
  compact(index: number): void {
    if (index <= this.offset) return;
    if (index > this.snap.metadata.index) throw new Error("storage: compacting past the snapshot");
    const e = this.ents[index - this.offset]!;
    this.ents = [
      { index: e.index, term: e.term, type: "normal", data: new Uint8Array(0) },
      ...this.ents.slice(index - this.offset + 1),
    ];
  }

  /** A deep-enough copy for simulating "what survives a crash". */
  clone(): MemoryStorage {
    const c = new MemoryStorage();
    c.hard = this.hard;
    c.snap = this.snap;
    c.ents = this.ents.slice();
    return c;
  }
}
