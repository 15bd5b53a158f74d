/**
 * GET /v1/openapi.json describes what the server really answers: every route of the document is
 * called on a real 3-node cluster, and every answer's status must be one the document lists for
 * that operation, with a body that validates against the schema it gives (or the content type it
 * names, for pages, streams and metrics). A route the test does not call fails the test, so a new
 * route cannot go undescribed and untested.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { inlineRefs, newAjv } from "../../src/server/validate.js";
import { rawRequest } from "../lib/raw-http.js";
import { call, ProcCluster } from "./procs.js";

type Doc = {
  openapi: string;
  paths: Record<string, Record<string, { operationId: string; responses: Record<string, Resp> }>>;
  components: { schemas: Record<string, unknown> };
};
type Resp = { description: string; content?: Record<string, { schema?: unknown }> };

describe("the OpenAPI document", () => {
  let c: ProcCluster;
  let leader: string;
  let follower: string;
  let doc: Doc;
  const ajv = newAjv();
  const seen = new Set<string>();

  before(async () => {
    c = await ProcCluster.start({ nodes: 3 });
    const id = await c.waitForLeader();
    leader = c.url(id);
    follower = c.url(c.ids.find((x) => x !== id)!);
    const r = await fetch(`${leader}/v1/openapi.json`);
    assert.equal(r.status, 200);
    doc = (await r.json()) as Doc;
  });
  after(async () => {
    await c?.stop();
  });

  /** Finds the operation a concrete path and method belong to. */
  const operationOf = (method: string, path: string) => {
    const p = path.split("?")[0]!;
    for (const [tpl, ops] of Object.entries(doc.paths)) {
      const re = new RegExp(
        `^${tpl.replace(/\{key\}/, ".+").replace(/\{[^}]+\}/g, "[^/]+")}$`.replaceAll("/", "\\/"),
      );
      const op = ops[method.toLowerCase()];
      if (op && re.test(p)) return op;
    }
    throw new Error(`no operation for ${method} ${p} in the document`);
  };

  /** Checks one answer against the document. */
  const check = (method: string, path: string, status: number, contentType: string, body: string) => {
    const op = operationOf(method, path);
    seen.add(op.operationId);
    const resp = op.responses[String(status)];
    assert.ok(
      resp,
      `${op.operationId} answered ${status}, which the document does not list: ${body.slice(0, 200)}`,
    );
    const [type, media] = Object.entries(resp.content ?? {})[0] ?? [];
    if (!type) return;
    assert.ok(
      contentType.startsWith(type),
      `${op.operationId} ${status}: content type ${contentType}, documented ${type}`,
    );
    if (type !== "application/json" || !media?.schema) return;
    const validate = ajv.compile(inlineRefs(media.schema) as object);
    const json = JSON.parse(body) as unknown;
    assert.ok(
      validate(json),
      `${op.operationId} ${status}: ${ajv.errorsText(validate.errors)}\n${JSON.stringify(json).slice(0, 500)}`,
    );
  };

  /** Calls a route through fetch (redirects not followed) and checks the answer. */
  const hit = async (
    base: string,
    method: string,
    path: string,
    body?: unknown,
    headers: Record<string, string> = {},
  ) => {
    const r = await fetch(`${base}${path}`, {
      method,
      redirect: "manual",
      headers: { ...(body !== undefined ? { "content-type": "application/json" } : {}), ...headers },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await r.text();
    check(method, path, r.status, r.headers.get("content-type") ?? "", text);
    return {
      status: r.status,
      json:
        text && r.headers.get("content-type")?.startsWith("application/json") ? JSON.parse(text) : undefined,
    };
  };

  /** A stream: check the status and type from the first bytes, then hang up. */
  const stream = async (base: string, path: string) => {
    const ac = new AbortController();
    const r = await fetch(`${base}${path}`, { signal: ac.signal });
    check("GET", path, r.status, r.headers.get("content-type") ?? "", "");
    ac.abort();
  };

  it("is OpenAPI 3.1 whose every schema compiles", () => {
    assert.equal(doc.openapi, "3.1.0");
    for (const ops of Object.values(doc.paths))
      for (const op of Object.values(ops))
        for (const r of Object.values(op.responses))
          for (const m of Object.values(r.content ?? {}))
            if (m.schema) ajv.compile(inlineRefs(m.schema) as object);
  });

  it("describes every answer of every route", async () => {
    // keys
    const put = await hit(leader, "PUT", "/v1/kv/acct/a", { value: 100 });
    assert.equal(put.status, 200);
    await hit(leader, "PUT", "/v1/kv/acct/a", { value: 1 }, { "If-Match": '"1"' }); // 412
    await hit(follower, "PUT", "/v1/kv/acct/b", { value: 5 }); // 307
    await hit(leader, "GET", "/v1/kv/acct/a");
    await hit(leader, "GET", "/v1/kv/nope"); // 404
    await hit(leader, "GET", "/v1/kv?prefix=acct/&limit=10");
    await hit(leader, "PUT", "/v1/kv/acct/a", { value: 1, extra: true }); // 400
    await hit(leader, "PUT", "/v1/kv/acct/a", "text", { "content-type": "text/plain" }); // 415
    await hit(leader, "DELETE", "/v1/kv/acct/a");
    // transactions: both branches, a refusal, a redirect
    await hit(leader, "PUT", "/v1/kv/acct/t", { value: 1 });
    const moved = await hit(leader, "POST", "/v1/txn", {
      compare: [{ key: "acct/t", target: "value", op: "==", value: 1 }],
      success: [
        { put: { key: "acct/t", value: 2 } },
        { delete: { key: "acct/none" } },
        { get: { key: "acct/t" } },
      ],
      failure: [{ get: { key: "acct/t" } }],
    });
    assert.equal(moved.json.succeeded, true);
    await hit(leader, "POST", "/v1/txn", {
      compare: [{ key: "acct/t", target: "version", op: "<", value: 1 }],
      failure: [{ get: { key: "acct/t" } }, { get: { key: "acct/none" } }],
    });
    await hit(leader, "POST", "/v1/txn", { success: [{ put: { key: "acct/t" } }] }); // 400
    await hit(follower, "POST", "/v1/txn", { success: [{ get: { key: "acct/t" } }] }); // 307
    await stream(leader, "/v1/watch?prefix=acct/");
    await hit(leader, "GET", "/v1/watch?fromRevision=1&prefix=%zz"); // 400
    // leases
    const lease = await hit(leader, "POST", "/v1/leases", { ttl: 30 });
    const id = lease.json.id as number;
    await hit(leader, "GET", "/v1/leases");
    await hit(leader, "GET", `/v1/leases/${id}`);
    await hit(leader, "POST", `/v1/leases/${id}/keepalive`);
    await hit(leader, "GET", "/v1/leases/999999"); // 404
    // elections
    await hit(leader, "POST", "/v1/elections/job/campaign", { value: "me", lease: id });
    await hit(leader, "GET", "/v1/elections/job");
    await hit(leader, "POST", "/v1/elections/job/proclaim", { value: "still me", lease: id });
    await stream(leader, "/v1/elections/job/observe");
    await hit(leader, "POST", "/v1/elections/job/resign", { lease: id });
    await hit(leader, "DELETE", `/v1/leases/${id}`);
    // cluster
    await hit(leader, "GET", "/v1/cluster");
    await hit(follower, "GET", "/v1/cluster"); // a follower's view: the leader named, its own role
    await hit(leader, "GET", "/v1/cluster/members");
    await hit(leader, "GET", "/v1/cluster/members/n1");
    await hit(leader, "GET", "/v1/cluster/members/n9"); // 404
    await hit(leader, "DELETE", "/v1/cluster/members/n9"); // 404
    await hit(leader, "POST", "/v1/cluster/members/n9/promote"); // 404
    await hit(leader, "POST", "/v1/cluster/members", { id: "n9", url: "http://127.0.0.1:9" }); // unreachable
    const self = (await call(`${leader}/v1/cluster`)).body.self as string;
    await hit(leader, "POST", "/v1/cluster/transfer-leader", { id: self }); // moved: false
    await hit(leader, "GET", "/v1/snapshot");
    // operations
    await hit(leader, "GET", "/health");
    await hit(leader, "GET", "/ready");
    await hit(leader, "GET", "/metrics");
    await hit(leader, "GET", "/v1/openapi.json");
    await hit(leader, "GET", "/");
    await stream(leader, "/v1/events");
    await hit(leader, "GET", "/v1/raft"); // 426: not an upgrade
    // raw: what fetch would not send
    const dots = await rawRequest(leader, "DELETE", "/v1/cluster/members/n1/../n2");
    check("DELETE", "/v1/cluster/members/n2", dots.status, dots.headers["content-type"] ?? "", dots.body);

    const all = Object.values(doc.paths).flatMap((ops) => Object.values(ops).map((o) => o.operationId));
    assert.deepEqual(
      all.filter((o) => !seen.has(o)),
      [],
      "every operation of the document is called by this test",
    );
  });
});
