/**
 * Property tests of the WAL record codec (fast-check): whatever is written decodes to exactly that,
 * and any damage to the bytes — truncation, flipped bits, overwritten or inserted bytes — yields
 * the records before the damage and then a stop (torn or corrupt), never a different record.
 * Seeded: set FC_SEED to replay a failure (fast-check prints the seed and path).
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import {
  decodeEntry,
  decodeHardState,
  encodeHardState,
  entryFrameSize,
  type FrameResult,
  KIND_ENTRY,
  readFrame,
  writeEntryFrame,
} from "../../src/storage/record.js";

const seed = Number(process.env.FC_SEED ?? 20261123);

// fast-check builds records without a prototype; spread them into plain objects for deepEqual.
const entryArb = fc
  .record({
    type: fc.constantFrom("normal" as const, "config" as const),
    term: fc.integer({ min: 0, max: 2 ** 48 - 1 }),
    index: fc.integer({ min: 0, max: 2 ** 48 - 1 }),
    data: fc.uint8Array({ maxLength: 300 }),
  })
  .map((e) => ({ ...e }));
type E = { type: "normal" | "config"; term: number; index: number; data: Uint8Array };

function encodeAll(es: E[]): { buf: Uint8Array; starts: number[] } {
  let size = 0;
  for (const e of es) size += entryFrameSize(e.data.byteLength);
  const buf = new Uint8Array(size);
  const starts: number[] = [];
  let at = 0;
  for (const e of es) {
    starts.push(at);
    at = writeEntryFrame(buf, at, e.type, e.term, e.index, e.data);
  }
  return { buf, starts };
}

/** Decodes frames until something other than "ok"; returns the entries and how it stopped. */
function decodeAll(buf: Uint8Array): { entries: E[]; stop: FrameResult["kind"] } {
  const entries: E[] = [];
  let at = 0;
  for (;;) {
    const r = readFrame(buf, at);
    if (r.kind !== "ok") return { entries, stop: r.kind };
    assert.equal(r.payload[0], KIND_ENTRY);
    const d = decodeEntry(r.payload);
    entries.push({ type: d.type, term: d.term, index: d.index, data: d.data.slice() });
    at = r.next;
  }
}

describe("WAL record codec", () => {
  it("round-trips any sequence of entries exactly", () => {
    fc.assert(
      fc.property(fc.array(entryArb, { maxLength: 20 }), (es) => {
        const { buf } = encodeAll(es);
        const got = decodeAll(buf);
        assert.equal(got.stop, "end");
        assert.deepEqual(got.entries, es);
      }),
      { seed, numRuns: 300 },
    );
  });

  it("round-trips hard states, including ids in any script", () => {
    fc.assert(
      fc.property(
        fc.record({
          term: fc.integer({ min: 0, max: 2 ** 48 - 1 }),
          commit: fc.integer({ min: 0, max: 2 ** 48 - 1 }),
          vote: fc.option(fc.string({ maxLength: 40, unit: "grapheme" }), { nil: null }),
        }),
        (h) => assert.deepEqual(decodeHardState(encodeHardState(h)), { ...h }),
      ),
      { seed, numRuns: 300 },
    );
  });

  it("a truncated log yields exactly the whole records before the cut, then a torn tail", () => {
    fc.assert(
      fc.property(fc.array(entryArb, { minLength: 1, maxLength: 10 }), fc.nat(), (es, cutSeed) => {
        const { buf, starts } = encodeAll(es);
        const cut = cutSeed % buf.length;
        const got = decodeAll(buf.subarray(0, cut));
        const whole = starts.filter((s, i) => (starts[i + 1] ?? buf.length) <= cut && s < cut).length;
        assert.deepEqual(got.entries, es.slice(0, whole));
        assert.equal(got.stop, starts.includes(cut) ? "end" : "torn");
      }),
      { seed, numRuns: 500 },
    );
  });

  it("any damage yields a prefix of what was written and then a stop, never a different record", () => {
    const damage = fc.oneof(
      fc.record({ kind: fc.constant("flip" as const), at: fc.nat(), mask: fc.integer({ min: 1, max: 255 }) }),
      fc.record({
        kind: fc.constant("overwrite" as const),
        at: fc.nat(),
        bytes: fc.uint8Array({ minLength: 1, maxLength: 16 }),
      }),
      fc.record({
        kind: fc.constant("insert" as const),
        at: fc.nat(),
        bytes: fc.uint8Array({ minLength: 1, maxLength: 16 }),
      }),
    );
    fc.assert(
      fc.property(
        fc.array(entryArb, { minLength: 1, maxLength: 10 }),
        fc.array(damage, { minLength: 1, maxLength: 3 }),
        (es, ds) => {
          const { buf } = encodeAll(es);
          let b = buf.slice();
          for (const d of ds) {
            const at = d.at % b.length;
            if (d.kind === "flip") b[at]! ^= d.mask;
            else if (d.kind === "overwrite") b.set(d.bytes.subarray(0, b.length - at), at);
            else {
              const n = new Uint8Array(b.length + d.bytes.length);
              n.set(b.subarray(0, at));
              n.set(d.bytes, at);
              n.set(b.subarray(at), at + d.bytes.length);
              b = n;
            }
          }
          const got = decodeAll(b);
          // Everything decoded is what was written, in order, and no record past the damage survives as "ok" unless unchanged.
          for (let i = 0; i < got.entries.length; i++) assert.deepEqual(got.entries[i], es[i]);
          if (Buffer.compare(Buffer.from(b), Buffer.from(buf)) !== 0) {
            assert.ok(got.entries.length < es.length || got.stop !== "end", "damage must not go unnoticed");
          }
        },
      ),
      { seed, numRuns: 1000 },
    );
  });
});
