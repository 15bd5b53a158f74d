/**
 * The recent history of key changes on this node and the cursors that stream it to watchers.
 * Owns a bounded, revision-ordered history (events and bytes) and wakes watchers when it grows.
 * Must never buffer per watcher: each watcher is only a position in the shared history, so a
 * slow watcher costs nothing until it falls out of the history, and then it is told `compacted`.
 */
import type { KeyValue } from "./commands.js";
import type { KvStore, StoreEvent } from "./store.js";

export type WatchEvent =
  | { readonly type: "put"; readonly kv: KeyValue }
  | { readonly type: "delete"; readonly key: string; readonly revision: number };

export const revisionOf = (e: WatchEvent): number => (e.type === "put" ? e.kv.modRevision : e.revision);
const keyOf = (e: WatchEvent): string => (e.type === "put" ? e.kv.key : e.key);
const sizeOf = (e: WatchEvent): number =>
  (e.type === "put" ? e.kv.key.length + e.kv.value.length : e.key.length) + 64;

export class CompactedError extends Error {
  readonly code = "compacted";
  constructor(readonly compactRevision: number) {
    super(`revisions before ${compactRevision} are no longer in this node's history`);
  }
}

export interface WatchHubOptions {
  readonly maxEvents?: number;
  readonly maxBytes?: number;
}

/** A watcher's position. `next()` returns the next matching event, null when none yet, or throws CompactedError. */
export interface WatchCursor {
  next(): WatchEvent | null;
  close(): void;
}

export class WatchHub {
  private events: WatchEvent[] = [];
  private start = 0;
  private bytes = 0;
  /** History is complete for every revision above this. */
  private base: number;
  private readonly wakers = new Set<() => void>();
  private readonly maxEvents: number;
  private readonly maxBytes: number;
  private readonly unsubscribe: () => void;
  private generation = 0;

  constructor(
    private readonly store: KvStore,
    opts: WatchHubOptions = {},
  ) {
    this.maxEvents = opts.maxEvents ?? 100_000;
    this.maxBytes = opts.maxBytes ?? 64 << 20;
    this.base = store.revision;
    this.unsubscribe = store.subscribe((e) => this.onEvent(e));
  }

  private onEvent(e: StoreEvent): void {
    if (e.type === "put" || e.type === "delete") {
      const w: WatchEvent = e.type === "put" ? { type: "put", kv: e.kv } : e;
      this.events.push(w);
      this.bytes += sizeOf(w);
      while (this.events.length - this.start > this.maxEvents || this.bytes > this.maxBytes) this.evict();
    } else if (e.type === "reset") {
      // A snapshot replaced the state: the changes in between are unknown here.
      this.events = [];
      this.start = 0;
      this.bytes = 0;
      this.base = e.revision;
      this.generation++;
    } else return;
    for (const w of [...this.wakers]) w();
  }

  private evict(): void {
    const e = this.events[this.start]!;
    this.bytes -= sizeOf(e);
    this.base = revisionOf(e);
    this.start++;
    if (this.start > 1024 && this.start * 2 > this.events.length) {
      this.events = this.events.slice(this.start);
      this.start = 0;
    }
  }

  /** The oldest revision a watch can start from. */
  get compactRevision(): number {
    return this.base + 1;
  }

  /** First index in history with revision ≥ rev. */
  private indexOf(rev: number): number {
    let lo = this.start;
    let hi = this.events.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (revisionOf(this.events[mid]!) < rev) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  /**
   * Opens a cursor at `fromRevision` (inclusive) for keys starting with `prefix`. `wake` is called
   * (synchronously, from apply) whenever new events may be available. Throws CompactedError when
   * the history no longer reaches back to `fromRevision`.
   */
  open(prefix: string, fromRevision: number, wake: () => void): WatchCursor {
    if (fromRevision <= this.base) throw new CompactedError(this.compactRevision);
    let nextRev = fromRevision;
    const generation = this.generation;
    this.wakers.add(wake);
    return {
      next: () => {
        if (this.generation !== generation || nextRev <= this.base)
          throw new CompactedError(this.compactRevision);
        for (let i = this.indexOf(nextRev); i < this.events.length; i++) {
          const e = this.events[i]!;
          nextRev = revisionOf(e) + 1;
          if (keyOf(e).startsWith(prefix)) return e;
        }
        nextRev = Math.max(nextRev, this.store.revision + 1);
        return null;
      },
      close: () => {
        this.wakers.delete(wake);
      },
    };
  }

  stop(): void {
    this.unsubscribe();
    this.wakers.clear();
  }
}
