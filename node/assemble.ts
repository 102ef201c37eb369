// Rebuilding a stream from an index: every chunk comes from the first source that has a good
// copy (seeds, then the cache, then the stores in order). A missing chunk moves on to the next
// source; so does a chunk that fails verification (the bad source is counted and logged).
// Chunks fetched from a store are put into the cache at once, so peers can be served them.
import { isZero, ownBuffer, standalone } from '../protocol/bytes.ts'
import { ChunkId, digestFromFlags, type DigestAlgorithm } from '../protocol/chunk-id.ts'
import { ChunkInvalidError, ChunkMissingError, InvalidFormatError } from '../protocol/errors.ts'
import type { Index, IndexChunk } from '../protocol/index-file.ts'
import { defaultLogger } from './logger.ts'
import type { Seed } from './seed.ts'
import type { ChunkSource, ChunkStore } from './store/chunk-store.ts'
import { willNeed, writeOut } from './native-io.ts'
import { HttpStore } from './store/http-store.ts'
import { LocalStore } from './store/local-store.ts'
import { sharedPool, type LocalPlaceSource, type PlaceSource, type WorkerReply } from './workers/pool.ts'

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

/** Where extraction writes: an open file and, for the worker fast path, its descriptor. */
export interface OutputTarget {
  handle: import('node:fs/promises').FileHandle
  /** a second descriptor on the file for O_DIRECT writes (native-io openDirect) */
  directFd?: number
  /** name for error messages */
  name: string
  /**
   * the output holds zeros wherever nothing was written yet (a fresh file): chunks of zeros are
   * verified but not written, and their IDs are added to `zeros`
   */
  sparse?: { zeros: Set<string> }
}

type Candidate =
  | { kind: 'seed', name: string, seed: Seed }
  | { kind: 'cache', name: string, store: ChunkStore }
  | { kind: 'source', name: string, source: ChunkSource }

/**
 * Finds each chunk in seeds, cache and sources, verified, and feeds the cache. With an output
 * target, chunks from local stores and seed files are read, verified and written by a worker
 * thread without passing through the main thread.
 */
export class ChunkFetcher {
  readonly digest: DigestAlgorithm
  readonly stats: ExtractStats
  private readonly options: AssembleOptions
  private readonly candidates: Candidate[]
  private readonly cache?: ChunkStore
  private readonly workerSources = new Map<Candidate, PlaceSource | null>()

  constructor (index: Index, options: AssembleOptions) {
    this.digest = digestFromFlags(index.featureFlags)
    this.options = options
    this.stats = options.stats ?? emptyStats()
    this.cache = options.cache
    this.candidates = [
      ...(options.seeds ?? []).map(seed => ({ kind: 'seed' as const, name: seed.name, seed })),
      ...(options.cache != null ? [{ kind: 'cache' as const, name: `cache:${options.cache.toString()}`, store: options.cache }] : []),
      ...options.sources.map(source => ({ kind: 'source' as const, name: source.toString(), source }))
    ]
  }

  /** The local stores among the candidates (cache and sources), for read-ahead. */
  localStores (): LocalStore[] {
    const out: LocalStore[] = []
    for (const cand of this.candidates) {
      const store = cand.kind === 'cache' ? cand.store : cand.kind === 'source' ? cand.source : null
      if (store instanceof LocalStore) out.push(store)
    }
    return out
  }

  /** Names of everything asked, for error messages. */
  asked (): string[] {
    return this.candidates.map(c => c.name)
  }

  /** The chunk's verified bytes. */
  async fetch (c: IndexChunk, signal = this.options.signal): Promise<Uint8Array> {
    return (await this.obtain(c, undefined, signal))!
  }

  /** Writes the verified chunk at c.start in `out`. */
  async place (c: IndexChunk, out: OutputTarget, signal = this.options.signal): Promise<void> {
    await this.obtain(c, out, signal)
  }

  /** How many leading candidates a worker can read directly (seed files, local and HTTP stores). */
  fastPrefix (): number {
    return this.leading(source => source != null)
  }

  /**
   * How many leading candidates a worker reads itself without the network (seed files, local
   * stores): assembleBatch() takes chunks from those.
   */
  localPrefix (): number {
    return this.leading(source => source?.kind === 'store')
  }

  /** How many leading candidates are seed files a worker can read, or stores whose worker-side source passes `ok`. */
  private leading (ok: (source: PlaceSource | null) => boolean): number {
    let n = 0
    for (const cand of this.candidates) {
      if (cand.kind === 'seed' ? cand.seed.locate == null : !ok(this.workerSource(cand))) break
      n++
    }
    return n
  }

  /**
   * A store candidate as a worker reaches it, made once: the same object in every item of a
   * batch is cloned once into the worker's message (the structured clone keeps references).
   */
  private workerSource (cand: Candidate): PlaceSource | null {
    let source = this.workerSources.get(cand)
    if (source === undefined) this.workerSources.set(cand, source = workerCopy(this.fastStore(cand)))
    return source
  }

  private fastStore (cand: Candidate): ChunkSource | null {
    if (cand.kind === 'seed') return null
    // a chunk from a store must also reach the cache, which needs its bytes on this thread
    return cand.kind === 'cache' ? cand.store : (this.cache == null ? cand.source : null)
  }

  /** Adds what workers' copies of HTTP stores counted to the stores here. */
  private absorb (httpStats: WorkerReply['httpStats']): void {
    if (httpStats == null) return
    for (const cand of this.candidates) {
      const store = cand.kind === 'source' ? cand.source : cand.kind === 'cache' ? cand.store : null
      if (store instanceof HttpStore && httpStats[store.url] != null) store.absorb(httpStats[store.url]!)
    }
  }

  /**
   * Places a run of chunks with one worker round trip, trying the fast-path candidates in order;
   * chunks none of them could supply go through place() with the remaining candidates. Resolves
   * with each chunk's error (ChunkMissingError and the like), or null where it was placed.
   */
  async placeBatch (chunks: IndexChunk[], out: OutputTarget, signal = this.options.signal): Promise<Array<Error | null>> {
    const prefix = this.fastPrefix()
    const items = await Promise.all(chunks.map(async c => ({
      id: standalone(c.id.bytes),
      size: c.size,
      outOffset: c.start,
      from: await Promise.all(this.candidates.slice(0, prefix).map(async cand => await this.fastSource(cand, c)))
    })))
    const reply = await sharedPool().run({ op: 'place-batch', digest: this.digest, outFd: out.handle.fd, outDirectFd: out.directFd, sparse: out.sparse != null, items })
    this.absorb(reply.httpStats)
    const results: Array<Promise<Error | null>> = []
    reply.placed!.forEach((r, i) => {
      const c = chunks[i]!
      const { retry, errors } = this.failed(c, r.failures)
      if (r.from >= 0) {
        count(this.stats, this.candidates[r.from]!.name, c.size)
        if (r.zero === true) out.sparse?.zeros.add(c.id.toString())
        results.push(Promise.resolve(null))
        return
      }
      // xz chunks are decoded on the asynchronous path: try every candidate again
      results.push(this.obtain(c, out, signal, retry ? 0 : prefix, retry ? [] : errors).then(() => null, (err: Error) => err))
    })
    return await Promise.all(results)
  }

  /**
   * The verified bytes of a run of chunks, back to back: one worker round trip for the chunks the
   * local-prefix candidates hold, then the others one at a time from the remaining candidates.
   */
  async assembleBatch (chunks: IndexChunk[], signal = this.options.signal): Promise<Uint8Array> {
    const prefix = this.localPrefix()
    const items = await Promise.all(chunks.map(async c => ({
      id: standalone(c.id.bytes),
      size: c.size,
      from: await Promise.all(this.candidates.slice(0, prefix).map(async cand => await this.fastSource(cand, c) as LocalPlaceSource | null))
    })))
    const reply = await sharedPool().run({ op: 'assemble-batch', digest: this.digest, items })
    let total = 0
    for (const c of chunks) total += c.size
    const data = new Uint8Array(reply.plain!, 0, total)
    let at = 0
    for (let i = 0; i < chunks.length; i++) {
      const c = chunks[i]!
      const r = reply.placed![i]!
      const { retry, errors } = this.failed(c, r.failures)
      if (r.from >= 0) {
        count(this.stats, this.candidates[r.from]!.name, c.size)
      } else {
        data.set((await this.obtain(c, undefined, signal, retry ? 0 : prefix, retry ? [] : errors))!, at)
      }
      at += c.size
    }
    return data
  }

  /** Counts and logs what a worker says went wrong with a chunk's sources. */
  private failed (c: IndexChunk, failures: NonNullable<WorkerReply['placed']>[number]['failures']): { retry: boolean, errors: Error[] } {
    let retry = false
    const errors: Error[] = []
    for (const f of failures) {
      const cand = this.candidates[f.source]!
      if (f.status === 'invalid') {
        const err = new ChunkInvalidError(c.id, undefined, `${cand.name}: ${f.detail ?? 'bad chunk'}`)
        this.bad(cand.name, err)
        errors.push(err)
      } else if (f.status === 'error') {
        log.error('%s failed for %s - %s', cand.name, c.id.toString(), f.detail)
        errors.push(Object.assign(new Error(f.detail ?? `${cand.name} failed`), { code: f.code ?? 'ERR_SOURCE_FAILED' }))
      } else if (f.status === 'xz') retry = true
      else if (cand.kind === 'seed') cand.seed.forget?.(c.id)
    }
    return { retry, errors }
  }

  private async obtain (c: IndexChunk, out: OutputTarget | undefined, signal: AbortSignal | undefined, skip = 0, earlier: Error[] = []): Promise<Uint8Array | undefined> {
    const errors: Error[] = [...earlier]
    for (const cand of this.candidates.slice(skip)) {
      signal?.throwIfAborted()
      if (cand.kind === 'seed' && !cand.seed.has(c.id)) continue
      // fast path: a worker reads, verifies and writes (local stores and seed files)
      if (out != null) {
        const from = await this.fastSource(cand, c)
        if (from != null) {
          const reply = await sharedPool().run({ op: 'place', id: standalone(c.id.bytes), size: c.size, digest: this.digest, outFd: out.handle.fd, outDirectFd: out.directFd, outOffset: c.start, from, sparse: out.sparse != null })
          this.absorb(reply.httpStats)
          if (reply.status === 'error') {
            log.error('%s failed for %s - %s', cand.name, c.id.toString(), reply.detail)
            errors.push(Object.assign(new Error(reply.detail ?? `${cand.name} failed`), { code: reply.code ?? 'ERR_SOURCE_FAILED' }))
            continue
          }
          if (reply.status === 'ok') {
            count(this.stats, cand.name, c.size)
            if (reply.zero === true) out.sparse?.zeros.add(c.id.toString())
            return undefined
          }
          if (reply.status === 'invalid') {
            const err = new ChunkInvalidError(c.id, undefined, `${cand.name}: ${reply.detail ?? 'bad chunk'}`)
            this.bad(cand.name, err)
            errors.push(err)
            continue
          }
          if (reply.detail !== 'xz') {
            if (cand.kind === 'seed') cand.seed.forget?.(c.id)
            continue
          }
          // xz chunks are decoded on the asynchronous path below
        }
      }
      let data: Uint8Array | null
      try {
        data = await this.get(cand, c, signal)
      } catch (err: any) {
        if (signal?.aborted === true) throw signal.reason
        if (err.code === ChunkInvalidError.code || err.code === InvalidFormatError.code) this.bad(cand.name, err)
        else log.error('%s failed for %s - %s', cand.name, c.id.toString(), err.message)
        errors.push(err)
        continue
      }
      if (data == null) continue
      count(this.stats, cand.name, c.size)
      if (cand.kind === 'source' && this.cache != null) await this.feedCache(this.cache, c.id, data)
      if (out == null) return data
      if (out.sparse != null && isZero(data)) { out.sparse.zeros.add(c.id.toString()); return undefined }
      if (out.directFd != null) {
        writeOut(out.handle.fd, data.subarray(0, c.size), c.start, out.directFd)
      } else {
        const { bytesWritten } = await out.handle.write(data, 0, c.size, c.start)
        if (bytesWritten !== c.size) throw Object.assign(new Error(`short write to ${out.name} at ${c.start}`), { code: 'EIO' })
      }
      return undefined
    }
    if (errors.length > 0) {
      const last = errors[errors.length - 1] as any
      const code = errors.every(e => (e as any).code === ChunkInvalidError.code) ? ChunkInvalidError.code : (last.code ?? 'ERR_ALL_SOURCES_FAILED')
      throw Object.assign(new AggregateError(errors, `chunk ${c.id.toString()}: no source supplied a good copy (${errors.map(e => e.message).join('; ')})`), { code })
    }
    throw new ChunkMissingError(c.id)
  }

  /** What a worker can read directly, or null. */
  private async fastSource (cand: Candidate, c: IndexChunk): Promise<PlaceSource | null> {
    if (cand.kind === 'seed') {
      if (cand.seed.locate == null) return null
      const loc = await cand.seed.locate(c.id, c.size)
      return loc == null ? null : { kind: 'file', fd: loc.fd, offset: loc.offset }
    }
    return this.workerSource(cand)
  }

  /** One candidate's verified copy, or null when it has none. */
  private async get (cand: Candidate, c: IndexChunk, signal: AbortSignal | undefined): Promise<Uint8Array | null> {
    if (cand.kind === 'seed') return await cand.seed.read(c.id, c.size)
    const source = cand.kind === 'cache' ? cand.store : cand.source
    try {
      if (source instanceof LocalStore) return await source.getNow(c.id, { signal, size: c.size })
      return await source.get(c.id, { signal, size: c.size })
    } catch (err: any) {
      if (err.code === ChunkMissingError.code) return null
      throw err
    }
  }

  private bad (source: string, err: Error): void {
    this.stats.invalid[source] = (this.stats.invalid[source] ?? 0) + 1
    log.error('%s served a bad copy - %s', source, err.message)
  }

  /** Puts a verified chunk into the cache (compressed on a worker when the cache is local). */
  private async feedCache (cache: ChunkStore, id: ChunkId, data: Uint8Array): Promise<void> {
    try {
      if (cache instanceof LocalStore) {
        await sharedPool().run({ op: 'store', data: ownBuffer(data), digest: this.digest, compression: cache.compression, storePath: cache.path, extension: cache.extension })
      } else {
        await cache.put(id, data)
      }
    } catch (err: any) {
      log.error('could not add %s to cache %s - %s', id.toString(), cache.toString(), err.message)
    }
  }
}

/**
 * How a worker reaches a store itself: a local store's directory, or its own copy of an HTTP
 * store (a share of the connections); null for any other source.
 */
function workerCopy (store: ChunkSource | null): PlaceSource | null {
  if (store instanceof LocalStore) return { kind: 'store', path: store.path, extension: store.extension }
  if (store instanceof HttpStore) {
    const copy = store.workerInit(1 / sharedPool().size)
    return copy == null ? null : { kind: 'http', ...copy }
  }
  return null
}

/** chunks whose files are asked for at once, ahead of the fetch window */
const PREFETCH = 32
/** a batch of assembleBatch(): at most this many chunks, or bytes */
const BATCH_CHUNKS = 64
const BATCH_BYTES = 2 << 20

/**
 * The described stream's bytes in order; every chunk verified before it is yielded. When the
 * first sources are local (seed files, local stores), runs of chunks are read, decompressed and
 * verified by the workers into one buffer each (assembleBatch), and the stream comes in those
 * pieces; otherwise chunk by chunk, `concurrency` at a time.
 */
export async function * assembleStream (index: Index, options: AssembleOptions): AsyncGenerator<Uint8Array> {
  const started = performance.now()
  const fetcher = new ChunkFetcher(index, options)
  const stats = fetcher.stats
  const batched = fetcher.localPrefix() > 0
  const window: Array<{ chunks: number, data: Promise<Uint8Array> }> = []
  const limit = batched ? Math.max(2, sharedPool().size * 2) : (options.concurrency ?? 16)
  let next = 0
  let done = 0
  // local stores' chunk files are asked for ahead of the window (read ahead by the kernel)
  const local = fetcher.localStores()
  let advised = 0
  const chunks = index.chunks
  const fill = (): void => {
    while (window.length < limit && next < chunks.length) {
      let end = next + 1
      if (batched) {
        let bytes = chunks.size(next)
        while (end < chunks.length && end - next < BATCH_CHUNKS && bytes + chunks.size(end) <= BATCH_BYTES) bytes += chunks.size(end++)
      }
      if (local.length > 0 && advised < Math.min(chunks.length, end + PREFETCH)) {
        const upto = Math.min(chunks.length, Math.max(advised, end) + PREFETCH)
        const files: string[] = []
        for (; advised < upto; advised++) for (const store of local) files.push(store.chunkFile(chunks.id(advised)))
        willNeed(files)
      }
      // (chunk objects are made for the window only: the index keeps none)
      const data = batched ? fetcher.assembleBatch(chunks.slice(next, end)) : fetcher.fetch(chunks.at(next))
      data.catch(() => {}) // observed when its turn comes
      window.push({ chunks: end - next, data })
      next = end
    }
  }
  try {
    fill()
    while (window.length > 0) {
      const piece = window.shift()!
      const data = await piece.data
      fill()
      done += data.byteLength
      stats.bytes = done
      stats.chunks += piece.chunks
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
