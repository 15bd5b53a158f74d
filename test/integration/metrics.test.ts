import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { after, before, describe, it } from "node:test";
import { CLI, call, freePorts, ProcCluster, sleep } from "./procs.js";

/** The value of one sample in Prometheus text, or undefined. */
function sample(text: string, name: string, labels: Record<string, string> = {}): number | undefined {
  for (const line of text.split("\n")) {
    if (!line.startsWith(name)) continue;
    const m = /^([a-z_]+)(\{[^}]*\})? (\S+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const got = Object.fromEntries([...(m[2] ?? "").matchAll(/(\w+)="([^"]*)"/g)].map((x) => [x[1], x[2]]));
    if (Object.entries(labels).every(([k, v]) => got[k] === v)) return Number(m[3]);
  }
  return undefined;
}

describe("observability", { timeout: 60_000 }, () => {
  let c: ProcCluster;
  let leader: string;
  before(async () => {
    c = await ProcCluster.start({ electionTimeoutMs: 400 });
    leader = await c.waitForLeader();
  });
  after(async () => {
    await c?.stop();
  });

  it("GET /metrics: Raft state, proposals, fsync, peers and HTTP by route, in Prometheus format", async () => {
    for (let i = 0; i < 20; i++)
      assert.equal((await call(`${c.url(leader)}/v1/kv/m${i}`, "PUT", { value: i })).status, 200);
    await call(`${c.url(leader)}/v1/kv/nope`);
    await sleep(300); // a few heartbeat round trips
    const follower = c.ids.find((id) => id !== leader)!;
    for (const [id, consistency] of [
      [leader, "lease"],
      [leader, "linearizable"],
      [follower, "lease"],
    ] as const)
      assert.equal((await call(`${c.url(id)}/v1/kv/m0?consistency=${consistency}`)).status, 200);
    const followerText = await (await fetch(`${c.url(follower)}/metrics`)).text();
    // Without --follower-read-leases a follower's lease read asks the leader, and holds no lease.
    assert.equal(sample(followerText, "ballot_read_barriers_total", { confirmed_by: "asked_leader" }), 1);
    assert.equal(
      sample(followerText, "ballot_read_barriers_total", { confirmed_by: "follower_lease" }),
      undefined,
    );
    assert.equal(sample(followerText, "ballot_follower_read_lease"), 0);
    const res = await fetch(`${c.url(leader)}/metrics`);
    assert.equal(res.status, 200);
    assert.match(res.headers.get("content-type") ?? "", /text\/plain/);
    const text = await res.text();
    const term = sample(text, "ballot_term");
    assert.ok(term !== undefined && term >= 1);
    assert.equal(sample(text, "ballot_role", { role: "leader", node: leader }), 1);
    assert.equal(sample(text, "ballot_role", { role: "follower" }), 0);
    assert.ok((sample(text, "ballot_commit_index") ?? 0) >= 20);
    assert.ok((sample(text, "ballot_applied_index") ?? 0) >= 20);
    assert.ok((sample(text, "ballot_proposals_total", { outcome: "committed" }) ?? 0) >= 20);
    // The 404 read above was linearizable (a quorum round), then one lease and one quorum read.
    assert.equal(sample(text, "ballot_read_barriers_total", { confirmed_by: "quorum" }), 2);
    assert.equal(sample(text, "ballot_read_barriers_total", { confirmed_by: "leader_lease" }), 1);
    assert.ok((sample(text, "ballot_fsync_duration_seconds_count") ?? 0) >= 1);
    assert.ok((sample(text, "ballot_fsync_batch_entries_sum") ?? 0) >= 20);
    for (const peer of c.ids.filter((id) => id !== leader)) {
      assert.ok((sample(text, "ballot_peer_rtt_seconds_count", { peer }) ?? 0) >= 1, `rtt to ${peer}`);
      assert.equal(sample(text, "ballot_peer_lag_entries", { peer }) !== undefined, true);
    }
    assert.ok(
      (sample(text, "ballot_http_requests_total", { route: "/v1/kv/:key", method: "PUT", status: "200" }) ??
        0) >= 20,
    );
    assert.equal(
      sample(text, "ballot_http_requests_total", { route: "/v1/kv/:key", method: "GET", status: "404" }),
      1,
    );
    assert.ok(
      (sample(text, "ballot_http_request_duration_seconds_count", { route: "/v1/kv/:key", method: "PUT" }) ??
        0) >= 20,
    );
    assert.ok((sample(text, "ballot_leader_changes_total") ?? 0) >= 1);
    assert.ok(sample(text, "ballot_process_resident_memory_bytes") !== undefined);
    assert.equal((await call(`${c.url(leader)}/metrics`, "POST", {})).status, 405);
    // A follower serves its own metrics and names no peers' lag (only the leader knows it).
    const f = c.ids.find((id) => id !== leader)!;
    const ft = await (await fetch(`${c.url(f)}/metrics`)).text();
    assert.equal(sample(ft, "ballot_role", { role: "follower", node: f }), 1);
    assert.equal(sample(ft, "ballot_peer_lag_entries"), undefined);
  });

  it("logs are JSON lines with the node id and the term; the election is logged once", async () => {
    const [port] = await freePorts(1);
    const dir = `${c.dir}/solo`;
    const p = spawn(
      process.execPath,
      [CLI, "start", "--id", "s1", "--data-dir", dir, "--members", `s1=http://127.0.0.1:${port}`],
      { stdio: ["ignore", "ignore", "pipe"] },
    );
    let err = "";
    p.stderr!.on("data", (d: Buffer) => {
      err += d.toString();
    });
    try {
      for (let i = 0; i < 100 && !/became leader/.test(err); i++) await sleep(50);
      const lines = err
        .trim()
        .split("\n")
        .map((l) => JSON.parse(l) as Record<string, unknown>);
      assert.ok(lines.length >= 2);
      for (const l of lines) {
        assert.equal(l.node, "s1");
        assert.equal(typeof l.msg, "string");
        assert.equal(typeof l.time, "string");
        assert.ok(["info", "warn", "error"].includes(l.level as string));
      }
      const elected = lines.filter((l) => /became leader/.test(l.msg as string));
      assert.equal(elected.length, 1);
      assert.equal(typeof elected[0]!.term, "number");
    } finally {
      p.kill("SIGKILL");
    }
  });
});
