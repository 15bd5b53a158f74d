/**
 * Candidate member addresses from DNS: A/AAAA records at a fixed port, or SRV records (host and
 * port each). Owns the resolver (optionally pointed at `--dns-server`) and turning records into
 * URLs to probe; must never decide membership (bootstrap.ts does) nor hide why a lookup failed.
 */
import { Resolver } from "node:dns/promises";
import { isIP } from "node:net";

/** Resolution that found nothing usable; `reason` says why, for a log line. */
export class DiscoveryLookupError extends Error {}

const EMPTY = new Set(["ENODATA", "ENOTFOUND", "NOTFOUND", "NODATA"]);

function newResolver(server: string | undefined): Resolver {
  // Short: a lookup that hangs would stall discovery; the caller retries with backoff.
  const r = new Resolver({ timeout: 2000, tries: 2 });
  if (server !== undefined) r.setServers([server]);
  return r;
}

const urlOf = (scheme: string, host: string, port: number): string =>
  `${scheme}//${isIP(host) === 6 ? `[${host}]` : host}:${port}`;

async function addresses(r: Resolver, name: string): Promise<string[]> {
  const [v4, v6] = await Promise.allSettled([r.resolve4(name), r.resolve6(name)]);
  const out: string[] = [];
  const errors: string[] = [];
  for (const res of [v4, v6]) {
    if (res.status === "fulfilled") out.push(...res.value);
    else {
      const code = (res.reason as NodeJS.ErrnoException).code ?? "";
      if (!EMPTY.has(code)) errors.push(`${code || (res.reason as Error).message}`);
    }
  }
  if (out.length === 0)
    throw new DiscoveryLookupError(
      errors.length > 0 ? `${name}: ${[...new Set(errors)].join(", ")}` : `${name} has no A or AAAA records`,
    );
  return out;
}

/**
 * The URLs (`scheme//address:port`) that `name`'s A and AAAA records point at, sorted. `scheme`
 * is `http:` or `https:`, as this node's own URL.
 */
export async function resolveAddressRecords(
  name: string,
  port: number,
  scheme: string,
  server?: string,
): Promise<string[]> {
  const ips = await addresses(newResolver(server), name);
  return [...new Set(ips.map((ip) => urlOf(scheme, ip, port)))].sort();
}

/**
 * The URLs the SRV records of `record` point at: each target's addresses (resolved through the
 * same server, so a private zone works) at the record's port, sorted.
 */
export async function resolveSrvRecords(record: string, scheme: string, server?: string): Promise<string[]> {
  const r = newResolver(server);
  let srv: { name: string; port: number }[];
  try {
    srv = await r.resolveSrv(record);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code ?? "";
    throw new DiscoveryLookupError(
      EMPTY.has(code) ? `${record} has no SRV records` : `${record}: ${code || (e as Error).message}`,
    );
  }
  if (srv.length === 0) throw new DiscoveryLookupError(`${record} has no SRV records`);
  const out = new Set<string>();
  const missing: string[] = [];
  for (const s of srv) {
    const target = s.name.replace(/\.$/, "");
    if (isIP(target)) {
      out.add(urlOf(scheme, target, s.port));
      continue;
    }
    try {
      for (const ip of await addresses(r, target)) out.add(urlOf(scheme, ip, s.port));
    } catch (e) {
      missing.push((e as Error).message);
    }
  }
  if (out.size === 0)
    throw new DiscoveryLookupError(`${record}: no SRV target resolves (${missing.join("; ")})`);
  return [...out].sort();
}
