/**
 * The replicated key-value state machine: keys with JSON values, a global revision, per-key create
 * and modify revisions and a version, compare-and-set, delete, range by prefix, and remembered
 * idempotency keys (bounded, replicated, in snapshots) so a retried write is applied once
 * (client sessions, Raft dissertation §6.3). Owns the state and its snapshot format. Must be
 * deterministic: no clock, no randomness, no I/O.
 */
import type { StateMachine } from "../node/raft-node.js";
import { decodeCommand, type KeyValue, type KvCommand, type KvResult } from "./commands.js";

/** How many idempotency keys are remembered (oldest forgotten first). */
export const IDEMPOTENCY_WINDOW = 100_000;

const enc = new TextEncoder();

export class KvStore implements StateMachine<KvResult> {
  private kvs = new Map<string, KeyValue>();
  /** Global revision: the number of changes applied. */
  revision = 0;
  private idem = new Map<string, KvResult>();

  apply(command: Uint8Array): KvResult {
    return this.applyCommand(decodeCommand(command));
  }

  applyCommand(c: KvCommand): KvResult {
    if (c.idem !== undefined) {
      const seen = this.idem.get(c.idem);
      if (seen) return seen;
    }
    const result = this.execute(c);
    if (c.idem !== undefined) {
      this.idem.set(c.idem, result);
      if (this.idem.size > IDEMPOTENCY_WINDOW) this.idem.delete(this.idem.keys().next().value as string);
    }
    return result;
  }

  private execute(c: KvCommand): KvResult {
    const cur = this.kvs.get(c.key);
    if (c.ifRevision !== undefined && (cur?.modRevision ?? 0) !== c.ifRevision) {
      return {
        ok: false,
        code: "precondition_failed",
        revision: this.revision,
        current: cur?.modRevision ?? 0,
      };
    }
    if (c.op === "put") {
      const rev = ++this.revision;
      const kv: KeyValue = {
        key: c.key,
        value: c.value,
        createRevision: cur ? cur.createRevision : rev,
        modRevision: rev,
        version: (cur?.version ?? 0) + 1,
      };
      this.kvs.set(c.key, kv);
      return { ok: true, revision: rev, kv };
    }
    if (!cur) return { ok: true, revision: this.revision, deleted: false };
    const rev = ++this.revision;
    this.kvs.delete(c.key);
    return { ok: true, revision: rev, deleted: true };
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

  /** JSON lines: a header, then one line per idempotency key and per key; streamed in ~1 MiB chunks. */
  *snapshot(): Iterable<Uint8Array> {
    let buf = `${JSON.stringify({ format: "ballot-kv", version: 1, revision: this.revision })}\n`;
    for (const [k, r] of this.idem) {
      buf += `${JSON.stringify({ i: k, r })}\n`;
      if (buf.length > 1 << 20) {
        yield enc.encode(buf);
        buf = "";
      }
    }
    for (const kv of this.kvs.values()) {
      buf += `${JSON.stringify({ k: kv })}\n`;
      if (buf.length > 1 << 20) {
        yield enc.encode(buf);
        buf = "";
      }
    }
    if (buf.length > 0) yield enc.encode(buf);
  }

  restore(chunks: Iterable<Uint8Array>): void {
    const kvs = new Map<string, KeyValue>();
    const idem = new Map<string, KvResult>();
    let revision = -1;
    let carry = "";
    const line = (l: string): void => {
      if (l.length === 0) return;
      const o = JSON.parse(l) as {
        format?: string;
        version?: number;
        revision?: number;
        i?: string;
        r?: KvResult;
        k?: KeyValue;
      };
      if (revision < 0) {
        if (o.format !== "ballot-kv" || o.version !== 1 || typeof o.revision !== "number") {
          throw new Error("not a Ballot key-value snapshot");
        }
        revision = o.revision;
      } else if (o.i !== undefined && o.r) idem.set(o.i, o.r);
      else if (o.k) kvs.set(o.k.key, o.k);
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
    this.kvs = kvs;
    this.idem = idem;
    this.revision = revision;
  }
}
