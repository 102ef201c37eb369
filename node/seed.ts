// Seeds: local data (older images, block devices, the existing output) that may already hold
// chunks of the index being extracted. A seed is chunked with the index's own parameters on the
// worker pool; only seed chunks whose size occurs in the index are hashed, and only chunks the
// index wants are remembered. Bytes read back from a seed are verified again before use,
// because the seed may have changed since it was indexed.
import * as fs from 'node:fs/promises'
import { ChunkId, type DigestAlgorithm, digestFromFlags } from '../protocol/chunk-id.ts'
import { blockDeviceSize } from './block-device.ts'
import type { Index } from '../protocol/index-file.ts'
import { defaultLogger } from './logger.ts'
import { sharedPool, type WorkerPool, type WorkerReply } from './workers/pool.ts'

const log = defaultLogger().forComponent('caswarm:seed')

export interface SeedChunkLocation { offset: number, size: number }

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
  /** the output at outFd reads as zeros where nothing was written (a fresh file): chunks of zeros are not written */
  sparse?: boolean
  pool?: WorkerPool
  signal?: AbortSignal
  onProgress?: (bytes: number) => void
}

/** A file or block device indexed as a seed. */
export class FileSeed implements Seed {
  readonly name: string
  readonly path: string
  readonly digest: DigestAlgorithm
  /** chunk ID hex → where it is in the seed */
  readonly chunks = new Map<string, SeedChunkLocation>()
  private handle?: Promise<fs.FileHandle>
  bytesIndexed = 0
  /** index positions already written to the output while indexing (with SeedIndexOptions.outFd) */
  readonly written = new Set<number>()

  constructor (file: string, digest: DigestAlgorithm, name = `seed:${file}`) {
    this.path = file
    this.digest = digest
    this.name = name
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
   */
  static async index (file: string, target: Index, options: SeedIndexOptions = {}, name?: string): Promise<FileSeed> {
    options.signal?.throwIfAborted()
    const digest = digestFromFlags(target.featureFlags)
    const seed = new FileSeed(file, digest, name)
    const pool = options.pool ?? sharedPool()
    const n = target.chunks.length
    const wanted = new Uint8Array(n * 32)
    target.chunks.forEach((c, i) => { wanted.set(c.id.bytes, i * 32) })
    const sizes = Int32Array.from(new Set(target.chunks.map(c => c.size)))
    const starts = Float64Array.from(target.chunks, c => c.start)
    const out = options.outFd != null ? { fd: options.outFd, directFd: options.outDirectFd, starts, sparse: options.sparse } : undefined
    const params = { min: target.chunkSizeMin, avg: target.chunkSizeAvg, max: target.chunkSizeMax }
    seed.handle = fs.open(file, 'r')
    const handle = await seed.handle.catch((err: any) => {
      throw Object.assign(new Error(`cannot read seed ${file}: ${err.code === 'ENOENT' ? 'no such file' : String(err.message)}`), { code: err.code })
    })
    const st = await handle.stat()
    const size = st.isBlockDevice() ? await blockDeviceSize(file) : st.size
    const absorb = (reply: WorkerReply): void => {
      options.signal?.throwIfAborted()
      for (const i of reply.written ?? []) seed.written.add(i)
      const found = reply.found ?? []
      for (let i = 0; i < found.length; i += 3) {
        const hex = target.chunks[found[i + 2]!]!.id.toString()
        if (!seed.chunks.has(hex)) seed.chunks.set(hex, { offset: found[i]!, size: found[i + 1]! })
      }
    }
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
    const total = n > 0 ? target.chunks[n - 1]!.start + target.chunks[n - 1]!.size : 0
    const slices = size > 0 && n > 0 ? pool.size : 0
    const chunkSizes = Int32Array.from(target.chunks, c => c.size)
    const probes: Array<Promise<void>> = []
    for (let k = 0, first = 0; k < slices; k++) {
      let end = first
      const until = total * (k + 1) / slices
      while (end < n && (k === slices - 1 || starts[end]! < until)) end++
      if (end > first) {
        probes.push(pool.run({ op: 'seed-probe', fd: handle.fd, seedSize: size, first, end, delta: 0, window: 2 * params.max, ...params, digest, wanted, sizes, starts, chunkSizes, out, cancel }).then((reply) => {
          absorb(reply)
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

    // 2. what the probes did not look at, if any wanted chunk is still to be found
    const lacking = target.chunks.some((c, i) => !seed.written.has(i) && !seed.chunks.has(c.id.toString()))
    const gaps = lacking ? uncovered(covered, size, params.min, params.max) : []
    const gapBytes = gaps.reduce((sum, [a, b]) => sum + b - a, 0)
    const rangeSize = Math.max(16 << 20, Math.ceil(gapBytes / (pool.size * 4)))
    const overlap = 8 * params.max
    const scans: Array<Promise<void>> = []
    for (const [from, to] of gaps) {
      for (let start = from; start < to; start += rangeSize) {
        const end = Math.min(to, start + rangeSize)
        // (a gap's first range starts in step; the chunker runs on past each range's end to a cut)
        scans.push(pool.run({ op: 'seed', fd: handle.fd, start, end, overlap: end < to ? overlap : 0, ...params, digest, wanted, sizes, out }).then((reply) => {
          absorb(reply)
          progress((end - start) * (size / 2) / Math.max(1, gapBytes))
        }))
      }
    }
    await settle(scans)
    if (size > 0) options.onProgress?.(size)
    seed.bytesIndexed = size
    log('%s: %d bytes, %d wanted chunks found; %d bytes chunked around missed probes, %d in stretches no probe reached', seed.name, size, seed.chunks.size, probeScanned, gapBytes)
    return seed
  }

  has (id: ChunkId): boolean {
    return this.chunks.has(id.toString())
  }

  /** The seed file, opened once however many callers ask at the same time. */
  private async open (): Promise<fs.FileHandle> {
    this.handle ??= fs.open(this.path, 'r')
    return await this.handle
  }

  /** Where the seed holds a chunk, and an open descriptor to read it by (for worker threads). */
  async locate (id: ChunkId, size: number): Promise<{ fd: number, offset: number } | null> {
    const loc = this.chunks.get(id.toString())
    if (loc == null || loc.size !== size) return null
    return { fd: (await this.open()).fd, offset: loc.offset }
  }

  /** Forget a chunk the seed turned out not to hold (it changed since it was indexed). */
  forget (id: ChunkId): void {
    this.chunks.delete(id.toString())
  }

  async read (id: ChunkId, size: number): Promise<Uint8Array | null> {
    const loc = this.chunks.get(id.toString())
    if (loc == null || loc.size !== size) return null
    const buf = new Uint8Array(size)
    const { bytesRead } = await (await this.open()).read(buf, 0, size, loc.offset)
    if (bytesRead !== size || !ChunkId.digest(buf, this.digest).equals(id)) {
      log('%s changed under us at offset %d; not using it for %s', this.name, loc.offset, id.toString())
      this.chunks.delete(id.toString())
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
