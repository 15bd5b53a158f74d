import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { promisify } from "node:util";
import { BallotClient } from "../../src/client/index.js";
import { parseTokens } from "../../src/server/auth.js";
import { CLI, call, ProcCluster } from "./procs.js";

const run = promisify(execFile);
const tok = (): string => randomBytes(24).toString("base64url");
const TOKENS = { reader: tok(), writer: tok(), admin: tok() };
const file = join(tmpdir(), `ballot-tokens-${process.pid}.json`);
writeFileSync(
  file,
  JSON.stringify([
    { name: "reader", role: "read", token: TOKENS.reader },
    { name: "writer", role: "write", token: TOKENS.writer },
    { name: "ops", role: "admin", token: TOKENS.admin },
  ]),
);
const bearer = (t: string) => ({ Authorization: `Bearer ${t}` });

describe("client authentication with bearer tokens", { timeout: 90_000 }, () => {
  let c: ProcCluster;
  let leader: string;
  before(async () => {
    c = await ProcCluster.start({
      electionTimeoutMs: 400,
      extraArgs: ["--auth-tokens", file],
      headers: bearer(TOKENS.reader),
    });
    leader = await c.waitForLeader();
  });
  after(async () => {
    await c?.stop();
  });

  it("refuses missing, malformed and unknown tokens (401) and a role too low (403); nothing changes", async () => {
    const url = `${c.url(leader)}/v1/kv/secret`;
    for (const h of [
      {},
      { Authorization: "Basic abc" },
      bearer("x".repeat(24)),
      bearer(`${TOKENS.writer}x`),
    ]) {
      const r = await call(url, "PUT", { value: 1 }, h);
      assert.equal(r.status, 401, JSON.stringify(h));
      assert.equal(r.body.error.code, "unauthorized");
      assert.equal(r.headers.get("www-authenticate"), 'Bearer realm="ballot"');
    }
    const ro = await call(url, "PUT", { value: 1 }, bearer(TOKENS.reader));
    assert.equal(ro.status, 403);
    assert.equal(ro.body.error.code, "forbidden");
    assert.equal(
      (await call(url, "GET", undefined, bearer(TOKENS.reader))).status,
      404,
      "nothing was written",
    );
    assert.equal((await call(`${c.url(leader)}/v1/kv`, "GET")).status, 401);
    assert.equal(
      (await call(`${c.url(leader)}/v1/snapshot`, "GET", undefined, bearer(TOKENS.writer))).status,
      403,
    );
    // No answer repeats a token.
    for (const r of [ro, await call(url, "PUT", { value: 1 }, bearer(`${TOKENS.admin}x`))])
      for (const t of Object.values(TOKENS)) assert.ok(!JSON.stringify(r.body).includes(t));
  });

  it("grants by role; health, readiness and the peer protocol stay open (the cluster works)", async () => {
    const url = `${c.url(leader)}/v1/kv/open`;
    assert.equal((await call(url, "PUT", { value: 1 }, bearer(TOKENS.writer))).status, 200);
    assert.equal((await call(url, "PUT", { value: 2 }, bearer(TOKENS.admin))).status, 200);
    const f = c.ids.find((id) => id !== leader)!;
    const got = await call(`${c.url(f)}/v1/kv/open`, "GET", undefined, bearer(TOKENS.reader));
    assert.equal(got.body.value, 2, "replicated to a follower, read with a read token");
    assert.equal((await call(`${c.url(f)}/health`)).status, 200);
    assert.equal((await call(`${c.url(f)}/ready`)).status, 200);
    const snap = await fetch(`${c.url(leader)}/v1/snapshot`, { headers: bearer(TOKENS.admin) });
    assert.equal(snap.status, 200);
    await snap.body?.cancel();
    // A follower's redirect keeps working for clients that follow it with their token.
    const w = await call(`${c.url(f)}/v1/kv/redirected`, "PUT", { value: 3 }, bearer(TOKENS.writer));
    assert.equal(w.status, 307);
  });

  it("ballot/client, the CLI and streams carry the token in the header; never in a URL", async () => {
    const f = c.ids.find((id) => id !== leader)!;
    const client = new BallotClient({ endpoints: [c.url(f)], token: TOKENS.writer });
    try {
      await client.put("via-client", { ok: true });
      assert.deepEqual((await client.get("via-client"))?.value, { ok: true });
    } finally {
      client.close();
    }
    const anon = new BallotClient({ endpoints: [c.url(f)], timeoutMs: 2000 });
    try {
      await assert.rejects(anon.get("via-client"), (e: { code?: string }) => e.code === "unauthorized");
    } finally {
      anon.close();
    }
    const r = await run(process.execPath, [
      CLI,
      "put",
      "via-cli",
      '"x"',
      "--endpoints",
      c.url(f),
      "--token",
      TOKENS.writer,
    ]);
    assert.match(r.stdout, /revision/);
    await assert.rejects(run(process.execPath, [CLI, "get", "via-cli", "--endpoints", c.url(f)]));
    // Streams take the token in the header, as the dashboard's fetch-based reader sends it.
    const sse = await fetch(`${c.url(f)}/v1/watch`, { headers: bearer(TOKENS.reader) });
    assert.equal(sse.status, 200);
    await sse.body?.cancel();
    // A token in a URL is refused, valid or not, on streams and on every other route.
    for (const path of ["/v1/watch", "/v1/events", "/v1/kv/via-client", "/v1/cluster"]) {
      for (const t of [TOKENS.reader, "not-a-token-at-all"]) {
        const r = await call(`${c.url(f)}${path}?access_token=${t}`);
        assert.equal(r.status, 400, `${path}: ${JSON.stringify(r.body)}`);
        assert.match(r.body.error.message, /never accepted in a URL/);
      }
    }
  });

  it("tokens never reach the logs", async () => {
    await call(`${c.url(leader)}/v1/kv/x`, "PUT", { value: 1 }, bearer(`${TOKENS.admin}zz`));
    const logs = [...c.logs.values()].flat().join("\n");
    for (const t of Object.values(TOKENS)) assert.ok(!logs.includes(t), "a token appears in a log");
  });
});

describe("the token file is checked at start", () => {
  it("refuses bad files with a one-line reason that never shows a token", async () => {
    const secret = tok();
    for (const [text, reason] of [
      ["not json", /not valid JSON/],
      ["[]", /non-empty JSON array/],
      [JSON.stringify([{ name: "a", role: "root", token: secret }]), /role must be read, write or admin/],
      [JSON.stringify([{ name: "a", role: "read", token: "short" }]), /at least 16 characters/],
      [JSON.stringify([{ name: "a", role: "read", token: secret, x: 1 }]), /unknown field 'x'/],
      [
        JSON.stringify([
          { name: "a", role: "read", token: secret },
          { name: "b", role: "write", token: secret },
        ]),
        /same token appears twice/,
      ],
    ] as const) {
      assert.throws(
        () => parseTokens(text),
        (e: Error) => reason.test(e.message) && !e.message.includes(secret),
      );
    }
    const bad = join(tmpdir(), `ballot-bad-tokens-${process.pid}.json`);
    writeFileSync(bad, JSON.stringify([{ name: "a", role: "root", token: secret }]));
    const r = await run(process.execPath, [
      CLI,
      "start",
      "--id",
      "a",
      "--data-dir",
      join(tmpdir(), `ballot-auth-${process.pid}`),
      "--members",
      "a=http://127.0.0.1:1",
      "--auth-tokens",
      bad,
    ]).catch((e: { code: number; stderr: string }) => e);
    assert.equal((r as { code: number }).code, 2);
    assert.match((r as { stderr: string }).stderr, /role must be/);
    assert.ok(!(r as { stderr: string }).stderr.includes(secret));
  });
});
