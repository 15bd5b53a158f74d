/**
 * Strict JSON bodies: depth, duplicate keys (also through escapes), encoding, and that every
 * ordinary body still parses to what JSON.parse gives.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import { HttpError } from "../../src/server/http-util.js";
import { MAX_JSON_DEPTH, parseStrictJson } from "../../src/server/json-body.js";

const seed = Number(process.env.FC_SEED ?? 20261205);
const enc = (s: string) => new TextEncoder().encode(s);
const refused = (body: string | Uint8Array, what: RegExp) =>
  assert.throws(
    () => parseStrictJson(typeof body === "string" ? enc(body) : body),
    (e: unknown) =>
      e instanceof HttpError && e.status === 400 && e.code === "invalid_json" && what.test(e.message),
    String(body).slice(0, 80),
  );
const nest = (n: number) => `{"value":${"[".repeat(n - 1)}${"]".repeat(n - 1)}}`;

describe("parseStrictJson", () => {
  it(`takes ${MAX_JSON_DEPTH} levels and refuses ${MAX_JSON_DEPTH + 1} and far more`, () => {
    assert.deepEqual(parseStrictJson(enc(nest(MAX_JSON_DEPTH))), JSON.parse(nest(MAX_JSON_DEPTH)));
    refused(nest(MAX_JSON_DEPTH + 1), /deeper than 64/);
    refused(nest(100_000), /deeper than 64|not valid JSON/);
    refused(`{"a":${'{"b":'.repeat(70)}1${"}".repeat(70)}}`, /deeper than 64/);
  });

  it("refuses a key named twice in one object, at any depth, also through escapes", () => {
    refused('{"value":1,"value":2}', /'value' twice/);
    refused('{"a":1,"\\u0061":2}', /'a' twice/);
    refused('{"v":{"x":1,"y":2,"x":3}}', /'x' twice/);
    refused('{"v":[{"k":1},{"k":1,"k":2}]}', /'k' twice/);
    refused('{"a\\"b":1,"a\\"b":2}', /twice/);
    // the same key in different objects, or as a string value, is fine
    assert.deepEqual(parseStrictJson(enc('{"v":[{"k":1},{"k":2}],"k":"k"}')), {
      v: [{ k: 1 }, { k: 2 }],
      k: "k",
    });
    assert.deepEqual(parseStrictJson(enc('{"a":"a","b":{"a":"a"}}')), { a: "a", b: { a: "a" } });
  });

  it("refuses a BOM, bytes that are not UTF-8, and text that is not JSON", () => {
    refused(Uint8Array.from([0xef, 0xbb, 0xbf, ...enc('{"value":1}')]), /byte-order mark/);
    refused(Uint8Array.from([0x7b, 0x22, 0xff, 0x22, 0x3a, 0x31, 0x7d]), /not UTF-8/);
    for (const t of ['{"value":1}x', '{"value":}', "{value:1}", "", '{"value":1,}', "[1,]"])
      refused(t, /not valid JSON/);
  });

  it("parses every ordinary value as JSON.parse does", () => {
    fc.assert(
      fc.property(fc.jsonValue({ maxDepth: 10 }), (v) => {
        const text = JSON.stringify(v);
        assert.deepEqual(parseStrictJson(enc(text)), JSON.parse(text));
      }),
      { seed, numRuns: 500 },
    );
  });
});
