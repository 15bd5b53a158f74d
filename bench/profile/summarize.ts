/**
 * Reads a .cpuprofile (V8's format, as bench/profile/node.ts writes it) into the share of samples
 * spent idle and the top functions by self time. Must never depend on how the profile was taken.
 */
import { readFileSync } from "node:fs";

interface CpuProfile {
  nodes: {
    id: number;
    hitCount?: number;
    callFrame: { functionName: string; url: string; lineNumber: number };
  }[];
}

export function summarize(file: string): { idlePct: number; top: { fn: string; selfPct: number }[] } {
  const p = JSON.parse(readFileSync(file, "utf8")) as CpuProfile;
  const total = p.nodes.reduce((s, n) => s + (n.hitCount ?? 0), 0) || 1;
  const by = new Map<string, number>();
  let idle = 0;
  for (const n of p.nodes) {
    const cf = n.callFrame;
    if (cf.functionName === "(idle)") idle += n.hitCount ?? 0;
    const where = cf.url
      ? `${cf.url.replace(/^.*\/dist\//, "").replace(/^node:/, "node:")}:${cf.lineNumber + 1}`
      : "";
    const key = `${cf.functionName || "(anonymous)"} ${where}`.trim();
    by.set(key, (by.get(key) ?? 0) + (n.hitCount ?? 0));
  }
  const top = [...by]
    .filter(([k]) => !k.startsWith("(idle)"))
    .sort((a, b) => b[1] - a[1])
    .slice(0, 25)
    .map(([fn, n]) => ({ fn, selfPct: Math.round((n / total) * 1000) / 10 }));
  return { idlePct: Math.round((idle / total) * 1000) / 10, top };
}
