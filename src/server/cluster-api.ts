/**
 * /v1/cluster/... operations: leadership transfer (membership changes join it here). Owns their
 * validation and answers; must never act on a follower (it redirects or forwards to the leader).
 */
import type * as http from "node:http";
import { UnavailableError } from "../node/errors.js";
import type { ApiContext } from "./api.js";
import { HttpError, methodNotAllowed, onlyFields, onlyParams, parseJsonObject } from "./http-util.js";

export async function handleCluster(
  ctx: ApiContext,
  req: http.IncomingMessage,
  res: http.ServerResponse,
  url: URL,
  method: string,
): Promise<void> {
  if (url.pathname !== "/v1/cluster/transfer-leader")
    throw new HttpError(404, "not_found", `no route ${method} ${url.pathname}`);
  if (method !== "POST") throw methodNotAllowed("POST");
  onlyParams(url, []);
  const body = await ctx.body(req);
  const o = parseJsonObject(req, body);
  onlyFields(o, ["id"]);
  if (typeof o.id !== "string" || o.id.length === 0)
    throw new HttpError(400, "invalid_request", 'the body needs the target member\'s "id"');
  const target = o.id;
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
