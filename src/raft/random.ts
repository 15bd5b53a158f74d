/**
 * The core's only source of randomness: an injected, seedable generator for election-timeout
 * jitter. Owns the PRNG algorithm; must never read a clock or Math.random, so runs replay from a seed.
 */

/** Returns a float in [0, 1). */
export type RandomSource = () => number;

/** mulberry32: tiny, fast, good enough for jitter and for the simulator's fault schedule. */
export function seededRandom(seed: number): RandomSource {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** An integer in [lo, hi). */
export function randomInt(rand: RandomSource, lo: number, hi: number): number {
  return lo + Math.floor(rand() * (hi - lo));
}
