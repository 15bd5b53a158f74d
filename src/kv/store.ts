/**
 * The replicated key-value state machine: keys with JSON values, a global revision, per-key create
 * and modify revisions and a version, compare-and-set, fencing tokens, delete, range by prefix,
 * leases (keys and candidacies attached to them go when they do), named elections (a queue of
 * candidates per name, ordered by creation revision), and remembered idempotency keys (bounded,
 * replicated, in snapshots) so a retried write is applied once (client sessions, Raft
 * dissertation §6.3). Owns the state, its snapshot format and the change events it emits.
 * Must be deterministic: no clock, no randomness, no I/O — lease expiry is decided outside
 * (lease-expiry.ts) and arrives as a command.
 */
import { createHash } from "node:crypto";
import type { StateMachine } from "../node/raft-node.js";
import {
  type Candidate,
  decodeCommand,
  type KeyValue,
  type KvCommand,
  type KvResult,
  type TxnCompare,
  type TxnOpResult,
} from "./commands.js";

/** A replayed transaction answers its gets' values again only if they total at most this. */
export const REMEMBERED_TXN_VALUE_BYTES = 16 << 10;

/** How many idempotency keys are remembered (oldest forgotten first). */
export const IDEMPOTENCY_WINDOW = 100_000;

export interface LeaseState {
  readonly id: number;
  readonly ttlMs: number;
  /** Renewal count: grant and every keepalive bump it, so an expiry decided before a renewal is void. */
  seq: number;
  /** What a leader last checkpointed of the TTL since the last renewal (ms); absent: all of it. */
  remainingMs?: number;
  readonly keys: Set<string>;
  readonly elections: Set<string>;
}

/** A change, emitted synchronously as it is applied (watchers, lease timers, election waiters). */
export type StoreEvent =
  | { readonly type: "put"; readonly kv: KeyValue }
  | { readonly type: "delete"; readonly key: string; readonly revision: number }
  | {
      readonly type: "lease";
      readonly id: number;
      readonly ttlMs: number;
      readonly alive: boolean;
      /** Set by a checkpoint: at most this much of the TTL is left (from when it is applied). */
      readonly remainingMs?: number;
    }
  | { readonly type: "election"; readonly name: string; readonly revision: number }
  /** The whole state was replaced by a snapshot: history before `revision` is unknown. */
  | { readonly type: "reset"; readonly revision: number };

const enc = new TextEncoder();

/** What is remembered of an idempotent request: which request it was, and its outcome. */
interface Remembered {
  readonly digest: string;
  readonly result: KvResult;
}

/** Identifies a request by its content (without the key itself), the same on every replica. */
function requestDigest(c: KvCommand): string {
  const { idem: _idem, ...rest } = c as KvCommand & { idem?: string };
  return createHash("sha256").update(JSON.stringify(rest)).digest("base64");
}

/** A result without the values it carried (a transaction's gets keep theirs while they are small). */
function compact(r: KvResult): KvResult {
  if (!r.ok) return r;
  const { kv, candidate, txn, ...rest } = r;
  let keptTxn = txn;
  if (txn) {
    let bytes = 0;
    for (const x of txn.results) if (x.op === "get" && x.kv) bytes += x.kv.value.length;
    const keepGets = bytes <= REMEMBERED_TXN_VALUE_BYTES;
    keptTxn = {
      succeeded: txn.succeeded,
      results: txn.results.map((x): TxnOpResult => {
        if (x.op === "put") return { op: "put", kv: { ...x.kv, value: "" } };
        if (x.op === "get" && x.kv && !keepGets) return { op: "get", key: x.key, kv: { ...x.kv, value: "" } };
        return x;
      }),
      ...(keepGets ? {} : { valuesOmitted: true }),
    };
  }
  return {
    ...rest,
    ...(keptTxn ? { txn: keptTxn } : {}),
    ...(kv ? { kv: { ...kv, value: "" } } : {}),
    ...(candidate ? { candidate: { ...candidate, value: "" } } : {}),
  };
}

export class KvStore implements StateMachine<KvResult> {
  private kvs = new Map<string, KeyValue>();
  /** Global revision: the number of changes applied. */
  revision = 0;
  private idem = new Map<string, Remembered>();
  private leases = new Map<number, LeaseState>();
  private nextLeaseId = 1;
  /** Highest fencing token any write to a key carried; outlives the key. */
  private fences = new Map<string, number>();
  private elections = new Map<string, Candidate[]>();
  private readonly listeners = new Set<(e: StoreEvent) => void>();

  /**
   * @param onListenerError where a subscriber's exception goes (it never interrupts the command);
   *   default: thrown again outside apply, as an uncaught exception.
   */
  constructor(
    private readonly onListenerError: (e: unknown) => void = (e) =>
      queueMicrotask(() => {
        throw e;
      }),
    /**
     * In a partitioned cluster, this store's partition and the partition count: lease ids are
     * then partition + 1, partition + 1 + count, ... so a lease id says which partition holds it.
     */
    private readonly partition: { readonly index: number; readonly count: number } = { index: 0, count: 1 },
  ) {}

  /** The partition a lease id belongs to (see the constructor). */
  static leasePartition(id: number, count: number): number {
    return (id - 1) % count;
  }

  /** Subscribes to changes; returns the unsubscribe function. */
  subscribe(fn: (e: StoreEvent) => void): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  private emit(e: StoreEvent): void {
    // A listener's failure must not cut a command short on this replica only.
    for (const l of this.listeners) {
      try {
        l(e);
      } catch (err) {
        this.onListenerError(err);
      }
    }
  }

  apply(command: Uint8Array): KvResult {
    return this.applyCommand(decodeCommand(command));
  }

  applyCommand(c: KvCommand): KvResult {
    const idem = "idem" in c ? c.idem : undefined;
    if (idem === undefined) return this.execute(c);
    const digest = requestDigest(c);
    const seen = this.idem.get(idem);
    if (seen) {
      // The same key for another request is a client bug: never hand it someone else's outcome.
      if (seen.digest !== digest)
        return { ok: false, code: "idempotency_key_reused", revision: this.revision };
      return seen.result;
    }
    const result = this.execute(c);
    // Remembered without values: a retry already carries its value, and 100 000 remembered
    // 1 MiB values would be 100 GB.
    this.idem.set(idem, { digest, result: compact(result) });
    if (this.idem.size > IDEMPOTENCY_WINDOW) this.idem.delete(this.idem.keys().next().value as string);
    return result;
  }

  private execute(c: KvCommand): KvResult {
    switch (c.op) {
      case "put":
      case "del":
        return this.write(c);
      case "lease_grant": {
        const id = (this.nextLeaseId++ - 1) * this.partition.count + this.partition.index + 1;
        this.leases.set(id, { id, ttlMs: c.ttlMs, seq: 0, keys: new Set(), elections: new Set() });
        this.emit({ type: "lease", id, ttlMs: c.ttlMs, alive: true });
        return { ok: true, revision: this.revision, lease: { id, ttlMs: c.ttlMs } };
      }
      case "lease_keepalive": {
        const l = this.leases.get(c.id);
        if (!l) return { ok: false, code: "lease_not_found", revision: this.revision };
        l.seq++;
        delete l.remainingMs;
        this.emit({ type: "lease", id: l.id, ttlMs: l.ttlMs, alive: true });
        return { ok: true, revision: this.revision, lease: { id: l.id, ttlMs: l.ttlMs } };
      }
      case "lease_revoke": {
        if (!this.leases.has(c.id)) return { ok: false, code: "lease_not_found", revision: this.revision };
        this.dropLease(c.id);
        return { ok: true, revision: this.revision, removed: true };
      }
      case "lease_checkpoint": {
        const l = this.leases.get(c.id);
        if (!l || l.seq !== c.seq) return { ok: true, revision: this.revision, removed: false };
        l.remainingMs = Math.min(c.remainingMs, l.ttlMs);
        this.emit({ type: "lease", id: l.id, ttlMs: l.ttlMs, alive: true, remainingMs: l.remainingMs });
        return { ok: true, revision: this.revision };
      }
      case "lease_expire": {
        const l = this.leases.get(c.id);
        if (!l || l.seq !== c.seq) return { ok: true, revision: this.revision, removed: false };
        this.dropLease(c.id);
        return { ok: true, revision: this.revision, removed: true };
      }
      case "campaign": {
        const l = this.leases.get(c.lease);
        if (!l) return { ok: false, code: "lease_not_found", revision: this.revision };
        const queue = this.elections.get(c.name) ?? [];
        const existing = queue.find((x) => x.lease === c.lease);
        if (existing) return { ok: true, revision: this.revision, candidate: existing };
        const candidate: Candidate = { lease: c.lease, value: c.value, createRevision: ++this.revision };
        queue.push(candidate);
        this.elections.set(c.name, queue);
        l.elections.add(c.name);
        this.emit({ type: "election", name: c.name, revision: this.revision });
        return { ok: true, revision: this.revision, candidate };
      }
      case "proclaim": {
        const queue = this.elections.get(c.name);
        const head = queue?.[0];
        if (!queue || !head || head.lease !== c.lease)
          return { ok: false, code: "not_election_leader", revision: this.revision };
        const candidate: Candidate = { ...head, value: c.value };
        queue[0] = candidate;
        this.revision++;
        this.emit({ type: "election", name: c.name, revision: this.revision });
        return { ok: true, revision: this.revision, candidate };
      }
      case "resign": {
        const removed = this.withdraw(c.name, c.lease);
        this.leases.get(c.lease)?.elections.delete(c.name);
        return { ok: true, revision: this.revision, removed };
      }
      case "txn":
        return this.txn(c);
    }
  }

  /**
   * A transaction, whole or not at all: the branch is chosen by the compares, every check that
   * could refuse it (fencing token, lease) is made before anything changes, then its ops run in
   * order. Each change takes the next revision, so a transaction of three puts moves the revision
   * by three; the answer's revision is the last. etcd instead gives all of a transaction's changes
   * one revision (with hidden sub-revisions); here one revision names exactly one change, which is
   * what keeps watch resumption exact (an SSE id is a revision, and resuming after it can neither
   * repeat nor skip half a transaction). Atomicity does not suffer: the whole transaction is one
   * log entry, applied in one step, so no read or watcher ever sees part of it.
   */
  private txn(c: Extract<KvCommand, { op: "txn" }>): KvResult {
    const succeeded = c.compare.every((x) => this.holds(x));
    const ops = succeeded ? c.success : c.failure;
    for (const op of ops) {
      const key = "put" in op ? op.put.key : "delete" in op ? op.delete.key : undefined;
      if (key === undefined) continue;
      if (c.fence !== undefined) {
        const seen = this.fences.get(key) ?? 0;
        if (c.fence < seen) return { ok: false, code: "stale_token", revision: this.revision, fence: seen };
      }
      if ("put" in op && op.put.lease !== undefined && !this.leases.has(op.put.lease))
        return { ok: false, code: "lease_not_found", revision: this.revision, lease: op.put.lease };
    }
    const results: TxnOpResult[] = [];
    for (const op of ops) {
      if ("get" in op) {
        results.push({ op: "get", key: op.get.key, kv: this.kvs.get(op.get.key) ?? null });
      } else if ("put" in op) {
        if (c.fence !== undefined && c.fence > (this.fences.get(op.put.key) ?? 0))
          this.fences.set(op.put.key, c.fence);
        results.push({ op: "put", kv: this.putKey(op.put.key, op.put.value, op.put.lease) });
      } else {
        const key = op.delete.key;
        if (c.fence !== undefined && c.fence > (this.fences.get(key) ?? 0)) this.fences.set(key, c.fence);
        const cur = this.kvs.get(key);
        if (cur) this.deleteKey(cur);
        results.push({ op: "delete", key, deleted: cur !== undefined });
      }
    }
    return { ok: true, revision: this.revision, txn: { succeeded, results } };
  }

  /**
   * Whether a compare holds. A missing key has revision, version and createRevision 0 and no value
   * (every compare on its value fails, as in etcd). Values compare as JSON: == and != on their
   * text as stored; < and > only between two numbers or two strings, otherwise they do not hold.
   */
  private holds(x: TxnCompare): boolean {
    const kv = this.kvs.get(x.key);
    let order: number;
    if (x.target === "value") {
      if (!kv) return false;
      if (x.op === "==") return kv.value === x.value;
      if (x.op === "!=") return kv.value !== x.value;
      const a = JSON.parse(kv.value) as unknown;
      const b = JSON.parse(x.value as string) as unknown;
      if (typeof a === "number" && typeof b === "number") order = a - b;
      else if (typeof a === "string" && typeof b === "string") order = a < b ? -1 : a > b ? 1 : 0;
      else return false;
    } else {
      const have =
        x.target === "revision"
          ? (kv?.modRevision ?? 0)
          : x.target === "version"
            ? (kv?.version ?? 0)
            : (kv?.createRevision ?? 0);
      order = have - (x.value as number);
    }
    switch (x.op) {
      case "==":
        return order === 0;
      case "!=":
        return order !== 0;
      case "<":
        return order < 0;
      case ">":
        return order > 0;
    }
  }

  /** Writes a key at the next revision (its lease bookkeeping included) and tells subscribers. */
  private putKey(key: string, value: string, lease: number | undefined): KeyValue {
    const cur = this.kvs.get(key);
    const rev = ++this.revision;
    if (cur?.lease !== undefined && cur.lease !== lease) this.leases.get(cur.lease)?.keys.delete(key);
    const kv: KeyValue = {
      key,
      value,
      createRevision: cur ? cur.createRevision : rev,
      modRevision: rev,
      version: (cur?.version ?? 0) + 1,
      ...(lease !== undefined ? { lease } : {}),
    };
    this.kvs.set(key, kv);
    if (lease !== undefined) this.leases.get(lease)!.keys.add(key);
    this.emit({ type: "put", kv });
    return kv;
  }

  private write(c: Extract<KvCommand, { op: "put" | "del" }>): KvResult {
    const cur = this.kvs.get(c.key);
    if (c.fence !== undefined) {
      const seen = this.fences.get(c.key) ?? 0;
      if (c.fence < seen) return { ok: false, code: "stale_token", revision: this.revision, fence: seen };
    }
    if (c.ifRevision !== undefined && (cur?.modRevision ?? 0) !== c.ifRevision) {
      return {
        ok: false,
        code: "precondition_failed",
        revision: this.revision,
        current: cur?.modRevision ?? 0,
      };
    }
    if (c.op === "put" && c.lease !== undefined && !this.leases.has(c.lease)) {
      return { ok: false, code: "lease_not_found", revision: this.revision };
    }
    if (c.fence !== undefined && c.fence > (this.fences.get(c.key) ?? 0)) this.fences.set(c.key, c.fence);
    if (c.op === "put") {
      const kv = this.putKey(c.key, c.value, c.lease);
      return { ok: true, revision: kv.modRevision, kv };
    }
    if (!cur) return { ok: true, revision: this.revision, deleted: false };
    this.deleteKey(cur);
    return { ok: true, revision: this.revision, deleted: true };
  }

  private deleteKey(cur: KeyValue): void {
    const rev = ++this.revision;
    this.kvs.delete(cur.key);
    if (cur.lease !== undefined) this.leases.get(cur.lease)?.keys.delete(cur.key);
    this.emit({ type: "delete", key: cur.key, revision: rev });
  }

  /** Removes a lease with its keys (in key order, one revision each) and its candidacies. */
  private dropLease(id: number): void {
    const l = this.leases.get(id)!;
    for (const key of [...l.keys].sort()) {
      const kv = this.kvs.get(key);
      if (kv) this.deleteKey(kv);
    }
    for (const name of [...l.elections].sort()) this.withdraw(name, id);
    this.leases.delete(id);
    this.emit({ type: "lease", id, ttlMs: l.ttlMs, alive: false });
  }

  private withdraw(name: string, lease: number): boolean {
    const queue = this.elections.get(name);
    const i = queue?.findIndex((x) => x.lease === lease) ?? -1;
    if (!queue || i < 0) return false;
    queue.splice(i, 1);
    if (queue.length === 0) this.elections.delete(name);
    this.revision++;
    this.emit({ type: "election", name, revision: this.revision });
    return true;
  }

  get(key: string): KeyValue | undefined {
    return this.kvs.get(key);
  }

  /** Keys starting with `prefix`, in key order, at most `limit`; `more` tells whether there were others. */
  range(prefix: string, limit: number): { kvs: KeyValue[]; more: boolean } {
    const keys: string[] = [];
    for (const k of this.kvs.keys()) if (k.startsWith(prefix)) keys.push(k);
    keys.sort();
    return { kvs: keys.slice(0, limit).map((k) => this.kvs.get(k)!), more: keys.length > limit };
  }

  get size(): number {
    return this.kvs.size;
  }

  lease(id: number): Readonly<LeaseState> | undefined {
    return this.leases.get(id);
  }

  /** How many leases are live. */
  get leaseCount(): number {
    return this.leases.size;
  }

  /** Every live lease (for the expiry timer and listings). */
  allLeases(): Iterable<Readonly<LeaseState>> {
    return this.leases.values();
  }

  /** The queue of an election, leader first. */
  candidates(name: string): readonly Candidate[] {
    return this.elections.get(name) ?? [];
  }

  /** JSON lines: a header, then one line per idempotency key, fence, lease, key and election; ~1 MiB chunks. */
  *snapshot(): Iterable<Uint8Array> {
    let buf = `${JSON.stringify({ format: "ballot-kv", version: 2, revision: this.revision, nextLeaseId: this.nextLeaseId })}\n`;
    const lines = function* (this: KvStore): Iterable<string> {
      for (const [k, m] of this.idem) yield JSON.stringify({ i: k, d: m.digest, r: m.result });
      for (const [k, f] of this.fences) yield JSON.stringify({ f: [k, f] });
      for (const l of this.leases.values())
        yield JSON.stringify({
          l: {
            id: l.id,
            ttlMs: l.ttlMs,
            seq: l.seq,
            ...(l.remainingMs !== undefined ? { r: l.remainingMs } : {}),
          },
        });
      for (const kv of this.kvs.values()) yield JSON.stringify({ k: kv });
      for (const [name, candidates] of this.elections) yield JSON.stringify({ e: { name, candidates } });
    }.call(this);
    for (const l of lines) {
      buf += `${l}\n`;
      if (buf.length > 1 << 20) {
        yield enc.encode(buf);
        buf = "";
      }
    }
    if (buf.length > 0) yield enc.encode(buf);
  }

  restore(chunks: Iterable<Uint8Array>): void {
    const kvs = new Map<string, KeyValue>();
    const idem = new Map<string, Remembered>();
    const fences = new Map<string, number>();
    const leases = new Map<number, LeaseState>();
    const elections = new Map<string, Candidate[]>();
    let revision = -1;
    let nextLeaseId = 1;
    let carry = "";
    const line = (text: string): void => {
      if (text.length === 0) return;
      const o = JSON.parse(text) as {
        format?: string;
        version?: number;
        revision?: number;
        nextLeaseId?: number;
        i?: string;
        d?: string;
        r?: KvResult;
        k?: KeyValue;
        f?: [string, number];
        l?: { id: number; ttlMs: number; seq: number; r?: number };
        e?: { name: string; candidates: Candidate[] };
      };
      if (revision < 0) {
        if (
          o.format !== "ballot-kv" ||
          (o.version !== 1 && o.version !== 2) ||
          typeof o.revision !== "number"
        ) {
          throw new Error("not a Ballot key-value snapshot");
        }
        revision = o.revision;
        nextLeaseId = o.nextLeaseId ?? 1;
      } else if (o.i !== undefined && o.r) idem.set(o.i, { digest: o.d ?? "", result: o.r });
      else if (o.f) fences.set(o.f[0], o.f[1]);
      else if (o.l) {
        const { r, ...l } = o.l;
        leases.set(l.id, {
          ...l,
          ...(r !== undefined ? { remainingMs: r } : {}),
          keys: new Set(),
          elections: new Set(),
        });
      } else if (o.k) kvs.set(o.k.key, o.k);
      else if (o.e) elections.set(o.e.name, o.e.candidates);
      else throw new Error("unknown line in key-value snapshot");
    };
    const decoder = new TextDecoder("utf-8", { fatal: true });
    for (const c of chunks) {
      carry += decoder.decode(c, { stream: true });
      const lines = carry.split("\n");
      carry = lines.pop()!;
      for (const l of lines) line(l);
    }
    carry += decoder.decode();
    line(carry);
    if (revision < 0) throw new Error("empty key-value snapshot");
    // Lease back-references are derived, not stored, so they cannot disagree with the keys.
    for (const kv of kvs.values()) if (kv.lease !== undefined) leases.get(kv.lease)?.keys.add(kv.key);
    for (const [name, cs] of elections) for (const c of cs) leases.get(c.lease)?.elections.add(name);
    this.kvs = kvs;
    this.idem = idem;
    this.fences = fences;
    this.leases = leases;
    this.elections = elections;
    this.revision = revision;
    this.nextLeaseId = nextLeaseId;
    this.emit({ type: "reset", revision });
  }
}
