/**
 * Registration of members on an existing etcd, for `--discovery etcd:URL/PREFIX`: each node puts
 * `PREFIX/members/<id>` = `{"id","url"}` under a lease it keeps alive, so a dead node's entry goes
 * away by itself, and lists the prefix to find the others. Speaks etcd's v3 JSON gateway with
 * fetch (no gRPC client in `ballot start`). Owns the lease and its keepalive; must never write
 * outside its prefix nor treat a malformed entry as a member.
 */
import type { NodeLogger } from "../node/raft-node.js";

const b64 = (s: string): string => Buffer.from(s, "utf8").toString("base64");
const unb64 = (s: string): string => Buffer.from(s, "base64").toString("utf8");

/** The key just past every key that starts with `prefix` (etcd's range_end for a prefix). */
function prefixEnd(prefix: string): string {
  const b = Buffer.from(prefix, "utf8");
  for (let i = b.length - 1; i >= 0; i--) {
    if (b[i]! < 0xff) {
      b[i]!++;
      return b.subarray(0, i + 1).toString("base64");
    }
  }
  return b64("\0");
}

export class EtcdRegistry {
  private lease: string | null = null;
  private timer: NodeJS.Timeout | null = null;
  private failing = false;
  private readonly dir: string;

  constructor(
    private readonly endpoint: string,
    prefix: string,
    private readonly log: NodeLogger,
    private readonly fetchImpl: typeof fetch = fetch,
    private readonly ttlSeconds = 10,
  ) {
    this.dir = `${prefix}/members/`;
  }

  private async call(path: string, body: unknown): Promise<Record<string, unknown>> {
    const r = await this.fetchImpl(`${this.endpoint}${path}`, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(body),
      signal: AbortSignal.timeout(3000),
    });
    const text = await r.text();
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch {
      throw new Error(`etcd at ${this.endpoint} answered ${path} with ${r.status} and no JSON`);
    }
    if (r.status !== 200 || typeof json !== "object" || json === null)
      throw new Error(`etcd at ${this.endpoint} answered ${path} with ${r.status}: ${text.slice(0, 200)}`);
    return json as Record<string, unknown>;
  }

  /** Registers (or re-registers) this node and keeps its lease alive until stop(). */
  async register(id: string, url: string): Promise<void> {
    const grant = await this.call("/v3/lease/grant", { TTL: this.ttlSeconds });
    if (typeof grant.ID !== "string" && typeof grant.ID !== "number")
      throw new Error(`etcd at ${this.endpoint} granted no lease`);
    this.lease = String(grant.ID);
    await this.call("/v3/kv/put", {
      key: b64(`${this.dir}${id}`),
      value: b64(JSON.stringify({ id, url })),
      lease: this.lease,
    });
    if (this.timer) clearInterval(this.timer);
    this.timer = setInterval(() => void this.keepAlive(id, url), (this.ttlSeconds * 1000) / 3);
    this.timer.unref();
  }

  private async keepAlive(id: string, url: string): Promise<void> {
    try {
      const r = await this.call("/v3/lease/keepalive", { ID: this.lease });
      const ttl = (r.result as { TTL?: unknown } | undefined)?.TTL;
      // No TTL: the lease expired (etcd was away longer than it): register afresh.
      if (ttl === undefined || Number(ttl) <= 0) await this.register(id, url);
      if (this.failing) this.log.info(`discovery: registration on etcd at ${this.endpoint} renewed again`);
      this.failing = false;
    } catch (e) {
      if (!this.failing)
        this.log.warn(
          `discovery: cannot renew this node's registration on etcd (${(e as Error).message}); retrying`,
        );
      this.failing = true;
    }
  }

  /** The URLs registered under the prefix, sorted; entries that are not `{"id","url"}` are skipped. */
  async list(): Promise<string[]> {
    const r = await this.call("/v3/kv/range", { key: b64(this.dir), range_end: prefixEnd(this.dir) });
    const out = new Set<string>();
    for (const kv of (Array.isArray(r.kvs) ? r.kvs : []) as { value?: unknown }[]) {
      if (typeof kv.value !== "string") continue;
      try {
        const m = JSON.parse(unb64(kv.value)) as { id?: unknown; url?: unknown };
        if (typeof m.id === "string" && typeof m.url === "string" && /^https?:\/\//.test(m.url)) {
          out.add(new URL(m.url).origin);
        }
      } catch {
        // Not ours, or damaged: not a member.
      }
    }
    return [...out].sort();
  }

  /** Stops renewing and removes the registration (best effort: the lease would expire anyway). */
  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    if (this.lease === null) return;
    const lease = this.lease;
    this.lease = null;
    await this.call("/v3/lease/revoke", { ID: lease }).catch(() => {});
  }
}
