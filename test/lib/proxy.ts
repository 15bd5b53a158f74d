/**
 * A TCP proxy for one directed link, for tests that cut nodes off from each other on loopback
 * (where addresses cannot tell processes apart). Owns its listening socket and the connections
 * through it; must never forward a byte while the link is down.
 *
 * Down means a partition: existing connections are reset, and new ones are accepted but nothing
 * is forwarded (a blackhole: the peer's connect succeeds, its requests hang) until the link
 * comes back up, when they are reset so the peer reconnects.
 */
import * as net from "node:net";

export class LinkProxy {
  private up = true;
  private readonly live = new Set<net.Socket>();
  private readonly held = new Set<net.Socket>();

  private constructor(
    private readonly server: net.Server,
    readonly port: number,
  ) {}

  /**
   * Listens on loopback and forwards to `target` (host:port). `listenPort` 0 takes any free port —
   * which may be one just freed for a node that has not bound it yet, so callers that start nodes
   * on 127.0.0.1 pass ports reserved together with the nodes' (freePorts(n) returns distinct ones).
   */
  static async start(targetHost: string, targetPort: number, listenPort = 0): Promise<LinkProxy> {
    let proxy: LinkProxy | null = null;
    const server = net.createServer((client) => proxy!.accept(client, targetHost, targetPort));
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(listenPort, "127.0.0.1", () => resolve());
    });
    proxy = new LinkProxy(server, (server.address() as net.AddressInfo).port);
    return proxy;
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  private accept(client: net.Socket, host: string, port: number): void {
    client.on("error", () => {});
    if (!this.up) {
      this.held.add(client);
      client.on("data", () => {}); // swallowed
      client.on("close", () => this.held.delete(client));
      return;
    }
    const upstream = net.connect(port, host);
    upstream.on("error", () => client.destroy());
    client.on("error", () => upstream.destroy());
    client.on("close", () => upstream.destroy());
    upstream.on("close", () => client.destroy());
    client.pipe(upstream);
    upstream.pipe(client);
    this.live.add(client);
    this.live.add(upstream);
    client.on("close", () => this.live.delete(client));
    upstream.on("close", () => this.live.delete(upstream));
  }

  /** Cuts the link. */
  down(): void {
    this.up = false;
    for (const s of this.live) s.destroy();
    this.live.clear();
  }

  /** Restores the link. */
  heal(): void {
    this.up = true;
    for (const s of this.held) s.destroy();
    this.held.clear();
  }

  async close(): Promise<void> {
    this.down();
    for (const s of this.held) s.destroy();
    await new Promise<void>((r) => this.server.close(() => r()));
  }
}
