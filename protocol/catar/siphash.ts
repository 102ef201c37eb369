// SipHash-2-4 (Aumasson & Bernstein), 64-bit output, on 32-bit halves so that hashing the names
// of a large tree stays cheap (BigInt arithmetic is ~20x slower). GOODBYE items carry it (spec §4.6).
import { CA_GOODBYE_HASH_KEY } from './constants.ts'

function u32le (b: Uint8Array, i: number): number {
  return (b[i]! | (b[i + 1]! << 8) | (b[i + 2]! << 16) | (b[i + 3]! << 24)) >>> 0
}

/** SipHash-2-4 of `data` under a 16-byte `key`, as an unsigned 64-bit bigint. */
export function siphash24 (data: Uint8Array, key: Uint8Array = CA_GOODBYE_HASH_KEY): bigint {
  const k0l = u32le(key, 0); const k0h = u32le(key, 4)
  const k1l = u32le(key, 8); const k1h = u32le(key, 12)
  // "somepseudorandomlygeneratedbytes"
  let v0l = (k0l ^ 0x70736575) >>> 0; let v0h = (k0h ^ 0x736f6d65) >>> 0
  let v1l = (k1l ^ 0x6e646f6d) >>> 0; let v1h = (k1h ^ 0x646f7261) >>> 0
  let v2l = (k0l ^ 0x6e657261) >>> 0; let v2h = (k0h ^ 0x6c796765) >>> 0
  let v3l = (k1l ^ 0x79746573) >>> 0; let v3h = (k1h ^ 0x74656462) >>> 0

  const round = (): void => {
    let s: number; let t: number
    // v0 += v1; v1 = rotl(v1, 13); v1 ^= v0; v0 = rotl(v0, 32)
    s = v0l + v1l; v0h = (v0h + v1h + (s > 0xffffffff ? 1 : 0)) >>> 0; v0l = s >>> 0
    t = ((v1h << 13) | (v1l >>> 19)) >>> 0; v1l = ((v1l << 13) | (v1h >>> 19)) >>> 0; v1h = t
    v1l = (v1l ^ v0l) >>> 0; v1h = (v1h ^ v0h) >>> 0
    t = v0l; v0l = v0h; v0h = t
    // v2 += v3; v3 = rotl(v3, 16); v3 ^= v2
    s = v2l + v3l; v2h = (v2h + v3h + (s > 0xffffffff ? 1 : 0)) >>> 0; v2l = s >>> 0
    t = ((v3h << 16) | (v3l >>> 16)) >>> 0; v3l = ((v3l << 16) | (v3h >>> 16)) >>> 0; v3h = t
    v3l = (v3l ^ v2l) >>> 0; v3h = (v3h ^ v2h) >>> 0
    // v0 += v3; v3 = rotl(v3, 21); v3 ^= v0
    s = v0l + v3l; v0h = (v0h + v3h + (s > 0xffffffff ? 1 : 0)) >>> 0; v0l = s >>> 0
    t = ((v3h << 21) | (v3l >>> 11)) >>> 0; v3l = ((v3l << 21) | (v3h >>> 11)) >>> 0; v3h = t
    v3l = (v3l ^ v0l) >>> 0; v3h = (v3h ^ v0h) >>> 0
    // v2 += v1; v1 = rotl(v1, 17); v1 ^= v2; v2 = rotl(v2, 32)
    s = v2l + v1l; v2h = (v2h + v1h + (s > 0xffffffff ? 1 : 0)) >>> 0; v2l = s >>> 0
    t = ((v1h << 17) | (v1l >>> 15)) >>> 0; v1l = ((v1l << 17) | (v1h >>> 15)) >>> 0; v1h = t
    v1l = (v1l ^ v2l) >>> 0; v1h = (v1h ^ v2h) >>> 0
    t = v2l; v2l = v2h; v2h = t
  }

  const n = data.byteLength
  const end = n - (n % 8)
  for (let i = 0; i < end; i += 8) {
    const ml = u32le(data, i); const mh = u32le(data, i + 4)
    v3l = (v3l ^ ml) >>> 0; v3h = (v3h ^ mh) >>> 0
    round(); round()
    v0l = (v0l ^ ml) >>> 0; v0h = (v0h ^ mh) >>> 0
  }
  // last block: remaining bytes little-endian, length in the top byte
  let bl = 0; let bh = ((n & 0xff) << 24) >>> 0
  for (let j = 0; j < n - end; j++) {
    const byte = data[end + j]!
    if (j < 4) bl = (bl | (byte << (8 * j))) >>> 0
    else bh = (bh | (byte << (8 * (j - 4)))) >>> 0
  }
  v3l = (v3l ^ bl) >>> 0; v3h = (v3h ^ bh) >>> 0
  round(); round()
  v0l = (v0l ^ bl) >>> 0; v0h = (v0h ^ bh) >>> 0
  v2l = (v2l ^ 0xff) >>> 0
  round(); round(); round(); round()
  const hl = (v0l ^ v1l ^ v2l ^ v3l) >>> 0
  const hh = (v0h ^ v1h ^ v2h ^ v3h) >>> 0
  return (BigInt(hh) << 32n) | BigInt(hl)
}
