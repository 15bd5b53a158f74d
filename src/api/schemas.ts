/**
 * The one description of Ballot's HTTP API: every route's method and path, its path parameters,
 * query parameters, the request headers that matter, its JSON body, and each response. It is the
 * single source of truth for three things: the server validates every request against it before a
 * handler runs (src/server/validate.ts), `GET /v1/openapi.json` is generated from it
 * (src/api/openapi.ts), and the client's wire types are generated from it (src/client/api-types.ts,
 * by `npm run gen:api`; a test keeps that file current). Owns shapes only: must never import the
 * server, the node or the store, so the client can use it.
 *
 * Schemas are JSON Schema 2020-12 (OpenAPI 3.1's dialect). Objects refuse unknown fields; integers
 * are bounded to safe integers so a number like 1e300 or 2^53 + 1 is refused instead of rounded.
 */

/** A JSON Schema, as plain data. */
export type JsonSchema = { readonly [k: string]: unknown };

export const MAX_SAFE = Number.MAX_SAFE_INTEGER;

/** Limits the schemas state (the state machine's own limits live in src/kv/commands.ts). */
export const API_LIMITS = {
  keyBytes: 4096,
  idempotencyKeyBytes: 256,
  electionNameBytes: 256,
  listLimitMax: 10_000,
  leaseTtlMinSeconds: 1,
  leaseTtlMaxSeconds: 86_400,
  txnOpsMax: 128,
} as const;

const id = { type: "integer", minimum: 1, maximum: MAX_SAFE } as const;
const count = { type: "integer", minimum: 0, maximum: MAX_SAFE } as const;
const revision = { ...count, description: "a revision of the store (0 = none)" } as const;

/** Reusable shapes, named as they appear under `components.schemas` in the OpenAPI document. */
export const COMPONENTS = {
  ErrorBody: {
    type: "object",
    required: ["error"],
    additionalProperties: false,
    properties: {
      error: {
        type: "object",
        required: ["code", "message"],
        // Some errors carry context (the current revision, the leader, a compact revision).
        additionalProperties: true,
        properties: {
          code: { type: "string", description: "stable, machine-readable" },
          message: { type: "string", description: "for people" },
        },
      },
    },
  },
  KeyValue: {
    type: "object",
    required: ["key", "value", "revision", "createRevision", "version"],
    additionalProperties: false,
    properties: {
      key: { type: "string" },
      value: { description: "any JSON value" },
      revision: { ...revision, description: "the revision that last modified the key" },
      createRevision: { ...revision, description: "the revision that created the key" },
      version: { ...count, description: "writes to the key since it was created" },
      lease: id,
    },
  },
  Member: {
    type: "object",
    required: ["id", "url", "voter", "role", "promoting", "priority", "matchIndex", "lagEntries"],
    additionalProperties: false,
    properties: {
      id: { type: "string" },
      url: { type: "string" },
      voter: { type: "boolean" },
      role: { enum: ["leader", "follower", "learner"] },
      promoting: { type: "boolean" },
      priority: { type: ["integer", "null"], description: "null: not known to this node" },
      matchIndex: { type: ["integer", "null"] },
      lagEntries: { type: ["integer", "null"] },
    },
  },
  LeaderRef: {
    type: ["object", "null"],
    required: ["id", "url"],
    additionalProperties: false,
    properties: { id: { type: "string" }, url: { type: ["string", "null"] } },
  },
  ClusterStatus: {
    type: "object",
    required: ["clusterId", "self", "term", "leader", "commitIndex", "appliedIndex", "members"],
    additionalProperties: false,
    properties: {
      clusterId: { type: "string" },
      self: { type: "string" },
      term: count,
      leader: { $ref: "#/components/schemas/LeaderRef" },
      commitIndex: count,
      appliedIndex: count,
      members: { type: "array", items: { $ref: "#/components/schemas/Member" } },
      partitionBy: {
        type: "string",
        description: "a partitioned cluster's rule: hash, or prefix:D (the key up to its first D)",
      },
      partitions: {
        type: "array",
        description:
          "a partitioned cluster (ballot start --partitions N): who leads each partition, as this node sees it. The top-level term, leader and indexes are partition 0's",
        items: {
          type: "object",
          required: ["id", "leader", "term", "commitIndex"],
          additionalProperties: false,
          properties: {
            id: count,
            leader: { $ref: "#/components/schemas/LeaderRef" },
            term: count,
            commitIndex: count,
            quiet: {
              type: "boolean",
              description:
                "the partition is idle and quiet on this node: no heartbeats, no election timer, woken by any write, read or failure",
            },
          },
        },
      },
    },
  },
  Readiness: {
    type: "object",
    required: ["ready", "leader", "appliedIndex", "commitIndex"],
    additionalProperties: false,
    properties: {
      ready: { type: "boolean" },
      leader: { type: ["string", "null"] },
      appliedIndex: count,
      commitIndex: count,
      partitionsNotReady: {
        type: "array",
        items: count,
        description: "a partitioned cluster: the partitions without a leader, or not applied here yet",
      },
    },
  },
  ElectionLeader: {
    type: ["object", "null"],
    required: ["value", "lease", "fencingToken"],
    additionalProperties: false,
    properties: {
      value: { description: "what the leader proclaimed (any JSON value)" },
      lease: id,
      fencingToken: { ...id, description: "the leader's creation revision: grows with each leadership" },
    },
  },
  TxnCompare: {
    type: "object",
    required: ["key", "target", "op", "value"],
    additionalProperties: false,
    properties: {
      key: { type: "string", minLength: 1, maxLength: 4096 },
      target: {
        enum: ["value", "revision", "version", "createRevision"],
        description: "revision is the key's last modification revision; a missing key has 0 for all three",
      },
      op: { enum: ["==", "!=", "<", ">"] },
      value: {
        description:
          "for target value: any JSON value (== and != compare JSON text; < and > numbers with numbers, strings with strings); else a non-negative integer",
      },
    },
    if: { properties: { target: { const: "value" } } },
    else: { properties: { value: { type: "integer", minimum: 0, maximum: MAX_SAFE } } },
  },
  TxnOp: {
    oneOf: [
      {
        type: "object",
        required: ["put"],
        additionalProperties: false,
        properties: {
          put: {
            type: "object",
            required: ["key", "value"],
            additionalProperties: false,
            properties: {
              key: { type: "string", minLength: 1, maxLength: 4096 },
              value: { description: "any JSON value" },
              lease: { type: "integer", minimum: 1, maximum: MAX_SAFE },
            },
          },
        },
      },
      {
        type: "object",
        required: ["delete"],
        additionalProperties: false,
        properties: {
          delete: {
            type: "object",
            required: ["key"],
            additionalProperties: false,
            properties: { key: { type: "string", minLength: 1, maxLength: 4096 } },
          },
        },
      },
      {
        type: "object",
        required: ["get"],
        additionalProperties: false,
        properties: {
          get: {
            type: "object",
            required: ["key"],
            additionalProperties: false,
            properties: { key: { type: "string", minLength: 1, maxLength: 4096 } },
          },
        },
      },
    ],
  },
  TxnOpResult: {
    oneOf: [
      {
        type: "object",
        required: ["put"],
        additionalProperties: false,
        properties: { put: { $ref: "#/components/schemas/KeyValue" } },
      },
      {
        type: "object",
        required: ["delete"],
        additionalProperties: false,
        properties: {
          delete: {
            type: "object",
            required: ["key", "deleted"],
            additionalProperties: false,
            properties: { key: { type: "string" }, deleted: { type: "boolean" } },
          },
        },
      },
      {
        type: "object",
        required: ["get"],
        additionalProperties: false,
        properties: {
          get: {
            type: "object",
            required: ["key", "kv"],
            additionalProperties: false,
            properties: {
              key: { type: "string" },
              kv: {
                oneOf: [{ $ref: "#/components/schemas/KeyValue" }, { type: "null" }],
                description: "the key as the transaction saw it at that point; null if absent",
              },
            },
          },
        },
      },
    ],
  },
} as const satisfies Record<string, JsonSchema>;

const ref = (name: keyof typeof COMPONENTS): JsonSchema => ({ $ref: `#/components/schemas/${name}` });

/** A path, query or header parameter. Query and header values arrive as text; see `validate.ts`. */
export interface ParamSpec {
  readonly schema: JsonSchema;
  readonly description: string;
  readonly required?: boolean;
}

export interface ResponseSpec {
  readonly description: string;
  /** JSON body schema; absent for non-JSON answers (see `contentType`). */
  readonly schema?: JsonSchema;
  /** Default application/json. */
  readonly contentType?: string;
}

export type Method = "GET" | "PUT" | "POST" | "DELETE";
export type Role = "read" | "write" | "admin";

export interface RouteSpec {
  readonly method: Method;
  /** OpenAPI path template, e.g. `/v1/kv/{key}`. */
  readonly path: string;
  readonly operationId: string;
  readonly summary: string;
  readonly tag: string;
  /** The role a token needs when authentication is on; null: open to all. */
  readonly role: Role | null;
  /** The path parameter that takes the rest of the path, `/` included (a key may hold `/`). */
  readonly restParam?: string;
  readonly params?: Readonly<Record<string, ParamSpec>>;
  readonly query?: Readonly<Record<string, ParamSpec>>;
  readonly headers?: Readonly<Record<string, ParamSpec>>;
  /** The JSON request body; absent: the route takes no body. */
  readonly body?: JsonSchema;
  /** The body may be left out entirely (as if it were `{}`). */
  readonly bodyOptional?: boolean;
  readonly responses: Readonly<Record<number, ResponseSpec>>;
  /** The 200 answer is a stream of server-sent events. */
  readonly stream?: boolean;
  /** Query parameters are not the route's business (a page a browser opens): any are let through, still strictly decoded. */
  readonly anyQuery?: boolean;
}

const consistency: ParamSpec = {
  schema: { enum: ["linearizable", "lease", "local"], default: "linearizable" },
  description:
    "linearizable (default) confirms leadership with a quorum; lease trusts the leader's lease; local reads this node's state as it is",
};
const keyParam: ParamSpec = {
  schema: { type: "string", minLength: 1, maxLength: API_LIMITS.keyBytes },
  description: "the key, percent-encoded; it may contain /",
  required: true,
};
const nameParam: ParamSpec = {
  schema: { type: "string", minLength: 1, maxLength: API_LIMITS.electionNameBytes },
  description: "the election's name, percent-encoded",
  required: true,
};
const leaseIdParam: ParamSpec = { schema: id, description: "the lease id", required: true };
const memberIdParam: ParamSpec = {
  schema: { type: "string", minLength: 1, maxLength: 64 },
  description: "the member's id",
  required: true,
};
const idempotencyKey: ParamSpec = {
  schema: { type: "string", minLength: 1, maxLength: API_LIMITS.idempotencyKeyBytes },
  description:
    "a write carrying the same key again gets the first outcome back and is applied once (1-256 bytes)",
};
const fencingToken: ParamSpec = {
  schema: { type: "string", pattern: "^\\s*[0-9]{1,15}\\s*$" },
  description: "refuse the write (412 stale_token) if the key has seen a higher token",
};
const quotedRevision = { type: "string", pattern: '^\\s*(W/)?"[0-9]{1,15}"\\s*$' } as const;

const errors = (...statuses: number[]): Record<number, ResponseSpec> => {
  const text: Record<number, string> = {
    307: "ask the leader (Location)",
    400: "the request is wrong",
    401: "no or unknown token",
    403: "the token's role is too low",
    404: "not found",
    405: "method not allowed",
    409: "conflict",
    408: "the request did not arrive within the deadline",
    410: "gone",
    411: "send the body with a Content-Length (chunked bodies are refused)",
    412: "a precondition failed",
    413: "too large",
    415: "send application/json",
    431: "the request headers are too large",
    422: "the Idempotency-Key was used for another request",
    426: "upgrade required",
    429: "overloaded: nothing was applied; retry after Retry-After",
    503: "no leader or not ready: nothing was applied; retry after Retry-After",
    504: "outcome_unknown: the write may or may not have been applied",
  };
  return Object.fromEntries(
    statuses.map((s) => [s, { description: text[s] ?? "error", schema: ref("ErrorBody") }]),
  );
};
/** Every route may answer these: bad request target or framing, deadlines, auth, overload. */
const COMMON_ERRORS = [400, 401, 403, 408, 429, 431] as const;
const WRITE_ERRORS = [307, 411, 413, 415, 422, 503, 504] as const;
const READ_ERRORS = [503] as const;

const obj = (properties: Record<string, JsonSchema>, required: string[] = []): JsonSchema => ({
  type: "object",
  additionalProperties: false,
  properties,
  ...(required.length > 0 ? { required } : {}),
});
const EMPTY_BODY = obj({});

const writeHeaders = { "Idempotency-Key": idempotencyKey } as const;

/** Every route the server answers. The order is the documentation's. */
export const ROUTES: readonly RouteSpec[] = [
  // ---- keys
  {
    method: "GET",
    path: "/v1/kv/{key}",
    operationId: "getKey",
    summary: "Read a key",
    tag: "kv",
    role: "read",
    restParam: "key",
    params: { key: keyParam },
    query: { consistency },
    responses: {
      200: { description: "the key (ETag: its revision)", schema: ref("KeyValue") },
      ...errors(...COMMON_ERRORS, ...READ_ERRORS, 404),
    },
  },
  {
    method: "PUT",
    path: "/v1/kv/{key}",
    operationId: "putKey",
    summary: "Write a key (If-Match: compare-and-set; If-None-Match: * create only)",
    tag: "kv",
    role: "write",
    restParam: "key",
    params: { key: keyParam },
    headers: {
      ...writeHeaders,
      "If-Match": { schema: quotedRevision, description: 'write only if the key\'s revision is this ("42")' },
      "If-None-Match": { schema: { const: "*" }, description: "write only if the key does not exist" },
      "X-Ballot-Fencing-Token": fencingToken,
    },
    body: obj({ value: { description: "any JSON value (at most 1 MiB as JSON text)" }, lease: id }, [
      "value",
    ]),
    responses: {
      200: {
        description: "committed by a majority, durably",
        schema: {
          type: "object",
          required: ["key", "value", "revision", "createRevision", "version"],
          additionalProperties: false,
          properties: { ...COMPONENTS.KeyValue.properties },
        },
      },
      ...errors(...COMMON_ERRORS, ...WRITE_ERRORS, 404, 412),
    },
  },
  {
    method: "DELETE",
    path: "/v1/kv/{key}",
    operationId: "deleteKey",
    summary: "Delete a key (also with If-Match)",
    tag: "kv",
    role: "write",
    restParam: "key",
    params: { key: keyParam },
    headers: {
      ...writeHeaders,
      "If-Match": { schema: quotedRevision, description: "delete only if the key's revision is this" },
      "If-None-Match": {
        schema: { const: "*" },
        description: "delete only if the key does not exist (a no-op)",
      },
      "X-Ballot-Fencing-Token": fencingToken,
    },
    responses: {
      200: {
        description: "committed",
        schema: obj({ key: { type: "string" }, deleted: { type: "boolean" }, revision }, [
          "key",
          "deleted",
          "revision",
        ]),
      },
      ...errors(...COMMON_ERRORS, ...WRITE_ERRORS, 412),
    },
  },
  {
    method: "GET",
    path: "/v1/kv",
    operationId: "listKeys",
    summary: "List keys by prefix, in key order",
    tag: "kv",
    role: "read",
    query: {
      prefix: {
        schema: { type: "string", maxLength: API_LIMITS.keyBytes },
        description: "default: every key",
      },
      limit: {
        schema: { type: "integer", minimum: 1, maximum: API_LIMITS.listLimitMax, default: 1000 },
        description: "at most this many keys",
      },
      consistency,
    },
    responses: {
      200: {
        description: "the keys",
        schema: obj(
          {
            kvs: { type: "array", items: ref("KeyValue") },
            more: { type: "boolean" },
            revision,
            revisions: {
              type: "array",
              items: count,
              description:
                "a partitioned cluster's range over several partitions: each partition's revision, by partition id (revision is then partition 0's)",
            },
          },
          ["kvs", "more", "revision"],
        ),
      },
      ...errors(...COMMON_ERRORS, ...READ_ERRORS),
    },
  },
  {
    method: "GET",
    path: "/v1/watch",
    operationId: "watch",
    summary: "Changes under a prefix as server-sent events (put, delete; error ends the stream)",
    tag: "kv",
    role: "read",
    stream: true,
    query: {
      prefix: {
        schema: { type: "string", maxLength: API_LIMITS.keyBytes },
        description: "default: every key",
      },
      fromRevision: { schema: id, description: "default: the next revision" },
      fromRevisions: {
        schema: { type: "string", pattern: "^[0-9]{1,15}(,[0-9]{1,15}){0,1023}$" },
        description:
          "a partitioned cluster's watch over several partitions: the first revision of each partition, by partition id, joined by commas (default: each one's next)",
      },
    },
    headers: {
      "Last-Event-ID": {
        schema: { type: "string", pattern: "^\\s*([0-9]{1,15}(,[0-9]{1,15}){0,1023})?\\s*$" },
        description:
          "resume after this revision (what the last event's id was); a watch over several partitions resumes after a position, one revision per partition joined by commas",
      },
    },
    responses: {
      200: { description: "an event stream", contentType: "text/event-stream" },
      ...errors(...COMMON_ERRORS, 410),
    },
  },
  // ---- transactions
  {
    method: "POST",
    path: "/v1/txn",
    operationId: "txn",
    summary:
      "A transaction: if every compare holds, the success ops run, else the failure ops — one log entry, all or nothing",
    tag: "kv",
    role: "write",
    headers: { ...writeHeaders, "X-Ballot-Fencing-Token": fencingToken },
    body: {
      type: "object",
      additionalProperties: false,
      properties: {
        compare: { type: "array", maxItems: API_LIMITS.txnOpsMax, items: ref("TxnCompare") },
        success: { type: "array", maxItems: API_LIMITS.txnOpsMax, items: ref("TxnOp") },
        failure: { type: "array", maxItems: API_LIMITS.txnOpsMax, items: ref("TxnOp") },
      },
    },
    responses: {
      200: {
        description:
          "committed; succeeded says which branch ran. Each change takes the next revision; revision is the store's after the transaction",
        schema: {
          type: "object",
          required: ["succeeded", "revision", "results"],
          additionalProperties: false,
          properties: {
            succeeded: { type: "boolean" },
            revision,
            results: { type: "array", items: ref("TxnOpResult") },
            valuesOmitted: {
              type: "boolean",
              description: "a replay (same Idempotency-Key) whose gets' values were too large to remember",
            },
          },
        },
      },
      ...errors(...COMMON_ERRORS, ...WRITE_ERRORS, 404, 412),
    },
  },
  // ---- leases
  {
    method: "GET",
    path: "/v1/leases",
    operationId: "listLeases",
    summary: "List leases",
    tag: "leases",
    role: "read",
    query: { consistency },
    responses: {
      200: {
        description: "the leases",
        schema: obj(
          {
            leases: {
              type: "array",
              items: obj({ id, ttl: { type: "number" } }, ["id", "ttl"]),
            },
            revision,
          },
          ["leases", "revision"],
        ),
      },
      ...errors(...COMMON_ERRORS, ...READ_ERRORS),
    },
  },
  {
    method: "POST",
    path: "/v1/leases",
    operationId: "grantLease",
    summary: "Grant a lease",
    tag: "leases",
    role: "write",
    headers: writeHeaders,
    body: obj(
      {
        ttl: {
          type: "number",
          minimum: API_LIMITS.leaseTtlMinSeconds,
          maximum: API_LIMITS.leaseTtlMaxSeconds,
          description: "seconds",
        },
      },
      ["ttl"],
    ),
    responses: {
      200: { description: "granted", schema: obj({ id, ttl: { type: "number" } }, ["id", "ttl"]) },
      ...errors(...COMMON_ERRORS, ...WRITE_ERRORS),
    },
  },
  {
    method: "GET",
    path: "/v1/leases/{id}",
    operationId: "getLease",
    summary: "A lease, its keys and elections",
    tag: "leases",
    role: "read",
    params: { id: leaseIdParam },
    query: { consistency },
    responses: {
      200: {
        description: "the lease (remainingMs only from the leader)",
        schema: obj(
          {
            id,
            ttl: { type: "number" },
            keys: { type: "array", items: { type: "string" } },
            elections: { type: "array", items: { type: "string" } },
            remainingMs: count,
          },
          ["id", "ttl", "keys", "elections"],
        ),
      },
      ...errors(...COMMON_ERRORS, ...READ_ERRORS, 404),
    },
  },
  {
    method: "DELETE",
    path: "/v1/leases/{id}",
    operationId: "revokeLease",
    summary: "Revoke a lease (its keys and candidacies go with it)",
    tag: "leases",
    role: "write",
    params: { id: leaseIdParam },
    headers: writeHeaders,
    responses: {
      200: {
        description: "revoked",
        schema: obj({ id, revoked: { type: "boolean" }, revision }, ["id", "revoked", "revision"]),
      },
      ...errors(...COMMON_ERRORS, ...WRITE_ERRORS, 404),
    },
  },
  {
    method: "POST",
    path: "/v1/leases/{id}/keepalive",
    operationId: "keepAliveLease",
    summary: "Renew a lease for its full TTL",
    tag: "leases",
    role: "write",
    params: { id: leaseIdParam },
    body: EMPTY_BODY,
    bodyOptional: true,
    responses: {
      200: { description: "renewed", schema: obj({ id, ttl: { type: "number" } }, ["id", "ttl"]) },
      ...errors(...COMMON_ERRORS, ...WRITE_ERRORS, 404),
    },
  },
  // ---- elections
  {
    method: "GET",
    path: "/v1/elections/{name}",
    operationId: "getElection",
    summary: "Who leads an election",
    tag: "elections",
    role: "read",
    params: { name: nameParam },
    query: { consistency },
    responses: {
      200: {
        description: "the leader, or null",
        schema: obj(
          { name: { type: "string" }, leader: ref("ElectionLeader"), candidates: count, revision },
          ["name", "leader", "candidates", "revision"],
        ),
      },
      ...errors(...COMMON_ERRORS, ...READ_ERRORS),
    },
  },
  {
    method: "GET",
    path: "/v1/elections/{name}/observe",
    operationId: "observeElection",
    summary: "Leader changes as server-sent events",
    tag: "elections",
    role: "read",
    stream: true,
    params: { name: nameParam },
    query: { consistency },
    responses: {
      200: { description: "an event stream (event: leader)", contentType: "text/event-stream" },
      ...errors(...COMMON_ERRORS, ...READ_ERRORS),
    },
  },
  {
    method: "POST",
    path: "/v1/elections/{name}/campaign",
    operationId: "campaign",
    summary: "Wait until this candidate leads; answers its fencing token",
    tag: "elections",
    role: "write",
    params: { name: nameParam },
    headers: writeHeaders,
    body: obj({
      value: { description: "what to proclaim as leader (any JSON value)" },
      candidate: { description: 'a synonym of "value" (DESIGN.md)' },
      lease: { ...id, description: "a lease you keep alive; give this or ttl" },
      ttl: {
        type: "number",
        minimum: API_LIMITS.leaseTtlMinSeconds,
        maximum: API_LIMITS.leaseTtlMaxSeconds,
        description: "seconds: the server grants a lease for the candidacy",
      },
    }),
    responses: {
      200: {
        description: "this candidate leads",
        schema: obj(
          {
            name: { type: "string" },
            value: {},
            lease: id,
            fencingToken: id,
            revision,
            validForMs: { ...count, description: "ttl campaigns: how long the leadership is surely valid" },
          },
          ["name", "value", "lease", "fencingToken", "revision"],
        ),
      },
      ...errors(...COMMON_ERRORS, ...WRITE_ERRORS, 404, 410),
    },
  },
  {
    method: "POST",
    path: "/v1/elections/{name}/proclaim",
    operationId: "proclaim",
    summary: "The leader announces a new value",
    tag: "elections",
    role: "write",
    params: { name: nameParam },
    headers: writeHeaders,
    body: obj({ value: { description: "any JSON value" }, lease: id }, ["value", "lease"]),
    responses: {
      200: {
        description: "proclaimed",
        schema: obj({ name: { type: "string" }, value: {}, lease: id, fencingToken: id, revision }, [
          "name",
          "value",
          "lease",
          "fencingToken",
          "revision",
        ]),
      },
      ...errors(...COMMON_ERRORS, ...WRITE_ERRORS, 404, 409),
    },
  },
  {
    method: "POST",
    path: "/v1/elections/{name}/resign",
    operationId: "resign",
    summary: "Leave the election (give up leadership or the queue)",
    tag: "elections",
    role: "write",
    params: { name: nameParam },
    headers: writeHeaders,
    body: obj({ lease: id }, ["lease"]),
    responses: {
      200: {
        description: "resigned",
        schema: obj({ name: { type: "string" }, resigned: { type: "boolean" }, revision }, [
          "name",
          "resigned",
          "revision",
        ]),
      },
      ...errors(...COMMON_ERRORS, ...WRITE_ERRORS),
    },
  },
  // ---- cluster
  {
    method: "GET",
    path: "/v1/cluster",
    operationId: "getCluster",
    summary: "The cluster as this node sees it",
    tag: "cluster",
    role: "read",
    responses: { 200: { description: "status", schema: ref("ClusterStatus") }, ...errors(...COMMON_ERRORS) },
  },
  {
    method: "GET",
    path: "/v1/cluster/members",
    operationId: "listMembers",
    summary: "The members",
    tag: "cluster",
    role: "admin",
    responses: {
      200: {
        description: "members",
        schema: obj({ members: { type: "array", items: ref("Member") } }, ["members"]),
      },
      ...errors(...COMMON_ERRORS),
    },
  },
  {
    method: "POST",
    path: "/v1/cluster/members",
    operationId: "addMember",
    summary: "Add a member (as a learner; promoted once caught up unless learner: true)",
    tag: "cluster",
    role: "admin",
    body: obj(
      {
        id: { type: "string", minLength: 1 },
        url: { type: "string", minLength: 1 },
        learner: { type: "boolean" },
      },
      ["id", "url"],
    ),
    responses: {
      201: {
        description: "added",
        schema: obj(
          {
            added: { type: "string" },
            learner: { type: "boolean" },
            promote: { type: "boolean" },
            members: { type: "array", items: ref("Member") },
          },
          ["added", "learner", "promote", "members"],
        ),
      },
      ...errors(...COMMON_ERRORS, ...WRITE_ERRORS, 409),
    },
  },
  {
    method: "GET",
    path: "/v1/cluster/members/{id}",
    operationId: "getMember",
    summary: "One member",
    tag: "cluster",
    role: "admin",
    params: { id: memberIdParam },
    responses: {
      200: { description: "the member", schema: obj({ member: ref("Member") }, ["member"]) },
      ...errors(...COMMON_ERRORS, 404),
    },
  },
  {
    method: "DELETE",
    path: "/v1/cluster/members/{id}",
    operationId: "removeMember",
    summary: "Remove a member (refused if it would cost the quorum)",
    tag: "cluster",
    role: "admin",
    params: { id: memberIdParam },
    responses: {
      200: {
        description: "removed",
        schema: obj({ removed: { type: "string" }, members: { type: "array", items: ref("Member") } }, [
          "removed",
          "members",
        ]),
      },
      ...errors(...COMMON_ERRORS, ...WRITE_ERRORS, 404, 409),
    },
  },
  {
    method: "POST",
    path: "/v1/cluster/members/{id}/promote",
    operationId: "promoteMember",
    summary: "Make a learner a voter",
    tag: "cluster",
    role: "admin",
    params: { id: memberIdParam },
    body: EMPTY_BODY,
    bodyOptional: true,
    responses: {
      200: {
        description: "promoted",
        schema: obj({ promoted: { type: "string" }, members: { type: "array", items: ref("Member") } }, [
          "promoted",
          "members",
        ]),
      },
      ...errors(...COMMON_ERRORS, ...WRITE_ERRORS, 404, 409),
    },
  },
  {
    method: "POST",
    path: "/v1/cluster/transfer-leader",
    operationId: "transferLeader",
    summary: "Hand leadership to a voter",
    tag: "cluster",
    role: "admin",
    body: obj({ id: { type: "string", minLength: 1 } }, ["id"]),
    responses: {
      200: {
        description: "done (moved: false when it already led)",
        schema: obj({ leader: { type: "string" }, term: count, moved: { type: "boolean" } }, [
          "leader",
          "term",
          "moved",
        ]),
      },
      ...errors(...COMMON_ERRORS, ...WRITE_ERRORS, 404, 409),
    },
  },
  {
    method: "GET",
    path: "/v1/snapshot",
    operationId: "saveSnapshot",
    summary: "A consistent backup of the whole state (ballot snapshot save)",
    tag: "cluster",
    role: "admin",
    responses: {
      200: { description: "the snapshot file", contentType: "application/octet-stream" },
      ...errors(...COMMON_ERRORS, 503),
    },
  },
  {
    method: "GET",
    path: "/v1/raft",
    operationId: "peerStream",
    summary: "Peer traffic: only as an HTTP Upgrade to ballot-raft/1 from another member",
    tag: "cluster",
    role: null,
    responses: { ...errors(400, 426) },
  },
  // ---- operations
  {
    method: "GET",
    path: "/health",
    operationId: "health",
    summary: "Liveness",
    tag: "operations",
    role: null,
    responses: {
      200: {
        description: "the process answers",
        schema: obj({ status: { const: "ok" }, node: { type: "string" }, clusterId: { type: "string" } }, [
          "status",
          "node",
          "clusterId",
        ]),
      },
      ...errors(400),
    },
  },
  {
    method: "GET",
    path: "/ready",
    operationId: "ready",
    summary: "Readiness: a leader is known and this node has applied nearly all it committed",
    tag: "operations",
    role: null,
    responses: {
      200: { description: "ready", schema: ref("Readiness") },
      503: { description: "not ready", schema: ref("Readiness") },
      ...errors(400),
    },
  },
  {
    method: "GET",
    path: "/metrics",
    operationId: "metrics",
    summary: "Prometheus metrics",
    tag: "operations",
    role: "read",
    responses: {
      200: { description: "text exposition format", contentType: "text/plain" },
      ...errors(...COMMON_ERRORS),
    },
  },
  {
    method: "GET",
    path: "/v1/openapi.json",
    operationId: "openapi",
    summary: "This document",
    tag: "operations",
    role: null,
    responses: { 200: { description: "OpenAPI 3.1", schema: { type: "object" } }, ...errors(400) },
  },
  {
    method: "GET",
    path: "/",
    operationId: "dashboard",
    summary: "The live dashboard page",
    tag: "operations",
    role: null,
    anyQuery: true,
    responses: { 200: { description: "HTML", contentType: "text/html" }, ...errors(400) },
  },
  {
    method: "GET",
    path: "/v1/events",
    operationId: "dashboardEvents",
    summary: "The dashboard's live feed (server-sent events)",
    tag: "operations",
    role: "read",
    anyQuery: true,
    stream: true,
    responses: {
      200: { description: "an event stream", contentType: "text/event-stream" },
      ...errors(...COMMON_ERRORS),
    },
  },
];
