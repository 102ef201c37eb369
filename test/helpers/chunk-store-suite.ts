// A compliance suite every ChunkStore runs (STYLE.md §19): LocalStore here; memory, HTTP, router
// and cache stores can run the same tests with their own setup.
import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { ChunkId, type DigestAlgorithm } from '../../protocol/chunk-id.ts'
import type { ChunkStore } from '../../node/store/chunk-store.ts'
import { pseudoRandom } from './fixtures.ts'

export interface ChunkStoreSuiteOptions {
  /** digest of the IDs the store expects. @default 'sha256' */
  digest?: DigestAlgorithm
  /** Damages the stored copy of `id` so that a get() must fail verification (skipped when absent). */
  corrupt?: (store: ChunkStore, id: ChunkId) => Promise<void>
}

export function chunkStoreSuite (name: string, setup: () => Promise<ChunkStore>, teardown: (s: ChunkStore) => Promise<void>, options: ChunkStoreSuiteOptions = {}): void {
  const digest = options.digest ?? 'sha256'
  const chunkOf = (seed: number, size = 10000): { id: ChunkId, data: Uint8Array } => {
    const data = new Uint8Array(pseudoRandom(size, seed))
    return { id: ChunkId.digest(data, digest), data }
  }

  describe(`${name} (ChunkStore compliance)`, () => {
    let store: ChunkStore
    before(async () => { store = await setup() })
    after(async () => { await teardown(store) })

    it('get() rejects with ERR_CHUNK_MISSING for an unknown id, naming it', async () => {
      const { id } = chunkOf(1)
      await assert.rejects(store.get(id), (err: any) => err.code === 'ERR_CHUNK_MISSING' && err.message.includes(id.toString()))
      assert.equal(await store.has(id), false)
    })

    it('put() then get() round-trips and has() is true', async () => {
      const { id, data } = chunkOf(2)
      await store.put(id, data)
      assert.equal(await store.has(id), true)
      assert.deepEqual(Buffer.from(await store.get(id)), Buffer.from(data))
      assert.deepEqual(Buffer.from(await store.get(id, { size: data.byteLength })), Buffer.from(data))
    })

    it('put() of a chunk already there is harmless, also concurrently', async () => {
      const { id, data } = chunkOf(3)
      await Promise.all([store.put(id, data), store.put(id, data), store.put(id, data)])
      await store.put(id, data)
      assert.deepEqual(Buffer.from(await store.get(id)), Buffer.from(data))
    })

    it('round-trips many chunks of many sizes at once', async () => {
      const chunks = Array.from({ length: 40 }, (_, i) => chunkOf(100 + i, 1 + i * 997))
      await Promise.all(chunks.map(async c => { await store.put(c.id, c.data) }))
      const got = await Promise.all(chunks.map(async c => await store.get(c.id)))
      got.forEach((g, i) => { assert.deepEqual(Buffer.from(g), Buffer.from(chunks[i]!.data)) })
    })

    it('get() with the wrong expected size rejects with ERR_CHUNK_INVALID', async () => {
      const { id, data } = chunkOf(4)
      await store.put(id, data)
      await assert.rejects(store.get(id, { size: data.byteLength - 1 }), { code: 'ERR_CHUNK_INVALID' })
    })

    it('get(), has() and put() reject when the signal is already aborted', async () => {
      const { id, data } = chunkOf(5)
      await store.put(id, data)
      const signal = AbortSignal.abort()
      await assert.rejects(store.get(id, { signal }), (err: any) => err.name === 'AbortError' || err.code === 'ABORT_ERR')
      await assert.rejects(store.has(id, { signal }), (err: any) => err.name === 'AbortError' || err.code === 'ABORT_ERR')
      const other = chunkOf(6)
      await assert.rejects(store.put(other.id, other.data, { signal }), (err: any) => err.name === 'AbortError' || err.code === 'ABORT_ERR')
      assert.equal(await store.has(other.id), false)
    })

    it('a damaged stored copy is refused with ERR_CHUNK_INVALID', { skip: options.corrupt == null ? 'no corrupt() hook' : false }, async () => {
      const { id, data } = chunkOf(7)
      await store.put(id, data)
      await options.corrupt!(store, id)
      await assert.rejects(store.get(id), (err: any) => err.code === 'ERR_CHUNK_INVALID' && err.message.includes(id.toString()))
    })

    it('toString() names the store', () => {
      assert.ok(store.toString().length > 0)
    })
  })
}
