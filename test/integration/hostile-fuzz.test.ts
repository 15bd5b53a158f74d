/**
 * A storm of hostile requests across every class of issue 8 part 3, generated from a seed (set
 * FC_SEED to replay a failure; fast-check prints the seed and the shrunk case), sent over raw
 * sockets to the leader and to a follower of a real 3-node cluster. Each request takes a valid
 * request of some route and breaks it one way: dot and empty segments, bad percent-encoding and NUL
 * in the path or the query, repeated or unknown parameters, unknown fields, wrong types, unsafe
 * integers, JSON too deep, duplicate keys, malformed JSON, a body where none belongs, the wrong media
 * type, absurd chunked framing. Every answer must be a 4xx JSON error within 1 s; after the storm the
 * revision, membership, leases and elections are what they were on every node, and every node still
 * serves the baseline.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import fc from "fast-check";
import { settledState } from "../lib/cluster-state.js";
import { type RawAnswer, rawExchange } from "../lib/raw-http.js";
import { call, ProcCluster } from "./procs.js";

const seed = Number(process.env.FC_SEED ?? 20261205);

/** A valid request, in pieces a mutation can break. */
interface Base {
  readonly method: string;
  /** Path segments after the leading `/`, percent-encoded as sent. */
  readonly segments: readonly string[];
  /** Where in `segments` a mutation may insert (after the fixed prefix). */
  readonly from: number;
  readonly query?: string;
  /** The body, as an object (routes without a body have none). */
  readonly body?: Record<string, unknown>;
  /** A field of `body` and a value of the wrong type for it. */
  readonly wrongType?: readonly [string, unknown];
  /** A field of `body` where an integer belongs. */
  readonly intField?: string;
}

// Names used here exist (baseline, the lease, n2…), so a request resolved wrongly would act.
const bases = (lease: string): Base[] => [
  {
    method: "PUT",
    segments: ["v1", "kv", "fz", "k"],
    from: 2,
    body: { value: 1 },
    wrongType: ["lease", "x"],
    intField: "lease",
  },
  { method: "DELETE", segments: ["v1", "kv", "baseline"], from: 2 },
  { method: "GET", segments: ["v1", "kv"], from: 2, query: "prefix=fz" },
  { method: "POST", segments: ["v1", "leases"], from: 2, body: { ttl: 30 }, wrongType: ["ttl", "30"] },
  { method: "DELETE", segments: ["v1", "leases", lease], from: 2 },
  { method: "POST", segments: ["v1", "leases", lease, "keepalive"], from: 2 },
  {
    method: "POST",
    segments: ["v1", "elections", "job", "resign"],
    from: 2,
    body: { lease: Number(lease) },
    wrongType: ["lease", "one"],
    intField: "lease",
  },
  { method: "DELETE", segments: ["v1", "cluster", "members", "n2"], from: 3 },
  {
    method: "POST",
    segments: ["v1", "cluster", "transfer-leader"],
    from: 2,
    body: { id: "n2" },
    wrongType: ["id", 2],
  },
];

type Mutation =
  | "dotSegment"
  | "emptySegment"
  | "badPercentPath"
  | "nulPath"
  | "badQuery"
  | "repeatedQuery"
  | "unknownQuery"
  | "unknownField"
  | "wrongType"
  | "unsafeInteger"
  | "tooDeep"
  | "duplicateKey"
  | "malformedJson"
  | "strayBody"
  | "mediaType"
  | "absurdChunk";

const MUTATIONS: readonly Mutation[] = [
  "dotSegment",
  "emptySegment",
  "badPercentPath",
  "nulPath",
  "badQuery",
  "repeatedQuery",
  "unknownQuery",
  "unknownField",
  "wrongType",
  "unsafeInteger",
  "tooDeep",
  "duplicateKey",
  "malformedJson",
  "strayBody",
  "mediaType",
  "absurdChunk",
];

const DOTS = [".", "..", "%2e", "%2E", "%2e%2e", ".%2E", "%2E.", "%2e%2E"];
const BAD_PERCENT = ["%", "%z", "%zz", "%4", "%e0%80", "%ff", "%c3%28"];
const BAD_QUERY = ["prefix=%", "prefix=x/%z", "prefix=%00", "prefix=%ff", "%zz=1", "prefix=%e2%82"];
const CHUNKS = ["ffffffffffffffff", "1ffffffffffffffff", "-1", "zz", "7fffffffffffffff;x=y", "100000000"];

/** One hostile request: a route's valid request broken by `m`, or null when `m` does not apply. */
function hostile(b: Base, m: Mutation, pick: number, depth: number, host: string): string | null {
  const segs = [...b.segments];
  let query = b.query;
  let body: string | undefined = b.body ? JSON.stringify(b.body) : undefined;
  const extra: string[] = [];
  const at = b.from + (pick % (segs.length - b.from + 1));
  const one = <T>(xs: readonly T[]): T => xs[pick % xs.length]!;
  switch (m) {
    case "dotSegment":
      segs.splice(at, 0, one(DOTS));
      break;
    case "emptySegment":
      segs.splice(at, 0, "");
      break;
    case "badPercentPath": {
      const i = Math.max(b.from, segs.length - 1);
      segs[i] = `${segs[i]}${one(BAD_PERCENT)}`;
      break;
    }
    case "nulPath": {
      const i = Math.max(b.from, segs.length - 1);
      segs[i] = `${segs[i]}%00`;
      break;
    }
    case "badQuery":
      query = one(BAD_QUERY);
      break;
    case "repeatedQuery":
      if (!b.query) return null;
      query = `${b.query}&${b.query}`;
      break;
    case "unknownQuery":
      query = `${query ? `${query}&` : ""}zz${pick % 10}=1`;
      break;
    case "unknownField":
      if (!b.body) return null;
      body = JSON.stringify({ ...b.body, [`zz${pick % 10}`]: 1 });
      break;
    case "wrongType":
      if (!b.wrongType) return null;
      body = JSON.stringify({ ...b.body, [b.wrongType[0]]: b.wrongType[1] });
      break;
    case "unsafeInteger":
      if (!b.intField) return null;
      // JSON.stringify cannot write these; put the literal in place of a marker
      body = JSON.stringify({ ...b.body, [b.intField]: "\u0000N" }).replace(
        '"\\u0000N"',
        one(["9007199254740993", "-9007199254740993", "1e300", "1.5", "2e400"]),
      );
      break;
    case "tooDeep": {
      if (!b.body) return null;
      const field = Object.keys(b.body)[0]!;
      body = `{"${field}":${"[".repeat(depth)}${"]".repeat(depth)}}`;
      break;
    }
    case "duplicateKey": {
      if (!b.body) return null;
      const [field, value] = Object.entries(b.body)[0]!;
      const key = pick % 2 === 0 ? field : `\\u00${field.charCodeAt(0).toString(16)}${field.slice(1)}`;
      body = `{"${field}":${JSON.stringify(value)},"${key}":${JSON.stringify(value)}}`;
      break;
    }
    case "malformedJson":
      if (!b.body) return null;
      body = one([
        '{"value":',
        "{value:1}",
        '{"value":1}}',
        "[",
        '{"value":1,}',
        "\u00ff\u00fe",
        '{"a":"\\x"}',
      ]);
      break;
    case "strayBody":
      if (b.body) return null;
      body = '{"value":1}';
      break;
    case "mediaType":
      if (!b.body) return null;
      extra.push(
        `Content-Type: ${one(["text/plain", "application/x-www-form-urlencoded", "application/jsonx"])}`,
      );
      break;
    case "absurdChunk": {
      if (!b.body) return null;
      const path = `/${segs.join("/")}${query ? `?${query}` : ""}`;
      return `${b.method} ${path} HTTP/1.1\r\nHost: ${host}\r\nConnection: close\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n${one(CHUNKS)}\r\n{"value":1}\r\n`;
    }
  }
  const path = `/${segs.join("/")}${query ? `?${query}` : ""}`;
  const head = [`${b.method} ${path} HTTP/1.1`, `Host: ${host}`, "Connection: close"];
  if (body !== undefined) {
    if (!extra.some((h) => h.startsWith("Content-Type"))) head.push("Content-Type: application/json");
    head.push(`Content-Length: ${Buffer.byteLength(body)}`);
  }
  head.push(...extra);
  return `${head.join("\r\n")}\r\n\r\n${body ?? ""}`;
}

describe("a seeded storm of hostile requests", () => {
  let c: ProcCluster;
  let leader: string;
  let follower: string;
  let lease: string;
  before(async () => {
    c = await ProcCluster.start({ nodes: 3 });
    const leaderId = await c.waitForLeader();
    leader = c.url(leaderId);
    follower = c.url(c.ids.find((id) => id !== leaderId)!);
    assert.equal((await call(`${leader}/v1/kv/baseline`, "PUT", { value: "kept" })).status, 200);
    const l = await call(`${leader}/v1/leases`, "POST", { ttl: 60 });
    assert.equal(l.status, 200);
    lease = String(l.body.id);
    const won = await call(`${leader}/v1/elections/job/campaign`, "POST", {
      lease: Number(lease),
      value: "me",
    });
    assert.equal(won.status, 200, JSON.stringify(won.body));
  });
  after(async () => {
    await c?.stop();
  });

  it(`is answered 4xx JSON within 1 s, request by request, and changes nothing (FC_SEED=${seed})`, async () => {
    const before = await settledState(c);
    const seen = new Set<Mutation>();
    await fc.assert(
      fc.asyncProperty(
        fc.nat({ max: 8 }),
        fc.constantFrom(...MUTATIONS),
        fc.nat(),
        fc.integer({ min: 65, max: 20_000 }),
        fc.boolean(),
        async (bi, m, pick, depth, toLeader) => {
          const base = toLeader ? leader : follower;
          const b = bases(lease)[bi]!;
          const text = hostile(b, m, pick, depth, new URL(base).host);
          if (text === null) return;
          seen.add(m);
          let a: RawAnswer;
          try {
            a = await rawExchange(base, text, 3_000);
          } catch (e) {
            throw new Error(`${m} → ${(e as Error).message}\n${text.slice(0, 300)}`);
          }
          const what = `${m} on ${b.method} /${b.segments.join("/")} → ${a.status} ${a.body.slice(0, 200)}\n${text.slice(0, 300)}`;
          assert.ok(a.status >= 400 && a.status < 500, what);
          assert.match(a.headers["content-type"] ?? "", /^application\/json/, what);
          assert.equal(typeof a.json.error?.code, "string", what);
          assert.ok(a.ms < 1_000, `${what}: took ${a.ms.toFixed(0)} ms`);
        },
      ),
      { seed, numRuns: 400 },
    );
    assert.deepEqual(
      [...MUTATIONS].filter((m) => !seen.has(m)),
      [],
      "every class was tried",
    );
    assert.deepEqual(await settledState(c), before, "the storm changed nothing");
    for (const id of c.ids) {
      const r = await call(`${c.url(id)}/v1/kv/baseline?consistency=linearizable`);
      assert.equal(r.status, 200, `${id} still serves the baseline`);
      assert.equal(r.body.value, "kept");
    }
  });
});
