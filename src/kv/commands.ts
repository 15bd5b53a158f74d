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
  /** Bytes of an election name. */
  electionNameBytes: 256,
  /** Lease TTL bounds, in ms. */
  leaseTtlMinMs: 1000,
  leaseTtlMaxMs: 86_400_000,
  /** Entries in each of a transaction's lists (compare, success, failure), as etcd's --max-txn-ops. */
  txnOps: 128,
  /** Bytes of all the values one transaction carries (its puts' and its compares' JSON text). */
  txnValueBytes: 1 << 20,
} as const;

/** What a transaction's compare looks at; `revision` is the key's modRevision, as in etcd. */
export type TxnTarget = "value" | "revision" | "version" | "createRevision";
export type TxnCompareOp = "==" | "!=" | "<" | ">";

export interface TxnCompare {
  readonly key: string;
  readonly target: TxnTarget;
  readonly op: TxnCompareOp;
  /** JSON text for target `value`; a non-negative integer for the others. */
  readonly value: string | number;
}

export type TxnOp =
  | { readonly put: { readonly key: string; readonly value: string; readonly lease?: number } }
  | { readonly delete: { readonly key: string } }
  | { readonly get: { readonly key: string } };

export type TxnOpResult =
  | { readonly op: "put"; readonly kv: KeyValue }
  | { readonly op: "delete"; readonly key: string; readonly deleted: boolean }
  | { readonly op: "get"; readonly key: string; readonly kv: KeyValue | null };

export interface TxnOutcome {
  readonly succeeded: boolean;
  readonly results: readonly TxnOpResult[];
  /** Set on a replayed outcome (same Idempotency-Key) whose gets' values were too large to remember. */
  readonly valuesOmitted?: boolean;
}

export type KvCommand =
  | {
      readonly op: "put";
      readonly key: string;
      /** The value as JSON text. */
      readonly value: string;
      /** Compare-and-set: the key's modRevision must equal this (0 = the key must be absent). */
      readonly ifRevision?: number;
      /** Attach the key to this lease (deleted when it expires). */
      readonly lease?: number;
      /** Fencing token: refused if lower than the highest token a write to this key carried. */
      readonly fence?: number;
      readonly idem?: string;
    }
  | {
      readonly op: "del";
      readonly key: string;
      readonly ifRevision?: number;
      readonly fence?: number;
      readonly idem?: string;
    }
  | { readonly op: "lease_grant"; readonly ttlMs: number; readonly idem?: string }
  | { readonly op: "lease_keepalive"; readonly id: number }
  | { readonly op: "lease_revoke"; readonly id: number; readonly idem?: string }
  /** Proposed by the leader when a lease's TTL ran out; applies only if `seq` is still the lease's renewal count. */
  | { readonly op: "lease_expire"; readonly id: number; readonly seq: number }
  /**
   * Proposed by the leader for a lease not renewed for half its TTL: how much of it was left by
   * the leader's clock, so a node that leads next (or restarts) does not grant it a whole new TTL.
   * Applies only if `seq` is still the lease's renewal count.
   */
  | {
      readonly op: "lease_checkpoint";
      readonly id: number;
      readonly seq: number;
      readonly remainingMs: number;
    }
  | {
      readonly op: "campaign";
      readonly name: string;
      readonly lease: number;
      readonly value: string;
      readonly idem?: string;
    }
  | {
      readonly op: "proclaim";
      readonly name: string;
      readonly lease: number;
      readonly value: string;
      readonly idem?: string;
    }
  | { readonly op: "resign"; readonly name: string; readonly lease: number; readonly idem?: string }
  /**
   * A transaction: if every compare holds, the success ops run, else the failure ops — in order,
   * as one log entry, so no reader anywhere sees part of it. Each change takes the next revision
   * (see KvStore.txn for why not one shared revision); a fence applies to every key it writes.
   */
  | {
      readonly op: "txn";
      readonly compare: readonly TxnCompare[];
      readonly success: readonly TxnOp[];
      readonly failure: readonly TxnOp[];
      readonly fence?: number;
      readonly idem?: string;
    };

export interface KeyValue {
  readonly key: string;
  /** JSON text. */
  readonly value: string;
  readonly createRevision: number;
  readonly modRevision: number;
  readonly version: number;
  /** The lease the key is attached to, if any. */
  readonly lease?: number;
}

export interface Candidate {
  readonly lease: number;
  /** JSON text. */
  readonly value: string;
  /** The revision at which it joined the queue: the fencing token once it leads. */
  readonly createRevision: number;
}

export type KvFailure =
  | {
      readonly ok: false;
      readonly code: "precondition_failed";
      readonly revision: number;
      readonly current: number;
    }
  | { readonly ok: false; readonly code: "stale_token"; readonly revision: number; readonly fence: number }
  | {
      readonly ok: false;
      readonly code: "lease_not_found";
      readonly revision: number;
      readonly lease?: number;
    }
  | { readonly ok: false; readonly code: "not_election_leader"; readonly revision: number }
  | { readonly ok: false; readonly code: "idempotency_key_reused"; readonly revision: number };

export type KvResult =
  | {
      readonly ok: true;
      readonly revision: number;
      readonly kv?: KeyValue;
      readonly deleted?: boolean;
      readonly lease?: { readonly id: number; readonly ttlMs: number };
      readonly candidate?: Candidate;
      /** For resign and expiry: whether anything was removed. */
      readonly removed?: boolean;
      readonly txn?: TxnOutcome;
    }
  | KvFailure;

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
  // Counted, not encoded: a write checks several strings, and an encode allocates each time.
  // Lone surrogates count as U+FFFD's 3 bytes, as an encoder would write them.
  return Buffer.byteLength(s, "utf8");
}

/** Checks a key; returns a reason or null. */
export function checkKey(key: string): string | null {
  if (key.length === 0) return "the key is empty";
  if (utf8Length(key) > LIMITS.keyBytes) return `the key is longer than ${LIMITS.keyBytes} bytes`;
  return null;
}

/** Checks an election name; returns a reason or null. */
export function checkElectionName(name: string): string | null {
  if (name.length === 0) return "the election name is empty";
  if (utf8Length(name) > LIMITS.electionNameBytes)
    return `the election name is longer than ${LIMITS.electionNameBytes} bytes`;
  return null;
}

const isId = (v: unknown): boolean => Number.isSafeInteger(v) && (v as number) >= 1;
const isCount = (v: unknown): boolean => Number.isSafeInteger(v) && (v as number) >= 0;

const FIELDS: Record<KvCommand["op"], readonly string[]> = {
  put: ["op", "key", "value", "ifRevision", "lease", "fence", "idem"],
  del: ["op", "key", "ifRevision", "fence", "idem"],
  lease_grant: ["op", "ttlMs", "idem"],
  lease_keepalive: ["op", "id"],
  lease_revoke: ["op", "id", "idem"],
  lease_expire: ["op", "id", "seq"],
  lease_checkpoint: ["op", "id", "seq", "remainingMs"],
  campaign: ["op", "name", "lease", "value", "idem"],
  proclaim: ["op", "name", "lease", "value", "idem"],
  resign: ["op", "name", "lease", "idem"],
  txn: ["op", "compare", "success", "failure", "fence", "idem"],
};

const TARGETS: readonly string[] = ["value", "revision", "version", "createRevision"];
const COMPARE_OPS: readonly string[] = ["==", "!=", "<", ">"];

const onlyKeys = (o: Record<string, unknown>, allowed: readonly string[]): string | null => {
  for (const f of Object.keys(o)) if (!allowed.includes(f)) return `unknown field '${f}'`;
  return null;
};
const isPlain = (v: unknown): v is Record<string, unknown> =>
  typeof v === "object" && v !== null && !Array.isArray(v);

/** Checks a transaction's lists; returns a reason or null. Values are counted against one budget. */
function checkTxn(o: Record<string, unknown>): string | null {
  let valueBytes = 0;
  const lists = ["compare", "success", "failure"] as const;
  for (const name of lists) {
    const list = o[name];
    if (!Array.isArray(list)) return `${name} must be a list`;
    if (list.length > LIMITS.txnOps) return `${name} has more than ${LIMITS.txnOps} entries`;
  }
  for (const [i, c] of (o.compare as unknown[]).entries()) {
    const at = `compare[${i}]`;
    if (!isPlain(c)) return `${at} must be an object`;
    const extra = onlyKeys(c, ["key", "target", "op", "value"]);
    if (extra) return `${at}: ${extra}`;
    if (typeof c.key !== "string") return `${at}: key must be a string`;
    const k = checkKey(c.key);
    if (k) return `${at}: ${k}`;
    if (typeof c.target !== "string" || !TARGETS.includes(c.target))
      return `${at}: target must be value, revision, version or createRevision`;
    if (typeof c.op !== "string" || !COMPARE_OPS.includes(c.op)) return `${at}: op must be ==, !=, < or >`;
    if (c.target === "value") {
      const v = checkValue(c.value);
      if (v) return `${at}: ${v}`;
      valueBytes += utf8Length(c.value as string);
    } else if (!isCount(c.value)) return `${at}: value must be a non-negative integer for ${c.target}`;
  }
  for (const name of ["success", "failure"] as const) {
    const written = new Set<string>();
    for (const [i, op] of (o[name] as unknown[]).entries()) {
      const at = `${name}[${i}]`;
      if (!isPlain(op) || Object.keys(op).length !== 1) return `${at} must be one of {put}, {delete}, {get}`;
      const [kind, arg] = Object.entries(op)[0]!;
      if (kind !== "put" && kind !== "delete" && kind !== "get")
        return `${at} must be one of {put}, {delete}, {get}`;
      if (!isPlain(arg)) return `${at}.${kind} must be an object`;
      const extra = onlyKeys(arg, kind === "put" ? ["key", "value", "lease"] : ["key"]);
      if (extra) return `${at}.${kind}: ${extra}`;
      if (typeof arg.key !== "string") return `${at}.${kind}: key must be a string`;
      const k = checkKey(arg.key);
      if (k) return `${at}.${kind}: ${k}`;
      if (kind === "put") {
        const v = checkValue(arg.value);
        if (v) return `${at}.put: ${v}`;
        valueBytes += utf8Length(arg.value as string);
        if (arg.lease !== undefined && !isId(arg.lease)) return `${at}.put: lease must be a positive integer`;
      }
      if (kind !== "get") {
        // As in etcd: one write per key per branch, so the outcome never depends on op order subtleties.
        if (written.has(arg.key)) return `${at}: the key '${arg.key}' is written twice in ${name}`;
        written.add(arg.key);
      }
    }
  }
  if (valueBytes > LIMITS.txnValueBytes)
    return `the transaction carries more than ${LIMITS.txnValueBytes} bytes of values`;
  if (o.fence !== undefined && !isCount(o.fence)) return "the fencing token must be a non-negative integer";
  return null;
}

function checkValue(v: unknown): string | null {
  if (typeof v !== "string") return "value must be JSON text";
  if (utf8Length(v) > LIMITS.valueBytes) return `the value is larger than ${LIMITS.valueBytes} bytes`;
  return null;
}

export function validateCommand(c: unknown): string | null {
  if (typeof c !== "object" || c === null) return "not an object";
  const o = c as Record<string, unknown>;
  if (typeof o.op !== "string" || !Object.hasOwn(FIELDS, o.op)) return "unknown op";
  const op = o.op as KvCommand["op"];
  for (const f of Object.keys(o)) if (!FIELDS[op].includes(f)) return `unknown field '${f}'`;
  if (
    o.idem !== undefined &&
    (typeof o.idem !== "string" || o.idem.length === 0 || utf8Length(o.idem) > LIMITS.idempotencyKeyBytes)
  ) {
    return `idempotency key must be 1-${LIMITS.idempotencyKeyBytes} bytes`;
  }
  switch (op) {
    case "put":
    case "del": {
      if (typeof o.key !== "string") return "key must be a string";
      const k = checkKey(o.key);
      if (k) return k;
      if (op === "put") {
        const v = checkValue(o.value);
        if (v) return v;
      }
      if (o.ifRevision !== undefined && !isCount(o.ifRevision))
        return "ifRevision must be a non-negative integer";
      if (o.lease !== undefined && !isId(o.lease)) return "lease must be a positive integer";
      if (o.fence !== undefined && !isCount(o.fence))
        return "the fencing token must be a non-negative integer";
      return null;
    }
    case "lease_grant":
      if (
        !Number.isSafeInteger(o.ttlMs) ||
        (o.ttlMs as number) < LIMITS.leaseTtlMinMs ||
        (o.ttlMs as number) > LIMITS.leaseTtlMaxMs
      ) {
        return `ttl must be from ${LIMITS.leaseTtlMinMs / 1000} to ${LIMITS.leaseTtlMaxMs / 1000} seconds`;
      }
      return null;
    case "lease_keepalive":
    case "lease_revoke":
    case "lease_expire":
    case "lease_checkpoint":
      if (!isId(o.id)) return "the lease id must be a positive integer";
      if ((op === "lease_expire" || op === "lease_checkpoint") && !isCount(o.seq))
        return "seq must be a non-negative integer";
      if (
        op === "lease_checkpoint" &&
        !(isCount(o.remainingMs) && (o.remainingMs as number) <= LIMITS.leaseTtlMaxMs)
      )
        return "remainingMs must be a whole number of ms within the longest TTL";
      return null;
    case "campaign":
    case "proclaim":
    case "resign": {
      if (typeof o.name !== "string") return "the election name must be a string";
      const n = checkElectionName(o.name);
      if (n) return n;
      if (!isId(o.lease)) return "lease must be a positive integer";
      if (op !== "resign") return checkValue(o.value);
      return null;
    }
    case "txn":
      return checkTxn(o);
  }
}
