/**
 * Membership changes of a partitioned cluster: a member joins, is promoted in, or leaves every
 * partition. Owns the order of the per-partition changes — partition 0 first when adding (the
 * member's links come from partition 0's configuration, and a joiner learns the cluster from it),
 * last when removing (so the member keeps its links while other partitions still count it) — and
 * sending each one to its partition's leader as that partition's own change (`X-Ballot-Partition`).
 * A partition that already has the change counts as done, so a retried request finishes what a
 * failed one started. Must never answer success before every partition committed the change, and
 * never act on a partition, member or path other than the ones the request named.
 */
import type * as http from "node:http";
import { HttpError } from "./http-util.js";

export type MembershipOp = "addMember" | "removeMember" | "promoteMember";

export interface PartitionedMembershipOptions {
  readonly count: number;
  /** This member's id. */
  readonly self: string;
  /** Where to send partition p's change: its leader's URL, or null when none is known here. */
  readonly leaderUrl: (p: number) => string | null;
  /** This member's own URL (asked when a partition's leader is unknown: it routes the request). */
  readonly selfUrl: string;
  /** Partition 0's voters other than `exclude`, with their URLs (where a self-removal is sent). */
  readonly otherVoters: (exclude: string) => { id: string; url: string }[];
  readonly fetch: typeof fetch;
  /** How long one partition's change may keep being retried (no leader, another change pending). */
  readonly partitionDeadlineMs: number;
}

/** Per-partition answers that mean "already so": the change is there, nothing to do. */
function alreadyDone(op: MembershipOp, status: number, body: unknown, url: string | undefined): boolean {
  const err = (body as { error?: { code?: string; member?: { url?: string } } } | null)?.error;
  if (op === "addMember")
    return status === 409 && err?.code === "member_exists" && url !== undefined && err.member?.url === url;
  if (op === "removeMember") return status === 404 && err?.code === "member_not_found";
  return status === 409 && err?.code === "already_voter";
}

function retryable(status: number, body: unknown): boolean {
  const code = (body as { error?: { code?: string } } | null)?.error?.code;
  return status >= 500 || code === "config_pending" || code === "no_leader";
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Runs `f` over `items` with at most `limit` at a time; rejects with the first failure. */
async function eachLimited<T>(items: T[], limit: number, f: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  let failed: unknown = null;
  const worker = async () => {
    while (failed === null && next < items.length) {
      const item = items[next++]!;
      try {
        await f(item);
      } catch (e) {
        failed ??= e;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  if (failed !== null) throw failed;
}

/**
 * Makes the change the request asks for in every partition and answers with partition 0's answer.
 * `memberId` is the member the change is about; `body` the request's raw body (already checked).
 */
export async function changeEveryPartition(
  opts: PartitionedMembershipOptions,
  op: MembershipOp,
  memberId: string,
  req: http.IncomingMessage,
  body: Buffer,
  path: string,
): Promise<{ status: number; body: unknown; headers?: Record<string, string> }> {
  const method = req.method ?? "GET";
  const memberUrl =
    op === "addMember"
      ? String((JSON.parse(body.toString("utf8")) as { url: string }).url).replace(/\/+$/, "")
      : undefined;
  if (op === "removeMember" && memberId === opts.self) {
    // This member would stop (removed from partition 0) before it could answer: another voter
    // makes the change instead. The client follows the redirect as it does to a leader.
    const other = opts.otherVoters(opts.self)[0];
    if (!other) throw new HttpError(409, "invalid_config_change", "cannot remove the last voter");
    return {
      status: 307,
      body: { redirect: other.url },
      headers: { Location: new URL(path, other.url).href },
    };
  }
  const headers: Record<string, string> = {};
  if (typeof req.headers["content-type"] === "string") headers["Content-Type"] = req.headers["content-type"];
  if (typeof req.headers.authorization === "string") headers.Authorization = req.headers.authorization;

  const inPartition = async (p: number): Promise<{ status: number; body: unknown }> => {
    const deadline = performance.now() + opts.partitionDeadlineMs;
    let last = "";
    for (let attempt = 0; ; attempt++) {
      let target = new URL(path, opts.leaderUrl(p) ?? opts.selfUrl).href;
      try {
        for (let hop = 0; hop < 5; hop++) {
          const r = await opts.fetch(target, {
            method,
            headers: { ...headers, "X-Ballot-Partition": String(p) },
            body: body.length > 0 ? new Uint8Array(body) : undefined,
            redirect: "manual",
            signal: AbortSignal.timeout(opts.partitionDeadlineMs),
          });
          const location = r.headers.get("location");
          if ((r.status === 307 || r.status === 308) && location) {
            await r.body?.cancel();
            target = new URL(location, target).href;
            continue;
          }
          const text = await r.text();
          let answer: unknown = null;
          try {
            answer = text === "" ? null : JSON.parse(text);
          } catch {
            answer = { error: { code: "invalid_response", message: text.slice(0, 200) } };
          }
          if (r.ok || alreadyDone(op, r.status, answer, memberUrl)) return { status: r.status, body: answer };
          if (!retryable(r.status, answer)) {
            const e = (answer as { error?: { code?: string; message?: string } })?.error;
            throw new HttpError(
              r.status >= 400 && r.status < 500 ? r.status : 503,
              e?.code ?? "partition_failed",
              `partition ${p}: ${e?.message ?? `answered ${r.status}`}${p > 0 ? "; the partitions before it have the change: retry the request to finish it" : ""}`,
              {},
              (answer as { error?: Record<string, unknown> })?.error?.member
                ? { member: (answer as { error: { member: unknown } }).error.member }
                : {},
            );
          }
          last = `${r.status} ${JSON.stringify(answer)}`;
          break;
        }
      } catch (e) {
        if (e instanceof HttpError) throw e;
        last = (e as Error).message;
      }
      if (performance.now() > deadline)
        throw new HttpError(
          503,
          "partition_failed",
          `partition ${p}: the change did not go through (${last.slice(0, 300)}); the partitions before it have it: retry the request to finish it`,
          { "Retry-After": "1" },
        );
      await sleep(Math.min(1000, 50 * 2 ** attempt));
    }
  };

  const rest = Array.from({ length: opts.count - 1 }, (_, i) => i + 1);
  if (op === "removeMember") {
    await eachLimited(rest, 8, async (p) => void (await inPartition(p)));
    return inPartition(0);
  }
  const first = await inPartition(0);
  await eachLimited(rest, 8, async (p) => void (await inPartition(p)));
  return first;
}
