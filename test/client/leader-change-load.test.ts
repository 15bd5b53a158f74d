/**
 * ballot/client across a leader change under load (issue 9's proof): 64 puts kept in flight
 * (merged into transactions, as the client does by default) while the Raft leader is SIGKILLed
 * and later while leadership is handed over. Every put of a unique key either resolves — and then
 * the store holds exactly that value at that revision, applied once (version 1) — or fails with
 * `outcome_unknown` (then it may or may not be there, but at most once) or with a code that says
 * nothing was applied (then the key is absent). Writes go on after the change.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { BallotClient, BallotClientError } from "../../src/client/index.js";
import { call, ProcCluster } from "../integration/procs.js";
import { sleep } from "./helpers.js";

const K = 64;

describe("ballot/client across a leader change under load", { timeout: 90_000 }, () => {
  let c: ProcCluster;
  before(async () => {
    c = await ProcCluster.start({ electionTimeoutMs: 300 });
  });
  after(async () => {
    await c?.stop();
  });

  it("a leader killed, then leadership handed over, under 64 puts in flight: every answer is true, nothing applied twice, writes go on", async () => {
    const client = new BallotClient({ endpoints: c.ids.map((id) => c.url(id)), timeoutMs: 15_000 });
    const ok = new Map<string, { value: number; revision: number; at: number }>();
    const failed = new Map<string, string>();
    let n = 0;
    let running = true;
    const worker = async (): Promise<void> => {
      while (running) {
        const i = n++;
        const key = `load/${i % 16}/${i}`; // 16 prefixes, so that each lists within one page
        try {
          const r = await client.put(key, i);
          assert.equal(r.key, key);
          assert.equal(r.value, i);
          ok.set(key, { value: i, revision: r.revision, at: performance.now() });
        } catch (e) {
          failed.set(key, e instanceof BallotClientError ? e.code : String(e));
        }
      }
    };
    const workers = Array.from({ length: K }, worker);
    await sleep(1000);
    const killed = await c.waitForLeader();
    const killedAt = performance.now();
    await c.signal(killed, "SIGKILL");
    const next = await c.waitForLeader(10_000, [killed]);
    await sleep(1500);
    // A graceful hand-over too, to a node that is not the current leader.
    const target = c.ids.find((id) => id !== killed && id !== next)!;
    const t = await call(`${c.url(next)}/v1/cluster/transfer-leader`, "POST", { id: target });
    assert.equal(t.status, 200, JSON.stringify(t.body));
    const handedAt = performance.now();
    await sleep(1500);
    running = false;
    await Promise.all(workers);

    const afterKill = [...ok.values()].filter((x) => x.at > killedAt + 200).length;
    const afterHandOver = [...ok.values()].filter((x) => x.at > handedAt + 200).length;
    console.log(
      `# ${ok.size} puts answered 200, ${failed.size} failed (${JSON.stringify(
        Object.fromEntries(
          [...new Set(failed.values())].map((code) => [
            code,
            [...failed.values()].filter((x) => x === code).length,
          ]),
        ),
      )}); ${afterKill} after the kill, ${afterHandOver} after the hand-over (transfer ${t.status})`,
    );
    assert.ok(afterKill > 100, "writes went on after the kill");
    assert.ok(afterHandOver > 100, "writes went on after the hand-over");
    assert.ok(ok.size > 10 * failed.size, "most puts succeed");

    // What the store holds, read back through a surviving node.
    const stored = new Map<string, { value: unknown; modRevision: number; version: number }>();
    for (let b = 0; b < 16; b++) {
      const list = await client.list(`load/${b}/`, { limit: 10_000 });
      assert.equal(list.more, false);
      for (const kv of list.kvs)
        stored.set(kv.key, { value: kv.value, modRevision: kv.revision, version: kv.version });
    }
    assert.ok(stored.size >= ok.size);
    for (const [key, r] of ok) {
      const s = stored.get(key);
      assert.ok(s, `${key} answered 200 but is not stored`);
      assert.equal(s.value, r.value, key);
      assert.equal(s.modRevision, r.revision, `${key}: the answer's revision is the store's`);
    }
    for (const [key, s] of stored) assert.equal(s.version, 1, `${key} applied ${s.version} times`);
    for (const [key, code] of failed) {
      if (code === "outcome_unknown") continue;
      assert.ok(!stored.has(key), `${key} failed with ${code} (nothing applied) but is stored`);
    }
    // Nothing was stored that no put asked for.
    for (const key of stored.keys()) assert.ok(ok.has(key) || failed.has(key), key);
    client.close();
    c.spawn(killed);
  });
});
