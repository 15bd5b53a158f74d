/**
 * /v1/elections/{name}: campaign (waits for its turn), leader, observe (server-sent events),
 * proclaim and resign. Owns the waiting and the candidacy's lease while a `ttl` campaign waits;
 * must never tell a candidate it leads unless the applied state shows it at the head of the queue.
 */
import { createHash } from "node:crypto";
import type * as http from "node:http";
import { type Candidate, checkElectionName, encodeCommand, LIMITS, utf8Length } from "../kv/commands.js";
import type { StoreEvent } from "../kv/store.js";
import { NotLeaderError } from "../node/errors.js";
import type { ApiContext } from "./api.js";
import { endWhenLeaderless, HttpError, methodNotAllowed, positiveId, startEventStream } from "./http-util.js";
import { ttlMsOf } from "./leases-api.js";

const PREFIX = "/v1/elections/";

function leaderJson(c: Candidate | undefined): Record<string, unknown> | null {
  return c ? { value: JSON.parse(c.value) as unknown, lease: c.lease, fencingToken: c.createRevision } : null;
}

function valueText(o: Record<string, unknown>): string {
  const text = JSON.stringify(o.value ?? null);
  if (utf8Length(text) > LIMITS.valueBytes)
    throw new HttpError(413, "too_large", `the value is larger than ${LIMITS.valueBytes} bytes`);
  return text;
}

export async function handleElections(
  ctx: ApiContext,
  req: http.IncomingMessage,
  res: http.ServerResponse,
  url: URL,
  method: string,
): Promise<void> {
  const rest = url.pathname.slice(PREFIX.length).split("/");
  if (rest.length > 2) throw new HttpError(404, "not_found", `no route ${method} ${url.pathname}`);
  // Decoded and checked by the API gate against the route's schema.
  const name = String(ctx.params(req).name);
  const problem = checkElectionName(name);
  if (problem) throw new HttpError(400, "invalid_request", problem);
  const action = rest[1] ?? "";

  if (action === "") {
    if (method !== "GET") throw methodNotAllowed("GET");
    await ctx.read(url);
    const queue = ctx.kv.candidates(name);
    ctx.send(res, 200, {
      name,
      leader: leaderJson(queue[0]),
      candidates: queue.length,
      revision: ctx.kv.revision,
    });
    return;
  }
  if (action === "observe") {
    if (method !== "GET") throw methodNotAllowed("GET");
    // The first event must not be older than what the client already saw elsewhere: a follower
    // that has not applied the latest campaign would otherwise open with a stale leader (or none).
    await ctx.read(url);
    return observe(ctx, res, name);
  }
  if (method !== "POST") throw methodNotAllowed("POST");
  const body = await ctx.body(req);
  const o = ctx.json(req);
  const idem = ctx.idempotencyKey(req);
  if (action === "campaign") return campaign(ctx, req, res, body, name, o, idem);
  if (action === "proclaim") {
    const lease = positiveId(o.lease, "lease");
    const value = valueText(o);
    const r = await ctx.write(req, res, body, { op: "proclaim", name, lease, value, idem });
    if (r) {
      const c = { ...r.candidate!, value: r.candidate!.value || value };
      ctx.send(res, 200, { name, ...leaderJson(c), revision: r.revision });
    }
    return;
  }
  if (action === "resign") {
    const lease = positiveId(o.lease, "lease");
    const r = await ctx.write(req, res, body, { op: "resign", name, lease, idem });
    if (r) ctx.send(res, 200, { name, resigned: r.removed === true, revision: r.revision });
    return;
  }
  throw new HttpError(404, "not_found", `no route ${method} ${url.pathname}`);
}

function observe(ctx: ApiContext, res: http.ServerResponse, name: string): void {
  const stream = startEventStream(res);
  let last = "";
  const update = (): void => {
    // A reader that does not keep up gets the latest leader when it does, not every change.
    if (res.writableLength > 64 * 1024) return;
    const head = ctx.kv.candidates(name)[0];
    const key = head ? `${head.createRevision}:${head.value}` : "none";
    if (key === last) return;
    last = key;
    stream.event("leader", { leader: leaderJson(head), revision: ctx.kv.revision });
  };
  const unsubscribe = ctx.kv.subscribe((e: StoreEvent) => {
    if ((e.type === "election" && e.name === name) || e.type === "reset") update();
  });
  res.on("drain", update);
  res.on("close", unsubscribe);
  endWhenLeaderless(
    res,
    () => ctx.node.leaderInfo !== null,
    3 * ctx.node.electionTimeoutMs,
    (n, d) => {
      unsubscribe();
      stream.event(n, d);
    },
  );
  update();
}

async function campaign(
  ctx: ApiContext,
  req: http.IncomingMessage,
  res: http.ServerResponse,
  body: Buffer,
  name: string,
  body0: Record<string, unknown>,
  idem: string | undefined,
): Promise<void> {
  let o = body0;
  // DESIGN.md names the field "candidate"; "value" matches etcd's and proclaim's naming. Both work.
  if (o.candidate !== undefined) {
    if (o.value !== undefined)
      throw new HttpError(400, "invalid_request", 'give "value" or "candidate", not both');
    o = { ...o, value: o.candidate };
  }
  if ((o.lease === undefined) === (o.ttl === undefined))
    throw new HttpError(
      400,
      "invalid_request",
      'give either "lease" (an id you keep alive) or "ttl" (seconds)',
    );
  const value = valueText(o);
  const auth = req.headers.authorization;
  // The client may leave while the proposals below are in flight: watched from the start.
  let gone = false;
  const onGone = (): void => {
    gone = true;
  };
  res.on("close", onGone);
  let lease: number;
  let ownLease = false;
  if (o.lease !== undefined) lease = positiveId(o.lease, "lease");
  else {
    const ttlMs = ttlMsOf(o.ttl);
    const g = await ctx.write(req, res, body, {
      op: "lease_grant",
      ttlMs,
      // Derived, and hashed so it stays within the key limit whatever the client's key.
      idem:
        idem === undefined
          ? undefined
          : `${createHash("sha256").update(idem).digest("hex").slice(0, 32)}/lease`,
    });
    if (!g) return;
    lease = g.lease!.id;
    ownLease = true;
    if (gone) {
      void leaseCall(ctx, lease, "revoke", auth);
      return;
    }
  }
  const r = await ctx.write(req, res, body, { op: "campaign", name, lease, value, idem });
  if (!r) return;
  const mine = r.candidate!;
  if (gone) {
    if (ownLease) void leaseCall(ctx, lease, "revoke", auth);
    return;
  }
  res.off("close", onGone);

  await new Promise<void>((resolve) => {
    let done = false;
    let confirming = false;
    let retry: NodeJS.Timeout | null = null;
    let keepalive: NodeJS.Timeout | null = null;
    const finish = (status: number, payload: unknown): void => {
      if (done) return;
      done = true;
      cleanup();
      ctx.send(res, status, payload);
      resolve();
    };
    const atHead = () => {
      const queue = ctx.kv.candidates(name);
      const me = queue.find((c) => c.lease === lease && c.createRevision === mine.createRevision);
      return { me, head: me !== undefined && queue[0] === me };
    };
    /**
     * This node's applied state may lag (it may even be cut off): before saying "you lead", a read
     * barrier proves the head of the queue is current, and with a server-held lease a keepalive
     * that succeeds gives the client a deadline it can count from.
     */
    const confirm = async (): Promise<void> => {
      if (confirming || done) return;
      confirming = true;
      try {
        await ctx.node.readBarrier();
        const now = atHead();
        if (!now.head || !now.me) return check();
        let validForMs: number | undefined;
        if (ownLease) {
          const sentAt = performance.now();
          if (!(await leaseCall(ctx, lease, "keepalive", auth))) throw new Error("keepalive failed");
          const ttlMs = ctx.kv.lease(lease)?.ttlMs ?? 0;
          validForMs = Math.max(
            0,
            Math.floor(sentAt + ttlMs * 0.95 - Math.min(500, ttlMs / 10) - performance.now()),
          );
        }
        finish(200, {
          name,
          ...leaderJson(now.me),
          revision: ctx.kv.revision,
          ...(validForMs !== undefined ? { validForMs } : {}),
        });
      } catch {
        // Not confirmable now (no leader, cut off): try again shortly, or learn of the withdrawal.
        if (!done && !retry)
          retry = setTimeout(() => {
            retry = null;
            check();
          }, 250);
      } finally {
        confirming = false;
      }
    };
    const check = (): void => {
      const { me, head } = atHead();
      if (!me) {
        finish(410, {
          error: {
            code: "lease_expired",
            message:
              "the candidacy was withdrawn while waiting (its lease expired or was revoked, or it resigned)",
          },
        });
      } else if (head) void confirm();
    };
    const unsubscribe = ctx.kv.subscribe((e) => {
      if (
        (e.type === "election" && e.name === name) ||
        e.type === "reset" ||
        (e.type === "lease" && !e.alive)
      )
        check();
    });
    const onClose = (): void => {
      if (done) return;
      done = true;
      cleanup();
      // The client went away before winning: a lease only we knew of must not hold a place in the queue.
      if (ownLease) void leaseCall(ctx, lease, "revoke", auth);
      resolve();
    };
    const cleanup = (): void => {
      unsubscribe();
      if (keepalive) clearInterval(keepalive);
      if (retry) clearTimeout(retry);
      res.off("close", onClose);
    };
    res.on("close", onClose);
    if (ownLease) {
      const ttlMs = ctx.kv.lease(lease)?.ttlMs ?? 1000;
      keepalive = setInterval(() => void leaseCall(ctx, lease, "keepalive", auth), Math.max(100, ttlMs / 3));
      keepalive.unref();
    }
    check();
  });
}

/** Keeps alive or revokes a lease from wherever the leader is now; resolves whether it succeeded. */
async function leaseCall(
  ctx: ApiContext,
  id: number,
  what: "keepalive" | "revoke",
  authorization?: string,
): Promise<boolean> {
  try {
    const r = await ctx.node.propose(
      encodeCommand(what === "keepalive" ? { op: "lease_keepalive", id } : { op: "lease_revoke", id }),
    );
    return r.ok;
  } catch (e) {
    if (!(e instanceof NotLeaderError) || !e.leaderUrl) return false;
    const url = new URL(
      what === "keepalive" ? `/v1/leases/${id}/keepalive` : `/v1/leases/${id}`,
      e.leaderUrl,
    );
    const headers: Record<string, string> = { "x-ballot-forwarded": ctx.node.id };
    if (authorization) headers.authorization = authorization;
    const { fetch } = ctx; // over TLS with the node's certificate when it has one
    return fetch(url, {
      method: what === "keepalive" ? "POST" : "DELETE",
      headers,
      redirect: "manual",
      signal: AbortSignal.timeout(5000),
    })
      .then(async (r) => {
        await r.body?.cancel();
        return r.ok;
      })
      .catch(() => false);
  }
}
