/**
 * Command-line flags with environment fallbacks: `--data-dir X`, `--data-dir=X`, or BALLOT_DATA_DIR.
 * Owns parsing and the one-line usage errors; must never run anything.
 */

export class UsageError extends Error {
  readonly code = "BALLOT_ERR_USAGE";
}

export interface FlagSpec {
  /** Flags that take a value. */
  readonly values: readonly string[];
  /** Flags that are on or off. */
  readonly booleans?: readonly string[];
}

export interface Parsed {
  readonly flags: Map<string, string>;
  readonly positional: string[];
  /** Everything after a lone `--`. */
  readonly rest: string[];
}

export function envName(flag: string): string {
  return `BALLOT_${flag.replace(/-/g, "_").toUpperCase()}`;
}

export function parseFlags(
  argv: readonly string[],
  spec: FlagSpec,
  env: NodeJS.ProcessEnv = process.env,
): Parsed {
  const flags = new Map<string, string>();
  const positional: string[] = [];
  const booleans = spec.booleans ?? [];
  let rest: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === "--") {
      rest = argv.slice(i + 1);
      break;
    }
    if (!a.startsWith("--")) {
      positional.push(a);
      continue;
    }
    const eq = a.indexOf("=");
    const name = a.slice(2, eq < 0 ? undefined : eq);
    if (booleans.includes(name)) {
      if (eq >= 0) throw new UsageError(`--${name} takes no value`);
      flags.set(name, "true");
      continue;
    }
    if (!spec.values.includes(name)) throw new UsageError(`unknown flag --${name}`);
    const value = eq >= 0 ? a.slice(eq + 1) : argv[++i];
    if (value === undefined || (eq < 0 && value.startsWith("--")))
      throw new UsageError(`--${name} needs a value`);
    flags.set(name, value);
  }
  for (const name of [...spec.values, ...booleans]) {
    if (flags.has(name)) continue;
    const v = env[envName(name)];
    if (v !== undefined && v !== "")
      flags.set(name, booleans.includes(name) ? String(v !== "0" && v !== "false") : v);
  }
  return { flags, positional, rest };
}

export function intFlag(p: Parsed, name: string, def: number, lo: number, hi: number): number {
  const v = p.flags.get(name);
  if (v === undefined) return def;
  const n = Number(v);
  if (!/^\d+$/.test(v) || n < lo || n > hi)
    throw new UsageError(`--${name} must be an integer from ${lo} to ${hi} (got '${v}')`);
  return n;
}

/** `n1=http://a:2379,n2=http://b:2379` → ordered map. */
export function parseMembers(text: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const part of text
    .split(",")
    .map((s) => s.trim())
    .filter(Boolean)) {
    const eq = part.indexOf("=");
    if (eq <= 0) throw new UsageError(`--members: '${part}' is not id=URL`);
    const id = part.slice(0, eq);
    const url = part.slice(eq + 1);
    if (out.has(id)) throw new UsageError(`--members: '${id}' appears twice`);
    try {
      const u = new URL(url);
      if (u.protocol !== "http:" && u.protocol !== "https:") throw new Error();
    } catch {
      throw new UsageError(`--members: '${url}' (for ${id}) is not an http URL`);
    }
    out.set(id, url);
  }
  if (out.size === 0) throw new UsageError("--members is empty");
  return out;
}
