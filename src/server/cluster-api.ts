/**
 * /v1/cluster/... operations: membership changes (add, promote, remove) and leadership transfer.
 * Owns their validation, the safety checks an operator cannot be trusted to make (is the new
 * member really there and really who it says; would a removal cost the quorum), and their answers.
 * Must never change anything on a follower (it redirects or forwards to the leader), and must
 * never let a refused request change anything.
 */
import * as http from "node:http";
import * as https from "node:https";
import { MembershipError, NotLeaderError, UnavailableError } from "../node/errors.js";
import { checkMemberId, checkMemberUrl, type NodeStatus } from "../node/raft-node.js";
import { PEER_IDENTITY_ERROR, peerClientOptions, type TlsMaterial } from "../transport/tls.js";
import type { ApiContext } from "./api.js";
import { HttpError, methodNotAllowed } from "./http-util.js";

const MEMBER_PATH = /^\/v1\/cluster\/members\/([^/]+)(\/promote)?$/;

export async function handleCluster(
  ctx: ApiContext,
  req: http.IncomingMessage,
  res: http.ServerResponse,
  url: URL,
  method: string,
): Promise<void> {
  if (url.pathname === "/v1/cluster/transfer-leader") {
    if (method !== "POST") throw methodNotAllowed("POST");
    return transferLeader(ctx, req, res);
  }
  if (url.pathname === "/v1/cluster/members") {
    if (method === "GET") {
      ctx.send(res, 200, { members: membersJson(ctx.node.status()) });
      return;
    }
    if (method !== "POST") throw methodNotAllowed("GET, POST");
    return addMember(ctx, req, res);
  }
  const m = MEMBER_PATH.exec(url.pathname);
  if (!m) throw new HttpError(404, "not_found", `no route ${method} ${url.pathname}`);
  // Decoded and checked by the API gate against the route's schema.
  const id = String(ctx.params(req).id);
  if (m[2]) {
    if (method !== "POST") throw methodNotAllowed("POST");
    return promoteMember(ctx, req, res, id);
  }
  if (method === "GET") {
    const member = membersJson(ctx.node.status()).find((x) => x.id === id);
    if (!member) throw new HttpError(404, "member_not_found", `'${id}' is not a member`);
    ctx.send(res, 200, { member });
    return;
  }
  if (method !== "DELETE") throw methodNotAllowed("GET, DELETE");
  return removeMember(ctx, req, res, id);
}

/** `GET /v1/cluster`'s answer (a partitioned member adds its partitions). */
export function clusterJson(st: NodeStatus) {
  return {
    clusterId: st.clusterId,
    self: st.self,
    term: st.term,
    leader: st.leader,
    commitIndex: st.commitIndex,
    appliedIndex: st.appliedIndex,
    members: membersJson(st),
  };
}

/** The members as `GET /v1/cluster` lists them. */
export function membersJson(st: NodeStatus) {
  return st.members.map((m) => ({
    id: m.id,
    url: m.url,
    voter: m.voter,
    role: m.id === st.leader?.id ? "leader" : m.voter ? "follower" : "learner",
    promoting: m.promoting,
    priority: m.priority,
    matchIndex: m.matchIndex,
    lagEntries: m.lagEntries,
  }));
}

async function transferLeader(ctx: ApiContext, req: http.IncomingMessage, res: http.ServerResponse) {
  const body = await ctx.body(req);
  const target = String(ctx.json(req).id);
  const member = ctx.node.status().members.find((m) => m.id === target);
  if (!member) throw new HttpError(404, "member_not_found", `'${target}' is not a member`);
  if (!member.voter) throw new HttpError(409, "not_a_voter", `'${target}' is a learner and cannot lead`);
  if (await ctx.routeIfFollower(req, res, body)) return;
  if (target === ctx.node.id) {
    ctx.send(res, 200, { leader: target, term: ctx.node.status().term, moved: false });
    return;
  }
  try {
    // Leader-only jobs here stop first (RaftNode pauses them), then the target is caught up and told to campaign.
    await ctx.node.transferLeadership(target);
  } catch (e) {
    if (e instanceof UnavailableError)
      throw new HttpError(503, "transfer_failed", e.message, { "Retry-After": "1" });
    throw e;
  }
  ctx.send(res, 200, { leader: target, term: ctx.node.status().term, moved: true });
}

async function addMember(ctx: ApiContext, req: http.IncomingMessage, res: http.ServerResponse) {
  const body = await ctx.body(req);
  // Shape checked by the API gate: id and url are strings, learner a boolean if given.
  const o = ctx.json(req) as { id: string; url: string; learner?: boolean };
  const id = o.id;
  const memberUrl = o.url.replace(/\/+$/, "");
  try {
    checkMemberId(id);
    checkMemberUrl(id, memberUrl);
  } catch (e) {
    throw new HttpError(400, "invalid_request", (e as Error).message);
  }
  if (ctx.peerTls && new URL(memberUrl).protocol !== "https:")
    throw new HttpError(
      400,
      "invalid_request",
      "this cluster uses TLS: the new member's URL must be https://",
    );
  if (await ctx.routeIfFollower(req, res, body)) return;

  // Checked on the leader, against the configuration it holds.
  const st = ctx.node.status();
  const existing = st.members.find((m) => m.id === id);
  if (existing)
    throw new HttpError(
      409,
      "member_exists",
      `'${id}' is already a member (at ${existing.url})`,
      {},
      {
        member: { id, url: existing.url },
      },
    );
  const sameUrl = st.members.find((m) => sameOrigin(m.url, memberUrl));
  if (sameUrl)
    throw new HttpError(409, "url_in_use", `${memberUrl} is already the URL of member '${sameUrl.id}'`);
  if (!st.configCommitted)
    throw new HttpError(
      409,
      "config_pending",
      "another membership change is still being committed; retry shortly",
      {
        "Retry-After": "1",
      },
    );
  // A member nobody answers for would count toward quorums it never votes in: see that it is up,
  // that it is who it says, and that it belongs to this cluster, before anything changes.
  const seen = await probeMember(memberUrl, id, ctx.node.electionTimeoutMs * 4, ctx.peerTls);
  if (!seen.ok && seen.identity)
    throw new HttpError(
      409,
      "member_identity_mismatch",
      `the node at ${memberUrl} is not '${id}': ${seen.reason}`,
    );
  if (!seen.ok)
    throw new HttpError(422, "member_unreachable", `no Ballot node answers at ${memberUrl}: ${seen.reason}`);
  if (seen.node !== id)
    throw new HttpError(
      409,
      "member_identity_mismatch",
      `the node at ${memberUrl} is '${seen.node}', not '${id}'`,
    );
  if (seen.clusterId && seen.clusterId !== st.clusterId)
    throw new HttpError(
      409,
      "cluster_mismatch",
      `the node at ${memberUrl} belongs to cluster '${seen.clusterId}', not '${st.clusterId}'; start it with --join and an empty data directory`,
    );
  await change(ctx, { type: "add", id, url: memberUrl, promote: o.learner !== true });
  ctx.send(res, 201, {
    added: id,
    learner: true,
    promote: o.learner !== true,
    members: membersJson(ctx.node.status()),
  });
}

async function promoteMember(
  ctx: ApiContext,
  req: http.IncomingMessage,
  res: http.ServerResponse,
  id: string,
) {
  const body = await ctx.body(req);
  const member = ctx.node.status().members.find((m) => m.id === id);
  if (!member) throw new HttpError(404, "member_not_found", `'${id}' is not a member`);
  if (member.voter) throw new HttpError(409, "already_voter", `'${id}' is already a voter`);
  if (await ctx.routeIfFollower(req, res, body)) return;
  await change(ctx, { type: "promote", id });
  ctx.send(res, 200, { promoted: id, members: membersJson(ctx.node.status()) });
}

async function removeMember(
  ctx: ApiContext,
  req: http.IncomingMessage,
  res: http.ServerResponse,
  id: string,
) {
  const body = await ctx.body(req);
  if (body.length > 0) throw new HttpError(400, "invalid_request", "DELETE takes no body");
  const member = ctx.node.status().members.find((m) => m.id === id);
  if (!member) throw new HttpError(404, "member_not_found", `'${id}' is not a member`);
  if (await ctx.routeIfFollower(req, res, body)) return;
  if (id === ctx.node.id) {
    // A leader removing itself would stop before it could answer: hand leadership to the best
    // other voter first, then the new leader removes this node.
    const st = ctx.node.status();
    if (!st.members.some((m) => m.voter && m.id !== id))
      throw new HttpError(409, "invalid_config_change", "cannot remove the last voter");
    const target = await ctx.node.awaitHandoverTarget();
    if (target === null)
      throw new HttpError(
        503,
        "transfer_failed",
        "no other voter is answering and caught up to take over; nothing was changed",
        {
          "Retry-After": "1",
        },
      );
    const best = { id: target };
    try {
      await ctx.node.transferLeadership(best.id);
    } catch (e) {
      throw new HttpError(
        503,
        "transfer_failed",
        `could not hand leadership over before removing the leader: ${(e as Error).message}`,
        {
          "Retry-After": "1",
        },
      );
    }
    if (await ctx.routeIfFollower(req, res, body)) return;
  }
  await change(ctx, { type: "remove", id });
  ctx.send(res, 200, { removed: id, members: membersJson(ctx.node.status()) });
}

async function change(
  ctx: ApiContext,
  c: Parameters<ApiContext["node"]["changeMembership"]>[0],
): Promise<void> {
  try {
    await ctx.node.changeMembership(c);
  } catch (e) {
    if (e instanceof MembershipError)
      throw new HttpError(
        409,
        e.reason,
        e.message,
        e.reason === "config_pending" ? { "Retry-After": "1" } : {},
      );
    if (e instanceof NotLeaderError)
      throw new HttpError(
        503,
        "no_leader",
        "leadership moved while the change was being made; nothing was changed, retry",
        {
          "Retry-After": "1",
        },
      );
    throw e;
  }
}

function sameOrigin(a: string, b: string): boolean {
  try {
    return new URL(a).origin === new URL(b).origin;
  } catch {
    return false;
  }
}

export type ProbeResult =
  | { ok: true; node: string; clusterId: string | null }
  | { ok: false; reason: string; identity?: boolean };

/**
 * Asks `GET url/health` who answers there. Over TLS it dials as it would dial peer `id` (this
 * node's certificate, the cluster's CA, and a server certificate that must name `id`).
 */
export function probeMember(
  url: string,
  id: string,
  timeoutMs: number,
  tls?: TlsMaterial,
): Promise<ProbeResult> {
  return new Promise((resolve) => {
    let target: URL;
    try {
      target = new URL("/health", url);
    } catch {
      resolve({ ok: false, reason: "not a URL" });
      return;
    }
    const secure = target.protocol === "https:";
    const lib = secure ? https : http;
    const req = lib.request(
      target,
      // agent: false: a pooled socket could skip the member-id check made when it was opened.
      {
        method: "GET",
        timeout: timeoutMs,
        agent: false,
        ...(secure && tls ? peerClientOptions(tls, id) : {}),
      },
      (r) => {
        let text = "";
        r.setEncoding("utf8");
        r.on("data", (d: string) => {
          if (text.length < 4096) text += d;
        });
        r.on("end", () => {
          try {
            const o = JSON.parse(text) as { node?: unknown; clusterId?: unknown };
            if (r.statusCode === 200 && typeof o.node === "string")
              resolve({
                ok: true,
                node: o.node,
                clusterId: typeof o.clusterId === "string" ? o.clusterId : null,
              });
            else resolve({ ok: false, reason: `GET /health answered ${r.statusCode}, not a Ballot node` });
          } catch {
            resolve({
              ok: false,
              reason: `GET /health answered ${r.statusCode} with something other than JSON`,
            });
          }
        });
        r.on("error", (e) => resolve({ ok: false, reason: e.message }));
      },
    );
    req.on("timeout", () => req.destroy(new Error(`no answer within ${timeoutMs} ms`)));
    req.on("error", (e: NodeJS.ErrnoException) =>
      resolve({ ok: false, reason: e.message, identity: e.code === PEER_IDENTITY_ERROR }),
    );
    req.end();
  });
}
