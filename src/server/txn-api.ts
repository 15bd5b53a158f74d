/**
 * POST /v1/txn: a transaction in etcd's shape (compare, success, failure) turned into one log
 * command, and its outcome into the answer. Owns the mapping between the wire form (values as JSON)
 * and the command (values as JSON text), and the answer's shape; must never decide a compare or
 * touch state (the store does, in apply, the same on every replica).
 */
import type * as http from "node:http";
import { LIMITS, type TxnCompare, type TxnOp, type TxnOpResult, utf8Length } from "../kv/commands.js";
import { type ApiContext, kvJsonOf } from "./api.js";
import { HttpError } from "./http-util.js";

type Wire = Record<string, unknown>;

/** A JSON value as the text the store keeps; refuses values past the store's limit with 413. */
function jsonText(v: unknown, where: string): string {
  const text = JSON.stringify(v);
  if (utf8Length(text) > LIMITS.valueBytes)
    throw new HttpError(413, "too_large", `${where}: the value is larger than ${LIMITS.valueBytes} bytes`);
  return text;
}

function compareOf(c: Wire, i: number): TxnCompare {
  const target = c.target as TxnCompare["target"];
  return {
    key: c.key as string,
    target,
    op: c.op as TxnCompare["op"],
    value: target === "value" ? jsonText(c.value, `compare[${i}]`) : (c.value as number),
  };
}

function opOf(o: Wire, where: string): TxnOp {
  if (o.put !== undefined) {
    const p = o.put as Wire;
    return {
      put: {
        key: p.key as string,
        value: jsonText(p.value, where),
        ...(p.lease !== undefined ? { lease: p.lease as number } : {}),
      },
    };
  }
  if (o.delete !== undefined) return { delete: { key: (o.delete as Wire).key as string } };
  return { get: { key: (o.get as Wire).key as string } };
}

/**
 * The answer for one op's result. A replayed outcome (same Idempotency-Key) carries no put values:
 * they are this request's own, so they are taken from it.
 */
function resultJson(r: TxnOpResult, op: TxnOp | undefined): Wire {
  switch (r.op) {
    case "put": {
      const value = r.kv.value || (op && "put" in op ? op.put.value : "null");
      return { put: kvJsonOf({ ...r.kv, value }) };
    }
    case "delete":
      return { delete: { key: r.key, deleted: r.deleted } };
    case "get":
      return {
        get: { key: r.key, kv: r.kv ? kvJsonOf({ ...r.kv, value: r.kv.value || "null" }) : null },
      };
  }
}

export async function handleTxn(
  ctx: ApiContext,
  req: http.IncomingMessage,
  res: http.ServerResponse,
  fence: number | undefined,
): Promise<void> {
  const body = await ctx.body(req);
  const o = ctx.json(req);
  const compare = ((o.compare ?? []) as Wire[]).map(compareOf);
  const success = ((o.success ?? []) as Wire[]).map((x, i) => opOf(x, `success[${i}]`));
  const failure = ((o.failure ?? []) as Wire[]).map((x, i) => opOf(x, `failure[${i}]`));
  const r = await ctx.write(req, res, body, {
    op: "txn",
    compare,
    success,
    failure,
    ...(fence !== undefined ? { fence } : {}),
    idem: ctx.idempotencyKey(req),
  });
  if (!r) return;
  const t = r.txn;
  if (!t) throw new HttpError(500, "internal", "the store answered a transaction without its outcome");
  const ran = t.succeeded ? success : failure;
  ctx.send(res, 200, {
    succeeded: t.succeeded,
    revision: r.revision,
    results: t.results.map((x, i) => resultJson(x, ran[i])),
    ...(t.valuesOmitted ? { valuesOmitted: true } : {}),
  });
}
