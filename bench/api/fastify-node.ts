/**
 * A Ballot node with a second front door for bench/api: `ballot start`'s own server (node:http and
 * the schema gate) on its port, and a Fastify app serving GET/PUT /v1/kv/* over the same RaftNode
 * and store on the port named by BENCH_FASTIFY_PORT_<id>. Both doors check what the issue asks of
 * a route (the target taken literally, the body and query against a schema with unknown fields
 * refused), and both do the same work around it (admission with the node's bounds, answered 429
 * before the body is read; prom-client request counts and latency), so the benchmark compares the
 * frameworks, not two levels of care. Owns only this benchmark prototype; never used by the product.
 *
 * Usage (as ProcCluster's `cli`): node fastify-node.js start --id n1 --data-dir D --members M
 *   --election-timeout MS [other flags ignored]
 */
import * as http from "node:http";
import Fastify from "fastify";
import { encodeCommand, LIMITS, validateCommand } from "../../src/kv/commands.js";
import { OverloadedError } from "../../src/node/errors.js";
import type { RaftNode } from "../../src/node/raft-node.js";
import { kvJsonOf } from "../../src/server/api.js";
import { HttpError } from "../../src/server/http-util.js";
import { createMetrics } from "../../src/server/metrics.js";
import { parseRequestTarget } from "../../src/server/request-target.js";
import { startServer } from "../../src/server/server.js";
import { CONNECTIONS_CHECKING_INTERVAL_MS, hardenWire } from "../../src/server/wire.js";

const args = process.argv.slice(3);
const flag = (name: string): string => {
  const i = args.indexOf(`--${name}`);
  if (i < 0) throw new Error(`--${name} is required`);
  return args[i + 1]!;
};
const id = flag("id");
const members = new Map(
  flag("members")
    .split(",")
    .map((m) => m.split("=") as [string, string]),
);
const quiet = { info: () => {}, warn: () => {}, error: (m: string) => console.error(m) };
const running = await startServer({
  id,
  listen: members.get(id)!,
  members,
  dataDir: flag("data-dir"),
  electionTimeoutMs: Number(flag("election-timeout")),
  logger: quiet,
});
const { node, kv } = running;

const MAX_SAFE = Number.MAX_SAFE_INTEGER;
const kvSchema = {
  type: "object",
  properties: {
    key: { type: "string" },
    value: {},
    revision: { type: "integer" },
    createRevision: { type: "integer" },
    version: { type: "integer" },
    lease: { type: "integer" },
  },
  required: ["key", "value", "revision", "createRevision", "version"],
} as const;
const errorOf = (e: unknown): { status: number; body: unknown } =>
  e instanceof HttpError
    ? { status: e.status, body: { error: { code: e.code, message: e.message } } }
    : e instanceof OverloadedError
      ? { status: 429, body: { error: { code: "overloaded", message: e.message } } }
      : { status: 503, body: { error: { code: "unavailable", message: (e as Error).message } } };

// The same admission and the same metrics as the product's handler (src/server/api.ts), around
// Fastify's handler instead of the gate's.
const metrics = createMetrics(node as RaftNode<unknown>);
let queued = 0;
// The product's wire rules too (header and body deadlines, JSON answers to framing errors): a
// Fastify port would need them as much as today's server does.
const serverFactory = (handler: http.RequestListener): http.Server => {
  const server = http.createServer(
    { connectionsCheckingInterval: CONNECTIONS_CHECKING_INTERVAL_MS },
    metrics.instrument((req, res) => {
      const refused = node.admission("request", queued);
      if (refused) {
        const body = JSON.stringify({
          error: { code: "overloaded", message: refused.message, reason: refused.reason },
        });
        res.writeHead(429, {
          "Content-Type": "application/json",
          "Content-Length": Buffer.byteLength(body),
          "Retry-After": String(Math.ceil(refused.retryAfterMs / 1000)),
        });
        res.end(body);
        return;
      }
      queued++;
      res.once("close", () => queued--);
      handler(req, res);
    }),
  );
  hardenWire(server);
  return server;
};

// Fastify's default Ajv drops unknown fields silently (removeAdditional): the product refuses them.
const app = Fastify({
  logger: false,
  serverFactory,
  bodyLimit: 1024 * 1024,
  ajv: { customOptions: { removeAdditional: false, coerceTypes: false } },
});
app.addHook("onRequest", (req, reply, done) => {
  try {
    parseRequestTarget(req.raw.url ?? "/");
    done();
  } catch (e) {
    const { status, body } = errorOf(e);
    void reply.code(status).send(body);
  }
});
const keyOf = (params: unknown): string => (params as Record<string, string>)["*"]!;

app.put(
  "/v1/kv/*",
  {
    schema: {
      body: {
        type: "object",
        properties: { value: {}, lease: { type: "integer", minimum: 1, maximum: MAX_SAFE } },
        required: ["value"],
        additionalProperties: false,
      },
      querystring: { type: "object", additionalProperties: false },
      response: { 200: kvSchema } as Record<number, unknown>,
    },
  },
  async (req, reply) => {
    const key = keyOf(req.params);
    const o = req.body as { value: unknown; lease?: number };
    const value = JSON.stringify(o.value);
    if (value.length > LIMITS.valueBytes) return reply.code(413).send({ error: { code: "too_large" } });
    const cmd = { op: "put" as const, key, value, lease: o.lease };
    const problem = validateCommand(cmd);
    if (problem) return reply.code(400).send({ error: { code: "invalid_request", message: problem } });
    try {
      const r = await node.propose(encodeCommand(cmd));
      if (!r.ok || !r.kv) return reply.code(409).send({ error: { code: "rejected" } });
      void reply.header("ETag", `"${r.revision}"`);
      return { ...kvJsonOf({ ...r.kv, value: r.kv.value || value }), revision: r.revision };
    } catch (e) {
      const { status, body } = errorOf(e);
      return reply.code(status).send(body);
    }
  },
);

app.get(
  "/v1/kv/*",
  {
    schema: {
      querystring: {
        type: "object",
        properties: { consistency: { enum: ["linearizable", "lease", "local"] } },
        additionalProperties: false,
      },
      response: { 200: kvSchema } as Record<number, unknown>,
    },
  },
  async (req, reply) => {
    const key = keyOf(req.params);
    const c = (req.query as { consistency?: string }).consistency ?? "linearizable";
    try {
      if (c !== "local") await node.readBarrier({ consistency: c as "linearizable" | "lease" });
    } catch (e) {
      const { status, body } = errorOf(e);
      return reply.code(status).send(body);
    }
    const found = kv.get(key);
    if (!found) return reply.code(404).send({ error: { code: "not_found", message: `no key '${key}'` } });
    void reply.header("ETag", `"${found.modRevision}"`);
    return kvJsonOf(found);
  },
);

const port = Number(process.env[`BENCH_FASTIFY_PORT_${id}`]);
await app.listen({ port, host: "127.0.0.1" });
const stop = async () => {
  await app.close();
  await running.stop();
  process.exit(0);
};
process.on("SIGTERM", () => void stop());
process.on("SIGINT", () => void stop());
