/**
 * The read side of stable storage, as the core sees it. Owns the interface only; implementations
 * live in src/storage/. The core never writes through this interface: writes come back to the
 * caller in a Ready batch, which persists them and then calls advance().
 */
import type { Configuration, Entry, HardState, SnapshotMetadata } from "./types.js";

/** Thrown when an index below the compacted prefix is asked for. */
export class CompactedError extends Error {
  readonly code = "BALLOT_ERR_COMPACTED";
  constructor(index: number, firstIndex: number) {
    super(`log index ${index} is compacted (first available index ${firstIndex})`);
  }
}

/** Thrown when an index past the end of stable storage is asked for. */
export class LogUnavailableError extends Error {
  readonly code = "BALLOT_ERR_UNAVAILABLE";
  constructor(index: number, lastIndex: number) {
    super(`log index ${index} is not available (last index ${lastIndex})`);
  }
}

export interface InitialState {
  readonly hardState: HardState;
  /** The configuration in effect at the snapshot index (config entries after it are found by scanning the log). */
  readonly config: Configuration;
}

/** Stable storage read by the core. All methods are synchronous; implementations cache hot entries. */
export interface LogStorage {
  initialState(): InitialState;
  /** Entries in [lo, hi), at least one if lo < hi, then stopping before `maxBytes` would be exceeded. */
  entries(lo: number, hi: number, maxBytes: number): Entry[];
  /** Term of entry `index`; valid for firstIndex()-1 (the snapshot's) through lastIndex(). */
  term(index: number): number;
  /** Index of the first entry still held (snapshot index + 1). */
  firstIndex(): number;
  /** Index of the last entry held (the snapshot index when the log is empty). */
  lastIndex(): number;
  /** Metadata of the latest snapshot (index 0 when there is none). */
  snapshotMetadata(): SnapshotMetadata;
  /** Size in bytes of the latest snapshot's data. */
  snapshotSize(): number;
  /** Up to `maxBytes` of the latest snapshot's data from `offset`: snapshots are streamed, never loaded whole. */
  readSnapshot(offset: number, maxBytes: number): Uint8Array;
}
