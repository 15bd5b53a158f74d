/**
 * Builds the OpenAPI 3.1 document of the HTTP API from the route table (src/api/schemas.ts), as
 * `GET /v1/openapi.json` serves it. Owns the translation only; must never describe anything the
 * route table does not, so the document cannot drift from what the server validates.
 */
import { COMPONENTS, type JsonSchema, type ParamSpec, ROUTES, type RouteSpec } from "./schemas.js";

/** The package's version, as the document's `info.version`. */
export const API_VERSION = "0.1.0";

function parameters(route: RouteSpec): JsonSchema[] {
  const out: JsonSchema[] = [];
  const add = (
    where: "path" | "query" | "header",
    specs: Readonly<Record<string, ParamSpec>> | undefined,
  ) => {
    for (const [name, p] of Object.entries(specs ?? {}))
      out.push({
        name,
        in: where,
        description: p.description,
        required: where === "path" ? true : (p.required ?? false),
        schema: p.schema,
      });
  };
  add("path", route.params);
  add("query", route.query);
  add("header", route.headers);
  return out;
}

function operation(route: RouteSpec): JsonSchema {
  const responses: Record<string, JsonSchema> = {};
  for (const [status, r] of Object.entries(route.responses)) {
    const type = r.contentType ?? "application/json";
    responses[status] = {
      description: r.description,
      ...(r.schema || r.contentType ? { content: { [type]: r.schema ? { schema: r.schema } : {} } } : {}),
    };
  }
  return {
    operationId: route.operationId,
    summary: route.summary,
    tags: [route.tag],
    ...(route.role ? { security: [{ bearer: [] }, {}], "x-ballot-role": route.role } : {}),
    parameters: parameters(route),
    ...(route.body
      ? {
          requestBody: {
            required: !route.bodyOptional,
            content: { "application/json": { schema: route.body } },
          },
        }
      : {}),
    responses,
  };
}

/** The whole document. */
export function buildOpenApi(): JsonSchema {
  const paths: Record<string, Record<string, JsonSchema>> = {};
  for (const r of ROUTES) {
    const p = paths[r.path] ?? {};
    paths[r.path] = p;
    p[r.method.toLowerCase()] = operation(r);
  }
  return {
    openapi: "3.1.0",
    jsonSchemaDialect: "https://json-schema.org/draft/2020-12/schema",
    info: {
      title: "Ballot",
      version: API_VERSION,
      description:
        "Raft consensus for Node.js: a replicated key-value store with revisions, compare-and-set, transactions, leases, watches and named elections. " +
        "Every answer carries X-Ballot-Node and X-Ballot-Leader. A write that reaches a follower is answered 307 to the leader (or forwarded). " +
        "503 and 429 promise nothing was applied; 504 outcome_unknown means the write may or may not have been. " +
        "Paths are taken literally: a . or .. segment (also percent-encoded), an empty segment, invalid percent-encoding or a NUL is a 400.",
    },
    tags: [
      { name: "kv", description: "keys, ranges, watches and transactions" },
      { name: "leases", description: "leases: keys and candidacies that go when the lease does" },
      { name: "elections", description: "named elections with fencing tokens" },
      { name: "cluster", description: "membership, leadership transfer, backups, peer traffic" },
      { name: "operations", description: "health, readiness, metrics, the dashboard" },
    ],
    components: {
      schemas: COMPONENTS,
      securitySchemes: {
        bearer: {
          type: "http",
          scheme: "bearer",
          description: "when the server runs with --auth-tokens; each token has a role (read, write, admin)",
        },
      },
    },
    paths,
  };
}
