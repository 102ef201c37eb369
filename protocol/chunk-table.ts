// An index's chunks as a compact table: every chunk ID back to back in one byte array and the
// chunk boundaries in one Float64Array, 40 bytes a chunk. (An IndexChunk object with its ChunkId
// and the ID's own 32-byte array costs ~360 bytes of heap: 1 GB for a 64 KiB-chunked image of
// 200 GB, where the table takes 120 MB.) IndexChunk and ChunkId objects are made on demand and
// are meant to be short-lived.
//
// The arrays live in shared memory, so worker threads are handed the table without a copy
// (share(), ChunkTable.fromShared()); an ID handed to a worker on its own must be a copy (id(i)):
// a view into the table would take the whole table with it in a structured clone.
import { ChunkId } from './chunk-id.ts'
import { CHUNK_ID_SIZE } from './constants.ts'
import { InvalidFormatError } from './errors.ts'
import type { IndexChunk } from './index-file.ts'

/** A table as posted to a worker thread: views on shared memory, lookup included. */
export interface SharedChunkTable {
  length: number
  ids: Uint8Array
  offsets: Float64Array
  lookup: IdLookup
}

/** Finds positions by ID: open addressing over distinct IDs, plus a chain through repeated ones. */
interface IdLookup {
  /** per slot, the first position holding an ID, plus one (0: empty); a power-of-two count */
  slots: Int32Array
  /** per position, the next position holding the same ID (-1: none) */
  next: Int32Array
  /** the hash's multipliers (random per table, so an index cannot be made to collide) */
  keys: Int32Array
}

const ID = CHUNK_ID_SIZE

function sharedBytes (n: number): Uint8Array {
  return new Uint8Array(new SharedArrayBuffer(n))
}

export class ChunkTable implements Iterable<IndexChunk> {
  /** IDs back to back; room for `capacity` */
  private ids: Uint8Array
  /** offsets[i] is chunk i's start, offsets[i + 1] its end; offsets[0] = 0 */
  private offsets: Float64Array
  private n: number
  // ES private: not an own enumerable property, so two tables with the same chunks are deepEqual
  // whether or not either has been searched
  #lookup?: IdLookup

  /** An empty table with room for `capacity` chunks (it grows as needed). */
  constructor (capacity = 0) {
    this.ids = sharedBytes(capacity * ID)
    this.offsets = new Float64Array(new SharedArrayBuffer((capacity + 1) * 8))
    this.n = 0
  }

  /** A table of chunks given as objects; they must be back to back from offset 0. */
  static from (chunks: Iterable<IndexChunk>): ChunkTable {
    const table = new ChunkTable(Array.isArray(chunks) ? chunks.length : 0)
    for (const c of chunks) {
      if (c.start !== table.streamSize) throw new InvalidFormatError(`index chunks are not contiguous at offset ${c.start}`)
      table.push(c.size, c.id.bytes)
    }
    return table.trim()
  }

  /** A worker's view of a table posted with share(); it must not be changed. */
  static fromShared (shared: SharedChunkTable): ChunkTable {
    const table = new ChunkTable()
    table.ids = shared.ids
    table.offsets = shared.offsets
    table.n = shared.length
    table.#lookup = shared.lookup
    return table
  }

  get length (): number { return this.n }

  /** the length of the stream the chunks make up */
  get streamSize (): number { return this.offsets[this.n]! }

  start (i: number): number { return this.offsets[this.check(i)]! }
  end (i: number): number { return this.offsets[this.check(i) + 1]! }
  size (i: number): number { return this.offsets[this.check(i) + 1]! - this.offsets[i]! }

  /** The distinct chunk sizes (seed scans hash only chunks of these sizes). */
  distinctSizes (): Set<number> {
    const sizes = new Set<number>()
    for (let i = 0; i < this.n; i++) sizes.add(this.offsets[i + 1]! - this.offsets[i]!)
    return sizes
  }

  /** Chunk i's ID, with bytes of its own (safe to keep, or to post to a worker). */
  id (i: number): ChunkId {
    const at = this.check(i) * ID
    return new ChunkId(this.ids.slice(at, at + ID))
  }

  /** Chunk i's ID as a view into the table: to compare or hash at once, never to keep or post. */
  idBytes (i: number): Uint8Array {
    const at = this.check(i) * ID
    return this.ids.subarray(at, at + ID)
  }

  /** Chunk i's ID in hex. */
  hex (i: number): string {
    return Buffer.from(this.ids.buffer, this.ids.byteOffset + this.check(i) * ID, ID).toString('hex')
  }

  /** Chunk i as an object (made now: keep it only as long as it is needed). */
  at (i: number): IndexChunk {
    return { id: this.id(i), start: this.offsets[i]!, size: this.offsets[i + 1]! - this.offsets[i]! }
  }

  /** Chunks [from, to) as objects. */
  slice (from = 0, to = this.n): IndexChunk[] {
    from = Math.max(0, from)
    to = Math.min(this.n, to)
    const out: IndexChunk[] = []
    for (let i = from; i < to; i++) out.push(this.at(i))
    return out
  }

  * [Symbol.iterator] (): Iterator<IndexChunk> {
    for (let i = 0; i < this.n; i++) yield this.at(i)
  }

  /** Appends a chunk of `size` bytes whose ID is `id[at…at + 32)` (zeros until setId() when absent); returns its position. */
  push (size: number, id?: Uint8Array, at = 0): number {
    const i = this.n
    if (i * ID === this.ids.byteLength) this.grow(Math.max(16, i * 2))
    this.offsets[i + 1] = this.offsets[i]! + size
    if (id != null) this.ids.set(id.subarray(at, at + ID), i * ID)
    this.n = i + 1
    this.#lookup = undefined
    return i
  }

  /** Sets chunk i's ID (for makers that learn IDs after the sizes). */
  setId (i: number, id: Uint8Array, at = 0): void {
    this.ids.set(id.subarray(at, at + ID), this.check(i) * ID)
    this.#lookup = undefined
  }

  /** Makes room for `capacity` chunks in all (the table grows by doubling otherwise). */
  reserve (capacity: number): void {
    if (capacity * ID > this.ids.byteLength) this.grow(capacity)
  }

  /** Gives back the room beyond the last chunk. */
  trim (): this {
    if (this.ids.byteLength > this.n * ID) this.grow(this.n)
    return this
  }

  /**
   * The first position holding `id`, or -1. The first call builds the lookup: ~5-11 bytes a
   * chunk, in shared memory too.
   */
  find (id: ChunkId | Uint8Array, at = 0): number {
    const bytes = id instanceof ChunkId ? id.bytes : id
    const lookup = this.#lookup ??= this.buildLookup()
    const { slots } = lookup
    const mask = slots.length - 1
    for (let s = hashId(bytes, at, lookup.keys) & mask; ; s = (s + 1) & mask) {
      const p = slots[s]! - 1
      if (p < 0) return -1
      if (this.idEquals(p, bytes, at)) return p
    }
  }

  /** The next position after i holding the same ID as i, or -1 (i must be a position find() returned, or a later one). */
  nextSame (i: number): number {
    const lookup = this.#lookup ??= this.buildLookup()
    return lookup.next[this.check(i)]!
  }

  /** The table and its lookup as views on shared memory, for a worker thread (ChunkTable.fromShared). */
  share (): SharedChunkTable {
    const lookup = this.#lookup ??= this.buildLookup()
    return { length: this.n, ids: this.ids.subarray(0, this.n * ID), offsets: this.offsets.subarray(0, this.n + 1), lookup }
  }

  private check (i: number): number {
    if (!(i >= 0 && i < this.n)) throw new RangeError(`chunk ${i} is outside the table (${this.n} chunks)`)
    return i
  }

  private idEquals (p: number, bytes: Uint8Array, at: number): boolean {
    const ids = this.ids
    const base = p * ID
    for (let k = 0; k < ID; k++) if (ids[base + k] !== bytes[at + k]) return false
    return true
  }

  private grow (capacity: number): void {
    const ids = sharedBytes(capacity * ID)
    ids.set(this.ids.subarray(0, this.n * ID))
    const offsets = new Float64Array(new SharedArrayBuffer((capacity + 1) * 8))
    offsets.set(this.offsets.subarray(0, this.n + 1))
    this.ids = ids
    this.offsets = offsets
  }

  private buildLookup (): IdLookup {
    const n = this.n
    // at most 3/4 full, so a search that misses stops within a few slots
    let size = 16
    while (size * 3 < n * 4) size *= 2
    const slots = new Int32Array(new SharedArrayBuffer(size * 4))
    const next = new Int32Array(new SharedArrayBuffer(n * 4))
    const keys = new Int32Array(new SharedArrayBuffer(9 * 4))
    for (let k = 0; k < keys.length; k++) keys[k] = (Math.random() * 2 ** 32) | 1
    const mask = size - 1
    const ids = this.ids
    // backwards, so each chain runs forwards and the slot ends up with the first position
    for (let i = n - 1; i >= 0; i--) {
      let s = hashId(ids, i * ID, keys) & mask
      for (; ; s = (s + 1) & mask) {
        const p = slots[s]! - 1
        if (p < 0 || this.idEquals(p, ids, i * ID)) break
      }
      next[i] = slots[s]! - 1
      slots[s] = i + 1
    }
    return { slots, next, keys }
  }
}

/** 32 bits of a chunk ID, mixed through every byte with the table's random multipliers. */
function hashId (bytes: Uint8Array, at: number, keys: Int32Array): number {
  let h = keys[8]!
  for (let k = 0; k < 8; k++, at += 4) {
    const w = bytes[at]! | (bytes[at + 1]! << 8) | (bytes[at + 2]! << 16) | (bytes[at + 3]! << 24)
    h = Math.imul(h ^ w, keys[k]!)
    h ^= h >>> 16
  }
  return h >>> 0
}
