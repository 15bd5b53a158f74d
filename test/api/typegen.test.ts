/**
 * The client's wire types are generated from the API's schemas: the committed file must be what the
 * generator writes now (run `npm run gen:api` after changing src/api/schemas.ts).
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { describe, it } from "node:test";
import { generateClientTypes, typeOf } from "../../src/api/typegen.js";

describe("generated client types", () => {
  it("src/client/api-types.ts is current", () => {
    const committed = readFileSync(new URL("../../../src/client/api-types.ts", import.meta.url), "utf8");
    // The committed file is also run through the formatter: compare without layout.
    const squash = (s: string) =>
      s
        .replace(/\s+/g, "")
        .replace(/,([}\]])/g, "$1")
        .replace(/;}/g, "}");
    assert.equal(squash(committed), squash(generateClientTypes()), "run `npm run gen:api`");
  });

  it("translates the schema forms the API uses", () => {
    assert.equal(typeOf({ type: ["integer", "null"] }), "number | null");
    assert.equal(typeOf({ enum: ["a", "b"] }), '"a" | "b"');
    assert.equal(typeOf({ const: "*" }), '"*"');
    assert.equal(typeOf({}), "unknown");
    assert.equal(
      typeOf({ type: "array", items: { type: ["string", "null"] } }),
      "readonly (string | null)[]",
    );
    assert.equal(
      typeOf({
        type: "object",
        additionalProperties: false,
        properties: { a: { type: "string" } },
        required: ["a"],
      }),
      "{\n  readonly a: string;\n}",
    );
  });
});
