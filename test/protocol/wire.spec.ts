import '../helpers/setup.ts'
import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { ChunkId } from '../../protocol/chunk-id.ts'
import { decodeMessage, encodeMessage, MAX_REQUEST_IDS, type WireMessage } from '../../protocol/wire.ts'

const id = (n: number): ChunkId => ChunkId.digest(Uint8Array.of(n))
const index = new Uint8Array(32).fill(7)

describe('wire protocol', () => {
  it('round-trips every message type', () => {
    const messages: WireMessage[] = [
      { type: 'request', digest: 'sha256', ids: [id(1), id(2)] },
      { type: 'chunk', digest: 'sha256', id: id(3), data: Uint8Array.of(1, 2, 3) },
      { type: 'missing', digest: 'sha512-256', id: id(4) },
      { type: 'busy', digest: 'sha256', id: id(4) },
      { type: 'want', index, digest: 'sha256', ids: [id(5)] },
      { type: 'have', index, digest: 'sha256', ids: [id(6), id(7)] },
      { type: 'have', digest: 'sha256', ids: [] },
      { type: 'fetching', index, digest: 'sha256', ids: [id(8)] },
      { type: 'leave', index }
    ]
    for (const m of messages) {
      const back = decodeMessage(encodeMessage(m))
      assert.equal(back.type, m.type)
      assert.equal(JSON.stringify(back, (_k, v) => v instanceof ChunkId ? v.toString() : v instanceof Uint8Array ? [...v] : v),
        JSON.stringify(m, (_k, v) => v instanceof ChunkId ? v.toString() : v instanceof Uint8Array ? [...v] : v))
    }
  })

  it('rejects hostile input with stable codes', () => {
    const good = encodeMessage({ type: 'request', digest: 'sha256', ids: [id(1)] })
    assert.throws(() => decodeMessage(new Uint8Array(0)), { code: 'ERR_INVALID_FORMAT' })
    assert.throws(() => decodeMessage(Uint8Array.of(0x7f)), { code: 'ERR_INVALID_FORMAT' })
    assert.throws(() => decodeMessage(good.subarray(0, good.length - 1)), { code: 'ERR_INVALID_FORMAT' })
    assert.throws(() => decodeMessage(Uint8Array.from([...good, 0])), { code: 'ERR_INVALID_FORMAT' })
    // a CID that is not a CID
    const bad = good.slice(); bad[5] = 0xff; bad[6] = 0xff
    assert.throws(() => decodeMessage(bad), { code: 'ERR_INVALID_FORMAT' })
    // too many ids claimed
    assert.throws(() => decodeMessage(Uint8Array.of(0x01, 0xff, 0xff)), { code: 'ERR_MESSAGE_TOO_LARGE' })
    assert.throws(() => encodeMessage({ type: 'request', digest: 'sha256', ids: Array.from({ length: MAX_REQUEST_IDS + 1 }, (_, i) => id(i % 250)) }), { code: 'ERR_MESSAGE_TOO_LARGE' })
    assert.throws(() => decodeMessage(new Uint8Array(100), 50), { code: 'ERR_MESSAGE_TOO_LARGE' })
    // empty request, chunk without data, bad index flag
    assert.throws(() => decodeMessage(Uint8Array.of(0x01, 0, 0)), { code: 'ERR_INVALID_FORMAT' })
    assert.throws(() => decodeMessage(encodeMessage({ type: 'missing', digest: 'sha256', id: id(1) }).map((b, i) => i === 0 ? 0x02 : b)), { code: 'ERR_INVALID_FORMAT' })
    assert.throws(() => decodeMessage(Uint8Array.of(0x11, 2, 0, 0)), { code: 'ERR_INVALID_FORMAT' })
    // CIDs of a non-raw codec are refused
    const dagPb = encodeMessage({ type: 'missing', digest: 'sha256', id: id(1) })
    dagPb[4] = 0x70
    assert.throws(() => decodeMessage(dagPb), { code: 'ERR_INVALID_FORMAT' })
  })

  it('survives random garbage without throwing anything but format errors', () => {
    let seed = 1
    const rnd = (): number => { seed = (seed * 1103515245 + 12345) >>> 0; return seed }
    for (let n = 0; n < 2000; n++) {
      const b = new Uint8Array(rnd() % 80)
      for (let i = 0; i < b.length; i++) b[i] = rnd() & 0xff
      if (b.length > 0) b[0] = [0x01, 0x02, 0x03, 0x04, 0x10, 0x11, 0x12, 0x13][rnd() % 8]!
      try { decodeMessage(b) } catch (err: any) { assert.ok(err.code === 'ERR_INVALID_FORMAT' || err.code === 'ERR_MESSAGE_TOO_LARGE', `${err.code}: ${err.message}`) }
    }
  })
})
