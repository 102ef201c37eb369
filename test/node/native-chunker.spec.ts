// The C buzhash scan must cut exactly where the JavaScript CutFinder does.
import '../helpers/setup.ts'
import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import fc from 'fast-check'
import { chunk, setCutScanner, type ChunkerInit } from '../../protocol/chunker.ts'
import { nativeCutScanner } from '../../node/native-chunker.ts'
import { pieces, pseudoRandom, specRandom } from '../helpers/fixtures.ts'
import { STRICT } from '../helpers/setup.ts'

async function cuts (data: Uint8Array, init: ChunkerInit, piece: number): Promise<number[]> {
  const ends: number[] = []
  for await (const c of chunk(pieces(data, piece), init)) ends.push(c.start + c.size)
  return ends
}

async function both (data: Uint8Array, init: ChunkerInit, piece: number): Promise<{ js: number[], c: number[] }> {
  setCutScanner(undefined)
  const js = await cuts(data, init, piece)
  setCutScanner(nativeCutScanner()!)
  try {
    return { js, c: await cuts(data, init, piece) }
  } finally {
    setCutScanner(undefined)
  }
}

const built = nativeCutScanner() != null
if (!built && STRICT) throw new Error('CASWARM_CI=1 and the native chunker (native/build/Release/caswarm_chunker.node) was not built')

describe('native chunker', { skip: built ? false : 'native addon not built' }, () => {
  it('cuts the spec input exactly as the JavaScript chunker, for several sizes', async () => {
    const data = specRandom(2 << 20)
    for (const init of [{}, { min: 1, avg: 1, max: 64 }, { min: 4096, avg: 4096, max: 4096 }, { min: 4096, avg: 16384, max: 65536 }, { min: 64, avg: 256, max: 1024 }, { min: 16, avg: 64, max: 4096 }, { min: 60000, avg: 65536, max: 262144 }]) {
      const { js, c } = await both(data, init, 100_000)
      assert.ok(js.length > 5)
      assert.deepEqual(c, js)
    }
  })

  it('agrees on zeros, and on random inputs split anywhere (property)', async () => {
    const zeros = await both(new Uint8Array(1 << 20), {}, 65536)
    assert.deepEqual(zeros.c, zeros.js)
    await fc.assert(fc.asyncProperty(fc.integer({ min: 1, max: 1 << 30 }), fc.integer({ min: 1, max: 70000 }), async (seed, piece) => {
      const data = pseudoRandom(300_000, seed)
      const { js, c } = await both(data, { min: 1024, avg: 4096, max: 16384 }, piece)
      assert.deepEqual(c, js)
    }), { numRuns: 25 })
  })

  it('agrees on data with runs of zeros of any length, anywhere, at any chunk size (property: the C scan skips through zeros)', async () => {
    const sizes = [{}, { min: 1024, avg: 4096, max: 16384 }, { min: 64, avg: 256, max: 1024 }, { min: 16, avg: 64, max: 4096 }, { min: 4096, avg: 8192, max: 8192 }]
    await fc.assert(fc.asyncProperty(
      fc.integer({ min: 1, max: 1 << 30 }),
      fc.array(fc.tuple(fc.integer({ min: 0, max: 120_000 }), fc.integer({ min: 0, max: 300_000 })), { minLength: 1, maxLength: 6 }),
      fc.integer({ min: 1, max: 70000 }),
      fc.nat({ max: sizes.length - 1 }),
      async (seed, runs, piece, k) => {
        const parts: Uint8Array[] = []
        runs.forEach(([data, zeros], i) => { parts.push(pseudoRandom(data, seed + i), new Uint8Array(zeros)) })
        const data = Buffer.concat(parts)
        const { js, c } = await both(data, sizes[k]!, piece)
        assert.deepEqual(c, js)
      }), { numRuns: 40 })
  })
})
