/**
 * The guard of `ballot elect`: a small process that starts CMD in its own process group and stops
 * it (SIGTERM to the group, SIGKILL after the grace) when the leadership deadline it was given
 * passes without renewal, when asked to, or when its stdin closes (`ballot elect` died). It runs
 * as `node guard.js VALID_UNTIL_NS GRACE_MS -- CMD ARGS...` and then exits with a GUARD_EXIT code.
 *
 * It exists because `ballot elect` itself may be SIGKILLed or SIGSTOPped: the deadline is enforced
 * here, by a process that does nothing else, so CMD never runs past it by more than the grace
 * period plus timer slack. Owns CMD's process group; must never exit while CMD may still run
 * (only a SIGKILL of the guard itself can cause that), never start CMD on a deadline already
 * passed, never un-stop once stopping, and never do anything slow on its event loop.
 *
 * Protocol, newline-delimited JSON:
 *   stdin  (from elect):  {"validUntilNs": "<absolute process.hrtime.bigint() as decimal>"} | {"stop": true}
 *                         (the first line comes at once; CMD starts after the first chunk is applied)
 *   fd 3   (to elect):    {"event":"started","pid":N} then {"event":"exit","reason",...} (GuardExitReport)
 * hrtime is CLOCK_MONOTONIC, shared by every process on one Linux machine, so an absolute deadline
 * needs no correction for transit time.
 */
import { spawn } from "node:child_process";
import { realpathSync, writeSync } from "node:fs";
import { pathToFileURL } from "node:url";

/** Why the guard ended. Codes stay clear of Node's own exit codes (1–14) so a crashed guard is not misread. */
export const GUARD_EXIT = {
  /** CMD exited by itself. */
  exited: 70,
  /** Asked to stop (`{"stop":true}` or a signal to the guard). */
  stopped: 71,
  /** The deadline passed without renewal. */
  expired: 72,
  /** stdin closed: `ballot elect` is gone. */
  orphaned: 73,
  /** CMD could not be started. */
  "spawn-failed": 74,
  /** A line on stdin was not the protocol: stopped, since the parent can no longer be trusted. */
  "bad-input": 75,
  /** Bad arguments to the guard itself. */
  usage: 64,
} as const;

export type GuardReason = keyof typeof GUARD_EXIT;

export interface GuardStartedReport {
  readonly event: "started";
  readonly pid: number;
}

export interface GuardExitReport {
  readonly event: "exit";
  readonly reason: GuardReason;
  readonly code: number | null;
  readonly signal: string | null;
  /** True when the grace ran out and SIGKILL was sent. */
  readonly killed: boolean;
  readonly error?: string;
}

export type GuardReport = GuardStartedReport | GuardExitReport;

/** Best effort: fd 3 is absent when the guard is run by hand, and elect may be gone. */
function report(r: GuardReport): void {
  try {
    writeSync(3, `${JSON.stringify(r)}\n`);
  } catch {
    // nobody to tell
  }
}

function runGuard(argv: readonly string[]): void {
  const [untilText, graceText, dashes, command, ...args] = argv;
  const grace = Number(graceText);
  if (
    untilText === undefined ||
    !/^\d+$/.test(untilText) ||
    graceText === undefined ||
    !Number.isFinite(grace) ||
    grace < 0 ||
    dashes !== "--" ||
    !command
  ) {
    process.stderr.write("ballot guard: usage: guard.js VALID_UNTIL_NS GRACE_MS -- CMD ARGS...\n");
    process.exit(GUARD_EXIT.usage);
  }
  let deadline = BigInt(untilText);

  let launched = false;
  let pid: number | undefined;
  let stopping: GuardReason | null = null;
  let killed = false;
  let deadlineTimer: NodeJS.Timeout | undefined;
  let killTimer: NodeJS.Timeout | undefined;
  let finished = false;

  const signalGroup = (sig: NodeJS.Signals): void => {
    if (pid === undefined) return;
    try {
      process.kill(-pid, sig);
    } catch {
      try {
        // The group is gone (ESRCH) or out of reach (EPERM, e.g. CMD changed its group): aim at CMD.
        process.kill(pid, sig);
      } catch {
        // already gone
      }
    }
  };

  const finish = (reason: GuardReason, code: number | null, signal: string | null, error?: string): void => {
    if (finished) return;
    finished = true;
    clearTimeout(deadlineTimer);
    clearTimeout(killTimer);
    // CMD's leftover children (still in its group) must not outlive the run either.
    signalGroup("SIGKILL");
    report({ event: "exit", reason, code, signal, killed, ...(error !== undefined ? { error } : {}) });
    process.exit(GUARD_EXIT[reason]);
  };

  const stop = (reason: GuardReason): void => {
    if (stopping !== null || finished) return;
    stopping = reason;
    clearTimeout(deadlineTimer);
    // Not started yet: nothing to stop (if a spawn is failing, its error event finishes).
    if (pid === undefined) {
      if (!launched) finish(reason, null, null);
      return;
    }
    signalGroup("SIGTERM");
    killTimer = setTimeout(() => {
      killed = true;
      signalGroup("SIGKILL");
    }, grace);
  };

  const armDeadline = (): void => {
    clearTimeout(deadlineTimer);
    const leftMs = Number(deadline - process.hrtime.bigint()) / 1e6;
    if (leftMs <= 0) {
      stop("expired");
      return;
    }
    // Timers fire no earlier than asked relative to the loop's cached clock, which may lag the
    // real one: round down and check again when it fires, so the stop is never late by more than slack.
    deadlineTimer = setTimeout(armDeadline, Math.floor(leftMs));
  };

  const start = (): void => {
    // A deadline already gone means leadership is in doubt: CMD must not start at all.
    if (process.hrtime.bigint() >= deadline) {
      stop("expired");
      return;
    }
    // detached: CMD leads its own process group, so one kill reaches everything it started, and
    // a Ctrl-C meant for the terminal's foreground group reaches it only through us.
    // stdin is /dev/null: the guard's stdin is the control pipe and must stay ours.
    launched = true;
    const child = spawn(command, args, { detached: true, stdio: ["ignore", "inherit", "inherit"] });
    child.on("error", (e) => finish("spawn-failed", null, null, e.message));
    child.on("exit", (code, signal) => finish(stopping ?? "exited", code, signal));
    pid = child.pid;
    if (pid === undefined) return; // spawn failed: the error event follows
    report({ event: "started", pid });
    armDeadline();
  };

  const handle = (line: string): void => {
    if (line.trim() === "") return;
    let msg: { validUntilNs?: unknown; stop?: unknown };
    try {
      msg = JSON.parse(line) as typeof msg;
    } catch {
      stop("bad-input");
      return;
    }
    if (msg.stop === true) stop("stopped");
    else if (typeof msg.validUntilNs === "string" && /^\d+$/.test(msg.validUntilNs)) {
      const next = BigInt(msg.validUntilNs);
      // Only forward: a deadline, once given, is a promise elect may no longer be able to take back.
      if (next > deadline && stopping === null) {
        deadline = next;
        if (pid !== undefined) armDeadline();
      }
    } else stop("bad-input");
  };

  // Whatever goes wrong in here, CMD must not be left running without a guard.
  process.on("uncaughtException", (e) => {
    signalGroup("SIGKILL");
    process.stderr.write(`ballot guard: ${e.message}\n`);
    process.exit(1);
  });

  // elect writes the current deadline as soon as we exist. CMD starts after the first chunk,
  // so every renewal queued while this process was booting counts: a slow start (a loaded
  // machine, a short TTL) does not make a still-valid leadership look expired.
  let buffered = "";
  process.stdin.setEncoding("utf8");
  process.stdin.on("data", (chunk: string) => {
    buffered += chunk;
    for (let nl = buffered.indexOf("\n"); nl >= 0; nl = buffered.indexOf("\n")) {
      handle(buffered.slice(0, nl));
      buffered = buffered.slice(nl + 1);
    }
    if (buffered.length > 64 * 1024) stop("bad-input");
    if (!launched && stopping === null) start();
  });
  // EOF: the parent died (or closed the pipe); nobody can renew the deadline any more.
  process.stdin.on("end", () => stop("orphaned"));
  process.stdin.on("error", () => stop("orphaned"));

  for (const sig of ["SIGTERM", "SIGINT", "SIGHUP"] as const) process.on(sig, () => stop("stopped"));
}

// Run only as a program: elect imports the constants and types above.
if (process.argv[1] && import.meta.url === pathToFileURL(realpathSync(process.argv[1])).href) {
  runGuard(process.argv.slice(2));
}
