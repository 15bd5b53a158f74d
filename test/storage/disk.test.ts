/** DiskStorage against the shared storage contract: on the real file system, and on the fault-injecting one. */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after } from "node:test";
import { DiskStorage, type DiskStorageOptions } from "../../src/storage/disk.js";
import type { Storage } from "../../src/storage/storage.js";
import { FaultFs } from "../lib/faultfs.js";
import { storageSuite } from "./suite.js";

const root = mkdtempSync(join(tmpdir(), "ballot-disk-"));
after(() => rmSync(root, { recursive: true, force: true }));
let n = 0;
const quiet = { warn: () => {} };

function factory(makeFs: () => DiskStorageOptions["fs"], small: boolean) {
  const opts = new Map<Storage, DiskStorageOptions>();
  return {
    create(config: DiskStorageOptions["initialConfig"]): Storage {
      const o: DiskStorageOptions = {
        dir: join(root, `d${++n}`),
        nodeId: "a",
        clusterId: "test",
        initialConfig: config,
        fs: makeFs(),
        logger: quiet,
        // Tiny segments and frames so rotation, segment removal and multi-frame snapshots all happen.
        ...(small ? { segmentBytes: 300, snapshotFrameBytes: 64, cacheBytes: 16 } : {}),
      };
      const s = DiskStorage.open(o);
      opts.set(s, o);
      return s;
    },
    reopen(s: Storage): Storage {
      const o = opts.get(s)!;
      s.close();
      const again = DiskStorage.open(o);
      opts.set(again, o);
      return again;
    },
  };
}

storageSuite(
  "DiskStorage on the real file system",
  factory(() => undefined, false),
);
storageSuite(
  "DiskStorage, tiny segments, frames and cache",
  factory(() => undefined, true),
);
storageSuite(
  "DiskStorage on FaultFs",
  factory(() => new FaultFs(), true),
);
