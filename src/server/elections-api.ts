/**
 * /v1/elections/{name}: campaign (waits for its turn), leader, observe (server-sent events),
 * proclaim and resign. Owns the waiting and the candidacy's lease while a `ttl` campaign waits;
 * must never tell a candidate it leads unless the applied state shows it at the head of the queue.
 */
import type * as http from "node:http";
import { type Candidate, checkElectionName, encodeCommand, LIMITS, utf8Length } from "../kv/commands.js";
import type { StoreEvent } from "../kv/store.js";
import { NotLeaderError } from "../node/errors.js";
import type { ApiContext } from "./api.js";
import {
  HttpError,
  methodNotAllowed,
  onlyFields,
  onlyParams,
  parseJsonObject,
  positiveId,
  startEventStream,
} from "./http-util.js";
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
  let name: string;
  try {
    name = decodeURIComponent(rest[0]!);
  } catch {
    throw new HttpError(400, "invalid_request", "the election name is not valid percent-encoding");
  }
  const problem = checkElectionName(name);
  if (problem) throw new HttpError(400, "invalid_request", problem);
  const action = rest[1] ?? "";

  if (action === "") {
    if (method !== "GET") throw methodNotAllowed("GET");
    onlyParams(url, ["consistency"]);
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
    onlyParams(url, []);
    return observe(ctx, res, name);
  }
  if (method !== "POST") throw methodNotAllowed("POST");
  onlyParams(url, []);
  const body = await ctx.body(req);
  const o = parseJsonObject(req, body);
  const idem = ctx.idempotencyKey(req);
  if (action === "campaign") return campaign(ctx, req, res, body, name, o, idem);
  if (action === "proclaim") {
    onlyFields(o, ["lease", "value"]);
    if (!("value" in o)) throw new HttpError(400, "invalid_request", 'the body needs a "value"');
    const lease = positiveId(o.lease, "lease");
    const r = await ctx.write(req, res, body, { op: "proclaim", name, lease, value: valueText(o), idem });
    if (r) {
      const c = r.candidate!;
      ctx.send(res, 200, { name, ...leaderJson(c), revision: r.revision });
    }
    return;
  }
  if (action === "resign") {
    onlyFields(o, ["lease"]);
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
    const head = ctx.kv.candidates(name)[0];
    const key = head ? `${head.createRevision}:${head.value}` : "none";
    if (key === last) return;
    last = key;
    stream.event("leader", { leader: leaderJson(head), revision: ctx.kv.revision });
  };
  const unsubscribe = ctx.kv.subscribe((e: StoreEvent) => {
    if ((e.type === "election" && e.name === name) || e.type === "reset") update();
  });
  res.on("close", unsubscribe);
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
  onlyFields(o, ["value", "candidate", "lease", "ttl"]);
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
  let lease: number;
  let ownLease = false;
  if (o.lease !== undefined) lease = positiveId(o.lease, "lease");
  else {
    const ttlMs = ttlMsOf(o.ttl);
    const g = await ctx.write(req, res, body, {
      op: "lease_grant",
      ttlMs,
      idem: idem === undefined ? undefined : `${idem}/lease`,
    });
    if (!g) return;
    lease = g.lease!.id;
    ownLease = true;
  }
  const r = await ctx.write(req, res, body, { op: "campaign", name, lease, value, idem });
  if (!r) return;
  const mine = r.candidate!;

  await new Promise<void>((resolve) => {
    let done = false;
    let keepalive: NodeJS.Timeout | null = null;
    const finish = (status: number, payload: unknown): void => {
      if (done) return;
      done = true;
      cleanup();
      ctx.send(res, status, payload);
      resolve();
    };
    const check = (): void => {
      const queue = ctx.kv.candidates(name);
      const me = queue.find((c) => c.lease === lease && c.createRevision === mine.createRevision);
      if (!me) {
        finish(410, {
          error: {
            code: "lease_expired",
            message:
              "the candidacy was withdrawn while waiting (its lease expired or was revoked, or it resigned)",
          },
        });
      } else if (queue[0] === me) {
        finish(200, { name, ...leaderJson(me), revision: ctx.kv.revision });
      }
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
      if (ownLease) void leaseCall(ctx, lease, "revoke");
      resolve();
    };
    const cleanup = (): void => {
      unsubscribe();
      if (keepalive) clearInterval(keepalive);
      res.off("close", onClose);
    };
    res.on("close", onClose);
    if (ownLease) {
      const ttlMs = ctx.kv.lease(lease)?.ttlMs ?? 1000;
      keepalive = setInterval(() => void leaseCall(ctx, lease, "keepalive"), Math.max(100, ttlMs / 3));
      keepalive.unref();
    }
    check();
  });
}

/** Keeps alive or revokes a lease from wherever the leader is now (best effort). */
async function leaseCall(ctx: ApiContext, id: number, what: "keepalive" | "revoke"): Promise<void> {
  try {
    await ctx.node.propose(
      encodeCommand(what === "keepalive" ? { op: "lease_keepalive", id } : { op: "lease_revoke", id }),
    );
  } catch (e) {
    if (!(e instanceof NotLeaderError) || !e.leaderUrl) return;
    const url = new URL(
      what === "keepalive" ? `/v1/leases/${id}/keepalive` : `/v1/leases/${id}`,
      e.leaderUrl,
    );
    await fetch(url, {
      method: what === "keepalive" ? "POST" : "DELETE",
      headers: { "x-ballot-forwarded": ctx.node.id },
      redirect: "manual",
      signal: AbortSignal.timeout(5000),
    })
      .then((r) => r.body?.cancel())
      .catch(() => {});
  }
}
