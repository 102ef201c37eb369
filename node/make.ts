// `make`: one pipeline from a stream to a chunk store and an index. The main thread reads and
// chunks; worker threads hash, compress and (for a local store) write each chunk, skipping
// chunks the store already holds. Results are put back in stream order.
import { createReadStream } from 'node:fs'
import * as fs from 'node:fs/promises'
import { copyBytes, ownBuffer } from '../protocol/bytes.ts'
import { createStreamDigest, digestFlag, ChunkId, type DigestAlgorithm, DEFAULT_DIGEST } from '../protocol/chunk-id.ts'
import { chunk, chunkSizes, type ChunkSizes } from '../protocol/chunker.ts'
import { type Compression, DEFAULT_COMPRESSION } from '../protocol/compression.ts'
import { CA_FORMAT_EXCLUDE_FILE, CA_FORMAT_EXCLUDE_NODUMP, CHUNK_SUFFIX } from '../protocol/constants.ts'
import { ChunkTable } from '../protocol/chunk-table.ts'
import type { Index } from '../protocol/index-file.ts'
import { blockDeviceSize } from './block-device.ts'
import { Limiter } from './limiter.ts'
import { placedFor } from './native-io.ts'
import { useNativeChunker } from './native-chunker.ts'
import type { ChunkStore } from './store/chunk-store.ts'
import { LocalStore } from './store/local-store.ts'
import { sharedPool, type Job, type WorkerPool, type WorkerReply } from './workers/pool.ts'

export interface MakeOptions {
  /** @default 16 KiB : 64 KiB : 256 KiB */
  chunkSize?: ChunkSizes
  /** @default 'sha256' */
  digest?: DigestAlgorithm
  /** @default 'zstd' */
  compression?: Compression
  /** Flags for the index header. @default EXCLUDE_NODUMP | EXCLUDE_FILE | the digest bit (what casync writes for a blob) */
  featureFlags?: bigint
  signal?: AbortSignal
  onProgress?: (bytesRead: number) => void
  /** @default the shared pool (one thread per core) */
  pool?: WorkerPool
  /** Chunks in flight across the workers (room to run ahead while they start). @default 32 per worker */
  inFlight?: number
}

export interface MakeStats {
  bytes: number
  chunks: number
  /** chunks written to the store by this run (the rest were already there) */
  newChunks: number
  /** compressed bytes written to the store */
  storedBytes: number
  seconds: number
}

export interface MakeResult {
  index: Index
  /** hex digest of the whole stream (what `casync make` prints) */
  streamDigest: string
  stats: MakeStats
}

/** casync's blob flags for a digest: EXCLUDE_NODUMP | EXCLUDE_FILE, plus SHA512_256 when used (spec §3). */
export function blobFeatureFlags (digest: DigestAlgorithm): bigint {
  return CA_FORMAT_EXCLUDE_NODUMP | CA_FORMAT_EXCLUDE_FILE | digestFlag(digest)
}

/** the main thread chunks too (makeIndex's sequential path) */
useNativeChunker()

export async function makeIndex (source: AsyncIterable<Uint8Array> | Iterable<Uint8Array>, store: ChunkStore, options: MakeOptions = {}): Promise<MakeResult> {
  const started = performance.now()
  const sizes = options.chunkSize ?? chunkSizes()
  const digest = options.digest ?? DEFAULT_DIGEST
  const compression = options.compression ?? DEFAULT_COMPRESSION
  const pool = options.pool ?? sharedPool()
  const limit = options.inFlight ?? pool.size * 32
  // batches in flight to a local store (each up to BATCH_BYTES)
  const batchLimit = Math.max(2, pool.size * 2)
  const storePath = store instanceof LocalStore ? store.path : undefined
  const streamDigest = createStreamDigest(digest)
  // sizes are added as the chunker cuts, IDs as the workers hash
  const chunks = new ChunkTable()
  const stats: MakeStats = { bytes: 0, chunks: 0, newChunks: 0, storedBytes: 0, seconds: 0 }
  const inFlight = new Set<Promise<void>>()
  let failure: unknown
  // (by hex ID: this one is per distinct chunk sent to a remote store)
  const remotePuts = new Map<string, Promise<void>>()

  const submit = (index: number, data: Uint8Array): void => {
    const p = pool.run({ op: 'store', data: ownBuffer(data), digest, compression, extension: CHUNK_SUFFIX })
      .then(async (reply) => {
        const id = new ChunkId(new Uint8Array(reply.id!))
        chunks.setId(index, id.bytes)
        // a store elsewhere (e.g. HTTP upload): the worker compressed, we ask and send once per ID
        const key = id.toString()
        if (remotePuts.has(key)) return await remotePuts.get(key)
        const put = (async () => {
          if (await store.has(id, { signal: options.signal })) return
          const compressed = new Uint8Array(reply.compressed!)
          if (store.putCompressed != null) await store.putCompressed(id, compressed, { signal: options.signal })
          else await store.put(id, data, { signal: options.signal })
          stats.newChunks++
          stats.storedBytes += compressed.byteLength
        })()
        remotePuts.set(key, put)
        await put
      })
      .catch((err) => { failure ??= err })
    inFlight.add(p)
    void p.finally(() => inFlight.delete(p))
  }

  // a local store: chunks go to the workers in batches (one message for up to BATCH_BYTES), each
  // chunk copied once, into the batch's buffer
  let batch = { first: 0, sizes: [] as number[], buf: new Uint8Array(0), used: 0 }
  const submitBatch = (): void => {
    if (batch.sizes.length === 0) return
    const { first, sizes: lengths, buf } = batch
    batch = { first: first + lengths.length, sizes: [], buf: new Uint8Array(0), used: 0 }
    // the whole buffer goes (transferred, not copied); the sizes say how much of it is used
    const p = pool.run({ op: 'store-batch', data: buf.buffer as ArrayBuffer, sizes: Int32Array.from(lengths), digest, compression, storePath: storePath!, extension: CHUNK_SUFFIX })
      .then((reply) => {
        for (let i = 0; i < lengths.length; i++) {
          chunks.setId(first + i, reply.ids!, i * 32)
          const stored = reply.storedSizes![i]!
          if (stored >= 0) { stats.newChunks++; stats.storedBytes += stored }
        }
      })
      .catch((err) => { failure ??= err })
    inFlight.add(p)
    void p.finally(() => inFlight.delete(p))
  }

  for await (const c of chunk(source, sizes)) {
    if (failure != null) break
    options.signal?.throwIfAborted()
    streamDigest.update(c.data)
    if (storePath != null) {
      if (batch.used + c.size > batch.buf.byteLength && batch.sizes.length > 0) submitBatch()
      if (batch.buf.byteLength === 0) batch.buf = new Uint8Array(Math.max(BATCH_BYTES, c.size))
      batch.buf.set(c.data, batch.used)
      batch.used += c.size
      batch.sizes.push(c.size)
      chunks.push(c.size)
    } else {
      // the data must outlive the chunker's buffer for stores that need plain bytes
      submit(chunks.push(c.size), copyBytes(c.data))
    }
    stats.bytes = c.start + c.size
    options.onProgress?.(stats.bytes)
    while (inFlight.size >= (storePath != null ? batchLimit : limit)) await Promise.race(inFlight)
  }
  submitBatch()
  await Promise.all(inFlight)
  if (failure != null) throw failure
  options.signal?.throwIfAborted()
  stats.chunks = chunks.length
  stats.seconds = (performance.now() - started) / 1000
  return {
    index: {
      featureFlags: options.featureFlags ?? blobFeatureFlags(digest),
      chunkSizeMin: sizes.min,
      chunkSizeAvg: sizes.avg,
      chunkSizeMax: sizes.max,
      chunks: chunks.trim()
    },
    streamDigest: streamDigest.digest(),
    stats
  }
}

/** makeIndex hands a local store's chunks to a worker this many bytes at a time */
const BATCH_BYTES = 1 << 20

/** Below this, a file is chunked on the main thread: splitting it would not pay. */
const PARALLEL_MIN_SIZE = 48 << 20

/**
 * make from a file or block device, using every core for the chunker too. The file is cut into
 * ranges whose cut points are found in parallel; range k+1's chunker starts at an arbitrary
 * offset, so its first cuts may be wrong, but content-defined cuts depend only on the bytes
 * since the previous cut: once range k's chunker, run on past its end, makes a cut that range
 * k+1's chunker also made, both agree from there on. The ranges are stitched at that shared cut
 * (or, if none is found within the overlap, range k+1 is chunked again from a known cut), so
 * the index is exactly the one a single sequential chunker produces. Workers then hash,
 * compress and store the chunks, reading them again from the page cache.
 */
export async function makeIndexFromFile (file: string, store: ChunkStore, options: MakeOptions = {}): Promise<MakeResult> {
  const pool = options.pool ?? sharedPool()
  const handle = await fs.open(file, 'r')
  try {
    const st = await handle.stat()
    const size = st.isBlockDevice() ? await blockDeviceSize(file) : st.size
    if (!(store instanceof LocalStore) || pool.size < 2 || size < PARALLEL_MIN_SIZE) {
      return await makeIndex(createReadStream(file, { highWaterMark: 1 << 20, signal: options.signal }), store, options)
    }
    return await makeParallel(handle, file, size, store, pool, options)
  } finally {
    await handle.close()
  }
}

async function makeParallel (handle: fs.FileHandle, file: string, size: number, store: LocalStore, pool: WorkerPool, options: MakeOptions): Promise<MakeResult> {
  const started = performance.now()
  const sizes = options.chunkSize ?? chunkSizes()
  const digest = options.digest ?? DEFAULT_DIGEST
  const compression = options.compression ?? DEFAULT_COMPRESSION
  const fd = handle.fd
  await fs.mkdir(store.path, { recursive: true })
  // ranges start at multiples of max, so runs of max-size chunks (zeros) line up across ranges
  const rangeSize = Math.ceil(Math.max(32 << 20, Math.ceil(size / (pool.size * 4))) / sizes.max) * sizes.max
  const overlap = 16 * sizes.max
  const starts: number[] = []
  for (let s = 0; s < size; s += rangeSize) starts.push(s)
  // Jobs go to the pool two per thread at a time, in the order they were made: each goes to the
  // thread that is free when its turn comes, instead of all being dealt out at once by count (a
  // thread dealt more bytes finished alone; 0.3-0.7 s of one idle thread at the end of 1 GiB)
  const limiter = new Limiter(2 * pool.size)
  const run = async (job: Job): Promise<WorkerReply> => {
    const release = await limiter.acquire()
    try {
      return await pool.run(job)
    } finally {
      release()
    }
  }
  const cutsJob = async (start: number, until: number): Promise<number[]> => {
    const reply = await run({ op: 'cuts', fd, start, until, min: sizes.min, avg: sizes.avg, max: sizes.max })
    return Array.from(reply.ends!)
  }
  const jobs = starts.map((s, k) => cutsJob(s, k + 1 < starts.length ? starts[k + 1]! + overlap : Number.POSITIVE_INFINITY))
  for (const j of jobs) j.catch(() => {})

  // whole-stream digest, read sequentially beside the workers (what casync make prints)
  const streamDigest = createStreamDigest(digest)
  const digestDone = (async () => {
    // into one buffer, read after read (a stream's fresh 1 MiB buffer per read costs a mapping and
    // its page faults each time), placed where the kernel copies into it at full speed
    const buf = placedFor(new Uint8Array((1 << 20) + 64), 0, 1 << 20)
    for (let at = 0; at < size;) {
      options.signal?.throwIfAborted()
      const { bytesRead } = await handle.read(buf, 0, Math.min(buf.byteLength, size - at), at)
      if (bytesRead === 0) throw Object.assign(new Error(`${file}: ended at ${at} of ${size} bytes (did it change while it was read?)`), { code: 'EIO' })
      streamDigest.update(buf.subarray(0, bytesRead))
      at += bytesRead
    }
  })()
  digestDone.catch(() => {})

  const stats: MakeStats = { bytes: 0, chunks: 0, newChunks: 0, storedBytes: 0, seconds: 0 }
  // sizes are added as the cuts are stitched, IDs as the workers hash
  const chunks = new ChunkTable()
  // per position, the stored size of a chunk this run wrote (-1: it was there); counted at the
  // end, once per ID (a chunk in two ranges may be written by both workers)
  let stored: Int32Array = new Int32Array(0)
  // set when the make fails or is aborted: the workers drop the ranges they have not finished
  const cancel = new Int32Array(new SharedArrayBuffer(4))
  const onAbort = (): void => { Atomics.store(cancel, 0, 1) }
  options.signal?.addEventListener('abort', onAbort)
  const batches: Array<Promise<void>> = []
  let pending: number[] = []
  let batchStart = 0
  let lastEnd = 0
  const flush = (): void => {
    if (pending.length === 0) return
    const ends = Float64Array.from(pending)
    const start = batchStart
    const first = chunks.length - ends.length
    const p = run({ op: 'store-range', fd, start, ends, digest, compression, storePath: store.path, extension: store.extension, cancel }).then((reply) => {
      if (stored.length < chunks.length) stored = grown(stored, chunks.length)
      for (let i = 0; i < ends.length; i++) {
        chunks.setId(first + i, reply.ids!, i * 32)
        stored[first + i] = reply.storedSizes![i]!
      }
      stats.bytes += ends[ends.length - 1]! - start
      options.onProgress?.(stats.bytes)
    })
    p.catch(() => {})
    batches.push(p)
    batchStart = ends[ends.length - 1]!
    pending = []
  }
  const emit = (end: number): void => {
    chunks.push(end - lastEnd)
    pending.push(end)
    lastEnd = end
    if (end - batchStart >= (8 << 20) || pending.length >= 256) flush()
  }

  try {
    let current = await jobs[0]!
    for (let k = 0; k < starts.length; k++) {
      options.signal?.throwIfAborted()
      if (k + 1 === starts.length) { for (const c of current) emit(c); break }
      const nextStart = starts[k + 1]!
      const next = await jobs[k + 1]!
      const nextSet = new Set(next)
      const idx = current.findIndex(c => c >= nextStart && nextSet.has(c))
      if (idx >= 0) {
        for (let i = 0; i <= idx; i++) emit(current[i]!)
        current = next.slice(next.indexOf(current[idx]!) + 1)
      } else {
        // no shared cut within the overlap: chunk again from the last known cut
        for (const c of current) { if (c >= nextStart) break; emit(c) }
        current = await cutsJob(lastEnd, k + 2 < starts.length ? starts[k + 2]! + overlap : Number.POSITIVE_INFINITY)
      }
    }
    flush()
    if (lastEnd !== size) throw Object.assign(new Error(`${file}: chunked ${lastEnd} of ${size} bytes (did it change while it was read?)`), { code: 'EIO' })

    for (const b of batches) await b
    await digestDone
  } catch (err) {
    // stop the workers' remaining ranges and let the ones under way finish, so nothing is still
    // writing into the store when the make reports its failure
    Atomics.store(cancel, 0, 1)
    await Promise.allSettled([...batches, digestDone])
    throw err
  } finally {
    options.signal?.removeEventListener('abort', onAbort)
  }
  countStored(chunks, stored, stats)
  stats.chunks = chunks.length
  stats.seconds = (performance.now() - started) / 1000
  return {
    index: { featureFlags: options.featureFlags ?? blobFeatureFlags(digest), chunkSizeMin: sizes.min, chunkSizeAvg: sizes.avg, chunkSizeMax: sizes.max, chunks: chunks.trim() },
    streamDigest: streamDigest.digest(),
    stats
  }
}

/** `array` copied into one of at least `length` elements (doubling), the rest -1. */
function grown (array: Int32Array, length: number): Int32Array {
  const out = new Int32Array(Math.max(length, array.length * 2, 1024)).fill(-1)
  out.set(array)
  return out
}

/** Counts the chunks this run stored (`stored[i]` >= 0), once per ID. */
function countStored (chunks: ChunkTable, stored: Int32Array, stats: MakeStats): void {
  const counted = new Uint8Array(chunks.length)
  for (let i = 0; i < chunks.length; i++) {
    if (!(stored[i]! >= 0)) continue
    const first = chunks.find(chunks.idBytes(i))
    if (counted[first] === 1) continue
    counted[first] = 1
    stats.newChunks++
    stats.storedBytes += stored[i]!
  }
}
