/**
 * `ballot snapshot save FILE --endpoints ...` and `ballot snapshot restore FILE --data-dir DIR
 * --id ID --members ... [--cluster-token T]`: backups of a running cluster's key-value state and
 * new clusters seeded from them. A partitioned cluster's backup is a set: one header line naming
 * the partition count, the rule and each part's size, then every partition's own backup in order;
 * it restores into a data directory of as many groups. Owns the client side of the backup format (snapshot-api.ts) and
 * the seeding of a data dir. Must never leave a half-written backup under FILE, nor seed a data
 * dir from a file whose checksum or contents do not verify, nor touch a data dir that has data.
 */
import { createHash } from "node:crypto";
import { createReadStream, createWriteStream, existsSync, readdirSync, renameSync, rmSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { parsePartitionRule } from "../kv/partitioner.js";
import { KvStore } from "../kv/store.js";
import { partitionedClusterId } from "../node/partitioned-node.js";
import { clusterIdOf } from "../node/raft-node.js";
import { BACKUP_FORMAT, type BackupHeader } from "../server/snapshot-api.js";
import { DiskStorage } from "../storage/disk.js";
import { SharedLog } from "../storage/shared-log.js";
import type { Storage } from "../storage/storage.js";
import { endpointsOf, failure, fetchFor } from "./client.js";
import { type Parsed, parseMembers, UsageError } from "./flags.js";

export const SNAPSHOT_FLAGS = {
  values: ["endpoints", "data-dir", "id", "members", "cluster-token", "token", "ca"],
};

const MiB = 1 << 20;
const fmt = (n: number): string => `${(n / MiB).toFixed(1)} MiB`;

function parseHeader(line: string): BackupHeader {
  let h: BackupHeader;
  try {
    h = JSON.parse(line) as BackupHeader;
  } catch {
    throw new Error("not a Ballot snapshot file (no header line)");
  }
  if (h.format !== BACKUP_FORMAT || h.version !== 1)
    throw new Error("not a Ballot snapshot file (unknown format)");
  if (!Number.isSafeInteger(h.bodyBytes) || h.bodyBytes < 0 || !/^[0-9a-f]{64}$/.test(h.sha256 ?? ""))
    throw new Error("the snapshot file's header is damaged");
  return h;
}

/** Reads a backup file: its header, and its body chunks after verifying size and checksum. */
export async function readBackup(file: string): Promise<{ header: BackupHeader; body: Buffer[] }> {
  const parts: Buffer[] = [];
  for await (const c of createReadStream(file)) parts.push(c as Buffer);
  const all = Buffer.concat(parts);
  const nl = all.indexOf(10);
  if (nl < 0 || nl > 4096) throw new Error(`${file}: not a Ballot snapshot file (no header line)`);
  const header = parseHeader(all.subarray(0, nl).toString("utf8"));
  const body = all.subarray(nl + 1);
  if (body.byteLength !== header.bodyBytes)
    throw new Error(
      `${file}: truncated or padded (${body.byteLength} bytes, the header says ${header.bodyBytes})`,
    );
  if (createHash("sha256").update(body).digest("hex") !== header.sha256)
    throw new Error(`${file}: the checksum does not match: the file is corrupt`);
  return { header, body: [body] };
}

/** The header line of a partitioned cluster's backup set. */
interface SetHeader {
  readonly format: "ballot-snapshot-set";
  readonly version: 1;
  readonly clusterId: string;
  readonly partitions: number;
  readonly partitionBy: string;
  /** Each partition's backup (header line and body), in bytes, in partition order. */
  readonly parts: readonly number[];
  readonly createdAt: string;
}

/** Splits a backup set into its parts and checks each one (header, size, checksum). */
function readSet(
  all: Buffer,
  file: string,
): { header: SetHeader; parts: { header: BackupHeader; body: Buffer }[] } {
  const nl = all.indexOf(10);
  let header: SetHeader;
  try {
    header = JSON.parse(all.subarray(0, nl).toString("utf8")) as SetHeader;
  } catch {
    throw new Error(`${file}: the backup set's header is damaged`);
  }
  if (
    header.version !== 1 ||
    !Number.isInteger(header.partitions) ||
    header.partitions < 2 ||
    header.partitions > 4096 ||
    !Array.isArray(header.parts) ||
    header.parts.length !== header.partitions ||
    !header.parts.every((n) => Number.isSafeInteger(n) && n > 0) ||
    typeof header.partitionBy !== "string"
  )
    throw new Error(`${file}: the backup set's header is damaged`);
  parsePartitionRule(header.partitionBy);
  const parts: { header: BackupHeader; body: Buffer }[] = [];
  let at = nl + 1;
  for (const [i, n] of header.parts.entries()) {
    const part = all.subarray(at, at + n);
    if (part.byteLength !== n) throw new Error(`${file}: truncated (partition ${i} is cut short)`);
    const pnl = part.indexOf(10);
    if (pnl < 0) throw new Error(`${file}: partition ${i}'s backup has no header line`);
    const h = parseHeader(part.subarray(0, pnl).toString("utf8"));
    const body = part.subarray(pnl + 1);
    if (body.byteLength !== h.bodyBytes || createHash("sha256").update(body).digest("hex") !== h.sha256)
      throw new Error(`${file}: partition ${i}'s backup does not match its checksum: the file is corrupt`);
    parts.push({ header: h, body });
    at += n;
  }
  if (at !== all.byteLength) throw new Error(`${file}: trailing bytes after the last partition`);
  return { header, parts };
}

/** A partitioned cluster: every partition's backup, fetched one after another, written as one set. */
async function saveSet(
  p: Parsed,
  file: string,
  ep: string,
  partitions: number,
  partitionBy: string,
): Promise<number> {
  const get = fetchFor(p);
  const token = p.flags.get("token");
  const parts: Buffer[] = [];
  let clusterId = "";
  for (let i = 0; i < partitions; i++) {
    const res = await get(new URL("/v1/snapshot", ep), {
      headers: {
        "X-Ballot-Partition": String(i),
        ...(token === undefined ? {} : { Authorization: `Bearer ${token}` }),
      },
    });
    const buf = Buffer.from(await res.arrayBuffer());
    if (res.status !== 200) throw new Error(`partition ${i}: ${res.status} ${buf.toString("utf8").trim()}`);
    const nl = buf.indexOf(10);
    const h = parseHeader(buf.subarray(0, Math.max(0, nl)).toString("utf8"));
    if (
      createHash("sha256")
        .update(buf.subarray(nl + 1))
        .digest("hex") !== h.sha256
    )
      throw new Error(`partition ${i}: the snapshot arrived damaged (checksum mismatch)`);
    clusterId = h.clusterId;
    parts.push(buf);
  }
  const header: SetHeader = {
    format: "ballot-snapshot-set",
    version: 1,
    clusterId,
    partitions,
    partitionBy,
    parts: parts.map((b) => b.byteLength),
    createdAt: new Date().toISOString(),
  };
  const tmp = `${file}.partial`;
  const out = createWriteStream(tmp);
  try {
    for (const b of [Buffer.from(`${JSON.stringify(header)}\n`), ...parts])
      if (!out.write(b)) await new Promise<void>((r) => out.once("drain", () => r()));
    await new Promise<void>((resolve, reject) => out.end((e?: Error | null) => (e ? reject(e) : resolve())));
    renameSync(tmp, file);
  } catch (e) {
    out.destroy();
    rmSync(tmp, { force: true });
    throw e;
  }
  const bytes = parts.reduce((n, b) => n + b.byteLength, 0);
  console.log(JSON.stringify({ file, partitions, partitionBy, bytes, clusterId, from: ep }));
  return 0;
}

async function save(p: Parsed, file: string): Promise<number> {
  const endpoints = endpointsOf(p);
  const get = fetchFor(p);
  let lastError = "";
  // A partitioned cluster says so in GET /v1/cluster: then every partition is saved.
  for (const ep of endpoints) {
    try {
      const token = p.flags.get("token");
      const res = await get(new URL("/v1/cluster", ep), {
        headers: token === undefined ? {} : { Authorization: `Bearer ${token}` },
      });
      if (res.status !== 200) continue;
      const st = (await res.json()) as { partitions?: unknown[]; partitionBy?: string };
      if (Array.isArray(st.partitions) && st.partitions.length > 1) {
        try {
          return await saveSet(p, file, ep, st.partitions.length, st.partitionBy ?? "hash");
        } catch (e) {
          lastError = `${ep}: ${(e as Error).message}`;
          continue;
        }
      }
      break;
    } catch {
      // try the next endpoint
    }
  }
  if (lastError) {
    console.error(`ballot: snapshot save failed: ${lastError}`);
    return 1;
  }
  for (const ep of endpoints) {
    let res: Response;
    try {
      const token = p.flags.get("token");
      res = await get(new URL("/v1/snapshot", ep), {
        headers: token === undefined ? {} : { Authorization: `Bearer ${token}` },
      });
    } catch (e) {
      lastError = `${ep}: ${failure(e)}`;
      continue;
    }
    if (res.status !== 200 || !res.body) {
      lastError = `${ep}: ${res.status} ${(await res.text()).trim()}`;
      continue;
    }
    const total = Number(res.headers.get("content-length") ?? "0");
    const tmp = `${file}.partial`;
    const out = createWriteStream(tmp);
    let received = 0;
    let lastReport = 0;
    const hash = createHash("sha256");
    let head = "";
    let headerDone = false;
    try {
      for await (const chunk of res.body) {
        const buf = Buffer.from(chunk as Uint8Array);
        received += buf.byteLength;
        if (!headerDone) {
          const nl = buf.indexOf(10);
          if (nl < 0) head += buf.toString("utf8");
          else {
            head += buf.subarray(0, nl).toString("utf8");
            headerDone = true;
            hash.update(buf.subarray(nl + 1));
          }
        } else hash.update(buf);
        if (!out.write(buf)) await new Promise<void>((r) => out.once("drain", () => r()));
        if (total > MiB && Date.now() - lastReport > 500) {
          lastReport = Date.now();
          process.stderr.write(
            `snapshot: ${fmt(received)} of ${fmt(total)} (${Math.floor((100 * received) / total)}%)\n`,
          );
        }
      }
      await new Promise<void>((resolve, reject) =>
        out.end((e?: Error | null) => (e ? reject(e) : resolve())),
      );
      const header = parseHeader(head);
      if (hash.digest("hex") !== header.sha256)
        throw new Error("the snapshot arrived damaged (checksum mismatch)");
      renameSync(tmp, file);
      console.log(
        JSON.stringify({
          file,
          revision: header.revision,
          bytes: received,
          clusterId: header.clusterId,
          from: ep,
        }),
      );
      return 0;
    } catch (e) {
      out.destroy();
      rmSync(tmp, { force: true });
      lastError = `${ep}: ${(e as Error).message}`;
    }
  }
  console.error(`ballot: snapshot save failed: ${lastError}`);
  return 1;
}

async function restore(p: Parsed, file: string): Promise<number> {
  const dir = p.flags.get("data-dir");
  if (!dir) throw new UsageError("snapshot restore needs --data-dir DIR (a new, empty directory)");
  const id = p.flags.get("id");
  if (!id) throw new UsageError("snapshot restore needs --id (this member's id)");
  const membersText = p.flags.get("members");
  if (!membersText) throw new UsageError("snapshot restore needs --members (the new cluster's members)");
  const members = parseMembers(membersText);
  if (!members.has(id)) throw new UsageError(`--members does not list '${id}'`);
  if (existsSync(dir) && readdirSync(dir).length > 0)
    throw new UsageError(`--data-dir ${dir} is not empty: restore only seeds a new data dir`);
  const ids = [...members.keys()];
  const config = { voters: ids, learners: [] };
  const token = p.flags.get("cluster-token") ?? "ballot";
  let set: ReturnType<typeof readSet> | null = null;
  let backup: Awaited<ReturnType<typeof readBackup>> | null = null;
  try {
    const all = await readFile(file);
    if (all.subarray(0, 40).toString("utf8").includes('"ballot-snapshot-set"')) set = readSet(all, file);
    else backup = await readBackup(file);
    // The contents must parse as key-value states, not just match their checksums.
    for (const body of set ? set.parts.map((x) => [x.body]) : [backup!.body]) new KvStore().restore(body);
  } catch (e) {
    console.error(`ballot: snapshot restore: ${(e as Error).message}`);
    return 1;
  }
  if (set) {
    // A partitioned cluster: a data directory of as many groups, each seeded from its partition's part.
    const log = SharedLog.open({
      dir,
      nodeId: id,
      groups: set.header.partitions,
      partitionBy: set.header.partitionBy,
      clusterId: partitionedClusterId(token, set.header.partitions, set.header.partitionBy, [...ids].sort()),
      initialConfig: config,
    });
    try {
      for (const [g, part] of set.parts.entries()) await seed(log.group(g), config, [part.body]);
    } finally {
      log.close();
    }
    console.log(
      JSON.stringify({
        dataDir: dir,
        id,
        partitions: set.header.partitions,
        partitionBy: set.header.partitionBy,
        revisions: set.parts.map((x) => x.header.revision),
        members: ids,
      }),
    );
    return 0;
  }
  const storage = DiskStorage.open({
    dir,
    nodeId: id,
    clusterId: clusterIdOf(token, ids),
    initialConfig: config,
  });
  try {
    await seed(storage, config, backup!.body);
  } finally {
    storage.close();
  }
  console.log(JSON.stringify({ dataDir: dir, id, revision: backup!.header.revision, members: ids }));
  return 0;
}

/**
 * Every member seeded from the same file holds the same entry 1 and the snapshot over it, so the
 * new cluster starts from one agreed state and elects a leader in term 2.
 */
async function seed(
  storage: Storage & { writeSnapshot: Storage["writeSnapshot"] },
  config: { voters: string[]; learners: string[] },
  body: Buffer[],
): Promise<void> {
  await new Promise<void>((resolve, reject) =>
    storage.save(
      {
        mustSync: true,
        hardState: { term: 1, vote: null, commit: 1 },
        entries: [{ term: 1, index: 1, type: "normal", data: new Uint8Array() }],
        snapshotChunks: [],
      },
      (err) => (err ? reject(err) : resolve()),
    ),
  );
  storage.writeSnapshot({ index: 1, term: 1, config }, body);
}

export async function runSnapshot(p: Parsed): Promise<number> {
  const [verb, file, ...extra] = p.positional;
  if (verb !== "save" && verb !== "restore")
    throw new UsageError("usage: ballot snapshot save FILE | restore FILE ...");
  if (!file) throw new UsageError(`ballot snapshot ${verb} needs a FILE`);
  if (extra.length > 0) throw new UsageError(`unexpected argument '${extra[0]}'`);
  return verb === "save" ? save(p, file) : restore(p, file);
}
