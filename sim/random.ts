// A small deterministic PRNG (sfc32, seeded through splitmix32) so the same seed gives the same
// fleet, the same churn and the same report on every run. Math.random is never used in sim/.

/** splitmix32: spreads a small integer seed over the 128-bit sfc32 state. */
function splitmix32 (state: { s: number }): number {
  state.s = (state.s + 0x9e3779b9) | 0
  let z = state.s
  z = Math.imul(z ^ (z >>> 16), 0x85ebca6b)
  z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35)
  return (z ^ (z >>> 16)) >>> 0
}

export class Random {
  private a: number
  private b: number
  private c: number
  private d: number

  constructor (seed: number) {
    const st = { s: seed | 0 }
    this.a = splitmix32(st)
    this.b = splitmix32(st)
    this.c = splitmix32(st)
    this.d = splitmix32(st)
    for (let i = 0; i < 12; i++) this.nextUint32()
  }

  /** A new generator whose stream depends only on this one's seed and `label`. */
  fork (label: number): Random {
    return new Random((this.a ^ Math.imul(label + 1, 0x27d4eb2d)) | 0)
  }

  nextUint32 (): number {
    // sfc32 (Chris Doty-Humphrey's Small Fast Chaotic PRNG)
    const t = (((this.a + this.b) | 0) + this.d) | 0
    this.d = (this.d + 1) | 0
    this.a = this.b ^ (this.b >>> 9)
    this.b = (this.c + (this.c << 3)) | 0
    this.c = (this.c << 21) | (this.c >>> 11)
    this.c = (this.c + t) | 0
    return t >>> 0
  }

  /** uniform in [0, 1) */
  next (): number {
    return this.nextUint32() / 4294967296
  }

  /** uniform integer in [0, n) */
  int (n: number): number {
    return Math.floor(this.next() * n)
  }

  /** uniform in [lo, hi) */
  range (lo: number, hi: number): number {
    return lo + (hi - lo) * this.next()
  }

  /** exponentially distributed with the given mean */
  exponential (mean: number): number {
    return -mean * Math.log(1 - this.next())
  }

  /** Fisher-Yates, in place */
  shuffle<T> (items: T[]): T[] {
    for (let i = items.length - 1; i > 0; i--) {
      const j = this.int(i + 1)
      const x = items[i]!
      items[i] = items[j]!
      items[j] = x
    }
    return items
  }

  /** k distinct integers from [0, n), in random order */
  sample (n: number, k: number): number[] {
    if (k >= n) return this.shuffle(Array.from({ length: n }, (_, i) => i))
    const picked = new Set<number>()
    const out: number[] = []
    while (out.length < k) {
      const x = this.int(n)
      if (!picked.has(x)) { picked.add(x); out.push(x) }
    }
    return out
  }
}
