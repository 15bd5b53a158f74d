/**
 * A small structured logger for the server and CLI: one JSON object per line (default), or a
 * readable line with --log-format pretty. Every line names the node. Owns formatting only; must
 * never log secrets (callers pass none).
 */
import type { NodeLogger } from "./raft-node.js";

export type LogFormat = "json" | "pretty";

export function createLogger(
  node: string,
  format: LogFormat,
  out: NodeJS.WritableStream = process.stderr,
): NodeLogger {
  const line = (level: string, msg: string): void => {
    if (format === "json") {
      out.write(`${JSON.stringify({ time: new Date().toISOString(), level, node, msg })}\n`);
    } else {
      const t = new Date().toISOString().slice(11, 23);
      out.write(`${t} ${node} ${level.padEnd(5)} ${msg}\n`);
    }
  };
  return { info: (m) => line("info", m), warn: (m) => line("warn", m), error: (m) => line("error", m) };
}
