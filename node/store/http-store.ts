// A casync chunk store over HTTP(S): `<base>/<4hex>/<id>.cacnk`, as nginx, a CDN or `caswarm serve`
// publish it (spec §2.2). undici Pool with keep-alive connections, a bound on requests in flight,
// retries with backoff; 404 means missing (the next source is asked); every chunk is verified.
import { chunkPath, type ChunkId, type DigestAlgorithm, DEFAULT_DIGEST } from '../../protocol/chunk-id.ts'
import { type Compression, DEFAULT_COMPRESSION, detectCompression } from '../../protocol/compression.ts'
import { CHUNK_SUFFIX, MAX_CHUNK_DECOMPRESSED } from '../../protocol/constants.ts'
import { ChunkInvalidError, ChunkMissingError, InvalidArgumentError } from '../../protocol/errors.ts'
import { defaultLogger, type ComponentLogger, type Logger } from '../logger.ts'
import { DEFAULT_CONCURRENCY, DEFAULT_CONNECTIONS, HttpClient, statusError, type HttpClientInit, type HttpStats } from '../http/client.ts'
import type { AbortOptions, ChunkStore, GetOptions, RawChunkSource } from './chunk-store.ts'
import { decodeChunk } from './verify.ts'

export interface HttpStoreInit extends HttpClientInit {
  /** Digest of the chunk IDs (from the index's feature flags). @default 'sha256' */
  digest?: DigestAlgorithm
  /** Compression for uploads (see node/http/upload.ts). @default 'zstd' */
  compression?: Compression
  /** @default '.cacnk' */
  extension?: string
  /** Largest chunk file accepted (compressed bytes). @default 128 MiB */
  maxChunkFile?: number
  /** Decode zstd chunks on the thread that received them, not on the worker pool. @default true */
  inlineZstd?: boolean
}

/** A worker thread's copy of an HttpStore (see HttpStore.workerInit). */
export interface WorkerCopy { url: string, init: HttpStoreInit, key: string }

export interface HttpStoreComponents { logger: ComponentLogger }

export interface HttpStoreStats extends HttpStats {
  /** chunks fetched and verified */
  chunks: number
  /** plain bytes of those chunks */
  plainBytes: number
  /** 404 answers */
  missing: number
  /** responses that failed verification */
  invalid: number
}

export class HttpStore implements ChunkStore, RawChunkSource {
  /** the store's base URL, ending in '/' */
  readonly url: string
  readonly digest: DigestAlgorithm
  readonly compression: Compression
  protected readonly client: HttpClient
  protected readonly basePath: string
  protected readonly extension: string
  protected readonly log: Logger
  private readonly maxChunkFile: number
  private readonly inlineZstd: boolean
  private readonly counters = { chunks: 0, plainBytes: 0, missing: 0, invalid: 0 }
  private readonly init: HttpStoreInit
  /** what workerInit handed out, by share: worker threads may hold these copies */
  private readonly workerCopies = new Map<number, WorkerCopy>()

  constructor (url: string, init: HttpStoreInit = {}, components: HttpStoreComponents = { logger: defaultLogger() }) {
    const parsed = new URL(url)
    if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') throw new InvalidArgumentError(`not an HTTP store URL: ${url}`)
    if (!parsed.pathname.endsWith('/')) parsed.pathname += '/'
    parsed.search = ''
    parsed.hash = ''
    this.url = parsed.toString()
    this.basePath = parsed.pathname
    this.digest = init.digest ?? DEFAULT_DIGEST
    this.compression = init.compression ?? DEFAULT_COMPRESSION
    this.extension = init.extension ?? CHUNK_SUFFIX
    this.maxChunkFile = init.maxChunkFile ?? 128 * 1024 * 1024
    this.inlineZstd = init.inlineZstd ?? true
    this.client = new HttpClient(parsed.origin, init)
    this.init = init
    this.log = components.logger.forComponent('caswarm:store:http')
  }

  toString (): string { return this.url.replace(/\/$/, '') }

  /** Request and byte counters (honest: every attempt and every body byte counts). */
  get stats (): HttpStoreStats {
    return { ...this.client.stats, ...this.counters }
  }

  /** The chunk's path relative to the origin. */
  chunkUrlPath (id: ChunkId): string {
    return this.basePath + chunkPath(id, this.extension)
  }

  chunkUrl (id: ChunkId): string {
    return this.client.origin + this.chunkUrlPath(id)
  }

  /** Fetches the stored (compressed) file; with `decode`, verifies it and returns both forms. */
  private async fetch (id: ChunkId, options: GetOptions & { verify?: boolean }): Promise<{ stored: Uint8Array, plain?: Uint8Array }> {
    const verify = options.verify ?? true
    const maxSize = options.size ?? MAX_CHUNK_DECOMPRESSED
    return await this.client.run({
      method: 'GET',
      path: this.chunkUrlPath(id),
      signal: options.signal,
      retryInvalid: true,
      limit: this.maxChunkFile,
      handleBytes: async ({ statusCode, headers, body }, url) => {
        if (statusCode === 404 || statusCode === 410) {
          this.counters.missing++
          throw new ChunkMissingError(id, `chunk ${id.toString()} missing from ${url} (${statusCode})`)
        }
        if (statusCode !== 200) throw statusError(statusCode, url, '', headers)
        const stored = body
        if (!verify) return { stored }
        try {
          // zstd (casync's default) decodes faster here than a round trip to a worker costs
          const inline = this.inlineZstd && detectCompression(stored) === 'zstd'
          const plain = await decodeChunk(id, stored, this.digest, { size: options.size, maxSize, inline })
          return { stored, plain }
        } catch (err: any) {
          if (err.code === ChunkInvalidError.code) {
            this.counters.invalid++
            this.log.error('%s served a bad copy of %s: %s', url, id.toString(), err.message)
          }
          throw err
        }
      }
    })
  }

  async get (id: ChunkId, options: GetOptions = {}): Promise<Uint8Array> {
    const { plain } = await this.fetch(id, options)
    this.counters.chunks++
    this.counters.plainBytes += plain!.byteLength
    return plain!
  }

  async getCompressed (id: ChunkId, options: GetOptions & { verify?: boolean } = {}): Promise<Uint8Array> {
    const { stored, plain } = await this.fetch(id, options)
    this.counters.chunks++
    if (plain != null) this.counters.plainBytes += plain.byteLength
    return stored
  }

  async has (id: ChunkId, options: AbortOptions = {}): Promise<boolean> {
    return await this.client.run({
      method: 'HEAD',
      path: this.chunkUrlPath(id),
      signal: options.signal,
      handle: async ({ statusCode, body }, url) => {
        await body.dump()
        if (statusCode === 200) return true
        if (statusCode === 404 || statusCode === 410) return false
        throw statusError(statusCode, url)
      }
    })
  }

  /**
   * What a worker thread needs to open its own copy of this store (its own connections), with
   * `share` of the requests and connections, and a key naming that copy; null when the store
   * cannot be copied (a dispatcher of the caller's, such as a test's mock). Worked out once per
   * share: extraction asks for it for every chunk.
   */
  workerInit (share: number): WorkerCopy | null {
    if (this.init.dispatcher != null) return null
    let copy = this.workerCopies.get(share)
    if (copy == null) {
      const { dispatcher: _, ...init } = this.init
      const part = (n: number): number => Math.max(1, Math.ceil(n * share))
      const copyInit = { ...init, digest: this.digest, compression: this.compression, extension: this.extension, maxChunkFile: this.maxChunkFile, concurrency: part(init.concurrency ?? DEFAULT_CONCURRENCY), connections: part(init.connections ?? DEFAULT_CONNECTIONS) }
      copy = { url: this.url, init: copyInit, key: `${this.url} ${JSON.stringify(copyInit)}` }
      this.workerCopies.set(share, copy)
    }
    return copy
  }

  /** Adds what a worker's copy of this store counted (see workerInit). */
  absorb (delta: HttpStoreStats): void {
    for (const key of Object.keys(this.client.stats) as Array<keyof HttpStats>) this.client.stats[key] += delta[key] ?? 0
    for (const key of Object.keys(this.counters) as Array<keyof typeof this.counters>) this.counters[key] += delta[key] ?? 0
  }

  async put (_id: ChunkId, _data: Uint8Array, _options?: AbortOptions): Promise<void> {
    throw new InvalidArgumentError(`${this.toString()} is opened read-only (uploads need a writable store and a token)`)
  }

  async close (): Promise<void> {
    await this.client.close()
    if (this.workerCopies.size > 0) {
      this.workerCopies.clear()
      const { sharedPool } = await import('../workers/pool.ts')
      await sharedPool().broadcast({ op: 'http-close', url: this.url })
    }
  }
}
