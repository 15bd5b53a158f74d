/**
 * `ballot snapshot save FILE --endpoints ...` and `ballot snapshot restore FILE --data-dir DIR
 * --id ID --members ... [--cluster-token T]`: backups of a running cluster's key-value state and
 * new clusters seeded from them. Owns the client side of the backup format (snapshot-api.ts) and
 * the seeding of a data dir. Must never leave a half-written backup under FILE, nor seed a data
 * dir from a file whose checksum or contents do not verify, nor touch a data dir that has data.
 */
import { createHash } from "node:crypto";
import { createReadStream, createWriteStream, existsSync, readdirSync, renameSync, rmSync } from "node:fs";
import { KvStore } from "../kv/store.js";
import { clusterIdOf } from "../node/raft-node.js";
import { BACKUP_FORMAT, type BackupHeader } from "../server/snapshot-api.js";
import { DiskStorage } from "../storage/disk.js";
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

async function save(p: Parsed, file: string): Promise<number> {
  const endpoints = endpointsOf(p);
  const get = fetchFor(p);
  let lastError = "";
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
  let backup: Awaited<ReturnType<typeof readBackup>>;
  try {
    backup = await readBackup(file);
    // The contents must parse as a key-value state, not just match their checksum.
    new KvStore().restore(backup.body);
  } catch (e) {
    console.error(`ballot: snapshot restore: ${(e as Error).message}`);
    return 1;
  }
  const ids = [...members.keys()];
  const config = { voters: ids, learners: [] };
  const storage = DiskStorage.open({
    dir,
    nodeId: id,
    clusterId: clusterIdOf(p.flags.get("cluster-token") ?? "ballot", ids),
    initialConfig: config,
  });
  try {
    // Every member seeded from the same file holds the same entry 1 and the snapshot over it, so
    // the new cluster starts from one agreed state and elects a leader in term 2.
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
    storage.writeSnapshot({ index: 1, term: 1, config }, backup.body);
  } finally {
    storage.close();
  }
  console.log(JSON.stringify({ dataDir: dir, id, revision: backup.header.revision, members: ids }));
  return 0;
}

export async function runSnapshot(p: Parsed): Promise<number> {
  const [verb, file, ...extra] = p.positional;
  if (verb !== "save" && verb !== "restore")
    throw new UsageError("usage: ballot snapshot save FILE | restore FILE ...");
  if (!file) throw new UsageError(`ballot snapshot ${verb} needs a FILE`);
  if (extra.length > 0) throw new UsageError(`unexpected argument '${extra[0]}'`);
  return verb === "save" ? save(p, file) : restore(p, file);
}
