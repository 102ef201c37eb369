import { createHash } from 'node:crypto'

/** The spec's rand8m generator: SHA-256(b"casync-spec-i") for i = 0, 1, … concatenated (spec §11). */
export function specRandom (length: number, label = 'casync-spec'): Buffer {
  const parts: Buffer[] = []
  let n = 0
  for (let i = 0; n < length; i++) {
    const b = createHash('sha256').update(`${label}-${i}`).digest()
    parts.push(b)
    n += b.byteLength
  }
  return Buffer.concat(parts).subarray(0, length)
}

/** Deterministic pseudo-random bytes (xorshift), fast enough for hundreds of MB. */
export function pseudoRandom (length: number, seed = 1): Buffer {
  const out = Buffer.allocUnsafe(length)
  let x = seed >>> 0 || 1
  let i = 0
  for (; i + 4 <= length; i += 4) {
    x ^= x << 13; x >>>= 0; x ^= x >>> 17; x ^= x << 5; x >>>= 0
    out.writeUInt32LE(x, i)
  }
  for (; i < length; i++) { x ^= x << 13; x >>>= 0; x ^= x >>> 17; x ^= x << 5; x >>>= 0; out[i] = x & 255 }
  return out
}

/** Splits a buffer into pieces of `size` bytes, as a stream of reads. */
export function * pieces (data: Uint8Array, size: number): Generator<Uint8Array> {
  for (let o = 0; o < data.byteLength; o += size) yield data.subarray(o, Math.min(data.byteLength, o + size))
}
