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
import type { WorkerReply, WorkerRequest } from './pool.ts'
import { chunkFile } from './chunk-file.ts'
import { writeBehind, writeOut } from '../native-io.ts'

interface Wanted {
  bytes: Uint8Array
  /** chunk hex → every index position holding it (repeated chunks are written everywhere) */
  map: Map<string, number[]>
  /** index position → the same list */
  positions: number[][]
}

let wantedCache: Wanted | undefined

/** The wanted IDs, mapped once per worker (each request brings its own copy of the same bytes). */
function wantedOf (wanted: Uint8Array): Wanted {
  const cached = wantedCache
  if (cached != null && (cached.bytes === wanted || Buffer.from(cached.bytes.buffer, cached.bytes.byteOffset, cached.bytes.byteLength).equals(wanted))) return cached
  const map = new Map<string, number[]>()
  const positions: number[][] = []
  for (let i = 0; i * 32 < wanted.byteLength; i++) {
    const hex = Buffer.from(wanted.buffer, wanted.byteOffset + i * 32, 32).toString('hex')
    let at = map.get(hex)
    if (at == null) { at = []; map.set(hex, at) }
    at.push(i)
    positions.push(at)
  }
  wantedCache = { bytes: wanted, map, positions }
  return wantedCache
}

interface Output { fd: number, directFd?: number, starts: Float64Array, sparse?: boolean }

/** the most output bytes Findings gathers before it writes them */
const RUN_MAX = 2 << 20
let runScratch: Buffer | undefined

/**
 * What a seed operation found, and wrote: the reply's `found` triples and `written` positions.
 * Chunks that lie back to back in the output are gathered and written in one go (end() writes
 * what is left): large writes are the ones that go around the page cache (native-io writeOut).
 */
class Findings {
  readonly found: number[] = []
  readonly written: number[] = []
  private readonly placed = new Set<number>()
  private readonly out: Output | undefined
  private runStart = 0
  private runLength = 0

  constructor (out: Output | undefined) { this.out = out }

  /** Verified bytes of a wanted chunk at `offset` in the seed, for index positions `at`. */
  use (offset: number, data: Uint8Array, at: number[]): void {
    this.found.push(offset, data.byteLength, at[0]!)
    if (this.out == null) return
    const zero = this.out.sparse === true && isZero(data) // zeros are there already
    for (const i of at) {
      if (this.placed.has(i)) continue
      this.placed.add(i)
      if (!zero) this.write(data, this.out.starts[i]!)
      this.written.push(i)
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

function hexDigest (data: Uint8Array, digest: DigestAlgorithm): string {
  return digestOf(data, digest).toString('hex')
}

/** bytes of output a probing worker writes before it starts them to disk */
const FLUSH_EVERY = 32 << 20

/** Chunks one range of a seed file and reports the wanted chunks found in it. */
export function scanSeedRange (req: Extract<WorkerRequest, { op: 'seed' }>): Pick<WorkerReply, 'found' | 'scanned' | 'written'> {
  const wanted = wantedOf(req.wanted).map
  const sizes = new Set(req.sizes)
  const findings = new Findings(req.out)
  const end = chunkFile(req.fd, req.start, req.end + req.overlap, req, (offset, data) => {
    if (!sizes.has(data.byteLength)) return
    const at = wanted.get(hexDigest(data, req.digest))
    if (at != null) findings.use(offset, data, at)
  })
  findings.end()
  return { found: findings.found, scanned: end - req.start, written: findings.written }
}

/** A window of the seed file read ahead, for probes that mostly walk forward. */
class SeedReader {
  private readonly fd: number
  private readonly size: number
  private buf: Uint8Array
  private start = 0
  private length = 0

  constructor (fd: number, size: number, window: number) {
    this.fd = fd
    this.size = size
    this.buf = new Uint8Array(window)
  }

  /** The seed's bytes [offset, offset + n), or null past its end. */
  get (offset: number, n: number): Uint8Array | null {
    if (offset < 0 || offset + n > this.size) return null
    if (offset < this.start || offset + n > this.start + this.length) {
      if (n > this.buf.byteLength) this.buf = new Uint8Array(n)
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
export function probeSeedSlice (req: Extract<WorkerRequest, { op: 'seed-probe' }>): Pick<WorkerReply, 'found' | 'written' | 'covered' | 'scanned'> {
  const { map: wanted, positions } = wantedOf(req.wanted)
  const sizes = new Set(req.sizes)
  const findings = new Findings(req.out)
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
  const idOf = (i: number): Buffer => Buffer.from(req.wanted.buffer, req.wanted.byteOffset + i * 32, 32)
  // the output this slice wrote goes to disk as the probes go (not all at the final fsync)
  let flushedTo = req.first < req.end ? req.starts[req.first]! : 0
  const flush = (upTo: number, force = false): void => {
    if (req.out != null && upTo > flushedTo && (force || upTo - flushedTo >= FLUSH_EVERY)) {
      findings.end()
      writeBehind(req.out.fd, flushedTo, upTo - flushedTo)
      flushedTo = upTo
    }
  }
  const window = req.window
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
    flush(req.starts[i]!)
    const size = req.chunkSizes[i]!
    const q = req.starts[i]! + delta
    const data = reader.get(q, size)
    if (data != null && digestOf(data, req.digest).equals(idOf(i))) {
      findings.use(q, data, positions[i]!)
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
      const at = wanted.get(hexDigest(bytes, req.digest))
      if (at == null) return false
      findings.use(offset, bytes, at)
      // the next position at or after i that holds this chunk, if it is about as far ahead in the
      // index as the scan has come in the seed (a repeated chunk, zeros say, is also wanted far
      // ahead: taking that would skip the positions between)
      const reach = offset + bytes.byteLength - from + 2 * window
      for (const j of at) {
        if (j >= i && j < req.end && req.starts[j]! - req.starts[i]! <= reach && (best < 0 || j < best)) { best = j; bestOffset = offset }
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
      delta = bestOffset - req.starts[best]!
      lastEnd = bestOffset + req.chunkSizes[best]!
      // the positions between i and best are not where the seed has them: the stores (or the
      // second pass) supply them
      i = best
    }
  }
  findings.end()
  if (req.end > req.first) flush(req.starts[req.end - 1]! + req.chunkSizes[req.end - 1]!, true)
  return { found: findings.found, written: findings.written, covered, scanned }
}
