/**
 * A child process for the SIGKILL tests: writes entries to DiskStorage on the real disk as fast as
 * it can (several saves in flight, snapshots and compaction now and then) and prints "ack N" once
 * everything up to N is durable. The parent kills it at a random moment and checks the disk.
 * Entry i always carries the same bytes (entryData), so the parent can check contents too.
 */
import { pathToFileURL } from "node:url";
import { DiskStorage } from "../../src/storage/disk.js";

export function entryData(i: number): Uint8Array {
  const size = 50 + ((i * 7919) % 400);
  const out = new Uint8Array(size);
  for (let k = 0; k < size; k++) out[k] = (i + k * 31) & 0xff;
  return out;
}

export const CHILD_CONFIG = { voters: ["a"], learners: [] };

async function main(): Promise<void> {
  const dir = process.argv[2]!;
  const s = DiskStorage.open({
    dir,
    nodeId: "a",
    clusterId: "sigkill",
    initialConfig: CHILD_CONFIG,
    segmentBytes: 256 << 10,
    cacheBytes: 1 << 20,
    logger: { warn: (m) => process.stderr.write(`${m}\n`) },
  });
  let next = s.lastIndex() + 1;
  let inFlight = 0;
  const pump = (): void => {
    while (inFlight < 8) {
      const n = 1 + (next % 17);
      const entries = Array.from({ length: n }, (_, k) => ({
        index: next + k,
        term: 1,
        type: "normal" as const,
        data: entryData(next + k),
      }));
      const last = next + n - 1;
      next += n;
      inFlight++;
      s.save({ entries, snapshotChunks: [], hardState: { term: 1, vote: "a", commit: last } }, (err) => {
        if (err) {
          process.stderr.write(`save failed: ${err.message}\n`);
          process.exit(3);
        }
        inFlight--;
        process.stdout.write(`ack ${last}\n`);
        if (last % 3000 < n && last > s.snapshotMetadata().index + 100) {
          const at = last - 50;
          s.writeSnapshot({ index: at, term: 1, config: CHILD_CONFIG }, [entryData(at)]);
          s.compact(at - 500);
        }
        pump();
      });
    }
  };
  pump();
}

// Only when run as a program: the test imports entryData from this file.
if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) void main();
