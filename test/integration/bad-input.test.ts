/**
 * Every bad input gets a clear error and changes nothing: each request below is refused with the
 * right status and error code, and the store's revision does not move. Also the peer port (a peer
 * of another cluster, a peer speaking garbage) and the command line (bad flags, a port in use, a
 * data dir of another cluster) — each a one-line error with exit code 2.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import * as http from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { CLI, call, ProcCluster, sleep } from "./procs.js";

describe("bad input to the HTTP API", () => {
  let c: ProcCluster;
  let base: string;
  before(async () => {
    c = await ProcCluster.start({ nodes: 1 });
    base = c.url("n1");
    assert.equal((await call(`${base}/v1/kv/existing`, "PUT", { value: 1 })).status, 200);
  });
  after(async () => {
    await c?.stop();
  });

  const revision = async (): Promise<number> => (await call(`${base}/v1/kv?prefix=zzz`)).body.revision;

  const cases: {
    name: string;
    method: string;
    path: string;
    body?: string;
    headers?: Record<string, string>;
    status: number;
    code: string;
  }[] = [
    {
      name: "malformed JSON",
      method: "PUT",
      path: "/v1/kv/a",
      body: "{nope",
      status: 400,
      code: "invalid_json",
    },
    {
      name: "a JSON array",
      method: "PUT",
      path: "/v1/kv/a",
      body: "[1]",
      status: 400,
      code: "invalid_request",
    },
    {
      name: "an unknown field",
      method: "PUT",
      path: "/v1/kv/a",
      body: '{"value":1,"ttl":3}',
      status: 400,
      code: "invalid_request",
    },
    { name: "no value", method: "PUT", path: "/v1/kv/a", body: "{}", status: 400, code: "invalid_request" },
    {
      name: "a non-JSON content type",
      method: "PUT",
      path: "/v1/kv/a",
      body: '{"value":1}',
      headers: { "Content-Type": "text/plain" },
      status: 415,
      code: "unsupported_media_type",
    },
    {
      name: "a value over 1 MiB",
      method: "PUT",
      path: "/v1/kv/a",
      body: JSON.stringify({ value: "x".repeat((1 << 20) + 10) }),
      status: 413,
      code: "too_large",
    },
    {
      name: "a body over the limit",
      method: "PUT",
      path: "/v1/kv/a",
      body: JSON.stringify({ value: "x".repeat(2 << 20) }),
      status: 413,
      code: "too_large",
    },
    {
      name: "a malformed If-Match",
      method: "PUT",
      path: "/v1/kv/a",
      body: '{"value":1}',
      headers: { "If-Match": "12" },
      status: 400,
      code: "invalid_header",
    },
    {
      name: "If-None-Match other than *",
      method: "PUT",
      path: "/v1/kv/a",
      body: '{"value":1}',
      headers: { "If-None-Match": '"3"' },
      status: 400,
      code: "invalid_header",
    },
    {
      name: "both If-Match and If-None-Match",
      method: "PUT",
      path: "/v1/kv/a",
      body: '{"value":1}',
      headers: { "If-Match": '"1"', "If-None-Match": "*" },
      status: 400,
      code: "invalid_header",
    },
    {
      name: "a stale If-Match",
      method: "PUT",
      path: "/v1/kv/existing",
      body: '{"value":2}',
      headers: { "If-Match": '"999"' },
      status: 412,
      code: "precondition_failed",
    },
    {
      name: "create-only on an existing key",
      method: "PUT",
      path: "/v1/kv/existing",
      body: '{"value":2}',
      headers: { "If-None-Match": "*" },
      status: 412,
      code: "precondition_failed",
    },
    {
      name: "a stale If-Match on delete",
      method: "DELETE",
      path: "/v1/kv/existing",
      headers: { "If-Match": '"999"' },
      status: 412,
      code: "precondition_failed",
    },
    {
      name: "query parameters on a write",
      method: "PUT",
      path: "/v1/kv/a?x=1",
      body: '{"value":1}',
      status: 400,
      code: "invalid_request",
    },
    {
      name: "an over-long Idempotency-Key",
      method: "PUT",
      path: "/v1/kv/a",
      body: '{"value":1}',
      headers: { "Idempotency-Key": "k".repeat(300) },
      status: 400,
      code: "invalid_header",
    },
    {
      name: "a key over 4 KiB",
      method: "PUT",
      path: `/v1/kv/${"k".repeat(5000)}`,
      body: '{"value":1}',
      status: 400,
      code: "invalid_key",
    },
    {
      name: "bad percent-encoding in a key",
      method: "GET",
      path: "/v1/kv/%zz",
      status: 400,
      // The gate refuses it before any route sees it, like every malformed path.
      code: "invalid_path",
    },
    {
      name: "an unknown read parameter",
      method: "GET",
      path: "/v1/kv/existing?foo=1",
      status: 400,
      code: "invalid_request",
    },
    {
      name: "an unknown consistency",
      method: "GET",
      path: "/v1/kv/existing?consistency=eventual",
      status: 400,
      code: "invalid_request",
    },
    { name: "a missing key", method: "GET", path: "/v1/kv/missing", status: 404, code: "not_found" },
    { name: "limit=0", method: "GET", path: "/v1/kv?limit=0", status: 400, code: "invalid_request" },
    { name: "limit=abc", method: "GET", path: "/v1/kv?limit=abc", status: 400, code: "invalid_request" },
    {
      name: "an unknown list parameter",
      method: "GET",
      path: "/v1/kv?start=a",
      status: 400,
      code: "invalid_request",
    },
    {
      name: "POST on a key",
      method: "POST",
      path: "/v1/kv/a",
      body: '{"value":1}',
      status: 405,
      code: "method_not_allowed",
    },
    {
      name: "a body on DELETE",
      method: "DELETE",
      path: "/v1/kv/existing",
      body: "{}",
      status: 400,
      code: "invalid_request",
    },
    { name: "an unknown route", method: "GET", path: "/v2/kv/a", status: 404, code: "not_found" },
    { name: "POST /health", method: "POST", path: "/health", status: 405, code: "method_not_allowed" },
    {
      name: "PUT /v1/cluster",
      method: "PUT",
      path: "/v1/cluster",
      body: "{}",
      status: 405,
      code: "method_not_allowed",
    },
  ];

  for (const t of cases) {
    it(`${t.name}: ${t.status} ${t.code}, nothing changes`, async () => {
      const before = await revision();
      const r = await call(
        `${base}${t.path}`,
        t.method,
        t.body,
        t.headers ?? (t.body ? { "Content-Type": "application/json" } : {}),
      );
      assert.equal(r.status, t.status, JSON.stringify(r.body).slice(0, 300));
      assert.equal(r.body?.error?.code, t.code);
      assert.equal(typeof r.body.error.message, "string");
      assert.equal(r.headers.get("x-ballot-node"), "n1");
      assert.equal(await revision(), before);
    });
  }

  it("the same Idempotency-Key twice applies the write once and answers the first outcome", async () => {
    const h = { "Idempotency-Key": "retry-42" };
    const a = await call(`${base}/v1/kv/idem`, "PUT", { value: "v" }, h);
    const b = await call(`${base}/v1/kv/idem`, "PUT", { value: "v" }, h);
    assert.equal(a.status, 200);
    assert.equal(b.status, 200);
    assert.equal(b.body.revision, a.body.revision);
    assert.equal((await call(`${base}/v1/kv/idem`)).body.version, 1);
  });

  it("compare-and-set and create-only succeed with the right revision", async () => {
    const created = await call(`${base}/v1/kv/cas`, "PUT", { value: 1 }, { "If-None-Match": "*" });
    assert.equal(created.status, 200);
    const swapped = await call(
      `${base}/v1/kv/cas`,
      "PUT",
      { value: 2 },
      { "If-Match": `"${created.body.revision}"` },
    );
    assert.equal(swapped.status, 200);
    const gone = await call(`${base}/v1/kv/cas`, "DELETE", undefined, {
      "If-Match": `"${swapped.body.revision}"`,
    });
    assert.equal(gone.status, 200);
    assert.equal(gone.body.deleted, true);
  });

  it("a peer of another cluster is refused with 409; a peer speaking garbage is cut off and the node runs on", async () => {
    const url = new URL(`${base}/v1/raft`);
    const refused = await new Promise<number>((resolve) => {
      const req = http.request(url, {
        headers: {
          Connection: "Upgrade",
          Upgrade: "ballot-raft/1",
          "X-Ballot-Cluster": "someone-else",
          "X-Ballot-From": "x",
        },
      });
      req.on("response", (res) => resolve(res.statusCode ?? 0));
      req.on("upgrade", () => resolve(101));
      req.end();
    });
    assert.equal(refused, 409);
    const clusterId = (await call(`${base}/v1/cluster`)).body.clusterId as string;
    // A peer of this cluster gets the stream, then garbage on it cuts it off.
    const closed = await new Promise<boolean>((resolve) => {
      const req = http.request(url, {
        headers: {
          Connection: "Upgrade",
          Upgrade: "ballot-raft/1",
          "X-Ballot-Cluster": clusterId,
          "X-Ballot-From": "n1",
        },
      });
      req.on("upgrade", (_res, socket) => {
        socket.on("close", () => resolve(true));
        socket.write(Buffer.from([5, 0, 0, 0, 9, 9, 9, 9, 9]));
        setTimeout(() => resolve(false), 3000);
      });
      req.end();
    });
    assert.ok(closed, "the node closes a stream that speaks garbage");
    await sleep(50);
    assert.equal((await call(`${base}/health`)).status, 200);
    assert.ok(c.logs.get("n1")!.some((l) => l.includes("peer n1:") && l.includes("disconnecting")));
  });
});

describe("bad command lines: one line, exit code 2", () => {
  const dir = mkdtempSync(join(tmpdir(), "ballot-cli-"));
  after(() => rmSync(dir, { recursive: true, force: true }));
  const run = (...args: string[]) =>
    spawnSync(process.execPath, [CLI, ...args], { encoding: "utf8", timeout: 15_000 });
  const oneLine = (r: ReturnType<typeof run>, pattern: RegExp) => {
    assert.equal(r.status, 2, r.stderr);
    assert.equal(r.stderr.trim().split("\n").length, 1, r.stderr);
    assert.match(r.stderr, pattern);
  };

  it("an unknown flag, a missing flag, a malformed member list", () => {
    oneLine(run("start", "--bogus", "1"), /unknown flag --bogus/);
    oneLine(run("start", "--id", "n1"), /--data-dir is required/);
    oneLine(run("start", "--id", "n1", "--data-dir", dir, "--members", "n1=notaurl"), /is not an http URL/);
    oneLine(
      run("start", "--id", "n9", "--data-dir", dir, "--members", "n1=http://127.0.0.1:1"),
      /does not list this node/,
    );
    oneLine(
      run(
        "start",
        "--id",
        "n1",
        "--data-dir",
        dir,
        "--members",
        "n1=http://127.0.0.1:1",
        "--election-timeout",
        "abc",
      ),
      /must be an integer/,
    );
  });

  it("a port in use", async () => {
    const s = http.createServer();
    await new Promise<void>((r) => s.listen(0, "127.0.0.1", () => r()));
    const port = (s.address() as import("node:net").AddressInfo).port;
    const r = run(
      "start",
      "--id",
      "n1",
      "--data-dir",
      join(dir, "p"),
      "--members",
      `n1=http://127.0.0.1:${port}`,
    );
    s.close();
    oneLine(r, /address is in use/);
  });

  it("a data dir that belongs to another cluster", async () => {
    const c = await ProcCluster.start({ nodes: 1 });
    const data = join(c.dir, "n1");
    await c.signal("n1", "SIGTERM");
    const r = run(
      "start",
      "--id",
      "n1",
      "--data-dir",
      data,
      "--members",
      `n1=${c.url("n1")}`,
      "--cluster-token",
      "other",
    );
    await c.stop();
    oneLine(r, /belongs to node 'n1' of cluster 'ballot-.*', not node 'n1' of cluster 'other-/);
  });
});
