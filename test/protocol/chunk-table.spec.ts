import '../helpers/setup.ts'
import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { standalone } from '../../protocol/bytes.ts'
import { ChunkId } from '../../protocol/chunk-id.ts'
import { ChunkTable } from '../../protocol/chunk-table.ts'
import { InvalidFormatError } from '../../protocol/errors.ts'
import { decodeIndex, decodeIndexStream, encodeIndex, IndexDecoder, type IndexChunk } from '../../protocol/index-file.ts'
import { pieces, specRandom } from '../helpers/fixtures.ts'

const header = { featureFlags: 0n, chunkSizeMin: 1024, chunkSizeAvg: 4096, chunkSizeMax: 1 << 20 }

/** n chunks with IDs from the spec's generator, every seventh repeating an earlier one; sizes up to 1 MiB, ends past 2^32 */
function synthetic (n: number): IndexChunk[] {
  const ids = specRandom(n * 32, 'chunk-table')
  const chunks: IndexChunk[] = []
  let start = 0
  for (let i = 0; i < n; i++) {
    const from = i % 7 === 6 ? ids.readUInt32LE(i * 32 + 4) % i : i
    const size = chunks[from]?.size ?? 1 + (ids.readUInt32LE(i * 32) % (1 << 20))
    chunks.push({ id: new ChunkId(Uint8Array.from(ids.subarray(from * 32, from * 32 + 32))), start, size })
    start += size
  }
  return chunks
}

function sameChunks (table: ChunkTable, chunks: IndexChunk[]): void {
  assert.equal(table.length, chunks.length)
  for (let i = 0; i < chunks.length; i++) {
    const c = chunks[i]!
    assert.equal(table.start(i), c.start, `start of ${i}`)
    assert.equal(table.size(i), c.size, `size of ${i}`)
    assert.equal(table.end(i), c.start + c.size, `end of ${i}`)
    assert.ok(table.id(i).equals(c.id), `ID of ${i}`)
    assert.equal(table.hex(i), c.id.toString())
  }
  assert.equal(table.streamSize, chunks.length === 0 ? 0 : chunks[chunks.length - 1]!.start + chunks[chunks.length - 1]!.size)
}

describe('ChunkTable', () => {
  const chunks = synthetic(10000)
  const bytes = encodeIndex({ ...header, chunks })

  it('an index streamed into the table in odd pieces gives back every chunk, and the same bytes', async () => {
    assert.ok(chunks[chunks.length - 1]!.start > 2 ** 32, 'end offsets need more than 32 bits')
    for (const size of [7, 40, 1000, 1 << 20]) {
      const decoder = new IndexDecoder()
      for (const piece of pieces(bytes, size)) decoder.append(piece)
      const index = decoder.index()
      sameChunks(index.chunks, chunks)
      assert.deepEqual(encodeIndex(index), bytes)
    }
    // the buffered decoder (room set aside from the file's size) and the object stream agree
    const buffered = decodeIndex(bytes)
    sameChunks(buffered.chunks, chunks)
    const streamed: IndexChunk[] = []
    for await (const c of decodeIndexStream(pieces(bytes, 13))) streamed.push(c)
    assert.deepEqual(streamed.map(c => [c.id.toString(), c.start, c.size]), chunks.map(c => [c.id.toString(), c.start, c.size]))
  })

  it('grows as chunks come, and trims to them: tables of the same chunks are deepEqual however they were made', () => {
    const grown = new IndexDecoder()
    grown.append(bytes)
    const sized = new IndexDecoder({ size: bytes.byteLength })
    sized.append(bytes)
    assert.deepEqual(grown.index(), sized.index())
    const table = ChunkTable.from(chunks)
    table.find(chunks[0]!.id) // a lookup built on one of them changes nothing
    assert.deepEqual(table, decodeIndex(bytes).chunks)
    assert.deepEqual(ChunkTable.from([]), new ChunkTable().trim())
  })

  it('a truncated file is refused with the offset where it ends, as before', () => {
    for (const n of [0, 50, 64, 64 + 40 * 100 + 17, bytes.byteLength - 1]) {
      const decoder = new IndexDecoder({ size: bytes.byteLength })
      decoder.append(bytes.subarray(0, n))
      assert.throws(() => decoder.index(), (err: any) => err instanceof InvalidFormatError && err.offset === n && /truncated/.test(err.message))
    }
  })

  it('chunk objects, and their IDs, are made on demand with bytes of their own', () => {
    const table = decodeIndex(bytes).chunks
    for (const id of [table.id(3), table.at(3).id, table.slice(2, 5)[1]!.id, [...table][3]!.id]) {
      assert.ok(id.equals(chunks[3]!.id))
      assert.equal(id.bytes.buffer.byteLength, 32, 'an ID posted to a worker must not take the table with it')
    }
    assert.equal(table.idBytes(3).buffer.byteLength, table.length * 32, 'idBytes() is a view into the table')
    const n = table.length
    assert.deepEqual(table.slice(n - 2, 10).length, 0)
    assert.equal(table.slice(n - 2).length, 2)
    assert.throws(() => table.at(n), RangeError)
    assert.throws(() => table.size(-1), RangeError)
  })

  it('standalone(): an ID that is a view into a larger buffer is copied before it is posted', () => {
    const table = decodeIndex(bytes).chunks
    const view = table.idBytes(7)
    const own = standalone(view)
    assert.notEqual(own, view)
    assert.equal(own.buffer.byteLength, 32)
    assert.deepEqual(own, Uint8Array.from(view))
    const id = table.id(7).bytes
    assert.equal(standalone(id), id, 'a buffer of its own is posted as it is')
  })

  it('find(): the first position holding an ID, then nextSame() through the others; -1 for an ID it lacks', () => {
    const table = ChunkTable.from(chunks)
    const positions = new Map<string, number[]>()
    chunks.forEach((c, i) => { const k = c.id.toString(); positions.set(k, [...(positions.get(k) ?? []), i]) })
    for (const [hex, at] of positions) {
      const first = table.find(ChunkId.parse(hex))
      assert.equal(first, at[0])
      const chain: number[] = []
      for (let i = first; i >= 0; i = table.nextSame(i)) chain.push(i)
      assert.deepEqual(chain, at)
      // an ID inside a larger buffer, at an offset
      const padded = new Uint8Array(45)
      padded.set(ChunkId.parse(hex).bytes, 13)
      assert.equal(table.find(padded, 13), at[0])
    }
    assert.equal(table.find(ChunkId.digest(Uint8Array.of(1, 2, 3))), -1)
    // a chunk pushed after a search is found too (the lookup is rebuilt)
    const extra = ChunkId.digest(Uint8Array.of(4, 5, 6))
    table.push(10, extra.bytes)
    assert.equal(table.find(extra), chunks.length)
    assert.equal(new ChunkTable().find(extra), -1)
  })

  it('share(): a worker sees the same table and lookup in shared memory, not a copy', () => {
    const table = ChunkTable.from(chunks)
    const shared = structuredClone(table.share())
    for (const view of [shared.ids, shared.offsets, shared.lookup.slots, shared.lookup.next]) assert.ok(view.buffer instanceof SharedArrayBuffer)
    const theirs = ChunkTable.fromShared(shared)
    sameChunks(theirs, chunks)
    for (let i = 0; i < chunks.length; i += 97) assert.equal(theirs.find(theirs.idBytes(i)), table.find(chunks[i]!.id))
  })

  it('from() refuses chunks that are not back to back', () => {
    const id = ChunkId.digest(Uint8Array.of(1))
    assert.throws(() => ChunkTable.from([{ id, start: 0, size: 4 }, { id, start: 5, size: 4 }]), (err: any) => err instanceof InvalidFormatError && /not contiguous at offset 5/.test(err.message))
    assert.throws(() => ChunkTable.from([{ id, start: 1, size: 4 }]), InvalidFormatError)
  })
})
