/**
 * The full storage contract a node drives: the core's read side (LogStorage) plus the writes a
 * Ready asks for, snapshots and compaction. Owns the interface only; MemoryStorage and DiskStorage
 * implement it and pass the same test suite.
 */
import type { LogStorage } from "../raft/storage.js";
import type { Entry, HardState, SnapshotChunk, SnapshotMetadata } from "../raft/types.js";

/** The durable part of one Ready (or of several, when the caller merges them). */
export interface SaveBatch {
  /** False when nothing in the batch must be durable before the caller goes on (e.g. only the commit index moved). Default true. */
  readonly mustSync?: boolean;
  readonly hardState?: HardState;
  readonly entries: readonly Entry[];
  readonly snapshotChunks: readonly SnapshotChunk[];
  readonly snapshot?: SnapshotMetadata;
}

/** Called once a save is durable, or with the error that makes the storage unusable. */
export type SaveCallback = (err: Error | null) => void;

export interface Storage extends LogStorage {
  /**
   * Persists a batch: snapshot chunks, then the snapshot install, then entries (replacing any
   * stored suffix from the first one's index), then the hard state. `done` runs once all of it is
   * durable. Batches arriving while a sync is in flight are group-committed together.
   */
  save(batch: SaveBatch, done: SaveCallback): void;
  /** The last hard state saved. */
  hardState(): HardState;
  /**
   * Writes a snapshot of the local state machine taken at `metadata.index` (≤ the last index) and
   * makes it the current one. The data comes as a stream of chunks and is never held whole.
   */
  writeSnapshot(metadata: SnapshotMetadata, chunks: Iterable<Uint8Array>): void;
  /** Discards log entries up to and including `index`, which must be ≤ the snapshot index. */
  compact(index: number): void;
  close(): void;
}

/** Errors a storage raises for conditions an operator must see; `code` is stable. */
export class StorageError extends Error {
  readonly code: string;
  constructor(code: string, message: string) {
    super(message);
    this.code = code;
    this.name = "StorageError";
  }
}
