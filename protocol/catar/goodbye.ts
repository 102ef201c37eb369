// GOODBYE records (spec §4.6): one per directory, after its last child. Items are the children
// sorted by (SipHash-2-4 of the name, then archive order) and permuted into the implicit binary
// search tree casync builds (Eytzinger layout), followed by a tail pointing back at the ENTRY.
import {
  CA_FORMAT_GOODBYE, CA_FORMAT_GOODBYE_TAIL_MARKER, CA_GOODBYE_ITEM_SIZE, CA_GOODBYE_TAIL_SIZE,
  CA_HEADER_SIZE
} from './constants.ts'
import { siphash24 } from './siphash.ts'

export interface GoodbyeChild {
  /** archive offset of the child's FILENAME record */
  start: number
  /** bytes from its FILENAME to the end of its serialisation */
  size: number
  /** SipHash-2-4 of the name (siphash24(name)) */
  hash: bigint
}

export function goodbyeSize (children: number): number {
  return CA_HEADER_SIZE + CA_GOODBYE_ITEM_SIZE * children + CA_GOODBYE_TAIL_SIZE
}

/** Reorders children (already sorted by hash, then offset) into casync's search-tree order. */
export function goodbyeOrder<T> (sorted: T[]): T[] {
  const n = sorted.length
  const out = new Array<T>(n)
  if (n === 0) return out
  const place = (lo: number, cnt: number, e: number, i: number): void => {
    if (cnt === 0) return
    const p = 2 ** (e - 1)
    const half = Math.floor(p / 2)
    const k = cnt >= p - 1 + half ? p - 1 : cnt - half
    out[i] = sorted[lo + k]!
    place(lo, k, e - 1, 2 * i + 1)
    place(lo + k + 1, cnt - k - 1, e - 1, 2 * i + 2)
  }
  place(0, n, Math.floor(Math.log2(n)) + 1, 0)
  return out
}

function setU64 (v: DataView, at: number, value: number | bigint): void {
  if (typeof value === 'bigint') { v.setBigUint64(at, value, true); return }
  v.setUint32(at, value >>> 0, true)
  v.setUint32(at + 4, Math.floor(value / 0x100000000), true)
}

/**
 * The complete GOODBYE record for a directory whose ENTRY starts at `entryStart` and whose
 * GOODBYE starts at `goodbyeStart`, with `children` in archive order.
 */
export function encodeGoodbye (children: GoodbyeChild[], entryStart: number, goodbyeStart: number, out?: Uint8Array, at = 0): Uint8Array {
  const size = goodbyeSize(children.length)
  const buf = out ?? new Uint8Array(size)
  const v = new DataView(buf.buffer, buf.byteOffset + at, size)
  const sorted = children.slice().sort((a, b) => a.hash < b.hash ? -1 : a.hash > b.hash ? 1 : a.start - b.start)
  const items = goodbyeOrder(sorted)
  setU64(v, 0, size)
  setU64(v, 8, CA_FORMAT_GOODBYE)
  let o = CA_HEADER_SIZE
  for (const c of items) {
    setU64(v, o, goodbyeStart - c.start)
    setU64(v, o + 8, c.size)
    setU64(v, o + 16, c.hash)
    o += CA_GOODBYE_ITEM_SIZE
  }
  setU64(v, o, goodbyeStart - entryStart)
  setU64(v, o + 8, size)
  setU64(v, o + 16, CA_FORMAT_GOODBYE_TAIL_MARKER)
  return buf
}

export { siphash24 }
