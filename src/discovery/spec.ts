/**
 * What `--discovery` names: DNS A/AAAA records, DNS SRV records, or a key prefix on an existing
 * etcd. Owns the parsing and checking of that flag (and of `--dns-server`); must never resolve,
 * connect or guess a default the user did not give.
 */

/** Where the candidate members of a cluster are listed. */
export type DiscoverySpec =
  /** Every A/AAAA address of `name` is a candidate, at the port of `--discovery-port` or of `--listen`. */
  | { readonly kind: "dns"; readonly name: string }
  /** The SRV records of `record` (e.g. `_ballot._tcp.example.internal`): host and port each. */
  | { readonly kind: "srv"; readonly domain: string; readonly record: string }
  /** Members register under `prefix` on etcd's v3 JSON gateway at `endpoint`, with a lease. */
  | { readonly kind: "etcd"; readonly endpoint: string; readonly prefix: string };

const LABEL = /^(?!-)[A-Za-z0-9_-]{1,63}(?<!-)$/;

function checkDomain(name: string, flag: string): string {
  const n = name.endsWith(".") ? name.slice(0, -1) : name;
  if (n.length === 0 || n.length > 253 || !n.split(".").every((l) => LABEL.test(l)))
    throw new RangeError(`${flag}: '${name}' is not a DNS name`);
  return n;
}

/**
 * Parses `--discovery` (`dns:NAME`, `dns+srv:DOMAIN`, `etcd:URL/PREFIX`). `srvName` is
 * `--discovery-srv-name`: `_ballot-<srvName>._tcp.DOMAIN` instead of `_ballot._tcp.DOMAIN`, so several
 * clusters can share one domain (as etcd's `--discovery-srv-name` does).
 */
export function parseDiscovery(text: string, srvName?: string): DiscoverySpec {
  const colon = text.indexOf(":");
  const scheme = colon < 0 ? "" : text.slice(0, colon);
  const rest = colon < 0 ? "" : text.slice(colon + 1);
  if (srvName !== undefined && scheme !== "dns+srv")
    throw new RangeError("--discovery-srv-name only applies to --discovery dns+srv:DOMAIN");
  switch (scheme) {
    case "dns":
      return { kind: "dns", name: checkDomain(rest, "--discovery dns:") };
    case "dns+srv": {
      const domain = checkDomain(rest, "--discovery dns+srv:");
      if (srvName !== undefined && !LABEL.test(srvName))
        throw new RangeError(`--discovery-srv-name: '${srvName}' is not a DNS label`);
      const service = srvName === undefined ? "_ballot" : `_ballot-${srvName}`;
      return { kind: "srv", domain, record: `${service}._tcp.${domain}` };
    }
    case "etcd": {
      let u: URL;
      try {
        u = new URL(rest);
      } catch {
        throw new RangeError(
          `--discovery etcd: '${rest}' is not a URL like http://10.0.0.1:2379/ballot/prod`,
        );
      }
      if (u.protocol !== "http:" && u.protocol !== "https:")
        throw new RangeError("--discovery etcd: the URL must be http:// or https://");
      if (u.search !== "" || u.hash !== "" || u.username !== "" || u.password !== "")
        throw new RangeError("--discovery etcd: the URL takes no query, fragment or credentials");
      // The path as typed: URL would resolve `a/../b` to `/b`, a prefix nobody asked for.
      const typed = /^[a-z]+:\/\/[^/?#]*(\/[^?#]*)?$/i.exec(rest)?.[1] ?? "";
      let prefix: string;
      try {
        prefix = decodeURIComponent(typed).replace(/\/+$/, "");
      } catch {
        throw new RangeError("--discovery etcd: the key prefix has invalid percent-encoding");
      }
      if (prefix === "" || prefix.includes("//") || /(^|\/)\.\.?(\/|$)/.test(prefix))
        throw new RangeError(
          "--discovery etcd: give a key prefix after the address, e.g. http://10.0.0.1:2379/ballot/prod",
        );
      return { kind: "etcd", endpoint: u.origin, prefix };
    }
    default:
      throw new RangeError(
        `--discovery '${text}': use dns:NAME (A/AAAA records), dns+srv:DOMAIN (SRV records) or etcd:URL/PREFIX`,
      );
  }
}

/** Parses `--dns-server HOST:PORT` (IPv6 as `[::1]:53`) into what `dns.Resolver#setServers` takes. */
export function parseDnsServer(text: string): string {
  const m = /^(?:\[([0-9A-Fa-f:.]+)\]|([0-9.]+)):([0-9]{1,5})$/.exec(text);
  const port = m ? Number(m[3]) : 0;
  if (!m || port < 1 || port > 65535)
    throw new RangeError(
      `--dns-server '${text}' must be an IP address and port, like 10.0.0.2:53 or [::1]:53`,
    );
  return m[1] !== undefined ? `[${m[1]}]:${port}` : `${m[2]}:${port}`;
}

/** How `--discovery` is described in logs. */
export function describeDiscovery(s: DiscoverySpec): string {
  switch (s.kind) {
    case "dns":
      return `DNS A/AAAA records of ${s.name}`;
    case "srv":
      return `DNS SRV records of ${s.record}`;
    case "etcd":
      return `etcd at ${s.endpoint} under ${s.prefix}/`;
  }
}
