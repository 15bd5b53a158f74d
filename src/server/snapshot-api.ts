/**
 * GET /v1/snapshot: a consistent backup of the key-value state, for `ballot snapshot save`. Owns
 * the backup file format: one JSON header line (format, cluster id, revision, body size and
 * SHA-256), then the state machine's own snapshot. Must never stream a state that changes while
 * it is sent: the state is captured in one synchronous step after a linearizable read barrier.
 */
import { createHash } from "node:crypto";
import type * as http from "node:http";
import type { ApiContext } from "./api.js";

export const BACKUP_FORMAT = "ballot-snapshot";

export interface BackupHeader {
  readonly format: typeof BACKUP_FORMAT;
  readonly version: 1;
  readonly clusterId: string;
  readonly revision: number;
  readonly bodyBytes: number;
  readonly sha256: string;
  readonly createdAt: string;
}

export async function handleSnapshot(
  ctx: ApiContext,
  _req: http.IncomingMessage,
  res: http.ServerResponse,
  _url: URL,
  _method: string,
): Promise<void> {
  // Everything acknowledged before this request is in it.
  await ctx.read(new URL("http://x/?consistency=linearizable"));
  // One synchronous pass: no apply can interleave, so the copy is the state at one revision.
  const revision = ctx.kv.revision;
  const chunks = [...ctx.kv.snapshot()];
  const hash = createHash("sha256");
  let bodyBytes = 0;
  for (const c of chunks) {
    hash.update(c);
    bodyBytes += c.byteLength;
  }
  const header: BackupHeader = {
    format: BACKUP_FORMAT,
    version: 1,
    clusterId: ctx.node.clusterId,
    revision,
    bodyBytes,
    sha256: hash.digest("hex"),
    createdAt: new Date().toISOString(),
  };
  const head = Buffer.from(`${JSON.stringify(header)}\n`);
  res.writeHead(200, {
    "Content-Type": "application/octet-stream",
    "Content-Length": head.byteLength + bodyBytes,
    "X-Ballot-Revision": String(revision),
  });
  res.write(head);
  for (const c of chunks) {
    if (res.destroyed) return;
    // Respect the client's pace: a large snapshot must not pile up in memory twice.
    if (!res.write(c)) await new Promise<void>((r) => res.once("drain", () => r()).once("close", () => r()));
  }
  res.end();
}
