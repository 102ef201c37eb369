import '../helpers/setup.ts'
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { describe, it } from 'node:test'
import { ChunkId } from '../../protocol/chunk-id.ts'
import { ChunkTable } from '../../protocol/chunk-table.ts'
import { CA_FORMAT_DEFAULT_BLOB_FLAGS } from '../../protocol/constants.ts'
import { InvalidFormatError } from '../../protocol/errors.ts'
import { decodeIndex, decodeIndexStream, encodeIndex, type Index } from '../../protocol/index-file.ts'
import { pieces } from '../helpers/fixtures.ts'

const SPEC = JSON.parse(readFileSync(new URL('../../../shared/spec/casync-constants.json', import.meta.url), 'utf8'))
const fixture = (name: string): Uint8Array => new Uint8Array(readFileSync(new URL(`../fixtures/${name}`, import.meta.url)))
const COMMITTED = ['blob1.caibx', 'blob1-sha256.caibx', 'empty.caibx', 'rand8m.caibx', 'rand8m-sha256.caibx', 'rand8m-16384.caibx',
  'rand8m-262144.caibx', 'rand8m-100000.caibx', 'rand8m-60000-65536-262144.caibx', 'zeros4m.caibx']

async function collect<T> (it: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = []
  for await (const x of it) out.push(x)
  return out
}

/** Asserts that decoding `bytes` fails with InvalidFormatError carrying a numeric offset (and returns it). */
function rejects (bytes: Uint8Array, what: string, expectedOffset?: number): InvalidFormatError {
  let caught: unknown
  try { decodeIndex(bytes) } catch (err) { caught = err }
  assert.ok(caught instanceof InvalidFormatError, `${what}: expected InvalidFormatError, got ${String(caught)}`)
  assert.equal(caught.code, 'ERR_INVALID_FORMAT')
  assert.equal(typeof caught.offset, 'number', `${what}: no offset in "${caught.message}"`)
  if (expectedOffset != null) assert.equal(caught.offset, expectedOffset, `${what}: ${caught.message}`)
  return caught
}

function setU64 (bytes: Uint8Array, at: number, value: bigint): Uint8Array {
  const copy = Uint8Array.from(bytes)
  new DataView(copy.buffer).setBigUint64(at, value, true)
  return copy
}

describe('index codec: casync-made fixtures', () => {
  for (const name of COMMITTED) {
    it(`${name}: decode then encode gives casync's bytes`, async () => {
      const bytes = fixture(name)
      const index = decodeIndex(bytes)
      assert.deepEqual(encodeIndex(index), bytes)
      assert.equal(index.chunks.length, (bytes.byteLength - 104) / 40)
      // streamed in odd-sized pieces, the same chunks come out
      const streamed = await collect(decodeIndexStream(pieces(bytes, 7)))
      assert.deepEqual(streamed.map(c => [c.id.toString(), c.start, c.size]), [...index.chunks].map(c => [c.id.toString(), c.start, c.size]))
    })
  }

  it('blob1.caibx describes blob1: sizes sum to its length and IDs are the SHA-512/256 of its pieces', () => {
    const blob = fixture('blob1')
    const index = decodeIndex(fixture('blob1.caibx'))
    assert.equal(index.featureFlags, CA_FORMAT_DEFAULT_BLOB_FLAGS)
    assert.deepEqual([index.chunkSizeMin, index.chunkSizeAvg, index.chunkSizeMax], [4096, 16384, 65536])
    let at = 0
    for (const c of index.chunks) {
      assert.equal(c.start, at)
      assert.ok(c.id.equals(ChunkId.digest(blob.subarray(c.start, c.start + c.size), 'sha512-256')))
      at += c.size
    }
    assert.equal(at, blob.byteLength)
    const sha = decodeIndex(fixture('blob1-sha256.caibx'))
    assert.equal(sha.featureFlags, 0x9000000000000000n)
    assert.ok(sha.chunks.at(0).id.equals(ChunkId.digest(blob.subarray(0, sha.chunks.at(0).size), 'sha256')))
  })

  it('encodes the spec\'s empty-index vector', () => {
    const empty: Index = { featureFlags: CA_FORMAT_DEFAULT_BLOB_FLAGS, chunkSizeMin: 16384, chunkSizeAvg: 65536, chunkSizeMax: 262144, chunks: new ChunkTable() }
    assert.equal(Buffer.from(encodeIndex(empty)).toString('hex'), SPEC.test_vectors.empty_caibx_hex)
    assert.deepEqual(decodeIndex(Buffer.from(SPEC.test_vectors.empty_caibx_hex, 'hex')), empty)
  })

  it('refuses to encode chunks that are not contiguous', () => {
    const id = ChunkId.digest(new Uint8Array(1))
    assert.throws(() => encodeIndex({ featureFlags: 0n, chunkSizeMin: 1, chunkSizeAvg: 4, chunkSizeMax: 16, chunks: [{ id, start: 0, size: 4 }, { id, start: 5, size: 4 }] }), InvalidFormatError)
  })
})

describe('index codec: corrupt input', () => {
  const good = fixture('blob1.caibx') // 7 chunks: 64 + 7 * 40 + 40 = 384 bytes
  const tail = good.byteLength - 40

  it('a truncation anywhere is refused with an offset', async () => {
    for (let n = 0; n < good.byteLength; n++) {
      const err = rejects(good.subarray(0, n), `truncated to ${n}`)
      assert.ok(err.offset! <= n, `offset ${err.offset} beyond the ${n} bytes read`)
      assert.match(err.message, /truncated/, `truncated to ${n}: ${err.message}`)
      await assert.rejects(collect(decodeIndexStream(pieces(good.subarray(0, n), 13))), InvalidFormatError)
    }
  })

  it('bad INDEX magic or size: offset 0', () => {
    rejects(setU64(good, 8, 0x1234n), 'bad magic', 0)
    rejects(setU64(good, 0, 64n), 'bad header size', 0)
  })

  it('unknown feature flags: offset 16', () => {
    rejects(setU64(good, 16, 0x0000000400000000n), 'unknown flag', 16)
  })

  it('chunk sizes out of range or unordered: their offset', () => {
    rejects(setU64(good, 24, 0n), 'min 0', 24)
    rejects(setU64(good, 40, 256n * 1024n * 1024n), 'max 256M', 40)
    rejects(setU64(good, 24, 20000n), 'min > avg', 24)
  })

  it('bad TABLE header: offset 48', () => {
    rejects(setU64(good, 48, 1000n), 'table size', 48)
    rejects(setU64(good, 56, 0n), 'table magic', 48)
  })

  it('non-increasing end offsets: the item\'s offset', () => {
    const end0 = new DataView(good.buffer, good.byteOffset).getBigUint64(64, true)
    rejects(setU64(good, 64 + 40, end0), 'equal ends', 64 + 40)
    rejects(setU64(good, 64 + 80, end0 - 1n), 'decreasing ends', 64 + 80)
  })

  it('a chunk larger than the index\'s max: the item\'s offset', () => {
    rejects(setU64(good, 64, 65537n), 'chunk > max', 64)
  })

  it('a bad tail: the tail\'s offset', () => {
    rejects(setU64(good, tail + 32, 0x4b4f050e5549ecd2n), 'tail marker', tail)
    rejects(setU64(good, tail + 24, 16n + 40n * 6n + 40n), 'tail table size', tail)
    rejects(setU64(good, tail + 16, 49n), 'tail index offset', tail)
  })

  it('bytes after the tail are refused', () => {
    for (const extra of [1, 8, 40, 100]) {
      const longer = new Uint8Array(good.byteLength + extra)
      longer.set(good)
      longer.fill(0x5a, good.byteLength)
      rejects(longer, `${extra} trailing bytes`, good.byteLength)
    }
  })

  it('the streaming decoder refuses the same input, trailing bytes in a later piece included', async () => {
    await assert.rejects(collect(decodeIndexStream([good, Uint8Array.of(0)])), (err: any) => err.code === 'ERR_INVALID_FORMAT' && err.offset === good.byteLength)
    await assert.rejects(collect(decodeIndexStream(pieces(setU64(good, 64 + 40, 1n), 5))), (err: any) => err.offset === 64 + 40)
  })
})
