/**
 * Client authentication with bearer tokens from a file, each with a role: `read` (every read and
 * watch), `write` (also writes, leases, elections), `admin` (also backups and membership). Owns the
 * token file's format and the role check. Must never put a token, or any part of one, in a log
 * line or an error message, and never compare tokens in time that depends on their contents.
 *
 * The file is JSON: `[{"name": "ci", "role": "write", "token": "…"}, …]`; tokens are at least
 * 16 characters; names appear in logs instead of tokens.
 */
import { createHash, timingSafeEqual } from "node:crypto";
import { readFileSync } from "node:fs";
import type * as http from "node:http";
import { HttpError } from "./http-util.js";

export type Role = "read" | "write" | "admin";
const RANK: Record<Role, number> = { read: 1, write: 2, admin: 3 };

interface Entry {
  readonly name: string;
  readonly role: Role;
  readonly digest: Buffer;
}

export interface Authenticator {
  /** Throws 401 (no or unknown token) or 403 (role too low); returns the caller's name. */
  check(req: http.IncomingMessage, url: URL, need: Role): string;
  readonly size: number;
}

const digest = (token: string): Buffer => createHash("sha256").update(token, "utf8").digest();

/** Parses a token file's text; errors name the entry, never the token. */
export function parseTokens(text: string, what = "the token file"): Authenticator {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw new Error(`${what} is not valid JSON`);
  }
  if (!Array.isArray(parsed) || parsed.length === 0)
    throw new Error(`${what} must be a non-empty JSON array of {"name", "role", "token"}`);
  const entries: Entry[] = [];
  const names = new Set<string>();
  const seen = new Set<string>();
  for (const [i, e] of parsed.entries()) {
    const where = `${what}, entry ${i + 1}`;
    if (typeof e !== "object" || e === null || Array.isArray(e)) throw new Error(`${where}: not an object`);
    const o = e as Record<string, unknown>;
    for (const k of Object.keys(o))
      if (!["name", "role", "token"].includes(k)) throw new Error(`${where}: unknown field '${k}'`);
    if (typeof o.name !== "string" || !/^[\w.@-]{1,64}$/.test(o.name))
      throw new Error(`${where}: name must be 1-64 letters, digits or . _ @ -`);
    if (o.role !== "read" && o.role !== "write" && o.role !== "admin")
      throw new Error(`${where} (${o.name}): role must be read, write or admin`);
    if (typeof o.token !== "string" || o.token.length < 16 || /\s/.test(o.token))
      throw new Error(`${where} (${o.name}): the token must be at least 16 characters, without spaces`);
    if (names.has(o.name)) throw new Error(`${where}: the name '${o.name}' appears twice`);
    const d = digest(o.token);
    if (seen.has(d.toString("hex"))) throw new Error(`${where} (${o.name}): the same token appears twice`);
    names.add(o.name);
    seen.add(d.toString("hex"));
    entries.push({ name: o.name, role: o.role, digest: d });
  }
  return {
    size: entries.length,
    check(req, url, need) {
      const h = req.headers.authorization;
      let token: string | undefined;
      if (typeof h === "string") {
        const m = /^Bearer ([^\s]+)$/i.exec(h.trim());
        if (!m) throw unauthorized("the Authorization header must be 'Bearer <token>'");
        token = m[1];
      }
      if (url.searchParams.has("access_token")) throw tokenInUrl();
      if (token === undefined) throw unauthorized("this node requires a bearer token");
      const d = digest(token);
      // Every entry is compared, so the time taken does not say which one (if any) matched.
      let found: Entry | null = null;
      for (const e of entries) if (timingSafeEqual(e.digest, d)) found = e;
      if (!found) throw unauthorized("the token is not valid");
      if (RANK[found.role] < RANK[need])
        throw new HttpError(
          403,
          "forbidden",
          `this needs the '${need}' role; '${found.name}' has '${found.role}'`,
        );
      return found.name;
    },
  };
}

/**
 * A token in a URL is refused outright (RFC 6750 §2.3 allows it; we do not): URLs end up in proxy
 * and access logs, browser history and Referer headers. Refused before it is looked at, so a
 * token sent this way is never compared, and the answer is the same whether it was valid or not.
 */
export function tokenInUrl(): HttpError {
  return new HttpError(
    400,
    "invalid_request",
    "a token is never accepted in a URL (access_token): send it as 'Authorization: Bearer <token>'",
  );
}

function unauthorized(message: string): HttpError {
  return new HttpError(401, "unauthorized", message, { "WWW-Authenticate": 'Bearer realm="ballot"' });
}

/** Loads a token file; throws a one-line reason (the CLI exits 2 with it). */
export function loadTokens(path: string): Authenticator {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (e) {
    throw new Error(`--auth-tokens: cannot read ${path}: ${(e as NodeJS.ErrnoException).code ?? "error"}`);
  }
  return parseTokens(text, `--auth-tokens ${path}`);
}

/** The role a request needs; null for what stays open (liveness, readiness, the peer protocol). */
export function roleFor(path: string, method: string): Role | null {
  if (path === "/health" || path === "/ready" || path === "/v1/raft") return null;
  if (path === "/" && method === "GET") return null; // the page itself holds no data
  if (path === "/v1/snapshot" || path.startsWith("/v1/cluster/")) return "admin";
  if (method === "GET" || method === "HEAD") return "read";
  return "write";
}
