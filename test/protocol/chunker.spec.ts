import '../helpers/setup.ts'
import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { describe, it } from 'node:test'
import fc from 'fast-check'
import { BUZHASH_TABLE } from '../../protocol/buzhash-table.ts'
import { ChunkId, digestFlag, type DigestAlgorithm } from '../../protocol/chunk-id.ts'
import {
  buzhash, buzhashUpdate, chunk, CutFinder, discriminator, parseChunkSize, parseSize, type ChunkSizes
} from '../../protocol/chunker.ts'
import { CA_FORMAT_EXCLUDE_FILE, CA_FORMAT_EXCLUDE_NODUMP } from '../../protocol/constants.ts'
import { encodeIndex, type IndexChunk } from '../../protocol/index-file.ts'
import { pieces, pseudoRandom, specRandom } from '../helpers/fixtures.ts'

const SPEC = JSON.parse(readFileSync(new URL('../../../shared/spec/casync-constants.json', import.meta.url), 'utf8'))
const VECTORS = SPEC.test_vectors
const CASYNC_INDEXES: Array<{ index: string, input: string, chunkSize: string, digest: DigestAlgorithm, chunks: number, bytes: number, sha256: string, committed: boolean }> =
  JSON.parse(readFileSync(new URL('../fixtures/casync-indexes.json', import.meta.url), 'utf8'))

const RAND8M = specRandom(8 * 1024 * 1024)
const ZEROS4M = new Uint8Array(4 * 1024 * 1024)
const INPUTS: Record<string, Uint8Array> = { rand8m: RAND8M, zeros4m: ZEROS4M, empty: new Uint8Array(0) }

interface Cut { start: number, size: number, data: Uint8Array }

/** Chunks `data`, fed in pieces of `readSize` bytes (or as given), copying each chunk's bytes. */
async function cuts (source: Iterable<Uint8Array>, sizes: Partial<ChunkSizes> = {}): Promise<Cut[]> {
  const out: Cut[] = []
  for await (const c of chunk(source, sizes)) out.push({ start: c.start, size: c.size, data: c.data.slice() })
  return out
}

function ends (chunks: Cut[]): number[] {
  return chunks.map(c => c.start + c.size)
}

function sha256hex (data: Uint8Array): string {
  return createHash('sha256').update(data).digest('hex')
}

describe('buzhash (spec §1.3)', () => {
  it('uses the spec table', () => {
    assert.deepEqual(Array.from(BUZHASH_TABLE), SPEC.buzhash.table)
  })

  it('matches the window vectors', () => {
    assert.equal(buzhash(new Uint8Array(48)), Number(VECTORS.buzhash_48_zero_bytes))
    const bytes = Uint8Array.from({ length: 49 }, (_, i) => i)
    const h = buzhash(bytes, 0, 48)
    assert.equal(h, Number(VECTORS.buzhash_bytes_0_to_47))
    const rolled = buzhashUpdate(h, 0, 48)
    assert.equal(rolled, Number(VECTORS.buzhash_bytes_1_to_48_by_rolling))
    assert.equal(rolled, buzhash(bytes, 1, 49))
  })

  it('rolling equals hashing the window from scratch (property)', () => {
    fc.assert(fc.property(fc.uint8Array({ minLength: 49, maxLength: 300 }), (data) => {
      let h = buzhash(data, 0, 48)
      for (let i = 48; i < data.length; i++) {
        h = buzhashUpdate(h, data[i - 48]!, data[i]!)
        if (h !== buzhash(data, i - 47, i + 1)) return false
      }
      return true
    }), { numRuns: 100 })
  })
})

describe('discriminator (spec §1.2)', () => {
  const d = (min: number, avg: number, max: number): number => discriminator({ min, avg, max })
  it('matches the exact values for AVG-only sizes', () => {
    const expected: Record<number, number> = { 1024: 768, 4096: 3075, 8192: 6153, 16384: 12318, 32768: 24680, 65536: 49535, 131072: 99777, 262144: 202440, 1048576: 886711 }
    for (const [avg, value] of Object.entries(expected)) {
      const s = parseChunkSize(avg)
      assert.equal(discriminator(s), value, `avg ${avg}`)
    }
    assert.equal(d(64, 256, 1024), 192)
    assert.equal(d(16, 64, 4096), 48)
    assert.equal(d(1000, 5000, 10000), 3754)
    assert.equal(d(25000, 100000, 400000), 75867)
  })

  it('clamps to min and max', () => {
    assert.equal(d(60000, 65536, 262144), 60000)
    assert.equal(d(30000, 3000000, 3000000), 3000000)
  })

  it('treats a negative q (avg above ~9.3M) as d = max', () => {
    const s = parseChunkSize('16M')
    assert.deepEqual(s, { min: 4 * 1024 * 1024, avg: 16 * 1024 * 1024, max: 64 * 1024 * 1024 })
    assert.equal(discriminator(s), s.max)
  })
})

describe('chunker against casync (spec §11.1)', () => {
  it('rand8m, default sizes: the spec vectors', async () => {
    const chunks = await cuts(pieces(RAND8M, 1 << 20))
    const v = VECTORS.rand8m
    assert.equal(chunks.length, v.default_params_chunk_count)
    assert.deepEqual(ends(chunks).slice(0, 4), v.default_params_chunk_ends_first4)
    assert.equal(ends(chunks).at(-1), RAND8M.byteLength)
    assert.equal(ChunkId.digest(chunks[0]!.data, 'sha512-256').toString(), v.default_params_first_id_sha512_256)
    assert.equal(ChunkId.digest(chunks[0]!.data, 'sha256').toString(), v.default_params_first_id_sha256)
    assert.equal(ChunkId.digest(chunks.at(-1)!.data, 'sha512-256').toString(), v.default_params_last_id)
    assert.equal(createHash('sha512-256').update(RAND8M).digest('hex'), v.whole_stream_sha512_256)
  })

  it('rand8m, --chunk-size=16384 and 262144: the spec vectors', async () => {
    const v = VECTORS.rand8m
    const small = await cuts(pieces(RAND8M, 65536), parseChunkSize('16384'))
    assert.equal(small.length, v.avg16384_chunk_count)
    assert.deepEqual(ends(small).slice(0, 4), v.avg16384_chunk_ends_first4)
    const large = await cuts(pieces(RAND8M, 65536), parseChunkSize('262144'))
    assert.equal(large.length, v.avg262144_chunk_count)
    assert.deepEqual(ends(large).slice(0, 4), v.avg262144_chunk_ends_first4)
  })

  it('rand8m, 64:256:1024: the spec vectors, cuts at exactly min and max', async () => {
    const v = VECTORS.rand8m
    const chunks = await cuts(pieces(RAND8M, 100000), parseChunkSize('64:256:1024'))
    assert.equal(chunks.length, v.min64_avg256_max1024_chunk_count)
    assert.deepEqual(ends(chunks).slice(0, 4), v.min64_avg256_max1024_chunk_ends_first4)
    const inner = chunks.slice(0, -1)
    assert.equal(inner.filter(c => c.size === 64).length, v.min64_avg256_max1024_chunks_exactly_min)
    assert.equal(inner.filter(c => c.size === 1024).length, 219) // spec §11.1
    assert.ok(inner.every(c => c.size >= 64 && c.size <= 1024))
  })

  it('16:64:4096: the window is reset per chunk, so no inner chunk is below 48 bytes', async () => {
    const chunks = await cuts(pieces(RAND8M, 1 << 20), parseChunkSize('16:64:4096'))
    assert.equal(chunks.length, 88566)
    assert.equal(Math.min(...chunks.slice(0, -1).map(c => c.size)), 48)
  })

  it('4096:4096:4096 is fixed-size chunking', async () => {
    const data = RAND8M.subarray(0, 100000)
    const chunks = await cuts(pieces(data, 3000), parseChunkSize('4096:4096:4096'))
    assert.equal(chunks.length, Math.ceil(100000 / 4096))
    assert.ok(chunks.slice(0, -1).every(c => c.size === 4096))
    assert.equal(chunks.at(-1)!.size, 100000 % 4096)
  })

  it('zeros are cut into max-size chunks with the spec\'s ID', async () => {
    const chunks = await cuts(pieces(ZEROS4M, 1 << 20))
    assert.equal(chunks.length, 16)
    assert.ok(chunks.every(c => c.size === 262144))
    assert.equal(ChunkId.digest(chunks[0]!.data, 'sha512-256').toString(), VECTORS.zero_chunk_262144_id_sha512_256)
    const small = await cuts(pieces(ZEROS4M, 1 << 20), parseChunkSize('64:256:1024'))
    assert.equal(small.length, 4096)
  })

  it('an empty stream has no chunks; a short stream is one final chunk', async () => {
    assert.deepEqual(await cuts([]), [])
    assert.deepEqual(await cuts([new Uint8Array(0), new Uint8Array(0)]), [])
    const tiny = await cuts([Uint8Array.of(1, 2, 3)])
    assert.equal(tiny.length, 1)
    assert.deepEqual(Array.from(tiny[0]!.data), [1, 2, 3])
  })

  // Every index casync made of rand8m/zeros4m (test/fixtures/README.md): same bytes from our chunker.
  for (const row of CASYNC_INDEXES) {
    it(`${row.index}: our index is byte-identical to casync's (--chunk-size=${row.chunkSize}, ${row.digest})`, async () => {
      const sizes = parseChunkSize(row.chunkSize === 'default' ? '' : row.chunkSize)
      const input = INPUTS[row.input]!
      const chunks: IndexChunk[] = []
      for await (const c of chunk(pieces(input, 1 << 20), sizes)) chunks.push({ id: ChunkId.digest(c.data, row.digest), start: c.start, size: c.size })
      assert.equal(chunks.length, row.chunks)
      const bytes = encodeIndex({
        featureFlags: CA_FORMAT_EXCLUDE_NODUMP | CA_FORMAT_EXCLUDE_FILE | digestFlag(row.digest),
        chunkSizeMin: sizes.min,
        chunkSizeAvg: sizes.avg,
        chunkSizeMax: sizes.max,
        chunks
      })
      assert.equal(bytes.byteLength, row.bytes)
      assert.equal(sha256hex(bytes), row.sha256)
      if (row.committed) assert.deepEqual(Buffer.from(bytes), readFileSync(new URL(`../fixtures/${row.index}`, import.meta.url)))
    })
  }
})

describe('chunker independence from read sizes', () => {
  const data = Buffer.concat([specRandom(150000, 'split'), Buffer.alloc(5000), pseudoRandom(60000, 7)])
  const cases: Array<[string, ChunkSizes]> = [
    ['64:256:1024', parseChunkSize('64:256:1024')],
    ['16:64:4096', parseChunkSize('16:64:4096')],
    ['1000:5000:10000', parseChunkSize('1000:5000:10000')],
    ['4096:4096:4096', parseChunkSize('4096:4096:4096')]
  ]
  for (const [name, sizes] of cases) {
    it(`any split of the input gives the same chunks (${name})`, async () => {
      const reference = await cuts([data], sizes)
      assert.ok(reference.length > 10)
      await fc.assert(fc.asyncProperty(
        fc.uniqueArray(fc.integer({ min: 1, max: data.byteLength - 1 }), { maxLength: 40 }),
        async (splits) => {
          const points = [0, ...splits.sort((a, b) => a - b), data.byteLength]
          const parts = points.slice(1).map((p, i) => data.subarray(points[i]!, p))
          const got = await cuts(parts, sizes)
          assert.deepEqual(got.map(c => [c.start, c.size]), reference.map(c => [c.start, c.size]))
          assert.deepEqual(Buffer.concat(got.map(c => c.data)), data)
        }
      ), { numRuns: 40 })
    })
  }

  it('one-byte reads give the same chunks', async () => {
    const small = data.subarray(0, 20000)
    const sizes = parseChunkSize('64:256:1024')
    const whole = await cuts([small], sizes)
    const bytewise = await cuts(pieces(small, 1), sizes)
    assert.deepEqual(bytewise.map(c => c.size), whole.map(c => c.size))
  })

  it('CutFinder answers -1 until the cut is in the buffer, without rehashing', () => {
    const sizes = parseChunkSize('64:256:1024')
    const whole = new CutFinder(sizes).next(data)
    assert.ok(whole > 0)
    const finder = new CutFinder(sizes)
    for (let end = 1; end < whole; end++) assert.equal(finder.next(data, end), -1)
    assert.equal(finder.next(data, whole), whole)
  })
})

describe('parseSize / parseChunkSize (spec §1.1)', () => {
  it('parses sizes with 1024-based suffixes, fractions and sums', () => {
    assert.equal(parseSize('16384'), 16384)
    assert.equal(parseSize('16K'), 16384)
    assert.equal(parseSize('16k'), 16384)
    assert.equal(parseSize('1.5M'), 1572864)
    assert.equal(parseSize('1M 512K'), 1572864)
    assert.equal(parseSize('2G'), 2 * 1024 ** 3)
    assert.equal(parseSize('100B'), 100)
  })

  it('rejects garbage sizes', () => {
    for (const bad of ['', 'abc', '16Q', '-5', '1.2.3K', 'K']) {
      assert.throws(() => parseSize(bad), { code: 'ERR_INVALID_ARGUMENT' }, bad)
    }
  })

  it('derives min and max from AVG as casync does', () => {
    assert.deepEqual(parseChunkSize('16384'), { min: 4096, avg: 16384, max: 65536 })
    assert.deepEqual(parseChunkSize('262144'), { min: 65536, avg: 262144, max: 1048576 })
    assert.deepEqual(parseChunkSize('100000'), { min: 25000, avg: 100000, max: 400000 })
    assert.deepEqual(parseChunkSize('64K'), { min: 16384, avg: 65536, max: 262144 })
    assert.deepEqual(parseChunkSize('auto'), { min: 16384, avg: 65536, max: 262144 })
    assert.deepEqual(parseChunkSize('100M'), { min: 25 * 1024 * 1024, avg: 100 * 1024 * 1024, max: 128 * 1024 * 1024 })
  })

  it('takes MIN:AVG:MAX as given', () => {
    assert.deepEqual(parseChunkSize('16K:64K:256K'), { min: 16384, avg: 65536, max: 262144 })
    assert.deepEqual(parseChunkSize('64:256:1024'), { min: 64, avg: 256, max: 1024 })
    assert.deepEqual(parseChunkSize('4096:4096:4096'), { min: 4096, avg: 4096, max: 4096 })
  })

  it('rejects what casync rejects', () => {
    for (const bad of ['1:2', '1:2:3:4', '4096:1024:8192', '1024:4096:2048', '0:64:256', '16:64:200M', '1:4:16', 'x:64:256', '0']) {
      assert.throws(() => parseChunkSize(bad), { code: 'ERR_INVALID_ARGUMENT' }, bad)
    }
  })
})
