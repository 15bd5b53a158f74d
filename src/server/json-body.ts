/**
 * Reads a request's JSON body strictly. Owns the rules JSON.parse does not keep: the text must be
 * UTF-8 without a byte-order mark, no object may name a key twice (JSON.parse silently keeps the
 * last, so `{"value":1,"value":2}` would mean whatever the last proxy or parser in line decides),
 * and values nest at most MAX_JSON_DEPTH deep (deeper ones overflowed the stack later, answering
 * 500). Must never accept what it cannot check, and never cost more than one linear scan of the
 * text on the common small body.
 */
import { HttpError } from "./http-util.js";

/** Arrays and objects may nest this deep (the body object itself is level 1). */
export const MAX_JSON_DEPTH = 64;

const utf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });
const invalid = (message: string): HttpError => new HttpError(400, "invalid_json", message);

/**
 * Parses `body` as JSON text, strictly (see the module comment). Returns the parsed value; throws
 * a 400 HttpError (`invalid_json`) naming what is wrong.
 */
export function parseStrictJson(body: Uint8Array): unknown {
  if (body.length >= 3 && body[0] === 0xef && body[1] === 0xbb && body[2] === 0xbf)
    throw invalid("the body starts with a byte-order mark; send plain UTF-8 JSON");
  let text: string;
  try {
    text = utf8.decode(body);
  } catch {
    throw invalid("the body is not UTF-8");
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    // Also a RangeError from absurd depth: either way the text is not JSON we take.
    throw invalid("the body is not valid JSON");
  }
  checkStructure(text);
  return parsed;
}

/**
 * One pass over text JSON.parse accepted: the nesting depth, and each object's keys compared after
 * unescaping (`"a"` and `"\u0061"` are the same key). A key Set is made only for an object's second
 * key, so the common one-field body allocates nothing.
 */
function checkStructure(text: string): void {
  // Per open container: null for an array, else the object's keys so far (first key alone until a second).
  const stack: (Set<string> | string | undefined | null)[] = [];
  let expectKey = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x22 /* " */) {
      const start = i;
      let escaped = false;
      for (i++; i < text.length; i++) {
        const d = text.charCodeAt(i);
        if (d === 0x5c /* \ */) {
          escaped = true;
          i++;
        } else if (d === 0x22) break;
      }
      if (expectKey) {
        const raw = text.slice(start + 1, i);
        const key = escaped ? (JSON.parse(`"${raw}"`) as string) : raw;
        const top = stack.length - 1;
        const seen = stack[top];
        if (seen === undefined) stack[top] = key;
        else if (typeof seen === "string") {
          if (seen === key) throw duplicate(key);
          stack[top] = new Set([seen, key]);
        } else if (seen !== null) {
          if (seen.has(key)) throw duplicate(key);
          seen.add(key);
        }
        expectKey = false;
      }
    } else if (c === 0x7b /* { */ || c === 0x5b /* [ */) {
      if (stack.length >= MAX_JSON_DEPTH)
        throw invalid(`the body nests deeper than ${MAX_JSON_DEPTH} levels`);
      stack.push(c === 0x7b ? undefined : null);
      expectKey = c === 0x7b;
    } else if (c === 0x7d /* } */ || c === 0x5d /* ] */) {
      stack.pop();
      expectKey = false;
    } else if (c === 0x2c /* , */) {
      expectKey = stack.length > 0 && stack[stack.length - 1] !== null;
    }
  }
}

const duplicate = (key: string): HttpError =>
  invalid(`the body names the key '${key.length > 64 ? `${key.slice(0, 64)}…` : key}' twice in one object`);
