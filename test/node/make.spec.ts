import '../helpers/setup.ts'
import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { readdirSync, readFileSync } from 'node:fs'
import * as path from 'node:path'
import { after, describe, it } from 'node:test'
import { ChunkId } from '../../protocol/chunk-id.ts'
import { parseChunkSize } from '../../protocol/chunker.ts'
import { decompress, detectCompression } from '../../protocol/compression.ts'
import { ChunkMissingError } from '../../protocol/errors.ts'
import { decodeIndex, encodeIndex } from '../../protocol/index-file.ts'
import { blobFeatureFlags, makeIndex } from '../../node/make.ts'
import type { AbortOptions, ChunkStore } from '../../node/store/chunk-store.ts'
import { LocalStore } from '../../node/store/local-store.ts'
import { pieces, pseudoRandom, specRandom } from '../helpers/fixtures.ts'
import { tempDir } from '../helpers/temp-dir.ts'

/** `data` as an async stream of `size`-byte reads. */
async function * stream (data: Uint8Array, size: number): AsyncGenerator<Uint8Array> {
  yield * pieces(data, size)
}

const fixture = (name: string): Buffer => readFileSync(new URL(`../fixtures/${name}`, import.meta.url))
const BLOB1 = fixture('blob1')

/** A store in memory that keeps what it was given, for the non-local path of makeIndex. */
class MemoryStore implements ChunkStore {
  readonly chunks = new Map<string, Uint8Array>()
  puts = 0
  failAfter = Infinity
  async get (id: ChunkId): Promise<Uint8Array> {
    const c = this.chunks.get(id.toString())
    if (c == null) throw new ChunkMissingError(id)
    return await decompress(c)
  }

  async has (id: ChunkId): Promise<boolean> { return this.chunks.has(id.toString()) }
  async put (id: ChunkId, data: Uint8Array, _o?: AbortOptions): Promise<void> { await this.putCompressed(id, data) }
  async putCompressed (id: ChunkId, compressed: Uint8Array): Promise<void> {
    if (++this.puts > this.failAfter) throw Object.assign(new Error('disk on fire'), { code: 'EIO' })
    this.chunks.set(id.toString(), compressed)
  }

  async close (): Promise<void> {}
  toString (): string { return 'memory:' }
}

function storeFiles (root: string): string[] {
  return readdirSync(root).flatMap(d => readdirSync(path.join(root, d)).map(f => path.join(root, d, f)))
}

describe('makeIndex', () => {
  const t = tempDir()
  after(() => { t.cleanup() })

  it('makes casync\'s exact index for blob1 (16384, SHA-512/256) and stores every chunk, verified', async () => {
    const store = new LocalStore(path.join(t.path, 'a.castr'), { digest: 'sha512-256' })
    const result = await makeIndex(stream(BLOB1, 4096), store, { chunkSize: parseChunkSize('16384'), digest: 'sha512-256' })
    assert.deepEqual(Buffer.from(encodeIndex(result.index)), fixture('blob1.caibx'))
    assert.equal(result.streamDigest, createHash('sha512-256').update(BLOB1).digest('hex'))
    assert.deepEqual({ ...result.stats, seconds: 0 }, { bytes: 100000, chunks: 7, newChunks: 7, storedBytes: result.stats.storedBytes, seconds: 0 })
    const files = storeFiles(path.join(t.path, 'a.castr'))
    assert.equal(files.length, 7)
    assert.equal(files.reduce((n, f) => n + readFileSync(f).byteLength, 0), result.stats.storedBytes)
    for (const c of result.index.chunks) {
      assert.deepEqual(Buffer.from(await store.get(c.id, { size: c.size })), BLOB1.subarray(c.start, c.start + c.size))
    }
    // a second make finds every chunk in the store and writes nothing
    const again = await makeIndex(stream(BLOB1, 100000), store, { chunkSize: parseChunkSize('16384'), digest: 'sha512-256' })
    assert.equal(again.stats.newChunks, 0)
    assert.equal(again.stats.storedBytes, 0)
    assert.deepEqual(encodeIndex(again.index), encodeIndex(result.index))
  })

  it('defaults to SHA-256, 16K:64K:256K and zstd, with casync\'s blob flags', async () => {
    const data = specRandom(1 << 20, 'make-defaults')
    const store = new LocalStore(path.join(t.path, 'b.castr'))
    const { index, streamDigest } = await makeIndex(stream(data, 1 << 16), store)
    assert.equal(index.featureFlags, 0x9000000000000000n)
    assert.equal(index.featureFlags, blobFeatureFlags('sha256'))
    assert.deepEqual([index.chunkSizeMin, index.chunkSizeAvg, index.chunkSizeMax], [16384, 65536, 262144])
    assert.equal(streamDigest, createHash('sha256').update(data).digest('hex'))
    assert.ok(index.chunks.at(0).id.equals(ChunkId.digest(data.subarray(0, index.chunks.at(0).size), 'sha256')))
    for (const f of storeFiles(path.join(t.path, 'b.castr'))) assert.equal(detectCompression(readFileSync(f)), 'zstd')
  })

  for (const compression of ['xz', 'gzip'] as const) {
    it(`writes ${compression} chunks when asked`, async () => {
      const store = new LocalStore(path.join(t.path, `${compression}.castr`))
      const { index } = await makeIndex(stream(BLOB1, 65536), store, { chunkSize: parseChunkSize('16384'), compression })
      const files = storeFiles(path.join(t.path, `${compression}.castr`))
      assert.equal(files.length, index.chunks.length)
      for (const f of files) assert.equal(detectCompression(readFileSync(f)), compression)
      const back = await Promise.all([...index.chunks].map(async c => await store.get(c.id)))
      assert.deepEqual(Buffer.concat(back), BLOB1)
    })
  }

  it('an empty input gives casync\'s empty index', async () => {
    const store = new LocalStore(path.join(t.path, 'empty.castr'))
    const { index, stats } = await makeIndex(stream(new Uint8Array(0), 1), store, { digest: 'sha512-256' })
    assert.deepEqual(Buffer.from(encodeIndex(index)), fixture('empty.caibx'))
    assert.equal(stats.chunks, 0)
  })

  it('a store that is not local gets each new chunk once, compressed, and known chunks not at all', async () => {
    const data = Buffer.concat([pseudoRandom(300000, 21), Buffer.alloc(600000), pseudoRandom(300000, 21)])
    const store = new MemoryStore()
    const local = new LocalStore(path.join(t.path, 'ref.castr'))
    const { index, stats } = await makeIndex(stream(data, 1 << 16), store)
    const ref = await makeIndex(stream(data, 1 << 16), local)
    assert.deepEqual(encodeIndex(index), encodeIndex(ref.index))
    const distinct = new Set([...index.chunks].map(c => c.id.toString()))
    assert.ok(distinct.size < index.chunks.length, 'the input repeats chunks')
    assert.equal(store.chunks.size, distinct.size)
    assert.equal(store.puts, distinct.size)
    assert.equal(stats.newChunks, distinct.size)
    for (const c of index.chunks) assert.deepEqual(Buffer.from(await store.get(c.id)), data.subarray(c.start, c.start + c.size))
    const again = await makeIndex(stream(data, 1 << 16), store)
    assert.equal(again.stats.newChunks, 0)
    assert.equal(store.puts, distinct.size)
  })

  it('a failing store fails the make', async () => {
    const store = new MemoryStore()
    store.failAfter = 3
    await assert.rejects(makeIndex(stream(pseudoRandom(2_000_000, 22), 1 << 16), store), /disk on fire/)
  })

  it('an aborted signal stops the make', async () => {
    const controller = new AbortController()
    let n = 0
    const source = (async function * () {
      for (const p of pieces(pseudoRandom(4_000_000, 23), 1 << 16)) {
        if (++n === 10) controller.abort(new Error('stop'))
        yield p
      }
    })()
    await assert.rejects(makeIndex(source, new LocalStore(path.join(t.path, 'abort.castr')), { signal: controller.signal }), /stop/)
    assert.ok(n < 61, `read ${n} pieces after the abort`)
  })

  it('decodes back to the same index through the codec (SHA-512/256, small chunks)', async () => {
    const data = specRandom(200000, 'small')
    const store = new LocalStore(path.join(t.path, 'small.castr'), { digest: 'sha512-256' })
    const { index } = await makeIndex(stream(data, 777), store, { chunkSize: parseChunkSize('64:256:1024'), digest: 'sha512-256' })
    assert.ok(index.chunks.length > 100)
    assert.deepEqual(decodeIndex(encodeIndex(index)), index)
    let at = 0
    for (const c of index.chunks) { assert.equal(c.start, at); at += c.size }
    assert.equal(at, data.byteLength)
  })
})
