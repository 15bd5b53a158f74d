/**
 * GET /v1/watch: key changes as server-sent events, from a revision on, resumable with
 * Last-Event-ID. Owns parameter checks and the stream; must never buffer events per watcher
 * (the watch hub's history is the buffer) nor send one out of revision order.
 */
import type * as http from "node:http";
import { LIMITS, utf8Length } from "../kv/commands.js";
import { CompactedError, revisionOf, type WatchEvent } from "../kv/watch-hub.js";
import { type ApiContext, kvJsonOf } from "./api.js";
import { endWhenLeaderless, HttpError, methodNotAllowed, startEventStream } from "./http-util.js";

/** Stop writing while this much is queued on the socket; resume on drain. */
const HIGH_WATER_BYTES = 1 << 20;

export function watchEventJson(e: WatchEvent): Record<string, unknown> {
  return e.type === "put"
    ? { type: "put", ...kvJsonOf(e.kv) }
    : { type: "delete", key: e.key, revision: e.revision };
}

/** The `event: error` that ends a watch whose cursor failed (fell out of the history, or worse). */
export function watchFailure(err: unknown, partition?: number): Record<string, unknown> {
  const where = partition === undefined ? {} : { partition };
  const prefix = partition === undefined ? "" : `partition ${partition}: `;
  if (err instanceof CompactedError)
    return {
      code: "compacted",
      message: prefix + err.message,
      ...where,
      compactRevision: err.compactRevision,
    };
  return { code: "internal", message: prefix + (err as Error).message, ...where };
}

export async function handleWatch(
  ctx: ApiContext,
  req: http.IncomingMessage,
  res: http.ServerResponse,
  url: URL,
  method: string,
): Promise<void> {
  if (method !== "GET") throw methodNotAllowed("GET");
  const prefix = url.searchParams.get("prefix") ?? "";
  if (utf8Length(prefix) > LIMITS.keyBytes)
    throw new HttpError(400, "invalid_request", "the prefix is too long");
  if (url.searchParams.has("fromRevisions"))
    throw new HttpError(
      400,
      "invalid_request",
      "fromRevisions is for a watch over several partitions; this watch sees one: give fromRevision",
    );
  let from = ctx.kv.revision + 1;
  const fromText = url.searchParams.get("fromRevision");
  if (fromText !== null) {
    if (!/^\d{1,15}$/.test(fromText) || Number(fromText) < 1)
      throw new HttpError(400, "invalid_request", "fromRevision must be a positive integer");
    from = Number(fromText);
  }
  const lastId = req.headers["last-event-id"];
  if (typeof lastId === "string" && lastId.trim() !== "") {
    if (!/^\s*\d{1,15}\s*$/.test(lastId))
      throw new HttpError(400, "invalid_header", "Last-Event-ID must be a revision");
    from = Number(lastId) + 1;
  }

  let pumping = false;
  let ended = false;
  let stream: ReturnType<typeof startEventStream> | null = null;
  const end = (): void => {
    if (ended) return;
    ended = true;
    cursor.close();
    res.end();
  };
  const pump = (): void => {
    if (pumping || ended || !stream) return;
    pumping = true;
    try {
      while (res.writableLength < HIGH_WATER_BYTES) {
        const e = cursor.next();
        if (!e) break;
        stream.event(e.type, watchEventJson(e), revisionOf(e));
      }
    } catch (err) {
      stream.event("error", watchFailure(err));
      end();
    } finally {
      pumping = false;
    }
  };
  let cursor: ReturnType<ApiContext["hub"]["open"]>;
  try {
    cursor = ctx.hub.open(prefix, from, pump);
  } catch (e) {
    if (e instanceof CompactedError) {
      throw new HttpError(410, "compacted", e.message, {}, { compactRevision: e.compactRevision });
    }
    throw e;
  }
  res.on("close", () => {
    ended = true;
    cursor.close();
  });
  res.on("drain", pump);
  stream = startEventStream(res);
  stream.comment(`watching '${prefix}' from revision ${from}`);
  const events = stream;
  endWhenLeaderless(
    res,
    () => ctx.node.leaderInfo !== null,
    3 * ctx.node.electionTimeoutMs,
    (n, d) => {
      ended = true;
      cursor.close();
      events.event(n, d);
    },
  );
  pump();
}
