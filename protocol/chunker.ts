// The buzhash content-defined chunker, exactly as casync cuts (spec §1): the window hash is
// restarted at every chunk, the first test happens at L = max(min, 48) (so a cut at exactly min
// is possible), a cut happens when h % d == d - 1 or L reaches max, and min == avg == max means
// fixed-size chunks.
import { copyBytes } from './bytes.ts'
import { BUZHASH_TABLE } from './buzhash-table.ts'
import {
  CHUNK_SIZE_LIMIT_MAX, CHUNK_SIZE_LIMIT_MIN, CHUNKER_WINDOW_SIZE,
  DEFAULT_CHUNK_SIZE_AVG, DEFAULT_CHUNK_SIZE_MAX, DEFAULT_CHUNK_SIZE_MIN
} from './constants.ts'
import { InvalidArgumentError } from './errors.ts'

export interface ChunkerInit {
  /** @default DEFAULT_CHUNK_SIZE_MIN (16 KiB) */ min?: number
  /** @default DEFAULT_CHUNK_SIZE_AVG (64 KiB) */ avg?: number
  /** @default DEFAULT_CHUNK_SIZE_MAX (256 KiB) */ max?: number
}

export interface ChunkSizes { min: number, avg: number, max: number }

export interface Chunk {
  /** offset of the chunk's first byte in the stream */
  start: number
  size: number
  data: Uint8Array
}

/** rol32(T[x], 48) == rol32(T[x], 16): the term that removes the byte leaving the window */
const TABLE_OUT = new Int32Array(BUZHASH_TABLE.map(v => ((v << 16) | (v >>> 16)) >>> 0).buffer)
/** The table as int32, so the hot loop stays in small integers (a Uint32Array read above 2^31 boxes a double) */
const TABLE_IN = new Int32Array(BUZHASH_TABLE.buffer)

function rol32 (v: number, n: number): number {
  n &= 31
  return n === 0 ? v >>> 0 : ((v << n) | (v >>> (32 - n))) >>> 0
}

/** Buzhash of a 48-byte window (spec §1.3): XOR of rol32(T[w[j]], 47 - j). */
export function buzhash (data: Uint8Array, start = 0, end = start + CHUNKER_WINDOW_SIZE): number {
  let h = 0
  for (let i = start; i < end; i++) h = (rol32(h, 1) ^ BUZHASH_TABLE[data[i]!]!) >>> 0
  return h
}

/** One roll: drop `out`, append `in` (spec §1.3). */
export function buzhashUpdate (h: number, out: number, inByte: number): number {
  return (rol32(h, 1) ^ TABLE_OUT[out]! ^ TABLE_IN[inByte]!) >>> 0
}

/** casync's discriminator (spec §1.2), including the q < 0 wrap that makes d = max. */
export function discriminator (sizes: ChunkSizes): number {
  const q = sizes.avg / (-1.42888852e-7 * sizes.avg + 1.33237515)
  let d = q < 0 ? Number.POSITIVE_INFINITY : Math.trunc(q)
  if (d < sizes.min) d = sizes.min
  if (d > sizes.max) d = sizes.max
  return d
}

const SIZE_SUFFIX: Record<string, number> = { B: 1, K: 1024, M: 1024 ** 2, G: 1024 ** 3, T: 1024 ** 4, P: 1024 ** 5, E: 1024 ** 6 }

/** Parses one size as casync does: 1024-based suffixes B K M G T P E, fractions, sums ("1M 512K"). */
export function parseSize (text: string): number {
  const parts = text.trim().split(/\s+/)
  let total = 0
  for (const part of parts) {
    const m = /^(\d+(?:\.\d+)?)([BKMGTPE]?)(?:i?B)?$/i.exec(part)
    if (m == null) throw new InvalidArgumentError(`invalid size "${text}"`)
    total += Math.floor(Number(m[1]) * SIZE_SUFFIX[(m[2] ?? '').toUpperCase() || 'B']!)
  }
  return total
}

/** `[MIN:]AVG[:MAX]` as casync's --chunk-size: AVG alone, or MIN:AVG:MAX, or "auto" (spec §1.1). */
export function parseChunkSize (text: string): ChunkSizes {
  if (text === 'auto' || text === '') return { min: DEFAULT_CHUNK_SIZE_MIN, avg: DEFAULT_CHUNK_SIZE_AVG, max: DEFAULT_CHUNK_SIZE_MAX }
  const fields = text.split(':')
  let sizes: ChunkSizes
  if (fields.length === 1) {
    const avg = parseSize(fields[0]!)
    sizes = { min: Math.max(1, Math.floor(avg / 4)), avg, max: Math.min(avg * 4, CHUNK_SIZE_LIMIT_MAX) }
  } else if (fields.length === 3) {
    sizes = { min: parseSize(fields[0]!), avg: parseSize(fields[1]!), max: parseSize(fields[2]!) }
  } else {
    throw new InvalidArgumentError(`invalid chunk size "${text}": give AVG or MIN:AVG:MAX`)
  }
  validateChunkSizes(sizes)
  return sizes
}

export function validateChunkSizes (sizes: ChunkSizes): void {
  const { min, avg, max } = sizes
  for (const [name, v] of Object.entries(sizes)) {
    if (!Number.isInteger(v) || v < CHUNK_SIZE_LIMIT_MIN || v > CHUNK_SIZE_LIMIT_MAX) {
      throw new InvalidArgumentError(`chunk size ${name} ${v} is outside ${CHUNK_SIZE_LIMIT_MIN}…${CHUNK_SIZE_LIMIT_MAX}`)
    }
  }
  if (!(min <= avg && avg <= max)) throw new InvalidArgumentError(`chunk sizes need min <= avg <= max, got ${min}:${avg}:${max}`)
  if (max < CHUNKER_WINDOW_SIZE) throw new InvalidArgumentError(`chunk size max ${max} is below the ${CHUNKER_WINDOW_SIZE}-byte window; casync cannot use it`)
}

export function chunkSizes (init: ChunkerInit = {}): ChunkSizes {
  const sizes = {
    min: init.min ?? DEFAULT_CHUNK_SIZE_MIN,
    avg: init.avg ?? DEFAULT_CHUNK_SIZE_AVG,
    max: init.max ?? DEFAULT_CHUNK_SIZE_MAX
  }
  validateChunkSizes(sizes)
  return sizes
}

/** Constants for the int32 divisibility test in CutFinder.next(). */
function divisibilityTest (d: number): { inverse: number, shift: number, thresholdSigned: number, powerOfTwo: boolean } {
  let shift = 0
  let m = d
  while ((m & 1) === 0) { m >>>= 1; shift++ }
  let inverse = m // Newton's iteration doubles the correct low bits each step: 3 → 6 → … → 48
  for (let i = 0; i < 5; i++) inverse = Math.imul(inverse, 2 - Math.imul(m, inverse))
  const threshold = Math.floor(0xffffffff / d)
  return { inverse, shift, thresholdSigned: (threshold ^ 0x80000000) | 0, powerOfTwo: (d & (d - 1)) === 0 }
}

/**
 * An accelerated scan with exactly the semantics of the loop in CutFinder.next(): buf[0] is the
 * chunk's first byte, state = [pos, hash] with hash over buf[pos-48 .. pos); it advances until
 * h % d == d - 1 or pos >= max (a cut: returns true) or pos reaches `limit` (returns false),
 * leaving [pos, hash] in state. node/native-chunker.ts installs a C one; protocol/ stays pure.
 */
export type CutScanner = (buf: Uint8Array, state: Uint32Array, limit: number, max: number, d: number) => boolean

let scanner: CutScanner | undefined

/** Installs (or, with undefined, removes) the accelerated scan used by every CutFinder. */
export function setCutScanner (fn: CutScanner | undefined): void {
  scanner = fn
}

/**
 * The cut finder over one contiguous buffer that always starts at the current chunk's first
 * byte. `next(buf, end)` answers the length of the chunk if it ends within `buf[0..end)`, or -1
 * when more data is needed; the scan position and hash carry over between calls, so no byte is
 * hashed twice when the caller appends data and calls again.
 */
export class CutFinder {
  readonly min: number
  readonly avg: number
  readonly max: number
  readonly discriminator: number
  private readonly fixed: boolean
  private readonly firstTest: number
  private readonly divisor: { inverse: number, shift: number, thresholdSigned: number, powerOfTwo: boolean }
  private readonly state = new Uint32Array(2)
  /** bytes of the current chunk already covered by `hash`; 0 = not started */
  private pos = 0
  private hash = 0

  constructor (init: ChunkerInit = {}) {
    const sizes = chunkSizes(init)
    this.min = sizes.min
    this.avg = sizes.avg
    this.max = sizes.max
    this.discriminator = discriminator(sizes)
    this.fixed = sizes.min === sizes.avg && sizes.avg === sizes.max
    this.firstTest = Math.max(sizes.min, CHUNKER_WINDOW_SIZE)
    this.divisor = divisibilityTest(this.discriminator)
  }

  /** Length of the chunk starting at buf[0] if its cut lies within buf[0..end), else -1. */
  next (buf: Uint8Array, end: number = buf.byteLength): number {
    if (this.fixed) return end >= this.max ? this.max : -1
    let pos = this.pos
    let h = this.hash
    if (pos === 0) {
      // Skip straight to the first possible cut: h depends only on the last 48 bytes.
      if (end < this.firstTest) return -1
      pos = this.firstTest
      h = buzhash(buf, pos - CHUNKER_WINDOW_SIZE, pos)
    }
    if (scanner != null) {
      const state = this.state
      state[0] = pos
      state[1] = h
      const cut = scanner(buf, state, end, this.max, this.discriminator)
      if (cut) { this.pos = 0; this.hash = 0; return state[0]! }
      this.pos = state[0]!
      this.hash = state[1]! | 0
      return -1
    }
    // h % d == d - 1  <=>  d divides h + 1 (as a 33-bit value). Float64 modulo is a C call in
    // V8, so test divisibility in int32 arithmetic (Hacker's Delight 10-17): with d = m * 2^k,
    // m odd and c = m^-1 mod 2^32, d divides n < 2^32 iff rotr(n * c, k) <= floor((2^32-1) / d).
    // h = 0xffffffff makes n wrap to 0; then d divides 2^32 only if d is a power of two.
    const { inverse, shift, thresholdSigned, powerOfTwo } = this.divisor
    const max = this.max
    const limit = end < max ? end : max
    const T = TABLE_IN
    const TO = TABLE_OUT
    h |= 0
    for (;;) {
      const y = Math.imul(h + 1, inverse)
      const r = shift === 0 ? y : ((y >>> shift) | (y << (32 - shift)))
      if ((((r ^ 0x80000000) | 0) <= thresholdSigned && (h !== -1 || powerOfTwo)) || pos >= max) {
        this.pos = 0
        this.hash = 0
        return pos
      }
      if (pos >= limit) break
      h = ((h << 1) | (h >>> 31)) ^ TO[buf[pos - 48]!]! ^ T[buf[pos]!]!
      pos++
    }
    this.pos = pos
    this.hash = h
    return -1
  }

  /** Forget the current chunk (the next call to next() starts a new one). */
  reset (): void {
    this.pos = 0
    this.hash = 0
  }
}

/**
 * Cuts a byte stream into chunks. Chunk data is a view into an internal buffer that stays valid
 * until the generator is resumed; copy it if it must outlive that.
 */
export async function * chunk (source: AsyncIterable<Uint8Array> | Iterable<Uint8Array>, init: ChunkerInit = {}): AsyncGenerator<Chunk> {
  const finder = new CutFinder(init)
  let buf: Uint8Array = new Uint8Array(0)
  let streamOffset = 0
  for await (const input of source) {
    if (input.byteLength === 0) continue
    // a plain Uint8Array view (not a Buffer subclass) keeps the hot loop monomorphic
    const data = new Uint8Array(input.buffer, input.byteOffset, input.byteLength)
    let offset = 0
    if (buf.byteLength > 0) {
      // finish the unfinished chunk: join it with only as much of the input as a chunk can still
      // take (the finder has already scanned what it holds), not with the whole input
      const take = Math.min(data.byteLength, finder.max - buf.byteLength)
      const joined = new Uint8Array(buf.byteLength + take)
      joined.set(buf, 0)
      joined.set(data.subarray(0, take), buf.byteLength)
      const n = finder.next(joined)
      if (n < 0) { buf = joined; continue } // the whole input went into the unfinished chunk
      yield { start: streamOffset, size: n, data: joined.subarray(0, n) }
      streamOffset += n
      offset = n - buf.byteLength
    }
    buf = data
    for (;;) {
      const view = offset === 0 ? buf : buf.subarray(offset)
      const n = finder.next(view)
      if (n < 0) break
      yield { start: streamOffset, size: n, data: view.subarray(0, n) }
      streamOffset += n
      offset += n
    }
    // keep the unfinished chunk (less than max bytes), copied: the producer may reuse its buffer
    buf = copyBytes(buf, offset)
  }
  if (buf.byteLength > 0) yield { start: streamOffset, size: buf.byteLength, data: buf }
}
