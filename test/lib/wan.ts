/**
 * WAN emulation in userspace, for tests and benchmarks on a kernel without netem: a TCP proxy for
 * one directed link that delays every byte by a one-way latency with jitter, and can stall (hold
 * everything for a while, then release it in order) or go down (a partition). Owns its listening
 * socket and every connection through it; must never reorder bytes within a connection, and never
 * forward a byte while the link is down.
 *
 * Ballot peer traffic fits a proxy per directed link: a node sends only on the stream it opened to
 * a peer, so the proxy for from→to carries exactly the from→to messages. The same one-way delay is
 * applied to both directions of every connection through the proxy (the upgrade handshake's answer,
 * or an HTTP response to a client), so one request/response through one proxy costs 2 × one-way.
 *
 * Delay: each chunk read from a socket is written to the other side at
 * max(now + latency × (1 ± jitter), the previous chunk's time, the end of a stall), so jitter
 * delays but never reorders TCP data. Randomness comes from a seed (deterministic sequence).
 * Not modelled: bandwidth, loss with retransmission, and the connect handshake's round trip (a
 * connection to the proxy is accepted at once; only its bytes are delayed).
 */
import * as net from "node:net";
import { performance } from "node:perf_hooks";

/** The core's seeded generator (mulberry32): the same seed gives the same sequence. */
import { seededRandom } from "../../src/raft/random.js";

export { seededRandom };

/** A 32-bit hash of a string (FNV-1a), to derive one link's seed from a run's seed and its name. */
export function hashString(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

export interface WanLatency {
  /** One-way latency in ms. */
  readonly oneWayMs: number;
  /** Jitter as ± a percentage of the one-way latency, uniform. Default 0. */
  readonly jitterPct?: number;
  /** Jitter as ± ms, uniform, on top of `jitterPct`. Default 0. */
  readonly jitterMs?: number;
}

export interface WanLinkOptions extends WanLatency {
  /** Seed of this link's jitter. Default 1. */
  readonly seed?: number;
  /** Port to listen on (127.0.0.1); 0 takes any free port. See LinkProxy.start on reserving ports. */
  readonly listenPort?: number;
  /** A name for messages. */
  readonly name?: string;
}

/** Bytes queued in one direction before the sending socket is paused (back-pressure). */
const HIGH_WATER_BYTES = 4 * 1024 * 1024;
const END = Symbol("end");

/** One direction of one connection: a FIFO of chunks, each with the time it may leave. */
class DelayLine {
  private readonly queue: { at: number; chunk: Buffer | typeof END }[] = [];
  private head = 0;
  private lastAtMs = 0;
  private timer: NodeJS.Timeout | null = null;
  private timerAtMs = Number.POSITIVE_INFINITY;
  private queuedBytes = 0;
  private paused = false;

  constructor(
    private readonly link: WanLink,
    private readonly from: net.Socket,
    private readonly to: net.Socket,
  ) {
    from.on("data", (chunk: Buffer) => this.push(chunk));
    from.on("end", () => this.push(END));
  }

  private push(chunk: Buffer | typeof END): void {
    const atMs = Math.max(performance.now() + this.link.sampleDelayMs(), this.lastAtMs);
    this.lastAtMs = atMs;
    this.queue.push({ at: atMs, chunk });
    if (chunk !== END) {
      this.queuedBytes += chunk.byteLength;
      if (this.queuedBytes > HIGH_WATER_BYTES && !this.paused) {
        this.paused = true;
        this.from.pause();
      }
    }
    this.schedule();
  }

  /** Arms the timer for the head of the queue (or the end of a stall). */
  schedule(): void {
    if (this.head >= this.queue.length) return;
    const dueMs = Math.max(this.queue[this.head]!.at, this.link.stalledUntilMs);
    if (this.timer && dueMs >= this.timerAtMs) return;
    if (this.timer) clearTimeout(this.timer);
    this.timerAtMs = dueMs;
    this.timer = setTimeout(() => this.flush(), Math.max(0, dueMs - performance.now()));
  }

  private flush(): void {
    this.timer = null;
    this.timerAtMs = Number.POSITIVE_INFINITY;
    const now = performance.now();
    if (now >= this.link.stalledUntilMs) {
      // Timers fire up to ~1 ms early or late; release what is due within half a millisecond.
      while (this.head < this.queue.length && this.queue[this.head]!.at <= now + 0.5) {
        const { chunk } = this.queue[this.head++]!;
        if (chunk === END) {
          this.to.end();
          continue;
        }
        this.queuedBytes -= chunk.byteLength;
        if (!this.to.destroyed) this.to.write(chunk);
      }
      if (this.head > 1024 && this.head * 2 > this.queue.length) {
        this.queue.splice(0, this.head);
        this.head = 0;
      }
      if (this.paused && this.queuedBytes < HIGH_WATER_BYTES / 2) {
        this.paused = false;
        this.from.resume();
      }
    }
    this.schedule();
  }

  dispose(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    this.queue.length = 0;
    this.head = 0;
  }
}

export class WanLink {
  private up = true;
  private readonly live = new Set<net.Socket>();
  private readonly held = new Set<net.Socket>();
  private readonly lines = new Set<DelayLine>();
  private latency: Required<WanLatency>;
  private readonly random: () => number;
  /** performance.now() until which nothing leaves (a stall). */
  stalledUntilMs = 0;
  /** Chunks delayed so far (both directions), for sanity checks. */
  chunks = 0;

  private constructor(
    private readonly server: net.Server,
    readonly port: number,
    readonly name: string,
    opts: WanLinkOptions,
  ) {
    this.latency = { oneWayMs: opts.oneWayMs, jitterPct: opts.jitterPct ?? 0, jitterMs: opts.jitterMs ?? 0 };
    this.random = seededRandom(opts.seed ?? 1);
  }

  /** Listens on 127.0.0.1 and forwards to `targetHost:targetPort` with the given latency. */
  static async start(targetHost: string, targetPort: number, opts: WanLinkOptions): Promise<WanLink> {
    if (!(opts.oneWayMs >= 0)) throw new RangeError(`oneWayMs must be ≥ 0, got ${opts.oneWayMs}`);
    let link: WanLink | null = null;
    const server = net.createServer({ allowHalfOpen: true }, (client) =>
      link!.accept(client, targetHost, targetPort),
    );
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(opts.listenPort ?? 0, "127.0.0.1", () => resolve());
    });
    const port = (server.address() as net.AddressInfo).port;
    link = new WanLink(server, port, opts.name ?? `→${targetHost}:${targetPort}`, opts);
    return link;
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  get oneWayMs(): number {
    return this.latency.oneWayMs;
  }

  /** Changes latency and jitter for bytes read from now on (queued bytes keep their times). */
  setLatency(l: WanLatency): void {
    if (!(l.oneWayMs >= 0)) throw new RangeError(`oneWayMs must be ≥ 0, got ${l.oneWayMs}`);
    this.latency = { oneWayMs: l.oneWayMs, jitterPct: l.jitterPct ?? 0, jitterMs: l.jitterMs ?? 0 };
  }

  setJitter(jitterPct: number, jitterMs = 0): void {
    this.latency = { ...this.latency, jitterPct, jitterMs };
  }

  /** One sample of this link's one-way delay. */
  sampleDelayMs(): number {
    this.chunks++;
    const { oneWayMs, jitterPct, jitterMs } = this.latency;
    if (jitterPct === 0 && jitterMs === 0) return oneWayMs;
    const u1 = this.random() * 2 - 1;
    const u2 = this.random() * 2 - 1;
    return Math.max(0, oneWayMs * (1 + (u1 * jitterPct) / 100) + u2 * jitterMs);
  }

  /** Holds every byte on this link (both directions, every connection) for `ms`, then releases them in order. */
  stall(ms: number): void {
    this.stalledUntilMs = Math.max(this.stalledUntilMs, performance.now() + ms);
    for (const l of this.lines) l.schedule();
  }

  private accept(client: net.Socket, host: string, port: number): void {
    client.on("error", () => {});
    if (!this.up) {
      // A blackhole: the connect succeeded, nothing goes through until heal() resets it.
      this.held.add(client);
      client.on("data", () => {});
      client.on("close", () => this.held.delete(client));
      return;
    }
    const upstream = net.connect({ host, port, allowHalfOpen: true });
    upstream.setNoDelay(true);
    client.setNoDelay(true);
    upstream.on("error", () => client.destroy());
    client.on("error", () => upstream.destroy());
    const out = new DelayLine(this, client, upstream);
    const back = new DelayLine(this, upstream, client);
    this.lines.add(out);
    this.lines.add(back);
    const closed = () => {
      // A reset on either side resets the other at once (what queued is lost, as on a real cut).
      if (client.destroyed && upstream.destroyed) {
        out.dispose();
        back.dispose();
        this.lines.delete(out);
        this.lines.delete(back);
      }
    };
    client.on("close", (hadError) => {
      this.live.delete(client);
      if (hadError) upstream.destroy();
      else if (upstream.writableEnded || upstream.destroyed) upstream.destroy();
      closed();
    });
    upstream.on("close", (hadError) => {
      this.live.delete(upstream);
      if (hadError) client.destroy();
      else if (client.writableEnded || client.destroyed) client.destroy();
      closed();
    });
    this.live.add(client);
    this.live.add(upstream);
  }

  get isUp(): boolean {
    return this.up;
  }

  /** Cuts the link: connections through it are reset, new ones are held and get nothing. */
  down(): void {
    this.up = false;
    for (const s of this.live) s.destroy();
    this.live.clear();
  }

  /** Restores the link: held connections are reset so their owners reconnect. */
  heal(): void {
    this.up = true;
    for (const s of this.held) s.destroy();
    this.held.clear();
  }

  async close(): Promise<void> {
    this.down();
    for (const s of this.held) s.destroy();
    this.held.clear();
    for (const l of this.lines) l.dispose();
    this.lines.clear();
    await new Promise<void>((r) => this.server.close(() => r()));
  }
}
