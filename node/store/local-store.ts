// A casync chunk store on disk (.castr): <4 hex>/<64 hex>.cacnk, compressed, mode 0444, written
// to a temporary name and renamed, every chunk verified when read (spec §2.2).
import { randomBytes } from 'node:crypto'
import { constants as fsc, lstatSync, readFileSync } from 'node:fs'
import * as fs from 'node:fs/promises'
import * as path from 'node:path'
import { chunkPath, type ChunkId, type DigestAlgorithm, DEFAULT_DIGEST } from '../../protocol/chunk-id.ts'
import { compress, type Compression, DEFAULT_COMPRESSION } from '../../protocol/compression.ts'
import { CHUNK_SUFFIX } from '../../protocol/constants.ts'
import { ChunkInvalidError, ChunkMissingError, withContext } from '../../protocol/errors.ts'
import { defaultLogger, type ComponentLogger, type Logger } from '../logger.ts'
import type { AbortOptions, ChunkStore, GetOptions, RawChunkSource } from './chunk-store.ts'
import { decodeChunk } from './verify.ts'

export interface LocalStoreInit {
  /** Create the .castr directory if it does not exist (on the first put). @default true */
  createIfMissing?: boolean
  /** Verify the hash of every chunk read from disk. @default true */
  verify?: boolean
  /** @default '.cacnk' */
  extension?: string
  /** Digest of the chunk IDs kept here (from the index's feature flags). @default 'sha256' */
  digest?: DigestAlgorithm
  /** Compression for put(). @default 'zstd' */
  compression?: Compression
}

export interface LocalStoreComponents { logger: ComponentLogger }

export class LocalStore implements ChunkStore, RawChunkSource {
  readonly path: string
  readonly digest: DigestAlgorithm
  readonly compression: Compression
  private readonly createIfMissing: boolean
  private readonly verify: boolean
  readonly extension: string
  private readonly log: Logger
  private readonly madeDirs = new Set<string>()

  constructor (storePath: string, init: LocalStoreInit = {}, components: LocalStoreComponents = { logger: defaultLogger() }) {
    this.path = storePath
    this.createIfMissing = init.createIfMissing ?? true
    this.verify = init.verify ?? true
    this.extension = init.extension ?? CHUNK_SUFFIX
    this.digest = init.digest ?? DEFAULT_DIGEST
    this.compression = init.compression ?? DEFAULT_COMPRESSION
    this.log = components.logger.forComponent('caswarm:store:local')
  }

  toString (): string { return `local:${this.path}` }

  /** Where a chunk lives in this store. */
  chunkFile (id: ChunkId): string {
    return path.join(this.path, chunkPath(id, this.extension))
  }

  /** The stored file's bytes and whether they are compressed, or null when absent. */
  private async readStored (id: ChunkId, options: AbortOptions): Promise<{ bytes: Uint8Array, compressed: boolean } | null> {
    options.signal?.throwIfAborted()
    const file = this.chunkFile(id)
    try {
      return { bytes: await fs.readFile(file, { signal: options.signal }), compressed: true }
    } catch (err: any) {
      if (err.code !== 'ENOENT') throw withContext(err, `${this.toString()}: reading ${file}`)
    }
    // casync also reads uncompressed chunks stored as <4hex>/<id> with no suffix (spec §2.2);
    // a symlink to /dev/null there marks the chunk as known-missing.
    const plainFile = path.join(this.path, chunkPath(id, ''))
    try {
      const st = await fs.lstat(plainFile)
      if (!st.isFile()) return null
      return { bytes: await fs.readFile(plainFile, { signal: options.signal }), compressed: false }
    } catch (err: any) {
      if (err.code === 'ENOENT' || err.code === 'ENOTDIR') return null
      throw withContext(err, `${this.toString()}: reading ${plainFile}`)
    }
  }

  async get (id: ChunkId, options: GetOptions = {}): Promise<Uint8Array> {
    return await this.decodeStored(id, await this.readStored(id, options), options)
  }

  /**
   * get(), with the file read synchronously: a cached chunk file costs one system call per step
   * instead of a round trip to libuv's pool for each (extract's reads, prefetched with willNeed).
   */
  async getNow (id: ChunkId, options: GetOptions = {}): Promise<Uint8Array> {
    options.signal?.throwIfAborted()
    return await this.decodeStored(id, this.readStoredSync(id), options)
  }

  private async decodeStored (id: ChunkId, stored: { bytes: Uint8Array, compressed: boolean } | null, options: GetOptions): Promise<Uint8Array> {
    if (stored == null) throw new ChunkMissingError(id, `chunk ${id.toString()} missing from ${this.toString()}`)
    try {
      return await decodeChunk(id, stored.bytes, this.digest, { size: options.size, compressed: stored.compressed, verify: this.verify })
    } catch (err: any) {
      if (err.code === ChunkInvalidError.code) this.log.error('%s holds a bad copy of %s: %s', this.toString(), id.toString(), err.message)
      throw withContext(err, `${this.toString()} (${this.chunkFile(id)})`)
    }
  }

  private readStoredSync (id: ChunkId): { bytes: Uint8Array, compressed: boolean } | null {
    const file = this.chunkFile(id)
    try {
      return { bytes: readFileSync(file), compressed: true }
    } catch (err: any) {
      if (err.code !== 'ENOENT') throw withContext(err, `${this.toString()}: reading ${file}`)
    }
    const plainFile = path.join(this.path, chunkPath(id, ''))
    try {
      if (!lstatSync(plainFile).isFile()) return null
      return { bytes: readFileSync(plainFile), compressed: false }
    } catch (err: any) {
      if (err.code === 'ENOENT' || err.code === 'ENOTDIR') return null
      throw withContext(err, `${this.toString()}: reading ${plainFile}`)
    }
  }

  async getCompressed (id: ChunkId, options: GetOptions & { verify?: boolean } = {}): Promise<Uint8Array> {
    const stored = await this.readStored(id, options)
    if (stored == null) throw new ChunkMissingError(id, `chunk ${id.toString()} missing from ${this.toString()}`)
    if (!stored.compressed) {
      const plain = await decodeChunk(id, stored.bytes, this.digest, { size: options.size, compressed: false })
      return await compress(plain, this.compression)
    }
    if (options.verify ?? this.verify) {
      await decodeChunk(id, stored.bytes, this.digest, { size: options.size }).catch(err => { throw withContext(err, `${this.toString()} (${this.chunkFile(id)})`) })
    }
    return stored.bytes
  }

  async has (id: ChunkId, options: AbortOptions = {}): Promise<boolean> {
    options.signal?.throwIfAborted()
    try {
      await fs.access(this.chunkFile(id), fsc.F_OK)
      return true
    } catch {
      try {
        return (await fs.lstat(path.join(this.path, chunkPath(id, '')))).isFile()
      } catch {
        return false
      }
    }
  }

  async put (id: ChunkId, data: Uint8Array, options: AbortOptions = {}): Promise<void> {
    if (await this.has(id, options)) return
    await this.putCompressed(id, await compress(data, this.compression), options)
  }

  /** Writes `<4hex>/<id>.<16 random hex>.tmp`, then renames it into place (spec §2.2). */
  async putCompressed (id: ChunkId, compressed: Uint8Array, options: AbortOptions = {}): Promise<void> {
    options.signal?.throwIfAborted()
    const file = this.chunkFile(id)
    const dir = path.dirname(file)
    if (!this.madeDirs.has(dir)) {
      if (!this.createIfMissing) {
        try { await fs.access(this.path) } catch { throw new ChunkMissingError(id, `store ${this.path} does not exist`) }
      }
      await fs.mkdir(dir, { recursive: true })
      this.madeDirs.add(dir)
    }
    const tmp = `${dir}/${id.toString()}.${randomBytes(8).toString('hex')}.tmp`
    try {
      await fs.writeFile(tmp, compressed, { mode: 0o444, signal: options.signal })
      await fs.rename(tmp, file)
      this.log.trace('put %s (%d bytes stored)', id.toString(), compressed.byteLength)
    } catch (err: any) {
      await fs.rm(tmp, { force: true }).catch(() => {})
      throw withContext(err, `${this.toString()}: writing ${file}`)
    }
  }

  /** Every chunk ID in the store (for `caswarm node` announcements and store checks). */
  async * list (): AsyncGenerator<ChunkId> {
    const { ChunkId: Id } = await import('../../protocol/chunk-id.ts')
    let dirs: string[]
    try { dirs = await fs.readdir(this.path) } catch { return }
    for (const d of dirs.sort()) {
      if (!/^[0-9a-f]{4}$/.test(d)) continue
      let files: string[]
      try { files = await fs.readdir(path.join(this.path, d)) } catch { continue }
      for (const f of files.sort()) {
        const hex = f.endsWith(this.extension) ? f.slice(0, -this.extension.length) : f
        if (/^[0-9a-f]{64}$/.test(hex)) yield Id.parse(hex)
      }
    }
  }

  async close (): Promise<void> {}
}
