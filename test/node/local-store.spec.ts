import '../helpers/setup.ts'
import assert from 'node:assert/strict'
import { chmodSync, existsSync, readdirSync, readFileSync, statSync, symlinkSync, writeFileSync, mkdirSync } from 'node:fs'
import * as path from 'node:path'
import { after, describe, it } from 'node:test'
import { fileURLToPath } from 'node:url'
import { ChunkId, chunkPath } from '../../protocol/chunk-id.ts'
import { decodeIndex } from '../../protocol/index-file.ts'
import { LocalStore } from '../../node/store/local-store.ts'
import { chunkStoreSuite } from '../helpers/chunk-store-suite.ts'
import { pseudoRandom } from '../helpers/fixtures.ts'
import { tempDir } from '../helpers/temp-dir.ts'

const FIXTURES = fileURLToPath(new URL('../fixtures/', import.meta.url))

/** Every file under a directory, relative paths. */
function walk (dir: string, prefix = ''): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap(e => e.isDirectory() ? walk(path.join(dir, e.name), `${prefix}${e.name}/`) : [`${prefix}${e.name}`])
}

async function corrupt (store: any, id: ChunkId): Promise<void> {
  const file = (store as LocalStore).chunkFile(id)
  chmodSync(file, 0o644)
  const bytes = readFileSync(file)
  bytes[bytes.length - 5]! ^= 0xff
  writeFileSync(file, bytes)
}

for (const compression of ['zstd', 'gzip'] as const) {
  const dirs: Array<() => void> = []
  chunkStoreSuite(`LocalStore (${compression})`, async () => {
    const t = tempDir()
    dirs.push(t.cleanup)
    return new LocalStore(path.join(t.path, 'default.castr'), { compression })
  }, async (s) => { await s.close(); dirs.forEach(d => { d() }) }, { corrupt })
}

describe('LocalStore specifics', () => {
  const t = tempDir()
  after(() => { t.cleanup() })
  const data = new Uint8Array(pseudoRandom(50000, 11))
  const id = ChunkId.digest(data)

  it('writes <4hex>/<id>.cacnk, mode 0444, and leaves no .tmp files', async () => {
    const store = new LocalStore(path.join(t.path, 'a.castr'))
    const many = Array.from({ length: 30 }, (_, i) => new Uint8Array(pseudoRandom(3000, 500 + i)))
    await Promise.all([store.put(id, data), ...many.map(async d => { await store.put(ChunkId.digest(d), d) }), store.put(id, data)])
    const file = path.join(t.path, 'a.castr', chunkPath(id))
    assert.ok(existsSync(file))
    assert.equal(statSync(file).mode & 0o777, 0o444)
    const files = walk(path.join(t.path, 'a.castr'))
    assert.equal(files.length, 31)
    assert.ok(files.every(f => /^[0-9a-f]{4}\/[0-9a-f]{64}\.cacnk$/.test(f) && f.startsWith(path.basename(f).slice(0, 4))), files.join(' '))
    const listed: string[] = []
    for await (const i of store.list()) listed.push(i.toString())
    assert.equal(listed.length, 31)
  })

  it('a corrupted file is refused with ERR_CHUNK_INVALID naming the store and the file', async () => {
    const store = new LocalStore(path.join(t.path, 'b.castr'))
    await store.put(id, data)
    await corrupt(store, id)
    await assert.rejects(store.get(id), (err: any) => err.code === 'ERR_CHUNK_INVALID' && err.message.includes(store.chunkFile(id)) && err.message.includes('local:'))
    // garbage that is not compressed at all
    writeFileSync(store.chunkFile(id), 'not a chunk')
    await assert.rejects(store.get(id), (err: any) => err.code === 'ERR_CHUNK_INVALID' && err.message.includes(store.chunkFile(id)))
    // getCompressed verifies too
    await assert.rejects(store.getCompressed(id), { code: 'ERR_CHUNK_INVALID' })
  })

  it('a file with the content of another chunk is refused', async () => {
    const store = new LocalStore(path.join(t.path, 'c.castr'))
    const other = new Uint8Array(pseudoRandom(50000, 12))
    await store.put(ChunkId.digest(other), other)
    mkdirSync(path.dirname(store.chunkFile(id)), { recursive: true })
    writeFileSync(store.chunkFile(id), readFileSync(store.chunkFile(ChunkId.digest(other))))
    await assert.rejects(store.get(id), (err: any) => err.code === 'ERR_CHUNK_INVALID' && err.actual?.equals(ChunkId.digest(other)))
  })

  it('reads uncompressed chunks stored as <4hex>/<id>, verified', async () => {
    const root = path.join(t.path, 'd.castr')
    const store = new LocalStore(root)
    const file = path.join(root, chunkPath(id, ''))
    mkdirSync(path.dirname(file), { recursive: true })
    writeFileSync(file, data)
    assert.equal(await store.has(id), true)
    assert.deepEqual(Buffer.from(await store.get(id)), Buffer.from(data))
    const compressed = await store.getCompressed(id)
    assert.notEqual(compressed.byteLength, 0)
    await store.put(id, data) // already there: nothing written
    assert.equal(existsSync(store.chunkFile(id)), false)
    writeFileSync(file, data.subarray(1))
    await assert.rejects(store.get(id), { code: 'ERR_CHUNK_INVALID' })
  })

  it('a symlink <4hex>/<id> to /dev/null means missing', async () => {
    const root = path.join(t.path, 'e.castr')
    const file = path.join(root, chunkPath(id, ''))
    mkdirSync(path.dirname(file), { recursive: true })
    symlinkSync('/dev/null', file)
    const store = new LocalStore(root)
    await assert.rejects(store.get(id), { code: 'ERR_CHUNK_MISSING' })
  })

  for (const [store, index, digest] of [['blob1.castr', 'blob1.caibx', 'sha512-256'], ['blob1-sha256-gzip.castr', 'blob1-sha256.caibx', 'sha256']] as const) {
    it(`reads the casync-made ${store}`, async () => {
      const s = new LocalStore(path.join(FIXTURES, store), { digest })
      const idx = decodeIndex(readFileSync(path.join(FIXTURES, index)))
      const parts = await Promise.all([...idx.chunks].map(async c => await s.get(c.id, { size: c.size })))
      assert.deepEqual(Buffer.concat(parts), readFileSync(path.join(FIXTURES, 'blob1')))
      // the wrong digest fails verification instead of passing silently
      const wrong = new LocalStore(path.join(FIXTURES, store), { digest: digest === 'sha256' ? 'sha512-256' : 'sha256' })
      await assert.rejects(wrong.get(idx.chunks.at(0).id), { code: 'ERR_CHUNK_INVALID' })
    })
  }
})
