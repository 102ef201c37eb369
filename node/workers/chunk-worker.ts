// Worker thread for CPU-bound chunk work: hashing, compressing (and writing into a local store),
// decompressing and verifying. Runs the same protocol/ code as the main thread.
import { randomBytes } from 'node:crypto'
import * as fs from 'node:fs'
import * as path from 'node:path'
import { parentPort, workerData } from 'node:worker_threads'
import { copyBytes, isZero, ownBuffer } from '../../protocol/bytes.ts'
import { ChunkId, chunkPath, digestBytes, type DigestAlgorithm, zeroChunkId } from '../../protocol/chunk-id.ts'
import { compress, compressSync, type Compression, decompress, decompressSync } from '../../protocol/compression.ts'
import { ChunkInvalidError, ChunkMissingError } from '../../protocol/errors.ts'
import type { LocalPlaceSource, PlaceSource, WorkerReply, WorkerRequest } from './pool.ts'
import type { HttpStore, HttpStoreStats } from '../store/http-store.ts'
import { useNativeChunker } from '../native-chunker.ts'
import { flushOut, placedFor, slowReadInto, willNeed, writeOut } from '../native-io.ts'
import { chunkFile } from './chunk-file.ts'
import { probeSeedSlice, scanSeedRange } from './seed-scan.ts'

useNativeChunker()

const madeDirs = new Set<string>()

function exists (file: string): boolean {
  try { fs.accessSync(file); return true } catch { return false }
}

async function handle (req: WorkerRequest): Promise<{ reply: WorkerReply, transfer: ArrayBuffer[] }> {
  if (req.op === 'hash') {
    const id = digestBytes(new Uint8Array(req.data), req.digest)
    return { reply: { seq: req.seq, id: copyBytes(id) }, transfer: [] }
  }
  if (req.op === 'store') {
    const data = new Uint8Array(req.data)
    const idBytes = digestBytes(data, req.digest)
    const id = new ChunkId(idBytes)
    if (req.storePath != null) {
      const stored = await storeLocal(id, data, req.storePath, req.extension, req.compression)
      return { reply: { seq: req.seq, id: copyBytes(idBytes), stored: stored >= 0, storedBytes: Math.max(0, stored) }, transfer: [] }
    }
    const compressed = await compress(data, req.compression)
    const buffer = ownBuffer(compressed)
    return { reply: { seq: req.seq, id: copyBytes(idBytes), compressed: buffer }, transfer: [buffer] }
  }
  if (req.op === 'store-batch') {
    const ends = new Int32Array(req.sizes.length)
    let at = 0
    for (let i = 0; i < req.sizes.length; i++) ends[i] = at += req.sizes[i]!
    const ids = new Uint8Array(req.sizes.length * 32)
    const storedSizes = new Int32Array(req.sizes.length)
    await storeChunks(new Uint8Array(req.data), ends, req, ids, storedSizes)
    return { reply: { seq: req.seq, ids, storedSizes }, transfer: [ids.buffer, storedSizes.buffer] }
  }
  if (req.op === 'check') {
    const buf = Buffer.allocUnsafe(req.size)
    const n = fs.readSync(req.fd, buf, 0, req.size, req.offset)
    const match = n === req.size && new ChunkId(digestBytes(buf, req.digest)).equals(new ChunkId(new Uint8Array(req.id)))
    return { reply: { seq: req.seq, match }, transfer: [] }
  }
  if (req.op === 'cuts') { const ends = findCuts(req); return { reply: { seq: req.seq, ends }, transfer: [ends.buffer as ArrayBuffer] } }
  if (req.op === 'store-range') { const r = await storeRange(req); return { reply: { seq: req.seq, ids: r.ids, storedSizes: r.stored }, transfer: [r.ids.buffer as ArrayBuffer, r.stored.buffer as ArrayBuffer] } }
  if (req.op === 'seed') return { reply: { seq: req.seq, ...scanSeedRange(req) }, transfer: [] }
  if (req.op === 'seed-probe') return { reply: { seq: req.seq, ...probeSeedSlice(req) }, transfer: [] }
  if (req.op === 'place-batch') {
    // start reading every chunk file of the batch at once (a store on disk), then take them in turn
    const files: string[] = []
    for (const item of req.items) {
      const from = item.from.find(f => f != null)
      if (from?.kind === 'store') files.push(path.join(from.path, chunkPath(new ChunkId(new Uint8Array(item.id)), from.extension)))
    }
    willNeed(files)
    const placeItem = async (item: typeof req.items[number], k: number): Promise<NonNullable<WorkerReply['placed']>[number]> => {
      const failures: Failure[] = []
      for (let i = 0; i < item.from.length; i++) {
        const from = item.from[i]
        if (from == null) continue
        const r = from.kind === 'http'
          ? await placeHttp(item, from, req, gathered == null ? undefined : (plain) => { gathered!.put(k, plain) })
          : place({ op: 'place', seq: 0, id: item.id, size: item.size, digest: req.digest, outFd: req.outFd, outDirectFd: req.outDirectFd, outOffset: item.outOffset, from, sparse: req.sparse })
        if (r.status === 'ok') return { from: i, zero: r.zero, failures }
        failures.push({ source: i, status: r.detail === 'xz' ? 'xz' : r.status!, detail: r.detail, code: r.code })
      }
      return { from: -1, failures }
    }
    let gathered: Gathered | null = null
    if (!req.items.some(item => item.from.some(f => f?.kind === 'http'))) {
      // local sources only: synchronously, in runs written at once when the chunks are back to back
      const runs = placeRuns(req)
      if (runs != null) return { reply: { seq: req.seq, placed: runs }, transfer: [] }
      const placed: NonNullable<WorkerReply['placed']> = []
      for (let k = 0; k < req.items.length; k++) placed.push(await placeItem(req.items[k]!, k))
      return { reply: { seq: req.seq, placed }, transfer: [] }
    }
    // HTTP: every chunk of the batch requested at once (the store bounds the requests in flight);
    // chunks that arrive are gathered and written together, in runs of back-to-back chunks
    gathered = Gathered.of(req.items)
    const placed = await Promise.all(req.items.map(placeItem))
    gathered?.write(req.outFd, req.outDirectFd)
    return { reply: { seq: req.seq, placed, httpStats: httpStatsDelta() }, transfer: [] }
  }
  if (req.op === 'assemble-batch') {
    const r = assembleRun(req)
    return { reply: { seq: req.seq, plain: r.plain, placed: r.placed }, transfer: [r.plain] }
  }
  if (req.op === 'flush-out') {
    flushOut()
    return { reply: { seq: req.seq }, transfer: [] }
  }
  if (req.op === 'http-close') {
    for (const [key, entry] of httpStores) {
      if (entry.store.url !== req.url) continue
      httpStores.delete(key)
      await entry.store.close()
    }
    return { reply: { seq: req.seq }, transfer: [] }
  }
  if (req.op === 'place') {
    const r = req.from.kind === 'http' ? await placeHttp({ id: req.id, size: req.size, outOffset: req.outOffset }, req.from, req) : place({ ...req, from: req.from })
    return { reply: { seq: req.seq, ...r, httpStats: req.from.kind === 'http' ? httpStatsDelta() : undefined }, transfer: [] }
  }
  // decode: decompress (unless plain) and verify
  const id = new ChunkId(new Uint8Array(req.id))
  let plain: Uint8Array
  if (req.compressed) {
    try {
      plain = await decompress(new Uint8Array(req.data), { maxSize: req.size ?? req.maxSize })
    } catch (err: any) {
      throw new ChunkInvalidError(id, undefined, `chunk ${id.toString()} cannot be decompressed: ${String(err?.message ?? err)}`)
    }
  } else {
    plain = new Uint8Array(req.data)
  }
  if (req.size != null && plain.byteLength !== req.size) throw new ChunkInvalidError(id, undefined, `chunk ${id.toString()} has ${plain.byteLength} bytes, the index says ${req.size}`)
  if (req.verify !== false) {
    const actual = new ChunkId(digestBytes(plain, req.digest))
    if (!actual.equals(id)) throw new ChunkInvalidError(id, actual)
  }
  const buffer = ownBuffer(plain)
  return { reply: { seq: req.seq, plain: buffer }, transfer: [buffer] }
}

/** Cut positions from an arbitrary start (see node/make.ts for how ranges are stitched together). */
function findCuts (req: Extract<WorkerRequest, { op: 'cuts' }>): Float64Array {
  const ends: number[] = []
  chunkFile(req.fd, req.start, req.until, req, (offset, data) => { ends.push(offset + data.byteLength) })
  return Float64Array.from(ends)
}

/**
 * Hashes each chunk of `region` (chunk i ends at ends[i]) into ids and stores it in the local
 * store; storedSizes[i] gets the bytes written, or -1 when the store had it. `afterStored` runs
 * after each chunk written (store-range's cancellation check).
 */
async function storeChunks (region: Uint8Array, ends: ArrayLike<number>, req: { digest: DigestAlgorithm, storePath: string, extension: string, compression: Compression }, ids: Uint8Array, storedSizes: Int32Array, afterStored?: () => void): Promise<void> {
  let from = 0
  for (let i = 0; i < ends.length; i++) {
    const data = region.subarray(from, ends[i]!)
    // a run of zeros (free space) is cut into chunks of zeros, whose ID is known: no hash
    const idBytes = isZero(data) ? zeroChunkId(data.byteLength, req.digest) : digestBytes(data, req.digest)
    ids.set(idBytes, i * 32)
    storedSizes[i] = await storeLocal(new ChunkId(idBytes), data, req.storePath, req.extension, req.compression)
    if (storedSizes[i]! >= 0) afterStored?.()
    from = ends[i]!
  }
}

/** Hashes a run of chunks read from fd and writes those the local store lacks. */
async function storeRange (req: Extract<WorkerRequest, { op: 'store-range' }>): Promise<{ ids: Uint8Array, stored: Int32Array }> {
  // Ranges queued on this worker are taken one at a time (xz compression awaits, which would let
  // the next one start), so one range's bytes are in memory per worker.
  const previous = computing
  let release!: () => void
  computing = new Promise<void>((resolve) => { release = resolve })
  await previous
  const cancelled = (): boolean => req.cancel != null && Atomics.load(req.cancel, 0) !== 0
  const ids = new Uint8Array(req.ends.length * 32)
  const storedSizes = new Int32Array(req.ends.length).fill(-1)
  try {
    if (cancelled()) throw Object.assign(new Error('cancelled'), { code: 'ABORT_ERR' })
    const total = req.ends[req.ends.length - 1]! - req.start
    // one buffer per worker, reused range after range; the range starts where the kernel copies
    // into it at full speed (placedFor)
    if (rangeScratch.byteLength < total + 64) rangeScratch = Buffer.allocUnsafe(Math.max(total + 64, rangeScratch.byteLength * 2))
    const region = placedFor(rangeScratch, req.start, total)
    let got = 0
    while (got < total) {
      const n = fs.readSync(req.fd, region, got, total - got, req.start + got)
      if (n === 0) throw Object.assign(new Error(`input shrank while it was read (short read at ${req.start + got})`), { code: 'EIO' })
      got += n
    }
    const ends = req.ends.map(e => e - req.start)
    await storeChunks(region, ends, req, ids, storedSizes, () => {
      if (cancelled()) throw Object.assign(new Error('cancelled'), { code: 'ABORT_ERR' })
    })
  } finally {
    release()
  }
  return { ids, stored: storedSizes }
}

let rangeScratch = Buffer.allocUnsafe(0)
/** the store-range now reading and compressing on this worker (xz compression awaits) */
let computing: Promise<void> = Promise.resolve()

interface PreparedChunk { id: ChunkId, file: string, compressed: Uint8Array }

/**
 * Where a chunk's file goes, or null when the store has it. `absent`: the caller knows the store
 * lacks it (its directory was just made), so the file system is not asked.
 */
function newChunkFile (id: ChunkId, storePath: string, extension: string, absent: boolean): string | null {
  const file = path.join(storePath, chunkPath(id, extension))
  if (!absent && (exists(file) || exists(path.join(storePath, chunkPath(id, ''))))) return null
  return file
}

/**
 * Creates a chunk file's directory unless it is in `known`: true when this call made it, so that
 * it holds nothing yet. A plain mkdir (the store root exists): a recursive one costs several
 * system calls per chunk, and most chunks of a fresh store land in a directory of their own.
 */
function ensureChunkDir (dir: string, known: Set<string>): boolean {
  if (known.has(dir)) return false
  let made = true
  try { fs.mkdirSync(dir) } catch (err: any) {
    if (err.code === 'ENOENT') fs.mkdirSync(dir, { recursive: true })
    else if (err.code === 'EEXIST') made = false
    else throw err
  }
  known.add(dir)
  return made
}

// temporary names as casync's, `<4hex>/<id>.<16 hex>.tmp`: 8 random hex chosen once per thread,
// then a counter (a random name per chunk cost ~45 ms per worker for 512 MiB)
const tmpPrefix = randomBytes(4).toString('hex')
let tmpCounter = 0

/**
 * Writes a chunk file under a temporary name and renames it into place (the store layout of
 * LocalStore); its directory exists. Synchronously: writing on libuv's pool beside the workers was
 * measured slower (more threads contending for the file system's locks; 4.5 against 3.0 s for
 * 512 MiB).
 */
function writeChunkFileSync ({ id, file, compressed }: PreparedChunk): void {
  const tmp = `${path.dirname(file)}/${id.toString()}.${tmpPrefix}${(tmpCounter++ >>> 0).toString(16).padStart(8, '0')}.tmp`
  try {
    try {
      fs.writeFileSync(tmp, compressed, { mode: 0o444 })
    } catch (err: any) {
      // the directory was known to exist but is gone (the store was removed since): make it again
      if (err.code !== 'ENOENT') throw err
      fs.mkdirSync(path.dirname(file), { recursive: true })
      fs.writeFileSync(tmp, compressed, { mode: 0o444 })
    }
    fs.renameSync(tmp, file)
  } catch (err) {
    try { fs.rmSync(tmp, { force: true }) } catch {}
    throw err
  }
}

// A directory this worker made holds nothing until it writes a chunk there, so the first chunk for
// it need not be looked for: on a fresh store most chunks get a directory of their own, and asking
// whether each is there cost ~0.4 s per worker for 512 MiB. (At most one entry per directory;
// never a claim that a chunk is there.)
const emptyDirs = new Set<string>()

/** Writes a chunk into a local store unless present: its stored size, or -1 when it was there. */
async function storeLocal (id: ChunkId, data: Uint8Array, storePath: string, extension: string, compression: Compression): Promise<number> {
  const dir = path.join(storePath, id.toString().slice(0, 4))
  if (ensureChunkDir(dir, madeDirs)) emptyDirs.add(dir)
  const file = newChunkFile(id, storePath, extension, emptyDirs.has(dir))
  if (file == null) return -1
  // zstd and gzip into this thread's reused output buffer (compressSync reuseOutput), written
  // before anything else runs on this thread that could compress into it again; xz awaits
  const compressed = compression === 'xz' ? await compress(data, compression) : compressSync(data, compression, { reuseOutput: true })
  writeChunkFileSync({ id, file, compressed })
  emptyDirs.delete(dir)
  return compressed.byteLength
}

// This worker's copies of the HTTP stores it was asked to fetch from (its own connections), and
// what each had counted when its stats were last reported.
const httpStores = new Map<string, { store: HttpStore, reported: HttpStoreStats }>()
let httpStoreModule: Promise<typeof import('../store/http-store.ts')> | undefined
if ((workerData as { preloadHttp?: boolean } | null)?.preloadHttp === true) {
  // an extract over HTTP is starting: load the store and undici before the first batch arrives
  httpStoreModule = import('../store/http-store.ts')
  httpStoreModule.catch(() => {})
  void import('../http/undici-core.ts').then(m => m.loadUndici()).catch(() => {})
}

async function httpStore (from: Extract<PlaceSource, { kind: 'http' }>): Promise<HttpStore> {
  const key = from.key
  let entry = httpStores.get(key)
  if (entry == null) {
    httpStoreModule ??= import('../store/http-store.ts')
    const { HttpStore } = await httpStoreModule
    entry = httpStores.get(key) // another chunk may have opened it meanwhile
    if (entry == null) {
      const store = new HttpStore(from.url, from.init)
      entry = { store, reported: store.stats }
      httpStores.set(key, entry)
    }
  }
  return entry.store
}

/** What each HTTP store counted since the last call, by URL. */
function httpStatsDelta (): Record<string, HttpStoreStats> {
  const out: Record<string, HttpStoreStats> = {}
  for (const entry of httpStores.values()) {
    const now = entry.store.stats
    const delta = { ...now }
    for (const key of Object.keys(now) as Array<keyof HttpStoreStats>) delta[key] = now[key] - (entry.reported[key] ?? 0)
    entry.reported = now
    const sum = out[entry.store.url]
    if (sum == null) out[entry.store.url] = delta
    else for (const key of Object.keys(delta) as Array<keyof HttpStoreStats>) sum[key] += delta[key]
  }
  return out
}

/**
 * The verified chunks of one batch, in one buffer at their places, until write() puts each run
 * of back-to-back chunks into the output in one go.
 */
class Gathered {
  private readonly items: ReadonlyArray<{ outOffset: number, size: number }>
  private readonly region: Buffer
  private readonly base: number
  private readonly got: Uint8Array

  private constructor (items: ReadonlyArray<{ outOffset: number, size: number }>, base: number, span: number) {
    this.items = items
    this.base = base
    this.region = Buffer.allocUnsafe(span)
    this.got = new Uint8Array(items.length)
  }

  /** null when the items are not in output order or lie too far apart to gather */
  static of (items: ReadonlyArray<{ outOffset: number, size: number }>): Gathered | null {
    const s = orderedSpan(items, 16 << 20)
    return s == null ? null : new Gathered(items, s.base, s.span)
  }

  /** item k's verified bytes */
  put (k: number, plain: Uint8Array): void {
    this.region.set(plain, this.items[k]!.outOffset - this.base)
    this.got[k] = 1
  }

  write (fd: number, directFd: number | undefined): void {
    for (let k = 0; k < this.items.length;) {
      if (this.got[k] === 0) { k++; continue }
      const from = this.items[k]!.outOffset
      let to = from + this.items[k]!.size
      for (k++; k < this.items.length && this.got[k] === 1 && this.items[k]!.outOffset === to; k++) to += this.items[k]!.size
      writeOut(fd, this.region.subarray(from - this.base, to - this.base), from, directFd)
    }
  }
}

/**
 * Fetches one chunk from an HTTP store, verified (HttpStore.get), and writes it into the output,
 * or hands it to `gather` (which writes it later).
 */
async function placeHttp (item: { id: Uint8Array, size: number, outOffset: number }, from: Extract<PlaceSource, { kind: 'http' }>, req: { outFd: number, outDirectFd?: number, sparse?: boolean }, gather?: (plain: Uint8Array) => void): Promise<Pick<WorkerReply, 'status' | 'detail' | 'zero' | 'code'>> {
  const id = new ChunkId(new Uint8Array(item.id))
  const store = await httpStore(from)
  let plain: Uint8Array
  try {
    plain = await store.get(id, { size: item.size })
  } catch (err: any) {
    if (err?.code === ChunkMissingError.code) return { status: 'missing' }
    if (err?.code === ChunkInvalidError.code) return { status: 'invalid', detail: `${store.toString()}: ${String(err.message)}` }
    return { status: 'error', detail: String(err?.message ?? err), code: err?.code }
  }
  const zero = isZero(plain)
  if (zero && req.sparse === true) return { status: 'ok', zero }
  if (gather != null) gather(plain)
  else writeOut(req.outFd, plain, item.outOffset, req.outDirectFd)
  return { status: 'ok', zero }
}

// Scratch buffers reused by place(), which is synchronous: one chunk file in, one plain chunk out.
// Files are read into views placed where the kernel copies at full speed (placedFor), which is
// what the 64 spare bytes are for. Made on first use (placing them asks the native addon).
let fileScratch: Uint8Array = new Uint8Array(0)
let plainScratchRaw: Uint8Array = new Uint8Array(0)

/** A whole file read into the reused scratch buffer (a view, valid until the next call), or null if absent. */
function readWhole (file: string): Uint8Array | null {
  let fd: number
  try { fd = fs.openSync(file, 'r') } catch (err: any) { if (err.code === 'ENOENT' || err.code === 'ENOTDIR') return null; throw err }
  try {
    const size = fs.fstatSync(fd).size
    if (fileScratch.byteLength < size + 1) {
      const length = Math.max(size + 1, 1 << 18)
      fileScratch = placedFor(Buffer.allocUnsafe(length + 64), 0, length)
    }
    let got = 0
    for (;;) {
      // read one byte more than the size, so a file that grew is still read whole
      const n = fs.readSync(fd, fileScratch, got, fileScratch.byteLength - got, got)
      if (n === 0) break
      got += n
      if (got === fileScratch.byteLength) {
        const bigger = placedFor(Buffer.allocUnsafe(fileScratch.byteLength * 2 + 64), 0, fileScratch.byteLength * 2)
        bigger.set(fileScratch)
        fileScratch = bigger
      }
    }
    return fileScratch.subarray(0, got)
  } finally {
    fs.closeSync(fd)
  }
}

type LocalSource = LocalPlaceSource
type Verified = { status: 'ok', plain: Uint8Array } | { status: 'missing' | 'invalid', detail?: string }

/**
 * One chunk's verified plain bytes from a local store or a seed file. With `into` (room for
 * size + 1 bytes), they are read or decompressed there when possible; otherwise into a scratch
 * buffer. The bytes stay valid until the next call.
 */
function verified (id: ChunkId, size: number, digest: DigestAlgorithm, from: LocalSource, into?: Uint8Array): Verified {
  let plain: Uint8Array
  let where: string
  const scratch = (position: number): Uint8Array => {
    if (plainScratchRaw.byteLength < size + 1 + 64) plainScratchRaw = Buffer.allocUnsafe(Math.max(size + 1, 1 << 18) + 64)
    return placedFor(plainScratchRaw, position, size + 1)
  }
  const target = into != null && into.byteLength >= size + 1 ? into : undefined
  const room = (): Uint8Array => target ?? scratch(0)
  if (from.kind === 'file') {
    where = `offset ${from.offset}`
    // straight into `target` unless the kernel would copy there at its slow speed (slowReadInto):
    // then into scratch placed for the offset, and on (a user-space copy costs far less)
    const direct = target != null && !slowReadInto(target, from.offset)
    const buf = (direct ? target : scratch(from.offset)).subarray(0, size)
    const n = fs.readSync(from.fd, buf, 0, size, from.offset)
    if (n !== size) return { status: 'missing', detail: `short read at ${where}` }
    if (target != null && !direct) { target.set(buf); plain = target.subarray(0, size) } else plain = buf
  } else {
    where = path.join(from.path, chunkPath(id, from.extension))
    let stored = readWhole(where)
    let compressed = true
    if (stored == null) {
      // an uncompressed chunk stored without suffix (spec §2.2); a symlink there means known-missing
      const plainFile = path.join(from.path, chunkPath(id, ''))
      try { if (!fs.lstatSync(plainFile).isFile()) return { status: 'missing' } } catch { return { status: 'missing' } }
      stored = readWhole(plainFile)
      if (stored == null) return { status: 'missing' }
      compressed = false
      where = plainFile
    }
    if (compressed) {
      try {
        plain = decompressSync(stored, { maxSize: size, into: room() })
      } catch (err: any) {
        if (err?.message?.includes('xz chunks need') === true) return { status: 'missing', detail: 'xz' } // caller decodes xz on the async path
        return { status: 'invalid', detail: `${where}: cannot be decompressed: ${String(err?.message ?? err)}` }
      }
    } else {
      plain = stored
    }
  }
  if (plain.byteLength !== size) return { status: 'invalid', detail: `${where}: chunk ${id.toString()} has ${plain.byteLength} bytes, the index says ${size}` }
  const actual = new ChunkId(digestBytes(plain, digest))
  if (!actual.equals(id)) return { status: from.kind === 'file' ? 'missing' : 'invalid', detail: `${where}: chunk ${id.toString()} hashes to ${actual.toString()}` }
  return { status: 'ok', plain }
}

/** Reads, verifies and writes one chunk; never writes bytes that failed verification. */
function place (req: Extract<WorkerRequest, { op: 'place' }> & { from: LocalSource }): Pick<WorkerReply, 'status' | 'detail' | 'zero' | 'code'> {
  const r = verified(new ChunkId(new Uint8Array(req.id)), req.size, req.digest, req.from)
  if (r.status !== 'ok') return r
  const zero = isZero(r.plain)
  if (zero && req.sparse === true) return { status: 'ok', zero } // the output already holds these zeros
  writeOut(req.outFd, r.plain, req.outOffset, req.outDirectFd)
  return { status: 'ok', zero }
}

let regionScratch = Buffer.allocUnsafe(0)

/**
 * place-batch from local sources, items in output order: each chunk is decompressed (or read)
 * straight into one buffer at its place, and each run of verified chunks that lie back to back
 * goes out in one write (the two workers share the output file's lock: fewer, larger writes).
 * Returns null when the items are not in order or spread too far.
 */
function placeRuns (req: Extract<WorkerRequest, { op: 'place-batch' }>): NonNullable<WorkerReply['placed']> | null {
  const items = req.items
  const s = orderedSpan(items, 64 << 20)
  if (s == null) return null
  const { base, span } = s
  if (regionScratch.byteLength < span + 1) regionScratch = Buffer.allocUnsafe(span + 1)
  const region = regionScratch
  let runStart = -1 // offset in region of verified bytes not yet written
  let runEnd = -1
  const flush = (): void => {
    if (runStart >= 0 && runEnd > runStart) writeOut(req.outFd, region.subarray(runStart, runEnd), base + runStart, req.outDirectFd)
    runStart = -1
  }
  const placed: NonNullable<WorkerReply['placed']> = []
  for (const item of items) {
    const at = item.outOffset - base
    const { from, failures, plain } = placeInto(item, req.digest, region, at)
    const zero = plain != null && isZero(plain)
    placed.push({ from, zero, failures })
    if (from < 0 || (zero && req.sparse === true)) { flush(); continue } // nothing to write here
    if (runStart >= 0 && runEnd !== at) flush() // a gap (a chunk placed elsewhere): a new run
    if (runStart < 0) runStart = at
    runEnd = at + item.size
  }
  flush()
  return placed
}

/**
 * assemble-batch: each chunk is decompressed (or read) straight into one buffer at its place and
 * verified there; the buffer goes back to the caller whole.
 */
function assembleRun (req: Extract<WorkerRequest, { op: 'assemble-batch' }>): { plain: ArrayBuffer, placed: NonNullable<WorkerReply['placed']> } {
  let span = 0
  for (const item of req.items) span += item.size
  // a chunk may use one byte past its place (an oversized frame is caught there): the next
  // chunk's first byte, before that chunk is placed, or this spare byte at the end
  const region = new Uint8Array(new ArrayBuffer(span + 1))
  const placed: NonNullable<WorkerReply['placed']> = []
  let at = 0
  for (const item of req.items) {
    const { from, failures } = placeInto(item, req.digest, region, at)
    placed.push({ from, failures })
    at += item.size
  }
  return { plain: region.buffer, placed }
}

/**
 * One item of a batch, from the first of its local sources that has a good copy, verified and at
 * `at` in `region` (decompressed or read straight there when it can be). `region` must have a
 * byte to spare after the item: an oversized frame is caught there.
 */
function placeInto (item: { id: Uint8Array, size: number, from: ReadonlyArray<PlaceSource | null> }, digest: DigestAlgorithm, region: Uint8Array, at: number): { from: number, failures: Failure[], plain?: Uint8Array } {
  const id = new ChunkId(new Uint8Array(item.id))
  const failures: Failure[] = []
  for (let i = 0; i < item.from.length; i++) {
    const source = item.from[i]
    if (source == null || source.kind === 'http') continue
    const r = verified(id, item.size, digest, source, region.subarray(at))
    if (r.status !== 'ok') { failures.push({ source: i, status: r.detail === 'xz' ? 'xz' : r.status, detail: r.detail }); continue }
    if (r.plain.buffer !== region.buffer || r.plain.byteOffset !== region.byteOffset + at) region.set(r.plain, at)
    return { from: i, failures, plain: region.subarray(at, at + item.size) }
  }
  return { from: -1, failures }
}

type Failure = NonNullable<WorkerReply['placed']>[number]['failures'][number]

/**
 * Where items lie in the output, when they are in order without overlap: the first one's offset
 * and the bytes from there to the last one's end; null when not, when fewer than two, or when
 * they spread over more than `max` bytes.
 */
function orderedSpan (items: ReadonlyArray<{ outOffset: number, size: number }>, max: number): { base: number, span: number } | null {
  if (items.length < 2) return null
  for (let i = 1; i < items.length; i++) if (items[i]!.outOffset < items[i - 1]!.outOffset + items[i - 1]!.size) return null
  const base = items[0]!.outOffset
  const span = items[items.length - 1]!.outOffset + items[items.length - 1]!.size - base
  return span > max ? null : { base, span }
}

parentPort!.on('message', (req: WorkerRequest) => {
  handle(req).then(({ reply, transfer }) => {
    parentPort!.postMessage(reply, transfer)
  }, (err: any) => {
    parentPort!.postMessage({ seq: req.seq, error: { message: String(err?.message ?? err), code: err?.code, name: err?.name } } satisfies WorkerReply)
  })
})
