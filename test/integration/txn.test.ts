/**
 * POST /v1/txn and client.txn() against three real processes: both branches, atomic writes seen
 * by every node, a follower's redirect, Idempotency-Key and fencing over HTTP, and the limits —
 * each refusal a 4xx that changes nothing.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { BallotClient } from "../../src/client/index.js";
import { settledState } from "../lib/cluster-state.js";
import { call, ProcCluster } from "./procs.js";

describe("transactions over HTTP, 3 real processes", () => {
  let c: ProcCluster;
  let client: BallotClient;
  let L = "";
  before(async () => {
    c = await ProcCluster.start();
    L = c.url(await c.waitForLeader());
    client = new BallotClient({ endpoints: c.ids.map((id) => c.url(id)) });
  });
  after(async () => {
    client?.close();
    await c?.stop();
  });

  it("client.txn moves an amount between two accounts atomically, and says which branch ran", async () => {
    await client.put("acct/a", 100);
    const b = await client.put("acct/b", 100);
    const a = (await client.get("acct/a"))!;
    const moved = await client.txn({
      compare: [{ key: "acct/a", target: "revision", op: "==", value: a.revision }],
      success: [
        { put: { key: "acct/a", value: 60 } },
        { put: { key: "acct/b", value: 140 } },
        { get: { key: "acct/a" } },
      ],
      failure: [{ get: { key: "acct/a" } }],
    });
    assert.equal(moved.succeeded, true);
    assert.equal(moved.revision, b.revision + 2, "each change takes the next revision");
    const g = moved.results[2] as { get: { kv: { value: unknown } } };
    assert.equal(g.get.kv.value, 60);
    // The same compare again fails: the failure branch reads instead.
    const stale = await client.txn({
      compare: [{ key: "acct/a", target: "revision", op: "==", value: a.revision }],
      success: [{ put: { key: "acct/a", value: 0 } }],
      failure: [{ get: { key: "acct/a" } }],
    });
    assert.equal(stale.succeeded, false);
    assert.equal(stale.revision, moved.revision);
    // Every node has both writes, at the revisions the transaction gave them.
    for (const id of c.ids) {
      const r = await call(`${c.url(id)}/v1/kv?prefix=acct/&consistency=linearizable`);
      assert.deepEqual(
        r.body.kvs.map((k: { key: string; value: unknown; revision: number }) => [
          k.key,
          k.value,
          k.revision,
        ]),
        [
          ["acct/a", 60, b.revision + 1],
          ["acct/b", 140, b.revision + 2],
        ],
        id,
      );
    }
  });

  it("a follower redirects; Idempotency-Key applies once; a stale fencing token refuses the whole transaction", async () => {
    const f = c.ids.find((id) => c.url(id) !== L)!;
    const body = { success: [{ put: { key: "idem/x", value: 1 } }, { put: { key: "idem/y", value: 2 } }] };
    const r = await call(`${c.url(f)}/v1/txn`, "POST", body);
    assert.equal(r.status, 307);
    assert.equal(r.headers.get("location"), `${L}/v1/txn`);
    const h = { "Idempotency-Key": "txn-once" };
    const first = await call(`${L}/v1/txn`, "POST", body, h);
    const again = await call(`${L}/v1/txn`, "POST", body, h);
    assert.equal(first.status, 200);
    assert.deepEqual(again.body, first.body, "the replay answers the first outcome");
    assert.equal((await call(`${L}/v1/kv/idem/x`)).body.version, 1, "applied once");
    const other = await call(`${L}/v1/txn`, "POST", { success: [] }, h);
    assert.deepEqual([other.status, other.body.error.code], [422, "idempotency_key_reused"]);

    const fence = (t: number) => ({ "X-Ballot-Fencing-Token": String(t) });
    assert.equal((await call(`${L}/v1/kv/fenced/a`, "PUT", { value: 1 }, fence(5))).status, 200);
    const rev = (await call(`${L}/v1/cluster`)).body.commitIndex as number;
    const refused = await call(
      `${L}/v1/txn`,
      "POST",
      { success: [{ put: { key: "fenced/b", value: 1 } }, { put: { key: "fenced/a", value: 2 } }] },
      fence(4),
    );
    assert.deepEqual([refused.status, refused.body.error.code], [412, "stale_token"]);
    assert.equal((await call(`${L}/v1/kv/fenced/b`)).status, 404, "no part of it was applied");
    assert.equal((await call(`${L}/v1/kv/fenced/a`)).body.value, 1);
    assert.ok(rev > 0);
  });

  it("refuses malformed or oversized transactions with a 4xx and changes nothing", async () => {
    const before = await settledState(c);
    const ops = (n: number) => Array.from({ length: n }, (_, i) => ({ get: { key: `k${i}` } }));
    const big = "z".repeat(600 * 1024);
    const cases: [unknown, number, RegExp][] = [
      [{ success: ops(129) }, 400, /128|more/],
      [{ compare: [{ key: "a", target: "size", op: "==", value: 1 }] }, 400, /target/],
      [{ compare: [{ key: "a", target: "version", op: "==", value: "1" }] }, 400, /integer/],
      [{ compare: [{ key: "a", target: "version", op: "==", value: 2 ** 53 }] }, 400, /./],
      [{ success: [{ put: { key: "a", value: 1 }, get: { key: "a" } }] }, 400, /./],
      [{ success: [{ put: { key: "a", value: 1 } }, { delete: { key: "a" } }] }, 400, /twice/],
      [{ success: [{ put: { key: "a", value: 1, lease: 0 } }] }, 400, /./],
      [{ success: [{ put: { key: "a", value: 1, lease: 424242 } }] }, 404, /lease/],
      [{ success: [{ put: { key: "", value: 1 } }] }, 400, /./],
      [{ extra: [] }, 400, /extra|unknown|additional/],
      [{ success: [{ put: { key: "a", value: big } }, { put: { key: "b", value: big } }] }, 413, /./],
    ];
    for (const [body, status, why] of cases) {
      const r = await call(`${L}/v1/txn`, "POST", body);
      assert.equal(
        r.status,
        status,
        `${JSON.stringify(body).slice(0, 100)}: ${JSON.stringify(r.body).slice(0, 200)}`,
      );
      assert.match(r.body.error.message, why);
    }
    assert.deepEqual(await settledState(c), before);
  });
});
