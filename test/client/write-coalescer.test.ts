/**
 * Merging concurrent puts: the coalescer against staged senders (exact, no network), then
 * BallotClient against a real 3-node cluster with a recording fetch — many concurrent puts become
 * fewer requests, each put keeps its own result and revision, one bad put among them fails alone,
 * and puts that carry a condition, a fence or a signal always go alone.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { BallotClient, BallotClientError } from "../../src/client/index.js";
import { WriteCoalescer } from "../../src/client/write-coalescer.js";
import { ProcCluster } from "../integration/procs.js";
import { type Attempt, recordingFetch } from "./helpers.js";

interface Staged {
  singles: string[];
  batches: string[][];
  release(): void;
}

/** Senders that hold every request until release(), answering like the server would. */
function staged(
  batchAnswer: (keys: string[]) => unknown = (keys) => ({
    succeeded: true,
    revision: 100,
    results: keys.map((key, i) => ({ put: { key, revision: 10 + i } })),
  }),
  partitionOf?: (key: string) => number | null,
): { s: Staged; co: WriteCoalescer } {
  const waiting: (() => void)[] = [];
  const s: Staged = {
    singles: [],
    batches: [],
    release: () => {
      for (const f of waiting.splice(0)) f();
    },
  };
  const hold = <T>(f: () => T): Promise<T> =>
    new Promise((resolve, reject) =>
      waiting.push(() => {
        try {
          resolve(f());
        } catch (e) {
          reject(e);
        }
      }),
    );
  const co = new WriteCoalescer(
    (key) => {
      s.singles.push(key);
      return hold(() => {
        if (key === "bad") throw new BallotClientError(400, "invalid_request", "bad key");
        return { key, revision: 1 };
      });
    },
    (puts) => {
      const keys = puts.map((p) => p.key);
      s.batches.push(keys);
      return hold(() => batchAnswer(keys));
    },
    { maxInFlight: 2, maxOps: 3, partitionOf },
  );
  return { s, co };
}

const tick = () => new Promise((r) => setImmediate(r));

describe("WriteCoalescer", () => {
  it("sends alone while there is room; merges what waits, in order, up to maxOps; each put gets its own result", async () => {
    const { s, co } = staged();
    const all = ["a", "b", "c", "d", "e", "f", "g", "g"].map((k) => co.put(k, 1));
    await tick();
    assert.deepEqual(s.singles, ["a", "b"], "two alone fill the two slots");
    assert.deepEqual(s.batches, []);
    s.release();
    await tick();
    // A key is written once per transaction: the second g waits for the next slot, alone.
    assert.deepEqual(s.batches, [
      ["c", "d", "e"],
      ["f", "g"],
    ]);
    s.release();
    await tick();
    assert.deepEqual(s.singles, ["a", "b", "g"]);
    s.release();
    const results = (await Promise.all(all)) as { key: string; revision: number }[];
    assert.deepEqual(
      results.map((r) => `${r.key}@${r.revision}`),
      ["a@1", "b@1", "c@10", "d@11", "e@12", "f@10", "g@11", "g@1"],
    );
  });

  it("on a partitioned cluster a batch holds one partition's puts, in order; the others keep their place", async () => {
    // Keys "<partition><name>": the first character is the partition.
    const { s, co } = staged(undefined, (key) => Number(key[0]));
    const keys = ["0a", "0b", "1c", "0d", "1e", "2f", "0g", "1h", "0i"];
    const all = keys.map((k) => co.put(k, 1));
    await tick();
    assert.deepEqual(s.singles, ["0a", "0b"]);
    s.release();
    await tick();
    assert.deepEqual(s.batches, [
      ["1c", "1e", "1h"],
      ["0d", "0g", "0i"],
    ]);
    s.release();
    await tick();
    assert.deepEqual(s.singles, ["0a", "0b", "2f"], "the last one waiting goes alone");
    s.release();
    assert.equal((await Promise.all(all)).length, keys.length);
  });

  it("large string values end a batch before the server's size limit would refuse it", async () => {
    const { s, co } = staged();
    const big = "x".repeat(100 * 1024); // counted as 300 KiB (3 bytes a char at worst)
    const all = [co.put("a", 1), co.put("b", 1), co.put("c", big), co.put("d", "small"), co.put("e", big)];
    await tick();
    s.release();
    await tick();
    assert.deepEqual(s.batches, [["c", "d"]], "e would take the batch over 512 KiB");
    assert.deepEqual(s.singles, ["a", "b", "e"]);
    s.release();
    await Promise.all(all);
  });

  it("a batch refused whole (4xx) is re-sent put by put: the bad one fails alone", async () => {
    const { s, co } = staged(() => {
      throw new BallotClientError(400, "invalid_request", "one op is bad");
    });
    const first = [co.put("x", 1), co.put("y", 1)];
    const rest = ["c", "bad", "e"].map((k) =>
      co.put(k, 1).then(
        (r) => (r as { key: string }).key,
        (e: BallotClientError) => `error ${e.code}`,
      ),
    );
    await tick();
    s.release(); // x, y answer; the batch is sent
    await tick();
    assert.deepEqual(s.batches, [["c", "bad", "e"]]);
    s.release(); // the batch is refused; each is re-sent alone
    await tick();
    assert.deepEqual(s.singles, ["x", "y", "c", "bad", "e"]);
    s.release();
    await Promise.all(first);
    assert.deepEqual(await Promise.all(rest), ["c", "error invalid_request", "e"]);
  });

  it("an outcome the client cannot know is every batched put's; a mismatched answer is refused", async () => {
    for (const [answer, code] of [
      [
        () => {
          throw new BallotClientError(0, "outcome_unknown", "timed out");
        },
        "outcome_unknown",
      ],
      [() => ({ succeeded: true, revision: 1, results: [] }), "invalid_response"],
      [() => ({ succeeded: false, revision: 1, results: [{}, {}] }), "invalid_response"],
    ] as const) {
      const { s, co } = staged(answer);
      const first = [co.put("x", 1), co.put("y", 1)];
      const rest = [co.put("c", 1), co.put("d", 1)].map((p) =>
        p.then(
          () => "ok",
          (e: BallotClientError) => e.code,
        ),
      );
      await tick();
      s.release();
      await tick();
      s.release();
      await Promise.all(first);
      assert.deepEqual(await Promise.all(rest), [code, code]);
      assert.deepEqual(s.singles, ["x", "y"], "never re-sent: it may have been applied");
    }
  });
});

describe("BallotClient coalescing on a real cluster", { timeout: 60_000 }, () => {
  let c: ProcCluster;
  before(async () => {
    c = await ProcCluster.start({ electionTimeoutMs: 300 });
  });
  after(async () => {
    await c?.stop();
  });

  it("many concurrent puts, fewer requests; every put its own revision and value; a bad one fails alone; conditional puts go alone", async () => {
    const log: Attempt[] = [];
    const client = new BallotClient({ endpoints: c.ids.map((id) => c.url(id)), fetch: recordingFetch(log) });
    await client.put("warm", 0); // the leader is known
    log.length = 0;
    const N = 300;
    const big = "x".repeat((1 << 20) + 10); // over the value limit: refused by the server
    const puts = Array.from({ length: N }, (_, i) =>
      i === 150
        ? client.put("too/big", big).then(
            () => assert.fail("a value over the limit was accepted"),
            (e: BallotClientError) => e.code,
          )
        : client.put(`co/${i % 40}`, { i }),
    );
    const fenced = client.put("co/fenced", 1, { fencingToken: 7 });
    const cas = client.put("co/cas", 1, { createOnly: true });
    const results = await Promise.all(puts);
    await Promise.all([fenced, cas]);
    assert.notEqual(results[150], undefined);
    assert.match(String(results[150]), /^(invalid_request|payload_too_large|too_large)/);
    const ok = results.filter((_, i) => i !== 150) as { key: string; revision: number; value: unknown }[];
    assert.equal(new Set(ok.map((r) => r.revision)).size, N - 1, "a revision each");
    for (const [i, r] of ok.entries()) {
      const n = i < 150 ? i : i + 1;
      assert.equal(r.key, `co/${n % 40}`);
      assert.deepEqual(r.value, { i: n });
    }
    // The last put of each key (by revision) is what the store holds.
    const last = new Map<string, { revision: number; value: unknown }>();
    for (const r of ok) if ((last.get(r.key)?.revision ?? 0) < r.revision) last.set(r.key, r);
    for (const [key, r] of last) assert.deepEqual((await client.get(key))!.value, r.value, key);
    const txns = log.filter((a) => a.method === "POST" && a.url.endsWith("/v1/txn")).length;
    const singlePuts = log.filter((a) => a.method === "PUT").length;
    console.log(`# ${N} concurrent puts: ${txns} transactions and ${singlePuts} single PUTs`);
    assert.ok(txns > 0, "some puts were merged");
    // Only the batch with the bad put was re-sent put by put (at most 64), plus the first few alone.
    assert.ok(txns + singlePuts < N / 2, `far fewer requests than puts (${txns + singlePuts})`);
    // The fenced and create-only puts went alone, with their headers.
    assert.equal((await client.get("co/fenced"))!.value, 1);
    await assert.rejects(
      client.put("co/cas", 2, { createOnly: true }),
      (e: BallotClientError) => e.status === 412,
    );
    client.close();
  });
});
