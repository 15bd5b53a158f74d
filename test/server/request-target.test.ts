/**
 * The request target is read literally: what is refused (and with which code), and what a
 * legitimate target decodes to — including what must NOT be resolved or normalized.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { HttpError } from "../../src/server/http-util.js";
import { parseRequestTarget, strictDecode } from "../../src/server/request-target.js";

const refused = (target: string, code: string) => {
  assert.throws(
    () => parseRequestTarget(target),
    (e: unknown) => e instanceof HttpError && e.status === 400 && e.code === code,
    `${target} → ${code}`,
  );
};

describe("parseRequestTarget", () => {
  it("refuses dot segments, plain or percent-encoded in any case, anywhere in the path", () => {
    for (const t of [
      "/v1/kv/a/../b",
      "/v1/kv/./b",
      "/v1/kv/a/%2e%2e/b",
      "/v1/kv/a/%2E%2e/b",
      "/v1/kv/a/.%2E",
      "/v1/kv/a/%2e",
      "/..",
      "/v1/..",
    ])
      refused(t, "invalid_path");
  });

  it("refuses empty segments, bad percent-encoding, non-UTF-8 and NUL in the path", () => {
    for (const t of [
      "//v1/kv",
      "/v1//kv",
      "/v1/kv/",
      "/v1/kv/%",
      "/v1/kv/%zz",
      "/v1/kv/%4",
      "/v1/kv/%ff",
      "/v1/kv/%c3%28",
      "/v1/kv/%e0%80",
      "/v1/kv/a%00b",
      "/v1/kv/a#f",
    ])
      refused(t, "invalid_path");
    refused("v1/kv", "invalid_path");
    refused("*", "invalid_path");
  });

  it("refuses the same in the query, and repeated or empty parameters", () => {
    for (const t of [
      "/v1/kv?prefix=%",
      "/v1/kv?prefix=x/%z",
      "/v1/kv?prefix=%00",
      "/v1/kv?prefix=%ff",
      "/v1/kv?%zz=1",
      "/v1/kv?a=1&a=2",
      "/v1/kv?a=1&&b=2",
      "/v1/kv?a=1&",
      "/v1/kv?=1",
    ])
      refused(t, "invalid_query");
  });

  it("decodes a legitimate target without resolving anything inside a segment", () => {
    const t = parseRequestTarget("/v1/kv/dir%2F..%2Fx?prefix=a+b&limit=10&flag");
    assert.equal(t.rawPath, "/v1/kv/dir%2F..%2Fx");
    assert.deepEqual(t.rawSegments, ["v1", "kv", "dir%2F..%2Fx"]);
    assert.deepEqual(t.segments, ["v1", "kv", "dir/../x"]);
    assert.deepEqual(
      [...t.query],
      [
        ["prefix", "a b"],
        ["limit", "10"],
        ["flag", ""],
      ],
    );
    assert.deepEqual(parseRequestTarget("/").segments, []);
    // a segment that merely contains dots is a name, not a dot segment
    assert.deepEqual(parseRequestTarget("/v1/kv/...").segments, ["v1", "kv", "..."]);
    assert.deepEqual(parseRequestTarget("/v1/kv/a.b").segments, ["v1", "kv", "a.b"]);
    assert.deepEqual(parseRequestTarget("/v1/kv/%E2%82%AC").segments, ["v1", "kv", "€"]);
  });

  it("takes an absolute-form target's path and query only", () => {
    const t = parseRequestTarget("http://example.com:2379/v1/kv/a?consistency=local");
    assert.deepEqual(t.segments, ["v1", "kv", "a"]);
    assert.equal(t.query.get("consistency"), "local");
    refused("http://example.com/v1/../kv", "invalid_path");
  });
});

describe("strictDecode", () => {
  it("decodes valid UTF-8 escapes and refuses broken ones", () => {
    assert.equal(strictDecode("plain"), "plain");
    assert.equal(strictDecode("a%20b%2Fc"), "a b/c");
    assert.equal(strictDecode("%F0%9F%98%80"), "😀");
    for (const s of ["%", "%2", "%g0", "%80", "%F0%9F%98", "%ed%a0%80"])
      assert.equal(strictDecode(s), null, s);
  });
});
