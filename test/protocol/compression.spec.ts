import '../helpers/setup.ts'
import assert from 'node:assert/strict'
import { readdirSync, readFileSync } from 'node:fs'
import { gzipSync } from 'node:zlib'
import { describe, it } from 'node:test'
import {
  compress, compressSync, COMPRESSIONS, decompress, decompressSync, detectCompression, parseCompression, type Compression
} from '../../protocol/compression.ts'
import { ChunkId } from '../../protocol/chunk-id.ts'
import { GZIP_MAGIC, XZ_MAGIC, ZSTD_MAGIC } from '../../protocol/constants.ts'
import { pseudoRandom } from '../helpers/fixtures.ts'

const MAGIC: Record<Compression, Uint8Array> = { zstd: ZSTD_MAGIC, xz: XZ_MAGIC, gzip: GZIP_MAGIC }
const text = Buffer.from('the quick brown fox jumps over the lazy dog\n'.repeat(1500))
const SAMPLES: Record<string, Uint8Array> = {
  text,
  random: pseudoRandom(70000, 3),
  mixed: Buffer.concat([text.subarray(0, 20000), pseudoRandom(20000, 4), Buffer.alloc(20000)]),
  'one byte': Uint8Array.of(42)
}

function concat (...parts: Uint8Array[]): Uint8Array {
  return new Uint8Array(Buffer.concat(parts))
}

describe('chunk compression', () => {
  for (const c of COMPRESSIONS) {
    it(`${c}: round-trips and starts with its magic`, async () => {
      for (const [name, data] of Object.entries(SAMPLES)) {
        const packed = await compress(data, c)
        assert.deepEqual(Buffer.from(packed.subarray(0, MAGIC[c].byteLength)), Buffer.from(MAGIC[c]), name)
        assert.equal(detectCompression(packed), c)
        assert.deepEqual(Buffer.from(await decompress(packed)), Buffer.from(data), `${c} ${name}`)
        assert.deepEqual(Buffer.from(await decompress(packed, { maxSize: data.byteLength })), Buffer.from(data), `${c} ${name} at maxSize`)
        if (name === 'text') assert.ok(packed.byteLength < data.byteLength / 10, `${c} does not compress text`)
      }
    })

    it(`${c}: a truncated chunk is refused`, async () => {
      const packed = await compress(SAMPLES.mixed!, c)
      for (const cut of [1, 4, Math.floor(packed.byteLength / 2), packed.byteLength - 1]) {
        await assert.rejects(decompress(packed.subarray(0, packed.byteLength - cut)), { code: 'ERR_INVALID_FORMAT' }, `${c} minus ${cut}`)
      }
    })

    it(`${c}: trailing noise after the stream is refused`, async () => {
      const packed = await compress(SAMPLES.text!, c)
      await assert.rejects(decompress(concat(packed, Uint8Array.of(1, 2, 3))), { code: 'ERR_INVALID_FORMAT' }, `${c} + noise`)
      await assert.rejects(decompress(concat(packed, new Uint8Array(64))), { code: 'ERR_INVALID_FORMAT' }, `${c} + zeros`)
    })

    it(`${c}: a second stream after the first is refused (casync decodes one stream per chunk)`, async () => {
      const packed = await compress(SAMPLES.text!, c)
      await assert.rejects(decompress(concat(packed, packed)), { code: 'ERR_INVALID_FORMAT' })
    })

    it(`${c}: a chunk larger than maxSize is refused`, async () => {
      const packed = await compress(SAMPLES.text!, c)
      await assert.rejects(decompress(packed, { maxSize: SAMPLES.text!.byteLength - 1 }), { code: 'ERR_INVALID_FORMAT' })
    })

    it(`${c}: a flipped byte in the body is refused or fails verification`, async () => {
      const data = SAMPLES.mixed!
      const id = ChunkId.digest(data)
      const packed = Uint8Array.from(await compress(data, c))
      packed[Math.floor(packed.byteLength / 2)]! ^= 0x40
      let ok = false
      try {
        ok = ChunkId.digest(await decompress(packed)).equals(id)
      } catch (err: any) {
        assert.equal(err.code, 'ERR_INVALID_FORMAT')
      }
      assert.equal(ok, false)
    })
  }

  it('detects nothing in data without a known magic, and refuses to decode it', async () => {
    assert.equal(detectCompression(Uint8Array.of(1, 2, 3, 4, 5, 6)), null)
    assert.equal(detectCompression(new Uint8Array(0)), null)
    assert.equal(detectCompression(Uint8Array.of(0x28, 0xb5, 0x2f)), null)
    await assert.rejects(decompress(Uint8Array.of(1, 2, 3, 4, 5, 6)), { code: 'ERR_INVALID_FORMAT' })
    await assert.rejects(decompress(new Uint8Array(0)), { code: 'ERR_INVALID_FORMAT' })
  })

  it('reads gzip written by another encoder (level 9), and casync-made zstd and gzip chunks', async () => {
    assert.deepEqual(Buffer.from(await decompress(gzipSync(text, { level: 9 }))), text)
    for (const [store, magic] of [['blob1.castr', ZSTD_MAGIC], ['blob1-sha256-gzip.castr', GZIP_MAGIC]] as const) {
      const root = new URL(`../fixtures/${store}/`, import.meta.url)
      let n = 0
      for (const dir of readdirSync(root)) {
        for (const file of readdirSync(new URL(`${dir}/`, root))) {
          const packed = new Uint8Array(readFileSync(new URL(`${dir}/${file}`, root)))
          assert.deepEqual(Buffer.from(packed.subarray(0, magic.byteLength)), Buffer.from(magic))
          const plain = await decompress(packed)
          const digest = store.includes('sha256') ? 'sha256' : 'sha512-256'
          assert.equal(ChunkId.digest(plain, digest).toString(), file.replace('.cacnk', ''))
          n++
        }
      }
      assert.equal(n, 7)
    }
  })

  it('sync variants: zstd and gzip only', () => {
    for (const c of ['zstd', 'gzip'] as const) assert.deepEqual(Buffer.from(decompressSync(compressSync(text, c))), text)
    assert.throws(() => compressSync(text, 'xz'), { code: 'ERR_INVALID_FORMAT' })
  })

  it('parses compression names', () => {
    assert.equal(parseCompression('default'), 'zstd')
    for (const c of COMPRESSIONS) assert.equal(parseCompression(c), c)
    assert.throws(() => parseCompression('lz4'), { code: 'ERR_INVALID_FORMAT' })
  })

  it('zstd with reuseOutput compresses into one buffer, call after call; without it each result is its own', () => {
    const a = pseudoRandom(70_000, 11)
    const b = Buffer.alloc(50_000, 7)
    const ra = compressSync(a, 'zstd', { reuseOutput: true })
    assert.deepEqual(decompressSync(ra), a)
    const raBytes = Uint8Array.from(ra)
    const rb = compressSync(b, 'zstd', { reuseOutput: true })
    assert.deepEqual(decompressSync(rb), b)
    assert.equal(ra.buffer, rb.buffer, 'the same output buffer')
    assert.notDeepEqual(Uint8Array.from(ra), raBytes, 'so the first result is overwritten: it must be used before the next call')
    // a larger input grows the buffer; results still decompress to their input
    const c = pseudoRandom(300_000, 12)
    assert.deepEqual(decompressSync(compressSync(c, 'zstd', { reuseOutput: true }), { maxSize: c.length }), c)
    const own1 = compressSync(a, 'zstd')
    const own2 = compressSync(b, 'zstd')
    assert.notEqual(own1.buffer, own2.buffer)
    assert.deepEqual(decompressSync(own1), a)
    assert.deepEqual(Uint8Array.from(own1), raBytes, 'the same bytes either way')
  })
})
