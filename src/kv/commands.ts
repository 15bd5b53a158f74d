/**
 * The commands the key-value state machine replicates, their results, and the limits every
 * request is checked against before it can reach the log. Owns encoding and validation; must
 * never touch state.
 */

export const LIMITS = {
  /** Bytes of a key (UTF-8). */
  keyBytes: 4096,
  /** Bytes of a value (its JSON text). */
  valueBytes: 1 << 20,
  /** Bytes of an Idempotency-Key. */
  idempotencyKeyBytes: 256,
} as const;

export type KvCommand =
  | {
      readonly op: "put";
      readonly key: string;
      /** The value as JSON text. */
      readonly value: string;
      /** Compare-and-set: the key's modRevision must equal this (0 = the key must be absent). */
      readonly ifRevision?: number;
      readonly idem?: string;
    }
  | { readonly op: "del"; readonly key: string; readonly ifRevision?: number; readonly idem?: string };

export interface KeyValue {
  readonly key: string;
  /** JSON text. */
  readonly value: string;
  readonly createRevision: number;
  readonly modRevision: number;
  readonly version: number;
}

export type KvResult =
  | { readonly ok: true; readonly revision: number; readonly kv?: KeyValue; readonly deleted?: boolean }
  | {
      readonly ok: false;
      readonly code: "precondition_failed";
      readonly revision: number;
      readonly current: number;
    };

const enc = new TextEncoder();
const dec = new TextDecoder("utf-8", { fatal: true });

export function encodeCommand(c: KvCommand): Uint8Array {
  return enc.encode(JSON.stringify(c));
}

/** Decodes a command from the log. Throws on anything that is not a valid command (a bug or a foreign log). */
export function decodeCommand(bytes: Uint8Array): KvCommand {
  const c = JSON.parse(dec.decode(bytes)) as KvCommand;
  const problem = validateCommand(c);
  if (problem) throw new Error(`invalid command in the log: ${problem}`);
  return c;
}

export function utf8Length(s: string): number {
  return enc.encode(s).byteLength;
}

/** Checks a key; returns a reason or null. */
export function checkKey(key: string): string | null {
  if (key.length === 0) return "the key is empty";
  if (utf8Length(key) > LIMITS.keyBytes) return `the key is longer than ${LIMITS.keyBytes} bytes`;
  return null;
}

export function validateCommand(c: unknown): string | null {
  if (typeof c !== "object" || c === null) return "not an object";
  const o = c as Record<string, unknown>;
  if (o.op !== "put" && o.op !== "del") return "unknown op";
  if (typeof o.key !== "string") return "key must be a string";
  const k = checkKey(o.key);
  if (k) return k;
  if (o.op === "put") {
    if (typeof o.value !== "string") return "value must be JSON text";
    if (utf8Length(o.value) > LIMITS.valueBytes) return `the value is larger than ${LIMITS.valueBytes} bytes`;
  }
  if (o.ifRevision !== undefined && !(Number.isSafeInteger(o.ifRevision) && (o.ifRevision as number) >= 0)) {
    return "ifRevision must be a non-negative integer";
  }
  if (
    o.idem !== undefined &&
    (typeof o.idem !== "string" || o.idem.length === 0 || utf8Length(o.idem) > LIMITS.idempotencyKeyBytes)
  ) {
    return `idempotency key must be 1-${LIMITS.idempotencyKeyBytes} bytes`;
  }
  const allowed =
    o.op === "put" ? ["op", "key", "value", "ifRevision", "idem"] : ["op", "key", "ifRevision", "idem"];
  for (const f of Object.keys(o)) if (!allowed.includes(f)) return `unknown field '${f}'`;
  return null;
}
