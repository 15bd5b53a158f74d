/**
 * Coalesces a client's concurrent plain puts into transactions: while `maxInFlight` write requests
 * are already on their way, further puts wait in a queue, and the next free slot carries all that
 * waited (up to `maxOps`) as one `POST /v1/txn` — one request, one log entry, one fsync share —
 * whose per-operation results are handed back to each put. Under light load nothing waits, so a
 * lone put is still a plain PUT and pays nothing.
 *
 * Owns the queue, the in-flight bound and the mapping of a transaction's results back to puts.
 * Must never merge a put that carries a condition, a fence or an abort signal (its outcome must be
 * its own), never reorder puts of one key (nor, within a partition, any two), and never let one
 * put's refusal decide another's: a batch the
 * server refuses as a whole (a 4xx, so nothing was applied) is re-sent put by put, so each gets
 * its own answer. An outcome the client cannot know (outcome_unknown) is the whole batch's, and
 * every put in it says so. Each put in a batch takes its own revision, as separate puts would; a
 * batch writes each key once (the server refuses a transaction that writes a key twice), so a
 * second put of a key goes in a later batch — as two concurrent PUTs, their order is not promised.
 */
import { BallotClientError } from "./errors.js";

/** Worst-case UTF-8 bytes of string values in one batch: half the server's 1 MiB per transaction. */
const MAX_BATCH_STRING_BYTES = 512 * 1024;

/** One put waiting for a slot. */
interface Waiting {
  readonly key: string;
  readonly value: unknown;
  readonly lease?: number;
  readonly resolve: (body: unknown) => void;
  readonly reject: (e: unknown) => void;
}

export interface WriteCoalescerOptions {
  /** Write requests this client keeps in flight before puts start to wait and merge. */
  readonly maxInFlight: number;
  /** Puts in one transaction (the server allows 128 operations per list). */
  readonly maxOps: number;
  /**
   * A partitioned cluster: the partition of a key (null while unknown). A transaction acts within
   * one partition, so a batch holds the puts of the first waiting put's partition only.
   */
  readonly partitionOf?: (key: string) => number | null;
}

export class WriteCoalescer {
  private inFlight = 0;
  private readonly queue: Waiting[] = [];

  constructor(
    /** A plain PUT; resolves with the response body. */
    private readonly single: (key: string, value: unknown, lease?: number) => Promise<unknown>,
    /** A transaction of puts; resolves with the response body. */
    private readonly batch: (puts: { key: string; value: unknown; lease?: number }[]) => Promise<unknown>,
    private readonly opts: WriteCoalescerOptions,
  ) {}

  /** Resolves with the put's own response body (a key-value), as a plain PUT would. */
  put(key: string, value: unknown, lease?: number): Promise<unknown> {
    if (this.inFlight < this.opts.maxInFlight && this.queue.length === 0) {
      return this.track(this.single(key, value, lease));
    }
    return new Promise((resolve, reject) => {
      this.queue.push({ key, value, lease, resolve, reject });
    });
  }

  private track<T>(p: Promise<T>): Promise<T> {
    this.inFlight++;
    const done = (): void => {
      this.inFlight--;
      this.flush();
    };
    p.then(done, done);
    return p;
  }

  private flush(): void {
    while (this.inFlight < this.opts.maxInFlight && this.queue.length > 0) {
      // A transaction may write a key only once: a second put of a key waits for the next group.
      // String values are measured (cheaply) so that large ones do not make a batch the server
      // refuses for its size; other values count as small and, if they are not, the refusal
      // sends them one by one.
      const keys = new Set<string>();
      let bytes = 0;
      const home = this.opts.partitionOf?.(this.queue[0]!.key) ?? null;
      // Taken in order; a put of another partition stays queued, in its place, for a later batch.
      const group: Waiting[] = [];
      const skipped: Waiting[] = [];
      let i = 0;
      for (; i < this.queue.length && group.length < this.opts.maxOps; i++) {
        const w = this.queue[i]!;
        const size = typeof w.value === "string" ? w.value.length * 3 + 2 : 0;
        if (keys.has(w.key) || (group.length > 0 && bytes + size > MAX_BATCH_STRING_BYTES)) break;
        if (home !== null && this.opts.partitionOf!(w.key) !== home) {
          skipped.push(w);
          continue;
        }
        keys.add(w.key);
        bytes += size;
        group.push(w);
      }
      // One splice for the whole scan (the queue can be long under load): what was skipped goes back first.
      this.queue.splice(0, i, ...skipped);
      if (group.length === 1) {
        const w = group[0]!;
        this.track(this.single(w.key, w.value, w.lease)).then(w.resolve, w.reject);
        continue;
      }
      this.track(this.sendBatch(group)).catch(() => {});
    }
  }

  private async sendBatch(group: Waiting[]): Promise<void> {
    let body: unknown;
    try {
      body = await this.batch(
        group.map((w) =>
          w.lease === undefined
            ? { key: w.key, value: w.value }
            : { key: w.key, value: w.value, lease: w.lease },
        ),
      );
    } catch (e) {
      if (e instanceof BallotClientError && e.status >= 400 && e.status < 500 && e.status !== 429) {
        // Refused whole, so nothing was applied: each put asks on its own and gets its own answer.
        await Promise.all(group.map((w) => this.single(w.key, w.value, w.lease).then(w.resolve, w.reject)));
        return;
      }
      for (const w of group) w.reject(e);
      return;
    }
    const results = (body as { succeeded?: unknown; results?: unknown } | null)?.results;
    if (
      (body as { succeeded?: unknown }).succeeded !== true ||
      !Array.isArray(results) ||
      results.length !== group.length
    ) {
      const e = new BallotClientError(
        0,
        "invalid_response",
        "the server's answer to a batch of puts does not match it",
      );
      for (const w of group) w.reject(e);
      return;
    }
    for (const [i, w] of group.entries()) {
      const r = (results[i] as { put?: unknown } | null)?.put;
      if (r === undefined)
        w.reject(new BallotClientError(0, "invalid_response", "a batched put has no result"));
      else w.resolve(r);
    }
  }
}
