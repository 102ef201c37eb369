// A small pool of worker threads (one per core) for chunk hashing, compression and
// verification. The main thread only reads, chunks and writes.
import { availableParallelism } from 'node:os'
import { Worker } from 'node:worker_threads'
import type { DigestAlgorithm } from '../../protocol/chunk-id.ts'
import type { SharedChunkTable } from '../../protocol/chunk-table.ts'
import type { Compression } from '../../protocol/compression.ts'
import { ChunkInvalidError, InvalidFormatError } from '../../protocol/errors.ts'
import { ChunkId } from '../../protocol/chunk-id.ts'
import type { HttpStoreInit, HttpStoreStats } from '../store/http-store.ts'

export type WorkerRequest =
  | { op: 'hash', seq: number, data: ArrayBuffer, digest: DigestAlgorithm }
  | { op: 'store', seq: number, data: ArrayBuffer, digest: DigestAlgorithm, compression: Compression, storePath?: string, extension: string }
  /** hash and store (when the local store lacks it) each chunk of `data`, whose sizes are `sizes`: reply ids and storedSizes */
  | { op: 'store-batch', seq: number, data: ArrayBuffer, sizes: Int32Array, digest: DigestAlgorithm, compression: Compression, storePath: string, extension: string }
  | { op: 'decode', seq: number, data: ArrayBuffer, id: Uint8Array, digest: DigestAlgorithm, compressed: boolean, size?: number, maxSize?: number, verify?: boolean }
  /** read a chunk from a local store or a seed file, verify it, write it at outOffset in outFd */
  | { op: 'place', seq: number, id: Uint8Array, size: number, digest: DigestAlgorithm, outFd: number, outDirectFd?: number, outOffset: number, from: PlaceSource, sparse?: boolean }
  /**
   * index part of a seed: chunk fd's bytes from `start` with the index's parameters, going on past
   * `end` by `overlap` bytes so the next range's chunker has resynchronised; hash chunks whose size
   * is in `sizes` and note those whose ID is in the index's chunk `table` in `found` (both shared
   * memory: see SeedFound)
   */
  | { op: 'seed', seq: number, fd: number, start: number, end: number, overlap: number, zeroRun?: number, min: number, avg: number, max: number, digest: DigestAlgorithm, table: SharedChunkTable, found: BigInt64Array, sizes: Int32Array, out?: SeedOutput }
  /**
   * probe index positions [first, end) of the chunk `table` (shared memory) against a seed of
   * `seedSize` bytes at the offsets they would have in an older version
   * (node/workers/seed-scan.ts), starting `delta` bytes off and scanning `window` bytes around a
   * miss; notes the chunks found in `found` (see SeedFound); stops early once `cancel[0]` (shared
   * memory) is set
   */
  | { op: 'seed-probe', seq: number, fd: number, seedSize: number, first: number, end: number, delta: number, window: number, zeroRun?: number, min: number, avg: number, max: number, digest: DigestAlgorithm, table: SharedChunkTable, found: BigInt64Array, sizes: Int32Array, out?: SeedOutput, cancel?: Int32Array }
  /** chunk fd from `start` (any offset) until a cut at or past `until`, or the end: the cuts' end offsets */
  | { op: 'cuts', seq: number, fd: number, start: number, until: number, min: number, avg: number, max: number }
  /**
   * read the chunks [ends[i-1], ends[i]) (ends[-1] = start) from fd; hash, and store the ones the
   * local store lacks; stops early once `cancel[0]` (shared memory) is set
   */
  | { op: 'store-range', seq: number, fd: number, start: number, ends: Float64Array, digest: DigestAlgorithm, compression: Compression, storePath: string, extension: string, cancel?: Int32Array }
  /**
   * place many chunks; each tries its sources in order. `sparse`: the output holds zeros where
   * nothing was written yet (a fresh file), so a verified chunk of zeros is not written
   */
  | { op: 'place-batch', seq: number, digest: DigestAlgorithm, outFd: number, outDirectFd?: number, sparse?: boolean, items: Array<{ id: Uint8Array, size: number, outOffset: number, from: Array<PlaceSource | null> }> }
  /**
   * read, decompress and verify a run of chunks from local sources (a store's directory, a seed
   * file), each trying its sources in order, into one buffer (`plain`, the chunks back to back);
   * `placed` says where each came from (from -1: none had it, its bytes are left to the caller)
   */
  | { op: 'assemble-batch', seq: number, digest: DigestAlgorithm, items: Array<{ id: Uint8Array, size: number, from: Array<LocalPlaceSource | null> }> }
  /** wait until this worker's queued output writes (native-io writeOut) are done */
  | { op: 'flush-out', seq: number }
  /** close this worker's copies of the HTTP store at `url` (their connections) */
  | { op: 'http-close', seq: number, url: string }
  /** whether outFd already holds the chunk at `offset` */
  | { op: 'check', seq: number, id: Uint8Array, size: number, digest: DigestAlgorithm, fd: number, offset: number }

/**
 * SeedFound: where a seed holds the index's chunks, in shared memory: per index position (an ID's
 * first, ChunkTable.find), the seed offset of a verified copy, -1n until one is found; the first
 * worker to find a chunk sets it (Atomics.compareExchange), so no reply lists what was found
 */

/**
 * where seed operations write the chunks they find, at the index's offsets; `written` (shared
 * memory, a byte per index position) is set by the worker that writes a position, so each is
 * written once and the caller learns which without a list in every reply
 */
export interface SeedOutput { fd: number, directFd?: number, sparse?: boolean, written: Uint8Array }

export type LocalPlaceSource =
  | { kind: 'store', path: string, extension: string }
  | { kind: 'file', fd: number, offset: number }

export type PlaceSource =
  | LocalPlaceSource
  /** an HTTP store, fetched by the worker over its own connections (HttpStore.workerInit) */
  | { kind: 'http', url: string, init: HttpStoreInit, key: string }

export interface WorkerReply {
  seq: number
  id?: Uint8Array
  stored?: boolean
  storedBytes?: number
  compressed?: ArrayBuffer
  plain?: ArrayBuffer
  /**
   * place: 'ok', 'missing' (no such chunk there), 'invalid' (it failed verification; see error
   * text in `detail`) or 'error' (the source failed, e.g. a network error after retries; `code`)
   */
  status?: 'ok' | 'missing' | 'invalid' | 'error'
  code?: string
  /** place: the chunk is all zeros (with `sparse`, it was not written) */
  zero?: boolean
  detail?: string
  /** check: the bytes are already right */
  match?: boolean
  /** seed, seed-probe: bytes chunked */
  scanned?: number
  /** seed-probe: the seed intervals examined, [start, end) pairs */
  covered?: number[]
  /** place-batch: per item, the index of the source that supplied it (-1: none), and per source what went wrong */
  placed?: Array<{ from: number, zero?: boolean, failures: Array<{ source: number, status: 'missing' | 'invalid' | 'xz' | 'error', detail?: string, code?: string }> }>
  /** place-batch with HTTP sources: what the worker's copy of each store counted for this batch, by URL */
  httpStats?: Record<string, HttpStoreStats>
  /** cuts: chunk end offsets */
  ends?: Float64Array
  /** store-range: the chunks' IDs back to back, and per chunk its stored size when this run wrote it (-1: it was there) */
  ids?: Uint8Array
  storedSizes?: Int32Array
  error?: { message: string, code?: string, name?: string }
}

type DistributiveOmit<T, K extends keyof any> = T extends unknown ? Omit<T, K> : never
export type Job = DistributiveOmit<WorkerRequest, 'seq'>

interface Slot { worker: Worker, busy: number }

/** Compiled (dist/*.js): the worker's own .js file; from sources: an entry that loads tsx first. */
const WORKER_URL = import.meta.url.endsWith('.js')
  ? new URL('./chunk-worker.js', import.meta.url)
  : new URL('./chunk-worker-entry.mjs', import.meta.url)

export class WorkerPool {
  readonly size: number
  private readonly slots: Slot[] = []
  private readonly pending = new Map<number, { resolve: (r: WorkerReply) => void, reject: (e: Error) => void, slot: Slot }>()
  private seq = 0
  private closed = false

  constructor (size = Math.max(1, availableParallelism())) {
    this.size = size
  }

  /** Starts the threads now (they load their modules while the caller does other work). */
  warm (options: { http?: boolean } = {}): this {
    if (!this.closed) this.start(options)
    return this
  }

  /** `http`: the threads load the HTTP store's modules as soon as they start (extract over HTTP) */
  private start (options: { http?: boolean } = {}): void {
    if (this.slots.length > 0) return
    for (let i = 0; i < this.size; i++) {
      const worker = new Worker(WORKER_URL, { workerData: { preloadHttp: options.http === true } })
      const slot: Slot = { worker, busy: 0 }
      worker.on('message', (reply: WorkerReply) => {
        const p = this.pending.get(reply.seq)
        if (p == null) return
        this.pending.delete(reply.seq)
        slot.busy--
        if (slot.busy === 0) worker.unref()
        if (reply.error != null) p.reject(rebuildError(reply.error))
        else p.resolve(reply)
      })
      worker.on('error', (err) => {
        for (const [seq, p] of this.pending) {
          if (p.slot === slot) { this.pending.delete(seq); p.reject(err) }
        }
      })
      worker.unref()
      this.slots.push(slot)
    }
  }

  /** Runs a job on the least busy worker. ArrayBuffers in `data` are transferred (not copied). */
  async run (job: Job): Promise<WorkerReply> {
    if (this.closed) throw new Error('worker pool is closed')
    this.start()
    let slot = this.slots[0]!
    for (const s of this.slots) if (s.busy < slot.busy) slot = s
    return await this.runOn(slot, job)
  }

  private async runOn (slot: Slot, job: Job): Promise<WorkerReply> {
    const seq = ++this.seq
    const request = { ...job, seq } as WorkerRequest
    return await new Promise<WorkerReply>((resolve, reject) => {
      this.pending.set(seq, { resolve, reject, slot })
      if (slot.busy === 0) slot.worker.ref()
      slot.busy++
      slot.worker.postMessage(request, 'data' in request ? [request.data] : [])
    })
  }

  /** Runs a job on every thread that is started (none are started for it). */
  async broadcast (job: Job): Promise<void> {
    if (this.closed) return
    await Promise.all(this.slots.map(async slot => await this.runOn(slot, job)))
  }

  /** Jobs queued or running. */
  get load (): number { return this.pending.size }

  async close (): Promise<void> {
    this.closed = true
    await Promise.all(this.slots.map(async s => await s.worker.terminate()))
    this.slots.length = 0
  }
}

function rebuildError (e: { message: string, code?: string, name?: string }): Error {
  if (e.code === ChunkInvalidError.code) {
    const m = /chunk ([0-9a-f]{64})/.exec(e.message)
    if (m != null) return new ChunkInvalidError(ChunkId.parse(m[1]!), undefined, e.message)
  }
  if (e.code === InvalidFormatError.code) return new InvalidFormatError(e.message)
  return Object.assign(new Error(e.message), { code: e.code, name: e.name ?? 'Error' })
}

let shared: WorkerPool | undefined

/** The process-wide pool (created on first use; its threads do not keep the process alive when idle). */
export function sharedPool (): WorkerPool {
  shared ??= new WorkerPool()
  return shared
}

