// Chunk compression framing (spec §2.3): write zstd (casync's default, level 3), xz (preset 6,
// CRC64) or gzip (deflate level 6 with the gzip wrapper); read any of them by magic, as casync:
// xz first, then gzip, then zstd. One stream per chunk; trailing bytes are an error.
import { createRequire } from 'node:module'
import * as zlib from 'node:zlib'
import { GZIP_MAGIC, MAX_CHUNK_DECOMPRESSED, XZ_MAGIC, XZ_PRESET, ZSTD_LEVEL, ZSTD_MAGIC } from './constants.ts'
import { InvalidFormatError } from './errors.ts'

const require = createRequire(import.meta.url)
// zstd-napi: the low-level binding gives a bounded streaming decompressor (no zstd in Node 20's zlib)
const zstd = require('zstd-napi/binding.js') as typeof import('zstd-napi/binding.js')
// lzma-native is CommonJS; its default export carries the API. Loaded on first use (xz only).
let lzmaModule: any
function lzma (): any {
  lzmaModule ??= require('lzma-native')
  return lzmaModule
}

export type Compression = 'zstd' | 'xz' | 'gzip'
export const COMPRESSIONS: readonly Compression[] = ['zstd', 'xz', 'gzip']
export const DEFAULT_COMPRESSION: Compression = 'zstd'

export function parseCompression (name: string): Compression {
  if (name === 'default') return DEFAULT_COMPRESSION
  if ((COMPRESSIONS as readonly string[]).includes(name)) return name as Compression
  throw new InvalidFormatError(`unknown compression "${name}" (zstd, xz or gzip)`)
}

function startsWith (data: Uint8Array, magic: Uint8Array): boolean {
  if (data.byteLength < magic.byteLength) return false
  for (let i = 0; i < magic.byteLength; i++) if (data[i] !== magic[i]) return false
  return true
}

/** Which compression a chunk file uses, from its magic bytes (null: none casync knows). */
export function detectCompression (data: Uint8Array): Compression | null {
  if (startsWith(data, XZ_MAGIC)) return 'xz'
  if (startsWith(data, GZIP_MAGIC)) return 'gzip'
  if (startsWith(data, ZSTD_MAGIC)) return 'zstd'
  return null
}

let cctx: InstanceType<typeof zstd.CCtx> | undefined
let dctx: InstanceType<typeof zstd.DCtx> | undefined

/** zstd output space reused by compressSync(..., { reuseOutput: true }) */
let zstdScratch: Buffer | undefined

function zstdCompress (data: Uint8Array, reuseOutput = false): Uint8Array {
  if (cctx == null) {
    cctx = new zstd.CCtx()
    cctx.setParameter(zstd.CParameter.compressionLevel, ZSTD_LEVEL)
  }
  const bound = zstd.compressBound(data.byteLength)
  let out: Buffer
  if (reuseOutput) {
    if (zstdScratch == null || zstdScratch.byteLength < bound) zstdScratch = Buffer.allocUnsafe(Math.max(bound, 2 * (zstdScratch?.byteLength ?? 0)))
    out = zstdScratch
  } else {
    out = Buffer.allocUnsafe(bound)
  }
  const n = cctx.compress2(out, data)
  return out.subarray(0, n)
}

function zstdDecompress (data: Uint8Array, maxSize: number, into?: Uint8Array): Uint8Array {
  if (dctx == null) dctx = new zstd.DCtx()
  dctx.reset(zstd.ResetDirective.sessionOnly)
  // One frame into a buffer one byte larger than allowed, so an oversized frame is caught.
  const need = Math.min(maxSize, MAX_CHUNK_DECOMPRESSED) + 1
  const out = into != null && into.byteLength >= need ? into.subarray(0, need) : Buffer.allocUnsafe(need)
  let input = data
  let produced = 0
  for (;;) {
    const [remaining, wrote, read] = dctx.decompressStream(out.subarray(produced), input)
    produced += wrote
    input = input.subarray(read)
    if (remaining === 0) break // frame complete
    if (produced >= out.byteLength) throw new InvalidFormatError(`zstd chunk decompresses to more than ${maxSize} bytes`)
    if (input.byteLength === 0 && wrote === 0) throw new InvalidFormatError('zstd chunk is truncated')
  }
  if (input.byteLength !== 0) throw new InvalidFormatError('zstd chunk has trailing noise after its frame')
  if (produced > maxSize) throw new InvalidFormatError(`zstd chunk decompresses to more than ${maxSize} bytes`)
  return out.subarray(0, produced)
}

export interface CompressOptions {
  /**
   * zstd: compress into one buffer reused call after call (the result is a view of it, good only
   * until the next call on this thread). A maker writing a store's chunks one after another
   * would otherwise leave a chunk-sized buffer behind per chunk, tens of MB of them on each
   * thread by the time the garbage collector looks.
   */
  reuseOutput?: boolean
}

/** Synchronous compression for zstd and gzip (what worker threads use); xz is async only. */
export function compressSync (data: Uint8Array, compression: Compression, options: CompressOptions = {}): Uint8Array {
  if (compression === 'zstd') return zstdCompress(data, options.reuseOutput === true)
  if (compression === 'gzip') return zlib.gzipSync(data, { level: 6, windowBits: 15, memLevel: 8 })
  throw new InvalidFormatError(`${compression} has no synchronous compressor here`)
}

export async function compress (data: Uint8Array, compression: Compression = DEFAULT_COMPRESSION): Promise<Uint8Array> {
  if (compression !== 'xz') return compressSync(data, compression)
  const out: Buffer = await lzma().compress(Buffer.from(data.buffer, data.byteOffset, data.byteLength), { preset: XZ_PRESET, check: lzma().CHECK_CRC64 })
  return out
}

export interface DecompressOptions {
  /** Largest plain size allowed (a chunk's size is known from its index). @default 128 MiB - 1 */
  maxSize?: number
  /**
   * Scratch space for the plain bytes (zstd only): when it holds maxSize + 1 bytes, the result is
   * a view into it, valid until the next call that uses it. Saves an allocation per chunk.
   */
  into?: Uint8Array
}

function decompressError (compression: Compression, err: any): InvalidFormatError {
  if (err instanceof InvalidFormatError) return err
  return new InvalidFormatError(`${compression} chunk is corrupt: ${String(err?.message ?? err)}`)
}

/** Synchronous decompression for zstd and gzip; throws InvalidFormatError for xz or bad data. */
export function decompressSync (data: Uint8Array, options: DecompressOptions = {}): Uint8Array {
  const maxSize = options.maxSize ?? MAX_CHUNK_DECOMPRESSED
  const compression = detectCompression(data)
  if (compression == null) throw new InvalidFormatError('chunk is not compressed with zstd, xz or gzip (unknown magic)')
  try {
    if (compression === 'zstd') return zstdDecompress(data, maxSize, options.into)
    if (compression === 'gzip') {
      const out = zlib.gunzipSync(data, { maxOutputLength: Math.max(1, maxSize) })
      // zlib skips bytes after the first member and decodes further members; casync refuses both.
      // With one member and nothing after it, the file ends in the member's CRC32 and ISIZE.
      const tail = new DataView(data.buffer, data.byteOffset + data.byteLength - 8, 8)
      if (tail.getUint32(0, true) !== zlib.crc32(out) || tail.getUint32(4, true) !== out.byteLength % 2 ** 32) {
        throw new InvalidFormatError('gzip chunk has trailing noise after its stream')
      }
      return new Uint8Array(out.buffer, out.byteOffset, out.byteLength)
    }
  } catch (err) {
    throw decompressError(compression, err)
  }
  throw new InvalidFormatError('xz chunks need the asynchronous decompress()')
}

/**
 * The length of the xz stream that ends `data` (-1 when its footer or index is not valid), from
 * the footer's backward size and the index's block records (xz file format 1.0.4, §2.1.2, §4).
 * liblzma, as lzma-native calls it, accepts stream padding and concatenated streams; casync
 * refuses any data after the first stream, so the caller compares this with the data's length.
 */
function xzStreamLength (data: Uint8Array): number {
  const n = data.byteLength
  if (n < 32 || data[n - 2] !== 0x59 || data[n - 1] !== 0x5a || data[n - 4] !== data[6] || data[n - 3] !== data[7]) return -1
  const indexSize = (new DataView(data.buffer, data.byteOffset + n - 8, 4).getUint32(0, true) + 1) * 4
  let at = n - 12 - indexSize
  if (at < 12 || data[at] !== 0) return -1
  at++
  const varint = (): number => {
    let v = 0
    for (let shift = 0; shift < 63; shift += 7) {
      const b = data[at++]
      if (b == null) return -1
      v += (b & 0x7f) * 2 ** shift
      if ((b & 0x80) === 0) return v
    }
    return -1
  }
  const records = varint()
  let blocks = 0
  for (let i = 0; i < records; i++) {
    const unpadded = varint()
    if (unpadded < 0 || varint() < 0) return -1
    blocks += Math.ceil(unpadded / 4) * 4
  }
  if (records < 0) return -1
  return 12 + blocks + indexSize + 12
}

export async function decompress (data: Uint8Array, options: DecompressOptions = {}): Promise<Uint8Array> {
  const compression = detectCompression(data)
  if (compression !== 'xz') return decompressSync(data, options)
  const maxSize = options.maxSize ?? MAX_CHUNK_DECOMPRESSED
  if (xzStreamLength(data) !== data.byteLength) throw new InvalidFormatError('xz chunk is truncated or has trailing noise after its stream')
  let out: Buffer
  try {
    out = await lzma().decompress(Buffer.from(data.buffer, data.byteOffset, data.byteLength))
  } catch (err) {
    throw decompressError('xz', err)
  }
  if (out.byteLength > maxSize) throw new InvalidFormatError(`xz chunk decompresses to more than ${maxSize} bytes`)
  return new Uint8Array(out.buffer, out.byteOffset, out.byteLength)
}
