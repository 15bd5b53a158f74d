/**
 * The simulator's replicated state machine: a tiny key-value map driven by JSON commands, with a
 * running hash of everything applied so the checker can compare nodes (and snapshots) entry by
 * entry. Owns command encoding and apply semantics; must never look at Raft internals.
 */

export type SimCommand =
  | { id: string; op: "put"; key: string; value: string }
  | { id: string; op: "delete"; key: string }
  | { id: string; op: "cas"; key: string; expected: string | null; value: string };

export type SimResult = { ok: boolean };

const enc = new TextEncoder();
const dec = new TextDecoder();

export function encodeCommand(c: SimCommand): Uint8Array {
  return enc.encode(JSON.stringify(c));
}

export function decodeCommand(data: Uint8Array): SimCommand {
  return JSON.parse(dec.decode(data)) as SimCommand;
}

/** FNV-1a over a previous hash and new bytes: the identity of an applied prefix. */
export function chainHash(prev: number, term: number, index: number, data: Uint8Array): number {
  let h = (prev ^ 0x811c9dc5) >>> 0;
  const mix = (b: number): void => {
    h ^= b & 0xff;
    h = Math.imul(h, 0x01000193) >>> 0;
  };
  for (let s = 0; s < 32; s += 8) mix(term >>> s);
  for (let s = 0; s < 32; s += 8) mix(index >>> s);
  for (let i = 0; i < data.length; i++) mix(data[i]!);
  return h;
}

export class SimKv {
  data = new Map<string, string>();
  appliedIndex = 0;
  hash = 0;

  apply(c: SimCommand): SimResult {
    switch (c.op) {
      case "put":
        this.data.set(c.key, c.value);
        return { ok: true };
      case "delete":
        this.data.delete(c.key);
        return { ok: true };
      case "cas": {
        const cur = this.data.get(c.key) ?? null;
        if (cur !== c.expected) return { ok: false };
        this.data.set(c.key, c.value);
        return { ok: true };
      }
    }
  }

  snapshot(): Uint8Array {
    return enc.encode(
      JSON.stringify({ data: [...this.data], appliedIndex: this.appliedIndex, hash: this.hash }),
    );
  }

  static restore(bytes: Uint8Array): SimKv {
    const kv = new SimKv();
    if (bytes.byteLength === 0) return kv;
    const o = JSON.parse(dec.decode(bytes)) as {
      data: [string, string][];
      appliedIndex: number;
      hash: number;
    };
    kv.data = new Map(o.data);
    kv.appliedIndex = o.appliedIndex;
    kv.hash = o.hash;
    return kv;
  }
}
