// Deterministic sample disk images for the demo and the benchmark: a mix of text-like,
// zero-filled and random regions (roughly what a root file system looks like to a chunker), and
// a "next version" with scattered edits and insertions.
import { createHash } from 'node:crypto'

const WORDS = ['kernel', 'module', 'systemd', 'libc', 'config', 'update', 'service', 'network', 'mount', 'device', 'firmware', 'package', 'version', 'caswarm', 'fleet', 'chunk', 'index', 'store', 'seed', 'origin']

function rng (seed: number): () => number {
  let x = seed >>> 0 || 1
  return () => { x ^= x << 13; x >>>= 0; x ^= x >>> 17; x ^= x << 5; x >>>= 0; return x }
}

/** Yields `size` bytes of sample image in 1 MiB pieces; the same seed gives the same bytes. */
export function * sampleImage (size: number, seed = 1): Generator<Uint8Array> {
  const next = rng(seed)
  const piece = 1 << 20
  for (let done = 0; done < size; done += piece) {
    const n = Math.min(piece, size - done)
    const out = new Uint8Array(n)
    let at = 0
    while (at < n) {
      const kind = next() % 10
      const len = Math.min(n - at, 4096 + (next() % 65536))
      if (kind < 5) {
        // text-like: words and numbers
        let s = ''
        while (s.length < len) s += `${WORDS[next() % WORDS.length]!}=${next() % 100000} `
        out.set(new TextEncoder().encode(s.slice(0, len)), at)
      } else if (kind < 7) {
        // zeros (left as allocated)
      } else {
        for (let i = 0; i < len; i += 4) {
          const v = next()
          out[at + i] = v & 255; if (i + 1 < len) out[at + i + 1] = (v >>> 8) & 255
          if (i + 2 < len) out[at + i + 2] = (v >>> 16) & 255; if (i + 3 < len) out[at + i + 3] = v >>> 24
        }
      }
      at += len
    }
    yield out
  }
}

/**
 * The next version of a sample image: about `edits` regions changed in place and as many small
 * insertions, spread through the image (deterministic).
 */
export function * nextVersion (source: Iterable<Uint8Array>, size: number, edits = 20, seed = 7): Generator<Uint8Array> {
  const next = rng(seed)
  const points = Array.from({ length: edits }, () => next() % Math.max(1, size)).sort((a, b) => a - b)
  let offset = 0
  let p = 0
  for (const piece of source) {
    const parts: Uint8Array[] = []
    let from = 0
    while (p < points.length && points[p]! < offset + piece.byteLength) {
      const at = points[p]! - offset
      parts.push(piece.subarray(from, at))
      const insert = createHash('sha256').update(`insert-${seed}-${p}`).digest()
      parts.push(new Uint8Array(insert)) // 32 inserted bytes
      from = at
      // overwrite a few hundred bytes after the insertion point
      const edited = piece.slice(at, Math.min(piece.byteLength, at + 300))
      for (let i = 0; i < edited.byteLength; i++) edited[i] = (edited[i]! + 1 + p) & 255
      parts.push(edited)
      from = at + edited.byteLength
      p++
    }
    parts.push(piece.subarray(from))
    for (const part of parts) if (part.byteLength > 0) yield part
    offset += piece.byteLength
  }
}
