/**
 * GET /v1/watch over every partition of a partitioned member: one stream of the changes under a
 * prefix that no single partition holds. Owns opening one cursor per partition's watch hub,
 * interleaving them, and the position the stream has reached (one revision per partition).
 * Must never reorder one partition's events, never buffer per watcher (each cursor is a position
 * in its hub's history), and never claim an order between partitions: nothing orders them.
 *
 * The position is what makes the stream resumable. Each event's SSE id is the whole position
 * after it, one revision per partition joined by commas (`12,0,7`), so a client that reconnects
 * with `Last-Event-ID` (a browser's EventSource does) resumes every partition right after what it
 * saw; `fromRevisions` gives the starting position explicitly. Each event's data names its
 * partition; its revision is that partition's.
 */
import type * as http from "node:http";
import { LIMITS, utf8Length } from "../kv/commands.js";
import type { KvStore } from "../kv/store.js";
import { CompactedError, revisionOf, type WatchCursor, type WatchHub } from "../kv/watch-hub.js";
import { endWhenLeaderless, HttpError, startEventStream } from "./http-util.js";
import { watchEventJson, watchFailure } from "./watch-api.js";

/** Stop writing while this much is queued on the socket; resume on drain. */
const HIGH_WATER_BYTES = 1 << 20;

/** What the merged watch needs of partition p. */
export interface WatchedPartition {
  readonly kv: KvStore;
  readonly hub: WatchHub;
  readonly hasLeader: () => boolean;
}

/**
 * Parses a position: `count` revisions joined by commas, each a whole number (0 = from the start
 * of that partition's history).
 */
function parsePosition(text: string, count: number, what: string): number[] {
  const parts = text.trim().split(",");
  if (parts.length !== count || parts.some((p) => !/^\d{1,15}$/.test(p)))
    throw new HttpError(
      400,
      "invalid_request",
      `${what} must be ${count} revisions joined by commas, one per partition, in partition order`,
    );
  return parts.map(Number);
}

export function handleMergedWatch(
  partitions: readonly WatchedPartition[],
  electionTimeoutMs: number,
  req: http.IncomingMessage,
  res: http.ServerResponse,
  url: URL,
): void {
  const count = partitions.length;
  const prefix = url.searchParams.get("prefix") ?? "";
  if (utf8Length(prefix) > LIMITS.keyBytes)
    throw new HttpError(400, "invalid_request", "the prefix is too long");
  if (url.searchParams.has("fromRevision"))
    throw new HttpError(
      400,
      "cross_partition",
      `a watch over ${count} partitions has one revision per partition: give fromRevisions (${count} revisions joined by commas), not fromRevision`,
    );
  // `seen[p]`: the last revision of partition p this stream has passed (delivered, or asked to start after).
  let seen: number[] = partitions.map((o) => o.kv.revision);
  const fromText = url.searchParams.get("fromRevisions");
  if (fromText !== null) {
    const from = parsePosition(fromText, count, "fromRevisions");
    if (from.some((r) => r < 1))
      throw new HttpError(400, "invalid_request", "fromRevisions must be positive revisions");
    seen = from.map((r) => r - 1);
  }
  const lastId = req.headers["last-event-id"];
  if (typeof lastId === "string" && lastId.trim() !== "")
    seen = parsePosition(lastId, count, "Last-Event-ID");

  const cursors: WatchCursor[] = [];
  let pumping = false;
  let ended = false;
  let stream: ReturnType<typeof startEventStream> | null = null;
  const closeAll = (): void => {
    for (const c of cursors) c.close();
  };
  const end = (): void => {
    if (ended) return;
    ended = true;
    closeAll();
    res.end();
  };
  // Partitions take turns, one event each per round, so a busy partition cannot hold back the rest.
  const pump = (): void => {
    if (pumping || ended || !stream) return;
    pumping = true;
    let p = 0;
    try {
      let progress = true;
      while (progress && res.writableLength < HIGH_WATER_BYTES) {
        progress = false;
        for (p = 0; p < count && res.writableLength < HIGH_WATER_BYTES; p++) {
          const e = cursors[p]!.next();
          if (!e) continue;
          progress = true;
          seen[p] = revisionOf(e);
          stream.event(e.type, { ...watchEventJson(e), partition: p }, seen.join(","));
        }
      }
    } catch (err) {
      stream.event("error", watchFailure(err, p));
      end();
    } finally {
      pumping = false;
    }
  };
  for (let p = 0; p < count; p++) {
    try {
      cursors.push(partitions[p]!.hub.open(prefix, seen[p]! + 1, pump));
    } catch (e) {
      closeAll();
      if (e instanceof CompactedError) {
        throw new HttpError(
          410,
          "compacted",
          `partition ${p}: ${e.message}`,
          {},
          { partition: p, compactRevision: e.compactRevision },
        );
      }
      throw e;
    }
  }
  res.on("close", () => {
    ended = true;
    closeAll();
  });
  res.on("drain", pump);
  stream = startEventStream(res);
  stream.comment(
    `watching '${prefix}' over ${count} partitions from revisions ${seen.map((r) => r + 1).join(",")}`,
  );
  const events = stream;
  // A member cut off from any partition's leader stops learning that partition's changes.
  endWhenLeaderless(
    res,
    () => partitions.every((o) => o.hasLeader()),
    3 * electionTimeoutMs,
    (n, d) => {
      ended = true;
      closeAll();
      events.event(n, d);
    },
  );
  pump();
}
