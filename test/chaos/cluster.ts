/**
 * A cluster of chaos-build `ballot start` processes on loopback, each on its own 127.0.0.x
 * address, every peer link through its own LinkProxy so links can be cut one way or both, with
 * the faults the chaos runs inject: SIGKILL and restart, SIGSTOP/SIGCONT, partitions, slow fsync.
 * Owns its processes (killed by PID), proxies and data dirs; must never touch anything else.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { createWriteStream, mkdirSync, type WriteStream } from "node:fs";
import { join } from "node:path";
import { freePorts, sleep } from "../integration/procs.js";
import { LinkProxy } from "../lib/proxy.js";

const NODE = new URL("./node.js", import.meta.url).pathname;

export class ChaosCluster {
  readonly ids: string[];
  private readonly hosts = new Map<string, string>();
  private readonly ports = new Map<string, number>();
  private readonly links = new Map<string, LinkProxy>();
  readonly procs = new Map<string, ChildProcess>();
  private readonly logs = new Map<string, WriteStream>();
  private readonly paused = new Set<string>();
  private readonly slow = new Set<string>();

  private constructor(
    n: number,
    readonly dir: string,
    readonly electionTimeoutMs: number,
    /** More `ballot start` flags for every node (e.g. --follower-read-leases). */
    private readonly extraArgs: readonly string[],
  ) {
    this.ids = Array.from({ length: n }, (_, i) => `n${i + 1}`);
  }

  static async start(opts: {
    nodes: number;
    dir: string;
    electionTimeoutMs?: number;
    extraArgs?: readonly string[];
  }): Promise<ChaosCluster> {
    const c = new ChaosCluster(opts.nodes, opts.dir, opts.electionTimeoutMs ?? 500, opts.extraArgs ?? []);
    mkdirSync(opts.dir, { recursive: true });
    const ports = await freePorts(opts.nodes);
    for (const [i, id] of c.ids.entries()) {
      c.hosts.set(id, `127.0.0.${i + 2}`);
      c.ports.set(id, ports[i]!);
    }
    for (const from of c.ids)
      for (const to of c.ids)
        if (from !== to)
          c.links.set(`${from}>${to}`, await LinkProxy.start(c.hosts.get(to)!, c.ports.get(to)!));
    for (const id of c.ids) c.spawn(id);
    return c;
  }

  url(id: string): string {
    return `http://${this.hosts.get(id)}:${this.ports.get(id)}`;
  }

  get urls(): string[] {
    return this.ids.map((id) => this.url(id));
  }

  spawn(id: string): void {
    const members = this.ids
      .map((other) => `${other}=${other === id ? this.url(id) : this.links.get(`${id}>${other}`)!.url}`)
      .join(",");
    const log = this.logs.get(id) ?? createWriteStream(join(this.dir, `${id}.log`), { flags: "a" });
    this.logs.set(id, log);
    log.write(`--- chaos: starting ${id} at ${new Date().toISOString()}\n`);
    const p = spawn(
      process.execPath,
      [
        NODE,
        "--id",
        id,
        "--data-dir",
        join(this.dir, "data", id),
        "--members",
        members,
        "--election-timeout",
        String(this.electionTimeoutMs),
        "--log-format",
        "pretty",
        ...this.extraArgs,
      ],
      { stdio: ["ignore", "pipe", "pipe"] },
    );
    p.stdout!.pipe(log, { end: false });
    p.stderr!.pipe(log, { end: false });
    this.procs.set(id, p);
    this.paused.delete(id);
    this.slow.delete(id);
  }

  alive(id: string): boolean {
    const p = this.procs.get(id);
    return !!p && p.exitCode === null && p.signalCode === null;
  }

  note(id: string, text: string): void {
    this.logs.get(id)?.write(`--- chaos: ${text} at ${new Date().toISOString()}\n`);
  }

  async kill(id: string): Promise<void> {
    const p = this.procs.get(id);
    if (!p || !this.alive(id)) return;
    this.note(id, "SIGKILL");
    const exited = new Promise((r) => p.once("exit", r));
    p.kill("SIGKILL");
    await exited;
    this.paused.delete(id);
  }

  pause(id: string): void {
    if (!this.alive(id)) return;
    this.note(id, "SIGSTOP");
    this.procs.get(id)!.kill("SIGSTOP");
    this.paused.add(id);
  }

  resume(id: string): void {
    if (!this.paused.delete(id) || !this.alive(id)) return;
    this.note(id, "SIGCONT");
    this.procs.get(id)!.kill("SIGCONT");
  }

  /** Toggles the slow fsync of a node's chaos build. */
  toggleSlowDisk(id: string): void {
    if (!this.alive(id)) return;
    if (this.slow.has(id)) this.slow.delete(id);
    else this.slow.add(id);
    this.procs.get(id)!.kill("SIGUSR2");
  }

  /** Cuts the directed link from → to (messages from `from` stop reaching `to`). */
  cutOneWay(from: string, to: string): void {
    this.links.get(`${from}>${to}`)!.down();
  }

  /** Cuts every link between the groups (both ways). */
  partition(groups: string[][]): void {
    for (const [gi, g] of groups.entries())
      for (const [hi, h] of groups.entries()) {
        if (gi === hi) continue;
        for (const a of g) for (const b of h) this.links.get(`${a}>${b}`)!.down();
      }
  }

  healNetwork(): void {
    for (const l of this.links.values()) l.heal();
  }

  /** Undoes every fault: links, pauses, slow disks, dead nodes. */
  async healAll(): Promise<void> {
    this.healNetwork();
    for (const id of [...this.paused]) this.resume(id);
    for (const id of [...this.slow]) this.toggleSlowDisk(id);
    for (const id of this.ids) if (!this.alive(id)) this.spawn(id);
  }

  /** The leader the live nodes agree on, or null. */
  async leader(timeoutMs = 1000): Promise<string | null> {
    const views = await Promise.all(
      this.ids
        .filter((id) => this.alive(id) && !this.paused.has(id))
        .map((id) =>
          fetch(`${this.url(id)}/v1/cluster`, { signal: AbortSignal.timeout(timeoutMs) })
            .then((r) => r.json() as Promise<{ leader: { id: string } | null }>)
            .then((b) => b.leader?.id ?? null)
            .catch(() => null),
        ),
    );
    const counts = new Map<string, number>();
    for (const v of views) if (v) counts.set(v, (counts.get(v) ?? 0) + 1);
    let best: string | null = null;
    for (const [id, n] of counts) if (n > this.ids.length / 2 && this.alive(id)) best = id;
    return best;
  }

  async waitForLeader(timeoutMs = 20_000): Promise<string> {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      const l = await this.leader();
      if (l) return l;
      await sleep(50);
    }
    throw new Error(`no leader within ${timeoutMs} ms (logs in ${this.dir})`);
  }

  async stop(): Promise<void> {
    for (const id of this.ids) {
      this.resume(id);
      await this.kill(id);
    }
    for (const l of this.links.values()) await l.close().catch(() => {});
    for (const log of this.logs.values()) log.end();
  }
}
