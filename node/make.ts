// `make`: one pipeline from a stream to a chunk store and an index. The main thread reads and
// chunks; worker threads hash, compress and (for a local store) write each chunk, skipping
// chunks the store already holds. Results are put back in stream order.
import { copyBytes } from '../protocol/bytes.ts'
import { createStreamDigest, digestFlag, ChunkId, type DigestAlgorithm, DEFAULT_DIGEST } from '../protocol/chunk-id.ts'
import { chunk, chunkSizes, type ChunkSizes } from '../protocol/chunker.ts'
import { type Compression, DEFAULT_COMPRESSION } from '../protocol/compression.ts'
import { CA_FORMAT_EXCLUDE_FILE, CA_FORMAT_EXCLUDE_NODUMP, CHUNK_SUFFIX } from '../protocol/constants.ts'
import type { Index, IndexChunk } from '../protocol/index-file.ts'
import type { ChunkStore } from './store/chunk-store.ts'
import { LocalStore } from './store/local-store.ts'
import { sharedPool, transferable, type WorkerPool } from './workers/pool.ts'

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
  /** Chunks in flight across the workers. @default 8 per worker */
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

export async function makeIndex (source: AsyncIterable<Uint8Array>, store: ChunkStore, options: MakeOptions = {}): Promise<MakeResult> {
  const started = performance.now()
  const sizes = options.chunkSize ?? chunkSizes()
  const digest = options.digest ?? DEFAULT_DIGEST
  const compression = options.compression ?? DEFAULT_COMPRESSION
  const pool = options.pool ?? sharedPool()
  const limit = options.inFlight ?? pool.size * 8
  const storePath = store instanceof LocalStore ? store.path : undefined
  const streamDigest = createStreamDigest(digest)
  const chunks: IndexChunk[] = []
  const stats: MakeStats = { bytes: 0, chunks: 0, newChunks: 0, storedBytes: 0, seconds: 0 }
  const inFlight = new Set<Promise<void>>()
  let failure: unknown
  const remotePuts = new Map<string, Promise<void>>()

  const submit = (index: number, start: number, data: Uint8Array): void => {
    const p = pool.run({ op: 'store', data: transferable(data), digest, compression, storePath, extension: CHUNK_SUFFIX })
      .then(async (reply) => {
        const id = new ChunkId(new Uint8Array(reply.id!))
        chunks[index] = { id, start, size: data.byteLength }
        if (storePath != null) {
          if (reply.stored === true) { stats.newChunks++; stats.storedBytes += reply.storedBytes ?? 0 }
          return
        }
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

  let n = 0
  for await (const c of chunk(source, sizes)) {
    if (failure != null) break
    options.signal?.throwIfAborted()
    streamDigest.update(c.data)
    // the data must outlive the chunker's buffer for stores that need plain bytes
    submit(n++, c.start, storePath == null ? copyBytes(c.data) : c.data)
    stats.bytes = c.start + c.size
    options.onProgress?.(stats.bytes)
    while (inFlight.size >= limit) await Promise.race(inFlight)
  }
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
      chunks
    },
    streamDigest: streamDigest.digest(),
    stats
  }
}
