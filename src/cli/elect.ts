/**
 * `ballot elect NAME --endpoints URL,... [--ttl S] [--grace S] -- CMD ARGS...`: runs CMD only while
 * this process holds leadership of election NAME, with BALLOT_FENCING_TOKEN and BALLOT_ELECTION in
 * its environment; stops it when leadership is lost or in doubt, and campaigns again. With
 * `--partitions P`, runs one CMD per partition this process holds (BALLOT_PARTITION added), the P
 * partitions shared fairly by every `ballot elect NAME --partitions P` (partitioned-election.ts).
 *
 * Owns the campaign → run → stop → resign loop and the elect side of the guard protocol
 * (see guard.ts). Must never start CMD itself — only through a guard that was handed a deadline
 * before CMD exists — so that CMD is stopped even when this process is SIGKILLed (the guard sees
 * EOF) or SIGSTOPped (the guard's deadline passes). Must never hand the guard a deadline later
 * than HeldLeadership.validUntil() less the grace: SIGKILL must land before leadership can lapse. Backend-neutral: it sees only the `Election` interface.
 */
import { spawn } from "node:child_process";
import { hostname } from "node:os";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import type { Election, HeldLeadership } from "../client/election.js";
import {
  MAX_PARTITIONS,
  PartitionedElection,
  PartitionGivenBackError,
} from "../client/partitioned-election.js";
import { loadCa } from "../transport/tls.js";
import { endpointsOf } from "./client.js";
import { intFlag, type Parsed, UsageError } from "./flags.js";
import type { GuardExitReport, GuardReason, GuardReport } from "./guard.js";

export const ELECT_USAGE =
  "ballot elect NAME (--endpoints URL,... | --etcd URL,...) [--ttl S] [--grace S] [--partitions P] -- CMD ARGS...";
export const ELECT_FLAGS = { values: ["endpoints", "etcd", "ttl", "grace", "token", "ca", "partitions"] };

/** The client library's default, so that `ballot elect` and election() behave alike. */
const DEFAULT_TTL_S = 5;
const MAX_GRACE_S = 3600;

export interface ElectConfig {
  readonly name: string;
  readonly endpoints: string[];
  /** etcd client URLs: hold the election on an existing etcd cluster (ballot/etcd) instead. */
  readonly etcd?: string[];
  readonly ttlSeconds: number;
  readonly graceMs: number;
  /** One CMD per held partition of this many (--partitions); undefined: one election, one CMD. */
  readonly partitions?: number;
  readonly command: string;
  readonly args: string[];
}

/** Builds the election for NAME (and what to close after); the default is a Ballot cluster, tests pass an in-memory one. */
export type ElectionFactory = (o: {
  endpoints: string[];
  name: string;
  ttlSeconds: number;
  /** A bearer token for nodes with --auth-tokens. */
  token?: string;
  /** PEM CA certificate(s) to trust for https:// endpoints (--ca). */
  ca?: Buffer;
}) => Promise<{
  election: Election;
  /** Another election on the same backend and client (for --partitions). */
  open?: (name: string) => Election;
  close?: () => void;
}>;

export function parseElect(p: Parsed): ElectConfig {
  const [name, ...extra] = p.positional;
  if (!name) throw new UsageError(`elect needs an election NAME (usage: ${ELECT_USAGE})`);
  if (extra.length > 0)
    throw new UsageError(`elect: unexpected '${extra[0]}' before '--' (the command goes after '--')`);
  const [command, ...args] = p.rest;
  if (!command) throw new UsageError(`elect needs a command after '--' (usage: ${ELECT_USAGE})`);
  const ttlSeconds = intFlag(p, "ttl", DEFAULT_TTL_S, 1, 3600);
  // The guard sends SIGTERM a grace before the leadership deadline, so SIGKILL lands by it; a
  // fifth of the TTL leaves a late keepalive room before CMD is stopped needlessly.
  let graceMs = Math.min(5000, (ttlSeconds * 1000) / 5);
  const g = p.flags.get("grace");
  if (g !== undefined) {
    if (!/^\d+(\.\d+)?$/.test(g) || Number(g) > MAX_GRACE_S)
      throw new UsageError(`--grace must be a number of seconds from 0 to ${MAX_GRACE_S} (got '${g}')`);
    graceMs = Number(g) * 1000;
  }
  const etcdText = p.flags.get("etcd");
  if (etcdText !== undefined && p.flags.has("endpoints"))
    throw new UsageError("elect: give --endpoints (a Ballot cluster) or --etcd (an etcd cluster), not both");
  const etcd = etcdText
    ?.split(",")
    .map((s) => s.trim())
    .filter(Boolean);
  if (etcd !== undefined) {
    if (etcd.length === 0) throw new UsageError("--etcd is empty");
    for (const u of etcd) {
      try {
        new URL(u);
      } catch {
        throw new UsageError(`--etcd: '${u}' is not a URL`);
      }
    }
  }
  const partitions = p.flags.has("partitions") ? intFlag(p, "partitions", 1, 1, MAX_PARTITIONS) : undefined;
  return { name, endpoints: endpointsOf(p), etcd, ttlSeconds, graceMs, partitions, command, args };
}

export interface RunElectOptions {
  readonly election: Election;
  readonly command: string;
  readonly args: readonly string[];
  /** Between SIGTERM and SIGKILL to CMD's process group. */
  readonly graceMs: number;
  /** One line per event. */
  readonly log: (line: string) => void;
  /** Aborting it stops CMD, resigns, and makes runElect resolve. */
  readonly signal: AbortSignal;
  /** What to campaign with. Default: host and pid. */
  readonly value?: unknown;
  /** CMD's environment, before BALLOT_FENCING_TOKEN and BALLOT_ELECTION are added. Default: process.env. */
  readonly env?: NodeJS.ProcessEnv;
  /** Pause after CMD exits by itself, before campaigning again. Default 1000 ms. */
  readonly restartDelayMs?: number;
  /** Pause after a failed campaign. Default 1000 ms. */
  readonly retryDelayMs?: number;
  /** How often validUntil() is checked for a renewal to pass on to the guard. Default 100 ms. */
  readonly pollMs?: number;
  /** How long to wait for resign() before going on (the lease expires anyway). Default 5000 ms. */
  readonly resignTimeoutMs?: number;
  /** The compiled guard.js. Default: the one next to this file. */
  readonly guardPath?: string;
}

/** How one period of leadership ended, as the guard reported it. */
interface TermEnd {
  /** not-started: leadership was in doubt before CMD could start; guard-died: no report from the guard. */
  readonly reason: GuardReason | "not-started" | "guard-died";
  readonly report: GuardExitReport | null;
  readonly cmdPid: number | undefined;
  readonly guardExit: string;
}

/**
 * performance.now()-based ms → absolute process.hrtime.bigint() ns, or undefined if not finite.
 * hrtime is read before performance.now(), so the gap between the reads can only make the result
 * earlier (safe), never later.
 */
export function toHrtimeNs(ms: number): bigint | undefined {
  if (!Number.isFinite(ms)) return undefined;
  const hr = process.hrtime.bigint();
  const now = performance.now();
  return hr + BigInt(Math.floor((ms - now) * 1e6));
}

const sleep = (ms: number, signal: AbortSignal): Promise<void> =>
  new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const done = () => {
      clearTimeout(t);
      signal.removeEventListener("abort", done);
      resolve();
    };
    const t = setTimeout(done, ms);
    signal.addEventListener("abort", done);
  });

const message = (e: unknown): string => (e instanceof Error ? e.message : String(e));

function describeEnd(end: TermEnd): string {
  const r = end.report;
  const who = `CMD${end.cmdPid !== undefined ? ` (pid ${end.cmdPid})` : ""}`;
  if (end.reason === "not-started") return "leadership was in doubt before CMD could start";
  if (r === null)
    return `the guard ended without a report (${end.guardExit})${end.cmdPid !== undefined ? "; killed CMD's process group" : ""}`;
  if (r.reason === "spawn-failed") return `CMD could not be started: ${r.error ?? "unknown error"}`;
  if (r.code === null && r.signal === null)
    return `CMD was not started: ${r.reason === "expired" ? "the lease deadline had already passed" : `the guard was ${r.reason}`}`;
  const how =
    r.signal !== null
      ? `exited with signal ${r.signal}${r.killed ? " (SIGKILL after the grace period)" : ""}`
      : `exited with code ${r.code}`;
  switch (r.reason) {
    case "exited":
      return `${who} ${how} by itself while leading`;
    case "expired":
      return `${who} ${how}: the guard stopped it because the lease deadline passed without renewal`;
    case "orphaned":
      return `${who} ${how}: the guard lost its connection to ballot elect`;
    case "bad-input":
      return `${who} ${how}: the guard got a malformed message`;
    default:
      return `${who} ${how}`;
  }
}

/** What superviseTerm needs of a leadership: a whole election's, or one partition's. */
type Supervised = Pick<HeldLeadership, "name" | "fencingToken" | "signal" | "validUntil">;

/** Runs CMD under a guard for one period of leadership, until CMD and the guard are gone. */
async function superviseTerm(
  held: Supervised,
  o: Omit<RunElectOptions, "election">,
  extraEnv: NodeJS.ProcessEnv = {},
): Promise<TermEnd> {
  // The guard's deadline is when SIGTERM goes out: a grace before leadership could lapse, so
  // that even a CMD that ignores SIGTERM is SIGKILLed before another instance can be elected.
  const limit = (): number => held.validUntil() - o.graceMs;
  const first = toHrtimeNs(limit());
  if (first === undefined || first <= process.hrtime.bigint() || held.signal.aborted)
    return { reason: "not-started", report: null, cmdPid: undefined, guardExit: "not started" };
  const guardPath = o.guardPath ?? fileURLToPath(new URL("./guard.js", import.meta.url));
  const guard = spawn(
    process.execPath,
    [guardPath, String(first), String(o.graceMs), "--", o.command, ...o.args],
    {
      // Its own session: a Ctrl-Z, Ctrl-C or kill aimed at our process group must not reach the
      // guard, which has to outlive or outrun us to stop CMD.
      detached: true,
      stdio: ["pipe", "inherit", "inherit", "pipe"],
      env: {
        ...(o.env ?? process.env),
        BALLOT_FENCING_TOKEN: String(held.fencingToken),
        BALLOT_ELECTION: held.name,
        ...extraEnv,
      },
    },
  );
  // A guard that is gone cannot be written to; its exit tells why.
  guard.stdin?.on("error", () => {});
  const send = (msg: object): void => {
    if (guard.stdin?.writable) guard.stdin.write(`${JSON.stringify(msg)}\n`);
  };
  // The guard starts CMD on its first stdin chunk, after applying every deadline in it.
  send({ validUntilNs: String(first) });

  let sent = first;
  let cmdPid: number | undefined;
  let report: GuardExitReport | null = null;
  let stopping = false;
  const stop = (why: string): void => {
    if (stopping || report !== null) return;
    stopping = true;
    o.log(`stopping CMD because ${why}`);
    send({ stop: true });
  };
  // Polling rather than a callback: HeldLeadership has none, and 100 ms of staleness only makes
  // the guard's deadline earlier than it could be, never later. Compared in ms, the clock it
  // comes in: converting an unchanged value again would jitter by microseconds.
  let sentMs = limit();
  const poll = setInterval(() => {
    const ms = limit();
    if (!(ms > sentMs)) return;
    const ns = toHrtimeNs(ms);
    sentMs = ms;
    if (ns !== undefined && ns > sent) {
      sent = ns;
      send({ validUntilNs: String(ns) });
    }
  }, o.pollMs ?? 100);
  const onLost = (): void =>
    stop(
      held.signal.reason instanceof PartitionGivenBackError
        ? held.signal.reason.message
        : `leadership of '${held.name}' was lost or is in doubt`,
    );
  const onShutdown = (): void => stop("ballot elect is shutting down");
  held.signal.addEventListener("abort", onLost);
  o.signal.addEventListener("abort", onShutdown);
  if (held.signal.aborted) onLost();
  if (o.signal.aborted) onShutdown();

  const reports = guard.stdio[3];
  if (reports && "setEncoding" in reports) {
    createInterface({ input: reports }).on("line", (line) => {
      let r: GuardReport;
      try {
        r = JSON.parse(line) as GuardReport;
      } catch {
        return;
      }
      if (r.event === "started") {
        cmdPid = r.pid;
        o.log(`CMD started (pid ${r.pid}, guard pid ${guard.pid})`);
      } else if (r.event === "exit") report = r;
    });
  }

  // 'close', not 'exit': it comes after the report pipe is drained. The pipe is not inherited by
  // CMD (Node marks it close-on-exec), so CMD cannot hold it open.
  const guardExit = await new Promise<string>((resolve) => {
    guard.on("error", (e) => resolve(`guard failed: ${e.message}`));
    guard.on("close", (code, signal) => resolve(signal !== null ? `signal ${signal}` : `code ${code}`));
  });
  clearInterval(poll);
  held.signal.removeEventListener("abort", onLost);
  o.signal.removeEventListener("abort", onShutdown);

  const final = report as GuardExitReport | null;
  if (final === null && cmdPid !== undefined) {
    // The guard died without stopping CMD (only SIGKILL does that): do its job, and be blunt.
    // The pid cannot have been reused as a group id while any member of CMD's group lives.
    try {
      process.kill(-cmdPid, "SIGKILL");
    } catch {
      // the group is gone
    }
  }
  return { reason: final?.reason ?? "guard-died", report: final, cmdPid, guardExit };
}

async function resign(held: HeldLeadership, o: RunElectOptions): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  // Settles either way, so a resign that fails after we stopped waiting is no unhandled rejection.
  const attempt = Promise.resolve()
    .then(() => held.resign())
    .then(
      () => "ok" as const,
      (e: unknown) => ({ error: e }),
    );
  const timeout = new Promise<"timeout">((resolve) => {
    timer = setTimeout(() => resolve("timeout"), o.resignTimeoutMs ?? 5000);
  });
  const r = await Promise.race([attempt, timeout]);
  clearTimeout(timer);
  if (r === "ok") o.log(`resigned leadership of '${held.name}'`);
  else if (r === "timeout") o.log(`resign of '${held.name}' did not finish in time; its lease will expire`);
  else o.log(`resign of '${held.name}' failed (${message(r.error)}); its lease will expire`);
}

/**
 * Campaigns for `election`, runs CMD under a guard while leading, and repeats until `signal`
 * aborts. Rejects only when CMD cannot be started at all.
 */
export async function runElect(o: RunElectOptions): Promise<void> {
  const { election, log } = o;
  const value = o.value ?? { host: hostname(), pid: process.pid };
  while (!o.signal.aborted) {
    log(`campaigning for leadership of '${election.name}'`);
    let held: HeldLeadership;
    try {
      held = await election.campaign(value, { signal: o.signal });
    } catch (e) {
      if (o.signal.aborted) break;
      const retry = o.retryDelayMs ?? 1000;
      log(`campaign failed (${message(e)}); retrying in ${retry} ms`);
      await sleep(retry, o.signal);
      continue;
    }
    if (o.signal.aborted) {
      await resign(held, o);
      break;
    }
    log(`leading '${election.name}' with fencing token ${held.fencingToken}`);
    const end = await superviseTerm(held, o);
    log(describeEnd(end));
    await resign(held, o);
    if (end.reason === "spawn-failed")
      throw new Error(`cannot run '${o.command}': ${end.report?.error ?? "spawn failed"}`);
    // Lost leadership: campaign again at once. Otherwise pause, so a CMD (or guard) that fails at
    // once does not spin, and others get a chance to lead.
    if (end.reason !== "stopped" && end.reason !== "expired" && !o.signal.aborted) {
      const pause = o.restartDelayMs ?? 1000;
      log(`campaigning again in ${pause} ms`);
      await sleep(pause, o.signal);
    }
  }
}

export interface RunPartitionedOptions extends Omit<RunElectOptions, "election"> {
  readonly partitioned: PartitionedElection;
  /** The election name CMD sees in BALLOT_ELECTION (the partition's number is BALLOT_PARTITION). */
  readonly name: string;
  /** How often the share is looked at. Default 500 ms. */
  readonly intervalMs?: number;
}

/**
 * One CMD under a guard per partition this process holds, until `signal` aborts. A CMD that ends
 * by itself gives its partition up (resigned, left to the others for restartDelayMs). Rejects
 * only when CMD cannot be started at all.
 */
export async function runPartitionedElect(o: RunPartitionedOptions): Promise<void> {
  const { log } = o;
  let fatal: Error | null = null;
  const failed = new AbortController();
  log(`campaigning for a share of the ${o.partitioned.partitions} partitions of '${o.name}'`);
  const run = o.partitioned.runForEach(
    async (signal, ctx) => {
      log(`leading partition ${ctx.partition} of '${o.name}' with fencing token ${ctx.fencingToken}`);
      const end = await superviseTerm(
        { name: ctx.name, fencingToken: ctx.fencingToken, signal, validUntil: ctx.validUntil },
        o,
        { BALLOT_ELECTION: o.name, BALLOT_PARTITION: String(ctx.partition) },
      );
      log(`partition ${ctx.partition}: ${describeEnd(end)}`);
      if (end.reason === "spawn-failed") {
        fatal ??= new Error(`cannot run '${o.command}': ${end.report?.error ?? "spawn failed"}`);
        failed.abort();
        return;
      }
      // Ended by itself: give the partition up, so that it runs somewhere (maybe here again later).
      if (!signal.aborted && !o.signal.aborted)
        throw new Error(`partition ${ctx.partition}: ${describeEnd(end)}`);
    },
    {
      value: o.value,
      intervalMs: o.intervalMs,
      retryDelayMs: o.restartDelayMs ?? 1000,
      onError: (e) => log(message(e)),
      onChange: (held) => log(`holding partitions [${held.join(",")}] of '${o.name}'`),
    },
  );
  await new Promise<void>((resolve) => {
    if (o.signal.aborted || failed.signal.aborted) return resolve();
    o.signal.addEventListener("abort", () => resolve(), { once: true });
    failed.signal.addEventListener("abort", () => resolve(), { once: true });
  });
  await run.stop();
  log(`resigned every partition of '${o.name}'`);
  if (fatal) throw fatal;
}

/** The --ca file's certificates, checked (a usage error names the file, never its contents). */
function caOf(p: Parsed): Buffer | undefined {
  const file = p.flags.get("ca");
  if (file === undefined) return undefined;
  try {
    return loadCa(file);
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
}

/** The default backend: a Ballot cluster. */
const clientElection: ElectionFactory = async ({ endpoints, name, ttlSeconds, token, ca }) => {
  // Loaded on use: the other commands, and usage errors, need not load the HTTP client.
  const { BallotClient } = await import("../client/index.js");
  const client = new BallotClient({ endpoints, token, ca });
  return {
    election: client.election(name, { ttlSeconds }),
    open: (n) => client.election(n, { ttlSeconds }),
    close: () => client.close(),
  };
};

/** The etcd backend: an existing etcd cluster through the optional etcd3 package. */
const etcdElectionFactory =
  (hosts: string[]): ElectionFactory =>
  async ({ name, ttlSeconds }) => {
    let etcd3: typeof import("etcd3");
    try {
      etcd3 = await import("etcd3");
    } catch {
      throw new UsageError("--etcd needs the etcd3 package: npm install etcd3");
    }
    const { etcdElection } = await import("../etcd/index.js");
    const client = new etcd3.Etcd3({ hosts });
    return {
      election: etcdElection(client, name, { ttlSeconds }),
      open: (n) => etcdElection(client, n, { ttlSeconds }),
      close: () => client.close(),
    };
  };

/** `ballot elect`: exit 0 after SIGINT/SIGTERM stopped CMD and resigned. */
export async function runElectCommand(p: Parsed, factory?: ElectionFactory): Promise<number> {
  const cfg = parseElect(p);
  const make = factory ?? (cfg.etcd ? etcdElectionFactory(cfg.etcd) : clientElection);
  const { election, open, close } = await make({
    endpoints: cfg.endpoints,
    name: cfg.name,
    ttlSeconds: cfg.ttlSeconds,
    token: p.flags.get("token"),
    ca: caOf(p),
  });
  const log = (line: string): void => {
    process.stderr.write(`ballot elect: ${line}\n`);
  };
  const ac = new AbortController();
  let signals = 0;
  const onSignal = (sig: NodeJS.Signals): void => {
    if (++signals > 1) {
      // Impatient: leave now. The guard sees its stdin close and still stops CMD.
      log(`received ${sig} again; exiting without waiting for CMD`);
      process.exit(1);
    }
    log(`received ${sig}`);
    ac.abort();
  };
  process.on("SIGINT", onSignal);
  process.on("SIGTERM", onSignal);
  try {
    const common = { command: cfg.command, args: cfg.args, graceMs: cfg.graceMs, log, signal: ac.signal };
    if (cfg.partitions === undefined) await runElect({ election, ...common });
    else {
      if (!open) throw new UsageError("--partitions is not supported by this backend");
      const partitioned = new PartitionedElection(cfg.name, cfg.partitions, open);
      await runPartitionedElect({ partitioned, name: cfg.name, ...common });
    }
  } finally {
    process.off("SIGINT", onSignal);
    process.off("SIGTERM", onSignal);
    // After resign: the client's keepalives and streams would otherwise keep the process alive.
    close?.();
  }
  return 0;
}
