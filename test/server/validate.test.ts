/**
 * The API's validators are compiled on each route's first request (start-up stays short): this
 * compiles all of them, so a schema Ajv refuses in strict mode fails here rather than as a 500.
 */
import assert from "node:assert/strict";
import { it } from "node:test";
import { ROUTES } from "../../src/api/schemas.js";
import { parseRequestTarget } from "../../src/server/request-target.js";
import { ApiValidator } from "../../src/server/validate.js";

it("every route's schemas compile under Ajv's strict mode", () => {
  const v = new ApiValidator();
  assert.doesNotThrow(() => v.compileAll());
  assert.ok(ROUTES.length > 30);
});

it("a route's validators are compiled on first use and still refuse what the schema refuses", () => {
  const v = new ApiValidator();
  const m = v.match("GET", parseRequestTarget("/v1/kv?limit=0"));
  assert.throws(
    () => v.checkQueryAndHeaders(m, parseRequestTarget("/v1/kv?limit=0"), {}),
    (e: Error & { status?: number }) => e.status === 400 && /limit/.test(e.message),
  );
  assert.throws(
    () => v.match("GET", parseRequestTarget("/v1/leases/0")),
    (e: Error & { status?: number }) => e.status === 400,
  );
});
