/**
 * Real `ballot start` processes on loopback for integration tests: free ports, temporary data
 * dirs, kill/restart by PID, and an HTTP helper. Owns the processes it starts and always stops
 * them (and only them); must never touch anything it did not create.
 */
import { type ChildProcess, execFile, spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";

export const CLI = new URL("../../src/cli/main.js", import.meta.url).pathname;

export async function freePorts(n: number): Promise<number[]> {
  const servers = await Promise.all(
    Array.from(
      { length: n },
      () =>
        new Promise<import("node:net").Server>((resolve) => {
          const s = createServer();
          s.listen(0, "127.0.0.1", () => resolve(s));
        }),
    ),
  );
  const ports = servers.map((s) => (s.address() as import("node:net").AddressInfo).port);
  await Promise.all(servers.map((s) => new Promise((r) => s.close(r))));
  return ports;
}

export interface HttpResult {
  status: number;
  headers: Headers;
  body: any;
}

/** One HTTP request; redirects are not followed unless asked. */
export async function call(
  url: string,
  method = "GET",
  body?: unknown,
  headers: Record<string, string> = {},
  follow = false,
  fetchFn: typeof fetch = fetch,
): Promise<HttpResult> {
  const res = await fetchFn(url, {
    method,
    headers: body === undefined ? headers : { "Content-Type": "application/json", ...headers },
    body: body === undefined ? undefined : typeof body === "string" ? body : JSON.stringify(body),
    redirect: follow ? "follow" : "manual",
    signal: AbortSignal.timeout(10_000),
  });
  const text = await res.text();
  let parsed: unknown = text;
  try {
    parsed = JSON.parse(text);
  } catch {
    // keep text
  }
  return { status: res.status, headers: res.headers, body: parsed };
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const runFile = promisify(execFile);

/** Runs `ballot ARGS...` (this build's CLI) to completion: its exit code and output. */
export async function cli(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const r = await runFile(process.execPath, [CLI, ...args], { timeout: 60_000 });
    return { code: 0, stdout: r.stdout, stderr: r.stderr };
  } catch (e) {
    const x = e as { code: number; stdout: string; stderr: string };
    return { code: x.code, stdout: x.stdout, stderr: x.stderr };
  }
}

export interface ClusterOptions {
  readonly nodes?: number;
  readonly extraArgs?: string[];
  readonly electionTimeoutMs?: number;
  /** Headers for the cluster's own status calls (e.g. a bearer token). */
  readonly headers?: Record<string, string>;
  /** Runs before any node starts, e.g. to seed the data dirs (`<dir>/<id>`). */
  readonly before?: (c: ProcCluster) => Promise<void>;
  /** https:// URLs; the nodes' TLS flags come from `nodeArgs`. */
  readonly https?: boolean;
  /** Arguments for one node after `extraArgs` (e.g. its own certificate). */
  readonly nodeArgs?: (id: string) => string[];
  /** The fetch for the cluster's own status calls (e.g. one that trusts a test CA). */
  readonly fetch?: typeof fetch;
  /** The script run as `node <cli> start ...` (benchmarks compare another build). Default: this build's CLI. */
  readonly cli?: string;
}

export class ProcCluster {
  readonly ids: string[];
  readonly urls = new Map<string, string>();
  readonly dir: string;
  readonly procs = new Map<string, ChildProcess>();
  readonly logs = new Map<string, string[]>();
  readonly electionTimeoutMs: number;
  private readonly extraArgs: string[];
  private readonly headers: Record<string, string>;
  private readonly nodeArgs: (id: string) => string[];
  readonly fetch: typeof fetch;
  private readonly cli: string;

  private constructor(ports: number[], opts: ClusterOptions) {
    this.ids = ports.map((_, i) => `n${i + 1}`);
    const scheme = opts.https ? "https" : "http";
    for (const [i, p] of ports.entries()) this.urls.set(this.ids[i]!, `${scheme}://127.0.0.1:${p}`);
    this.dir = mkdtempSync(join(tmpdir(), "ballot-it-"));
    this.electionTimeoutMs = opts.electionTimeoutMs ?? 500;
    this.extraArgs = opts.extraArgs ?? [];
    this.headers = opts.headers ?? {};
    this.nodeArgs = opts.nodeArgs ?? (() => []);
    this.fetch = opts.fetch ?? fetch;
    this.cli = opts.cli ?? CLI;
  }

  static async start(opts: ClusterOptions = {}): Promise<ProcCluster> {
    const c = new ProcCluster(await freePorts(opts.nodes ?? 3), opts);
    await opts.before?.(c);
    for (const id of c.ids) c.spawn(id);
    try {
      await c.waitForLeader();
    } catch (e) {
      // Nobody else holds the cluster yet: stop its processes, or they keep the test alive.
      await c.stop();
      throw e;
    }
    return c;
  }

  get members(): string {
    return this.ids.map((id) => `${id}=${this.urls.get(id)}`).join(",");
  }

  /** Starts node `id`; `more` arguments come last (a repeated flag's last value wins). */
  spawn(id: string, more: string[] = []): ChildProcess {
    return this.launch(id, [
      "--members",
      this.members,
      "--election-timeout",
      String(this.electionTimeoutMs),
      "--log-format",
      "pretty",
      ...this.extraArgs,
      ...this.nodeArgs(id),
      ...more,
    ]);
  }

  /**
   * Starts a brand-new node `id` on `port` that joins the cluster through the members `via`
   * (`--join`, an empty data directory); it becomes one of this cluster's nodes. The cluster's
   * extra arguments are not given: a joiner learns what it needs from the cluster.
   */
  spawnJoiner(id: string, port: number, via: string[], more: string[] = []): ChildProcess {
    const url = `${this.urls.values().next().value!.split("://")[0]}://127.0.0.1:${port}`;
    if (!this.ids.includes(id)) this.ids.push(id);
    this.urls.set(id, url);
    return this.launch(id, [
      "--listen",
      url,
      "--join",
      via.map((v) => this.url(v)).join(","),
      "--election-timeout",
      String(this.electionTimeoutMs),
      "--log-format",
      "pretty",
      ...more,
    ]);
  }

  private launch(id: string, args: string[]): ChildProcess {
    const p = spawn(
      process.execPath,
      [this.cli, "start", "--id", id, "--data-dir", join(this.dir, id), ...args],
      { stdio: ["ignore", "pipe", "pipe"] },
    );
    const log = this.logs.get(id) ?? [];
    this.logs.set(id, log);
    const keep = (d: Buffer) => {
      log.push(...d.toString().split("\n").filter(Boolean));
      if (log.length > 2000) log.splice(0, log.length - 1000);
    };
    p.stdout!.on("data", keep);
    p.stderr!.on("data", keep);
    this.procs.set(id, p);
    return p;
  }

  /** Polls `ok` (a throw counts as not yet) until it holds; fails with the nodes' last log lines. */
  async waitUntil(what: string, ok: () => Promise<boolean>, timeoutMs = 30_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      if (await ok().catch(() => false)) return;
      await sleep(100);
    }
    throw new Error(`timed out waiting until ${what}\n${this.tail(40)}`);
  }

  url(id: string): string {
    return this.urls.get(id)!;
  }

  alive(): string[] {
    return this.ids.filter((id) => {
      const p = this.procs.get(id);
      return p && p.exitCode === null && p.signalCode === null;
    });
  }

  /** Sends a signal to one node's process and waits for it to exit (for SIGKILL/SIGTERM). */
  async signal(id: string, sig: NodeJS.Signals): Promise<void> {
    const p = this.procs.get(id);
    if (!p || p.exitCode !== null || p.signalCode !== null) return;
    const exited = new Promise((r) => p.once("exit", r));
    p.kill(sig);
    if (sig === "SIGKILL" || sig === "SIGTERM" || sig === "SIGINT") await exited;
  }

  /** Polls until the live nodes agree on one leader; returns its id. */
  async waitForLeader(timeoutMs = 10_000, exclude: string[] = []): Promise<string> {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      const views = await Promise.all(
        this.alive()
          .filter((id) => !exclude.includes(id))
          .map((id) =>
            call(`${this.url(id)}/v1/cluster`, "GET", undefined, this.headers, false, this.fetch).then(
              (r) => (r.status === 200 ? (r.body.leader?.id as string | undefined) : undefined),
              () => undefined,
            ),
          ),
      );
      const leader = views[0];
      if (leader && views.every((v) => v === leader) && !exclude.includes(leader)) return leader;
      await sleep(25);
    }
    throw new Error(`no agreed leader within ${timeoutMs} ms\n${this.tail()}`);
  }

  tail(n = 15): string {
    return [...this.logs].map(([id, l]) => `--- ${id}\n${l.slice(-n).join("\n")}`).join("\n");
  }

  async stop(): Promise<void> {
    await Promise.all(this.ids.map((id) => this.signal(id, "SIGKILL")));
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** Reads a server-sent-event stream until `until` says stop (or the timeout); returns the events. */
export async function readEvents(
  url: string,
  until: (events: { id?: string; event: string; data: any }[]) => boolean,
  opts: { headers?: Record<string, string>; timeoutMs?: number } = {},
): Promise<{ status: number; events: { id?: string; event: string; data: any }[]; body?: any }> {
  const ctl = new AbortController();
  const timer = setTimeout(() => ctl.abort(), opts.timeoutMs ?? 10_000);
  const res = await fetch(url, { headers: opts.headers, signal: ctl.signal });
  if (res.status !== 200) {
    clearTimeout(timer);
    return { status: res.status, events: [], body: await res.json() };
  }
  const events: { id?: string; event: string; data: any }[] = [];
  const decoder = new TextDecoder();
  let buf = "";
  try {
    for await (const chunk of res.body!) {
      buf += decoder.decode(chunk as Uint8Array, { stream: true });
      for (let i = buf.indexOf("\n\n"); i >= 0; i = buf.indexOf("\n\n")) {
        const block = buf.slice(0, i);
        buf = buf.slice(i + 2);
        const e: { id?: string; event: string; data: any } = { event: "message", data: undefined };
        let data = "";
        for (const line of block.split("\n")) {
          if (line.startsWith(":")) continue;
          const [field, ...rest] = line.split(": ");
          const v = rest.join(": ");
          if (field === "id") e.id = v;
          else if (field === "event") e.event = v;
          else if (field === "data") data += v;
        }
        if (data === "") continue;
        e.data = JSON.parse(data);
        events.push(e);
        if (until(events)) {
          ctl.abort();
          return { status: 200, events };
        }
      }
    }
  } catch (e) {
    if (!ctl.signal.aborted) throw e;
  } finally {
    clearTimeout(timer);
  }
  return { status: 200, events };
}
