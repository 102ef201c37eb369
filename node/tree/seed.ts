// Directory seeds for .caidx extraction (spec §6.2): a directory is serialised exactly as `make`
// would with the index's feature flags, chunked with the index's sizes, and every chunk the index
// wants is copied aside into an unlinked temporary file. Keeping the bytes (rather than casync's
// "re-encode on demand") makes the seed a snapshot: it stays right even when the directory is
// the output being replaced. Every chunk read back is verified again.
import { randomBytes } from 'node:crypto'
import * as fs from 'node:fs'
import { tmpdir } from 'node:os'
import * as path from 'node:path'
import { ChunkId, digestBytes, digestFromFlags, type DigestAlgorithm } from '../../protocol/chunk-id.ts'
import { ChunkTable } from '../../protocol/chunk-table.ts'
import { chunk } from '../../protocol/chunker.ts'
import type { Index } from '../../protocol/index-file.ts'
import { defaultLogger } from '../logger.ts'
import { SeedChunks } from '../seed.ts'
import { encodeTree } from './reader.ts'

const log = defaultLogger().forComponent('caswarm:seed:tree')

export interface DirectorySeedOptions {
  signal?: AbortSignal
  /** where the snapshot file lives (it is unlinked at once). @default os.tmpdir() */
  tmpDir?: string
  onProgress?: (bytes: number) => void
}

/** A directory indexed as a seed; implements node/seed.ts's Seed. */
export class DirectorySeed {
  readonly name: string
  readonly dir: string
  readonly digest: DigestAlgorithm
  /** where the target's chunks sit in the snapshot file */
  readonly chunks: SeedChunks
  /** catar bytes the directory produced */
  bytesIndexed = 0
  private fd?: number

  constructor (dir: string, digest: DigestAlgorithm, name = `seed:${dir}`, target: ChunkTable = new ChunkTable()) {
    this.dir = dir
    this.digest = digest
    this.name = name
    this.chunks = new SeedChunks(target)
  }

  /**
   * Serialises and chunks `dir` with `target`'s flags and sizes. A directory that cannot be read
   * (it vanished, permissions) gives an empty seed rather than failing the extraction.
   */
  static async index (dir: string, target: Index, options: DirectorySeedOptions = {}, name?: string): Promise<DirectorySeed> {
    const seed = new DirectorySeed(dir, digestFromFlags(target.featureFlags), name, target.chunks)
    const sizes = target.chunks.distinctSizes()
    const file = path.join(options.tmpDir ?? tmpdir(), `.caswarm-seed-${randomBytes(6).toString('hex')}`)
    seed.fd = fs.openSync(file, 'wx+', 0o600)
    fs.unlinkSync(file)
    let at = 0
    try {
      const stream = encodeTree(dir, { featureFlags: target.featureFlags, signal: options.signal })
      for await (const c of chunk(stream, { min: target.chunkSizeMin, avg: target.chunkSizeAvg, max: target.chunkSizeMax })) {
        seed.bytesIndexed = c.start + c.size
        options.onProgress?.(seed.bytesIndexed)
        if (!sizes.has(c.size)) continue
        const first = target.chunks.find(digestBytes(c.data, seed.digest))
        if (first < 0 || seed.chunks.holds(first) || target.chunks.size(first) !== c.size) continue
        let off = 0
        while (off < c.size) off += fs.writeSync(seed.fd, c.data, off, c.size - off, at + off)
        seed.chunks.add(first, at, c.size)
        at += c.size
      }
    } catch (err: any) {
      if (options.signal?.aborted === true) { await seed.close(); throw err }
      log.error('%s: not usable as a seed - %s', dir, err.message)
    }
    log('%s: %d catar bytes, %d wanted chunks found', seed.name, seed.bytesIndexed, seed.chunks.size)
    return seed
  }

  has (id: ChunkId): boolean {
    return this.chunks.has(id)
  }

  async read (id: ChunkId, size: number): Promise<Uint8Array | null> {
    const offset = this.chunks.offsetOf(id, size)
    if (offset < 0 || this.fd == null) return null
    const buf = new Uint8Array(size)
    const n = fs.readSync(this.fd, buf, 0, size, offset)
    if (n !== size || !ChunkId.digest(buf, this.digest).equals(id)) {
      this.chunks.delete(id)
      return null
    }
    return buf
  }

  async close (): Promise<void> {
    if (this.fd != null) fs.closeSync(this.fd)
    this.fd = undefined
  }
}
