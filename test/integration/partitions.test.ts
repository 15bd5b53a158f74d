/**
 * A partitioned cluster of real processes: `ballot start --partitions 4 --partition-by prefix:/`
 * on three nodes. Every partition elects a leader and leaders are spread; any node takes any key
 * and routes it to its partition's leader (307), naming the partition in X-Ballot-Partition;
 * `user42/...` keys stay in one partition; GET /v1/cluster lists the partitions; ranges and
 * transactions within a partition work, and ones that would span partitions are refused with 400
 * cross_partition; a lease is held by one partition; a killed node's partitions are led again and
 * its writes survive a restart; another partition count is refused by the data directory.
 */
import assert from "node:assert/strict";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { chromium } from "playwright-core";
import { BallotClient } from "../../src/client/index.js";
import { call, cli, ProcCluster, readEvents, sleep } from "./procs.js";

const P = 4;
/** user id → partition, as the cluster reported while writing (filled by the second test). */
const seenPartition = new Map<number, number>();

interface PartitionView {
  id: number;
  leader: { id: string; url: string | null } | null;
  term: number;
  commitIndex: number;
}

async function partitions(c: ProcCluster, via: string): Promise<PartitionView[]> {
  const r = await call(`${c.url(via)}/v1/cluster`);
  assert.equal(r.status, 200);
  return r.body.partitions as PartitionView[];
}

/** Until every live node names the same leader, among the live ones, for every partition. */
async function waitForPartitionLeaders(c: ProcCluster, timeoutMs = 15_000): Promise<string[]> {
  const deadline = Date.now() + timeoutMs;
  const alive = () => c.alive();
  while (Date.now() < deadline) {
    const views = await Promise.all(alive().map((id) => partitions(c, id).catch(() => null)));
    const first = views[0];
    if (
      first &&
      views.every((v) => v !== null) &&
      first.every(
        (p, i) =>
          p.leader !== null &&
          alive().includes(p.leader.id) &&
          views.every((v) => v![i]!.leader?.id === p.leader!.id),
      )
    )
      return first.map((p) => p.leader!.id);
    await sleep(50);
  }
  throw new Error(`partitions without an agreed leader\n${c.tail()}`);
}

describe("a partitioned cluster of real processes (--partitions 4 --partition-by prefix:/)", () => {
  let c: ProcCluster;
  before(async () => {
    c = await ProcCluster.start({ extraArgs: ["--partitions", String(P), "--partition-by", "prefix:/"] });
  });
  after(async () => {
    await c?.stop();
  });

  it("elects a leader per partition, spread over the nodes, and lists them in GET /v1/cluster", async () => {
    const leaders = await waitForPartitionLeaders(c);
    assert.equal(leaders.length, P);
    // Balanced: partition p is led by the (p mod 3)-th member once every member is healthy.
    const deadline = Date.now() + 15_000;
    let spread = leaders;
    while (Date.now() < deadline) {
      spread = await waitForPartitionLeaders(c);
      if (spread.every((l, p) => l === c.ids[p % c.ids.length])) break;
      await sleep(100);
    }
    assert.deepEqual(
      spread,
      [0, 1, 2, 3].map((p) => c.ids[p % c.ids.length]),
    );
    const r = await call(`${c.url(c.ids[0]!)}/v1/cluster`);
    assert.equal(r.body.partitionBy, "prefix:/");
    assert.equal(r.body.members.length, 3);
    // Bounded partition metrics: totals, not a series per partition.
    const metrics = await (await fetch(`${c.url(c.ids[1]!)}/metrics`)).text();
    assert.match(metrics, /^ballot_partitions\{node="n2"\} 4$/m);
    assert.match(metrics, /^ballot_partitions_led\{node="n2"\} 1$/m);
    assert.match(metrics, /^ballot_partitions_without_leader\{node="n2"\} 0$/m);
    const ready = await call(`${c.url(c.ids[1]!)}/ready`);
    assert.equal(ready.status, 200);
    assert.deepEqual(ready.body.partitionsNotReady, []);
  });

  it("the dashboard shows who leads each partition (event stream and page)", async () => {
    const leaders = await waitForPartitionLeaders(c);
    const url = c.url(c.ids[1]!);
    const r = await readEvents(`${url}/v1/events`, (es) => es.some((e) => e.event === "status"));
    const status = r.events.find((e) => e.event === "status")!.data;
    assert.deepEqual(
      status.partitions.map((p: { id: number; leader: string }) => [p.id, p.leader]),
      leaders.map((l, p) => [p, l]),
    );
    if (!existsSync("/usr/bin/chromium"))
      assert.fail("/usr/bin/chromium is missing: run scripts/install-chromium.sh");
    const browser = await chromium.launch({ executablePath: "/usr/bin/chromium", args: ["--no-sandbox"] });
    try {
      const page = await browser.newPage();
      const errors: string[] = [];
      page.on("pageerror", (e) => errors.push(e.message));
      await page.goto(`${url}/`);
      await page.waitForSelector("#partitions .cell[data-partition='3']");
      const cells = await page.$$eval("#partitions .cell", (els) =>
        els.map((e) => [e.getAttribute("data-partition"), e.getAttribute("data-leader")]),
      );
      assert.deepEqual(
        cells,
        leaders.map((l, p) => [String(p), l]),
      );
      assert.match(
        (await page.textContent("#partitions-note")) ?? "",
        /4 partitions: n1 leads \d, n2 leads \d, n3 leads \d/,
      );
      assert.deepEqual(errors, []);
    } finally {
      await browser.close();
    }
  });

  it("any node takes any key: routed to its partition's leader, the partition named; a user's keys stay together", async () => {
    const leaders = await waitForPartitionLeaders(c);
    const seen = new Map<string, number>();
    for (let u = 0; u < 12; u++) {
      for (const field of ["name", "email"]) {
        const key = `user${u}/${field}`;
        for (const via of c.ids) {
          const direct = await call(`${c.url(via)}/v1/kv/${key}`, "PUT", { value: `${via}:${u}` });
          const p = Number(direct.headers.get("x-ballot-partition"));
          assert.ok(p >= 0 && p < P, `partition header on ${key}`);
          if (leaders[p] === via) assert.equal(direct.status, 200, JSON.stringify(direct.body));
          else {
            assert.equal(direct.status, 307, JSON.stringify(direct.body));
            assert.equal(direct.headers.get("location"), `${c.url(leaders[p]!)}/v1/kv/${key}`);
          }
        }
        const r = await call(`${c.url(c.ids[0]!)}/v1/kv/${key}`, "PUT", { value: u }, {}, true);
        assert.equal(r.status, 200);
        const p = Number(r.headers.get("x-ballot-partition"));
        const prev = seen.get(`user${u}`);
        if (prev !== undefined) assert.equal(p, prev, `user${u}'s keys share a partition`);
        seen.set(`user${u}`, p);
        seenPartition.set(u, p);
      }
    }
    assert.ok(new Set(seen.values()).size > 1, "users are spread over partitions");
    for (const id of c.ids) {
      const g = await call(`${c.url(id)}/v1/kv/user3/email`);
      assert.equal(g.status, 200);
      assert.equal(g.body.value, 3);
    }
    // Asking a key in the wrong partition is refused, not answered from another partition.
    const home = seen.get("user3")!;
    const wrong = await call(`${c.url(c.ids[0]!)}/v1/kv/user3/email`, "GET", undefined, {
      "X-Ballot-Partition": String((home + 1) % P),
    });
    assert.equal(wrong.status, 400);
    assert.equal(wrong.body.error.code, "cross_partition");
    for (const v of ["99", "4", "-1", "1e0", "0x1", "1.5", "", "999999", "1, 2"]) {
      for (const path of [
        "/v1/kv/user3/email",
        "/v1/txn",
        "/v1/leases",
        "/v1/elections/e1",
        "/v1/kv?prefix=",
      ]) {
        const method = path === "/v1/txn" || path === "/v1/leases" ? "POST" : "GET";
        const body =
          path === "/v1/txn"
            ? { success: [{ put: { key: "x", value: 1 } }] }
            : path === "/v1/leases"
              ? { ttl: 5 }
              : undefined;
        const bad = await call(`${c.url(c.ids[0]!)}${path}`, method, body, { "X-Ballot-Partition": v });
        assert.equal(bad.status, 400, `${path} with X-Ballot-Partition '${v}': ${JSON.stringify(bad.body)}`);
        assert.equal(bad.body.error.code, "invalid_header");
      }
    }
    assert.equal((await call(`${c.url(c.ids[0]!)}/v1/kv/x`)).status, 404, "the refused txn wrote nothing");
  });

  it("ranges and transactions within a partition work; across partitions they are refused with 400 cross_partition", async () => {
    const range = await call(`${c.url(c.ids[1]!)}/v1/kv?prefix=user5/`);
    assert.equal(range.status, 200, JSON.stringify(range.body));
    assert.deepEqual(
      range.body.kvs.map((k: { key: string }) => k.key),
      ["user5/email", "user5/name"],
    );
    // A range over the whole keyspace merges every partition's, in key order.
    const whole = await call(`${c.url(c.ids[1]!)}/v1/kv?prefix=user1`);
    assert.equal(whole.status, 200, JSON.stringify(whole.body));
    const wholeKeys = whole.body.kvs.map((k: { key: string }) => k.key);
    assert.deepEqual(wholeKeys, [...wholeKeys].sort());
    assert.deepEqual(
      wholeKeys.filter((k: string) => k.endsWith("/name")),
      ["user1/name", "user10/name", "user11/name"],
    );
    assert.equal(whole.body.revisions.length, P);
    const limited = await call(`${c.url(c.ids[1]!)}/v1/kv?prefix=&limit=5`);
    assert.equal(limited.body.kvs.length, 5);
    assert.equal(limited.body.more, true);
    const one = await call(`${c.url(c.ids[1]!)}/v1/kv`, "GET", undefined, { "X-Ballot-Partition": "0" });
    assert.equal(one.status, 200);
    assert.ok(one.body.kvs.length > 0);

    const txn = {
      compare: [{ key: "user7/name", target: "value", op: "==", value: 7 }],
      success: [{ put: { key: "user7/email", value: "seven@example.com" } }, { get: { key: "user7/name" } }],
    };
    const ok = await call(`${c.url(c.ids[2]!)}/v1/txn`, "POST", txn, {}, true);
    assert.equal(ok.status, 200, JSON.stringify(ok.body));
    assert.equal(ok.body.succeeded, true);
    // Two users in different partitions: refused, and nothing applied.
    const other = [...Array(12).keys()].find((u) => u !== 7 && partitionOfUser(u) !== partitionOfUser(7));
    assert.ok(other !== undefined);
    const spanning = await call(`${c.url(c.ids[2]!)}/v1/txn`, "POST", {
      success: [
        { put: { key: "user7/name", value: "x" } },
        { put: { key: `user${other}/name`, value: "x" } },
      ],
    });
    assert.equal(spanning.status, 400);
    assert.equal(spanning.body.error.code, "cross_partition");
    const after7 = await call(`${c.url(c.ids[0]!)}/v1/kv/user7/name`);
    assert.equal(after7.body.value, 7);

    function partitionOfUser(u: number): number {
      return seenPartition.get(u)!;
    }
  });

  it("a watch over several partitions merges them, each in its revision order, and resumes from its position", async () => {
    const base = c.url(c.ids[1]!);
    const start = await call(`${base}/v1/kv?prefix=user`);
    assert.equal(start.status, 200);
    const from = (start.body.revisions as number[]).map((r) => r + 1);
    type Ev = { id?: string; event: string; data: { key: string; revision: number; partition: number } };
    const N = 24;
    const watching = readEvents(
      `${base}/v1/watch?prefix=user&fromRevisions=${from.join(",")}`,
      (e) => e.length >= N,
    );
    await sleep(200);
    for (let i = 0; i < N; i++) {
      const r = await call(
        `${c.url(c.ids[i % 3]!)}/v1/kv/user${i % 12}/watched`,
        "PUT",
        { value: i },
        {},
        true,
      );
      assert.equal(r.status, 200, JSON.stringify(r.body));
    }
    const got = await watching;
    assert.equal(got.status, 200, JSON.stringify(got.body));
    const events = got.events as Ev[];
    assert.equal(events.length, N);
    assert.deepEqual(
      events.map((e) => e.data.key).sort(),
      [...Array(N).keys()].map((i) => `user${i % 12}/watched`).sort(),
      "every change, from every partition, once",
    );
    assert.ok(new Set(events.map((e) => e.data.partition)).size > 1, "events come from several partitions");
    const last = new Map<number, number>();
    let previous = from.map((r) => r - 1);
    for (const e of events) {
      const user = Number(/^user(\d+)\//.exec(e.data.key)![1]);
      assert.equal(e.data.partition, seenPartition.get(user), `${e.data.key} comes from its partition`);
      assert.ok(e.data.revision > (last.get(e.data.partition) ?? 0), "in its partition's revision order");
      last.set(e.data.partition, e.data.revision);
      // The id is the stream's position: this event's revision for its partition, the others unchanged.
      const position = e.id!.split(",").map(Number);
      assert.equal(position.length, P);
      assert.deepEqual(
        position,
        previous.map((r, p) => (p === e.data.partition ? e.data.revision : r)),
      );
      previous = position;
    }
    // Resuming after the 10th event (as EventSource does with Last-Event-ID) gives exactly the rest.
    const rest = await readEvents(`${base}/v1/watch?prefix=user`, (e) => e.length >= N - 10, {
      headers: { "Last-Event-ID": events[9]!.id! },
    });
    assert.deepEqual(
      (rest.events as Ev[]).map((e) => `${e.data.partition}:${e.data.revision}`).sort(),
      events
        .slice(10)
        .map((e) => `${e.data.partition}:${e.data.revision}`)
        .sort(),
    );
    // The client follows a watch over several partitions too, each event naming its partition.
    const client = new BallotClient({ endpoints: c.ids.map((id) => c.url(id)) });
    try {
      // From a position read first, so no write below can land before the watch's start.
      const now = await client.list("user", { limit: 1 });
      assert.equal(now.revisions?.length, P, "a range over several partitions has each one's revision");
      const ctl = new AbortController();
      const giveUp = setTimeout(() => ctl.abort(), 20_000);
      const seen: { key: string; partition?: number }[] = [];
      const following = (async () => {
        const fromRevisions = now.revisions!.map((r) => r + 1);
        for await (const e of client.watch("user", { fromRevisions, signal: ctl.signal })) {
          seen.push(e);
          if (seen.length === 12) ctl.abort();
        }
      })();
      for (let u = 0; u < 12; u++) await client.put(`user${u}/followed`, u);
      await following;
      clearTimeout(giveUp);
      assert.deepEqual(
        seen.map((e) => e.key).sort(),
        [...Array(12).keys()].map((u) => `user${u}/followed`).sort(),
      );
      for (const e of seen)
        assert.equal(e.partition, seenPartition.get(Number(/^user(\d+)\//.exec(e.key)![1])));
    } finally {
      await client.close();
    }
    // Bad positions are refused, naming the shape asked for.
    for (const [q, headers, code] of [
      [`fromRevisions=1,2`, {}, "invalid_request"],
      [`fromRevisions=0,1,1,1`, {}, "invalid_request"],
      [`fromRevision=3`, {}, "cross_partition"],
      [``, { "Last-Event-ID": "5" }, "invalid_request"],
      [`fromRevisions=x`, {}, "invalid_request"],
    ] as const) {
      const bad = await call(`${base}/v1/watch?prefix=user${q ? `&${q}` : ""}`, "GET", undefined, headers);
      assert.equal(bad.status, 400, `${q} ${JSON.stringify(headers)}: ${JSON.stringify(bad.body)}`);
      assert.equal(bad.body.error.code, code, JSON.stringify(bad.body));
    }
    const one = await call(`${base}/v1/watch?prefix=user3/&fromRevisions=1,1,1,1`);
    assert.equal(one.status, 400, "a watch of one partition takes fromRevision");
  });

  it("a lease is held by one partition: keys of that partition may use it, others are told where it lives", async () => {
    const p = seenPartition.get(2)!;
    const g = await call(
      `${c.url(c.ids[0]!)}/v1/leases`,
      "POST",
      { ttl: 10 },
      { "X-Ballot-Partition": String(p) },
      true,
    );
    assert.equal(g.status, 200, JSON.stringify(g.body));
    const lease = g.body.id as number;
    assert.equal(Number(g.headers.get("x-ballot-partition")), p);
    const put = await call(`${c.url(c.ids[0]!)}/v1/kv/user2/session`, "PUT", { value: 1, lease }, {}, true);
    assert.equal(put.status, 200, JSON.stringify(put.body));
    const otherUser = [...seenPartition].find(([, q]) => q !== p)![0];
    const wrong = await call(`${c.url(c.ids[0]!)}/v1/kv/user${otherUser}/session`, "PUT", {
      value: 1,
      lease,
    });
    assert.equal(wrong.status, 400);
    assert.equal(wrong.body.error.code, "cross_partition");
    assert.match(wrong.body.error.message, new RegExp(`lease ${lease} is held by partition ${p}`));
    const info = await call(`${c.url(c.ids[1]!)}/v1/leases/${lease}`, "GET", undefined, {}, true);
    assert.equal(info.status, 200, JSON.stringify(info.body));
    const list = await call(`${c.url(c.ids[1]!)}/v1/leases`);
    assert.equal(list.status, 400);
    assert.equal(list.body.error.code, "cross_partition");
  });

  it("ballot/client learns the partitioning and sends each key to its partition's leader; merged puts stay within a partition", async () => {
    let redirects = 0;
    let requests = 0;
    const counting: typeof fetch = async (input, init) => {
      const r = await fetch(input, init);
      requests++;
      if (r.status === 307) redirects++;
      return r;
    };
    const client = new BallotClient({ endpoints: c.ids.map((id) => c.url(id)), fetch: counting });
    try {
      // Warm up: one key per partition teaches the client who leads what.
      for (let u = 0; u < 12; u++) await client.put(`user${u}/warm`, u);
      const before = redirects;
      const sent = requests;
      // 400 concurrent puts: merged into transactions, each within one partition.
      await Promise.all(Array.from({ length: 400 }, (_, i) => client.put(`user${i % 12}/n${i}`, i)));
      for (let u = 0; u < 12; u++) {
        const got = await client.get(`user${u}/n${u}`);
        assert.equal(got?.value, u);
      }
      console.log(
        `ballot/client on 4 partitions: ${requests - sent} requests for 400 puts and 12 gets, ${redirects - before} redirects after warm-up`,
      );
      assert.ok(
        redirects - before <= 4,
        `${redirects - before} redirects after the client learned the leaders`,
      );
      assert.ok(requests - sent < 400, "puts were merged");
    } finally {
      await client.close();
    }
  });

  it("ballot snapshot save backs up every partition; restore seeds a new partitioned cluster with all of it", async () => {
    const file = join(c.dir, "backup.set");
    const saved = await cli("snapshot", "save", file, "--endpoints", c.url(c.ids[1]!));
    assert.equal(saved.code, 0, saved.stderr);
    const summary = JSON.parse(saved.stdout) as { partitions: number; partitionBy: string };
    assert.equal(summary.partitions, P);
    assert.equal(summary.partitionBy, "prefix:/");
    const before = (await call(`${c.url(c.ids[0]!)}/v1/kv?prefix=user&limit=10000`)).body.kvs as {
      key: string;
      value: unknown;
    }[];
    const dst = await ProcCluster.start({
      extraArgs: ["--partitions", String(P), "--partition-by", "prefix:/"],
      before: async (d) => {
        for (const id of d.ids) {
          const r = await cli(
            "snapshot",
            "restore",
            file,
            "--data-dir",
            join(d.dir, id),
            "--id",
            id,
            "--members",
            d.members,
          );
          assert.equal(r.code, 0, r.stderr);
        }
      },
    });
    try {
      await waitForPartitionLeaders(dst);
      const got = (await call(`${dst.url(dst.ids[2]!)}/v1/kv?prefix=user&limit=10000`)).body.kvs as {
        key: string;
        value: unknown;
      }[];
      assert.deepEqual(
        got.map((k) => [k.key, k.value]),
        before.map((k) => [k.key, k.value]),
      );
      const w = await call(
        `${dst.url(dst.ids[0]!)}/v1/kv/user1/after-restore`,
        "PUT",
        { value: 1 },
        {},
        true,
      );
      assert.equal(w.status, 200);
    } finally {
      await dst.stop();
    }
    // A damaged set is refused, and nothing is written.
    const bytes = readFileSync(file);
    bytes[bytes.length - 3] ^= 0xff;
    const bad = join(c.dir, "bad.set");
    writeFileSync(bad, bytes);
    const r = await cli(
      "snapshot",
      "restore",
      bad,
      "--data-dir",
      join(c.dir, "restored-bad"),
      "--id",
      "n1",
      "--members",
      c.members,
    );
    assert.equal(r.code, 1);
    assert.match(r.stderr, /partition 3's backup does not match its checksum/);
    assert.equal(existsSync(join(c.dir, "restored-bad")), false);
  });

  it("a killed node's partitions are led again by the others; it restarts with its data; another count is refused", async () => {
    const victim = c.ids[2]!;
    await c.signal(victim, "SIGKILL");
    const leaders = await waitForPartitionLeaders(c);
    assert.ok(leaders.every((l) => l !== victim));
    for (let u = 0; u < 12; u++) {
      const r = await call(`${c.url(c.ids[0]!)}/v1/kv/user${u}/after`, "PUT", { value: u }, {}, true);
      assert.equal(r.status, 200, JSON.stringify(r.body));
    }
    // Another partition count on the same data directory: refused, with the reason.
    const wrong = c.spawn(victim, ["--partitions", "8"]);
    const code = await new Promise<number | null>((r) => wrong.once("exit", (c) => r(c)));
    assert.notEqual(code, 0);
    assert.match(c.tail(30), /created with 4 partitions, not 8/);
    c.spawn(victim);
    await waitForPartitionLeaders(c);
    const deadline = Date.now() + 10_000;
    for (;;) {
      const g = await call(`${c.url(victim)}/v1/kv/user11/after?consistency=local`);
      if (g.status === 200 && g.body.value === 11) break;
      assert.ok(Date.now() < deadline, `the restarted node did not catch up\n${c.tail()}`);
      await sleep(50);
    }
  });
});
