// .caibx / .caidx index files (spec §3): a 48-byte INDEX header, a TABLE header whose size is
// "unknown" (so the file can be streamed), 40-byte items (end offset + chunk ID) and a 40-byte
// tail. Both suffixes share the layout; the suffix decides what the described stream is.
import { copyBytes } from './bytes.ts'
import { ChunkId } from './chunk-id.ts'
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
  chunks: IndexChunk[]
}

/** the length of the stream an index describes */
export function streamSize (index: Index): number {
  const last = index.chunks[index.chunks.length - 1]
  return last == null ? 0 : last.start + last.size
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
  const v = new DataView(out.buffer, out.byteOffset)
  v.setBigUint64(at, BigInt(chunk.start + chunk.size), true)
  out.set(chunk.id.bytes, at + 8)
  return out
}

export function encodeIndexTail (chunkCount: number): Uint8Array {
  const out = new Uint8Array(TABLE_TAIL_SIZE)
  const v = new DataView(out.buffer)
  v.setBigUint64(16, BigInt(INDEX_HEADER_SIZE), true)
  v.setBigUint64(24, BigInt(TABLE_HEADER_SIZE + TABLE_ITEM_SIZE * chunkCount + TABLE_TAIL_SIZE), true)
  v.setBigUint64(32, CA_FORMAT_TABLE_TAIL_MARKER, true)
  return out
}

export function encodeIndex (index: Index): Uint8Array {
  const n = index.chunks.length
  const out = new Uint8Array(INDEX_HEADER_SIZE + TABLE_HEADER_SIZE + TABLE_ITEM_SIZE * n + TABLE_TAIL_SIZE)
  out.set(encodeIndexHeader(index), 0)
  let at = INDEX_HEADER_SIZE + TABLE_HEADER_SIZE
  let expected = 0
  for (const c of index.chunks) {
    if (c.start !== expected) throw new InvalidFormatError(`index chunks are not contiguous at offset ${c.start}`)
    encodeIndexItem(c, out, at)
    at += TABLE_ITEM_SIZE
    expected = c.start + c.size
  }
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

/**
 * Streaming decoder: feed bytes with push(), read chunks as they complete, and call end() to
 * check the tail. Every offset in an error is a byte offset in the index file.
 */
export class IndexDecoder {
  header?: IndexHeader
  private pending = new Uint8Array(0)
  /** file offset of pending[0] */
  private fileOffset = 0
  private streamOffset = 0
  private count = 0
  private tailSeen = false

  /** Appends bytes; returns the chunks completed by them. */
  push (data: Uint8Array): IndexChunk[] {
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
      if (buf.byteLength < INDEX_HEADER_SIZE + TABLE_HEADER_SIZE) { this.pending = copyBytes(buf); return [] }
      this.header = decodeIndexHeader(buf)
      at = INDEX_HEADER_SIZE + TABLE_HEADER_SIZE
    }
    const out: IndexChunk[] = []
    const v = new DataView(buf.buffer, buf.byteOffset, buf.byteLength)
    while (buf.byteLength - at >= TABLE_ITEM_SIZE) {
      const offset = this.fileOffset + at
      const end = v.getBigUint64(at, true)
      if (end === 0n) {
        // the tail begins with two zero words; an item's end offset is never 0
        if (buf.byteLength - at < TABLE_TAIL_SIZE) break
        this.checkTail(v, at, offset)
        at += TABLE_TAIL_SIZE
        if (at !== buf.byteLength) throw new InvalidFormatError('data after the index tail', this.fileOffset + at)
        this.tailSeen = true
        break
      }
      if (end > BigInt(Number.MAX_SAFE_INTEGER)) throw new InvalidFormatError(`chunk end offset ${end} is too large`, offset)
      const endNum = Number(end)
      if (endNum <= this.streamOffset) throw new InvalidFormatError(`chunk end offsets are not increasing (${endNum} after ${this.streamOffset})`, offset)
      const size = endNum - this.streamOffset
      if (size > this.header.chunkSizeMax) throw new InvalidFormatError(`chunk of ${size} bytes exceeds the index's max chunk size ${this.header.chunkSizeMax}`, offset)
      const id = new ChunkId(copyBytes(buf, at + 8, at + 8 + CHUNK_ID_SIZE))
      out.push({ id, start: this.streamOffset, size })
      this.streamOffset = endNum
      this.count++
      at += TABLE_ITEM_SIZE
    }
    this.pending = at === buf.byteLength ? new Uint8Array(0) : copyBytes(buf, at)
    this.fileOffset += at
    return out
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
}

export function decodeIndex (bytes: Uint8Array): Index {
  const decoder = new IndexDecoder()
  const chunks = decoder.push(bytes)
  decoder.end()
  return { ...decoder.header!, chunks }
}

export async function * decodeIndexStream (source: AsyncIterable<Uint8Array> | Iterable<Uint8Array>): AsyncGenerator<IndexChunk> {
  const decoder = new IndexDecoder()
  for await (const data of source) yield * decoder.push(data)
  decoder.end()
}
