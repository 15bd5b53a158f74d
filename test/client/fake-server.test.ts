/**
 * BallotClient against tiny fake nodes (node:http), where each failure can be staged exactly:
 * redirects to the leader and remembering it, moving past a refused endpoint, retries that reuse
 * one Idempotency-Key per logical write, outcome_unknown vs. unavailable at the deadline, error
 * codes, watch resume (Last-Event-ID, no duplicates) and 410 compacted, lease keepalive timing.
 */
import assert from "node:assert/strict";
import * as http from "node:http";
import type { AddressInfo } from "node:net";
import { after, describe, it } from "node:test";
import { BallotClient, BallotClientError, type WatchEvent } from "../../src/client/index.js";
import { freePorts } from "../integration/procs.js";
import { sleep, until } from "./helpers.js";

type Handler = (req: http.IncomingMessage, res: http.ServerResponse, body: string) => void;

interface Fake {
  url: string;
  requests: { method: string; url: string; headers: http.IncomingHttpHeaders; body: string }[];
  handler: Handler;
  close(): Promise<void>;
}

const fakes: Fake[] = [];

async function fake(handler: Handler): Promise<Fake> {
  const f: Fake = {
    url: "",
    requests: [],
    handler,
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
  const server = http.createServer((req, res) => {
    const parts: Buffer[] = [];
    req.on("data", (c: Buffer) => parts.push(c));
    req.on("end", () => {
      const body = Buffer.concat(parts).toString();
      f.requests.push({ method: req.method!, url: req.url!, headers: req.headers, body });
      f.handler(req, res, body);
    });
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  f.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  fakes.push(f);
  return f;
}

const json = (
  res: http.ServerResponse,
  status: number,
  body: unknown,
  headers: Record<string, string> = {},
) => {
  res.writeHead(status, { "Content-Type": "application/json", ...headers });
  res.end(JSON.stringify(body));
};

const kv = (key: string, value: unknown, revision: number) => ({
  key,
  value,
  revision,
  createRevision: revision,
  version: 1,
});

after(async () => {
  await Promise.all(fakes.map((f) => f.close()));
});

describe("leader discovery and retries", () => {
  it("follows a 307 to the leader, remembers it, and moves past a refused endpoint", async () => {
    const leader = await fake((_req, res, body) => json(res, 200, kv("k", JSON.parse(body).value, 5)));
    const follower = await fake((req, res) => {
      res.writeHead(307, { Location: `${leader.url}${req.url}` });
      res.end();
    });
    const [deadPort] = await freePorts(1);
    const c = new BallotClient({ endpoints: [`http://127.0.0.1:${deadPort}`, follower.url] });
    const r = await c.put("a/b c", { n: 1 });
    assert.equal(r.revision, 5);
    assert.deepEqual(r.value, { n: 1 });
    assert.equal(c.preferredEndpoint, leader.url);
    assert.equal(follower.requests.length, 1);
    assert.equal(leader.requests[0]!.url, "/v1/kv/a%2Fb%20c");
    await c.put("k", 2);
    assert.equal(follower.requests.length, 1, "the second write went straight to the leader");
    assert.equal(leader.requests.length, 2);
  });

  it("a write retried after 503, a dropped connection and a 504 carries one Idempotency-Key, and is answered once", async () => {
    let n = 0;
    const node = await fake((req, res, body) => {
      n++;
      if (n === 1)
        return json(res, 503, { error: { code: "no_leader", message: "x" } }, { "Retry-After": "1" });
      if (n === 2) return req.socket.destroy(); // applied or not: the client cannot tell
      if (n === 3) return json(res, 504, { error: { code: "outcome_unknown", message: "x" } });
      json(res, 200, kv("k", JSON.parse(body).value, 9));
    });
    const c = new BallotClient({ endpoints: [node.url] });
    const r = await c.put("k", "v", { ifRevision: 3, fencingToken: 12 });
    assert.equal(r.revision, 9);
    const keys = new Set(node.requests.map((q) => q.headers["idempotency-key"]));
    assert.equal(node.requests.length, 4);
    assert.equal(keys.size, 1);
    assert.match(String([...keys][0]), /^[0-9a-f-]{36}$/);
    for (const q of node.requests) {
      assert.equal(q.headers["if-match"], '"3"');
      assert.equal(q.headers["x-ballot-fencing-token"], "12");
    }
    await c.put("k", "w");
    assert.notEqual(node.requests[4]!.headers["idempotency-key"], [...keys][0], "a new write, a new key");
  });

  it("a write refused with 429 is retried after the node's retryAfterMs, with the same Idempotency-Key, and applied once", async () => {
    let n = 0;
    const node = await fake((_req, res, body) => {
      n++;
      if (n <= 2)
        return json(
          res,
          429,
          { error: { code: "overloaded", message: "busy", reason: "proposals", retryAfterMs: 300 } },
          { "Retry-After": "1" },
        );
      json(res, 200, kv("k", JSON.parse(body).value, 5));
    });
    const c = new BallotClient({ endpoints: [node.url] });
    const t0 = performance.now();
    const r = await c.put("k", "v");
    const took = performance.now() - t0;
    assert.equal(r.revision, 5);
    assert.equal(node.requests.length, 3);
    assert.equal(new Set(node.requests.map((q) => q.headers["idempotency-key"])).size, 1);
    assert.ok(took >= 2 * 300 - 20, `waited ${Math.round(took)} ms over two refusals`);
    c.close();
  });

  it("throws outcome_unknown when time runs out after an attempt may have applied, unavailable when none could", async () => {
    const unknown = await fake((_req, res) =>
      json(res, 504, { error: { code: "outcome_unknown", message: "x" } }),
    );
    const c = new BallotClient({ endpoints: [unknown.url], timeoutMs: 400 });
    await assert.rejects(
      c.put("k", 1),
      (e: BallotClientError) => e.code === "outcome_unknown" && e.status === 504,
    );
    await assert.rejects(c.delete("k"), (e: BallotClientError) => e.code === "outcome_unknown");

    const noLeader = await fake((_req, res) =>
      json(res, 503, { error: { code: "no_leader", message: "x" } }, { "Retry-After": "1" }),
    );
    const d = new BallotClient({ endpoints: [noLeader.url], timeoutMs: 400 });
    const t0 = performance.now();
    await assert.rejects(d.put("k", 1), (e: BallotClientError) => e.code === "no_leader" && e.status === 503);
    assert.ok(performance.now() - t0 < 2000);
    assert.ok(noLeader.requests.length >= 2, "retried within the deadline");

    const [deadPort] = await freePorts(1);
    const e = new BallotClient({ endpoints: [`http://127.0.0.1:${deadPort}`], timeoutMs: 300 });
    await assert.rejects(e.put("k", 1), (err: BallotClientError) => err.code === "unavailable");

    // A node that hangs: each attempt times out, and the write's fate is unknown.
    const hang = await fake(() => {});
    const h = new BallotClient({ endpoints: [hang.url], timeoutMs: 500, attemptTimeoutMs: 150 });
    await assert.rejects(h.put("k", 1), (err: BallotClientError) => err.code === "outcome_unknown");
    assert.ok(hang.requests.length >= 2);
    await assert.rejects(h.get("k"), (err: BallotClientError) => err.code === "unavailable");
  });

  it("reads retry on 503 and on another endpoint; 404 is null; definite errors carry the server's code", async () => {
    const down = await fake((_req, res) =>
      json(res, 503, { error: { code: "no_leader", message: "x" } }, { "Retry-After": "1" }),
    );
    const up = await fake((req, res) => {
      if (req.url!.startsWith("/v1/kv/missing"))
        return json(res, 404, { error: { code: "not_found", message: "x" } });
      if (req.method === "PUT")
        return json(res, 412, { error: { code: "stale_token", message: "x", fencingToken: 40 } });
      json(res, 200, kv("k", 1, 2));
    });
    const c = new BallotClient({ endpoints: [down.url, up.url] });
    assert.equal((await c.get("k", { consistency: "lease" }))!.value, 1);
    assert.equal(up.requests[0]!.url, "/v1/kv/k?consistency=lease");
    assert.equal(await c.get("missing"), null);
    await assert.rejects(
      c.put("k", 1, { fencingToken: 3 }),
      (e: BallotClientError) =>
        e instanceof BallotClientError &&
        e.status === 412 &&
        e.code === "stale_token" &&
        e.details.fencingToken === 40,
    );
    assert.equal(up.requests.filter((q) => q.method === "PUT").length, 1, "a 412 is not retried");
    await assert.rejects(c.get("."), (e: BallotClientError) => e.code === "invalid_argument");
  });
});

describe("watch against a fake node", () => {
  it("resumes with Last-Event-ID after a broken stream; replays are dropped, order kept", async () => {
    const ev = (rev: number, type = "put") =>
      `id: ${rev}\nevent: ${type}\ndata: ${JSON.stringify(
        type === "put"
          ? { type, key: `k${rev}`, value: rev, revision: rev, createRevision: rev, version: 1 }
          : { type, key: `k${rev}`, revision: rev },
      )}\n\n`;
    let conn = 0;
    const node = await fake((req, res) => {
      if (req.url!.startsWith("/v1/kv?")) return json(res, 200, { kvs: [], more: false, revision: 10 });
      conn++;
      res.writeHead(200, { "Content-Type": "text/event-stream" });
      if (conn === 1) {
        res.write(`: keepalive\n\n${ev(11)}${ev(12, "delete")}`);
        setTimeout(() => res.socket?.destroy(), 50);
      } else if (conn === 2) {
        // A node that replays from before what was asked (and one out-of-order event).
        res.write(`${ev(12, "delete")}${ev(13)}${ev(11)}${ev(14)}`);
        setTimeout(() => res.end(), 50);
      } else {
        res.write(ev(15));
      }
    });
    const c = new BallotClient({ endpoints: [node.url] });
    const ac = new AbortController();
    const got: WatchEvent[] = [];
    for await (const e of c.watch("k", { signal: ac.signal })) {
      got.push(e);
      if (e.revision === 15) ac.abort();
    }
    assert.deepEqual(
      got.map((e) => [e.type, e.revision]),
      [
        ["put", 11],
        ["delete", 12],
        ["put", 13],
        ["put", 14],
        ["put", 15],
      ],
    );
    const watches = node.requests.filter((q) => q.url.startsWith("/v1/watch"));
    assert.equal(watches[0]!.url, "/v1/watch?prefix=k&fromRevision=11");
    assert.equal(watches[0]!.headers["last-event-id"], undefined);
    assert.equal(watches[1]!.headers["last-event-id"], "12");
    assert.equal(watches[2]!.headers["last-event-id"], "14");
  });

  it("throws compacted with compactRevision on 410", async () => {
    const node = await fake((_req, res) =>
      json(res, 410, { error: { code: "compacted", message: "gone", compactRevision: 77 } }),
    );
    const c = new BallotClient({ endpoints: [node.url] });
    await assert.rejects(
      (async () => {
        for await (const _ of c.watch("", { fromRevision: 1 })) {
          // nothing arrives
        }
      })(),
      (e: BallotClientError) => e.code === "compacted" && e.status === 410 && e.compactRevision === 77,
    );
  });
});

describe("lease keepalive against a fake node", () => {
  it("sends keepalives about every ttl/3, each one a write, and aborts the signal on 404", async () => {
    const times: number[] = [];
    let found = true;
    const node = await fake((req, res) => {
      if (req.url === "/v1/leases") return json(res, 200, { id: 4, ttl: 1.2 });
      if (req.url === "/v1/leases/4/keepalive") {
        times.push(performance.now());
        return found
          ? json(res, 200, { id: 4, ttl: 1.2 })
          : json(res, 404, { error: { code: "lease_not_found", message: "x" } });
      }
      json(res, 404, { error: { code: "not_found", message: "x" } });
    });
    const c = new BallotClient({ endpoints: [node.url] });
    const lease = await c.grantLease(1.2);
    assert.equal(lease.id, 4);
    assert.ok(lease.validUntil() > performance.now() + 800);
    await new Promise((r) => setTimeout(r, 1500));
    assert.ok(times.length >= 3 && times.length <= 5, `keepalives: ${times.length}`);
    for (let i = 1; i < times.length; i++) assert.ok(times[i]! - times[i - 1]! >= 350, "about ttl/3 apart");
    assert.ok(lease.validUntil() > performance.now(), "renewed past the first deadline");
    assert.equal(lease.signal.aborted, false);
    assert.ok(
      node.requests.filter((q) => q.url.endsWith("/keepalive")).every((q) => q.headers["idempotency-key"]),
    );
    found = false;
    await new Promise<void>((r) => lease.signal.addEventListener("abort", () => r()));
    assert.equal((lease.signal.reason as BallotClientError).code, "lease_lost");
    assert.equal(lease.validUntil(), Number.NEGATIVE_INFINITY);
  });

  it("aborts the signal at the LeaseClock deadline when keepalives cannot get through", async () => {
    let up = true;
    const node = await fake((req, res) => {
      if (req.url === "/v1/leases") return json(res, 200, { id: 5, ttl: 1 });
      if (up) return json(res, 200, { id: 5, ttl: 1 });
      json(res, 503, { error: { code: "no_leader", message: "x" } }, { "Retry-After": "1" });
    });
    const c = new BallotClient({ endpoints: [node.url] });
    const lease = await c.grantLease(1);
    await new Promise((r) => setTimeout(r, 400));
    up = false;
    const deadline = lease.validUntil();
    await new Promise<void>((r) => lease.signal.addEventListener("abort", () => r()));
    const late = performance.now() - deadline;
    assert.ok(late >= 0 && late < 250, `aborted ${late} ms after the deadline`);
    assert.equal((lease.signal.reason as BallotClientError).code, "lease_expired");
    // 1 s TTL: deadline = sent + 950 ms - 100 ms margin.
    assert.ok(deadline - performance.now() < 0);
  });
});

describe("elections against a fake node", () => {
  function electionNode(opts: { campaign: Handler; ready?: Handler }) {
    const observers: http.ServerResponse[] = [];
    return fake((req, res, body) => {
      const u = req.url!;
      if (u === "/ready") return (opts.ready ?? ((_q, r) => json(r, 200, { ready: true })))(req, res, body);
      if (u === "/v1/leases") return json(res, 200, { id: 9, ttl: 5 });
      if (u === "/v1/leases/9/keepalive") return json(res, 200, { id: 9, ttl: 5 });
      if (u === "/v1/leases/9" && req.method === "DELETE")
        return json(res, 200, { id: 9, revoked: true, revision: 50 });
      if (u === "/v1/elections/e/campaign") return opts.campaign(req, res, body);
      if (u === "/v1/elections/e/resign") return json(res, 200, { name: "e", resigned: true, revision: 51 });
      if (u === "/v1/elections/e/proclaim")
        return json(res, 409, { error: { code: "not_election_leader", message: "x" } });
      if (u === "/v1/elections/e/observe") {
        res.writeHead(200, { "Content-Type": "text/event-stream" });
        const send = (leader: unknown, revision: number) =>
          res.write(`event: leader\ndata: ${JSON.stringify({ leader, revision })}\n\n`);
        // A lagging view first (the previous leader), then this candidate.
        send({ value: "old", lease: 3, fencingToken: 10 }, 15);
        send({ value: "me", lease: 9, fencingToken: 20 }, 21);
        observers.push(res);
        return;
      }
      json(res, 404, { error: { code: "not_found", message: u } });
    }).then((f) => ({ f, observers }));
  }

  it("campaign is retried with the same lease and key after a dropped connection; a newer leader seen by observe aborts the holder", async () => {
    let n = 0;
    const { f, observers } = await electionNode({
      campaign: (req, res, body) => {
        if (++n === 1) return req.socket.destroy();
        const o = JSON.parse(body);
        json(res, 200, { name: "e", value: o.value, lease: o.lease, fencingToken: 20, revision: 21 });
      },
    });
    const c = new BallotClient({ endpoints: [f.url] });
    const held = await c.election("e").campaign("me");
    assert.equal(held.fencingToken, 20);
    const campaigns = f.requests.filter((q) => q.url === "/v1/elections/e/campaign");
    assert.equal(campaigns.length, 2);
    assert.deepEqual(
      campaigns.map((q) => JSON.parse(q.body)),
      [
        { value: "me", lease: 9 },
        { value: "me", lease: 9 },
      ],
    );
    assert.equal(campaigns[0]!.headers["idempotency-key"], campaigns[1]!.headers["idempotency-key"]);
    await until(() => observers.length === 1, 2000, "the holder to observe");
    await sleep(100);
    assert.equal(held.signal.aborted, false, "the lagging view of the old leader is ignored");
    await assert.rejects(held.proclaim("v"), (e: BallotClientError) => e.code === "not_election_leader");
    assert.equal(held.signal.aborted, true, "409 on proclaim: not the leader");
    await held.resign();
    assert.ok(f.requests.some((q) => q.url === "/v1/elections/e/resign" && JSON.parse(q.body).lease === 9));
    assert.ok(f.requests.some((q) => q.url === "/v1/leases/9" && q.method === "DELETE"));

    const again = await c.election("e").campaign("me");
    await until(() => observers.length === 2, 2000, "the second holder to observe");
    observers[1]!.write(
      `event: leader\ndata: ${JSON.stringify({ leader: { value: "x", lease: 11, fencingToken: 30 }, revision: 31 })}\n\n`,
    );
    await until(() => again.signal.aborted, 2000, "the holder to notice the newer leader");
    assert.equal((again.signal.reason as BallotClientError).code, "leadership_lost");
    assert.throws(
      () => again.assertLeader(),
      (e: BallotClientError) => e.code === "leadership_lost",
    );
    assert.equal(again.validUntil(), Number.NEGATIVE_INFINITY);
    await again.resign();
  });

  it("aborting a waiting campaign rejects with the reason and withdraws: resign, then revoke", async () => {
    const { f } = await electionNode({ campaign: () => {} });
    const c = new BallotClient({ endpoints: [f.url] });
    const ac = new AbortController();
    const p = c.election("e").campaign("me", { signal: ac.signal });
    await until(() => f.requests.some((q) => q.url === "/v1/elections/e/campaign"), 2000, "the campaign");
    ac.abort(new Error("no longer interested"));
    await assert.rejects(p, /no longer interested/);
    const urls = f.requests.map((q) => `${q.method} ${q.url}`);
    const resign = urls.indexOf("POST /v1/elections/e/resign");
    const revoke = urls.indexOf("DELETE /v1/leases/9");
    assert.ok(resign > 0 && revoke > resign, urls.join(", "));
  });

  for (const how of ["stops answering", "answers not ready (no leader)"] as const) {
    it(`a campaign held by a node that ${how} is re-sent to another node within seconds, not the 30 s attempt`, async () => {
      let healthy = true;
      const { f: a } = await electionNode({
        campaign: () => {}, // holds the wait: the node never says "you lead"
        ready: (_req, res) => {
          if (healthy) return json(res, 200, { ready: true });
          if (how === "answers not ready (no leader)") return json(res, 503, { ready: false, leader: null });
          // A cut-off node: the probe is never answered.
        },
      });
      const { f: b } = await electionNode({
        campaign: (_req, res, body) => {
          const o = JSON.parse(body);
          json(res, 200, { name: "e", value: o.value, lease: o.lease, fencingToken: 7, revision: 8 });
        },
      });
      const c = new BallotClient({ endpoints: [a.url, b.url] });
      const p = c.election("e").campaign("me");
      await until(
        () => a.requests.some((q) => q.url === "/v1/elections/e/campaign"),
        2000,
        "the campaign at a",
      );
      await sleep(2500);
      assert.ok(
        a.requests.filter((q) => q.url === "/ready").length >= 2,
        "a is probed while it holds the wait",
      );
      assert.equal(b.requests.length, 0, "a healthy holder keeps the wait");
      const cutAt = performance.now();
      healthy = false;
      const held = await p;
      const took = performance.now() - cutAt;
      assert.equal(held.fencingToken, 7);
      // The holder is left once it has not been ready for 3 s (probes every second): far below 30 s.
      assert.ok(took < 10_000, `re-sent after ${Math.round(took)} ms`);
      const first = a.requests.find((q) => q.url === "/v1/elections/e/campaign")!;
      const second = b.requests.find((q) => q.url === "/v1/elections/e/campaign")!;
      assert.deepEqual(JSON.parse(second.body), JSON.parse(first.body), "same lease, same value");
      assert.equal(second.headers["idempotency-key"], first.headers["idempotency-key"]);
      const probes = a.requests.filter((q) => q.url === "/ready").length;
      await sleep(1500);
      assert.equal(
        a.requests.filter((q) => q.url === "/ready").length,
        probes,
        "probing stops with the attempt",
      );
      await held.resign();
    });
  }
});
