/**
 * bench/wal: what durable writes cost on this machine.
 * - the disk's raw write + fdatasync latency (the physical limit of any acknowledged write);
 * - WAL throughput with 1, 16 and 256 concurrent appenders of 100-byte and 4 KiB entries, every
 *   batch fdatasync'd (group commit turns concurrent appenders into one write + one fsync);
 * - recovery time of a 1 GiB log (every record's checksum verified).
 *
 * Usage: npm run bench:wal [-- --seconds S --recovery-mib M]   (writes bench/results/wal.json)
 */
import { closeSync, fdatasyncSync, mkdtempSync, openSync, rmSync, writeFileSync, writeSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DiskStorage } from "../../src/storage/disk.js";
import { describeMachine } from "../machine.js";

const arg = (name: string, def: number): number => {
  const i = process.argv.indexOf(name);
  return i > 0 ? Number(process.argv[i + 1]) : def;
};
const seconds = arg("--seconds", 3);
const recoveryMiB = arg("--recovery-mib", 1024);
const root = mkdtempSync(join(process.env.BALLOT_BENCH_DIR ?? tmpdir(), "ballot-bench-wal-"));
const quiet = { warn: () => {} };

function percentile(xs: number[], p: number): number {
  const s = xs.slice().sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]!;
}

function rawFsync(): { writeBytes: number; samples: number; p50Ms: number; p99Ms: number; meanMs: number } {
  const fd = openSync(join(root, "raw"), "w");
  const buf = Buffer.alloc(4096, 1);
  const lat: number[] = [];
  const deadline = Date.now() + seconds * 1000;
  let pos = 0;
  while (Date.now() < deadline && lat.length < 20000) {
    const t0 = process.hrtime.bigint();
    writeSync(fd, buf, 0, buf.length, pos);
    fdatasyncSync(fd);
    lat.push(Number(process.hrtime.bigint() - t0) / 1e6);
    pos += buf.length;
  }
  closeSync(fd);
  const mean = lat.reduce((a, b) => a + b, 0) / lat.length;
  const r = (x: number) => Math.round(x * 1000) / 1000;
  return {
    writeBytes: 4096,
    samples: lat.length,
    p50Ms: r(percentile(lat, 50)),
    p99Ms: r(percentile(lat, 99)),
    meanMs: r(mean),
  };
}

async function appenders(concurrency: number, entryBytes: number) {
  const dir = join(root, `a${concurrency}-${entryBytes}`);
  const s = DiskStorage.open({
    dir,
    nodeId: "a",
    clusterId: "bench",
    initialConfig: { voters: ["a"], learners: [] },
    logger: quiet,
  });
  const data = new Uint8Array(entryBytes).fill(42);
  let next = 1;
  let acked = 0;
  let stop = false;
  const lat: number[] = [];
  await new Promise<void>((resolve) => {
    let running = concurrency;
    const one = (): void => {
      if (stop) {
        if (--running === 0) resolve();
        return;
      }
      const index = next++;
      const t0 = process.hrtime.bigint();
      s.save({ entries: [{ index, term: 1, type: "normal", data }], snapshotChunks: [] }, (err) => {
        if (err) throw err;
        acked++;
        if (lat.length < 200000) lat.push(Number(process.hrtime.bigint() - t0) / 1e6);
        one();
      });
    };
    for (let i = 0; i < concurrency; i++) one();
    setTimeout(() => {
      stop = true;
    }, seconds * 1000);
  });
  s.close();
  rmSync(dir, { recursive: true, force: true });
  const perSec = acked / seconds;
  return {
    appenders: concurrency,
    entryBytes,
    entriesPerSec: Math.round(perSec),
    mbPerSec: Math.round(((perSec * entryBytes) / 1e6) * 10) / 10,
    p50Ms: Math.round(percentile(lat, 50) * 1000) / 1000,
    p99Ms: Math.round(percentile(lat, 99) * 1000) / 1000,
  };
}

async function recovery(mib: number) {
  const dir = join(root, "recovery");
  const s = DiskStorage.open({
    dir,
    nodeId: "a",
    clusterId: "bench",
    initialConfig: { voters: ["a"], learners: [] },
    logger: quiet,
  });
  const data = new Uint8Array(4096).fill(7);
  const total = Math.ceil((mib * 2 ** 20) / (4096 + 26));
  let index = 1;
  const t0 = Date.now();
  while (index <= total) {
    const batch = Array.from({ length: Math.min(256, total - index + 1) }, (_, k) => ({
      index: index + k,
      term: 1,
      type: "normal" as const,
      data,
    }));
    index += batch.length;
    await new Promise<void>((res, rej) =>
      s.save({ entries: batch, snapshotChunks: [] }, (e) => (e ? rej(e) : res())),
    );
  }
  const writeSec = (Date.now() - t0) / 1000;
  s.close();
  const t1 = process.hrtime.bigint();
  const again = DiskStorage.open({
    dir,
    nodeId: "a",
    clusterId: "bench",
    initialConfig: { voters: ["a"], learners: [] },
    logger: quiet,
  });
  const recoverSec = Number(process.hrtime.bigint() - t1) / 1e9;
  const entries = again.lastIndex();
  again.close();
  rmSync(dir, { recursive: true, force: true });
  return {
    logMiB: mib,
    entries,
    writeSeconds: Math.round(writeSec * 100) / 100,
    recoverySeconds: Math.round(recoverSec * 100) / 100,
  };
}

try {
  const raw = rawFsync();
  console.log(
    `raw 4 KiB write + fdatasync: p50 ${raw.p50Ms} ms, p99 ${raw.p99Ms} ms (${raw.samples} samples)`,
  );
  const runs = [];
  for (const entryBytes of [100, 4096]) {
    for (const c of [1, 16, 256]) {
      const r = await appenders(c, entryBytes);
      runs.push(r);
      console.log(
        `${String(c).padStart(3)} appenders x ${String(entryBytes).padStart(4)} B: ${r.entriesPerSec.toLocaleString("en-US")} entries/s, ${r.mbPerSec} MB/s, p50 ${r.p50Ms} ms, p99 ${r.p99Ms} ms`,
      );
    }
  }
  const rec = await recovery(recoveryMiB);
  console.log(`recovery of a ${rec.logMiB} MiB log (${rec.entries} entries): ${rec.recoverySeconds} s`);
  const out = {
    benchmark: "wal",
    description: "DiskStorage on the real file system; every batch fdatasync'd; entries of one save each",
    date: new Date().toISOString(),
    machine: describeMachine(),
    directory: root,
    targets: { entriesPerSecAt256x100B: 200_000, recoverySecondsFor1GiB: 10 },
    rawFsync: raw,
    appenders: runs,
    recovery: rec,
  };
  writeFileSync(
    new URL("../../../bench/results/wal.json", import.meta.url),
    `${JSON.stringify(out, null, 2)}\n`,
  );
} finally {
  rmSync(root, { recursive: true, force: true });
}
