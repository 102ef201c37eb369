// Seeds: local data (older images, block devices, the existing output) that may already hold
// chunks of the index being extracted. A seed is chunked with the index's own parameters on the
// worker pool; only seed chunks whose size occurs in the index are hashed, and only chunks the
// index wants are remembered. Bytes read back from a seed are verified again before use,
// because the seed may have changed since it was indexed.
import * as fs from 'node:fs/promises'
import { ChunkId, type DigestAlgorithm, digestFromFlags, zeroChunkId } from '../protocol/chunk-id.ts'
import { ChunkTable } from '../protocol/chunk-table.ts'
import { blockDeviceSize } from './block-device.ts'
import type { Index } from '../protocol/index-file.ts'
import { defaultLogger } from './logger.ts'
import { sharedPool, type WorkerPool } from './workers/pool.ts'

const log = defaultLogger().forComponent('caswarm:seed')

/** What extraction asks of any seed (file, block device, directory). */
export interface Seed {
  readonly name: string
  /** The chunk's verified plain bytes, or null when the seed does not have it (any more). */
  read: (id: ChunkId, size: number) => Promise<Uint8Array | null>
  has: (id: ChunkId) => boolean
  close: () => Promise<void>
  /** For seeds a worker thread can read directly: the open descriptor and offset of a chunk. */
  locate?: (id: ChunkId, size: number) => Promise<{ fd: number, offset: number } | null>
  /** Drop a chunk the seed turned out not to hold any more. */
  forget?: (id: ChunkId) => void
}

export interface SeedIndexOptions {
  /**
   * Write each wanted chunk found to this output descriptor at the index's offsets while
   * indexing (from the bytes just verified), so it need not be read and hashed again.
   */
  outFd?: number
  /** a descriptor on the same file for O_DIRECT writes (native-io openDirect) */
  outDirectFd?: number
  /**
   * the output at outFd reads as zeros where nothing was written (a fresh file): chunks of zeros
   * are not written, and the stretches of the seed where the target has its runs of zeros
   * (zeroRunChunk) are not read: the extraction leaves those positions as they are
   */
  sparse?: boolean
  pool?: WorkerPool
  signal?: AbortSignal
  onProgress?: (bytes: number) => void
}

/**
 * A set of index positions, a byte each in shared memory (a Set of numbers costs ~20 bytes an
 * entry): worker threads set `flags` (Atomics), and recount() brings `size` up to date.
 */
export class PositionSet implements Iterable<number> {
  readonly flags: Uint8Array
  size = 0

  constructor (length: number) { this.flags = new Uint8Array(new SharedArrayBuffer(length)) }

  has (i: number): boolean { return this.flags[i] === 1 }

  recount (): void {
    let n = 0
    for (let i = 0; i < this.flags.length; i++) n += this.flags[i]!
    this.size = n
  }

  * [Symbol.iterator] (): Iterator<number> {
    for (let i = 0; i < this.flags.length; i++) if (this.flags[i] === 1) yield i
  }
}

/**
 * Where a seed holds chunks of the index being extracted: an offset in the seed per index
 * position, kept at an ID's first position (ChunkTable.find), which stands for every position
 * holding it; 8 bytes a chunk of the index (a Map by hex ID took ~150 bytes a chunk found). In
 * shared memory: the workers that index a seed file fill it in (pool.ts SeedFound), and
 * recount() brings `size` up to date.
 */
export class SeedChunks {
  readonly table: ChunkTable
  /** -1n: not held */
  readonly offsets: BigInt64Array
  /** distinct chunks held */
  size = 0

  constructor (table: ChunkTable) {
    this.table = table
    this.offsets = new BigInt64Array(new SharedArrayBuffer(table.length * 8)).fill(-1n)
  }

  /** Records that the seed holds the chunk at first position `first`, of `size` bytes, at `offset` (the first place found is kept). */
  add (first: number, offset: number, size: number): void {
    // a chunk whose bytes hash to an ID the index gives another size could never be used
    if (this.offsets[first] !== -1n || size !== this.table.size(first)) return
    this.offsets[first] = BigInt(offset)
    this.size++
  }

  /** Whether the seed holds the chunk at first position `first`. */
  holds (first: number): boolean { return this.offsets[first]! >= 0n }

  /** Where the seed holds the chunk `id` of `size` bytes, or -1. */
  offsetOf (id: ChunkId, size?: number): number {
    const first = this.table.find(id)
    if (first < 0 || (size != null && size !== this.table.size(first))) return -1
    return Number(this.offsets[first]!)
  }

  has (id: ChunkId): boolean { return this.offsetOf(id) >= 0 }

  delete (id: ChunkId): void {
    const first = this.table.find(id)
    if (first < 0 || this.offsets[first]! < 0n) return
    this.offsets[first] = -1n
    this.size--
  }

  recount (): void {
    let n = 0
    for (let i = 0; i < this.offsets.length; i++) if (this.offsets[i]! >= 0n) n++
    this.size = n
  }
}

/** A file or block device indexed as a seed. */
export class FileSeed implements Seed {
  readonly name: string
  readonly path: string
  readonly digest: DigestAlgorithm
  /** where the seed holds the target's chunks */
  readonly chunks: SeedChunks
  private handle?: Promise<fs.FileHandle>
  bytesIndexed = 0
  /** index positions already written to the output while indexing (with SeedIndexOptions.outFd; set by the workers) */
  readonly written: PositionSet

  constructor (file: string, digest: DigestAlgorithm, name = `seed:${file}`, target: ChunkTable = new ChunkTable()) {
    this.path = file
    this.digest = digest
    this.name = name
    this.chunks = new SeedChunks(target)
    this.written = new PositionSet(target.length)
  }

  /**
   * Finds the chunks the index wants in the file, in two passes on the worker pool:
   * 1. probes (node/workers/seed-scan.ts): each worker walks a slice of the index and hashes the
   *    seed where each chunk would be if the seed were an older version of the same image, and
   *    chunks the seed around the places where that fails, to find the new distance. For an
   *    older image this costs about one hash per chunk, the verification every chunk needs anyway.
   * 2. the stretches of the seed neither probe nor scan looked at are chunked as casync chunks a
   *    whole seed (ranges in parallel, each chunker running on past its end until it has fallen
   *    into step with the next range's), so a chunk that moved is found wherever it is.
   * Only a chunk or two at the edge of a stretch can be missed; those come from the stores.
   * The workers share the index's chunk table (shared memory: no copy of it per request).
   */
  static async index (file: string, target: Index, options: SeedIndexOptions = {}, name?: string): Promise<FileSeed> {
    options.signal?.throwIfAborted()
    const digest = digestFromFlags(target.featureFlags)
    const chunks = target.chunks
    const seed = new FileSeed(file, digest, name, chunks)
    const pool = options.pool ?? sharedPool()
    const n = chunks.length
    const table = chunks.share()
    const sizes = Int32Array.from(chunks.distinctSizes())
    const out = options.outFd != null ? { fd: options.outFd, directFd: options.outDirectFd, sparse: options.sparse, written: seed.written.flags } : undefined
    // chunks of a run of zeros: left to the fresh output, which holds them already
    const zeroRun = out?.sparse === true ? zeroRunChunk(target) : -1
    const params = { min: target.chunkSizeMin, avg: target.chunkSizeAvg, max: target.chunkSizeMax }
    seed.handle = fs.open(file, 'r')
    const handle = await seed.handle.catch((err: any) => {
      throw Object.assign(new Error(`cannot read seed ${file}: ${err.code === 'ENOENT' ? 'no such file' : String(err.message)}`), { code: err.code })
    })
    const st = await handle.stat()
    const size = st.isBlockDevice() ? await blockDeviceSize(file) : st.size
    // what the workers find is noted in shared memory (seed.chunks, seed.written): each reply
    // only says how far they got
    const absorb = (): void => { options.signal?.throwIfAborted() }
    let done = 0
    const progress = (bytes: number): void => { done += bytes; options.onProgress?.(Math.min(size, done)) }
    const settle = async (jobs: Array<Promise<void>>): Promise<void> => {
      try {
        await Promise.all(jobs)
      } catch (err) {
        await Promise.allSettled(jobs)
        await seed.close()
        throw err
      }
    }

    // 1. probes, one slice of the index per worker (slices of equal bytes); an abort stops them
    // between two chunks (shared memory)
    const cancel = new Int32Array(new SharedArrayBuffer(4))
    const onAbort = (): void => { Atomics.store(cancel, 0, 1) }
    options.signal?.addEventListener('abort', onAbort)
    const covered: number[] = []
    let probeScanned = 0
    const total = chunks.streamSize
    const slices = size > 0 && n > 0 ? pool.size : 0
    const probes: Array<Promise<void>> = []
    for (let k = 0, first = 0; k < slices; k++) {
      let end = first
      const until = total * (k + 1) / slices
      while (end < n && (k === slices - 1 || chunks.start(end) < until)) end++
      if (end > first) {
        probes.push(pool.run({ op: 'seed-probe', fd: handle.fd, seedSize: size, first, end, delta: 0, zeroRun, window: 2 * params.max, ...params, digest, table, found: seed.chunks.offsets, sizes, out, cancel }).then((reply) => {
          absorb()
          covered.push(...(reply.covered ?? []))
          probeScanned += reply.scanned ?? 0
          progress(size / slices / 2)
        }))
      }
      first = end
    }
    try {
      await settle(probes)
    } finally {
      options.signal?.removeEventListener('abort', onAbort)
    }

    seed.written.recount()
    seed.chunks.recount()

    // 2. what the probes did not look at, if any wanted chunk is still to be found
    let lacking = false
    for (let i = 0; i < n && !lacking; i++) {
      const first = chunks.find(chunks.idBytes(i))
      lacking = first !== zeroRun && !seed.written.has(i) && !seed.chunks.holds(first)
    }
    const gaps = lacking ? uncovered(covered, size, params.min, params.max) : []
    const gapBytes = gaps.reduce((sum, [a, b]) => sum + b - a, 0)
    const rangeSize = Math.max(16 << 20, Math.ceil(gapBytes / (pool.size * 4)))
    const overlap = 8 * params.max
    const scans: Array<Promise<void>> = []
    for (const [from, to] of gaps) {
      for (let start = from; start < to; start += rangeSize) {
        const end = Math.min(to, start + rangeSize)
        // (a gap's first range starts in step; the chunker runs on past each range's end to a cut)
        scans.push(pool.run({ op: 'seed', fd: handle.fd, start, end, overlap: end < to ? overlap : 0, zeroRun, ...params, digest, table, found: seed.chunks.offsets, sizes, out }).then((reply) => {
          absorb()
          progress((end - start) * (size / 2) / Math.max(1, gapBytes))
        }))
      }
    }
    await settle(scans)
    seed.written.recount()
    seed.chunks.recount()
    if (size > 0) options.onProgress?.(size)
    seed.bytesIndexed = size
    log('%s: %d bytes, %d wanted chunks found; %d bytes chunked around missed probes, %d in stretches no probe reached', seed.name, size, seed.chunks.size, probeScanned, gapBytes)
    return seed
  }

  has (id: ChunkId): boolean {
    return this.chunks.has(id)
  }

  /** The seed file, opened once however many callers ask at the same time. */
  private async open (): Promise<fs.FileHandle> {
    this.handle ??= fs.open(this.path, 'r')
    return await this.handle
  }

  /** Where the seed holds a chunk, and an open descriptor to read it by (for worker threads). */
  async locate (id: ChunkId, size: number): Promise<{ fd: number, offset: number } | null> {
    const offset = this.chunks.offsetOf(id, size)
    if (offset < 0) return null
    return { fd: (await this.open()).fd, offset }
  }

  /** Forget a chunk the seed turned out not to hold (it changed since it was indexed). */
  forget (id: ChunkId): void {
    this.chunks.delete(id)
  }

  async read (id: ChunkId, size: number): Promise<Uint8Array | null> {
    const offset = this.chunks.offsetOf(id, size)
    if (offset < 0) return null
    const buf = new Uint8Array(size)
    const { bytesRead } = await (await this.open()).read(buf, 0, size, offset)
    if (bytesRead !== size || !ChunkId.digest(buf, this.digest).equals(id)) {
      log('%s changed under us at offset %d; not using it for %s', this.name, offset, id.toString())
      this.chunks.delete(id)
      return null
    }
    return buf
  }

  async close (): Promise<void> {
    const handle = this.handle
    this.handle = undefined
    await (await handle?.catch(() => undefined))?.close()
  }
}

/**
 * The stretches of [0, size) outside the `covered` intervals ([start, end) pairs, any order),
 * those closer than `max` merged, and those shorter than `min` dropped (no chunk fits). Each starts
 * where a covered interval ends: there the index has a cut after the same bytes, so a chunker
 * started there cuts as the index was cut.
 */
export function uncovered (covered: number[], size: number, min: number, max: number): Array<[number, number]> {
  const pairs: Array<[number, number]> = []
  for (let i = 0; i + 1 < covered.length; i += 2) pairs.push([covered[i]!, covered[i + 1]!])
  pairs.sort((a, b) => a[0] - b[0])
  const gaps: Array<[number, number]> = []
  let at = 0
  for (const [a, b] of pairs) {
    if (a > at) gaps.push([at, a])
    at = Math.max(at, b)
  }
  if (at < size) gaps.push([at, size])
  const out: Array<[number, number]> = []
  for (const [a, b] of gaps) {
    if (b - a < min) continue
    const last = out[out.length - 1]
    if (last != null && a <= last[1] + max) last[1] = b
    else out.push([a, b])
  }
  return out
}

/**
 * The first index position of a chunk of `chunkSizeMax` zero bytes, or -1 when the index has
 * none. A run of zeros (a disk image's free space) has no content-defined cuts, so it is cut
 * into chunks of the maximum size, all this one. Its bytes are known without reading anything,
 * and a fresh output file reads as zeros where nothing was written: extraction into one needs no
 * source for these chunks, and seeds need not read the stretches that hold them.
 */
export function zeroRunChunk (index: Index): number {
  const first = index.chunks.find(zeroChunkId(index.chunkSizeMax, digestFromFlags(index.featureFlags)))
  return first >= 0 && index.chunks.size(first) === index.chunkSizeMax ? first : -1
}
