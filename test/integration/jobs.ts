/**
 * Real processes of examples/leader-only-job for failover tests: three instances in one of the
 * example's modes (embedded Ballot nodes, clients of a Ballot cluster, clients of etcd), each
 * link through a LinkProxy so an instance can be cut off, plus the checks every scenario ends
 * with. Owns the processes and proxies it starts, and stops them (by PID) even on failure.
 */
import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { LinkProxy } from "../lib/proxy.js";
import { freePorts, sleep } from "./procs.js";

export const JOB = new URL("../../examples/leader-only-job/job.js", import.meta.url).pathname;

export interface JobLine {
  readonly instance: string;
  readonly at: number;
  readonly event: string;
  readonly fencingToken?: number;
  readonly tick?: number;
  readonly accepted?: boolean;
  /** Partitioned mode: the partition of an elected/tick/stopped line. */
  readonly partition?: number;
  /** Partitioned mode: the users an elected partition handles. */
  readonly users?: string[];
  /** Partitioned mode: what a holding line says this instance holds. */
  readonly partitions?: number[];
}

export type JobMode =
  | { readonly mode: "embedded"; readonly electionTimeoutMs: number; readonly partitions?: number }
  | {
      readonly mode: "client";
      readonly endpoints: string[];
      readonly ttl: number;
      readonly partitions?: number;
    }
  | { readonly mode: "etcd"; readonly endpoint: string; readonly ttl: number };

export class JobInstances {
  readonly ids = ["j1", "j2", "j3"];
  readonly lines: JobLine[] = [];
  readonly stderr = new Map<string, string[]>();
  readonly procs = new Map<string, ChildProcess>();
  /** Links that cut an instance off: every proxy on its paths. */
  private readonly links = new Map<string, LinkProxy[]>();
  private readonly args = new Map<string, string[]>();
  readonly dir = mkdtempSync(join(tmpdir(), "ballot-job-"));
  /** In embedded mode, each instance's own API URL. */
  readonly apiUrls = new Map<string, string>();

  private constructor(readonly mode: JobMode) {}

  static async start(mode: JobMode): Promise<JobInstances> {
    const j = new JobInstances(mode);
    try {
      await j.setup();
    } catch (e) {
      await j.stop();
      throw e;
    }
    for (const id of j.ids) j.spawn(id);
    return j;
  }

  private async setup(): Promise<void> {
    const m = this.mode;
    if (m.mode === "embedded") {
      // Nodes and proxies all on 127.0.0.1: every port reserved at once, so none takes another's.
      const ports = await freePorts(3 + 6);
      const proxyPorts = ports.slice(3);
      const proxies = new Map<string, LinkProxy>();
      for (const [i, from] of this.ids.entries()) {
        for (const [k, to] of this.ids.entries()) {
          if (i === k) continue;
          const p = await LinkProxy.start("127.0.0.1", ports[k]!, proxyPorts.pop()!);
          proxies.set(`${from}>${to}`, p);
        }
      }
      for (const [i, id] of this.ids.entries()) {
        const self = `http://127.0.0.1:${ports[i]}`;
        this.apiUrls.set(id, self);
        const members = this.ids
          .map((other) => `${other}=${other === id ? self : proxies.get(`${id}>${other}`)!.url}`)
          .join(",");
        this.args.set(id, [
          "--mode",
          "embedded",
          "--id",
          id,
          "--data-dir",
          join(this.dir, id),
          "--members",
          members,
          "--election-timeout",
          String(m.electionTimeoutMs),
          ...(m.partitions !== undefined ? ["--partitions", String(m.partitions)] : []),
        ]);
        this.links.set(
          id,
          [...proxies].filter(([k]) => k.startsWith(`${id}>`) || k.endsWith(`>${id}`)).map(([, p]) => p),
        );
      }
      return;
    }
    // Client and etcd modes: one proxy per instance in front of each server endpoint.
    const targets = m.mode === "client" ? m.endpoints : [m.endpoint];
    for (const id of this.ids) {
      const ps: LinkProxy[] = [];
      for (const t of targets) {
        const u = new URL(t);
        ps.push(await LinkProxy.start(u.hostname, Number(u.port)));
      }
      this.links.set(id, ps);
      const urls = ps.map((p) => p.url).join(",");
      this.args.set(id, [
        "--mode",
        m.mode,
        "--id",
        id,
        m.mode === "client" ? "--endpoints" : "--etcd",
        urls,
        "--ttl",
        String(m.ttl),
        ...(m.mode === "client" && m.partitions !== undefined ? ["--partitions", String(m.partitions)] : []),
      ]);
    }
  }

  spawn(id: string): void {
    const p = spawn(process.execPath, [JOB, ...this.args.get(id)!], { stdio: ["ignore", "pipe", "pipe"] });
    let buf = "";
    p.stdout!.on("data", (d: Buffer) => {
      buf += d.toString();
      const parts = buf.split("\n");
      buf = parts.pop()!;
      for (const l of parts) if (l.trim()) this.lines.push(JSON.parse(l) as JobLine);
    });
    const err = this.stderr.get(id) ?? [];
    this.stderr.set(id, err);
    p.stderr!.on("data", (d: Buffer) => {
      err.push(d.toString());
      if (err.length > 200) err.splice(0, 100);
    });
    this.procs.set(id, p);
  }

  async signal(id: string, sig: NodeJS.Signals): Promise<void> {
    const p = this.procs.get(id);
    if (!p || p.exitCode !== null || p.signalCode !== null) return;
    const exited = new Promise((r) => p.once("exit", r));
    p.kill(sig);
    if (sig === "SIGKILL" || sig === "SIGTERM") await exited;
  }

  cut(id: string): void {
    for (const p of this.links.get(id)!) p.down();
  }

  heal(id: string): void {
    for (const p of this.links.get(id)!) p.heal();
  }

  /** The instance whose accepted ticks are the latest, once some instance is ticking. */
  async currentLeader(timeoutMs = 15_000, since = 0): Promise<{ id: string; token: number; at: number }> {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      const last = [...this.lines].reverse().find((l) => l.event === "tick" && l.accepted && l.at >= since);
      if (last) return { id: last.instance, token: last.fencingToken!, at: last.at };
      await sleep(20);
    }
    throw new Error(`no instance ran the job within ${timeoutMs} ms\n${this.tail()}`);
  }

  /** The first accepted tick by an instance other than `old` after `since`. */
  async takeover(old: string, since: number, timeoutMs = 20_000): Promise<JobLine> {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      const l = this.lines.find(
        (x) => x.event === "tick" && x.accepted && x.at >= since && x.instance !== old,
      );
      if (l) return l;
      await sleep(10);
    }
    throw new Error(`no other instance took over within ${timeoutMs} ms\n${this.tail()}`);
  }

  tail(): string {
    return [
      ...this.lines.slice(-15).map((l) => JSON.stringify(l)),
      ...[...this.stderr].map(([id, e]) => `--- ${id} stderr\n${e.join("").slice(-1500)}`),
    ].join("\n");
  }

  /**
   * The guarantees, from the instances' own reports: an instance whose leadership ended never
   * acts with that token after another instance started acting with a higher one, and no token
   * is ever held by two instances.
   */
  checkNoOverlap(): void {
    const owner = new Map<number, string>();
    for (const l of this.lines) {
      if (l.fencingToken === undefined || (l.event !== "tick" && l.event !== "elected")) continue;
      const o = owner.get(l.fencingToken);
      if (o && o !== l.instance) assert.fail(`token ${l.fencingToken} held by ${o} and ${l.instance}`);
      owner.set(l.fencingToken, l.instance);
    }
    const ticks = this.lines.filter((l) => l.event === "tick");
    for (const t of ticks) {
      const later = ticks.find(
        (x) => x.instance !== t.instance && x.fencingToken! > t.fencingToken! && x.at < t.at,
      );
      if (later && t.accepted)
        assert.fail(
          `${t.instance} wrote with token ${t.fencingToken} after ${later.instance} acted with ${later.fencingToken}`,
        );
    }
  }

  async stop(): Promise<void> {
    await Promise.all(this.ids.map((id) => this.signal(id, "SIGKILL")));
    for (const ps of this.links.values()) for (const p of ps) await p.close().catch(() => {});
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** Checks the store's own history of accepted records: tokens never go down, and each belongs to one instance. */
export function checkHistory(records: { instance: string; fencingToken: number }[]): void {
  assert.ok(records.length > 0, "the store holds no records");
  const owner = new Map<number, string>();
  for (const [i, r] of records.entries()) {
    if (i > 0) assert.ok(r.fencingToken >= records[i - 1]!.fencingToken, `token went down at record ${i}`);
    const o = owner.get(r.fencingToken);
    assert.ok(!o || o === r.instance, `token ${r.fencingToken} used by ${o} and ${r.instance}`);
    owner.set(r.fencingToken, r.instance);
  }
}
