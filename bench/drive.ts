/**
 * The closed-loop load of the write benchmarks: K workers calling an operation back to back for a
 * fixed time, and the latencies of the calls that succeeded. Owns nothing else; must never
 * measure anything but the calls it makes.
 */

export interface Figures {
  opsPerSec: number;
  p50Ms: number;
  p99Ms: number;
  errors: number;
}

/** K workers calling `op` back to back for `secs`; throughput and latency of the successful calls. */
export async function drive(k: number, op: (i: number) => Promise<unknown>, secs: number): Promise<Figures> {
  const lat: number[] = [];
  let errors = 0;
  let n = 0;
  const end = performance.now() + secs * 1000;
  await Promise.all(
    Array.from({ length: k }, async () => {
      while (performance.now() < end) {
        const i = n++;
        const t = performance.now();
        try {
          await op(i);
          lat.push(performance.now() - t);
        } catch {
          errors++;
        }
      }
    }),
  );
  lat.sort((a, b) => a - b);
  const q = (p: number) =>
    Math.round((lat[Math.min(lat.length - 1, Math.floor(p * lat.length))] ?? 0) * 100) / 100;
  return { opsPerSec: Math.round(lat.length / secs), p50Ms: q(0.5), p99Ms: q(0.99), errors };
}
