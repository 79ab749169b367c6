// The one seeded PRNG of the tests, the bench and the scripts: mulberry32. Same
// seed, same sequence everywhere, so a failing random run can be replayed.

/** A generator of uint32s. */
export function mulberry32 (seed: number): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let x = a
    x = Math.imul(x ^ (x >>> 15), x | 1)
    x ^= x + Math.imul(x ^ (x >>> 7), x | 61)
    return (x ^ (x >>> 14)) >>> 0
  }
}

/** A generator uniform in [0, 1). */
export function uniform (seed: number): () => number {
  const next = mulberry32(seed)
  return () => next() / 4294967296
}
