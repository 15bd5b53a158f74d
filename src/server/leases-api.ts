/**
 * /v1/leases: grant, keepalive, revoke and inspect leases. Owns request validation and the
 * answers; must never decide expiry (lease-expiry.ts does, through the log).
 */
import type * as http from "node:http";
import { LIMITS } from "../kv/commands.js";
import type { ApiContext } from "./api.js";
import { HttpError, methodNotAllowed, positiveId } from "./http-util.js";

/** Seconds from a request's `ttl` field, checked; returns milliseconds. */
export function ttlMsOf(v: unknown): number {
  const min = LIMITS.leaseTtlMinMs / 1000;
  const max = LIMITS.leaseTtlMaxMs / 1000;
  if (typeof v !== "number" || !Number.isFinite(v) || v < min || v > max)
    throw new HttpError(400, "invalid_request", `ttl must be a number of seconds from ${min} to ${max}`);
  return Math.round(v * 1000);
}

export async function handleLeases(
  ctx: ApiContext,
  req: http.IncomingMessage,
  res: http.ServerResponse,
  url: URL,
  method: string,
): Promise<void> {
  const parts = url.pathname.split("/").slice(3); // after /v1/leases
  if (parts.length === 0 || (parts.length === 1 && parts[0] === "")) {
    if (method === "GET") {
      await ctx.read(url);
      const leases = [...ctx.kv.allLeases()].map((l) => ({ id: l.id, ttl: l.ttlMs / 1000 }));
      ctx.send(res, 200, { leases, revision: ctx.kv.revision });
      return;
    }
    if (method !== "POST") throw methodNotAllowed("GET or POST");
    const body = await ctx.body(req);
    const o = ctx.json(req);
    const ttlMs = ttlMsOf(o.ttl);
    const r = await ctx.write(req, res, body, { op: "lease_grant", ttlMs, idem: ctx.idempotencyKey(req) });
    if (r) ctx.send(res, 200, { id: r.lease!.id, ttl: r.lease!.ttlMs / 1000 });
    return;
  }
  const id = positiveId(ctx.params(req).id, "the lease id");
  if (parts.length === 1) {
    if (method === "GET") {
      await ctx.read(url);
      const l = ctx.kv.lease(id);
      if (!l) throw new HttpError(404, "lease_not_found", `no lease ${id} (it expired or was revoked)`);
      const remaining = ctx.node.leadership.isLeader ? ctx.expiry.remainingMs(id) : undefined;
      ctx.send(res, 200, {
        id,
        ttl: l.ttlMs / 1000,
        keys: [...l.keys].sort(),
        elections: [...l.elections].sort(),
        ...(remaining !== undefined ? { remainingMs: Math.max(0, Math.round(remaining)) } : {}),
      });
      return;
    }
    if (method !== "DELETE") throw methodNotAllowed("GET or DELETE");
    const body = await ctx.body(req);
    const r = await ctx.write(req, res, body, { op: "lease_revoke", id, idem: ctx.idempotencyKey(req) });
    if (r) ctx.send(res, 200, { id, revoked: true, revision: r.revision });
    return;
  }
  if (parts.length === 2 && parts[1] === "keepalive") {
    if (method !== "POST") throw methodNotAllowed("POST");
    // The gate allowed only no body or {}.
    const body = await ctx.body(req);
    // Keepalives go through the log: see lease-expiry.ts for why that makes expiry safe.
    const r = await ctx.write(req, res, body, { op: "lease_keepalive", id });
    if (r) ctx.send(res, 200, { id, ttl: r.lease!.ttlMs / 1000 });
    return;
  }
  throw new HttpError(404, "not_found", `no route ${method} ${url.pathname}`);
}
