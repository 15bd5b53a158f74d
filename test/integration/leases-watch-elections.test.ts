import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { call, ProcCluster, readEvents, sleep } from "./procs.js";

describe("leases, watch and elections on a 3-node cluster", { timeout: 120_000 }, () => {
  let c: ProcCluster;
  let leader: string;
  const L = () => c.url(leader);
  const follower = () => c.url(c.ids.find((id) => id !== leader && c.alive().includes(id))!);

  before(async () => {
    c = await ProcCluster.start({ electionTimeoutMs: 400 });
    leader = await c.waitForLeader();
  });
  after(async () => {
    await c?.stop();
  });

  it("a key attached to a lease lives while kept alive and is deleted when keepalives stop", async () => {
    const g = await call(`${L()}/v1/leases`, "POST", { ttl: 1 });
    assert.equal(g.status, 200, JSON.stringify(g.body));
    const id = g.body.id as number;
    assert.equal((await call(`${L()}/v1/kv/lease-a`, "PUT", { value: 1, lease: id })).status, 200);
    for (let i = 0; i < 6; i++) {
      await sleep(300);
      assert.equal((await call(`${L()}/v1/leases/${id}/keepalive`, "POST")).status, 200);
    }
    const got = await call(`${follower()}/v1/kv/lease-a`);
    assert.equal(got.status, 200);
    assert.equal(got.body.lease, id);
    const info = await call(`${L()}/v1/leases/${id}`);
    assert.deepEqual(info.body.keys, ["lease-a"]);
    const stoppedAt = Date.now();
    let gone = 0;
    while (Date.now() - stoppedAt < 5000) {
      if ((await call(`${L()}/v1/kv/lease-a`)).status === 404) {
        gone = Date.now() - stoppedAt;
        break;
      }
      await sleep(50);
    }
    assert.ok(gone >= 900, `deleted ${gone} ms after the last keepalive, before the TTL`);
    assert.equal((await call(`${L()}/v1/leases/${id}/keepalive`, "POST")).body.error.code, "lease_not_found");
    assert.equal((await call(`${L()}/v1/kv/x`, "PUT", { value: 1, lease: id })).status, 404);
  });

  it("revoke deletes the keys at once; bad lease requests get clear 4xx", async () => {
    const id = (await call(`${L()}/v1/leases`, "POST", { ttl: 30 })).body.id as number;
    await call(`${L()}/v1/kv/lease-r`, "PUT", { value: 1, lease: id });
    const r = await call(`${L()}/v1/leases/${id}`, "DELETE");
    assert.equal(r.status, 200);
    assert.equal((await call(`${L()}/v1/kv/lease-r`)).status, 404);
    assert.equal((await call(`${L()}/v1/leases/${id}`, "DELETE")).status, 404);
    for (const [body, code] of [
      [{ ttl: 0 }, "invalid_request"],
      [{ ttl: "5" }, "invalid_request"],
      [{ ttl: 5, extra: 1 }, "invalid_request"],
      ["{bad", "invalid_json"],
    ] as const) {
      const res = await call(`${L()}/v1/leases`, "POST", body);
      assert.equal(res.status, 400, JSON.stringify(body));
      assert.equal(res.body.error.code, code);
    }
    assert.equal((await call(`${L()}/v1/leases/abc/keepalive`, "POST")).status, 400);
    assert.equal((await call(`${L()}/v1/kv/y`, "PUT", { value: 1, lease: "1" })).status, 400);
    assert.equal((await call(`${L()}/v1/leases/1/nope`, "POST")).status, 404);
  });

  it("idempotency: a retry gets the first outcome with its value; the key reused for another write is 422", async () => {
    const h = { "Idempotency-Key": "idem-1" };
    const a = await call(`${L()}/v1/kv/idem`, "PUT", { value: { n: 1 } }, h);
    const b = await call(`${L()}/v1/kv/idem`, "PUT", { value: { n: 1 } }, h);
    assert.equal(a.status, 200);
    assert.deepEqual(b.body, a.body);
    const c = await call(`${L()}/v1/kv/idem`, "PUT", { value: { n: 2 } }, h);
    assert.equal(c.status, 422);
    assert.equal(c.body.error.code, "idempotency_key_reused");
    assert.equal((await call(`${L()}/v1/kv/idem`)).body.version, 1);
  });

  it("a large chunked body gets 411 (send Content-Length), not a reset connection", async () => {
    const { request } = await import("node:http");
    const status = await new Promise<number>((resolve, reject) => {
      const req = request(
        `${L()}/v1/kv/huge`,
        { method: "PUT", headers: { "Content-Type": "application/json" } },
        (res) => {
          res.resume();
          resolve(res.statusCode ?? 0);
        },
      );
      req.on("error", reject);
      const chunk = Buffer.alloc(256 * 1024, 0x61);
      let sent = 0;
      const more = (): void => {
        while (sent < 8 * 1024 * 1024) {
          sent += chunk.length;
          if (!req.write(chunk)) return void req.once("drain", more);
        }
        req.end();
      };
      more();
    });
    assert.equal(status, 411);
  });

  it("a refused body is discarded only up to 64 MiB: a client that keeps sending is then cut off", async () => {
    const { request } = await import("node:http");
    const chunk = Buffer.alloc(1024 * 1024, 0x61);
    let sent = 0;
    let status = 0;
    await new Promise<void>((resolve) => {
      const req = request(`${L()}/v1/kv/endless`, {
        method: "PUT",
        headers: { "Content-Type": "application/json" },
      });
      req.on("response", (res) => {
        status = res.statusCode ?? 0;
        res.resume();
      });
      req.on("error", () => resolve());
      req.on("close", () => resolve());
      const more = (): void => {
        // Never ends on its own: only the server can stop it.
        while (sent < 1024 * 1024 * 1024) {
          sent += chunk.length;
          if (!req.write(chunk)) return void req.once("drain", more);
        }
      };
      more();
    });
    console.log(`# sent ${sent >> 20} MiB, status ${status}`);
    assert.ok(sent <= 80 * 1024 * 1024, `the server read ${sent >> 20} MiB before cutting the client off`);
    assert.ok(status === 411 || status === 0, `status ${status}`);
  });

  it("fencing tokens: a lower token than one already accepted is refused with 412 stale_token", async () => {
    const h = (t: string) => ({ "X-Ballot-Fencing-Token": t });
    assert.equal((await call(`${L()}/v1/kv/fenced`, "PUT", { value: "a" }, h("7"))).status, 200);
    const stale = await call(`${L()}/v1/kv/fenced`, "PUT", { value: "old" }, h("6"));
    assert.equal(stale.status, 412);
    assert.equal(stale.body.error.code, "stale_token");
    assert.equal(stale.body.error.fencingToken, 7);
    assert.equal((await call(`${L()}/v1/kv/fenced`, "DELETE", undefined, h("5"))).status, 412);
    assert.equal((await call(`${L()}/v1/kv/fenced`, "PUT", { value: "b" }, h("x"))).status, 400);
    assert.equal((await call(`${L()}/v1/kv/fenced`)).body.value, "a");
  });

  it("watch streams changes in revision order from a follower and resumes with Last-Event-ID", async () => {
    const start = (await call(`${L()}/v1/kv/w/0`, "PUT", { value: 0 })).body.revision as number;
    for (let i = 1; i <= 4; i++) await call(`${L()}/v1/kv/w/${i}`, "PUT", { value: i });
    await call(`${L()}/v1/kv/other`, "PUT", { value: 1 });
    await call(`${L()}/v1/kv/w/1`, "DELETE");
    const first = await readEvents(
      `${follower()}/v1/watch?prefix=w/&fromRevision=${start}`,
      (e) => e.length >= 3,
    );
    assert.deepEqual(
      first.events.map((e) => [e.event, e.data.key]),
      [
        ["put", "w/0"],
        ["put", "w/1"],
        ["put", "w/2"],
      ],
    );
    const rest = await readEvents(`${follower()}/v1/watch?prefix=w/`, (e) => e.length >= 3, {
      headers: { "Last-Event-ID": first.events[2]!.id! },
    });
    assert.deepEqual(
      rest.events.map((e) => [e.event, e.data.key]),
      [
        ["put", "w/3"],
        ["put", "w/4"],
        ["delete", "w/1"],
      ],
    );
    const revs = [...first.events, ...rest.events].map((e) => Number(e.id));
    assert.deepEqual(
      revs,
      [...revs].sort((a, b) => a - b),
    );
    assert.equal(new Set(revs).size, revs.length);
    // Live: an event written after the watch opened arrives.
    const live = readEvents(`${L()}/v1/watch?prefix=live`, (e) => e.length >= 1);
    await sleep(200);
    await call(`${L()}/v1/kv/live`, "PUT", { value: "now" });
    assert.equal((await live).events[0]!.data.value, "now");
    for (const q of ["fromRevision=abc", "fromRevision=0", "nope=1"]) {
      assert.equal((await call(`${L()}/v1/watch?${q}`)).status, 400, q);
    }
    assert.equal((await call(`${L()}/v1/watch`, "POST", {})).status, 405);
  });

  it("elections: campaign waits its turn; tokens grow; observe sees each leader; bad input is refused", async () => {
    const la = (await call(`${L()}/v1/leases`, "POST", { ttl: 30 })).body.id as number;
    const lb = (await call(`${L()}/v1/leases`, "POST", { ttl: 30 })).body.id as number;
    const a = await call(`${L()}/v1/elections/jobs/campaign`, "POST", { value: "a", lease: la });
    assert.equal(a.status, 200, JSON.stringify(a.body));
    assert.equal(a.body.value, "a");
    const observed = readEvents(`${follower()}/v1/elections/jobs/observe`, (e) => e.length >= 3);
    let bWon = false;
    const b = call(`${L()}/v1/elections/jobs/campaign`, "POST", { value: "b", lease: lb }).then((r) => {
      bWon = true;
      return r;
    });
    await sleep(300);
    assert.equal(bWon, false, "b must wait while a leads");
    const who = await call(`${follower()}/v1/elections/jobs`);
    assert.equal(who.body.leader.value, "a");
    assert.equal(who.body.candidates, 2);
    assert.equal(
      (await call(`${L()}/v1/elections/jobs/proclaim`, "POST", { lease: lb, value: "x" })).status,
      409,
    );
    assert.equal(
      (await call(`${L()}/v1/elections/jobs/proclaim`, "POST", { lease: la, value: "a2" })).status,
      200,
    );
    assert.equal((await call(`${L()}/v1/elections/jobs/resign`, "POST", { lease: la })).body.resigned, true);
    const bRes = await b;
    assert.equal(bRes.status, 200);
    assert.ok(bRes.body.fencingToken > a.body.fencingToken);
    const seen = (await observed).events.map((e) => e.data.leader?.value);
    assert.deepEqual(seen, ["a", "a2", "b"]);
    // A waiting candidate whose lease is revoked is told so, never that it leads.
    const lc = (await call(`${L()}/v1/leases`, "POST", { ttl: 30 })).body.id as number;
    const cWait = call(`${L()}/v1/elections/jobs/campaign`, "POST", { value: "c", lease: lc });
    await sleep(200);
    await call(`${L()}/v1/leases/${lc}`, "DELETE");
    const cRes = await cWait;
    assert.equal(cRes.status, 410);
    assert.equal(cRes.body.error.code, "lease_expired");
    // The ttl form: the server grants the lease, confirms it with a keepalive, and says for how
    // long the client may count on it (a long Idempotency-Key must not break the derived one).
    await call(`${L()}/v1/elections/jobs/resign`, "POST", { lease: lb });
    const d = await call(
      `${L()}/v1/elections/jobs/campaign`,
      "POST",
      { value: "d", ttl: 5 },
      { "Idempotency-Key": "x".repeat(256) },
    );
    assert.equal(d.status, 200, JSON.stringify(d.body));
    assert.ok(d.body.validForMs > 3000 && d.body.validForMs <= 4750, `validForMs ${d.body.validForMs}`);
    assert.ok(d.body.lease > lc);
    assert.ok(d.body.fencingToken > bRes.body.fencingToken);
    for (const [path, body] of [
      ["/v1/elections/jobs/campaign", { value: 1 }],
      ["/v1/elections/jobs/campaign", { value: 1, lease: la, ttl: 5 }],
      ["/v1/elections/jobs/campaign", { value: 1, ttl: 0.1 }],
      ["/v1/elections/jobs/resign", { lease: "x" }],
      ["/v1/elections/jobs/proclaim", { lease: la }],
      ["/v1/elections/jobs/campaign", { value: 1, lease: la, more: true }],
    ] as const) {
      assert.equal((await call(`${L()}${path}`, "POST", body)).status, 400, JSON.stringify(body));
    }
    assert.equal(
      (await call(`${L()}/v1/elections/jobs/campaign`, "POST", { value: 1, lease: 999999 })).status,
      404,
    );
    assert.equal((await call(`${L()}/v1/elections/${"x".repeat(300)}`)).status, 400);
    assert.equal((await call(`${L()}/v1/elections/jobs/nope`, "POST", {})).status, 404);
  });

  it("a campaign sent to a follower is redirected to the leader", async () => {
    const r = await call(`${follower()}/v1/elections/other/campaign`, "POST", { value: 1, ttl: 5 });
    assert.equal(r.status, 307);
    assert.ok(r.headers.get("location")?.startsWith(L()));
  });

  it("leases renewed within their TTL survive a leader change", async () => {
    const id = (await call(`${L()}/v1/leases`, "POST", { ttl: 5 })).body.id as number;
    await call(`${L()}/v1/kv/survivor`, "PUT", { value: 1, lease: id });
    const old = leader;
    await c.signal(old, "SIGKILL");
    leader = await c.waitForLeader(10_000, [old]);
    assert.equal((await call(`${L()}/v1/leases/${id}/keepalive`, "POST")).status, 200);
    assert.equal((await call(`${L()}/v1/kv/survivor`)).status, 200);
    c.spawn(old);
    await c.waitForLeader();
  });

  it("an unrenewed lease expires about a TTL after its grant while leadership is moved every 400 ms (etcd#9888)", async () => {
    await c.waitForLeader();
    const sent = performance.now();
    const id = (await call(`${L()}/v1/leases`, "POST", { ttl: 3 })).body.id as number;
    await call(`${L()}/v1/kv/doomed`, "PUT", { value: 1, lease: id });
    let transfers = 0;
    let goneAt: number | null = null;
    while (performance.now() - sent < 10_000) {
      const leaderNow = await c.waitForLeader();
      const r = await call(`${c.url(leaderNow)}/v1/leases/${id}`);
      if (r.status === 404) {
        goneAt = performance.now() - sent;
        break;
      }
      const next = c.ids.find((x) => x !== leaderNow)!;
      const t = await call(`${c.url(leaderNow)}/v1/cluster/transfer-leader`, "POST", { id: next });
      if (t.status === 200) transfers++;
      await sleep(400);
    }
    console.log(
      `# lease ttl 3 s, ${transfers} leadership transfers: gone after ${Math.round(goneAt ?? -1)} ms`,
    );
    assert.ok(transfers >= 4, `leadership moved ${transfers} times`);
    assert.ok(goneAt !== null, "the lease expired despite the leader changes");
    // No earlier than its TTL; no later than TTL + an election timeout (400 ms) + this loop's step.
    assert.ok(goneAt >= 3000 && goneAt <= 3000 + 400 + 1000, `gone after ${goneAt} ms`);
    leader = await c.waitForLeader();
    assert.equal((await call(`${L()}/v1/kv/doomed`)).status, 404, "its key went with it");
  });
});

describe("watch compaction", { timeout: 60_000 }, () => {
  it("a node restarted from a snapshot answers 410 compacted for revisions before it", async () => {
    const c = await ProcCluster.start({ electionTimeoutMs: 400, extraArgs: ["--snapshot-entries", "10"] });
    try {
      const leader = await c.waitForLeader();
      for (let i = 0; i < 30; i++) await call(`${c.url(leader)}/v1/kv/k${i}`, "PUT", { value: i });
      const f = c.ids.find((id) => id !== leader)!;
      await c.signal(f, "SIGKILL");
      c.spawn(f);
      await c.waitForLeader();
      const res = await call(`${c.url(f)}/v1/watch?fromRevision=1`);
      assert.equal(res.status, 410);
      assert.equal(res.body.error.code, "compacted");
      assert.ok(res.body.error.compactRevision > 1);
      const ok = await readEvents(
        `${c.url(f)}/v1/watch?fromRevision=${res.body.error.compactRevision}`,
        () => true,
        {
          timeoutMs: 3000,
        },
      );
      assert.equal(ok.status, 200);
    } finally {
      await c.stop();
    }
  });
});

describe("streams on a node that lost its leader", { timeout: 60_000 }, () => {
  it("end with event: error no_leader, so clients go elsewhere instead of waiting on a stale node", async () => {
    const c = await ProcCluster.start({ electionTimeoutMs: 400 });
    try {
      const leader = await c.waitForLeader();
      const f = c.ids.find((id) => id !== leader)!;
      const watch = readEvents(`${c.url(f)}/v1/watch?prefix=`, (e) => e.some((x) => x.event === "error"), {
        timeoutMs: 15_000,
      });
      const observe = readEvents(
        `${c.url(f)}/v1/elections/x/observe`,
        (e) => e.some((x) => x.event === "error"),
        {
          timeoutMs: 15_000,
        },
      );
      await sleep(300);
      const t0 = Date.now();
      for (const id of c.ids) if (id !== f) await c.signal(id, "SIGKILL");
      for (const r of [await watch, await observe]) {
        const err = r.events.find((e) => e.event === "error");
        assert.ok(err, "the stream ended with an error event");
        assert.equal(err.data.code, "no_leader");
      }
      const took = Date.now() - t0;
      assert.ok(took < 10_000, `took ${took} ms`);
    } finally {
      await c.stop();
    }
  });
});
