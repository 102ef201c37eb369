import '../helpers/setup.ts'
import assert from 'node:assert/strict'
import { existsSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs'
import * as path from 'node:path'
import { after, before, describe, it } from 'node:test'
import { parseChunkSize } from '../../protocol/chunker.ts'
import { encodeIndex, type Index } from '../../protocol/index-file.ts'
import { assembleStream } from '../../node/assemble.ts'
import { extractBlob, partialPath } from '../../node/extract.ts'
import { readIndex } from '../../node/index-io.ts'
import { makeIndex } from '../../node/make.ts'
import { LocalStore } from '../../node/store/local-store.ts'
import { sharedPool } from '../../node/workers/pool.ts'
import { pieces, pseudoRandom, specRandom } from '../helpers/fixtures.ts'
import { tempDir } from '../helpers/temp-dir.ts'

/** `data` as an async stream of `size`-byte reads. */
async function * stream (data: Uint8Array, size: number): AsyncGenerator<Uint8Array> {
  yield * pieces(data, size)
}

/** v1: 3 MB of mixed data; v2: v1 with bytes inserted, overwritten and appended in a few places. */
function versions (): { v1: Buffer, v2: Buffer } {
  const text = Buffer.from('lorem ipsum dolor sit amet, consectetur adipiscing elit '.repeat(20000)).subarray(0, 1_000_000)
  const v1 = Buffer.concat([specRandom(1_200_000, 'v1a'), text, pseudoRandom(800_000, 31)])
  const v2 = Buffer.concat([
    v1.subarray(0, 400_000), Buffer.from('inserted!'.repeat(300)), v1.subarray(400_000, 1_500_000),
    pseudoRandom(20_000, 32), v1.subarray(1_520_000), pseudoRandom(50_000, 33)
  ])
  return { v1, v2 }
}

describe('extractBlob', () => {
  const t = tempDir()
  const { v1, v2 } = versions()
  const sizes = parseChunkSize('16384')
  let index1: Index
  let index2: Index
  const full = path.join(t.path, 'full.castr') // every chunk of v1 and v2
  const lean = path.join(t.path, 'lean.castr') // only v2's chunks that v1 lacks
  const storeOf = (p: string): LocalStore => new LocalStore(p)
  const out = (name: string): string => path.join(t.path, name)

  before(async () => {
    index1 = (await makeIndex(stream(v1, 1 << 16), storeOf(full), { chunkSize: sizes })).index
    index2 = (await makeIndex(stream(v2, 1 << 16), storeOf(full), { chunkSize: sizes })).index
    const inV1 = new Set([...index1.chunks].map(c => c.id.toString()))
    await makeIndex(stream(v2, 1 << 16), storeOf(lean), { chunkSize: sizes })
    for (const c of index2.chunks) if (inV1.has(c.id.toString())) rmSync(storeOf(lean).chunkFile(c.id), { force: true })
  })
  after(() => { t.cleanup() })

  it('rebuilds the stream from a store, and leaves no partial file', async () => {
    const stats = await extractBlob(index2, out('a.img'), { sources: [storeOf(full)] })
    assert.ok(readFileSync(out('a.img')).equals(v2))
    assert.equal(stats.bytes, v2.byteLength)
    assert.equal(stats.chunks, index2.chunks.length)
    const total = Object.values(stats.sources).reduce((n, s) => n + s.chunks, 0)
    assert.equal(total, index2.chunks.length)
    assert.ok(stats.sources[`local:${full}`]!.chunks > 0)
    assert.equal(existsSync(partialPath(out('a.img'))), false)
    assert.deepEqual(readdirSync(t.path).filter(f => f.includes('partial') || f.endsWith('.tmp')), [])
  })

  it('takes chunks from a seed first; the store only supplies what the seed lacks', async () => {
    writeFileSync(out('v1.img'), v1)
    const stats = await extractBlob(index2, out('b.img'), { sources: [storeOf(lean)], seedPaths: [out('v1.img')] })
    assert.ok(readFileSync(out('b.img')).equals(v2))
    const fromSeed = stats.sources[`seed:${out('v1.img')}`]
    const fromStore = stats.sources[`local:${lean}`]
    assert.ok(fromSeed != null && fromSeed.chunks > index2.chunks.length / 2, JSON.stringify(stats.sources))
    const inV1 = new Set([...index1.chunks].map(c => c.id.toString()))
    const notInV1 = [...index2.chunks].filter(c => !inV1.has(c.id.toString())).length
    assert.equal(fromStore?.chunks, notInV1)
    assert.equal(fromSeed.chunks + notInV1 + (stats.sources.repeat?.chunks ?? 0), index2.chunks.length)
  })

  it('uses the existing output as a seed, then replaces it', async () => {
    writeFileSync(out('c.img'), v1)
    const stats = await extractBlob(index2, out('c.img'), { sources: [storeOf(lean)] })
    assert.ok(readFileSync(out('c.img')).equals(v2))
    assert.ok((stats.sources[`seed-output:${out('c.img')}`]?.chunks ?? 0) > 0, JSON.stringify(stats.sources))
  })

  it('resumes: a partial file\'s right bytes are reused in place, wrong ones rewritten', async () => {
    const partial = Buffer.from(v2)
    partial.fill(0xee, 1_000_000, 1_300_000) // damaged middle
    const cut = partial.subarray(0, 2_500_000) // and the tail never written
    writeFileSync(partialPath(out('d.img')), cut)
    const stats = await extractBlob(index2, out('d.img'), { sources: [storeOf(full)] })
    assert.ok(readFileSync(out('d.img')).equals(v2))
    const inPlace = stats.sources['in-place']?.chunks ?? 0
    const right = [...index2.chunks].filter(c => c.start + c.size <= 2_500_000 && (c.start + c.size <= 1_000_000 || c.start >= 1_300_000)).length
    assert.equal(inPlace, right, JSON.stringify(stats.sources))
    assert.ok((stats.sources[`local:${full}`]?.chunks ?? 0) >= index2.chunks.length - right - (stats.sources.repeat?.chunks ?? 0))
    assert.equal(existsSync(partialPath(out('d.img'))), false)
  })

  it('a bad chunk in the first store is taken from the next, and counted', async () => {
    const bad = path.join(t.path, 'bad.castr')
    await makeIndex(stream(v2, 1 << 16), storeOf(bad), { chunkSize: sizes })
    const victim = index2.chunks.at(3)
    const file = storeOf(bad).chunkFile(victim.id)
    rmSync(file)
    writeFileSync(file, readFileSync(storeOf(bad).chunkFile(index2.chunks.at(4).id)))
    const stats = await extractBlob(index2, out('e.img'), { sources: [storeOf(bad), storeOf(full)], seedOutput: false })
    assert.ok(readFileSync(out('e.img')).equals(v2))
    assert.equal(stats.invalid[`local:${bad}`], 1)
    assert.equal(stats.sources[`local:${full}`]?.chunks, 1)
  })

  it('missing chunks: fails with their count and the sources asked; the existing output is untouched', async () => {
    const existing = Buffer.from('precious old contents')
    writeFileSync(out('f.img'), existing)
    const inV1 = new Set([...index1.chunks].map(c => c.id.toString()))
    const missing = [...index2.chunks].filter(c => inV1.has(c.id.toString())).length
    await assert.rejects(extractBlob(index2, out('f.img'), { sources: [storeOf(lean)] }), (err: any) => {
      assert.equal(err.code, 'ERR_CHUNK_MISSING')
      assert.match(err.message, new RegExp(`^${missing} chunks missing`))
      assert.ok(err.message.includes(`local:${lean}`), err.message)
      return true
    })
    assert.ok(readFileSync(out('f.img')).equals(existing))
    await assert.rejects(extractBlob(index2, out('g.img'), { sources: [storeOf(lean)] }), { code: 'ERR_CHUNK_MISSING' })
    assert.equal(existsSync(out('g.img')), false)
  })

  it('repeated chunks (zeros) come out right', async () => {
    const zeros = Buffer.alloc(3_000_000)
    zeros.write('head', 0)
    const store = path.join(t.path, 'zeros.castr')
    const { index } = await makeIndex(stream(zeros, 1 << 16), storeOf(store))
    assert.ok(new Set([...index.chunks].map(c => c.id.toString())).size < 4)
    const stats = await extractBlob(index, out('z.img'), { sources: [storeOf(store)], concurrency: 1 })
    // the run of zeros is cut into chunks of the maximum size, which the fresh output holds already
    assert.ok((stats.sources.zeros?.chunks ?? 0) > 0, JSON.stringify(stats.sources))
    assert.ok(readFileSync(out('z.img')).equals(zeros))
    // chunks of zeros are verified but not written into a fresh output: it is sparse
    assert.ok(statSync(out('z.img')).blocks * 512 < 1_000_000, `${statSync(out('z.img')).blocks} blocks allocated`)
  })

  it('a seed\'s chunks of zeros are verified, not written: the output is right and sparse', async () => {
    const data = Buffer.concat([pseudoRandom(300_000, 51), Buffer.alloc(2_000_000), pseudoRandom(300_000, 52)])
    const store = path.join(t.path, 'zeros3.castr')
    const { index } = await makeIndex(stream(data, 1 << 16), storeOf(store))
    writeFileSync(out('z3-seed.img'), data)
    rmSync(store, { recursive: true }) // everything must come from the seed
    const stats = await extractBlob(index, out('z3.img'), { sources: [storeOf(store)], seedPaths: [out('z3-seed.img')] })
    assert.ok(readFileSync(out('z3.img')).equals(data))
    // the chunks of the run of zeros need no source; the seed gave the rest
    assert.ok((stats.sources.zeros?.chunks ?? 0) > 0, JSON.stringify(stats.sources))
    assert.equal(stats.sources[`seed:${out('z3-seed.img')}`]!.bytes + stats.sources.zeros!.bytes, data.byteLength, JSON.stringify(stats.sources))
    assert.ok(statSync(out('z3.img')).blocks * 512 < 1_500_000, `${statSync(out('z3.img')).blocks} blocks allocated`)
  })

  for (const digest of ['sha256', 'sha512-256'] as const) {
    it(`a run of zeros needs no source in a fresh output: the store and the seed are not asked for its chunks (${digest})`, async () => {
      const sizes = parseChunkSize('4096:16384:65536')
      const data = Buffer.concat([pseudoRandom(300_000, 71), Buffer.alloc(1_000_000), pseudoRandom(300_000, 72), Buffer.alloc(500_000)])
      const store = path.join(t.path, `zeros4-${digest}.castr`)
      const { index } = await makeIndex(stream(data, 1 << 16), storeOf(store), { chunkSize: sizes, digest })
      const zero = [...index.chunks].filter(c => c.size === sizes.max && data.subarray(c.start, c.start + c.size).every(b => b === 0))
      assert.ok(zero.length >= 20, `${zero.length} chunks of zeros`)
      // the store lacks the chunk of zeros: a run that asked for it would fail
      rmSync(storeOf(store).chunkFile(zero[0]!.id))
      const stats = await extractBlob(index, out(`z4-${digest}.img`), { sources: [storeOf(store)] })
      assert.ok(readFileSync(out(`z4-${digest}.img`)).equals(data))
      assert.equal(stats.sources.zeros?.chunks, zero.length, JSON.stringify(stats.sources))
      assert.equal(stats.sources[`local:${store}`]!.chunks + (stats.sources.repeat?.chunks ?? 0), index.chunks.length - zero.length)
      // a seed whose bytes where the target has zeros are something else: the stretch is not
      // read (nothing there is wanted), and the seed gives every other chunk
      const seedData = Buffer.from(data)
      for (const c of zero) seedData.fill(0x5a, c.start, c.start + c.size)
      writeFileSync(out(`z4-${digest}-seed.img`), seedData)
      const seeded = await extractBlob(index, out(`z4s-${digest}.img`), { sources: [storeOf(store)], seedPaths: [out(`z4-${digest}-seed.img`)] })
      assert.ok(readFileSync(out(`z4s-${digest}.img`)).equals(data))
      assert.equal(seeded.sources.zeros?.chunks, zero.length, JSON.stringify(seeded.sources))
      assert.equal(seeded.sources[`seed:${out(`z4-${digest}-seed.img`)}`]?.bytes, data.byteLength - zero.length * sizes.max, JSON.stringify(seeded.sources))
      // resuming into a partial file, the bytes there are checked: the chunk of zeros is asked for
      writeFileSync(partialPath(out(`z4r-${digest}.img`)), Buffer.alloc(data.byteLength, 1))
      await assert.rejects(extractBlob(index, out(`z4r-${digest}.img`), { sources: [storeOf(store)] }), /missing/i)
    })
  }

  it('a resumed partial file with zeros written where the index has data gets the data', async () => {
    const data = Buffer.concat([Buffer.alloc(600_000), pseudoRandom(600_000, 41), Buffer.alloc(600_000)])
    const store = path.join(t.path, 'zeros2.castr')
    const { index } = await makeIndex(stream(data, 1 << 16), storeOf(store))
    writeFileSync(partialPath(out('z2.img')), Buffer.alloc(data.byteLength)) // an earlier run's partial file, all zeros
    const stats = await extractBlob(index, out('z2.img'), { sources: [storeOf(store)] })
    assert.ok(readFileSync(out('z2.img')).equals(data))
    assert.ok((stats.sources['in-place']?.chunks ?? 0) > 0, JSON.stringify(stats.sources)) // the zero chunks were right already
  })

  it('fills the cache with what it fetched; a second run reads the cache only', async () => {
    const cache = new LocalStore(path.join(t.path, 'cache.castr'))
    await extractBlob(index1, out('h.img'), { sources: [storeOf(full)], cache })
    assert.ok(readFileSync(out('h.img')).equals(v1))
    const stats = await extractBlob(index1, out('i.img'), { sources: [storeOf(lean)], cache })
    assert.ok(readFileSync(out('i.img')).equals(v1))
    assert.equal(stats.sources[`local:${lean}`], undefined)
    assert.ok((stats.sources[`cache:local:${path.join(t.path, 'cache.castr')}`]?.chunks ?? 0) > 0, JSON.stringify(stats.sources))
  })

  it('readIndex reads into a compact table; a truncated file is refused with its name and the offset where it ends', async () => {
    const file = out('v2.caibx')
    writeFileSync(file, encodeIndex(index2))
    const back = await readIndex(file)
    assert.deepEqual(back, index2)
    const cut = 64 + 40 * 5 + 17
    writeFileSync(file, encodeIndex(index2).subarray(0, cut))
    await assert.rejects(readIndex(file), (err: any) => err.code === 'ERR_INVALID_FORMAT' && err.offset === cut && err.message.includes(file) && err.message.includes(`at byte ${cut}`))
  })

  it('what goes to the worker threads is no bigger than it looks: chunk IDs have buffers of their own, the index table is shared', async () => {
    const pool = sharedPool()
    const posted: Array<{ op: string, path: string, view: ArrayBufferView }> = []
    const views = (x: unknown, at: string, op: string, seen = new Set<unknown>()): void => {
      if (x == null || typeof x !== 'object' || seen.has(x)) return
      seen.add(x)
      if (ArrayBuffer.isView(x)) { posted.push({ op, path: at, view: x }); return }
      for (const [k, v] of Object.entries(x)) views(v, `${at}.${k}`, op, seen)
    }
    const run = pool.run
    pool.run = async (job) => { views(job, 'job', job.op); return await run.call(pool, job) }
    try {
      writeFileSync(out('w-seed.img'), v1)
      await extractBlob(index2, out('w1.img'), { sources: [storeOf(lean)], seedPaths: [out('w-seed.img')] })
      writeFileSync(partialPath(out('w2.img')), v2.subarray(0, 1_000_000)) // resumed: 'check' and 'place' one at a time
      await extractBlob(index2, out('w2.img'), { sources: [storeOf(full)] })
      for await (const _ of assembleStream(index1, { sources: [storeOf(full)] }));
    } finally {
      pool.run = run
    }
    assert.ok(readFileSync(out('w1.img')).equals(v2) && readFileSync(out('w2.img')).equals(v2))
    const ops = new Set(posted.map(p => p.op))
    for (const op of ['seed-probe', 'place-batch', 'check', 'place', 'assemble-batch']) assert.ok(ops.has(op), `no ${op} job seen: ${[...ops].join(', ')}`)
    for (const { op, path: at, view } of posted) {
      if (/\.id$/.test(at)) assert.equal(view.buffer.byteLength, 32, `${op} ${at}: an ID with a buffer of ${view.buffer.byteLength} bytes`)
      // a structured clone copies a view's whole ArrayBuffer; shared memory is not copied
      if (!(view.buffer instanceof SharedArrayBuffer)) assert.equal(view.byteLength, view.buffer.byteLength, `${op} ${at}: a view of ${view.byteLength} bytes into ${view.buffer.byteLength}`)
    }
    assert.ok(posted.some(p => p.op === 'seed-probe' && p.path === 'job.table.ids' && p.view.buffer instanceof SharedArrayBuffer))
  })

  it('assembleStream yields the stream in order', async () => {
    const parts: Uint8Array[] = []
    for await (const p of assembleStream(index1, { sources: [storeOf(full)], concurrency: 4 })) parts.push(p)
    assert.ok(Buffer.concat(parts).equals(v1))
    await assert.rejects((async () => { for await (const _ of assembleStream(index2, { sources: [storeOf(lean)] })); })(), { code: 'ERR_CHUNK_MISSING' })
  })

  it('assembleStream from local stores comes in runs of chunks; a bad copy and a missing one come from the next store', async () => {
    const bad = path.join(t.path, 'bad2.castr')
    await makeIndex(stream(v2, 1 << 16), storeOf(bad), { chunkSize: sizes })
    const victim = index2.chunks.at(5)
    writeFileSync(storeOf(bad).chunkFile(victim.id), readFileSync(storeOf(bad).chunkFile(index2.chunks.at(6).id)))
    rmSync(storeOf(bad).chunkFile(index2.chunks.at(40).id))
    const stats = { bytes: 0, chunks: 0, seconds: 0, sources: {}, invalid: {} } as import('../../node/assemble.ts').ExtractStats
    const parts: Uint8Array[] = []
    for await (const p of assembleStream(index2, { sources: [storeOf(bad), storeOf(full)], stats })) parts.push(p)
    assert.ok(Buffer.concat(parts).equals(v2))
    assert.ok(parts.length < index2.chunks.length / 4, `${parts.length} pieces for ${index2.chunks.length} chunks: not batched`)
    assert.equal(stats.chunks, index2.chunks.length)
    assert.equal(stats.invalid[`local:${bad}`], 1)
    assert.equal(stats.sources[`local:${full}`]?.chunks, 2)
    assert.equal(stats.sources[`local:${bad}`]?.chunks, index2.chunks.length - 2)
  })
})
