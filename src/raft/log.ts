/**
 * The replicated log as the core sees it: the stable part (read through LogStorage) plus the
 * unstable tail not yet persisted, and the commit/apply cursors. Owns the Log Matching rules
 * (conflict detection, truncation, up-to-date comparison). Must never decide roles or send messages.
 */
import { CompactedError, type LogStorage, LogUnavailableError } from "./storage.js";
import type { Entry, SnapshotMetadata } from "./types.js";

export class RaftLog {
  readonly storage: LogStorage;
  /** Entries not yet reported stable; unstable[0] has index `offset`. */
  private unstable: Entry[] = [];
  private offset: number;
  /** A snapshot received from the leader and not yet installed by the caller. */
  unstableSnapshot: SnapshotMetadata | null = null;
  committed: number;
  /** Highest index handed out for applying (applied by the caller once advance() returns). */
  applied: number;
  /** Told of every append, after any truncation it caused, so the owner can track config entries. */
  onAppend: ((entries: readonly Entry[]) => void) | null = null;

  constructor(storage: LogStorage, applied: number) {
    this.storage = storage;
    this.offset = storage.lastIndex() + 1;
    const first = storage.firstIndex();
    this.committed = first - 1;
    this.applied = Math.max(first - 1, applied);
  }

  firstIndex(): number {
    if (this.unstableSnapshot) return this.unstableSnapshot.index + 1;
    return this.storage.firstIndex();
  }

  lastIndex(): number {
    if (this.unstable.length > 0) return this.offset + this.unstable.length - 1;
    if (this.unstableSnapshot) return this.unstableSnapshot.index;
    return this.storage.lastIndex();
  }

  lastTerm(): number {
    return this.term(this.lastIndex());
  }

  /** Term of `index`, or -1 when the index is compacted or beyond the log. */
  term(index: number): number {
    if (index >= this.offset && index < this.offset + this.unstable.length) {
      return this.unstable[index - this.offset]!.term;
    }
    if (this.unstableSnapshot) {
      if (index === this.unstableSnapshot.index) return this.unstableSnapshot.term;
      if (index < this.unstableSnapshot.index) return -1;
    }
    if (index > this.lastIndex()) return -1;
    if (index === 0) return 0;
    try {
      return this.storage.term(index);
    } catch (e) {
      if (e instanceof CompactedError || e instanceof LogUnavailableError) return -1;
      throw e;
    }
  }

  matchTerm(index: number, term: number): boolean {
    return this.term(index) === term;
  }

  /** §5.4.1: the candidate's log is at least as up to date as ours. */
  isUpToDate(lastIndex: number, lastTerm: number): boolean {
    const myTerm = this.lastTerm();
    return lastTerm > myTerm || (lastTerm === myTerm && lastIndex >= this.lastIndex());
  }

  /**
   * Follower append: if our entry at `prevIndex` has `prevTerm`, append `entries` (dropping the
   * ones we already have, truncating from the first conflict) and return the new last index.
   * Returns -1 when the consistency check fails.
   */
  maybeAppend(prevIndex: number, prevTerm: number, commit: number, entries: readonly Entry[]): number {
    if (!this.matchTerm(prevIndex, prevTerm)) return -1;
    const lastNew = prevIndex + entries.length;
    const conflict = this.findConflict(entries);
    if (conflict !== 0) {
      if (conflict <= this.committed) {
        throw new Error(`raft: entry ${conflict} conflicts with committed entry (commit ${this.committed})`);
      }
      this.append(entries.slice(conflict - (prevIndex + 1)));
    }
    this.commitTo(Math.min(commit, lastNew));
    return lastNew;
  }

  /** Index of the first entry that is new or conflicts by term; 0 when all are already present. */
  private findConflict(entries: readonly Entry[]): number {
    for (const e of entries) {
      if (!this.matchTerm(e.index, e.term)) return e.index;
    }
    return 0;
  }

  /** Appends entries, truncating any unstable or stable suffix they replace. */
  append(entries: readonly Entry[]): void {
    if (entries.length === 0) return;
    const after = entries[0]!.index;
    if (after <= this.committed)
      throw new Error(`raft: append at ${after} would overwrite committed ${this.committed}`);
    if (after === this.offset + this.unstable.length) {
      for (const e of entries) this.unstable.push(e);
    } else if (after <= this.offset) {
      // Replaces part of the stable log: the caller truncates storage from `after` when persisting.
      this.offset = after;
      this.unstable = entries.slice();
    } else {
      this.unstable = this.unstable.slice(0, after - this.offset);
      for (const e of entries) this.unstable.push(e);
    }
    this.onAppend?.(entries);
  }

  /** Entries in [lo, hi), at most maxBytes (but at least one). */
  slice(lo: number, hi: number, maxBytes: number): Entry[] {
    if (lo >= hi) return [];
    const out: Entry[] = [];
    let size = 0;
    if (lo < this.offset) {
      const stable = this.storage.entries(lo, Math.min(hi, this.offset), maxBytes);
      for (const e of stable) {
        size += e.data.byteLength + 24;
        out.push(e);
      }
      if (out.length < Math.min(hi, this.offset) - lo) return out;
    }
    const from = Math.max(lo, this.offset);
    for (let i = from; i < hi; i++) {
      const e = this.unstable[i - this.offset]!;
      const s = e.data.byteLength + 24;
      if (out.length > 0 && size + s > maxBytes) break;
      size += s;
      out.push(e);
    }
    return out;
  }

  commitTo(index: number): void {
    if (index > this.committed) {
      if (index > this.lastIndex())
        throw new Error(`raft: commit ${index} beyond last index ${this.lastIndex()}`);
      this.committed = index;
    }
  }

  unstableEntries(): readonly Entry[] {
    return this.unstable;
  }

  /** Called once entries up to (index, term) are durable. Ignores stale reports (the entry was replaced meanwhile). */
  stableTo(index: number, term: number): void {
    if (index < this.offset) return;
    const t = this.term(index);
    if (t !== term || index >= this.offset + this.unstable.length) return;
    this.unstable = this.unstable.slice(index + 1 - this.offset);
    this.offset = index + 1;
  }

  stableSnapTo(index: number): void {
    if (this.unstableSnapshot && this.unstableSnapshot.index === index) this.unstableSnapshot = null;
  }

  /** Entries committed but not yet handed out for applying, at most maxBytes. */
  nextCommitted(maxBytes: number): Entry[] {
    const lo = Math.max(this.applied + 1, this.firstIndex());
    if (this.committed < lo) return [];
    return this.slice(lo, this.committed + 1, maxBytes);
  }

  hasNextCommitted(): boolean {
    return this.committed > Math.max(this.applied, this.firstIndex() - 1);
  }

  appliedTo(index: number): void {
    if (index > this.committed) throw new Error(`raft: applied ${index} beyond commit ${this.committed}`);
    if (index > this.applied) this.applied = index;
  }

  /** Replaces the whole log with a snapshot received from the leader. */
  restore(meta: SnapshotMetadata): void {
    this.unstableSnapshot = meta;
    this.unstable = [];
    this.offset = meta.index + 1;
    this.committed = meta.index;
    this.applied = meta.index;
  }
}
