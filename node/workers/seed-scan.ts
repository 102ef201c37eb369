// Finding the chunks an index wants in a seed file, on a worker thread. Two ways:
// - scan: chunk a range of the seed with the index's parameters and hash the chunks whose size
//   occurs in the index (what casync does with the whole seed);
// - probe: walk a slice of the index and hash the seed's bytes where each chunk would be if the
//   seed were an older version of the same image (the offset of the last chunk found, plus the
//   distance between the two since then). Unchanged stretches cost one hash per chunk, which is
//   the verification every chunk needs anyway; where a probe misses, the seed is scanned around
//   that place (never twice), and the first chunk found there sets the new distance.
// Either way a chunk's bytes are used only once they hash to the wanted ID, and then written to
// every place of the output that needs them.
import { createHash } from 'node:crypto'
import * as fs from 'node:fs'
import { isZero } from '../../protocol/bytes.ts'
import type { DigestAlgorithm } from '../../protocol/chunk-id.ts'
import { ChunkTable } from '../../protocol/chunk-table.ts'
import type { SeedOutput, WorkerRequest } from './pool.ts'
import { chunkFile } from './chunk-file.ts'
import { placedFor, writeBehind, writeOut } from '../native-io.ts'

/** the most output bytes Findings gathers before it writes them */
const RUN_MAX = 2 << 20
let runScratch: Buffer | undefined

/**
 * What a seed operation found, and wrote: noted in the shared `found` offsets and the output's
 * shared `written` flags. Chunks that lie back to back in the output are gathered and written in
 * one go (end() writes what is left): large writes are the ones that go around the page cache
 * (native-io writeOut).
 */
class Findings {
  private readonly table: ChunkTable
  private readonly found: BigInt64Array
  private readonly out: SeedOutput | undefined
  /** the first position of the chunk of runs of zeros the output holds already (-1: none) */
  private readonly zeroRun: number
  private runStart = 0
  private runLength = 0

  constructor (table: ChunkTable, found: BigInt64Array, out: SeedOutput | undefined, zeroRun = -1) {
    this.table = table
    this.found = found
    this.out = out
    this.zeroRun = zeroRun
  }

  /** Verified bytes of a wanted chunk at `offset` in the seed, whose first index position is `first`. */
  use (offset: number, data: Uint8Array, first: number): void {
    // bytes that hash to an ID the index gives another size can never be used; the extraction
    // leaves the chunks of runs of zeros to the output (zeroRunChunk in node/seed.ts)
    if (data.byteLength !== this.table.size(first) || first === this.zeroRun) return
    // the first copy found is kept (another worker may find one elsewhere in the seed)
    if (this.found[first] === -1n) Atomics.compareExchange(this.found, first, -1n, BigInt(offset))
    if (this.out == null) return
    const zero = this.out.sparse === true && isZero(data) // zeros are there already
    for (let i = first; i >= 0; i = this.table.nextSame(i)) {
      // each position is written by one worker only (another may have found the chunk too)
      if (Atomics.compareExchange(this.out.written, i, 0, 1) !== 0) continue
      if (!zero) this.write(data, this.table.start(i))
    }
  }

  /** Writes what is gathered; call before the reply (and before starting a range to disk). */
  end (): void {
    if (this.runLength > 0) writeOut(this.out!.fd, runScratch!.subarray(0, this.runLength), this.runStart, this.out!.directFd)
    this.runLength = 0
  }

  private write (data: Uint8Array, outOffset: number): void {
    if (this.runLength > 0 && (outOffset !== this.runStart + this.runLength || this.runLength + data.byteLength > RUN_MAX)) this.end()
    if (data.byteLength > RUN_MAX) { writeOut(this.out!.fd, data, outOffset, this.out!.directFd); return }
    runScratch ??= Buffer.allocUnsafe(RUN_MAX)
    if (this.runLength === 0) this.runStart = outOffset
    runScratch.set(data, this.runLength)
    this.runLength += data.byteLength
  }
}

function digestOf (data: Uint8Array, digest: DigestAlgorithm): Buffer {
  return createHash(digest === 'sha256' ? 'sha256' : 'sha512-256').update(data).digest()
}

/** bytes of output a probing worker writes before it starts them to disk */
const FLUSH_EVERY = 32 << 20

/** Chunks one range of a seed file and reports the wanted chunks found in it. */
export function scanSeedRange (req: Extract<WorkerRequest, { op: 'seed' }>): { scanned: number } {
  const table = ChunkTable.fromShared(req.table)
  const sizes = new Set(req.sizes)
  const findings = new Findings(table, req.found, req.out, req.zeroRun)
  const end = chunkFile(req.fd, req.start, req.end + req.overlap, req, (offset, data) => {
    if (!sizes.has(data.byteLength)) return
    const first = table.find(digestOf(data, req.digest))
    if (first >= 0) findings.use(offset, data, first)
  })
  findings.end()
  return { scanned: end - req.start }
}

/** A window of the seed file read ahead, for probes that mostly walk forward. */
class SeedReader {
  private readonly fd: number
  private readonly size: number
  /** the window's memory (64 bytes to spare), and the part of it placed for the window's start */
  private raw: Uint8Array
  private buf: Uint8Array
  private start = 0
  private length = 0

  constructor (fd: number, size: number, window: number) {
    this.fd = fd
    this.size = size
    this.raw = new Uint8Array(window + 64)
    this.buf = this.raw.subarray(0, window)
  }

  /** The seed's bytes [offset, offset + n), or null past its end. */
  get (offset: number, n: number): Uint8Array | null {
    if (offset < 0 || offset + n > this.size) return null
    if (offset < this.start || offset + n > this.start + this.length) {
      if (n > this.buf.byteLength) this.raw = new Uint8Array(n + 64)
      // where the kernel copies at full speed (placedFor)
      this.buf = placedFor(this.raw, offset, this.raw.byteLength - 64)
      const want = Math.min(this.buf.byteLength, this.size - offset)
      let got = 0
      while (got < want) {
        const r = fs.readSync(this.fd, this.buf, got, want - got, offset + got)
        if (r === 0) break
        got += r
      }
      this.start = offset
      this.length = got
      if (got < n) return null
    }
    return this.buf.subarray(offset - this.start, offset - this.start + n)
  }
}

/**
 * Probes the index positions [first, end) against the seed (see the top of this file). Reports
 * the chunks found and written, the seed intervals it examined (`covered`, [start, end) pairs;
 * the rest of the seed was neither probed nor scanned), and the bytes it chunked (`scanned`).
 */
export function probeSeedSlice (req: Extract<WorkerRequest, { op: 'seed-probe' }>): { covered: number[], scanned: number } {
  const table = ChunkTable.fromShared(req.table)
  const sizes = new Set(req.sizes)
  const findings = new Findings(table, req.found, req.out, req.zeroRun)
  const reader = new SeedReader(req.fd, req.seedSize, 4 << 20)
  const covered: number[] = []
  const cover = (from: number, to: number): void => {
    if (to <= from) return
    const n = covered.length
    if (n > 0 && covered[n - 1]! >= from && covered[n - 2]! <= to) {
      covered[n - 2] = Math.min(covered[n - 2]!, from)
      covered[n - 1] = Math.max(covered[n - 1]!, to)
    } else {
      covered.push(from, to)
    }
  }
  // the output this slice wrote goes to disk as the probes go (not all at the final fsync)
  let flushedTo = req.first < req.end ? table.start(req.first) : 0
  const flush = (upTo: number, force = false): void => {
    if (req.out != null && upTo > flushedTo && (force || upTo - flushedTo >= FLUSH_EVERY)) {
      findings.end()
      writeBehind(req.out.fd, flushedTo, upTo - flushedTo)
      flushedTo = upTo
    }
  }
  const window = req.window
  // (see zeroRunChunk in node/seed.ts)
  const zeroRun = req.zeroRun ?? -1
  const zeroSize = zeroRun >= 0 ? table.size(zeroRun) : -1
  let delta = req.delta
  // where the last chunk found ended in the seed: the index has a cut after the same bytes, so a
  // scan from there cuts as the index was cut, from the first byte
  let lastEnd = -1
  // how far scans have looked (a cut of their chunker), and whether they were in step
  let scanTo = -1
  let scanInStep = false
  let scanned = 0
  for (let i = req.first; i < req.end; i++) {
    if ((i & 63) === 0 && req.cancel != null && Atomics.load(req.cancel, 0) !== 0) throw Object.assign(new Error('cancelled'), { code: 'ABORT_ERR' })
    // (a position already written, a repeated chunk, is probed all the same: a hit there keeps
    // the distance current and marks that stretch of the seed examined)
    flush(table.start(i))
    const size = table.size(i)
    const q = table.start(i) + delta
    if (zeroRun >= 0 && size === zeroSize && table.find(table.idBytes(i)) === zeroRun) {
      // a chunk of a run of zeros, which the output holds already: the seed is not read here.
      // Once a chunk was found (the distance is known), the seed is taken to be in step here (a
      // run of zeros there too, as in an older version of the image)
      if (lastEnd >= 0) { cover(q, q + size); lastEnd = q + size }
      continue
    }
    const data = reader.get(q, size)
    if (data != null && digestOf(data, req.digest).equals(table.idBytes(i))) {
      findings.use(q, data, table.find(table.idBytes(i)))
      cover(q, q + size)
      lastEnd = q + size
      continue
    }
    // a miss: chunk the seed forward from the last chunk found (or where the last scan stopped)
    // until a chunk of this slice at or after i turns up, or `window` bytes past where chunk i
    // would have been. Without a chunk found yet, start a window early, out of step at first.
    let from: number
    let inStep: boolean
    if (scanTo >= 0 && scanTo >= lastEnd) { from = scanTo; inStep = scanInStep } else if (lastEnd >= 0) { from = lastEnd; inStep = true } else { from = Math.max(0, q - window); inStep = from === 0 }
    const limit = Math.min(req.seedSize, Math.max(q + size + window, from + window))
    if (from >= limit) continue
    let best = -1
    let bestOffset = 0
    const stopped = chunkFile(req.fd, from, limit, req, (offset, bytes) => {
      if (!sizes.has(bytes.byteLength)) return false
      const first = table.find(digestOf(bytes, req.digest))
      if (first < 0) return false
      findings.use(offset, bytes, first)
      // the next position at or after i that holds this chunk, if it is about as far ahead in the
      // index as the scan has come in the seed (a repeated chunk, zeros say, is also wanted far
      // ahead: taking that would skip the positions between)
      const reach = offset + bytes.byteLength - from + 2 * window
      for (let j = first; j >= 0 && j < req.end; j = table.nextSame(j)) {
        if (j >= i && table.start(j) - table.start(i) <= reach && (best < 0 || j < best)) { best = j; bestOffset = offset }
      }
      return best >= 0
    })
    // out of step, cuts can stay wrong for long (data with no content-defined cuts, such as a
    // repeating pattern, is cut at max wherever the chunker starts): leave it to the second pass
    if (inStep) cover(from, stopped)
    scanned += stopped - from
    scanTo = stopped
    scanInStep = inStep
    if (best >= 0) {
      delta = bestOffset - table.start(best)
      lastEnd = bestOffset + table.size(best)
      // the positions between i and best are not where the seed has them: the stores (or the
      // second pass) supply them
      i = best
    }
  }
  findings.end()
  if (req.end > req.first) flush(table.end(req.end - 1), true)
  return { covered, scanned }
}
