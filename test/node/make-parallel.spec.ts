// makeIndexFromFile's parallel path (inputs of 48 MiB and more): ranges chunked on the workers,
// stitched at shared cuts, chunk files written while the next chunks are compressed. It must give
// exactly the sequential chunker's index, store every chunk intact, and fail cleanly.
import '../helpers/setup.ts'
import assert from 'node:assert/strict'
import { createReadStream, mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import * as path from 'node:path'
import { after, before, describe, it } from 'node:test'
import { ChunkId } from '../../protocol/chunk-id.ts'
import { decompress } from '../../protocol/compression.ts'
import { encodeIndex, type Index } from '../../protocol/index-file.ts'
import { makeIndex, makeIndexFromFile } from '../../node/make.ts'
import { LocalStore } from '../../node/store/local-store.ts'
import { pseudoRandom } from '../helpers/fixtures.ts'
import { tempDir } from '../helpers/temp-dir.ts'

describe('makeIndexFromFile (parallel)', () => {
  const t = tempDir()
  const input = path.join(t.path, 'image')
  let sequential: Index

  before(async () => {
    // 56 MiB: random blocks, repeated blocks and zeros, so ranges meet in every kind of data
    const parts: Buffer[] = []
    const block = pseudoRandom(1 << 20, 7)
    for (let i = 0; i < 56; i++) parts.push(i % 7 === 3 ? Buffer.alloc(1 << 20) : i % 5 === 1 ? block : pseudoRandom(1 << 20, 100 + i))
    writeFileSync(input, Buffer.concat(parts))
    sequential = (await makeIndex(createReadStream(input, { highWaterMark: 1 << 20 }), new LocalStore(path.join(t.path, 'seq.castr')))).index
  })
  after(() => { t.cleanup() })

  it('gives the sequential index and stores every chunk, each one intact', async () => {
    const store = new LocalStore(path.join(t.path, 'par.castr'))
    const { index, stats } = await makeIndexFromFile(input, store)
    assert.ok(Buffer.from(encodeIndex(index)).equals(Buffer.from(encodeIndex(sequential))))
    const distinct = new Map([...index.chunks].map(c => [c.id.toString(), c]))
    assert.equal(stats.newChunks, distinct.size)
    const data = readFileSync(input)
    for (const c of distinct.values()) {
      const plain = await decompress(readFileSync(store.chunkFile(c.id)))
      assert.ok(Buffer.from(plain).equals(data.subarray(c.start, c.start + c.size)), `chunk at ${c.start}`)
      assert.ok(ChunkId.digest(plain).equals(c.id))
    }
    const again = await makeIndexFromFile(input, store)
    assert.equal(again.stats.newChunks, 0) // all there already
  })

  it('a chunk file that cannot be written fails the make with the file named', async () => {
    const root = path.join(t.path, 'blocked.castr')
    mkdirSync(root)
    const hex = sequential.chunks.at(5).id.toString()
    writeFileSync(path.join(root, hex.slice(0, 4)), 'a file where a directory goes')
    await assert.rejects(makeIndexFromFile(input, new LocalStore(root)), (err: any) => {
      assert.match(String(err.message), new RegExp(`${hex.slice(0, 4)}/${hex}`))
      return true
    })
  })
})
