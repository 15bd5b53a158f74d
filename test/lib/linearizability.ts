// Linearizability checker for recorded concurrent histories.
//
// Owns: deciding whether a history of client operations, each with a call time and a return time
// (or an unknown outcome), can be explained by one sequential order of those operations that
// respects real time and that a sequential model accepts. When it cannot, it says why: which
// partition failed, the operations involved, and the longest linearized prefix it found.
//
// Must never: do I/O, use randomness, read clocks or set timers. The verdict is a pure function of
// (model, history, budget). The `maxSteps` budget bounds its work; past it the answer is
// "unknown", never a guess.
//
// Algorithm: Wing & Gong's search with Lowe's memoisation (the approach Porcupine also takes),
// written iteratively. Each partition's history becomes a doubly linked list of call and return
// events sorted by time. The search walks the list from the front. At a call it tries to linearize
// that op next: if the model accepts it and the configuration (set of linearized ops, model state)
// has not been seen before, it unlinks the op's call and return events and starts again at the
// front. At a return it has met an op that must already have been linearized, so it backtracks: it
// undoes the latest choice and tries the next call after it. It succeeds once every op with a known
// outcome is linearized: ops with unknown outcomes that are left over go last, which the model must
// accept.
//
// Unknown outcomes are what make a search expensive, since each may be linearized at any point or
// not at all. Two refinements keep that in check. Among the ops that could go next, known ones are
// tried before unknown ones. And the memo prunes by dominance rather than equality: a configuration
// is skipped when one with the same known ops and the same state, but a subset of its unknown ops,
// was already entered, because anything the larger one can still do, the smaller one can too (by
// putting the extra unknown ops last). With no unknown ops that is exactly Lowe's equality test.
// Refuting a history can still take time exponential in how many unknown ops are pending at once;
// the budget turns that into "unknown".

/**
 * One recorded client operation. `returnTime` is Infinity when the outcome is unknown (timeout,
 * crash): the op may or may not have taken effect, at any point after `callTime`.
 */
export interface Operation<I, O> {
  /** Which client issued the op. Used only in explanations. */
  clientId: number;
  input: I;
  /** The observed output; undefined when the outcome is unknown. */
  output: O | undefined;
  /** When the client issued the op. Must be finite. */
  callTime: number;
  /**
   * When the client saw the result; Infinity when the outcome is unknown. Never before `callTime`.
   * This, not `output`, is what marks an outcome unknown: an op with a finite `returnTime` is
   * linearized before it, whatever its output.
   */
  returnTime: number;
}

/** A sequential specification: what one operation does to a state, and which outputs are legal. */
export interface Model<S, I, O> {
  /** The state before any operation. */
  init(): S;
  /**
   * Apply input to state given the observed output (output undefined = unknown outcome; must accept).
   * Returns [legal, nextState]. Must not mutate `state`: the search keeps earlier states to backtrack to.
   */
  step(state: S, input: I, output: O | undefined): [boolean, S];
  /** Split the history into independent sub-histories (e.g. by key). Optional. */
  partition?(history: Operation<I, O>[]): Operation<I, O>[][];
  /** A string that identifies the state, for memoisation. Equal strings must mean equal states. */
  key(state: S): string;
  /** A one-line description of an op, for explanations. Optional; defaults to JSON. */
  describe?(input: I, output: O | undefined): string;
}

/** The verdict on a whole history. */
export interface CheckResult {
  /** true or false when the search finished; "unknown" when the step budget ran out first. */
  linearizable: boolean | "unknown";
  /**
   * for a failure: a human-readable explanation: which partition, the operations involved with times,
   * and the longest linearized prefix found. For "unknown": where the budget ran out.
   */
  explanation?: string;
}

/** Options for {@link checkLinearizable}. */
export interface CheckOptions {
  /**
   * Most search steps over all partitions together; a step is one visit to an event of the history
   * (trying an op, passing over it, or backtracking). Default {@link DEFAULT_MAX_STEPS}. When it
   * runs out the result is "unknown".
   */
  maxSteps?: number;
}

/** The default search budget of {@link checkLinearizable}. */
export const DEFAULT_MAX_STEPS = 5_000_000;

/** Most operations an explanation lists in full before it shows only the ones near the failure. */
const MAX_LISTED_OPS = 30;

/**
 * Decides whether `history` is linearizable with respect to `model`.
 *
 * Real time: op A must be linearized before op B only when A returned strictly before B was called.
 * An op that returns at time t and one called at time t are concurrent (calls sort before returns
 * at equal times). Ops with an unknown outcome (`returnTime` Infinity) may be linearized anywhere
 * after their call, including after every other op, which is how "it never took effect" is expressed
 * (the model must accept an unknown outcome in any state, as {@link Model.step} requires).
 *
 * The history is split with `model.partition` when present; it is linearizable iff every partition
 * is. Partitions are checked smallest first and the first failure is reported. Histories may hold
 * thousands of ops per partition: the search is iterative. Memory grows with the memo cache, which
 * the step budget bounds.
 *
 * @throws RangeError when an op has a non-finite `callTime`, a NaN `returnTime`, or returns before
 *   it is called, or when `maxSteps` is negative or NaN.
 */
export function checkLinearizable<S, I, O>(
  model: Model<S, I, O>,
  history: Operation<I, O>[],
  opts?: CheckOptions,
): CheckResult {
  const maxSteps = opts?.maxSteps ?? DEFAULT_MAX_STEPS;
  if (Number.isNaN(maxSteps) || maxSteps < 0) throw new RangeError(`maxSteps must be >= 0, got ${maxSteps}`);
  history.forEach(validate);

  const originalIndex = new Map<Operation<I, O>, number>();
  history.forEach((op, i) => {
    if (!originalIndex.has(op)) originalIndex.set(op, i);
  });
  const parts = model.partition ? model.partition(history) : [history];
  // Smallest first: cheap partitions cannot be starved by an expensive one, and a quick failure wins.
  const order = parts.map((_, i) => i).sort((a, b) => parts[a]!.length - parts[b]!.length || a - b);

  let remaining = maxSteps;
  for (let k = 0; k < order.length; k++) {
    const p = order[k]!;
    const ops = parts[p]!;
    if (ops.length === 0) continue;
    ops.forEach(validate);
    const label = `partition ${p + 1} of ${parts.length} (${ops.length} ops)`;
    const outcome = checkPartition(model, ops, remaining, label, originalIndex);
    remaining -= outcome.steps;
    if (outcome.verdict === false) return { linearizable: false, explanation: outcome.explanation };
    if (outcome.verdict === "unknown") {
      const unchecked = order.length - k - 1;
      return {
        linearizable: "unknown",
        explanation:
          `search budget of ${maxSteps} steps ran out in ${label}` +
          (unchecked > 0 ? `; ${unchecked} more partition(s) not checked` : ""),
      };
    }
  }
  return { linearizable: true };
}

function validate<I, O>(op: Operation<I, O>, i: number): void {
  if (!Number.isFinite(op.callTime)) {
    throw new RangeError(`op ${i}: callTime must be finite, got ${op.callTime}`);
  }
  if (!(op.returnTime >= op.callTime)) {
    throw new RangeError(`op ${i}: returnTime ${op.returnTime} is not at or after callTime ${op.callTime}`);
  }
}

interface PartitionOutcome {
  verdict: boolean | "unknown";
  steps: number;
  explanation?: string;
}

const HEAD = 0;
const NIL = -1;

/** Searches one partition for a linearization, spending at most `budget` steps. */
function checkPartition<S, I, O>(
  model: Model<S, I, O>,
  ops: Operation<I, O>[],
  budget: number,
  label: string,
  originalIndex: Map<Operation<I, O>, number>,
): PartitionOutcome {
  const n = ops.length;

  // Events sorted by (time, calls before returns, op index). Unknown outcomes return at Infinity,
  // after every finite event; the search ends before it reaches them.
  const events: { time: number; isReturn: number; op: number }[] = [];
  for (let i = 0; i < n; i++) {
    events.push({ time: ops[i]!.callTime, isReturn: 0, op: i });
    events.push({ time: ops[i]!.returnTime, isReturn: 1, op: i });
  }
  events.sort((a, b) => {
    if (a.time !== b.time) return a.time < b.time ? -1 : 1;
    return a.isReturn - b.isReturn || a.op - b.op;
  });

  // Node 0 is the list head; node k >= 1 is events[k - 1].
  const size = 2 * n + 1;
  const next = new Int32Array(size);
  const prev = new Int32Array(size);
  const nodeOp = new Int32Array(size);
  const isCall = new Uint8Array(size);
  const returnNodeOf = new Int32Array(n);
  const match = new Int32Array(size); // call node -> its return node
  for (let k = 1; k < size; k++) {
    const e = events[k - 1]!;
    nodeOp[k] = e.op;
    isCall[k] = e.isReturn === 0 ? 1 : 0;
    if (e.isReturn === 1) returnNodeOf[e.op] = k;
  }
  for (let k = 1; k < size; k++) if (isCall[k] === 1) match[k] = returnNodeOf[nodeOp[k]!]!;
  for (let k = 0; k < size; k++) {
    next[k] = k + 1 < size ? k + 1 : NIL;
    prev[k] = k - 1;
  }

  const unlink = (k: number): void => {
    next[prev[k]!] = next[k]!;
    if (next[k] !== NIL) prev[next[k]!] = prev[k]!;
  };
  const relink = (k: number): void => {
    if (next[k] !== NIL) prev[next[k]!] = k;
    next[prev[k]!] = k;
  };
  // Removes an op's call and return from the list; `restore` undoes it (strictly in LIFO order).
  const lift = (call: number): void => {
    unlink(call);
    unlink(match[call]!);
  };
  const restore = (call: number): void => {
    relink(match[call]!);
    relink(call);
  };

  // Which ops have unknown outcomes: 1 in `unknownOp`, 0 in `knownMask`.
  const words = (n + 31) >>> 5;
  const unknownOp = new Uint8Array(n);
  const knownMask = new Uint32Array(words).fill(0xffffffff);
  let knownCount = 0;
  for (let i = 0; i < n; i++) {
    if (ops[i]!.returnTime === Infinity) {
      unknownOp[i] = 1;
      knownMask[i >>> 5]! &= ~(1 << (i & 31));
    } else {
      knownCount++;
    }
  }
  const anyUnknown = knownCount < n;

  // The set of linearized ops, as an exact bitset, plus a 64-bit Zobrist hash of its known ops.
  const bits = new Uint32Array(words);
  const zobristA = new Int32Array(n);
  const zobristB = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    if (unknownOp[i] === 1) continue;
    zobristA[i] = mix32(2 * i + 1);
    zobristB[i] = mix32(2 * i + 2);
  }
  let hashA = 0;
  let hashB = 0;
  let linearizedKnown = 0;
  const flip = (op: number): void => {
    const bit = 1 << (op & 31);
    bits[op >>> 5]! ^= bit;
    if (unknownOp[op] === 1) return;
    hashA ^= zobristA[op]!;
    hashB ^= zobristB[op]!;
    linearizedKnown += (bits[op >>> 5]! & bit) !== 0 ? 1 : -1;
  };

  // `earlier` dominates `current`: the same known ops, and a subset of its unknown ops.
  const dominates = (earlier: Uint32Array, current: Uint32Array): boolean => {
    for (let w = 0; w < words; w++) {
      if ((earlier[w]! & ~current[w]!) !== 0) return false;
      if ((current[w]! & ~earlier[w]! & knownMask[w]!) !== 0) return false;
    }
    return true;
  };
  // Lowe's memo, keyed by the known ops' hash and the state key. Each bucket holds exact bitsets
  // (so a hash collision can never prune a live branch), none dominating another.
  const seen = new Map<string, Uint32Array[]>();
  const remember = (stateKey: string): boolean => {
    const key = `${hashA}:${hashB}:${stateKey}`;
    const bucket = seen.get(key);
    if (bucket === undefined) {
      seen.set(key, [bits.slice()]);
      return true;
    }
    for (const earlier of bucket) if (dominates(earlier, bits)) return false;
    if (anyUnknown) {
      let kept = 0;
      for (const earlier of bucket) if (!dominates(bits, earlier)) bucket[kept++] = earlier;
      bucket.length = kept;
    }
    bucket.push(bits.slice());
    return true;
  };

  // The search stack: each linearized op's call node, the state before it, and the pass it was in
  // (0: trying known ops, 1: trying unknown ones).
  const stackNode: number[] = [];
  const stackState: S[] = [];
  const stackPass: number[] = [];
  let state = model.init();
  let pass = 0;
  let steps = 0;

  // The longest linearized prefix: its length, and a copy taken lazily when the search first backs
  // off from it (between reaching a new maximum and that moment the stack only grows).
  let bestLen = 0;
  let bestStale = false;
  let bestOps: number[] = [];
  let bestState = state;

  let node = next[HEAD]!;
  while (linearizedKnown < knownCount) {
    if (steps >= budget) return { verdict: "unknown", steps };
    steps++;
    if (isCall[node] === 1) {
      const op = nodeOp[node]!;
      if (unknownOp[op] === pass) {
        const [legal, nextState] = model.step(state, ops[op]!.input, ops[op]!.output);
        if (legal) {
          flip(op);
          if (remember(model.key(nextState))) {
            stackNode.push(node);
            stackState.push(state);
            stackPass.push(pass);
            state = nextState;
            lift(node);
            if (stackNode.length > bestLen) {
              bestLen = stackNode.length;
              bestStale = true;
            }
            pass = 0;
            node = next[HEAD]!;
            continue;
          }
          flip(op);
        }
      }
      node = next[node]!;
    } else if (pass === 0 && anyUnknown) {
      // Every known candidate has been tried; now the unknown ones, from the front again.
      pass = 1;
      node = next[HEAD]!;
    } else {
      // A return event: its op should have been linearized already. Undo the latest choice.
      if (stackNode.length === bestLen && bestStale) {
        bestOps = stackNode.map((k) => nodeOp[k]!);
        bestState = state;
        bestStale = false;
      }
      if (stackNode.length === 0) {
        const explanation = explain(model, ops, label, originalIndex, bestOps, bestState);
        return { verdict: false, steps, explanation };
      }
      const call = stackNode.pop()!;
      state = stackState.pop()!;
      pass = stackPass.pop()!;
      flip(nodeOp[call]!);
      restore(call);
      node = next[call]!;
    }
  }
  return { verdict: true, steps };
}

/** A fixed 32-bit mixing function (murmur3's finaliser); deterministic, not random. */
function mix32(x: number): number {
  x = Math.imul(x ^ (x >>> 16), 0x85ebca6b);
  x = Math.imul(x ^ (x >>> 13), 0xc2b2ae35);
  return x ^ (x >>> 16);
}

function explain<S, I, O>(
  model: Model<S, I, O>,
  ops: Operation<I, O>[],
  label: string,
  originalIndex: Map<Operation<I, O>, number>,
  prefix: number[],
  stateAfterPrefix: S,
): string {
  const describe = (i: number): string => {
    const op = ops[i]!;
    const id = originalIndex.get(op) ?? i;
    const text = model.describe ? model.describe(op.input, op.output) : describeJson(op.input, op.output);
    const ret = op.returnTime === Infinity ? "outcome unknown" : `return ${op.returnTime}`;
    return `#${id} client ${op.clientId}: ${text}  [call ${op.callTime}, ${ret}]`;
  };

  const lines: string[] = [`not linearizable: ${label} has no valid linearization`];

  const byCall = ops.map((_, i) => i).sort((a, b) => ops[a]!.callTime - ops[b]!.callTime || a - b);
  if (ops.length <= MAX_LISTED_OPS) {
    lines.push("operations, by call time:");
    for (const i of byCall) lines.push(`  ${describe(i)}`);
  }

  lines.push(`longest linearized prefix found: ${prefix.length} of ${ops.length} ops`);
  const shownFrom = Math.max(0, prefix.length - MAX_LISTED_OPS);
  if (shownFrom > 0) lines.push(`  ... ${shownFrom} earlier ops`);
  for (let j = shownFrom; j < prefix.length; j++) lines.push(`  ${j + 1}. ${describe(prefix[j]!)}`);
  lines.push(`state after the prefix: ${model.key(stateAfterPrefix)}`);

  // The ops that could have gone next: every op not in the prefix called no later than the
  // earliest return among them (calls before returns at equal times).
  const inPrefix = new Set(prefix);
  const rest = byCall.filter((i) => !inPrefix.has(i));
  let firstReturn = Infinity;
  for (const i of rest) firstReturn = Math.min(firstReturn, ops[i]!.returnTime);
  const candidates = rest.filter((i) => ops[i]!.callTime <= firstReturn);
  lines.push("none of these can be linearized next:");
  for (const i of candidates.slice(0, MAX_LISTED_OPS)) {
    const [legal] = model.step(stateAfterPrefix, ops[i]!.input, ops[i]!.output);
    const why = legal ? "legal here, but no complete linearization follows" : "illegal in this state";
    lines.push(`  ${describe(i)}: ${why}`);
  }
  if (candidates.length > MAX_LISTED_OPS) lines.push(`  ... ${candidates.length - MAX_LISTED_OPS} more`);
  return lines.join("\n");
}

function describeJson(input: unknown, output: unknown): string {
  const json = (v: unknown): string => {
    try {
      return JSON.stringify(v) ?? String(v);
    } catch {
      return String(v);
    }
  };
  return `${json(input)} -> ${output === undefined ? "?" : json(output)}`;
}

// ---------------------------------------------------------------------------------------------
// A ready-made model: a key-value store with get, put, delete and compare-and-swap.

/** An operation on the key-value store. `cas` swaps in `value` iff the current value is `expected` (null = absent). */
export type KvInput =
  | { op: "get"; key: string }
  | { op: "put"; key: string; value: string }
  | { op: "delete"; key: string }
  | { op: "cas"; key: string; expected: string | null; value: string };

/** `{ value }` answers a get (null = absent); `{ ok }` answers put and delete (true) and cas (whether it swapped). */
export type KvOutput = { value: string | null } | { ok: boolean };

/**
 * The key-value store, modelled one key at a time: the state is that key's value (null = absent)
 * and `partition` splits the history by key.
 *
 * - get must return the current value; put sets it; delete sets it to null; cas swaps iff the
 *   current value equals `expected`, and its `ok` must say whether it swapped.
 * - Callers do not record put/delete/cas ops that definitely failed. If a put or delete with
 *   `ok: false` is recorded anyway, it is taken to have had no effect.
 * - Unknown outcome (output undefined): get is legal and changes nothing (so `partition` drops such
 *   gets: they constrain nothing); put and delete apply; cas applies iff it matches.
 */
export const kvModel: Model<string | null, KvInput, KvOutput> = {
  init: () => null,

  step(state, input, output) {
    switch (input.op) {
      case "get":
        if (output === undefined) return [true, state];
        return ["value" in output && output.value === state, state];
      case "put":
      case "delete": {
        const written = input.op === "put" ? input.value : null;
        if (output === undefined) return [true, written];
        if (!("ok" in output)) return [false, state];
        return [true, output.ok ? written : state];
      }
      case "cas": {
        const matches = state === input.expected;
        if (output === undefined) return [true, matches ? input.value : state];
        if (!("ok" in output)) return [false, state];
        return [output.ok === matches, matches ? input.value : state];
      }
    }
  },

  partition(history) {
    const byKey = new Map<string, Operation<KvInput, KvOutput>[]>();
    for (const op of history) {
      if (op.input.op === "get" && op.output === undefined) continue;
      let ops = byKey.get(op.input.key);
      if (ops === undefined) {
        ops = [];
        byKey.set(op.input.key, ops);
      }
      ops.push(op);
    }
    return [...byKey.values()];
  },

  key: (state) => (state === null ? "absent" : `value ${JSON.stringify(state)}`),

  describe(input, output) {
    const q = (v: string | null): string => JSON.stringify(v);
    let call: string;
    switch (input.op) {
      case "get":
      case "delete":
        call = `${input.op}(key ${q(input.key)})`;
        break;
      case "put":
        call = `put(key ${q(input.key)}, ${q(input.value)})`;
        break;
      case "cas":
        call = `cas(key ${q(input.key)}, ${q(input.expected)} -> ${q(input.value)})`;
        break;
    }
    let result: string;
    if (output === undefined) result = "?";
    else if ("value" in output) result = q(output.value);
    else if (input.op === "cas") result = output.ok ? "swapped" : "not swapped";
    else result = output.ok ? "ok" : "failed";
    return `${call} -> ${result}`;
  },
};
