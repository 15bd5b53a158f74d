/**
 * Helpers for the client tests: a fetch that can be "cut" (as if the client's network went
 * away: new requests are refused, in-flight ones break), a fetch that records every attempt by
 * Idempotency-Key, and small waits. Owns nothing outside the test process.
 */

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Polls `f` until it returns a truthy value or `timeoutMs` passes. */
export async function until<T>(
  f: () => T | Promise<T>,
  timeoutMs: number,
  what: string,
): Promise<NonNullable<T>> {
  const end = performance.now() + timeoutMs;
  for (;;) {
    const v = await f();
    if (v) return v as NonNullable<T>;
    if (performance.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(25);
  }
}

export interface CuttableFetch {
  readonly fetch: typeof fetch;
  cut(): void;
  heal(): void;
}

/** A fetch whose network can be cut and healed. */
export function cuttableFetch(): CuttableFetch {
  let isCut = false;
  const inFlight = new Set<AbortController>();
  return {
    fetch: (input, init) => {
      if (isCut) {
        const cause = Object.assign(new Error("connect ECONNREFUSED (cut by the test)"), {
          code: "ECONNREFUSED",
        });
        return Promise.reject(new TypeError("fetch failed", { cause }));
      }
      const c = new AbortController();
      const s = init?.signal;
      if (s?.aborted) c.abort(s.reason);
      else s?.addEventListener("abort", () => c.abort(s.reason), { once: true });
      // Kept after the headers arrive too: a cut must also break streams being read.
      inFlight.add(c);
      c.signal.addEventListener("abort", () => inFlight.delete(c), { once: true });
      return fetch(input, { ...init, signal: c.signal });
    },
    cut() {
      isCut = true;
      for (const c of [...inFlight]) c.abort(new TypeError("network cut by the test"));
    },
    heal() {
      isCut = false;
    },
  };
}

export interface Attempt {
  readonly method: string;
  readonly url: string;
  readonly key: string | null;
  /** HTTP status, or the error code of a failed fetch. */
  readonly outcome: number | string;
}

/** A fetch that records every attempt (the client's retries are visible by Idempotency-Key). */
export function recordingFetch(log: Attempt[]): typeof fetch {
  return async (input, init) => {
    const key = new Headers(init?.headers).get("idempotency-key");
    const url = String(input);
    const method = init?.method ?? "GET";
    try {
      const res = await fetch(input, init);
      log.push({ method, url, key, outcome: res.status });
      return res;
    } catch (e) {
      const code = ((e as { cause?: { code?: string } }).cause?.code ?? (e as Error).name) || "error";
      log.push({ method, url, key, outcome: code });
      throw e;
    }
  };
}

/** `p`, or a failure after `ms` (the timer does not outlive the race). */
export async function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    return await Promise.race([
      p,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`timed out: ${what}`)), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}
