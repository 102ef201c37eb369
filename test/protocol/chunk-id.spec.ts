import '../helpers/setup.ts'
import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import fc from 'fast-check'
import { CID } from 'multiformats/cid'
import * as Digest from 'multiformats/hashes/digest'
import {
  ChunkId, chunkPath, digestFlag, digestFromFlags, parseDigest, verifyChunk, createStreamDigest
} from '../../protocol/chunk-id.ts'
import { CA_FORMAT_DEFAULT_BLOB_FLAGS } from '../../protocol/constants.ts'
import { chunkCid, chunkIdFromCid } from '../../protocol/chunk-cid.ts'

const EMPTY_SHA256 = 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855'
const EMPTY_SHA512_256 = 'c672b8d1ef56ed28ab87c3622c5114069bdd3ad7b8f9737498d0c01ecef0967a' // spec test vector

describe('ChunkId', () => {
  it('digests with SHA-256 by default and SHA-512/256 on request', () => {
    assert.equal(ChunkId.digest(new Uint8Array(0)).toString(), EMPTY_SHA256)
    assert.equal(ChunkId.digest(new Uint8Array(0), 'sha256').toString(), EMPTY_SHA256)
    assert.equal(ChunkId.digest(new Uint8Array(0), 'sha512-256').toString(), EMPTY_SHA512_256)
  })

  it('round-trips through hex (property), lower-casing upper-case input', () => {
    fc.assert(fc.property(fc.uint8Array({ minLength: 32, maxLength: 32 }), (bytes) => {
      const id = new ChunkId(bytes)
      const hex = id.toString()
      assert.match(hex, /^[0-9a-f]{64}$/)
      assert.ok(ChunkId.parse(hex).equals(id))
      assert.ok(ChunkId.parse(hex.toUpperCase()).equals(id))
      assert.equal(ChunkId.parse(hex.toUpperCase()).toString(), hex)
    }))
  })

  it('rejects malformed hex and wrong lengths', () => {
    for (const bad of ['', 'abc', EMPTY_SHA256.slice(1), `${EMPTY_SHA256}00`, `g${EMPTY_SHA256.slice(1)}`, ` ${EMPTY_SHA256.slice(1)}`]) {
      assert.throws(() => ChunkId.parse(bad), { code: 'ERR_INVALID_FORMAT' }, bad)
    }
    assert.throws(() => new ChunkId(new Uint8Array(31)), { code: 'ERR_INVALID_FORMAT' })
    assert.throws(() => new ChunkId(new Uint8Array(64)), { code: 'ERR_INVALID_FORMAT' })
  })

  it('equals() compares every byte', () => {
    const a = ChunkId.parse(EMPTY_SHA256)
    const bytes = Uint8Array.from(a.bytes)
    bytes[31]! ^= 1
    assert.ok(!a.equals(new ChunkId(bytes)))
    assert.ok(a.equals(ChunkId.parse(EMPTY_SHA256)))
  })
})

describe('ChunkId as CID', () => {
  it('is a CIDv1 with the raw codec and a sha2-256 multihash', () => {
    const id = ChunkId.digest(new TextEncoder().encode('hello'))
    const cid = chunkCid(id)
    assert.equal(cid.version, 1)
    assert.equal(cid.code, 0x55)
    assert.equal(cid.multihash.code, 0x12)
    assert.deepEqual(cid.multihash.digest, id.bytes)
    // the well-known CID of the raw block "hello" (sha2-256)
    assert.equal(cid.toString(), 'bafkreibm6jg3ux5qumhcn2b3flc3tyu6dmlb4xa7u5bf44yegnrjhc4yeq')
    const back = chunkIdFromCid(CID.parse(cid.toString()))
    assert.ok(back.id.equals(id))
    assert.equal(back.algorithm, 'sha256')
  })

  it('uses the sha2-512-256 multihash (0x1014) for SHA-512/256 IDs and round-trips (property)', () => {
    fc.assert(fc.property(fc.uint8Array({ minLength: 32, maxLength: 32 }), fc.constantFrom('sha256' as const, 'sha512-256' as const), (bytes, algorithm) => {
      const id = new ChunkId(bytes)
      const cid = chunkCid(id, algorithm)
      assert.equal(cid.multihash.code, algorithm === 'sha256' ? 0x12 : 0x1014)
      const back = chunkIdFromCid(CID.parse(cid.toString()))
      assert.ok(back.id.equals(id))
      assert.equal(back.algorithm, algorithm)
    }))
  })

  it('refuses CIDs with another codec or hash', () => {
    const id = ChunkId.digest(new Uint8Array(1))
    assert.throws(() => chunkIdFromCid(CID.createV1(0x70, Digest.create(0x12, id.bytes))), { code: 'ERR_INVALID_FORMAT' })
    assert.throws(() => chunkIdFromCid(CID.createV1(0x55, Digest.create(0x13, new Uint8Array(64)))), { code: 'ERR_INVALID_FORMAT' })
    assert.throws(() => chunkIdFromCid(CID.createV1(0x55, Digest.create(0x12, new Uint8Array(20)))), { code: 'ERR_INVALID_FORMAT' })
  })
})

describe('chunkPath, digests and flags', () => {
  it('chunkPath is <4hex>/<id>.cacnk (casync\'s layout)', () => {
    const id = ChunkId.parse('06b727fd' + '0'.repeat(56))
    assert.equal(chunkPath(id), `06b7/06b727fd${'0'.repeat(56)}.cacnk`)
    assert.equal(chunkPath(id, ''), `06b7/06b727fd${'0'.repeat(56)}`)
  })

  it('takes the digest from the SHA512_256 flag bit', () => {
    assert.equal(digestFromFlags(CA_FORMAT_DEFAULT_BLOB_FLAGS), 'sha512-256')
    assert.equal(digestFromFlags(0x9000000000000000n), 'sha256')
    assert.equal(digestFlag('sha512-256'), 0x2000000000000000n)
    assert.equal(digestFlag('sha256'), 0n)
  })

  it('parses digest names as casync (default = sha512-256)', () => {
    assert.equal(parseDigest('sha256'), 'sha256')
    assert.equal(parseDigest('sha512-256'), 'sha512-256')
    assert.equal(parseDigest('default'), 'sha512-256')
    assert.throws(() => parseDigest('md5'), { code: 'ERR_INVALID_FORMAT' })
  })

  it('verifyChunk returns good data and rejects the rest with ERR_CHUNK_INVALID', () => {
    const data = new TextEncoder().encode('chunk')
    const id = ChunkId.digest(data, 'sha512-256')
    assert.equal(verifyChunk(id, data, 'sha512-256'), data)
    assert.throws(() => verifyChunk(id, data, 'sha256'), { code: 'ERR_CHUNK_INVALID' })
    assert.throws(() => verifyChunk(id, new TextEncoder().encode('chunK'), 'sha512-256'), (err: any) => err.code === 'ERR_CHUNK_INVALID' && err.id.equals(id) && err.actual != null)
  })

  it('the stream digest is incremental', () => {
    const d = createStreamDigest('sha512-256')
    d.update(new Uint8Array(0))
    assert.equal(d.digest(), EMPTY_SHA512_256)
    const a = createStreamDigest(); a.update(Uint8Array.of(1, 2)); a.update(Uint8Array.of(3))
    const b = createStreamDigest(); b.update(Uint8Array.of(1, 2, 3))
    assert.equal(a.digest(), b.digest())
  })
})
