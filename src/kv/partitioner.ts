/**
 * Which partition (Raft group) a key lives in. Owns the rule, fixed when a cluster is created: a
 * stable hash of the whole key (FNV-1a over its UTF-8 bytes, modulo the partition count), or a
 * prefix rule (`prefix:/` hashes only the key up to its first `/`, so `user42/...` stays in one
 * partition — the seed's "split by user id"). Must never change how an existing key maps: data
 * already lives where this says it does.
 */

export type PartitionRule =
  | { readonly kind: "hash" }
  | { readonly kind: "prefix"; readonly delimiter: string };

/** Parses `hash` or `prefix:D` (D one to eight characters). Throws RangeError with the accepted forms. */
export function parsePartitionRule(text: string): PartitionRule {
  if (text === "hash") return { kind: "hash" };
  const m = /^prefix:(.{1,8})$/su.exec(text);
  if (m) return { kind: "prefix", delimiter: m[1]! };
  throw new RangeError(
    `--partition-by must be 'hash' or 'prefix:D' with a delimiter D such as '/' (got '${text}')`,
  );
}

export function formatPartitionRule(rule: PartitionRule): string {
  return rule.kind === "hash" ? "hash" : `prefix:${rule.delimiter}`;
}

const enc = new TextEncoder();

function fnv1a(text: string): number {
  let h = 0x811c9dc5;
  for (const b of enc.encode(text)) {
    h ^= b;
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h >>> 0;
}

export class Partitioner {
  constructor(
    readonly count: number,
    readonly rule: PartitionRule = { kind: "hash" },
  ) {
    if (!Number.isInteger(count) || count < 1)
      throw new RangeError(`partition count must be a positive integer, not ${count}`);
  }

  /** The part of `key` that decides its partition. */
  routingKey(key: string): string {
    if (this.rule.kind === "hash") return key;
    const at = key.indexOf(this.rule.delimiter);
    return at < 0 ? key : key.slice(0, at);
  }

  /** The partition `key` lives in. */
  of(key: string): number {
    return this.count === 1 ? 0 : fnv1a(this.routingKey(key)) % this.count;
  }

  /**
   * The one partition every key starting with `prefix` lives in, or null when such keys may be in
   * several (a range or watch over them would span partitions).
   */
  ofPrefix(prefix: string): number | null {
    if (this.count === 1) return 0;
    if (this.rule.kind === "prefix" && prefix.includes(this.rule.delimiter)) return this.of(prefix);
    return null;
  }
}
