// Tests for the linearizability checker: hand-written histories for each rule of the key-value
// model, the budget and the explanation, then seeded random histories cross-checked against a
// brute-force search and histories that are linearizable by construction.
// Set LIN_SEED=<integer> to replay the random tests with another seed.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import {
  checkLinearizable,
  type KvInput,
  type KvOutput,
  kvModel,
  type Model,
  type Operation,
} from "./linearizability.js";

type KvOp = Operation<KvInput, KvOutput>;

// ---- builders ------------------------------------------------------------------------------------

function get(key: string, value: string | null, call: number, ret: number, clientId = 0): KvOp {
  return { clientId, input: { op: "get", key }, output: { value }, callTime: call, returnTime: ret };
}
function put(key: string, value: string, call: number, ret: number, clientId = 0): KvOp {
  return {
    clientId,
    input: { op: "put", key, value },
    output: { ok: true },
    callTime: call,
    returnTime: ret,
  };
}
function del(key: string, call: number, ret: number, clientId = 0): KvOp {
  return { clientId, input: { op: "delete", key }, output: { ok: true }, callTime: call, returnTime: ret };
}
function cas(
  key: string,
  expected: string | null,
  value: string,
  swapped: boolean,
  call: number,
  ret: number,
  clientId = 0,
): KvOp {
  return {
    clientId,
    input: { op: "cas", key, expected, value },
    output: { ok: swapped },
    callTime: call,
    returnTime: ret,
  };
}
/** The same op with an unknown outcome: no output, never returned. */
function unknown(op: KvOp): KvOp {
  return { ...op, output: undefined, returnTime: Infinity };
}

function verdict(history: KvOp[], maxSteps?: number): boolean | "unknown" {
  return checkLinearizable(kvModel, history, maxSteps === undefined ? undefined : { maxSteps }).linearizable;
}

// ---- hand-written histories ----------------------------------------------------------------------

describe("checkLinearizable with kvModel", () => {
  test("an empty history is linearizable", () => {
    assert.deepEqual(checkLinearizable(kvModel, []), { linearizable: true });
  });

  test("a sequential history that follows the register is linearizable", () => {
    const h = [
      get("x", null, 0, 1),
      put("x", "a", 2, 3),
      get("x", "a", 4, 5),
      put("x", "b", 6, 7),
      get("x", "b", 8, 9),
      del("x", 10, 11),
      get("x", null, 12, 13),
    ];
    assert.equal(verdict(h), true);
  });

  test("a sequential read of the wrong value is not linearizable", () => {
    assert.equal(verdict([put("x", "a", 0, 1), put("x", "b", 2, 3), get("x", "a", 4, 5)]), false);
  });

  test("overlapping writes may take effect in either order, as later reads show", () => {
    const writes = [put("x", "a", 0, 10, 1), put("x", "b", 1, 9, 2)];
    assert.equal(verdict([...writes, get("x", "a", 11, 12, 3)]), true);
    assert.equal(verdict([...writes, get("x", "b", 11, 12, 3)]), true);
    assert.equal(verdict([...writes, get("x", "a", 11, 12, 3), get("x", "a", 13, 14, 3)]), true);
  });

  test("reads concurrent with a write may see the old or the new value, but never go back", () => {
    const w = put("x", "a", 0, 10, 1);
    assert.equal(verdict([w, get("x", null, 1, 2, 2), get("x", "a", 3, 4, 2)]), true);
    assert.equal(verdict([w, get("x", "a", 1, 2, 2), get("x", null, 3, 4, 3)]), false);
  });

  test("reads after overlapping writes completed cannot flip between their values", () => {
    const h = [
      put("x", "a", 0, 10, 1),
      put("x", "b", 1, 9, 2),
      get("x", "b", 11, 12, 3),
      get("x", "a", 13, 14, 3),
    ];
    assert.equal(verdict(h), false);
  });

  test("a stale read after a completed write is not linearizable", () => {
    assert.equal(verdict([put("x", "a", 0, 1, 1), put("x", "b", 2, 3, 1), get("x", "a", 4, 5, 2)]), false);
  });

  test("a lost write (acknowledged, then never seen) is not linearizable", () => {
    assert.equal(verdict([put("x", "a", 0, 1, 1), get("x", null, 2, 3, 2)]), false);
    assert.equal(verdict([put("x", "a", 0, 1, 1), del("x", 2, 3, 1), get("x", "a", 4, 5, 2)]), false);
  });

  test("a read of a value never written is not linearizable", () => {
    assert.equal(verdict([put("x", "a", 0, 10, 1), get("x", "z", 1, 2, 2)]), false);
  });

  test("an op returning at time t and one called at time t are concurrent", () => {
    // The get is called exactly when the put returns, so it may be ordered before it.
    assert.equal(verdict([put("x", "a", 0, 5, 1), get("x", null, 5, 6, 2)]), true);
    assert.equal(verdict([put("x", "a", 0, 5, 1), get("x", null, 5.5, 6, 2)]), false);
  });

  test("cas swaps iff the current value matches and must report whether it did", () => {
    assert.equal(verdict([cas("x", null, "a", true, 0, 1), get("x", "a", 2, 3)]), true);
    assert.equal(verdict([cas("x", "b", "a", false, 0, 1), get("x", null, 2, 3)]), true);
    assert.equal(verdict([cas("x", "b", "a", true, 0, 1)]), false, "swapped although absent != b");
    assert.equal(verdict([cas("x", null, "a", false, 0, 1)]), false, "did not swap although it matched");
    assert.equal(verdict([cas("x", null, "a", false, 0, 1), get("x", "a", 2, 3)]), false);
    assert.equal(verdict([put("x", "b", 0, 1), cas("x", "b", "c", true, 2, 3), get("x", "c", 4, 5)]), true);
  });

  test("a recorded put or delete with ok false is taken to have had no effect", () => {
    const failedPut: KvOp = { ...put("x", "b", 2, 3), output: { ok: false } };
    const failedDelete: KvOp = { ...del("x", 4, 5), output: { ok: false } };
    assert.equal(verdict([put("x", "a", 0, 1), failedPut, failedDelete, get("x", "a", 6, 7)]), true);
    assert.equal(verdict([put("x", "a", 0, 1), failedPut, get("x", "b", 6, 7)]), false);
  });

  test("of two racing cas ops from the same expected value, exactly one may swap", () => {
    const a = (ok: boolean): KvOp => cas("x", null, "a", ok, 0, 10, 1);
    const b = (ok: boolean): KvOp => cas("x", null, "b", ok, 1, 9, 2);
    assert.equal(verdict([a(true), b(false), get("x", "a", 11, 12, 3)]), true);
    assert.equal(verdict([a(false), b(true), get("x", "b", 11, 12, 3)]), true);
    assert.equal(verdict([a(true), b(false), get("x", "b", 11, 12, 3)]), false);
    assert.equal(verdict([a(true), b(true)]), false);
    assert.equal(verdict([a(false), b(false)]), false);
  });

  test("an unknown-outcome write observed by a later read is linearizable", () => {
    const h = [unknown(put("x", "a", 0, 0, 1)), get("x", null, 1, 2, 2), get("x", "a", 50, 51, 2)];
    assert.equal(verdict(h), true);
  });

  test("an unknown-outcome write never observed is linearizable", () => {
    const h = [unknown(put("x", "a", 0, 0, 1)), get("x", null, 5, 6, 2), get("x", null, 100, 101, 2)];
    assert.equal(verdict(h), true);
    assert.equal(verdict([unknown(del("x", 0, 0, 1)), put("x", "b", 1, 2, 2), get("x", "b", 3, 4, 2)]), true);
  });

  test("an unknown-outcome write cannot be observed and then vanish", () => {
    const h = [unknown(put("x", "a", 0, 0, 1)), get("x", "a", 5, 6, 2), get("x", null, 7, 8, 2)];
    assert.equal(verdict(h), false);
  });

  test("an unknown-outcome write observed by a read that precedes its call is not linearizable", () => {
    assert.equal(verdict([get("x", "a", 0, 1, 2), unknown(put("x", "a", 2, 2, 1))]), false);
  });

  test("an unknown-outcome cas applies only if it matches", () => {
    const h = [put("x", "b", 0, 1), unknown(cas("x", "b", "c", true, 2, 2, 1)), get("x", "c", 5, 6, 2)];
    assert.equal(verdict(h), true);
    const mismatch = [
      put("x", "b", 0, 1),
      unknown(cas("x", "z", "c", true, 2, 2, 1)),
      get("x", "c", 5, 6, 2),
    ];
    assert.equal(verdict(mismatch), false);
  });

  test("an unknown-outcome get constrains nothing", () => {
    const h = [put("x", "a", 0, 1), unknown(get("x", "zzz", 2, 3)), get("x", "a", 4, 5)];
    assert.equal(verdict(h), true);
  });

  test("partition splits by key, so keys are checked independently", () => {
    const h = [
      put("x", "a", 0, 1, 1),
      put("y", "b", 2, 3, 2),
      get("x", "a", 4, 5, 1),
      get("y", "b", 4, 5, 2),
      get("z", null, 0, 9, 3),
    ];
    const parts = kvModel.partition!(h);
    assert.deepEqual(
      parts.map((p) => p.map((op) => op.input.key)),
      [["x", "x"], ["y", "y"], ["z"]],
    );
    // As one register this history would fail (x reads "a" after "b" was written); per key it holds.
    assert.equal(verdict(h), true);
    const { partition: _, ...singleRegister } = kvModel;
    assert.equal(checkLinearizable(singleRegister, h).linearizable, false);
  });

  test("a failure in one key fails the whole history and the explanation names that key", () => {
    const h = [
      put("x", "a", 0, 1, 1),
      get("x", "a", 2, 3, 1),
      put("y", "b", 0, 1, 2),
      put("y", "c", 2, 3, 2),
      get("y", "b", 4, 5, 3),
    ];
    const result = checkLinearizable(kvModel, h);
    assert.equal(result.linearizable, false);
    const text = result.explanation ?? "";
    assert.match(text, /partition 2 of 2 \(3 ops\)/);
    assert.match(text, /key "y"/);
    assert.doesNotMatch(text, /key "x"/);
    assert.match(text, /#4 client 3: get\(key "y"\) -> "b" {2}\[call 4, return 5\]/);
    assert.match(text, /longest linearized prefix found: 2 of 3 ops/);
    assert.match(text, /state after the prefix: value "c"/);
    assert.match(text, /illegal in this state/);
  });

  test("the explanation lists every op of a small partition, marking unknown outcomes", () => {
    const h = [put("x", "a", 0, 10, 1), unknown(put("x", "b", 1, 1, 2)), get("x", "z", 20, 21, 3)];
    const result = checkLinearizable(kvModel, h);
    assert.equal(result.linearizable, false);
    const text = result.explanation ?? "";
    assert.match(text, /#0 client 1: put\(key "x", "a"\) -> ok {2}\[call 0, return 10\]/);
    assert.match(text, /#1 client 2: put\(key "x", "b"\) -> \? {2}\[call 1, outcome unknown\]/);
    assert.match(text, /#2 client 3: get\(key "x"\) -> "z" {2}\[call 20, return 21\]: illegal in this state/);
  });

  test("the step budget turns a long search into 'unknown' instead of a verdict", () => {
    // Ten overlapping writes, then a read of a value nobody wrote: refuting it means trying many orders.
    const h: KvOp[] = [];
    for (let i = 0; i < 10; i++) h.push(put("x", `v${i}`, i, 100 + i, i));
    h.push(get("x", "never", 200, 201, 99));
    const small = checkLinearizable(kvModel, h, { maxSteps: 100 });
    assert.equal(small.linearizable, "unknown");
    assert.match(small.explanation ?? "", /budget of 100 steps/);
    assert.equal(verdict(h), false);
    assert.equal(verdict(h.slice(0, 10), 0), "unknown");
  });

  test("invalid times are rejected", () => {
    assert.throws(() => verdict([put("x", "a", 5, 4)]), RangeError);
    assert.throws(() => verdict([put("x", "a", Number.NaN, 4)]), RangeError);
    assert.throws(() => verdict([put("x", "a", 0, 1)], -1), RangeError);
  });

  test("a long sequential history of 5,000 ops is checked without recursion", () => {
    const h: KvOp[] = [];
    for (let i = 0; i < 2500; i++) {
      h.push(put("x", `v${i % 7}`, 4 * i, 4 * i + 1));
      h.push(get("x", `v${i % 7}`, 4 * i + 2, 4 * i + 3));
    }
    assert.equal(verdict(h), true);
    h.push(get("x", "v9", 1e6, 1e6 + 1));
    assert.equal(verdict(h), false);
  });
});

describe("checkLinearizable with a model of its own", () => {
  // A FIFO queue without partition or describe: checks the generic path and the JSON fallback.
  type QIn = { enq: number } | { deq: true };
  type QOut = { got: number | null } | { done: true };
  const queue: Model<number[], QIn, QOut> = {
    init: () => [],
    step(state, input, output) {
      if ("enq" in input) return [true, [...state, input.enq]];
      if (output === undefined) return [true, state.slice(1)];
      const head = state.length > 0 ? state[0]! : null;
      return ["got" in output && output.got === head, state.slice(1)];
    },
    key: (state) => state.join(","),
  };
  const op = (clientId: number, input: QIn, output: QOut, callTime: number, returnTime: number) => ({
    clientId,
    input,
    output,
    callTime,
    returnTime,
  });

  test("a queue whose concurrent enqueues are dequeued in either order is linearizable", () => {
    const h = [
      op(1, { enq: 1 }, { done: true }, 0, 10),
      op(2, { enq: 2 }, { done: true }, 0, 10),
      op(3, { deq: true }, { got: 2 }, 11, 12),
      op(3, { deq: true }, { got: 1 }, 13, 14),
    ];
    assert.equal(checkLinearizable(queue, h).linearizable, true);
  });

  test("a queue that reorders sequential enqueues is not linearizable, explained in JSON", () => {
    const h = [
      op(1, { enq: 1 }, { done: true }, 0, 1),
      op(1, { enq: 2 }, { done: true }, 2, 3),
      op(2, { deq: true }, { got: 2 }, 4, 5),
    ];
    const result = checkLinearizable(queue, h);
    assert.equal(result.linearizable, false);
    assert.match(result.explanation ?? "", /partition 1 of 1/);
    assert.match(result.explanation ?? "", /\{"deq":true\} -> \{"got":2\}/);
  });
});

// ---- randomized checks -----------------------------------------------------------------------------

const SEED = (() => {
  const fromEnv = Number.parseInt(process.env.LIN_SEED ?? "", 10);
  return Number.isNaN(fromEnv) ? 0x5eed1234 : fromEnv;
})();

/** mulberry32: a tiny seeded PRNG returning floats in [0, 1). */
function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

class Rng {
  private readonly next: () => number;
  constructor(seed: number) {
    this.next = mulberry32(seed);
  }
  float(): number {
    return this.next();
  }
  /** An integer in [lo, hi]. */
  int(lo: number, hi: number): number {
    return lo + Math.floor(this.next() * (hi - lo + 1));
  }
  pick<T>(items: readonly T[]): T {
    return items[this.int(0, items.length - 1)]!;
  }
  chance(p: number): boolean {
    return this.next() < p;
  }
}

const VALUES = ["a", "b", "c"] as const;

function randomInput(rng: Rng, keys: readonly string[]): KvInput {
  const key = rng.pick(keys);
  switch (rng.int(0, 3)) {
    case 0:
      return { op: "get", key };
    case 1:
      return { op: "put", key, value: rng.pick(VALUES) };
    case 2:
      return { op: "delete", key };
    default:
      return { op: "cas", key, expected: rng.chance(0.3) ? null : rng.pick(VALUES), value: rng.pick(VALUES) };
  }
}

/**
 * The sequential store, written independently of kvModel: applies `input` to `store` and says whether
 * `output` is what it would answer. Mutates `store` only when legal.
 */
function applySpec(store: Map<string, string>, input: KvInput, output: KvOutput | undefined): boolean {
  const current = store.get(input.key) ?? null;
  const set = (v: string | null) => (v === null ? store.delete(input.key) : store.set(input.key, v));
  if (input.op === "get") return output === undefined || ("value" in output && output.value === current);
  if (output !== undefined && !("ok" in output)) return false;
  if (input.op === "put" || input.op === "delete") {
    set(input.op === "put" ? input.value : null);
    return true;
  }
  const swaps = current === input.expected;
  if (output !== undefined && output.ok !== swaps) return false;
  if (swaps) set(input.value);
  return true;
}

/**
 * Brute force over all keys at once: tries every order of the ops that respects real time (a before b
 * iff a returned strictly before b was called). Unknown-outcome ops may be placed or left out.
 */
function bruteForce(history: KvOp[]): boolean {
  const n = history.length;
  const placed = new Array<boolean>(n).fill(false);
  const mustPlace = history.filter((op) => op.returnTime !== Infinity).length;
  const search = (store: Map<string, string>, placedKnown: number): boolean => {
    if (placedKnown === mustPlace) return true;
    for (let i = 0; i < n; i++) {
      if (placed[i]) continue;
      const op = history[i]!;
      const ready = history.every((other, j) => placed[j] || j === i || !(other.returnTime < op.callTime));
      if (!ready) continue;
      const next = new Map(store);
      if (!applySpec(next, op.input, op.output)) continue;
      placed[i] = true;
      const found = search(next, placedKnown + (op.returnTime === Infinity ? 0 : 1));
      placed[i] = false;
      if (found) return true;
    }
    return false;
  };
  return search(new Map(), 0);
}

/**
 * A history that is linearizable by construction: each op takes effect at a random point, the outputs
 * come from running the ops sequentially in that order, and each op's interval is drawn around its
 * point. Some ops get an unknown outcome; those take effect or not at random.
 */
function constructedHistory(rng: Rng, count: number, keys: readonly string[], unknownRate: number): KvOp[] {
  const planned = [];
  for (let i = 0; i < count; i++) {
    const point = rng.int(0, 20);
    planned.push({
      i,
      point,
      input: randomInput(rng, keys),
      callTime: point - rng.int(0, 3),
      returnTime: point + rng.int(0, 3),
      unknown: rng.chance(unknownRate),
      tookEffect: rng.chance(0.5),
    });
  }
  const store = new Map<string, string>();
  const history: KvOp[] = new Array(count);
  for (const p of [...planned].sort((a, b) => a.point - b.point || a.i - b.i)) {
    const output = sequentialOutput(store, p.input, !p.unknown || p.tookEffect);
    history[p.i] = {
      clientId: p.i,
      input: p.input,
      output: p.unknown ? undefined : output,
      callTime: p.callTime,
      returnTime: p.unknown ? Infinity : p.returnTime,
    };
  }
  return history;
}

/** What the sequential store answers to `input`; applies it to `store` iff `apply`. */
function sequentialOutput(store: Map<string, string>, input: KvInput, apply: boolean): KvOutput {
  const current = store.get(input.key) ?? null;
  const next = (v: string | null) => {
    if (!apply) return;
    if (v === null) store.delete(input.key);
    else store.set(input.key, v);
  };
  switch (input.op) {
    case "get":
      return { value: current };
    case "put":
      next(input.value);
      return { ok: true };
    case "delete":
      next(null);
      return { ok: true };
    case "cas":
      if (current !== input.expected) return { ok: false };
      next(input.value);
      return { ok: true };
  }
}

/** Changes one thing about a history: an output, or an op's interval. Often breaks linearizability. */
function mutate(rng: Rng, history: KvOp[]): KvOp[] {
  const h = history.map((op) => ({ ...op }));
  const op = rng.pick(h);
  const roll = rng.int(0, 2);
  if (roll === 0 && op.output !== undefined && "value" in op.output) {
    op.output = { value: rng.chance(0.25) ? null : rng.pick(VALUES) };
  } else if (roll === 1 && op.output !== undefined && op.input.op === "cas" && "ok" in op.output) {
    op.output = { ok: !op.output.ok };
  } else {
    op.callTime = rng.int(-3, 20);
    if (op.returnTime !== Infinity) op.returnTime = op.callTime + rng.int(0, 4);
  }
  return h;
}

function randomHistory(rng: Rng, count: number, keys: readonly string[]): KvOp[] {
  const h: KvOp[] = [];
  for (let i = 0; i < count; i++) {
    const input = randomInput(rng, keys);
    const callTime = rng.int(0, 12);
    const known = !rng.chance(0.15);
    let output: KvOutput | undefined;
    if (known && input.op === "get") output = { value: rng.chance(0.3) ? null : rng.pick(VALUES) };
    else if (known && input.op === "cas") output = { ok: rng.chance(0.5) };
    else if (known) output = { ok: true };
    h.push({
      clientId: i,
      input,
      output,
      callTime,
      returnTime: known ? callTime + rng.int(0, 5) : Infinity,
    });
  }
  return h;
}

function show(history: KvOp[]): string {
  return history
    .map((op) => `  ${kvModel.describe!(op.input, op.output)} [${op.callTime}, ${op.returnTime}]`)
    .join("\n");
}

describe("checkLinearizable against brute force on random histories", () => {
  test(`agrees with a brute-force search on 3,000 small random histories (seed ${SEED})`, () => {
    const rng = new Rng(SEED);
    const keys = ["x", "y"] as const;
    const tally = { true: 0, false: 0 };
    for (let iteration = 0; iteration < 3000; iteration++) {
      const count = rng.int(1, 7);
      const kind = rng.int(0, 2);
      let history: KvOp[];
      if (kind === 0) history = randomHistory(rng, count, keys);
      else history = constructedHistory(rng, count, keys, 0.2);
      if (kind === 2) history = mutate(rng, history);
      const expected = bruteForce(history);
      const actual = checkLinearizable(kvModel, history).linearizable;
      assert.equal(
        actual,
        expected,
        `seed ${SEED}, iteration ${iteration}: checker says ${actual}, brute force says ${expected}\n${show(history)}`,
      );
      tally[expected ? "true" : "false"]++;
    }
    // Both verdicts must be well represented, or the comparison proves little.
    assert.ok(
      tally.true > 600 && tally.false > 600,
      `seed ${SEED}: unbalanced verdicts ${JSON.stringify(tally)}`,
    );
  });

  test(`passes 1,000 small histories that are linearizable by construction (seed ${SEED})`, () => {
    const rng = new Rng(SEED ^ 0x9e3779b9);
    for (let iteration = 0; iteration < 1000; iteration++) {
      const history = constructedHistory(rng, rng.int(1, 7), ["x", "y"], 0.2);
      const result = checkLinearizable(kvModel, history);
      assert.equal(
        result.linearizable,
        true,
        `seed ${SEED}, iteration ${iteration}: ${result.explanation}\n${show(history)}`,
      );
    }
  });
});

/**
 * A realistic history: `clients` clients each issue ops one after another (a client's next op starts
 * after its previous one returned or timed out), every op takes effect at a random point inside its
 * interval, and outputs come from the sequential store in that order. So it is linearizable.
 */
function clientHistory(
  rng: Rng,
  count: number,
  clients: number,
  keys: readonly string[],
  unknownRate: number,
): KvOp[] {
  const clock = new Array<number>(clients).fill(0);
  const planned = [];
  for (let i = 0; i < count; i++) {
    const clientId = rng.int(0, clients - 1);
    const callTime = clock[clientId]! + rng.float() * 3;
    const returnTime = callTime + 0.5 + rng.float() * 10;
    clock[clientId] = returnTime;
    const unknown = rng.chance(unknownRate);
    planned.push({
      i,
      clientId,
      input: randomInput(rng, keys),
      callTime,
      returnTime,
      point: callTime + rng.float() * (returnTime - callTime),
      unknown,
      tookEffect: rng.chance(0.5),
    });
  }
  const store = new Map<string, string>();
  const history: KvOp[] = new Array(count);
  for (const p of [...planned].sort((a, b) => a.point - b.point)) {
    const output = sequentialOutput(store, p.input, !p.unknown || p.tookEffect);
    history[p.i] = {
      clientId: p.clientId,
      input: p.input,
      output: p.unknown ? undefined : output,
      callTime: p.callTime,
      returnTime: p.unknown ? Infinity : p.returnTime,
    };
  }
  return history;
}

describe("checkLinearizable on larger histories", () => {
  for (const keys of [["k"], ["k1", "k2", "k3"]]) {
    test(`accepts 200 ops from 5 clients on ${keys.length} key(s) in well under a second (seed ${SEED})`, () => {
      const rng = new Rng(SEED + keys.length);
      for (let round = 0; round < 5; round++) {
        const history = clientHistory(rng, 200, 5, keys, 0.05);
        const started = performance.now();
        const result = checkLinearizable(kvModel, history);
        const elapsed = performance.now() - started;
        assert.equal(result.linearizable, true, `seed ${SEED}, round ${round}: ${result.explanation}`);
        assert.ok(elapsed < 1000, `seed ${SEED}, round ${round}: took ${elapsed.toFixed(1)} ms`);
      }
    });
  }

  test(`finds a single corrupted read in 200 ops from 5 clients (seed ${SEED})`, () => {
    const rng = new Rng(SEED + 7);
    // No unknown outcomes here: refuting a history costs time exponential in how many of those are
    // pending at once, and this test is about speed on the common case.
    const history = clientHistory(rng, 200, 5, ["k"], 0);
    // Corrupt the last completed get to a value nobody ever writes.
    let victim = history.length - 1;
    const isCompletedGet = (op: KvOp) => op.input.op === "get" && op.output !== undefined;
    while (victim >= 0 && !isCompletedGet(history[victim]!)) victim--;
    assert.ok(victim >= 0);
    history[victim] = { ...history[victim]!, output: { value: "never-written" } };
    const started = performance.now();
    const result = checkLinearizable(kvModel, history);
    const elapsed = performance.now() - started;
    assert.equal(result.linearizable, false, `seed ${SEED}`);
    assert.match(result.explanation ?? "", /"never-written"/);
    assert.ok(elapsed < 1000, `seed ${SEED}: took ${elapsed.toFixed(1)} ms`);
  });
});
