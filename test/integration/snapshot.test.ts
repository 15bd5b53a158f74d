import assert from "node:assert/strict";
import { existsSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { readBackup } from "../../src/cli/snapshot.js";
import type { KeyValue } from "../../src/kv/commands.js";
import { KvStore } from "../../src/kv/store.js";
import { call, cli, ProcCluster } from "./procs.js";

describe("snapshot save and restore", { timeout: 120_000 }, () => {
  let src: ProcCluster;
  let leader: string;
  let file: string;
  before(async () => {
    src = await ProcCluster.start({ electionTimeoutMs: 400 });
    leader = await src.waitForLeader();
    file = join(src.dir, "backup.snap");
  });
  after(async () => {
    await src?.stop();
  });

  it("saves a consistent snapshot under write load; a fresh cluster restored from it has every key and revision", async () => {
    for (let i = 0; i < 100; i++) await call(`${src.url(leader)}/v1/kv/base/${i}`, "PUT", { value: { i } });
    // Writers keep going while the backup is taken.
    let writing = true;
    let n = 0;
    const writers = [0, 1].map(async (w) => {
      while (writing) await call(`${src.url(leader)}/v1/kv/load/${w}/${n++ % 20}`, "PUT", { value: n });
    });
    const follower = src.ids.find((id) => id !== leader)!;
    const saved = await cli("snapshot", "save", file, "--endpoints", src.url(follower));
    writing = false;
    await Promise.all(writers);
    assert.equal(saved.code, 0, saved.stderr);
    const summary = JSON.parse(saved.stdout) as { revision: number; bytes: number };
    assert.ok(!existsSync(`${file}.partial`));

    const backup = await readBackup(file);
    assert.equal(backup.header.revision, summary.revision);
    const expected = new KvStore();
    expected.restore(backup.body);
    const kvs = expected.range("", 100_000).kvs;
    assert.ok(kvs.length >= 100);
    // Consistent: the backup is the source cluster's state at its revision.
    const now = (await call(`${src.url(leader)}/v1/kv?prefix=&limit=10000`)).body.kvs as {
      key: string;
      value: unknown;
      revision: number;
    }[];
    for (const kv of now) {
      const b = expected.get(kv.key);
      if (kv.revision <= summary.revision) {
        assert.ok(b, `${kv.key} (revision ${kv.revision}) is missing from the backup at ${summary.revision}`);
        assert.equal(b.modRevision, kv.revision);
        assert.deepEqual(JSON.parse(b.value), kv.value);
      } else if (b) assert.ok(b.modRevision <= summary.revision);
    }

    // A new cluster (new addresses, new data dirs) seeded from the file.
    const dst = await ProcCluster.start({
      electionTimeoutMs: 400,
      before: async (c) => {
        for (const id of c.ids) {
          const r = await cli(
            "snapshot",
            "restore",
            file,
            "--data-dir",
            join(c.dir, id),
            "--id",
            id,
            "--members",
            c.members,
          );
          assert.equal(r.code, 0, r.stderr);
        }
      },
    });
    try {
      const l = await dst.waitForLeader();
      const got = (await call(`${dst.url(l)}/v1/kv?prefix=&limit=10000`)).body as {
        kvs: { key: string; value: unknown; revision: number; createRevision: number; version: number }[];
        revision: number;
      };
      assert.equal(got.revision, summary.revision);
      assert.deepEqual(
        got.kvs.map((k) => [k.key, k.value, k.revision, k.createRevision, k.version]),
        kvs.map((k: KeyValue) => [k.key, JSON.parse(k.value), k.modRevision, k.createRevision, k.version]),
      );
      const w = await call(`${dst.url(l)}/v1/kv/after-restore`, "PUT", { value: 1 });
      assert.equal(w.status, 200);
      assert.equal(w.body.revision, summary.revision + 1);
      for (const id of dst.ids)
        assert.equal((await call(`${dst.url(id)}/v1/kv/base/7?consistency=linearizable`)).body.value.i, 7);
    } finally {
      await dst.stop();
    }
  });

  it("refuses a corrupt or truncated file and a data dir that has data, and changes nothing", async () => {
    const bytes = readFileSync(file);
    const corrupt = join(src.dir, "corrupt.snap");
    const flipped = Buffer.from(bytes);
    flipped[flipped.length - 10]! ^= 0xff;
    writeFileSync(corrupt, flipped);
    const members = "a=http://127.0.0.1:1,b=http://127.0.0.1:2,c=http://127.0.0.1:3";
    const restoreInto = (f: string, dataDir: string, id = "a") =>
      cli("snapshot", "restore", f, "--data-dir", dataDir, "--id", id, "--members", members);
    const dir = join(src.dir, "restore-bad");
    const r1 = await restoreInto(corrupt, dir);
    assert.equal(r1.code, 1);
    assert.match(r1.stderr, /checksum/);
    assert.ok(!existsSync(dir) || readdirSync(dir).length === 0);
    writeFileSync(corrupt, bytes.subarray(0, bytes.length - 100));
    const r2 = await restoreInto(corrupt, dir);
    assert.equal(r2.code, 1);
    assert.match(r2.stderr, /truncated/);
    writeFileSync(corrupt, "hello\n");
    assert.match((await restoreInto(corrupt, dir)).stderr, /not a Ballot snapshot/);
    const used = join(src.dir, leader);
    const r3 = await restoreInto(file, used);
    assert.equal(r3.code, 2);
    assert.match(r3.stderr, /not empty/);
    assert.equal((await restoreInto(file, dir, "z")).code, 2);
    assert.equal((await cli("snapshot", "frobnicate", file)).code, 2);
    assert.equal((await call(`${src.url(leader)}/v1/snapshot`, "POST", {})).status, 405);
  });
});
