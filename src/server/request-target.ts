/**
 * Reads a request's target (the path and query of the request line) literally. Owns the rules that
 * keep a request acting only on the resource it names: a `.` or `..` segment (also percent-encoded,
 * as `%2e%2E`) or an empty segment is refused, never resolved; so is invalid percent-encoding, text
 * that is not UTF-8, and a NUL anywhere in the path or the query; a query
 * parameter given twice is refused rather than one of its values picked. Must never normalize a
 * path: a proxy or ACL that allowed `/v1/kv/a` must be able to trust that the request acts on `a`.
 *
 * Why not `new URL()`: it resolves dot segments before anyone sees them, so `/v1/kv/a/../b` would
 * write `b`, and it lets `%` pass through unchecked in a query.
 */
import { HttpError } from "./http-util.js";

/** A request target, checked and decoded. */
export interface RequestTarget {
  /** The path as sent (still percent-encoded), e.g. `/v1/kv/a%2Fb`. */
  readonly rawPath: string;
  /** The path's segments after the leading `/`, as sent. */
  readonly rawSegments: readonly string[];
  /** The same segments, each percent-decoded. */
  readonly segments: readonly string[];
  /** Query parameters, decoded (`+` is a space, as in forms). */
  readonly query: ReadonlyMap<string, string>;
}

const bad = (message: string): HttpError => new HttpError(400, "invalid_path", message);
const badQuery = (message: string): HttpError => new HttpError(400, "invalid_query", message);

const utf8 = new TextDecoder("utf-8", { fatal: true });
// NUL ends strings in C and in many logs and proxies: a key or name with one is an attack, not a key.
// (Other control characters stay allowed in keys, as they always were: the log may hold such keys.)
const hasNul = (s: string): boolean => s.indexOf("\u0000") !== -1;
const HEX = /^[0-9a-fA-F]{2}$/;

/**
 * Percent-decodes `s` strictly: every `%` must start two hex digits and the bytes must be UTF-8.
 * Returns null when they are not. The common case (no `%`) costs one indexOf.
 */
export function strictDecode(s: string): string | null {
  if (s.indexOf("%") === -1) return s;
  const bytes: number[] = [];
  let out = "";
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c === 0x25 /* % */) {
      const hex = s.slice(i + 1, i + 3);
      if (!HEX.test(hex)) return null;
      bytes.push(Number.parseInt(hex, 16));
      i += 2;
      continue;
    }
    if (bytes.length > 0) {
      const text = decodeBytes(bytes);
      if (text === null) return null;
      out += text;
      bytes.length = 0;
    }
    out += s[i];
  }
  if (bytes.length > 0) {
    const text = decodeBytes(bytes);
    if (text === null) return null;
    out += text;
  }
  return out;
}

function decodeBytes(bytes: number[]): string | null {
  try {
    return utf8.decode(Uint8Array.from(bytes));
  } catch {
    return null;
  }
}

/** Parses and checks `req.url`; throws a 400 HttpError naming what is wrong. */
export function parseRequestTarget(target: string): RequestTarget {
  // An absolute-form target (`GET http://host/path`) is legal HTTP; only its path and query matter.
  let t = target;
  if (!t.startsWith("/")) {
    const m = /^[a-zA-Z][a-zA-Z0-9+.-]*:\/\/[^/?#]*/.exec(t);
    if (!m) throw bad("the request target must be a path starting with /");
    t = t.slice(m[0].length) || "/";
    if (!t.startsWith("/")) throw bad("the request target must be a path starting with /");
  }
  if (t.includes("#")) throw bad("a request target has no fragment");
  const q = t.indexOf("?");
  const rawPath = q === -1 ? t : t.slice(0, q);
  const rawQuery = q === -1 ? "" : t.slice(q + 1);

  const segments: string[] = [];
  const rawSegments = rawPath === "/" ? [] : rawPath.slice(1).split("/");
  for (const raw of rawSegments) {
    if (raw === "") throw bad("the path has an empty segment (// or a trailing /)");
    const seg = strictDecode(raw);
    if (seg === null) throw bad("the path has invalid percent-encoding or is not UTF-8");
    if (seg === "." || seg === "..") throw bad("the path has a . or .. segment; paths are taken literally");
    if (hasNul(seg)) throw bad("the path has a NUL character");
    segments.push(seg);
  }

  const query = new Map<string, string>();
  if (rawQuery !== "") {
    for (const pair of rawQuery.split("&")) {
      if (pair === "") throw badQuery("the query has an empty parameter (&& or a trailing &)");
      const eq = pair.indexOf("=");
      const rawName = (eq === -1 ? pair : pair.slice(0, eq)).replaceAll("+", " ");
      const rawValue = (eq === -1 ? "" : pair.slice(eq + 1)).replaceAll("+", " ");
      const name = strictDecode(rawName);
      const value = strictDecode(rawValue);
      if (name === null || value === null)
        throw badQuery("the query has invalid percent-encoding or is not UTF-8");
      if (name === "") throw badQuery("the query has a parameter without a name");
      if (hasNul(name) || hasNul(value)) throw badQuery("the query has a NUL character");
      if (query.has(name)) throw badQuery(`the query parameter '${name}' is given more than once`);
      query.set(name, value);
    }
  }
  return { rawPath, rawSegments, segments, query };
}
