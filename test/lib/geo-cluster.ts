/**
 * A cluster of real `ballot start` processes on loopback laid out in regions, for geo tests and
 * benchmarks: every directed peer link goes through a WanLink with the one-way latency of its two
 * regions, every node is given its own view of its peers (`--members` naming the proxies it dials),
 * and its timing flags come from the largest RTT of the map (the table in docs/geo.md). Clients
 * get an entry point per (client region, node) with the latency between the two regions, so a
 * test can be "a client in region B talking to n2". Owns its processes (killed by PID), proxies and
 * data dir; must never touch anything else, and stops all of it in stop() even after a failure.
 *
 *   const g = await GeoCluster.start({
 *     regions: { A: ["n1"], B: ["n2"], C: ["n3"] },
 *     rttMs: { "A-B": 70, "A-C": 150, "B-C": 220 },
 *   });
 *   await call(`${g.clientUrl("B", "n2")}/v1/kv/x?consistency=local`);
 *   g.cutRegion("A"); ...; g.healRegion("A");
 *   await g.stop();
 *
 * The status helpers (waitForLeader, status, metrics) talk to the nodes directly, without delay:
 * they are the test's view from outside the emulated network.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { CLI, call, freePorts, sleep } from "../integration/procs.js";
import { hashString, WanLink } from "./wan.js";

/** Heartbeat and election timeout by the RTT between the farthest members; docs/geo.md shows the same table. */
export const TIMING_BY_RTT: readonly {
  readonly rttMs: number;
  readonly heartbeatMs: number;
  readonly electionTimeoutMs: number;
}[] = [
  { rttMs: 2, heartbeatMs: 100, electionTimeoutMs: 500 },
  { rttMs: 20, heartbeatMs: 50, electionTimeoutMs: 300 },
  { rttMs: 70, heartbeatMs: 100, electionTimeoutMs: 1000 },
  { rttMs: 150, heartbeatMs: 200, electionTimeoutMs: 2000 },
  { rttMs: 250, heartbeatMs: 300, electionTimeoutMs: 3000 },
];

export interface Timing {
  readonly heartbeatMs: number;
  readonly electionTimeoutMs: number;
}

/**
 * The timing for a largest RTT: the first row of TIMING_BY_RTT at or above it; beyond the table,
 * a heartbeat of the RTT plus 50 ms rounded up to 100 ms and an election timeout of ten heartbeats.
 */
export function timingFor(maxRttMs: number): Timing {
  const row = TIMING_BY_RTT.find((r) => maxRttMs <= r.rttMs);
  if (row) return { heartbeatMs: row.heartbeatMs, electionTimeoutMs: row.electionTimeoutMs };
  const heartbeatMs = Math.ceil((maxRttMs + 50) / 100) * 100;
  return { heartbeatMs, electionTimeoutMs: 10 * heartbeatMs };
}

/**
 * Failover bound after the leader's region is lost, as docs/geo.md states it. One election round:
 * the survivors' lease on the old leader and a randomized election timeout (at most 2 × the
 * election timeout in all), then a PreVote and a vote round trip among the survivors; after the
 * last round, the new leader's first commit (one more RTT). A split vote (two survivors timing out
 * within about an RTT of each other) spends a term and costs another round: `rounds` is the number
 * of terms the failover took. `slackMs` is for a loaded test machine.
 */
export function failoverBoundMs(timing: Timing, survivorsRttMs: number, slackMs = 1500, rounds = 1): number {
  return rounds * (2 * timing.electionTimeoutMs + 2 * survivorsRttMs) + survivorsRttMs + slackMs;
}

/** What to run on each node: `ballot start` (default), or another program taking the same layout. */
export interface GeoProgram {
  readonly script: string;
  readonly args: (
    id: string,
    view: { members: string; listen: string; dataDir: string; timing: Timing },
  ) => string[];
}

export interface GeoOptions {
  /** Region → member ids, e.g. `{ A: ["n1"], B: ["n2"], C: ["n3"] }`. */
  readonly regions: Readonly<Record<string, readonly string[]>>;
  /** RTT between two regions, keyed "A-B" (either order). Within a region: `intraRegionRttMs`. */
  readonly rttMs: Readonly<Record<string, number>>;
  readonly intraRegionRttMs?: number;
  /** Jitter of every link, ± percent of its one-way latency. Default 0. */
  readonly jitterPct?: number;
  /** Seed of the links' jitter. Default 1. */
  readonly seed?: number;
  /** Timing flags; default timingFor(the largest RTT). */
  readonly timing?: Timing;
  /** Arguments for every node after the layout's. */
  readonly extraArgs?: string[];
  /** Arguments for one node after `extraArgs` (e.g. `--priority`), on every (re)start. */
  readonly nodeArgs?: (id: string) => string[];
  /** Another program than `ballot start` (e.g. examples/leader-only-job in embedded mode). */
  readonly program?: GeoProgram;
  /** Called with every line a node prints. */
  readonly onLine?: (id: string, line: string) => void;
  /** Wait until the nodes agree on a leader before returning. Default true. */
  readonly waitForLeader?: boolean;
}

export class GeoCluster {
  readonly ids: string[];
  readonly regionNames: string[];
  readonly timing: Timing;
  readonly dir = mkdtempSync(join(tmpdir(), "ballot-geo-"));
  readonly procs = new Map<string, ChildProcess>();
  readonly logs = new Map<string, string[]>();
  /** Peer links, keyed "from>to". */
  readonly links = new Map<string, WanLink>();
  /** Client entry points, keyed "region>node". */
  readonly entries = new Map<string, WanLink>();
  private readonly ports = new Map<string, number>();
  private readonly region = new Map<string, string>();
  private readonly cut = new Set<string>();

  private constructor(private readonly opts: GeoOptions) {
    this.regionNames = Object.keys(opts.regions);
    this.ids = this.regionNames.flatMap((r) => [...opts.regions[r]!]);
    if (new Set(this.ids).size !== this.ids.length) throw new Error("a member is in two regions");
    for (const r of this.regionNames) for (const id of opts.regions[r]!) this.region.set(id, r);
    for (const a of this.regionNames)
      for (const b of this.regionNames)
        if (a < b && this.rtt(a, b) === undefined) throw new Error(`no RTT for regions ${a}-${b}`);
    this.timing = opts.timing ?? timingFor(this.maxRttMs);
  }

  static async start(opts: GeoOptions): Promise<GeoCluster> {
    const g = new GeoCluster(opts);
    try {
      await g.setup();
      for (const id of g.ids) g.spawn(id);
      if (opts.waitForLeader ?? true) await g.waitForLeader(10 * g.timing.electionTimeoutMs);
    } catch (e) {
      await g.stop();
      throw e;
    }
    return g;
  }

  private async setup(): Promise<void> {
    const n = this.ids.length;
    // Nodes and proxies all on 127.0.0.1: every port reserved at once, so none takes another's.
    const ports = await freePorts(n + n * (n - 1) + this.regionNames.length * n);
    for (const id of this.ids) this.ports.set(id, ports.shift()!);
    const seed = this.opts.seed ?? 1;
    const jitterPct = this.opts.jitterPct ?? 0;
    const open = (key: string, to: string, oneWayMs: number) =>
      WanLink.start("127.0.0.1", this.ports.get(to)!, {
        oneWayMs,
        jitterPct,
        seed: (seed ^ hashString(key)) >>> 0,
        listenPort: ports.shift()!,
        name: key,
      });
    for (const from of this.ids)
      for (const to of this.ids)
        if (from !== to) {
          const key = `${from}>${to}`;
          this.links.set(key, await open(key, to, this.rtt(this.regionOf(from), this.regionOf(to))! / 2));
        }
    for (const r of this.regionNames)
      for (const id of this.ids) {
        const key = `${r}>${id}`;
        this.entries.set(key, await open(key, id, this.rtt(r, this.regionOf(id))! / 2));
      }
  }

  /** RTT between two regions (intra-region when equal); undefined when the map lacks the pair. */
  rtt(a: string, b: string): number | undefined {
    if (a === b) return this.opts.intraRegionRttMs ?? 0;
    return this.opts.rttMs[`${a}-${b}`] ?? this.opts.rttMs[`${b}-${a}`];
  }

  /** RTT between the regions of two members. */
  rttBetween(x: string, y: string): number {
    return this.rtt(this.regionOf(x), this.regionOf(y))!;
  }

  get maxRttMs(): number {
    return Math.max(0, ...this.ids.flatMap((a) => this.ids.map((b) => this.rttBetween(a, b))));
  }

  regionOf(id: string): string {
    const r = this.region.get(id);
    if (r === undefined) throw new Error(`no member ${id}`);
    return r;
  }

  nodesIn(region: string): string[] {
    return [...(this.opts.regions[region] ?? [])];
  }

  /** The node's own URL (no emulated latency: for the test's own status calls). */
  url(id: string): string {
    return `http://127.0.0.1:${this.ports.get(id)}`;
  }

  /** How a client in `region` reaches node `id`: through the latency between the two regions. */
  clientUrl(region: string, id: string): string {
    return this.entries.get(`${region}>${id}`)!.url;
  }

  /** Node `id`'s view of the members: itself directly, every peer through its link. */
  membersOf(id: string): string {
    return this.ids
      .map((other) => `${other}=${other === id ? this.url(id) : this.links.get(`${id}>${other}`)!.url}`)
      .join(",");
  }

  /** Starts node `id` (again); `more` arguments come last (a repeated flag's last value wins). */
  spawn(id: string, more: string[] = []): ChildProcess {
    const dataDir = join(this.dir, id);
    const members = this.membersOf(id);
    const listen = this.url(id);
    const args = this.opts.program
      ? [
          this.opts.program.script,
          ...this.opts.program.args(id, { members, listen, dataDir, timing: this.timing }),
        ]
      : [
          CLI,
          "start",
          "--id",
          id,
          "--data-dir",
          dataDir,
          "--listen",
          listen,
          "--members",
          members,
          "--heartbeat-interval",
          String(this.timing.heartbeatMs),
          "--election-timeout",
          String(this.timing.electionTimeoutMs),
          "--log-format",
          "pretty",
        ];
    const p = spawn(
      process.execPath,
      [...args, ...(this.opts.extraArgs ?? []), ...(this.opts.nodeArgs?.(id) ?? []), ...more],
      {
        stdio: ["ignore", "pipe", "pipe"],
      },
    );
    const log = this.logs.get(id) ?? [];
    this.logs.set(id, log);
    let partial = "";
    const keep = (d: Buffer) => {
      const parts = (partial + d.toString()).split("\n");
      partial = parts.pop()!;
      for (const line of parts) {
        if (!line) continue;
        log.push(line);
        this.opts.onLine?.(id, line);
      }
      if (log.length > 4000) log.splice(0, log.length - 2000);
    };
    p.stdout!.on("data", keep);
    p.stderr!.on("data", keep);
    this.procs.set(id, p);
    return p;
  }

  isAlive(id: string): boolean {
    const p = this.procs.get(id);
    return p !== undefined && p.exitCode === null && p.signalCode === null;
  }

  alive(): string[] {
    return this.ids.filter((id) => this.isAlive(id));
  }

  /** Sends a signal to one node's process; waits for it to exit for SIGKILL/SIGTERM/SIGINT. */
  async signal(id: string, sig: NodeJS.Signals): Promise<void> {
    const p = this.procs.get(id);
    if (!p || p.exitCode !== null || p.signalCode !== null) return;
    const exited = new Promise((r) => p.once("exit", r));
    p.kill(sig);
    if (sig === "SIGKILL" || sig === "SIGTERM" || sig === "SIGINT") await exited;
  }

  /** Restarts a stopped node on its data dir. */
  async restart(id: string, more: string[] = []): Promise<void> {
    await this.signal(id, "SIGKILL");
    this.spawn(id, more);
  }

  /** SIGKILLs every node of a region (a data centre lost). */
  async stopRegion(region: string): Promise<void> {
    await Promise.all(this.nodesIn(region).map((id) => this.signal(id, "SIGKILL")));
  }

  async restartRegion(region: string): Promise<void> {
    for (const id of this.nodesIn(region)) await this.restart(id);
  }

  /** Every link crossing the region's border: peer links in and out, and clients' entries across it. */
  private borderLinks(region: string): WanLink[] {
    const out: WanLink[] = [];
    for (const [key, l] of this.links) {
      const [from, to] = key.split(">") as [string, string];
      if ((this.regionOf(from) === region) !== (this.regionOf(to) === region)) out.push(l);
    }
    for (const [key, l] of this.entries) {
      const [r, id] = key.split(">") as [string, string];
      if ((r === region) !== (this.regionOf(id) === region)) out.push(l);
    }
    return out;
  }

  /** Cuts the region off (its members still run and talk among themselves and to its clients). */
  cutRegion(region: string): void {
    this.cut.add(region);
    for (const l of this.borderLinks(region)) l.down();
  }

  healRegion(region: string): void {
    this.cut.delete(region);
    const stillCut = [...this.cut].flatMap((r) => this.borderLinks(r));
    for (const l of this.borderLinks(region)) if (!stillCut.includes(l)) l.heal();
  }

  /** Holds every byte crossing the region's border for `ms`, then releases it (a short stall). */
  stallRegion(region: string, ms: number): void {
    for (const l of this.borderLinks(region)) l.stall(ms);
  }

  setJitter(jitterPct: number): void {
    for (const l of [...this.links.values(), ...this.entries.values()]) l.setJitter(jitterPct);
  }

  /** GET /v1/cluster on a node, directly; null when it does not answer. */
  async status(id: string): Promise<any | null> {
    return call(`${this.url(id)}/v1/cluster`).then(
      (r) => (r.status === 200 ? r.body : null),
      () => null,
    );
  }

  /** The node's Prometheus metrics as name{labels} → value. */
  async metrics(id: string): Promise<Map<string, number>> {
    const r = await call(`${this.url(id)}/metrics`);
    const out = new Map<string, number>();
    for (const line of String(r.body).split("\n")) {
      if (!line || line.startsWith("#")) continue;
      const i = line.lastIndexOf(" ");
      out.set(line.slice(0, i), Number(line.slice(i + 1)));
    }
    return out;
  }

  /** Polls until the live nodes outside `exclude` agree on one leader (not excluded); returns its id. */
  async waitForLeader(timeoutMs = 20_000, exclude: string[] = []): Promise<string> {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      const ids = this.alive().filter((id) => !exclude.includes(id));
      const views = await Promise.all(ids.map((id) => this.status(id).then((s) => s?.leader?.id as string)));
      const leader = views[0];
      if (ids.length > 0 && leader && views.every((v) => v === leader) && !exclude.includes(leader))
        return leader;
      await sleep(25);
    }
    throw new Error(`no agreed leader within ${timeoutMs} ms\n${this.tail()}`);
  }

  /** Moves leadership to `id` (POST /v1/cluster/transfer-leader on the leader) and waits until all agree. */
  async moveLeader(id: string, timeoutMs = 20_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      const leader = await this.waitForLeader(Math.max(1000, deadline - Date.now()));
      if (leader === id) return;
      await call(`${this.url(leader)}/v1/cluster/transfer-leader`, "POST", { id }).catch(() => null);
      await sleep(100);
    }
    throw new Error(`leadership did not move to ${id} within ${timeoutMs} ms\n${this.tail()}`);
  }

  tail(n = 15): string {
    return [...this.logs].map(([id, l]) => `--- ${id}\n${l.slice(-n).join("\n")}`).join("\n");
  }

  async stop(): Promise<void> {
    await Promise.all(this.ids.map((id) => this.signal(id, "SIGKILL")));
    for (const l of [...this.links.values(), ...this.entries.values()]) await l.close().catch(() => {});
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** The p-th percentile (0–100) of some numbers, nearest rank. */
export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!;
}

/** One HTTP request (redirects followed when asked) and how long it took, in ms. */
export async function timedCall(
  url: string,
  method = "GET",
  body?: unknown,
  follow = false,
): Promise<{ status: number; body: any; ms: number }> {
  const started = performance.now();
  const r = await call(url, method, body, {}, follow);
  return { status: r.status, body: r.body, ms: performance.now() - started };
}

export interface Ack {
  readonly key: string;
  readonly value: number;
  readonly region: string;
  readonly sentAt: number;
  readonly ackedAt: number;
}

/**
 * One client per region writing unique keys (`prefix/region/seq`) in a loop to a live node of its
 * own region, following 307s to the leader as that node names it. Remembers every acknowledged
 * (200) write, to check that none is lost, and when each was sent and acknowledged. A write that
 * times out counts as not acknowledged (its outcome is unknown; it may still be applied).
 */
export class RegionWriters {
  readonly acks: Ack[] = [];
  private running = true;
  private readonly loops: Promise<void>[];

  constructor(
    private readonly g: GeoCluster,
    readonly prefix: string,
    regions: readonly string[] = g.regionNames,
    private readonly pauseMs = 50,
    /** A client's timeout per write: a request sent into a cut link hangs until it runs out. */
    private readonly timeoutMs = 1000,
  ) {
    this.loops = regions.map((r) => this.loop(r));
  }

  private async loop(region: string): Promise<void> {
    for (let seq = 0; this.running; seq++) {
      const id = this.g.nodesIn(region).find((x) => this.g.isAlive(x));
      if (id === undefined) {
        await sleep(100);
        continue;
      }
      const key = `${this.prefix}/${region}/${String(seq).padStart(6, "0")}`;
      const sentAt = Date.now();
      const ok = await fetch(`${this.g.clientUrl(region, id)}/v1/kv/${key}`, {
        method: "PUT",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ value: seq }),
        redirect: "follow",
        signal: AbortSignal.timeout(this.timeoutMs),
      }).then(
        async (res) => {
          await res.arrayBuffer();
          return res.status === 200;
        },
        () => false,
      );
      if (ok) this.acks.push({ key, value: seq, region, sentAt, ackedAt: Date.now() });
      else await sleep(100);
      await sleep(this.pauseMs);
    }
  }

  /** The first acknowledged write sent at or after `t` (by a client of `regions`, when given). */
  firstAckSentAfter(t: number, regions?: readonly string[]): Ack | undefined {
    return this.acks.find((a) => a.sentAt >= t && (!regions || regions.includes(a.region)));
  }

  async waitAckSentAfter(t: number, timeoutMs: number, regions?: readonly string[]): Promise<Ack> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const a = this.firstAckSentAfter(t, regions);
      if (a) return a;
      if (Date.now() > deadline) throw new Error(`no write acknowledged within ${timeoutMs} ms`);
      await sleep(20);
    }
  }

  async stop(): Promise<void> {
    this.running = false;
    await Promise.all(this.loops);
  }

  /** Asserts-by-return: the acknowledged keys missing or wrong on `url` (read with `consistency`). */
  async lost(url: string, consistency = "linearizable"): Promise<string[]> {
    const r = await call(
      `${url}/v1/kv?prefix=${encodeURIComponent(`${this.prefix}/`)}&limit=10000&consistency=${consistency}`,
    );
    if (r.status !== 200) throw new Error(`range on ${url}: ${r.status} ${JSON.stringify(r.body)}`);
    const have = new Map<string, unknown>(
      (r.body.kvs as { key: string; value: unknown }[]).map((kv) => [kv.key, kv.value]),
    );
    return this.acks.filter((a) => have.get(a.key) !== a.value).map((a) => a.key);
  }
}
