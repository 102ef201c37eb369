// .caibx / .caidx index files (spec §3): a 48-byte INDEX header, a TABLE header whose size is
// "unknown" (so the file can be streamed), 40-byte items (end offset + chunk ID) and a 40-byte
// tail. Both suffixes share the layout; the suffix decides what the described stream is.
import { copyBytes } from './bytes.ts'
import { ChunkId } from './chunk-id.ts'
import { ChunkTable } from './chunk-table.ts'
import {
  CA_FORMAT_FEATURE_FLAGS_MAX, CA_FORMAT_INDEX, CA_FORMAT_TABLE, CA_FORMAT_TABLE_TAIL_MARKER,
  CHUNK_ID_SIZE, CHUNK_SIZE_LIMIT_MAX, CHUNK_SIZE_LIMIT_MIN, INDEX_HEADER_SIZE, TABLE_HEADER_SIZE,
  TABLE_ITEM_SIZE, TABLE_TAIL_SIZE
} from './constants.ts'
import { InvalidFormatError } from './errors.ts'

export interface IndexHeader {
  featureFlags: bigint
  chunkSizeMin: number
  chunkSizeAvg: number
  chunkSizeMax: number
}

export interface IndexChunk {
  id: ChunkId
  /** offset of the chunk's first byte in the described stream */
  start: number
  size: number
}

export interface Index extends IndexHeader {
  /** compact: chunk objects are made on demand (protocol/chunk-table.ts) */
  chunks: ChunkTable
}

/** What encodeIndex() takes: a decoded index, or a header and its chunks as objects. */
export interface IndexLike extends IndexHeader {
  chunks: ChunkTable | readonly IndexChunk[]
}

/** the length of the stream an index describes */
export function streamSize (index: Index): number {
  return index.chunks.streamSize
}

const TABLE_SIZE_UNKNOWN = 0xffffffffffffffffn

export function encodeIndexHeader (header: IndexHeader): Uint8Array {
  const out = new Uint8Array(INDEX_HEADER_SIZE + TABLE_HEADER_SIZE)
  const v = new DataView(out.buffer)
  v.setBigUint64(0, BigInt(INDEX_HEADER_SIZE), true)
  v.setBigUint64(8, CA_FORMAT_INDEX, true)
  v.setBigUint64(16, header.featureFlags, true)
  v.setBigUint64(24, BigInt(header.chunkSizeMin), true)
  v.setBigUint64(32, BigInt(header.chunkSizeAvg), true)
  v.setBigUint64(40, BigInt(header.chunkSizeMax), true)
  v.setBigUint64(48, TABLE_SIZE_UNKNOWN, true)
  v.setBigUint64(56, CA_FORMAT_TABLE, true)
  return out
}

export function encodeIndexItem (chunk: IndexChunk, out = new Uint8Array(TABLE_ITEM_SIZE), at = 0): Uint8Array {
  writeIndexItem(out, new DataView(out.buffer, out.byteOffset), at, chunk.start + chunk.size, chunk.id.bytes)
  return out
}

/**
 * Writes one table item into `out` at `at`: the chunk's end offset in the stream, then its
 * 32-byte ID (`v`: a DataView of `out`, made once by a caller writing many items).
 */
export function writeIndexItem (out: Uint8Array, v: DataView, at: number, end: number, id: Uint8Array): void {
  v.setBigUint64(at, BigInt(end), true)
  out.set(id, at + 8)
}

export function encodeIndexTail (chunkCount: number): Uint8Array {
  const out = new Uint8Array(TABLE_TAIL_SIZE)
  const v = new DataView(out.buffer)
  v.setBigUint64(16, BigInt(INDEX_HEADER_SIZE), true)
  v.setBigUint64(24, BigInt(TABLE_HEADER_SIZE + TABLE_ITEM_SIZE * chunkCount + TABLE_TAIL_SIZE), true)
  v.setBigUint64(32, CA_FORMAT_TABLE_TAIL_MARKER, true)
  return out
}

export function encodeIndex (index: IndexLike): Uint8Array {
  // (ChunkTable.from checks that object chunks are back to back)
  const chunks = index.chunks instanceof ChunkTable ? index.chunks : ChunkTable.from(index.chunks)
  const n = chunks.length
  const out = new Uint8Array(INDEX_HEADER_SIZE + TABLE_HEADER_SIZE + TABLE_ITEM_SIZE * n + TABLE_TAIL_SIZE)
  out.set(encodeIndexHeader(index), 0)
  const v = new DataView(out.buffer)
  let at = INDEX_HEADER_SIZE + TABLE_HEADER_SIZE
  for (let i = 0; i < n; i++, at += TABLE_ITEM_SIZE) writeIndexItem(out, v, at, chunks.end(i), chunks.idBytes(i))
  out.set(encodeIndexTail(n), at)
  return out
}

function u64 (v: DataView, at: number, what: string, offset: number): number {
  const big = v.getBigUint64(at, true)
  if (big > BigInt(Number.MAX_SAFE_INTEGER)) throw new InvalidFormatError(`${what} ${big} is too large`, offset)
  return Number(big)
}

export function decodeIndexHeader (bytes: Uint8Array): IndexHeader {
  if (bytes.byteLength < INDEX_HEADER_SIZE + TABLE_HEADER_SIZE) throw new InvalidFormatError(`truncated index header (${bytes.byteLength} bytes)`, bytes.byteLength)
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  if (v.getBigUint64(0, true) !== BigInt(INDEX_HEADER_SIZE) || v.getBigUint64(8, true) !== CA_FORMAT_INDEX) {
    throw new InvalidFormatError('not a casync index (bad INDEX header)', 0)
  }
  const featureFlags = v.getBigUint64(16, true)
  if ((featureFlags & ~CA_FORMAT_FEATURE_FLAGS_MAX) !== 0n) throw new InvalidFormatError(`unknown feature flags 0x${featureFlags.toString(16)}`, 16)
  const header: IndexHeader = {
    featureFlags,
    chunkSizeMin: u64(v, 24, 'chunk_size_min', 24),
    chunkSizeAvg: u64(v, 32, 'chunk_size_avg', 32),
    chunkSizeMax: u64(v, 40, 'chunk_size_max', 40)
  }
  for (const [name, at] of [['chunkSizeMin', 24], ['chunkSizeAvg', 32], ['chunkSizeMax', 40]] as const) {
    const s = header[name]
    if (s < CHUNK_SIZE_LIMIT_MIN || s > CHUNK_SIZE_LIMIT_MAX) throw new InvalidFormatError(`${name} ${s} is outside ${CHUNK_SIZE_LIMIT_MIN}…${CHUNK_SIZE_LIMIT_MAX}`, at)
  }
  if (!(header.chunkSizeMin <= header.chunkSizeAvg && header.chunkSizeAvg <= header.chunkSizeMax)) {
    throw new InvalidFormatError(`chunk sizes ${header.chunkSizeMin}:${header.chunkSizeAvg}:${header.chunkSizeMax} are not ordered min <= avg <= max`, 24)
  }
  if (v.getBigUint64(48, true) !== TABLE_SIZE_UNKNOWN || v.getBigUint64(56, true) !== CA_FORMAT_TABLE) {
    throw new InvalidFormatError('bad TABLE header', 48)
  }
  return header
}

const U32 = 2 ** 32

export interface IndexDecoderInit {
  /**
   * the index file's size, when known: once the header checks out, room for exactly its chunks
   * is set aside (otherwise the table grows by doubling as they come)
   */
  size?: number
}

/**
 * Streaming decoder: feed bytes with append() (the chunks go into `chunks`, a compact table) or
 * push() (the chunks come back as objects and are not kept), and call end() to check the tail.
 * Every offset in an error is a byte offset in the index file.
 */
export class IndexDecoder {
  header?: IndexHeader
  /** the chunks append() decoded */
  readonly chunks = new ChunkTable()
  private readonly sizeHint?: number
  private pending = new Uint8Array(0)
  /** file offset of pending[0] */
  private fileOffset = 0
  private streamOffset = 0
  private count = 0
  private tailSeen = false

  constructor (init: IndexDecoderInit = {}) {
    this.sizeHint = init.size
  }

  /** Appends bytes; the chunks they complete are added to `chunks`. */
  append (data: Uint8Array): void {
    this.decode(data, (buf, at, start, size) => { this.chunks.push(size, buf, at) })
  }

  /** Appends bytes; returns the chunks completed by them, as objects (`chunks` does not keep them). */
  push (data: Uint8Array): IndexChunk[] {
    const out: IndexChunk[] = []
    this.decode(data, (buf, at, start, size) => { out.push({ id: new ChunkId(copyBytes(buf, at, at + CHUNK_ID_SIZE)), start, size }) })
    return out
  }

  /** Decodes the items `data` completes; `emit` gets each one's ID (buf[at…at + 32)), start and size. */
  private decode (data: Uint8Array, emit: (buf: Uint8Array, at: number, start: number, size: number) => void): void {
    if (this.tailSeen && data.byteLength > 0) throw new InvalidFormatError('data after the index tail', this.fileOffset)
    let buf: Uint8Array
    if (this.pending.byteLength === 0) buf = data
    else {
      buf = new Uint8Array(this.pending.byteLength + data.byteLength)
      buf.set(this.pending, 0)
      buf.set(data, this.pending.byteLength)
    }
    let at = 0
    if (this.header == null) {
      if (buf.byteLength < INDEX_HEADER_SIZE + TABLE_HEADER_SIZE) { this.pending = copyBytes(buf); return }
      this.header = decodeIndexHeader(buf)
      at = INDEX_HEADER_SIZE + TABLE_HEADER_SIZE
      if (this.sizeHint != null) this.chunks.reserve(Math.floor((this.sizeHint - at - TABLE_TAIL_SIZE) / TABLE_ITEM_SIZE))
    }
    const max = this.header.chunkSizeMax
    const v = new DataView(buf.buffer, buf.byteOffset, buf.byteLength)
    while (buf.byteLength - at >= TABLE_ITEM_SIZE) {
      const offset = this.fileOffset + at
      // the end offset as two 32-bit halves: a BigInt per item costs more than the rest of the item
      const lo = v.getUint32(at, true)
      const hi = v.getUint32(at + 4, true)
      if (lo === 0 && hi === 0) {
        // the tail begins with two zero words; an item's end offset is never 0
        if (buf.byteLength - at < TABLE_TAIL_SIZE) break
        this.checkTail(v, at, offset)
        at += TABLE_TAIL_SIZE
        if (at !== buf.byteLength) throw new InvalidFormatError('data after the index tail', this.fileOffset + at)
        this.tailSeen = true
        break
      }
      if (hi >= 2 ** 21) throw new InvalidFormatError(`chunk end offset ${v.getBigUint64(at, true)} is too large`, offset)
      const end = hi * U32 + lo
      if (end <= this.streamOffset) throw new InvalidFormatError(`chunk end offsets are not increasing (${end} after ${this.streamOffset})`, offset)
      const size = end - this.streamOffset
      if (size > max) throw new InvalidFormatError(`chunk of ${size} bytes exceeds the index's max chunk size ${max}`, offset)
      emit(buf, at + 8, this.streamOffset, size)
      this.streamOffset = end
      this.count++
      at += TABLE_ITEM_SIZE
    }
    this.pending = at === buf.byteLength ? new Uint8Array(0) : copyBytes(buf, at)
    this.fileOffset += at
  }

  private checkTail (v: DataView, at: number, offset: number): void {
    const expectSize = BigInt(TABLE_HEADER_SIZE + TABLE_ITEM_SIZE * this.count + TABLE_TAIL_SIZE)
    if (v.getBigUint64(at + 8, true) !== 0n || v.getBigUint64(at + 16, true) !== BigInt(INDEX_HEADER_SIZE) ||
        v.getBigUint64(at + 24, true) !== expectSize || v.getBigUint64(at + 32, true) !== CA_FORMAT_TABLE_TAIL_MARKER) {
      throw new InvalidFormatError('bad index tail (wrong marker or table size)', offset)
    }
  }

  /** Total length of the described stream, known once the tail has been read. */
  get streamLength (): number { return this.streamOffset }

  /** Throws unless the whole file, tail included, has been seen. */
  end (): void {
    if (this.header == null) throw new InvalidFormatError(`truncated index: ${this.pending.byteLength} bytes, no complete header`, this.pending.byteLength)
    if (!this.tailSeen) throw new InvalidFormatError(`truncated index: ends after ${this.count} chunks without a tail`, this.fileOffset + this.pending.byteLength)
  }

  /** The decoded index (after end()), its table trimmed to its chunks. */
  index (): Index {
    this.end()
    return { ...this.header!, chunks: this.chunks.trim() }
  }
}

export function decodeIndex (bytes: Uint8Array): Index {
  const decoder = new IndexDecoder({ size: bytes.byteLength })
  decoder.append(bytes)
  return decoder.index()
}

export async function * decodeIndexStream (source: AsyncIterable<Uint8Array> | Iterable<Uint8Array>): AsyncGenerator<IndexChunk> {
  const decoder = new IndexDecoder()
  for await (const data of source) yield * decoder.push(data)
  decoder.end()
}
