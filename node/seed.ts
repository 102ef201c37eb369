// Seeds: local data (older images, block devices, the existing output) that may already hold
// chunks of the index being extracted. A seed is chunked with the index's own parameters; only
// seed chunks whose size occurs in the index are hashed (on the worker pool), and only chunks
// the index wants are remembered. Bytes read back from a seed are verified again before use,
// because the seed may have changed since it was indexed.
import { createReadStream } from 'node:fs'
import * as fs from 'node:fs/promises'
import { ChunkId, type DigestAlgorithm, digestFromFlags } from '../protocol/chunk-id.ts'
import { CutFinder } from '../protocol/chunker.ts'
import type { Index } from '../protocol/index-file.ts'
import { defaultLogger } from './logger.ts'
import { sharedPool, transferable, type WorkerPool } from './workers/pool.ts'

const log = defaultLogger().forComponent('caswarm:seed')

export interface SeedChunkLocation { offset: number, size: number }

/** What extraction asks of any seed (file, block device, directory). */
export interface Seed {
  readonly name: string
  /** The chunk's verified plain bytes, or null when the seed does not have it (any more). */
  read: (id: ChunkId, size: number) => Promise<Uint8Array | null>
  has: (id: ChunkId) => boolean
  close: () => Promise<void>
}

export interface SeedIndexOptions {
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
  private handle?: fs.FileHandle
  bytesIndexed = 0

  constructor (file: string, digest: DigestAlgorithm, name = `seed:${file}`) {
    this.path = file
    this.digest = digest
    this.name = name
  }

  /** Chunks the file with the index's parameters and records the chunks the index wants. */
  static async index (file: string, target: Index, options: SeedIndexOptions = {}, name?: string): Promise<FileSeed> {
    const digest = digestFromFlags(target.featureFlags)
    const seed = new FileSeed(file, digest, name)
    const wanted = new Set<string>()
    const sizes = new Set<number>()
    for (const c of target.chunks) { wanted.add(c.id.toString()); sizes.add(c.size) }
    const pool = options.pool ?? sharedPool()
    const finder = new CutFinder({ min: target.chunkSizeMin, avg: target.chunkSizeAvg, max: target.chunkSizeMax })
    const inFlight = new Set<Promise<void>>()
    const limit = pool.size * 8
    let failure: unknown
    const consider = (offset: number, data: Uint8Array): void => {
      if (!sizes.has(data.byteLength)) return // no index chunk has this size: cannot match
      const size = data.byteLength
      const p = pool.run({ op: 'hash', data: transferable(data), digest }).then((reply) => {
        const hex = new ChunkId(new Uint8Array(reply.id!)).toString()
        if (wanted.has(hex) && !seed.chunks.has(hex)) seed.chunks.set(hex, { offset, size })
      }).catch((err) => { failure ??= err })
      inFlight.add(p)
      void p.finally(() => inFlight.delete(p))
    }
    let buf: Uint8Array = new Uint8Array(0)
    let offset = 0 // stream offset of buf[0]
    for await (const data of createReadStream(file, { highWaterMark: 1 << 20, signal: options.signal }) as AsyncIterable<Uint8Array>) {
      if (failure != null) break
      if (buf.byteLength === 0) buf = data
      else { const j = new Uint8Array(buf.byteLength + data.byteLength); j.set(buf); j.set(data, buf.byteLength); buf = j }
      let at = 0
      for (;;) {
        const n = finder.next(at === 0 ? buf : buf.subarray(at))
        if (n < 0) break
        consider(offset + at, buf.subarray(at, at + n))
        at += n
      }
      offset += at
      buf = at === 0 ? buf : Uint8Array.prototype.slice.call(buf, at)
      seed.bytesIndexed = offset
      options.onProgress?.(offset)
      while (inFlight.size >= limit) await Promise.race(inFlight)
    }
    if (buf.byteLength > 0) consider(offset, buf)
    await Promise.all(inFlight)
    if (failure != null) throw failure
    seed.bytesIndexed = offset + buf.byteLength
    log('%s: %d bytes indexed, %d wanted chunks found', seed.name, seed.bytesIndexed, seed.chunks.size)
    return seed
  }

  has (id: ChunkId): boolean {
    return this.chunks.has(id.toString())
  }

  async read (id: ChunkId, size: number): Promise<Uint8Array | null> {
    const loc = this.chunks.get(id.toString())
    if (loc == null || loc.size !== size) return null
    this.handle ??= await fs.open(this.path, 'r')
    const buf = new Uint8Array(size)
    const { bytesRead } = await this.handle.read(buf, 0, size, loc.offset)
    if (bytesRead !== size || !ChunkId.digest(buf, this.digest).equals(id)) {
      log('%s changed under us at offset %d; not using it for %s', this.name, loc.offset, id.toString())
      this.chunks.delete(id.toString())
      return null
    }
    return buf
  }

  async close (): Promise<void> {
    await this.handle?.close()
    this.handle = undefined
  }
}
