/** Small seeded PRNG (mulberry32): the synthetic line must be reproducible from a seed, Math.random is not. */
export type Rng = () => number;

export function createRng(seed: number): Rng {
  return mulberry32((seed >>> 0) ^ 0x9e3779b9);
}

/** mulberry32 on the seed as given: a seeded uniform [0, 1). */
export function mulberry32(seed: number): Rng {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Uniform in [lo, hi). */
export function uniform(rng: Rng, lo: number, hi: number): number {
  return lo + (hi - lo) * rng();
}

/** Mixes a base seed with indices into a new 32-bit seed, so image k of a split does not depend on image k-1. */
export function deriveSeed(...parts: number[]): number {
  let h = 2166136261;
  for (const p of parts) {
    h ^= p >>> 0;
    h = Math.imul(h, 16777619) >>> 0;
    h ^= h >>> 13;
  }
  return h >>> 0;
}
