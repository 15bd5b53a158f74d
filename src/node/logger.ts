/**
 * The server's structured logger: pino, one JSON object per line on stderr (default), or a
 * readable line with --log-format pretty. Every line names the node and its current term. Owns
 * formatting only; must never log secrets (callers pass none, and no request bodies or headers).
 */
import { pino } from "pino";
import type { NodeLogger } from "./raft-node.js";

export type LogFormat = "json" | "pretty";

/** A NodeLogger that stamps each line with the term, once the node exists to ask. */
export interface ServerLogger extends NodeLogger {
  setTermSource(termOf: () => number): void;
}

export function createLogger(
  node: string,
  format: LogFormat,
  out: NodeJS.WritableStream = process.stderr,
): ServerLogger {
  let termOf: () => number | undefined = () => undefined;
  const setTermSource = (fn: () => number): void => {
    termOf = fn;
  };
  if (format === "pretty") {
    const line = (level: string, msg: string): void => {
      const t = new Date().toISOString().slice(11, 23);
      const term = termOf();
      out.write(`${t} ${node}${term === undefined ? "" : ` t${term}`} ${level.padEnd(5)} ${msg}\n`);
    };
    return {
      info: (m) => line("info", m),
      warn: (m) => line("warn", m),
      error: (m) => line("error", m),
      setTermSource,
    };
  }
  // Synchronous on stderr: a line logged just before a crash or exit must not be lost.
  const dest = out === process.stderr ? pino.destination({ dest: 2, sync: true }) : out;
  const log = pino(
    {
      base: { node },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
      mixin: () => {
        const term = termOf();
        return term === undefined ? {} : { term };
      },
    },
    dest,
  );
  return {
    info: (m) => log.info(m),
    warn: (m) => log.warn(m),
    error: (m) => log.error(m),
    setTermSource,
  };
}
