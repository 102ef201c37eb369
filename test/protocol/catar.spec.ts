import '../helpers/setup.ts'
import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { ArchiveDecoder, decodeArchive } from '../../protocol/catar/decoder.ts'
import { ArchiveEncoder, encodeArchive } from '../../protocol/catar/encoder.ts'
import { isExcluded, parseExcludeFile, fnmatch } from '../../protocol/catar/exclude.ts'
import { archiveFeatureFlags, CA_FORMAT_DEFAULT, normalizeFeatureFlags, withFlag } from '../../protocol/catar/feature-flags.ts'
import { goodbyeOrder } from '../../protocol/catar/goodbye.ts'
import { lsMode, mtreeEscape } from '../../protocol/catar/listing.ts'
import { siphash24 } from '../../protocol/catar/siphash.ts'
import type { ArchiveEvent, ArchiveNode } from '../../protocol/catar/types.ts'

const te = new TextEncoder()
const FLAGS = CA_FORMAT_DEFAULT

/** The spec's §11.3 `tree/`: file.txt, link -> file.txt, sub/inner.bin (3000 bytes). */
function specTree (): ArchiveEvent[] {
  const f = (name: string, size: number, mtime: bigint): ArchiveNode => ({ name: te.encode(name), mode: 0o100644, flags: 0n, uid: 0, gid: 0, mtime, size })
  return [
    { type: 'node', node: { mode: 0o40755, flags: 0n, uid: 0, gid: 0, mtime: 1700000004123456793n } },
    { type: 'node', node: f('file.txt', 6, 1700000000123456789n) }, { type: 'payload', data: te.encode('hello\n') }, { type: 'end' },
    { type: 'node', node: { name: te.encode('link'), mode: 0o120777, flags: 0n, uid: 0, gid: 0, mtime: 1700000002123456791n, target: te.encode('file.txt') } }, { type: 'end' },
    { type: 'node', node: { name: te.encode('sub'), mode: 0o40755, flags: 0n, uid: 0, gid: 0, mtime: 1700000003123456792n } },
    { type: 'node', node: f('inner.bin', 3000, 1700000001123456790n) }, { type: 'payload', data: new Uint8Array(3000).fill(7) }, { type: 'end' },
    { type: 'end' },
    { type: 'end' }
  ]
}

async function bytes (source: AsyncIterable<Uint8Array>): Promise<Buffer> {
  const parts: Uint8Array[] = []
  for await (const b of source) parts.push(b)
  return Buffer.concat(parts)
}

function encodeSync (events: ArchiveEvent[], flags = FLAGS): Uint8Array {
  const e = new ArchiveEncoder({ featureFlags: flags })
  for (const ev of events) e.push(ev)
  return Buffer.concat(e.take())
}

async function encode (events: ArchiveEvent[], flags = FLAGS): Promise<Buffer> {
  return await bytes(encodeArchive(events, { featureFlags: flags }))
}

function decodeAll (data: Uint8Array, pieces = 1): ArchiveEvent[] {
  const d = new ArchiveDecoder()
  const out: ArchiveEvent[] = []
  const step = Math.ceil(data.byteLength / pieces)
  for (let o = 0; o < data.byteLength; o += step) out.push(...d.push(data.subarray(o, o + step)))
  d.end()
  return out
}

describe('catar: SipHash-2-4 and GOODBYE order', () => {
  it('hashes names with casync\'s key (spec vectors) and the reference key', () => {
    assert.equal(siphash24(te.encode('file.txt')), 0x7a8acb196abcbaa2n)
    assert.equal(siphash24(te.encode('link')), 0xf922bf6d7bb3dfafn)
    assert.equal(siphash24(te.encode('sub')), 0xebfe935698c3deecn)
    const key = Uint8Array.from({ length: 16 }, (_, i) => i)
    assert.equal(siphash24(new Uint8Array(0), key), 0x726fdb47dd0e0e31n)
    assert.equal(siphash24(Uint8Array.from({ length: 15 }, (_, i) => i), key), 0xa129ca6149be45e5n)
  })

  it('permutes sorted items into casync\'s search-tree layout', () => {
    assert.deepEqual(goodbyeOrder(['file.txt', 'sub', 'link']), ['sub', 'file.txt', 'link'])
    assert.deepEqual(goodbyeOrder([1, 2, 3, 4, 5, 6, 7]), [4, 2, 6, 1, 3, 5, 7])
    assert.deepEqual(goodbyeOrder([]), [])
    for (let n = 1; n < 60; n++) {
      const out = goodbyeOrder(Array.from({ length: n }, (_, i) => i))
      // a binary search tree in Eytzinger layout: in-order traversal gives the sorted input
      const inorder: number[] = []
      const walk = (i: number): void => { if (i >= n) return; walk(2 * i + 1); inorder.push(out[i]!); walk(2 * i + 2) }
      walk(0)
      assert.deepEqual(inorder, Array.from({ length: n }, (_, i) => i))
    }
  })
})

describe('catar: feature flags', () => {
  it('computes casync\'s verified values (spec §4.3.3)', () => {
    assert.equal(archiveFeatureFlags(), 0xb0000001ffeffe26n)
    assert.equal(archiveFeatureFlags({ with: ['unix'] }), 0xb000000000001f09n)
    assert.equal(archiveFeatureFlags({ with: ['fat'] }), 0xb00000000000e0c0n)
    assert.equal(archiveFeatureFlags({ without: ['xattrs', 'acl'] }), 0xb0000001cfefff26n)
    assert.equal(archiveFeatureFlags({ digest: 'sha256' }), 0x90000001ffeffe26n)
    assert.equal(archiveFeatureFlags({ excludeNodump: false }), 0x30000001fffffe26n)
    assert.equal(archiveFeatureFlags({ excludeFile: false }), 0xa0000001ffeffe26n)
    assert.equal(archiveFeatureFlags({ without: ['all'], digest: 'sha256' }), 0x9000000000000000n)
    assert.equal(withFlag('privileged'), 0x1ec414407n)
    assert.equal(normalizeFeatureFlags(withFlag('acl')), 0x20000006n)
    assert.throws(() => withFlag('nonsense'), { code: 'ERR_INVALID_ARGUMENT' })
  })
})

describe('catar: encoder and decoder', () => {
  it('writes the spec\'s tree/ with casync\'s layout (3651 bytes, GOODBYE items and tail)', async () => {
    const data = await encode(specTree())
    assert.equal(data.byteLength, 3651)
    const v = new DataView(data.buffer, data.byteOffset)
    assert.equal(v.getBigUint64(16, true), FLAGS)
    // root GOODBYE at 3539: items (3254, 3254, sub), (3475, 111, file.txt), (3364, 110, link), tail (3539, 112)
    const g = 3539 + 16
    assert.deepEqual([0, 1, 2].map(i => [v.getBigUint64(g + 24 * i, true), v.getBigUint64(g + 24 * i + 8, true), v.getBigUint64(g + 24 * i + 16, true)]), [
      [3254n, 3254n, 0xebfe935698c3deecn], [3475n, 111n, 0x7a8acb196abcbaa2n], [3364n, 110n, 0xf922bf6d7bb3dfafn]
    ])
    assert.equal(v.getBigUint64(g + 72, true), 3539n)
    assert.equal(v.getBigUint64(g + 80, true), 112n)
    assert.equal(v.getBigUint64(g + 88, true), 0x57446fa533702943n)
  })

  it('decodes to the same events and re-encodes byte for byte, however the input is split', async () => {
    const data = await encode(specTree())
    for (const pieces of [1, 3, 97, data.byteLength]) {
      const events = decodeAll(data, pieces)
      assert.equal(events.filter(e => e.type === 'node').length, 5)
      const again = await encode(events.map(e => e.type === 'payload' ? { ...e, data: e.data.slice() } : e))
      assert.ok(again.equals(data), `re-encoding after a ${pieces}-piece decode differs`)
    }
    const all: ArchiveEvent[] = []
    for await (const e of decodeArchive([data])) all.push(e)
    const paths = all.filter(e => e.type === 'node').map(e => (e as any).path.map((p: Uint8Array) => Buffer.from(p).toString()).join('/'))
    assert.deepEqual(paths, ['', 'file.txt', 'link', 'sub', 'sub/inner.bin'])
  })

  it('keeps nothing of its input: one Buffer reused for every piece decodes the same (names, targets, cut records)', async () => {
    const data = await encode(specTree())
    for (const step of [1, 7, 40, 1000]) {
      const d = new ArchiveDecoder()
      const reused = Buffer.alloc(step) // a Buffer's .slice() is a view: the decoder must copy what it keeps
      const events: ArchiveEvent[] = []
      for (let o = 0; o < data.byteLength; o += step) {
        const n = Math.min(step, data.byteLength - o)
        reused.set(data.subarray(o, o + n))
        // payload views are valid until the next push: copy them, as a writer would use them
        for (const e of d.push(reused.subarray(0, n))) events.push(e.type === 'payload' ? { ...e, data: Uint8Array.from(e.data) } : e)
        reused.fill(0xff)
      }
      d.end()
      const again = await encode(events)
      assert.ok(again.equals(data), `re-encoding after decoding ${step}-byte pieces of a reused buffer differs`)
    }
  })

  it('encodes payload read in place (payloadSpace/commitPayload) and reuses its buffer after recycle()', () => {
    const events = specTree()
    const expected = encodeSync(events)
    const e = new ArchiveEncoder({ featureFlags: FLAGS, bufferSize: 1024 })
    const out: Buffer[] = []
    const buffers = new Set<ArrayBufferLike>()
    for (const ev of events) {
      if (ev.type !== 'payload') { e.push(ev); continue }
      let done = 0
      while (done < ev.data.byteLength) {
        const space = e.payloadSpace(ev.data.byteLength - done)
        assert.ok(space.byteLength > 0)
        space.set(ev.data.subarray(done, done + space.byteLength))
        e.commitPayload(space.byteLength)
        done += space.byteLength
        const taken = e.take()
        for (const b of taken) { out.push(Buffer.from(b)); buffers.add(b.buffer) }
        e.recycle()
      }
    }
    for (const b of e.take()) out.push(Buffer.from(b))
    assert.ok(Buffer.concat(out).equals(expected), 'in-place payload encodes differently')
    assert.ok(buffers.size <= 2, `${buffers.size} output buffers of 1 KiB for 3 KiB of payload: recycle() did not reuse them`)
    assert.throws(() => { e.payloadSpace(1) }, { code: 'ERR_INVALID_ARGUMENT' })
  })

  it('refuses children out of order and bad names when encoding', async () => {
    const ev = specTree()
    ;[ev[1], ev[4]] = [ev[4]!, ev[1]!] // link node before file.txt node → structure broken
    await assert.rejects(encode(ev), { code: 'ERR_INVALID_ARGUMENT' })
    const dotdot: ArchiveEvent[] = [ev[0]!, { type: 'node', node: { name: te.encode('..'), mode: 0o100644, flags: 0n, uid: 0, gid: 0, mtime: 0n, size: 0 } }, { type: 'end' }, { type: 'end' }]
    await assert.rejects(encode(dotdot), /"\." or "\.\."/)
  })
})

describe('catar: hostile archives are refused with the offset and reason', () => {
  const patchName = (data: Buffer, from: string, to: string): Buffer => {
    const out = Buffer.from(data)
    const at = out.indexOf(Buffer.from(from + '\0'))
    assert.ok(at > 0)
    out.write(to, at, 'latin1')
    return out
  }

  it('traversal names ("..", "a/b") and duplicates (a symlink, then a directory of the same name)', async () => {
    const base = await encode(specTree())
    const renamed = (to: string): Uint8Array => encodeSync(specTree().map(e => e.type === 'node' && e.node.name != null && Buffer.from(e.node.name).toString() === 'sub' ? { ...e, node: { ...e.node, name: te.encode(to) } } : e))
    assert.throws(() => decodeAll(patchName(Buffer.from(renamed('zz')), 'zz', '..')), /"\." or "\.\."/)
    assert.throws(() => decodeAll(patchName(base, 'file.txt', 'fil/.txt')), /contains "\/"/)
    // link -> file.txt, then "link" again as a directory with a file beneath: refused as a duplicate
    assert.throws(() => decodeAll(patchName(Buffer.from(renamed('lioo')), 'lioo', 'link')), /duplicate or unsorted/)
  })

  it('truncation anywhere', async () => {
    const base = await encode(specTree())
    for (const cut of [0, 10, 64, 100, 200, 3000, 3538, 3650]) {
      assert.throws(() => decodeAll(base.subarray(0, cut)), (err: any) => err.code === 'ERR_INVALID_FORMAT' && /truncated/.test(err.message), `cut at ${cut}`)
    }
  })

  it('a wrong GOODBYE table, a wrong size, trailing bytes, unknown records, mixed feature flags', async () => {
    const base = await encode(specTree())
    const bad = Buffer.from(base); bad[3539 + 16 + 16]! ^= 1 // first item's hash
    assert.throws(() => decodeAll(bad), /GOODBYE table does not match/)
    const swapped = Buffer.from(base); swapped.copy(swapped, 3539 + 16, 3539 + 40, 3539 + 64); base.copy(swapped, 3539 + 40, 3539 + 16, 3539 + 40)
    assert.throws(() => decodeAll(swapped), /GOODBYE/)
    assert.throws(() => decodeAll(Buffer.concat([base, Buffer.alloc(1)])), /after the end/)
    const unknown = Buffer.from(base); unknown[64 + 8]! ^= 0xff
    assert.throws(() => decodeAll(unknown), /unknown record type/)
    const flags = Buffer.from(base); flags[89 + 16]! ^= 0x20 // file.txt's ENTRY feature flags
    assert.throws(() => decodeAll(flags), /differ from the archive/)
    const mode = Buffer.from(base); mode.writeUInt32LE(0o170644, 89 + 24)
    assert.throws(() => decodeAll(mode), /file type/)
  })
})

describe('catar: listing formats and .caexclude', () => {
  it('ls modes and mtree escapes', () => {
    assert.equal(lsMode(0o104755), '-rwsr-xr-x')
    assert.equal(lsMode(0o41777), 'drwxrwxrwt')
    assert.equal(lsMode(0o41776), 'drwxrwxrwT')
    assert.equal(lsMode(0o102644), '-rw-r-Sr--')
    assert.equal(lsMode(0o120777), 'lrwxrwxrwx')
    assert.equal(mtreeEscape(Buffer.from('ä b#\\')), '\\303\\244\\040b\\043\\134')
  })

  it('fnmatch with FNM_PERIOD and gitignore-like rules', () => {
    assert.ok(fnmatch('excluded-*', 'excluded-by-caexclude'))
    assert.ok(!fnmatch('*', '.hidden'))
    assert.ok(fnmatch('.*', '.hidden'))
    assert.ok(fnmatch('[a-c]?', 'b1'))
    assert.ok(!fnmatch('[!a-c]?', 'b1'))
    const p = parseExcludeFile('# c\n*.o\n!keep.o\n/build/\nsub/x\n', 0)
    assert.ok(isExcluded(p, ['a.o'], false))
    assert.ok(isExcluded(p, ['deep', 'b.o'], false))
    assert.ok(!isExcluded(p, ['keep.o'], false))
    assert.ok(isExcluded(p, ['build'], true))
    assert.ok(!isExcluded(p, ['build'], false))
    assert.ok(isExcluded(p, ['sub', 'x'], false))
    assert.ok(!isExcluded(p, ['other', 'sub', 'x'], false))
  })
})
