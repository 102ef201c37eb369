import '../helpers/setup.ts'
import assert from 'node:assert/strict'
import { writeFileSync } from 'node:fs'
import * as path from 'node:path'
import { after, describe, it } from 'node:test'
import { ChunkId } from '../../protocol/chunk-id.ts'
import { ChunkTable } from '../../protocol/chunk-table.ts'
import { chunk, parseChunkSize } from '../../protocol/chunker.ts'
import type { Index, IndexChunk } from '../../protocol/index-file.ts'
import { blobFeatureFlags } from '../../node/make.ts'
import { FileSeed, uncovered } from '../../node/seed.ts'
import { pieces, pseudoRandom, specRandom } from '../helpers/fixtures.ts'
import { tempDir } from '../helpers/temp-dir.ts'

async function indexOf (data: Uint8Array, chunkSize = '16384', digest: 'sha256' | 'sha512-256' = 'sha256'): Promise<Index> {
  const sizes = parseChunkSize(chunkSize)
  const chunks: IndexChunk[] = []
  for await (const c of chunk(pieces(data, 1 << 16), sizes)) chunks.push({ id: ChunkId.digest(c.data, digest), start: c.start, size: c.size })
  return { featureFlags: blobFeatureFlags(digest), chunkSizeMin: sizes.min, chunkSizeAvg: sizes.avg, chunkSizeMax: sizes.max, chunks: ChunkTable.from(chunks) }
}

describe('FileSeed', () => {
  const t = tempDir()
  after(() => { t.cleanup() })
  const v1 = Buffer.concat([specRandom(600_000, 'seed-a'), Buffer.alloc(100_000), pseudoRandom(500_000, 51)])
  const v2 = Buffer.concat([v1.subarray(0, 250_000), Buffer.from('xyz'.repeat(500)), v1.subarray(250_000)])

  for (const digest of ['sha256', 'sha512-256'] as const) {
    it(`finds the chunks of the target that the seed holds (${digest}), and reads them verified`, async () => {
      const file = path.join(t.path, `v1-${digest}.img`)
      writeFileSync(file, v1)
      const target = await indexOf(v2, '16384', digest)
      const own = new Set([...(await indexOf(v1, '16384', digest)).chunks].map(c => c.id.toString()))
      const seed = await FileSeed.index(file, target)
      try {
        const expected = [...target.chunks].filter(c => own.has(c.id.toString()))
        assert.ok(expected.length > target.chunks.length / 2)
        for (const c of target.chunks) assert.equal(seed.has(c.id), own.has(c.id.toString()), `chunk at ${c.start}`)
        for (const c of expected) {
          const data = await seed.read(c.id, c.size)
          assert.ok(data != null)
          assert.deepEqual(Buffer.from(data), v2.subarray(c.start, c.start + c.size))
        }
        assert.equal(seed.name, `seed:${file}`)
      } finally {
        await seed.close()
      }
    })
  }

  it('an older image edited every way (changed in place, grown, shrunk, a block moved and one copied): every chunk it holds is found, and written where the target wants it', async () => {
    // 2 MB of mixed data; the edits are larger than the probes' scan window (2 x 64 KiB)
    const old = Buffer.concat([pseudoRandom(1_200_000, 61), specRandom(400_000, 'seed-b'), Buffer.alloc(150_000), pseudoRandom(250_000, 62)])
    const edited = Buffer.concat([
      old.subarray(1_800_000, 2_000_000), // a block moved to the front
      old.subarray(0, 300_000),
      pseudoRandom(5_000, 63), // changed in place
      old.subarray(305_000, 500_000),
      pseudoRandom(400_000, 64), // grown
      old.subarray(500_000, 900_000),
      // shrunk: 300 KB of the old image left out
      old.subarray(1_200_000, 1_800_000),
      old.subarray(100_000, 250_000) // a block copied
    ])
    const file = path.join(t.path, 'old.img')
    writeFileSync(file, old)
    const target = await indexOf(edited)
    const own = new Set([...(await indexOf(old)).chunks].map(c => c.id.toString()))
    const outFile = path.join(t.path, 'edited.out')
    writeFileSync(outFile, Buffer.alloc(edited.byteLength))
    const fd = (await import('node:fs')).openSync(outFile, 'r+')
    const seed = await FileSeed.index(file, target, { outFd: fd })
    try {
      const missed = [...target.chunks].filter(c => own.has(c.id.toString()) && !seed.has(c.id))
      assert.deepEqual(missed.map(c => c.start), [], 'chunks of the old image that were not found')
      for (const c of target.chunks) if (!own.has(c.id.toString())) assert.equal(seed.has(c.id), false)
      const written = [...seed.written]
      assert.ok(written.length >= [...target.chunks].filter(c => own.has(c.id.toString())).length)
      const result = (await import('node:fs')).readFileSync(outFile)
      for (const i of written) {
        const c = target.chunks.at(i)
        assert.ok(result.subarray(c.start, c.start + c.size).equals(edited.subarray(c.start, c.start + c.size)), `chunk ${i} written wrong`)
      }
    } finally {
      (await import('node:fs')).closeSync(fd)
      await seed.close()
    }
  })

  it('uncovered(): the stretches no probe looked at, merged when close, dropped when no chunk fits', () => {
    assert.deepEqual(uncovered([10, 20, 0, 5], 100, 3, 2), [[5, 10], [20, 100]])
    assert.deepEqual(uncovered([0, 50, 52, 100], 100, 3, 2), [], 'a 2-byte gap holds no 3-byte chunk')
    assert.deepEqual(uncovered([10, 20, 23, 24], 40, 3, 2), [[0, 10], [20, 40]], 'gaps 1 apart merge')
    assert.deepEqual(uncovered([], 40, 3, 2), [[0, 40]])
  })

  it('a seed changed after indexing is not trusted for the changed chunk', async () => {
    const file = path.join(t.path, 'changing.img')
    writeFileSync(file, v1)
    const target = await indexOf(v1)
    const seed = await FileSeed.index(file, target)
    try {
      const c = target.chunks.at(1)
      assert.ok(seed.has(c.id))
      const changed = Buffer.from(v1)
      changed[c.start + 10]! ^= 0xff
      writeFileSync(file, changed)
      assert.equal(await seed.read(c.id, c.size), null)
      assert.equal(await seed.read(target.chunks.at(0).id, target.chunks.at(0).size + 1), null) // wrong size
      const other = target.chunks.at(3)
      assert.deepEqual(Buffer.from((await seed.read(other.id, other.size))!), v1.subarray(other.start, other.start + other.size))
    } finally {
      await seed.close()
    }
  })

  it('an empty seed and a seed with nothing in common find nothing', async () => {
    const empty = path.join(t.path, 'empty.img')
    writeFileSync(empty, new Uint8Array(0))
    const unrelated = path.join(t.path, 'unrelated.img')
    writeFileSync(unrelated, pseudoRandom(300_000, 99))
    const target = await indexOf(v1)
    for (const f of [empty, unrelated]) {
      const seed = await FileSeed.index(f, target)
      try {
        assert.equal([...target.chunks].filter(c => seed.has(c.id)).length, 0)
      } finally {
        await seed.close()
      }
    }
  })

  it('small chunk sizes (64:256:1024) work as well', async () => {
    const file = path.join(t.path, 'small.img')
    writeFileSync(file, v1.subarray(0, 200_000))
    const target = await indexOf(v2.subarray(0, 200_000), '64:256:1024')
    const seed = await FileSeed.index(file, target)
    try {
      const found = [...target.chunks].filter(c => seed.has(c.id)).length
      assert.ok(found > target.chunks.length * 0.9, `${found} of ${target.chunks.length}`)
    } finally {
      await seed.close()
    }
  })
})
