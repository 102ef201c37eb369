// Chunking a stretch of a file on a worker thread: make's cut finding and the seed scans
// (node/workers/seed-scan.ts) read through the same loop.
import * as fs from 'node:fs'
import { CutFinder } from '../../protocol/chunker.ts'
import { placedFor } from '../native-io.ts'

/**
 * Chunks fd's bytes from `start` (any offset) until a cut at or past `stopAt` or the end of the
 * file, calling `each` with every chunk's offset and bytes (a view valid during the call); `each`
 * returns true to stop after that chunk. Returns where it stopped (a cut, or the end).
 */
export function chunkFile (fd: number, start: number, stopAt: number, sizes: { min: number, avg: number, max: number }, each: (offset: number, data: Uint8Array) => boolean | void): number {
  const finder = new CutFinder(sizes)
  // one buffer per thread, reused by every call (a probe slice may scan hundreds of times); `buf`
  // is the part of it that starts where the kernel copies file offset `base` at full speed
  if (scanBuffer.byteLength < (1 << 20) + sizes.max + 64) scanBuffer = new Uint8Array((1 << 20) + sizes.max + 64)
  const placed = (base: number): Uint8Array => placedFor(scanBuffer, base, scanBuffer.byteLength - 64)
  let base = start
  let buf = placed(base)
  let have = 0 // bytes in buf, starting at file offset `base`
  let eof = false
  while (base < stopAt) {
    if (!eof && have < buf.byteLength) {
      const n = fs.readSync(fd, buf, have, buf.byteLength - have, base + have)
      if (n === 0) eof = true
      have += n
    }
    let at = 0
    for (;;) {
      const n = finder.next(at === 0 ? buf.subarray(0, have) : buf.subarray(at, have))
      if (n < 0) break
      const stop = each(base + at, buf.subarray(at, at + n)) === true
      at += n
      if (stop) return base + at
      if (base + at >= stopAt) break
    }
    if (base + at >= stopAt) return base + at
    if (eof) {
      if (have > at) each(base + at, buf.subarray(at, have))
      return base + have
    }
    // keep the unfinished chunk at the front (of the part placed for its offset)
    const next = placed(base + at)
    next.set(buf.subarray(at, have))
    have -= at
    base += at
    buf = next
    if (have === buf.byteLength) {
      const bigger = new Uint8Array(scanBuffer.byteLength * 2)
      const from = buf.subarray(0, have)
      scanBuffer = bigger
      buf = placed(base)
      buf.set(from)
    }
  }
  return base
}

let scanBuffer = new Uint8Array(0)
