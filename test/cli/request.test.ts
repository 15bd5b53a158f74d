/**
 * The client commands' request loop against a scripted fetch: what it retries (answers that promise
 * nothing was applied), how long it waits (at least Retry-After), and what it never retries.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { request } from "../../src/cli/client.js";

type Reply = { status: number; body: unknown; headers?: Record<string, string> } | Error;

/** A fetch that answers from a script, in order, and records each call's URL and time. */
function scripted(replies: Reply[]) {
  const calls: { url: string; at: number }[] = [];
  const f = (async (input: string | URL | Request) => {
    calls.push({ url: String(input), at: Date.now() });
    const r = replies.shift();
    if (r === undefined) throw new Error("script ran out");
    if (r instanceof Error) throw r;
    return new Response(JSON.stringify(r.body), { status: r.status, headers: r.headers });
  }) as typeof fetch;
  return { f, calls };
}

const unavailable = { error: { code: "unavailable", message: "retry shortly" } };

describe("ballot's client commands: retries", () => {
  it("retry a 503 from every endpoint after a pause, and report the answer that follows", async () => {
    const { f, calls } = scripted([
      { status: 503, body: unavailable },
      { status: 503, body: unavailable },
      { status: 200, body: { removed: "n1" } },
    ]);
    const r = await request(
      ["http://a:1", "http://b:1"],
      "DELETE",
      "/v1/cluster/members/n1",
      undefined,
      undefined,
      f,
    );
    assert.deepEqual(r, { status: 200, body: { removed: "n1" } });
    assert.equal(calls.length, 3);
    assert.ok(calls[2]!.at - calls[1]!.at >= 90, "a pause before the second round");
  });

  it("wait at least the Retry-After of a 429 before asking again", async () => {
    const { f, calls } = scripted([
      {
        status: 429,
        body: { error: { code: "overloaded", message: "busy" } },
        headers: { "Retry-After": "1" },
      },
      { status: 200, body: { ok: true } },
    ]);
    const r = await request(["http://a:1"], "PUT", "/v1/kv/k", { value: 1 }, undefined, f);
    assert.equal(r.status, 200);
    assert.ok(calls[1]!.at - calls[0]!.at >= 990, `waited ${calls[1]!.at - calls[0]!.at} ms`);
  });

  it("give up when the time runs out and report the last refusal as it came", async () => {
    const replies: Reply[] = Array.from({ length: 50 }, () => ({ status: 503, body: unavailable }));
    const { f } = scripted(replies);
    const r = await request(["http://a:1"], "GET", "/v1/kv/k", undefined, undefined, f, 300);
    assert.deepEqual(r, { status: 503, body: unavailable });
  });

  it("never retry a definite answer or an unknown outcome", async () => {
    for (const status of [400, 404, 409, 412, 500, 504]) {
      const { f, calls } = scripted([{ status, body: { error: { code: "x", message: "y" } } }]);
      const r = await request(["http://a:1", "http://b:1"], "PUT", "/v1/kv/k", { value: 1 }, undefined, f);
      assert.equal(r.status, status);
      assert.equal(calls.length, 1, `${status} asked once`);
    }
  });

  it("move past an unreachable endpoint, and fail at once when none answers", async () => {
    let { f, calls } = scripted([new TypeError("fetch failed"), { status: 200, body: {} }]);
    assert.equal(
      (await request(["http://a:1", "http://b:1"], "GET", "/health", undefined, undefined, f)).status,
      200,
    );
    assert.deepEqual(
      calls.map((c) => new URL(c.url).host),
      ["a:1", "b:1"],
    );
    ({ f, calls } = scripted([new TypeError("fetch failed"), new TypeError("fetch failed")]));
    await assert.rejects(
      request(["http://a:1", "http://b:1"], "GET", "/health", undefined, undefined, f),
      /no endpoint answered/,
    );
    assert.equal(calls.length, 2);
  });
});
