// Blob extraction: rebuild a file or block device from an index. A regular file is written
// under a hidden partial name beside the output and renamed into place only when every chunk
// is in and verified, so a failed run never leaves a complete-looking file and never touches
// the existing output. Re-running after a failure reuses the partial file's bytes that are
// already right; the existing output is used as a seed (casync's --seed-output).
import { closeSync } from 'node:fs'
import * as fs from 'node:fs/promises'
import * as path from 'node:path'
import { standalone } from '../protocol/bytes.ts'
import { type ChunkId, digestFromFlags } from '../protocol/chunk-id.ts'
import type { ChunkTable } from '../protocol/chunk-table.ts'
import { ChunkMissingError } from '../protocol/errors.ts'
import { streamSize, type Index, type IndexChunk } from '../protocol/index-file.ts'
import { ChunkFetcher, count, emptyStats, MissingChunksError, type AssembleOptions, type ExtractStats } from './assemble.ts'
import { defaultLogger } from './logger.ts'
import { flushOut, openDirect, writeBehind } from './native-io.ts'
import { FileSeed, type Seed, zeroRunChunk } from './seed.ts'
import { sharedPool } from './workers/pool.ts'

const log = defaultLogger().forComponent('caswarm:extract')

export interface ExtractBlobOptions extends AssembleOptions {
  /** Use the existing output as a seed. @default true */
  seedOutput?: boolean
  /** Seed files/devices to index with the index's chunk parameters (besides `seeds`). */
  seedPaths?: string[]
  /**
   * Called once seeds are indexed, before chunks are fetched; `needless`: chunks no source will be
   * asked for although no seed holds them (the chunk of runs of zeros, for a fresh output)
   */
  onSeedsReady?: (seeds: Seed[], needless: ChunkId[]) => void
  onSeedProgress?: (bytes: number) => void
}

/** The hidden name a regular-file output is assembled under. */
export function partialPath (output: string): string {
  return path.join(path.dirname(output), `.${path.basename(output)}.caswarm-partial`)
}

async function statOrNull (file: string): Promise<import('node:fs').Stats | null> {
  try { return await fs.stat(file) } catch (err: any) { if (err.code === 'ENOENT') return null; throw err }
}

export async function extractBlob (index: Index, output: string, options: ExtractBlobOptions): Promise<ExtractStats> {
  const started = performance.now()
  const stats = options.stats ?? emptyStats()
  const digest = digestFromFlags(index.featureFlags)
  const total = streamSize(index)
  const existing = await statOrNull(output)
  if (existing?.isDirectory() === true) throw Object.assign(new Error(`${output} is a directory`), { code: 'EISDIR' })
  const inPlace = existing?.isBlockDevice() === true
  const target = inPlace ? output : partialPath(output)

  const partial = inPlace ? null : await statOrNull(target)
  // bytes already at the output's offsets may be right (a resumed partial file, a block device);
  // otherwise the output is a fresh file that reads as zeros until written
  const reuse = inPlace || partial != null
  let handle: fs.FileHandle
  try {
    handle = await fs.open(target, reuse ? 'r+' : 'w+', 0o666)
  } catch (err: any) {
    const why = err.code === 'ENOENT' ? `directory ${path.dirname(output)} does not exist` : err.code === 'EACCES' || err.code === 'EPERM' ? 'permission denied' : err.code === 'EROFS' ? 'read-only file system' : err.message
    throw Object.assign(new Error(`cannot write output ${output}: ${String(why)}`), { code: err.code ?? 'EIO' })
  }
  const seeds: Seed[] = [...(options.seeds ?? [])]
  // large writes go around the page cache (block devices keep the page cache: other users may
  // have it mapped, and they are written in place)
  const directFd = inPlace ? undefined : openDirect(target)
  let ok = false
  try {
    if (!inPlace) await handle.truncate(total)
    const targetStat = await handle.stat()

    // Seeds: those given, plus the existing output (a regular file), indexed concurrently. A
    // seed file writes the chunks it holds straight into the output while it is indexed (from
    // the bytes it just verified), unless it is the output itself.
    const seedPaths = [...(options.seedPaths ?? [])]
    if (!inPlace && existing?.isFile() === true && existing.size > 0 && options.seedOutput !== false) seedPaths.push(output)
    let seedBytes = 0
    const indexed = await Promise.all(seedPaths.map(async (p) => {
      let last = 0
      const st = await statOrNull(p)
      const isTarget = st != null && st.dev === targetStat.dev && st.ino === targetStat.ino
      return await FileSeed.index(p, index, {
        signal: options.signal,
        outFd: isTarget ? undefined : handle.fd,
        outDirectFd: isTarget ? undefined : directFd,
        sparse: !reuse,
        onProgress: (b) => { seedBytes += b - last; last = b; options.onSeedProgress?.(seedBytes) }
      }, p === output && !(options.seedPaths ?? []).includes(p) ? `seed-output:${p}` : `seed:${p}`)
    }))
    seeds.push(...indexed)
    // a fresh file holds the chunks of runs of zeros already (zeroRunChunk: their bytes are
    // known, so the check against the ID is done once, there): no source is asked for them
    const zeroRun = reuse ? -1 : zeroRunChunk(index)
    options.onSeedsReady?.(seeds, zeroRun >= 0 ? [index.chunks.id(zeroRun)] : [])
    const fetcher = new ChunkFetcher(index, { ...options, seeds, stats })

    // Per-chunk state is kept in arrays by index position (a few bytes a chunk); chunk objects
    // are made for the chunks in flight only. A chunk ID's first position in the index
    // (chunks.find) stands for every position holding it.
    const chunks = index.chunks
    const n = chunks.length
    const firstOf = (i: number): number => chunks.find(chunks.idBytes(i))
    // chunks already written in this run, so repeated chunks are copied from the output: at an
    // ID's first position, a position whose copy is written, plus one (0: none yet)
    const writtenAt = new Int32Array(n)
    const markWritten = (i: number): void => { const f = firstOf(i); if (writtenAt[f] === 0) writtenAt[f] = i + 1 }
    const missing: ChunkId[] = []
    let missingCount = 0
    let done = 0

    // positions already taken care of: what the seeds wrote while they were indexed, and (below) zeros
    const placed = new Uint8Array(n)
    for (const seed of indexed) {
      if (seed.written.size === 0) continue
      for (let i = 0; i < n; i++) {
        if (!seed.written.has(i) || placed[i] === 1) continue
        placed[i] = 1
        count(stats, seed.name, chunks.size(i))
        markWritten(i)
        done += chunks.size(i)
        stats.chunks++
      }
    }
    // the chunks of runs of zeros (above): the positions holding that one ID
    for (let i = zeroRun; i >= 0; i = chunks.nextSame(i)) {
      if (placed[i] === 1) continue
      placed[i] = 1
      count(stats, 'zeros', chunks.size(i))
      done += chunks.size(i)
      stats.chunks++
    }
    stats.bytes = done
    options.onProgress?.(done)

    // a fresh file reads as zeros until written: chunks of zeros are verified but not written
    const zeros = new Set<string>()
    const out = { handle, directFd, name: target, sparse: reuse ? undefined : { zeros } }
    const pool = sharedPool()
    const one = async (i: number): Promise<void> => {
      options.signal?.throwIfAborted()
      const c = chunks.at(i)
      if (reuse) {
        // bytes already right at this offset (a resumed partial file, or a block device)
        const reply = await pool.run({ op: 'check', id: standalone(c.id.bytes), size: c.size, digest, fd: handle.fd, offset: c.start })
        if (reply.match === true) { count(stats, 'in-place', c.size); return }
      }
      const twin = writtenAt[firstOf(i)]! - 1
      if (twin >= 0 && !reuse && zeros.has(c.id.toString())) { count(stats, 'repeat', c.size); return } // zeros already there
      if (twin >= 0) {
        // a repeated chunk: copy it from where this run already wrote it (verified again)
        const reply = await pool.run({ op: 'place', id: standalone(c.id.bytes), size: c.size, digest, outFd: handle.fd, outDirectFd: directFd, outOffset: c.start, from: { kind: 'file', fd: handle.fd, offset: chunks.start(twin) } })
        if (reply.status === 'ok') { count(stats, 'repeat', c.size); return }
      }
      try {
        await fetcher.place(c, out)
      } catch (err: any) {
        missed(c, err)
        return
      }
      markWritten(i)
    }
    const missed = (c: IndexChunk, err: any): void => {
      if (err.code !== ChunkMissingError.code) throw err
      missingCount++
      if (missing.length < 10) missing.push(c.id)
    }

    // Without a partial file to reuse, runs of chunks whose first sources a worker can read
    // directly (seed files, local stores) go to the worker in batches: one round trip each.
    const batched = !reuse && fetcher.fastPrefix() > 0
    const batch = (positions: number[]): Task => ({
      positions,
      run: async () => {
        const fresh: IndexChunk[] = []
        const freshAt: number[] = []
        const repeats: number[] = []
        const seen = new Set<number>()
        for (const i of positions) {
          const first = firstOf(i)
          if (writtenAt[first] !== 0 || seen.has(first)) repeats.push(i)
          else { seen.add(first); fresh.push(chunks.at(i)); freshAt.push(i) }
        }
        const errors = await fetcher.placeBatch(fresh, out)
        fresh.forEach((c, k) => {
          const err = errors[k]
          if (err != null) missed(c, err)
          else markWritten(freshAt[k]!)
        })
        for (const i of repeats) await one(i)
      }
    })
    // tasks are made as the window moves on, not all before it starts
    const tasks = function * (): Generator<Task> {
      let positions: number[] = []
      for (let i = 0; i < n; i++) {
        if (placed[i] === 1) continue
        if (!batched) { yield { positions: [i], run: async () => { await one(i) } }; continue }
        positions.push(i)
        if (positions.length === BATCH) { yield batch(positions); positions = [] }
      }
      if (positions.length > 0) yield batch(positions)
    }

    const limit = batched ? Math.max(2, sharedPool().size * 2) : (options.concurrency ?? 16)
    const running = new Set<Promise<void>>()
    let failure: unknown
    for (const task of tasks()) {
      if (failure != null) break
      const p = task.run().then(() => {
        // start writing the batch to disk now rather than all of it at the final fsync (only its
        // own ranges: between chunks scattered over the file, seeds wrote the rest)
        if (!inPlace) for (const [from, to] of spans(chunks, task.positions)) writeBehind(handle.fd, from, to - from)
        for (const i of task.positions) done += chunks.size(i)
        stats.bytes = done
        stats.chunks += task.positions.length
        options.onProgress?.(done)
      }, (err) => { failure ??= err })
      running.add(p)
      void p.finally(() => running.delete(p))
      while (running.size >= limit) await Promise.race(running)
    }
    await Promise.all(running)
    if (failure != null) throw failure
    if (missingCount > 0) throw new MissingChunksError(missing, fetcher.asked(), missingCount)
    if (directFd != null) await drainWrites()
    await handle.sync()
    ok = true
  } finally {
    // no thread may still be writing when the descriptors close
    if (!ok && directFd != null) await drainWrites().catch(() => {})
    await handle.close()
    if (directFd != null) closeSync(directFd)
    for (const s of seeds) await s.close()
    stats.seconds = (performance.now() - started) / 1000
  }
  if (ok && !inPlace) {
    await fs.rename(target, output)
    log('extracted %s (%d bytes)', output, total)
  }
  return stats
}

/** Waits for the writes queued by writeOut() on this thread and on the workers; throws the first error. */
async function drainWrites (): Promise<void> {
  let first: unknown
  try { flushOut() } catch (err) { first = err }
  await sharedPool().broadcast({ op: 'flush-out' }).catch((err) => { first ??= err })
  if (first != null) throw first
}

/** chunks a batch of extractBlob's places with one worker round trip */
const BATCH = 32

/** Chunks to place (index positions, in order), and how. */
interface Task { positions: number[], run: () => Promise<void> }

/** The byte ranges the chunks at `positions` (in index order) cover, back-to-back chunks merged. */
function spans (chunks: ChunkTable, positions: number[]): Array<[number, number]> {
  const out: Array<[number, number]> = []
  for (const i of positions) {
    const last = out[out.length - 1]
    if (last != null && last[1] === chunks.start(i)) last[1] = chunks.end(i)
    else out.push([chunks.start(i), chunks.end(i)])
  }
  return out
}
