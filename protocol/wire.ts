// The chunk-exchange protocol (/caswarm/chunks/1.0.0), after casync's REQUEST/CHUNK/MISSING
// trio, with batching and availability messages. Pure: bytes in, messages out.
//
// Each message is one length-prefixed frame (the length prefix is the stream's business, see
// node/exchange/). A frame starts with a type byte:
//
//   REQUEST  0x01  count:u16 cid*           ask for chunks; answered in order, one CHUNK/MISSING/BUSY per id
//   CHUNK    0x02  cid data                 a chunk in its stored (compressed .cacnk) form
//   MISSING  0x03  cid                      the sender does not have the chunk
//   BUSY     0x04  cid                      the sender is at its inbound limit; ask again later
//   WANT     0x10  index count:u16 cid*     the sender works on `index` and lacks these chunks
//                                           (the receiver answers with HAVE for those it holds,
//                                           and with its own WANT if it works on the same index)
//   HAVE     0x11  index? count:u16 cid*    the sender holds these chunks (announcement or answer)
//   FETCHING 0x12  index count:u16 cid*     the sender is fetching these from the origin
//   LEAVE    0x13  index                    the sender no longer works on `index`
//
// `cid` is a u16 length and a CIDv1 (raw codec, sha2-256 or sha2-512-256 multihash) from
// chunkCid(); every CID of a message uses one digest. `index` is 32 bytes (the digest of the
// index's chunk list); `index?` is a flag byte (0 or 1) and then the 32 bytes if 1.
import { CID } from 'multiformats/cid'
import { ChunkId, type DigestAlgorithm } from './chunk-id.ts'
import { chunkCid, chunkIdFromCid } from './chunk-cid.ts'
import { DEFAULT_CHUNK_SIZE_MAX } from './constants.ts'
import { InvalidFormatError, MessageTooLargeError } from './errors.ts'

export const CHUNK_EXCHANGE_PROTOCOL = '/caswarm/chunks/1.0.0'
/**
 * Largest frame accepted by default: the largest default chunk (256 KiB) grown 16-fold, so a
 * chunk of an index made with `--chunk-size` up to 1 MiB average fits, plus room for the header.
 * Exchanges for indexes with larger chunks raise it (see ChunkExchangeInit.maxMessageSize).
 */
export const MAX_MESSAGE_SIZE = DEFAULT_CHUNK_SIZE_MAX * 16 + 1024
/** Most chunk IDs in one REQUEST (a batch). */
export const MAX_REQUEST_IDS = 256
/** Most chunk IDs in one WANT/HAVE/FETCHING list (longer lists are split into several messages). */
export const MAX_LIST_IDS = 4096
export const INDEX_KEY_SIZE = 32
/** A CID of a 32-byte digest is 36 bytes (sha2-256) or 37 (sha2-512-256); anything larger is hostile. */
const MAX_CID_SIZE = 64

export const MSG = {
  REQUEST: 0x01,
  CHUNK: 0x02,
  MISSING: 0x03,
  BUSY: 0x04,
  WANT: 0x10,
  HAVE: 0x11,
  FETCHING: 0x12,
  LEAVE: 0x13
} as const

export type WireMessage =
  | { type: 'request', digest: DigestAlgorithm, ids: ChunkId[] }
  /** data is the compressed (.cacnk) form, unverified until the receiver checks it */
  | { type: 'chunk', digest: DigestAlgorithm, id: ChunkId, data: Uint8Array }
  | { type: 'missing', digest: DigestAlgorithm, id: ChunkId }
  | { type: 'busy', digest: DigestAlgorithm, id: ChunkId }
  | { type: 'want', index: Uint8Array, digest: DigestAlgorithm, ids: ChunkId[] }
  | { type: 'have', index?: Uint8Array, digest: DigestAlgorithm, ids: ChunkId[] }
  | { type: 'fetching', index: Uint8Array, digest: DigestAlgorithm, ids: ChunkId[] }
  | { type: 'leave', index: Uint8Array }

export type WireMessageType = WireMessage['type']

const cidCache = new WeakMap<ChunkId, Uint8Array>()

function cidBytes (id: ChunkId, digest: DigestAlgorithm): Uint8Array {
  if (digest === 'sha256') {
    let b = cidCache.get(id)
    if (b == null) cidCache.set(id, b = chunkCid(id, digest).bytes)
    return b
  }
  return chunkCid(id, digest).bytes
}

class Writer {
  readonly buf: Uint8Array
  private readonly view: DataView
  pos = 0
  constructor (size: number) {
    this.buf = new Uint8Array(size)
    this.view = new DataView(this.buf.buffer)
  }

  u8 (n: number): void { this.buf[this.pos++] = n }
  u16 (n: number): void { this.view.setUint16(this.pos, n); this.pos += 2 }
  bytes (b: Uint8Array): void { this.buf.set(b, this.pos); this.pos += b.byteLength }
}

function checkIndex (index: Uint8Array): void {
  if (index.byteLength !== INDEX_KEY_SIZE) throw new InvalidFormatError(`an index key has ${INDEX_KEY_SIZE} bytes, not ${index.byteLength}`)
}

function encodeList (type: number, index: Uint8Array | undefined, indexOptional: boolean, digest: DigestAlgorithm, ids: ChunkId[], max: number): Uint8Array {
  if (ids.length > max) throw new MessageTooLargeError(`${ids.length} chunk IDs in one message (at most ${max})`)
  const cids = ids.map(id => cidBytes(id, digest))
  let size = 1 + (indexOptional ? 1 : 0) + (index != null ? INDEX_KEY_SIZE : 0) + 2
  for (const c of cids) size += 2 + c.byteLength
  const w = new Writer(size)
  w.u8(type)
  if (indexOptional) w.u8(index != null ? 1 : 0)
  if (index != null) { checkIndex(index); w.bytes(index) }
  w.u16(cids.length)
  for (const c of cids) { w.u16(c.byteLength); w.bytes(c) }
  return w.buf
}

function encodeOne (type: number, digest: DigestAlgorithm, id: ChunkId, data?: Uint8Array): Uint8Array {
  const cid = cidBytes(id, digest)
  const w = new Writer(1 + 2 + cid.byteLength + (data?.byteLength ?? 0))
  w.u8(type)
  w.u16(cid.byteLength)
  w.bytes(cid)
  if (data != null) w.bytes(data)
  return w.buf
}

/** One frame's bytes. Throws MessageTooLargeError for lists longer than the protocol allows. */
export function encodeMessage (m: WireMessage, maxMessageSize = MAX_MESSAGE_SIZE): Uint8Array {
  let out: Uint8Array
  switch (m.type) {
    case 'request': out = encodeList(MSG.REQUEST, undefined, false, m.digest, m.ids, MAX_REQUEST_IDS); break
    case 'chunk': out = encodeOne(MSG.CHUNK, m.digest, m.id, m.data); break
    case 'missing': out = encodeOne(MSG.MISSING, m.digest, m.id); break
    case 'busy': out = encodeOne(MSG.BUSY, m.digest, m.id); break
    case 'want': out = encodeList(MSG.WANT, m.index, false, m.digest, m.ids, MAX_LIST_IDS); break
    case 'have': out = encodeList(MSG.HAVE, m.index, true, m.digest, m.ids, MAX_LIST_IDS); break
    case 'fetching': out = encodeList(MSG.FETCHING, m.index, false, m.digest, m.ids, MAX_LIST_IDS); break
    case 'leave': checkIndex(m.index); out = new Uint8Array(1 + INDEX_KEY_SIZE); out[0] = MSG.LEAVE; out.set(m.index, 1); break
    default: throw new InvalidFormatError(`unknown message type ${(m as any).type}`)
  }
  if (out.byteLength > maxMessageSize) throw new MessageTooLargeError(`a ${m.type} message of ${out.byteLength} bytes exceeds ${maxMessageSize}`)
  return out
}

/** Splits a long id list into messages of at most MAX_LIST_IDS (or `max`) ids. */
export function splitIds<T> (ids: T[], max = MAX_LIST_IDS): T[][] {
  const out: T[][] = []
  for (let i = 0; i < ids.length; i += max) out.push(ids.slice(i, i + max))
  return out
}

class Reader {
  private readonly b: Uint8Array
  private readonly view: DataView
  pos = 0
  constructor (b: Uint8Array) {
    this.b = b
    this.view = new DataView(b.buffer, b.byteOffset, b.byteLength)
  }

  get left (): number { return this.b.byteLength - this.pos }
  need (n: number, what: string): void {
    if (this.left < n) throw new InvalidFormatError(`truncated message: ${what} needs ${n} bytes, ${this.left} left`, this.pos)
  }

  u8 (what: string): number { this.need(1, what); return this.b[this.pos++]! }
  u16 (what: string): number { this.need(2, what); const n = this.view.getUint16(this.pos); this.pos += 2; return n }
  bytes (n: number, what: string): Uint8Array { this.need(n, what); const s = this.b.subarray(this.pos, this.pos + n); this.pos += n; return s }
  rest (): Uint8Array { const s = this.b.subarray(this.pos); this.pos = this.b.byteLength; return s }
  end (what: string): void {
    if (this.left !== 0) throw new InvalidFormatError(`${this.left} trailing bytes after ${what}`, this.pos)
  }
}

function readCid (r: Reader, digestSeen: { d?: DigestAlgorithm }): ChunkId {
  const len = r.u16('CID length')
  if (len === 0 || len > MAX_CID_SIZE) throw new InvalidFormatError(`CID of ${len} bytes`, r.pos)
  const raw = r.bytes(len, 'CID')
  let cid: CID
  try {
    cid = CID.decode(raw)
  } catch (err: any) {
    throw new InvalidFormatError(`bad CID: ${String(err?.message ?? err)}`, r.pos - len)
  }
  if (cid.version !== 1) throw new InvalidFormatError('chunk CIDs must be CIDv1', r.pos - len)
  const { id, algorithm } = chunkIdFromCid(cid)
  if (digestSeen.d != null && digestSeen.d !== algorithm) throw new InvalidFormatError('one message mixes chunk digests', r.pos - len)
  digestSeen.d = algorithm
  // copy: the frame buffer may be reused by the stream
  return new ChunkId(id.bytes.slice())
}

function readList (r: Reader, max: number, what: string): { digest: DigestAlgorithm, ids: ChunkId[] } {
  const count = r.u16(`${what} count`)
  if (count > max) throw new MessageTooLargeError(`${what} lists ${count} chunk IDs (at most ${max})`)
  const seen: { d?: DigestAlgorithm } = {}
  const ids: ChunkId[] = []
  for (let i = 0; i < count; i++) ids.push(readCid(r, seen))
  r.end(what)
  return { digest: seen.d ?? 'sha256', ids }
}

/**
 * Parses one frame. Hostile input (truncated, oversized, unknown type, bad CIDs, trailing bytes)
 * throws InvalidFormatError or MessageTooLargeError; the chunk data itself is not verified here.
 */
export function decodeMessage (bytes: Uint8Array, maxMessageSize = MAX_MESSAGE_SIZE): WireMessage {
  if (bytes.byteLength > maxMessageSize) throw new MessageTooLargeError(`message of ${bytes.byteLength} bytes exceeds ${maxMessageSize}`)
  const r = new Reader(bytes)
  const type = r.u8('message type')
  switch (type) {
    case MSG.REQUEST: {
      const { digest, ids } = readList(r, MAX_REQUEST_IDS, 'REQUEST')
      if (ids.length === 0) throw new InvalidFormatError('empty REQUEST')
      return { type: 'request', digest, ids }
    }
    case MSG.CHUNK: {
      const seen: { d?: DigestAlgorithm } = {}
      const id = readCid(r, seen)
      const data = r.rest()
      if (data.byteLength === 0) throw new InvalidFormatError(`CHUNK ${id.toString()} without data`)
      return { type: 'chunk', digest: seen.d!, id, data }
    }
    case MSG.MISSING:
    case MSG.BUSY: {
      const seen: { d?: DigestAlgorithm } = {}
      const id = readCid(r, seen)
      r.end(type === MSG.MISSING ? 'MISSING' : 'BUSY')
      return { type: type === MSG.MISSING ? 'missing' : 'busy', digest: seen.d!, id }
    }
    case MSG.WANT:
    case MSG.FETCHING: {
      const index = r.bytes(INDEX_KEY_SIZE, 'index key').slice()
      const name = type === MSG.WANT ? 'WANT' : 'FETCHING'
      const { digest, ids } = readList(r, MAX_LIST_IDS, name)
      return { type: type === MSG.WANT ? 'want' : 'fetching', index, digest, ids }
    }
    case MSG.HAVE: {
      const flag = r.u8('HAVE index flag')
      if (flag > 1) throw new InvalidFormatError(`HAVE index flag ${flag}`)
      const index = flag === 1 ? r.bytes(INDEX_KEY_SIZE, 'index key').slice() : undefined
      const { digest, ids } = readList(r, MAX_LIST_IDS, 'HAVE')
      return index != null ? { type: 'have', index, digest, ids } : { type: 'have', digest, ids }
    }
    case MSG.LEAVE: {
      const index = r.bytes(INDEX_KEY_SIZE, 'index key').slice()
      r.end('LEAVE')
      return { type: 'leave', index }
    }
    default:
      throw new InvalidFormatError(`unknown message type 0x${type.toString(16)}`, 0)
  }
}
