// Rebuilding a stream from an index: every chunk comes from the first source that has a good
// copy (seeds, then the cache, then the stores in order). A missing chunk moves on to the next
// source; so does a chunk that fails verification (the bad source is counted and logged).
// Chunks fetched from a store are put into the cache at once, so peers can be served them.
import { ChunkId, digestFromFlags, type DigestAlgorithm } from '../protocol/chunk-id.ts'
import { ChunkInvalidError, ChunkMissingError, InvalidFormatError } from '../protocol/errors.ts'
import type { Index, IndexChunk } from '../protocol/index-file.ts'
import { defaultLogger } from './logger.ts'
import type { Seed } from './seed.ts'
import type { ChunkSource, ChunkStore } from './store/chunk-store.ts'
import { LocalStore } from './store/local-store.ts'
import { CHUNK_SUFFIX } from '../protocol/constants.ts'
import { sharedPool, transferable } from './workers/pool.ts'

const log = defaultLogger().forComponent('caswarm:extract')

export interface SourceStats { chunks: number, bytes: number }

export interface ExtractStats {
  /** plain bytes of the stream */
  bytes: number
  chunks: number
  seconds: number
  /** per source, by its name: 'seed:/path', 'local:/x.castr', 'http://…', 'peer:…', 'cache:…', 'in-place' */
  sources: Record<string, SourceStats>
  /** chunks a source served that failed verification, by source */
  invalid: Record<string, number>
}

export function emptyStats (): ExtractStats {
  return { bytes: 0, chunks: 0, seconds: 0, sources: {}, invalid: {} }
}

export interface AssembleOptions {
  /** tried in order; ChunkMissingError or a bad chunk → the next source */
  sources: ChunkSource[]
  /** read first; every chunk fetched from `sources` is put here at once */
  cache?: ChunkStore
  /** seeds, tried before the cache and the sources */
  seeds?: Seed[]
  /** chunks in flight. @default 16 */
  concurrency?: number
  signal?: AbortSignal
  /** filled in as it goes */
  stats?: ExtractStats
  onProgress?: (bytesDone: number) => void
}

export class MissingChunksError extends Error {
  static readonly code = ChunkMissingError.code
  readonly code = ChunkMissingError.code
  override name = 'MissingChunksError'
  readonly ids: ChunkId[]

  constructor (ids: ChunkId[], asked: string[], total?: number) {
    const n = total ?? ids.length
    const shown = ids.slice(0, 3).map(id => id.toString()).join(', ')
    super(`${n} chunk${n === 1 ? '' : 's'} missing from every source (${shown}${n > 3 ? ', …' : ''}); asked: ${asked.length > 0 ? asked.join(', ') : 'no sources'}`)
    this.ids = ids
  }
}

export function count (stats: ExtractStats, source: string, bytes: number): void {
  const s = stats.sources[source] ??= { chunks: 0, bytes: 0 }
  s.chunks++
  s.bytes += bytes
}

/** Finds each chunk in seeds, cache and sources, verified, and feeds the cache. */
export class ChunkFetcher {
  readonly digest: DigestAlgorithm
  readonly stats: ExtractStats
  private readonly options: AssembleOptions
  private readonly seeds: Seed[]

  constructor (index: Index, options: AssembleOptions) {
    this.digest = digestFromFlags(index.featureFlags)
    this.options = options
    this.seeds = options.seeds ?? []
    this.stats = options.stats ?? emptyStats()
  }

  /** Names of everything asked, for error messages. */
  asked (): string[] {
    return [...this.seeds.map(s => s.name), ...(this.options.cache != null ? [`cache:${this.options.cache.toString()}`] : []), ...this.options.sources.map(s => s.toString())]
  }

  async fetch (c: IndexChunk, signal = this.options.signal): Promise<Uint8Array> {
    for (const seed of this.seeds) {
      if (!seed.has(c.id)) continue
      const data = await seed.read(c.id, c.size)
      if (data != null) { count(this.stats, seed.name, c.size); return data }
    }
    const cache = this.options.cache
    if (cache != null) {
      try {
        const data = await cache.get(c.id, { signal, size: c.size })
        count(this.stats, `cache:${cache.toString()}`, c.size)
        return data
      } catch (err: any) {
        if (err.code === ChunkInvalidError.code) this.bad(`cache:${cache.toString()}`, err)
        else if (err.code !== ChunkMissingError.code) throw err
      }
    }
    const errors: Error[] = []
    for (const source of this.options.sources) {
      signal?.throwIfAborted()
      let data: Uint8Array
      try {
        data = await source.get(c.id, { signal, size: c.size })
      } catch (err: any) {
        if (err.code === ChunkMissingError.code) continue
        if (signal?.aborted === true) throw signal.reason
        if (err.code === ChunkInvalidError.code || err.code === InvalidFormatError.code) this.bad(source.toString(), err)
        else log.error('%s failed for %s - %s', source.toString(), c.id.toString(), err.message)
        errors.push(err)
        continue
      }
      count(this.stats, source.toString(), c.size)
      if (cache != null) await this.feedCache(cache, c.id, data)
      return data
    }
    if (errors.length > 0) {
      const err = errors[errors.length - 1]!
      throw Object.assign(new AggregateError(errors, `chunk ${c.id.toString()}: no source supplied a good copy (${errors.map(e => e.message).join('; ')})`), { code: errors.every(e => (e as any).code === ChunkInvalidError.code) ? ChunkInvalidError.code : (err as any).code ?? 'ERR_ALL_SOURCES_FAILED' })
    }
    throw new ChunkMissingError(c.id)
  }

  private bad (source: string, err: Error): void {
    this.stats.invalid[source] = (this.stats.invalid[source] ?? 0) + 1
    log.error('%s served a bad copy - %s', source, err.message)
  }

  /** Puts a verified chunk into the cache (compressed on a worker when the cache is local). */
  private async feedCache (cache: ChunkStore, id: ChunkId, data: Uint8Array): Promise<void> {
    try {
      if (cache instanceof LocalStore) {
        if (await cache.has(id)) return
        await sharedPool().run({ op: 'store', data: transferable(data), digest: this.digest, compression: cache.compression, storePath: cache.path, extension: CHUNK_SUFFIX })
      } else {
        await cache.put(id, data)
      }
    } catch (err: any) {
      log.error('could not add %s to cache %s - %s', id.toString(), cache.toString(), err.message)
    }
  }
}

/** The described stream's bytes in order; every chunk verified before it is yielded. */
export async function * assembleStream (index: Index, options: AssembleOptions): AsyncGenerator<Uint8Array> {
  const started = performance.now()
  const fetcher = new ChunkFetcher(index, options)
  const stats = fetcher.stats
  const window: Array<Promise<Uint8Array>> = []
  const limit = options.concurrency ?? 16
  let next = 0
  let done = 0
  const fill = (): void => {
    while (window.length < limit && next < index.chunks.length) {
      const p = fetcher.fetch(index.chunks[next++]!)
      p.catch(() => {}) // observed when its turn comes
      window.push(p)
    }
  }
  try {
    fill()
    while (window.length > 0) {
      const data = await window.shift()!
      fill()
      done += data.byteLength
      stats.bytes = done
      stats.chunks++
      options.onProgress?.(done)
      yield data
    }
  } catch (err: any) {
    if (err.code === ChunkMissingError.code && !(err instanceof MissingChunksError)) throw new MissingChunksError([err.id], fetcher.asked())
    throw err
  } finally {
    stats.seconds = (performance.now() - started) / 1000
  }
}
