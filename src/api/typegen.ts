/**
 * Generates the client's wire types (src/client/api-types.ts) from the route table, so the types
 * `ballot/client` hands out are the shapes the server validates and documents. Owns the JSON
 * Schema → TypeScript translation for the subset the API uses; must never be needed at run time
 * (the generated file is committed; `npm run gen:api` rewrites it and a test keeps it current).
 */
import { COMPONENTS, type JsonSchema, ROUTES } from "./schemas.js";

function literal(v: unknown): string {
  return JSON.stringify(v);
}

/** The TypeScript type of a schema. */
export function typeOf(s: JsonSchema, indent = ""): string {
  if (typeof s.$ref === "string") return s.$ref.replace("#/components/schemas/", "");
  if ("const" in s) return literal(s.const);
  if (Array.isArray(s.enum)) return s.enum.map(literal).join(" | ");
  if (Array.isArray(s.oneOf)) {
    const text = (s.oneOf as JsonSchema[]).map((x) => wrap(typeOf(x, indent))).join(" | ");
    // A union of object types breaks over lines, and then the formatter leads with `|`.
    return text.includes("\n") ? `| ${text}` : text;
  }
  const types = Array.isArray(s.type) ? (s.type as string[]) : typeof s.type === "string" ? [s.type] : [];
  if (types.length === 0) return "unknown";
  return types
    .map((t) => {
      switch (t) {
        case "string":
          return "string";
        case "integer":
        case "number":
          return "number";
        case "boolean":
          return "boolean";
        case "null":
          return "null";
        case "array":
          return `readonly ${wrap(typeOf((s.items ?? {}) as JsonSchema, indent))}[]`;
        case "object":
          return objectType(s, indent);
        default:
          throw new Error(`typegen: unsupported type ${t}`);
      }
    })
    .join(" | ");
}

const wrap = (t: string): string => (/[|&]/.test(t) && !t.startsWith("{") ? `(${t})` : t);

function objectType(s: JsonSchema, indent: string): string {
  const props = (s.properties ?? {}) as Record<string, JsonSchema>;
  const required = new Set((s.required ?? []) as string[]);
  const inner = `${indent}  `;
  const lines = Object.entries(props).map(([name, p]) => {
    const doc = typeof p.description === "string" ? `${inner}/** ${p.description} */\n` : "";
    const key = /^[A-Za-z_$][\w$]*$/.test(name) ? name : literal(name);
    return `${doc}${inner}readonly ${key}${required.has(name) ? "" : "?"}: ${typeOf(p, inner)};`;
  });
  if (s.additionalProperties === true) lines.push(`${inner}readonly [field: string]: unknown;`);
  if (lines.length === 0) return "Record<string, never>";
  return `{\n${lines.join("\n")}\n${indent}}`;
}

const pascal = (id: string): string => id.charAt(0).toUpperCase() + id.slice(1);

/** The whole generated module's text. */
export function generateClientTypes(): string {
  const out: string[] = [
    "/**",
    " * The HTTP API's wire types, generated from src/api/schemas.ts by `npm run gen:api`: do not edit.",
    " * Owns nothing of its own; must never drift from the schemas (test/api/typegen.test.ts checks).",
    " */",
    "",
  ];
  for (const [name, s] of Object.entries(COMPONENTS)) {
    const t = typeOf(s as JsonSchema);
    out.push(`export type ${name} = ${t};`, "");
  }
  for (const r of ROUTES) {
    const ok = r.responses[200] ?? r.responses[201];
    if (r.body)
      out.push(
        `/** ${r.method} ${r.path}: the request body. */`,
        `export type ${pascal(r.operationId)}Body = ${typeOf(r.body)};`,
        "",
      );
    if (ok?.schema)
      out.push(
        `/** ${r.method} ${r.path}: the answer. */`,
        `export type ${pascal(r.operationId)}Response = ${typeOf(ok.schema)};`,
        "",
      );
  }
  return `${out.join("\n").trimEnd()}\n`;
}
