/**
 * A request may only ever act on the resource it names. Sent over raw sockets (fetch would resolve
 * the dot segments itself): dot segments, plain and percent-encoded, empty segments, bad
 * percent-encoding, NUL and non-UTF-8 in the path or the query, repeated parameters, encoded
 * aliases of fixed segments, unsafe integers, wrong types and unknown fields, bodies where none
 * belongs. Each is a 4xx JSON error within 1 s, and afterwards nothing has changed on any node:
 * revision, membership, leases, elections, and the baseline key.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { settledState } from "../lib/cluster-state.js";
import { rawRequest } from "../lib/raw-http.js";
import { call, ProcCluster } from "./procs.js";

interface Case {
  readonly name: string;
  readonly method: string;
  readonly target: string;
  readonly body?: string;
  readonly headers?: Record<string, string>;
  readonly status: number;
  readonly code?: string;
}

const CASES: Case[] = [
  // the ones a hostile client showed: one resource named, another acted on
  {
    name: "member .. segment",
    method: "DELETE",
    target: "/v1/cluster/members/n1/../n2",
    status: 400,
    code: "invalid_path",
  },
  {
    name: "member %2e%2e",
    method: "DELETE",
    target: "/v1/cluster/members/n1/%2e%2e/n2",
    status: 400,
    code: "invalid_path",
  },
  {
    name: "member %2E%2e",
    method: "DELETE",
    target: "/v1/cluster/members/n1/%2E%2e/n2",
    status: 400,
    code: "invalid_path",
  },
  {
    name: "member . segment",
    method: "DELETE",
    target: "/v1/cluster/members/./n2",
    status: 400,
    code: "invalid_path",
  },
  {
    name: "member .%2e",
    method: "DELETE",
    target: "/v1/cluster/members/x/.%2e/n3",
    status: 400,
    code: "invalid_path",
  },
  {
    name: "key .. segment",
    method: "PUT",
    target: "/v1/kv/a/../b",
    body: '{"value":1}',
    status: 400,
    code: "invalid_path",
  },
  {
    name: "key %2e%2e",
    method: "PUT",
    target: "/v1/kv/a/%2e%2e/b",
    body: '{"value":1}',
    status: 400,
    code: "invalid_path",
  },
  {
    name: "key ..%2f",
    method: "PUT",
    target: "/v1/kv/../v1/kv/b",
    body: '{"value":1}',
    status: 400,
    code: "invalid_path",
  },
  {
    name: "delete key ..",
    method: "DELETE",
    target: "/v1/kv/x/../baseline",
    status: 400,
    code: "invalid_path",
  },
  {
    name: "election ..",
    method: "POST",
    target: "/v1/elections/x/../job/resign",
    body: '{"lease":1}',
    status: 400,
    code: "invalid_path",
  },
  {
    name: "election %2e%2e",
    method: "POST",
    target: "/v1/elections/%2e%2e/campaign",
    body: '{"ttl":5}',
    status: 400,
    code: "invalid_path",
  },
  { name: "lease ..", method: "DELETE", target: "/v1/leases/1/../2", status: 400, code: "invalid_path" },
  { name: "top-level ..", method: "GET", target: "/v1/../v1/cluster", status: 400, code: "invalid_path" },
  // empty segments
  {
    name: "empty segment in a key",
    method: "PUT",
    target: "/v1/kv/a//b",
    body: '{"value":1}',
    status: 400,
    code: "invalid_path",
  },
  {
    name: "trailing slash",
    method: "PUT",
    target: "/v1/kv/a/",
    body: '{"value":1}',
    status: 400,
    code: "invalid_path",
  },
  {
    name: "double slash at the start",
    method: "GET",
    target: "//v1/cluster",
    status: 400,
    code: "invalid_path",
  },
  {
    name: "empty member id",
    method: "DELETE",
    target: "/v1/cluster/members//",
    status: 400,
    code: "invalid_path",
  },
  // percent-encoding, NUL, UTF-8
  {
    name: "bad %-encoding in a key",
    method: "PUT",
    target: "/v1/kv/%zz",
    body: '{"value":1}',
    status: 400,
    code: "invalid_path",
  },
  { name: "lone % in a key", method: "GET", target: "/v1/kv/a%", status: 400, code: "invalid_path" },
  {
    name: "NUL in a key",
    method: "PUT",
    target: "/v1/kv/a%00b",
    body: '{"value":1}',
    status: 400,
    code: "invalid_path",
  },
  {
    name: "not UTF-8 in a key",
    method: "PUT",
    target: "/v1/kv/%ff%fe",
    body: '{"value":1}',
    status: 400,
    code: "invalid_path",
  },
  {
    name: "overlong UTF-8 in a key",
    method: "PUT",
    target: "/v1/kv/%c0%af",
    body: '{"value":1}',
    status: 400,
    code: "invalid_path",
  },
  { name: "lone % in a query", method: "GET", target: "/v1/kv?prefix=%", status: 400, code: "invalid_query" },
  {
    name: "bad %-encoding in a query",
    method: "GET",
    target: "/v1/kv?prefix=x/%z",
    status: 400,
    code: "invalid_query",
  },
  { name: "NUL in a query", method: "GET", target: "/v1/kv?prefix=%00", status: 400, code: "invalid_query" },
  {
    name: "not UTF-8 in a query",
    method: "GET",
    target: "/v1/watch?prefix=%ff",
    status: 400,
    code: "invalid_query",
  },
  {
    name: "bad %-encoding in a parameter name",
    method: "GET",
    target: "/v1/kv?%zz=1",
    status: 400,
    code: "invalid_query",
  },
  {
    name: "a repeated parameter",
    method: "GET",
    target: "/v1/kv?prefix=a&prefix=b",
    status: 400,
    code: "invalid_query",
  },
  {
    name: "an empty parameter",
    method: "GET",
    target: "/v1/kv?prefix=a&&limit=1",
    status: 400,
    code: "invalid_query",
  },
  // aliases: a fixed segment matches only its literal text
  {
    name: "encoded alias of cluster",
    method: "DELETE",
    target: "/v1/%63luster/members/n2",
    status: 404,
    code: "not_found",
  },
  {
    name: "encoded alias of kv",
    method: "PUT",
    target: "/v1/k%76/b",
    body: '{"value":1}',
    status: 404,
    code: "not_found",
  },
  {
    name: "absolute-form with ..",
    method: "DELETE",
    target: "http://x/v1/cluster/members/n1/../n2",
    status: 400,
    code: "invalid_path",
  },
  // integers that are not safe, wrong types, unknown fields
  {
    name: "unsafe lease id in a body",
    method: "PUT",
    target: "/v1/kv/k",
    body: '{"value":1,"lease":9007199254740993}',
    status: 400,
    code: "invalid_request",
  },
  {
    name: "1e300 as a lease id",
    method: "PUT",
    target: "/v1/kv/k",
    body: '{"value":1,"lease":1e300}',
    status: 400,
    code: "invalid_request",
  },
  {
    name: "a fractional lease id",
    method: "PUT",
    target: "/v1/kv/k",
    body: '{"value":1,"lease":1.5}',
    status: 400,
    code: "invalid_request",
  },
  {
    name: "a lease id as a string",
    method: "PUT",
    target: "/v1/kv/k",
    body: '{"value":1,"lease":"7"}',
    status: 400,
    code: "invalid_request",
  },
  {
    name: "unsafe lease id in a path",
    method: "DELETE",
    target: "/v1/leases/9007199254740993",
    status: 400,
    code: "invalid_request",
  },
  {
    name: "a lease id that is not a number",
    method: "GET",
    target: "/v1/leases/abc",
    status: 400,
    code: "invalid_request",
  },
  { name: "limit 1e3", method: "GET", target: "/v1/kv?limit=1e3", status: 400, code: "invalid_request" },
  {
    name: "an unsafe fromRevision",
    method: "GET",
    target: "/v1/watch?fromRevision=99999999999999999",
    status: 400,
    code: "invalid_request",
  },
  {
    name: "ttl as a string",
    method: "POST",
    target: "/v1/leases",
    body: '{"ttl":"5"}',
    status: 400,
    code: "invalid_request",
  },
  {
    name: "ttl out of range",
    method: "POST",
    target: "/v1/leases",
    body: '{"ttl":1e9}',
    status: 400,
    code: "invalid_request",
  },
  {
    name: "an unknown field in a grant",
    method: "POST",
    target: "/v1/leases",
    body: '{"ttl":5,"keys":[]}',
    status: 400,
    code: "invalid_request",
  },
  {
    name: "an unknown field in a transfer",
    method: "POST",
    target: "/v1/cluster/transfer-leader",
    body: '{"id":"n2","force":true}',
    status: 400,
    code: "invalid_request",
  },
  {
    name: "learner as a string",
    method: "POST",
    target: "/v1/cluster/members",
    body: '{"id":"n9","url":"http://127.0.0.1:1","learner":"yes"}',
    status: 400,
    code: "invalid_request",
  },
  {
    name: "an unknown parameter on a write",
    method: "PUT",
    target: "/v1/kv/k?ttl=5",
    body: '{"value":1}',
    status: 400,
    code: "invalid_request",
  },
  {
    name: "a bad If-Match",
    method: "PUT",
    target: "/v1/kv/k",
    body: '{"value":1}',
    headers: { "If-Match": "7" },
    status: 400,
    code: "invalid_header",
  },
  {
    name: "a bad fencing token",
    method: "PUT",
    target: "/v1/kv/k",
    body: '{"value":1}',
    headers: { "X-Ballot-Fencing-Token": "-1" },
    status: 400,
    code: "invalid_header",
  },
  // bodies where none belongs
  {
    name: "a body on DELETE",
    method: "DELETE",
    target: "/v1/kv/baseline",
    body: '{"value":1}',
    status: 400,
    code: "invalid_request",
  },
  {
    name: "a body on GET",
    method: "GET",
    target: "/v1/kv/baseline",
    body: '{"value":1}',
    status: 400,
    code: "invalid_request",
  },
  {
    name: "a body on resign's wrong method",
    method: "GET",
    target: "/v1/elections/job/resign",
    status: 405,
    code: "method_not_allowed",
  },
];

describe("hostile request targets and bodies", () => {
  let c: ProcCluster;
  let leader: string;
  before(async () => {
    c = await ProcCluster.start({ nodes: 3 });
    leader = c.url(await c.waitForLeader());
    assert.equal((await call(`${leader}/v1/kv/baseline`, "PUT", { value: "kept" })).status, 200);
    assert.equal((await call(`${leader}/v1/kv/b`, "PUT", { value: "b" })).status, 200);
  });
  after(async () => {
    await c?.stop();
  });

  const settled = () => settledState(c);

  it("each is a 4xx JSON error within 1 s, on the leader and on a follower, and nothing changes", async () => {
    const before = await settled();
    const follower = c.url(c.ids.find((id) => c.url(id) !== leader)!);
    for (const base of [leader, follower]) {
      for (const k of CASES) {
        const a = await rawRequest(base, k.method, k.target, k.body, k.headers);
        const what = `${k.name}: ${k.method} ${k.target} → ${a.status} ${a.body.trim()}`;
        assert.equal(a.status, k.status, what);
        assert.match(a.headers["content-type"] ?? "", /^application\/json/, what);
        if (k.code) assert.equal(a.json.error?.code, k.code, what);
        assert.ok(typeof a.json.error?.message === "string" && a.json.error.message.length > 0, what);
        assert.ok(a.ms < 1_000, `${what}: took ${a.ms.toFixed(0)} ms`);
      }
    }
    assert.deepEqual(await settled(), before);
    const base = await call(`${follower}/v1/kv/baseline?consistency=linearizable`);
    assert.equal(base.status, 200);
    assert.equal(base.body.value, "kept");
  });

  it("a key may still hold an encoded slash or dots inside a segment, taken literally", async () => {
    const put = await rawRequest(leader, "PUT", "/v1/kv/dir%2F..%2Fx", '{"value":3}');
    assert.equal(put.status, 200, put.body);
    assert.equal(put.json.key, "dir/../x");
    const get = await call(`${leader}/v1/kv/${encodeURIComponent("dir/../x")}`);
    assert.equal(get.body.value, 3);
    assert.equal((await call(`${leader}/v1/kv/x`)).status, 404, "x itself was not written");
  });
});
