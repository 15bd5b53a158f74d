/**
 * Routing and request validation from the one API description (src/api/schemas.ts): finds the
 * route a checked request target names, and checks its path parameters, query, headers and JSON
 * body against that route's schemas before any handler runs. Owns the mapping from schema errors
 * to 400s with a message that names the field; must never let a request that fails its schema reach
 * a handler, and never match a route by anything but the literal text of its fixed segments (so
 * `/v1/%63luster/...` is not `/v1/cluster/...`: no alias can slip past a role check or an ACL).
 */
import Ajv2020Module, { type ErrorObject, type ValidateFunction } from "ajv/dist/2020.js";
import { COMPONENTS, type JsonSchema, type Method, ROUTES, type RouteSpec } from "../api/schemas.js";
import { tokenInUrl } from "./auth.js";
import { HttpError } from "./http-util.js";
import type { RequestTarget } from "./request-target.js";

// ajv is CommonJS: under NodeNext the default import is its module object, which carries the class as `default`.
const Ajv2020 = Ajv2020Module.default;

/** A route matched to a request, with its decoded path parameters. */
export interface Match {
  readonly route: RouteSpec;
  readonly params: Readonly<Record<string, string | number>>;
}

interface Compiled {
  readonly route: RouteSpec;
  /** Fixed segments as text; parameters as `{name}`. */
  readonly segments: readonly string[];
  readonly headerNames: readonly string[];
  /** Query parameters and path parameters whose schema is an integer: their text becomes a number. */
  readonly integerNames: ReadonlySet<string>;
  /** The route's validators, compiled on its first request (compiling them all costs a process start ~0.2 s). */
  validators(): Validators;
}

interface Validators {
  readonly params?: ValidateFunction;
  readonly query: ValidateFunction;
  readonly headers?: ValidateFunction;
  readonly body?: ValidateFunction;
}

/** Replaces `#/components/schemas/X` references with the schema itself (the API has no recursive shapes). */
export function inlineRefs(s: unknown): unknown {
  if (Array.isArray(s)) return s.map(inlineRefs);
  if (typeof s !== "object" || s === null) return s;
  const o = s as Record<string, unknown>;
  if (typeof o.$ref === "string") {
    const name = /^#\/components\/schemas\/(\w+)$/.exec(o.$ref)?.[1];
    const target = name ? (COMPONENTS as Record<string, JsonSchema>)[name] : undefined;
    if (!target) throw new Error(`unknown schema reference ${o.$ref}`);
    const { $ref: _ref, ...rest } = o;
    return { ...(inlineRefs(target) as object), ...rest };
  }
  return Object.fromEntries(Object.entries(o).map(([k, v]) => [k, inlineRefs(v)]));
}

/** An Ajv instance for the API's dialect. */
export function newAjv(): InstanceType<typeof Ajv2020> {
  return new Ajv2020({ allErrors: false, allowUnionTypes: true, strict: true });
}

const isIntegerSchema = (s: JsonSchema): boolean => s.type === "integer";
const INTEGER_TEXT = /^-?[0-9]{1,16}$/;

function objectOf(specs: Readonly<Record<string, { schema: JsonSchema; required?: boolean }>>): JsonSchema {
  const required = Object.entries(specs)
    .filter(([, p]) => p.required)
    .map(([n]) => n);
  return {
    type: "object",
    additionalProperties: false,
    properties: Object.fromEntries(Object.entries(specs).map(([n, p]) => [n, p.schema])),
    ...(required.length > 0 ? { required } : {}),
  };
}

function describe(where: string, e: ErrorObject | undefined): string {
  if (!e) return `${where} is invalid`;
  const path = e.instancePath.replace(/^\//, "").replaceAll("/", ".");
  const at = path ? `${where} field '${path}'` : where;
  switch (e.keyword) {
    case "additionalProperties":
      return `${where === "the query" ? "unknown parameter" : `${at}: unknown field`} '${String(e.params.additionalProperty)}'`;
    case "required":
      return `${at} needs '${String(e.params.missingProperty)}'`;
    case "maximum":
    case "minimum":
      return `${at} must be ${e.keyword === "maximum" ? "at most" : "at least"} ${String(e.params.limit)}${
        e.params.limit === Number.MAX_SAFE_INTEGER ? " (the largest safe integer)" : ""
      }`;
    default:
      return `${at} ${e.message ?? "is invalid"}`;
  }
}

/** The router and validators of every route. */
export class ApiValidator {
  private readonly compiled: Compiled[];
  private readonly byRoute = new Map<RouteSpec, Compiled>();
  /** Routes by their first two segments (all fixed text), so a request is matched against a handful, not all. */
  private readonly byPrefix = new Map<string, Compiled[]>();

  constructor(routes: readonly RouteSpec[] = ROUTES) {
    const ajv = newAjv();
    const compile = (s: JsonSchema): ValidateFunction => ajv.compile(inlineRefs(s) as object);
    this.compiled = routes.map((route) => {
      const headerNames = Object.keys(route.headers ?? {}).map((h) => h.toLowerCase());
      const headerSpecs = Object.fromEntries(
        Object.entries(route.headers ?? {}).map(([n, p]) => [n.toLowerCase(), p]),
      );
      const integerNames = new Set<string>();
      for (const [n, p] of [...Object.entries(route.query ?? {}), ...Object.entries(route.params ?? {})])
        if (isIntegerSchema(p.schema)) integerNames.add(n);
      let validators: Validators | undefined;
      return {
        route,
        segments: route.path === "/" ? [] : route.path.slice(1).split("/"),
        headerNames,
        integerNames,
        validators: () =>
          (validators ??= {
            params: route.params ? compile(objectOf(route.params)) : undefined,
            query: compile(
              route.anyQuery
                ? { ...objectOf(route.query ?? {}), additionalProperties: true }
                : objectOf(route.query ?? {}),
            ),
            headers: route.headers
              ? compile({ ...objectOf(headerSpecs), additionalProperties: true })
              : undefined,
            body: route.body ? compile(route.body) : undefined,
          }),
      };
    });
    for (const c of this.compiled) {
      this.byRoute.set(c.route, c);
      if (c.segments.slice(0, 2).some((s) => s.startsWith("{")))
        throw new Error(`route ${c.route.path}: the first two segments must be fixed text`);
      const key = prefixKey(c.segments);
      const list = this.byPrefix.get(key);
      if (list) list.push(c);
      else this.byPrefix.set(key, [c]);
    }
  }

  /** Compiles every route's validators now (a test does, so a schema Ajv refuses fails the build, not a request). */
  compileAll(): void {
    for (const c of this.compiled) c.validators();
  }

  /** The route and parameters for a request; 404 for no route, 405 (with Allow) for another method. */
  match(method: string, target: RequestTarget): Match {
    const allowed: Method[] = [];
    for (const c of this.byPrefix.get(prefixKey(target.rawSegments)) ?? []) {
      const params = matchSegments(c, target);
      if (!params) continue;
      // No implicit HEAD: every method a route answers is in the table.
      if (c.route.method !== method) {
        allowed.push(c.route.method);
        continue;
      }
      const check = c.validators().params;
      if (check) {
        for (const n of c.integerNames)
          if (typeof params[n] === "string" && INTEGER_TEXT.test(params[n] as string))
            params[n] = Number(params[n]);
        if (!check(params)) {
          const e = check.errors?.[0];
          const name = e?.instancePath.replace(/^\//, "") ?? "";
          throw new HttpError(
            400,
            name === "key" ? "invalid_key" : "invalid_request",
            `the ${name || "path"} ${e?.message ?? "is invalid"}`,
          );
        }
      }
      return { route: c.route, params };
    }
    if (allowed.length > 0) {
      const allow = [...new Set(allowed)].join(", ");
      throw new HttpError(405, "method_not_allowed", `use ${allow}`, { Allow: allow });
    }
    throw new HttpError(404, "not_found", `no route ${method} ${target.rawPath}`);
  }

  /** Checks the query and headers of a matched request; returns the query with integers as numbers. */
  checkQueryAndHeaders(
    m: Match,
    target: RequestTarget,
    headers: Readonly<Record<string, string | string[] | undefined>>,
  ): Record<string, string | number> {
    const c = this.compiledOf(m.route);
    const checks = c.validators();
    const query: Record<string, string | number> = {};
    for (const [k, v] of target.query) {
      if (k === "access_token") throw tokenInUrl();
      query[k] = c.integerNames.has(k) && INTEGER_TEXT.test(v) ? Number(v) : v;
    }
    if (!checks.query(query))
      throw new HttpError(400, "invalid_request", describe("the query", checks.query.errors?.[0]));
    if (checks.headers) {
      const h: Record<string, string> = {};
      for (const n of c.headerNames) {
        const v = headers[n];
        if (v !== undefined) h[n] = Array.isArray(v) ? v.join(", ") : v;
      }
      if (!checks.headers(h)) {
        const e = checks.headers.errors?.[0];
        const name = e?.instancePath.replace(/^\//, "") ?? "a header";
        throw new HttpError(400, "invalid_header", `the ${name} header ${e?.message ?? "is invalid"}`);
      }
    }
    return query;
  }

  /** Checks a parsed JSON body against the route's schema. */
  checkBody(route: RouteSpec, body: unknown): void {
    const v = this.compiledOf(route).validators().body;
    if (!v) return;
    if (!v(body)) throw new HttpError(400, "invalid_request", describe("the body", v.errors?.[0]));
  }

  private compiledOf(route: RouteSpec): Compiled {
    const c = this.byRoute.get(route);
    if (!c) throw new Error(`route ${route.operationId} is not compiled`);
    return c;
  }
}

/** The first two segments, literally (templates and raw request segments alike). */
function prefixKey(segments: readonly string[]): string {
  return segments.length >= 2 ? `${segments[0]}/${segments[1]}` : (segments[0] ?? "");
}

function matchSegments(c: Compiled, t: RequestTarget): Record<string, string | number> | null {
  const tpl = c.segments;
  const rest = c.route.restParam;
  if (rest ? t.segments.length < tpl.length : t.segments.length !== tpl.length) return null;
  const params: Record<string, string | number> = {};
  for (let i = 0; i < tpl.length; i++) {
    const s = tpl[i]!;
    if (s.startsWith("{")) {
      const name = s.slice(1, -1);
      params[name] = name === rest ? t.segments.slice(i).join("/") : t.segments[i]!;
      if (name === rest) return i === tpl.length - 1 ? params : null;
    } else if (t.rawSegments[i] !== s) return null;
  }
  return params;
}
