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
import { sharedPool, type WorkerPool } from './workers/pool.ts'

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
   * Chunks the file with the index's parameters and records the chunks the index wants. The
   * file is cut into ranges indexed in parallel on the worker pool; each range's chunker starts
   * at an arbitrary offset and runs on past its end until it has fallen into step with the
   * chunker of the next range (content-defined cuts resynchronise within a chunk or two), so
   * only a chunk or two per range boundary can be missed, and those come from the stores.
   */
  static async index (file: string, target: Index, options: SeedIndexOptions = {}, name?: string): Promise<FileSeed> {
    const digest = digestFromFlags(target.featureFlags)
    const seed = new FileSeed(file, digest, name)
    const pool = options.pool ?? sharedPool()
    const wanted = new Uint8Array(target.chunks.length * 32)
    target.chunks.forEach((c, i) => { wanted.set(c.id.bytes, i * 32) })
    const sizes = Int32Array.from(new Set(target.chunks.map(c => c.size)))
    const out = options.outFd != null ? { fd: options.outFd, starts: Float64Array.from(target.chunks, c => c.start), sparse: options.sparse } : undefined
    seed.handle = fs.open(file, 'r')
    const handle = await seed.handle.catch((err: any) => {
      throw Object.assign(new Error(`cannot read seed ${file}: ${err.code === 'ENOENT' ? 'no such file' : String(err.message)}`), { code: err.code })
    })
    const st = await handle.stat()
    const size = st.isBlockDevice() ? await blockDeviceSize(file) : st.size
    const rangeSize = Math.max(16 << 20, Math.ceil(size / (pool.size * 4)))
    const overlap = 8 * target.chunkSizeMax
    let done = 0
    const jobs: Array<Promise<void>> = []
    for (let start = 0; start < size || (start === 0 && size === 0); start += rangeSize) {
      const end = Math.min(size, start + rangeSize)
      jobs.push(pool.run({ op: 'seed', fd: handle.fd, start, end, overlap: end < size ? overlap : 0, min: target.chunkSizeMin, avg: target.chunkSizeAvg, max: target.chunkSizeMax, digest, wanted, sizes, out }).then((reply) => {
        options.signal?.throwIfAborted()
        for (const i of reply.written ?? []) seed.written.add(i)
        const found = reply.found ?? []
        for (let i = 0; i < found.length; i += 3) {
          const hex = target.chunks[found[i + 2]!]!.id.toString()
          if (!seed.chunks.has(hex)) seed.chunks.set(hex, { offset: found[i]!, size: found[i + 1]! })
        }
        done += end - start
        options.onProgress?.(done)
      }))
      if (size === 0) break
    }
    try {
      await Promise.all(jobs)
    } catch (err) {
      await Promise.allSettled(jobs)
      await seed.close()
      throw err
    }
    seed.bytesIndexed = size
    log('%s: %d bytes indexed, %d wanted chunks found', seed.name, size, seed.chunks.size)
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
