import '../helpers/setup.ts'
import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import * as fs from 'node:fs'
import * as path from 'node:path'
import { after, before, describe, it } from 'node:test'
import { ArchiveEncoder } from '../../protocol/catar/encoder.ts'
import { archiveFeatureFlags } from '../../protocol/catar/feature-flags.ts'
import type { ArchiveEvent } from '../../protocol/catar/types.ts'
import { treeNative } from '../../node/tree/native.ts'
import { HashingWriter } from '../../node/tree/hashing-writer.ts'
import { encodeTree, encodeTreeBatches } from '../../node/tree/reader.ts'
import { extractTree, readPieces, TreeWriter } from '../../node/tree/writer.ts'
import { tempDir } from '../helpers/temp-dir.ts'

const FLAGS = archiveFeatureFlags({ digest: 'sha256' })
const te = new TextEncoder()

async function collect (source: AsyncIterable<Uint8Array>): Promise<Buffer> {
  const parts: Uint8Array[] = []
  for await (const b of source) parts.push(b.slice())
  return Buffer.concat(parts)
}

function encodeSync (events: ArchiveEvent[]): Buffer {
  const e = new ArchiveEncoder({ featureFlags: FLAGS })
  for (const ev of events) e.push(ev)
  return Buffer.concat(e.take())
}

const dir = (name?: string): ArchiveEvent => ({ type: 'node', node: { ...(name != null ? { name: te.encode(name) } : {}), mode: 0o40755, flags: 0n, uid: 0, gid: 0, mtime: 1_600_000_000_000_000_001n } })
const file = (name: string, body: string): ArchiveEvent[] => [
  { type: 'node', node: { name: te.encode(name), mode: 0o100644, flags: 0n, uid: 0, gid: 0, mtime: 1_600_000_000_123_456_789n, size: body.length } },
  ...(body.length > 0 ? [{ type: 'payload' as const, data: te.encode(body) }] : []),
  { type: 'end' }
]
const end: ArchiveEvent = { type: 'end' }

describe('tree reader and writer', () => {
  let tmp: { path: string, cleanup: () => void }
  before(() => { tmp = tempDir('caswarm-tree-') })
  after(() => { tmp?.cleanup() })

  it('round-trips a tree: encode → extract → encode gives the same bytes (owners, ns times, xattrs, devices, links)', async () => {
    const n = treeNative()
    const src = path.join(tmp.path, 'src')
    fs.mkdirSync(path.join(src, 'sub', 'deeper'), { recursive: true })
    fs.writeFileSync(path.join(src, 'sub', 'deeper', 'f'), 'x'.repeat(100_000))
    fs.writeFileSync(path.join(src, 'owned'), 'o'); fs.chownSync(path.join(src, 'owned'), 1, 1)
    fs.writeFileSync(path.join(src, 'x'), 'x'); n.lsetxattr(path.join(src, 'x'), 'user.k', Buffer.from('v'))
    fs.symlinkSync('../outside', path.join(src, 'rel'))
    n.mknod(path.join(src, 'fifo'), 0o010600, 0, 0)
    n.mknod(path.join(src, 'null'), 0o020666, 1, 3)
    fs.writeFileSync(path.join(src, 'skipped'), 'nodump'); n.setInodeFlags(path.join(src, 'skipped'), 0x40, 0x40, -1, -1)
    fs.writeFileSync(path.join(src, '.caexclude'), 'ignored-*\n')
    fs.writeFileSync(path.join(src, 'ignored-1'), 'excluded')
    for (const p of ['sub/deeper/f', 'sub/deeper', 'sub', 'rel', 'fifo', 'owned', '.']) n.lutimens(path.join(src, p), 1_650_000_000, 987_654_321)
    const first = await collect(encodeTree(src, { featureFlags: FLAGS }))
    const out = path.join(tmp.path, 'out')
    const r = await extractTree([first], out)
    assert.equal(r.mode, 'new')
    assert.equal(fs.existsSync(path.join(out, 'skipped')), false, 'nodump file archived')
    assert.equal(fs.existsSync(path.join(out, 'ignored-1')), false, '.caexclude ignored')
    assert.equal(fs.readlinkSync(path.join(out, 'rel')), '../outside')
    assert.equal(fs.statSync(path.join(out, 'owned')).uid, 1)
    assert.equal(fs.lstatSync(path.join(out, 'sub', 'deeper'), { bigint: true }).mtimeNs, 1_650_000_000_987_654_321n)
    assert.equal(fs.lstatSync(path.join(out, 'rel'), { bigint: true }).mtimeNs, 1_650_000_000_987_654_321n)
    const second = await collect(encodeTree(out, { featureFlags: FLAGS }))
    assert.ok(second.equals(first), 'the extracted tree serialises differently')
  })

  it('replaces an existing target as a whole (extra files go, as with casync --delete=yes)', async () => {
    const out = path.join(tmp.path, 'replace')
    fs.mkdirSync(path.join(out, 'old'), { recursive: true })
    fs.writeFileSync(path.join(out, 'stale'), 'stale')
    const r = await extractTree([encodeSync([dir(), ...file('new', 'fresh'), end])], out)
    assert.equal(r.mode, 'replaced')
    assert.deepEqual(fs.readdirSync(out), ['new'])
    assert.deepEqual(fs.readdirSync(tmp.path).filter(n => n.includes('caswarm')), [], 'temporary directories left behind')
  })

  it('in place, never follows a symlink that is in the way (a directory or file of that name is written instead)', () => {
    const root = path.join(tmp.path, 'inplace')
    const outside = path.join(tmp.path, 'outside')
    fs.mkdirSync(root); fs.mkdirSync(outside)
    fs.symlinkSync(outside, path.join(root, 'sub'))
    fs.writeFileSync(path.join(outside, 'victim'), 'keep me')
    fs.symlinkSync(path.join(outside, 'victim'), path.join(root, 'victim'))
    const w = new TreeWriter(root, { inPlace: true })
    for (const ev of [dir(), dir('sub'), ...file('passwd', 'pwned'), end, ...file('victim', 'pwned'), end]) w.push(ev, FLAGS)
    assert.ok(w.finished)
    assert.deepEqual(fs.readdirSync(outside), ['victim'])
    assert.equal(fs.readFileSync(path.join(outside, 'victim'), 'utf8'), 'keep me')
    assert.ok(fs.lstatSync(path.join(root, 'sub')).isDirectory())
    assert.equal(fs.readFileSync(path.join(root, 'sub', 'passwd'), 'utf8'), 'pwned')
    assert.ok(fs.lstatSync(path.join(root, 'victim')).isFile())
  })

  it('refuses hostile archives and writes nothing: traversal, truncation, wrong GOODBYE', async () => {
    const parent = path.join(tmp.path, 'hostile')
    fs.mkdirSync(parent)
    const good = encodeSync([dir(), dir('zz'), ...file('f', 'data'), end, end])
    const dotdot = Buffer.from(good); dotdot.write('..', dotdot.indexOf('zz\0'), 'latin1')
    const slash = Buffer.from(encodeSync([dir(), ...file('a_b', 'x'), end])); slash.write('a/b', slash.indexOf('a_b\0'), 'latin1')
    const goodbye = Buffer.from(good); goodbye[goodbye.byteLength - 30]! ^= 1
    const cases: Array<[string, Buffer, RegExp]> = [
      ['dotdot', dotdot, /"\." or "\.\."/],
      ['slash', slash, /contains "\/"/],
      ['truncated', good.subarray(0, good.byteLength - 10), /truncated/],
      ['goodbye', goodbye, /GOODBYE/]
    ]
    for (const [name, data, re] of cases) {
      const target = path.join(parent, name)
      await assert.rejects(extractTree([data], target), (err: any) => err.code === 'ERR_INVALID_FORMAT' && re.test(err.message), name)
      assert.equal(fs.existsSync(target), false, `${name}: target created`)
    }
    assert.deepEqual(fs.readdirSync(parent), [], 'something was written beside the targets')
    assert.equal(fs.existsSync(path.join(tmp.path, 'f')), false)
  })
})

describe('tree make and extract fast paths', () => {
  let tmp: { path: string, cleanup: () => void }
  before(() => { tmp = tempDir('caswarm-tree-fast-') })
  after(() => { tmp?.cleanup() })

  /** files of many sizes (some bigger than a batch), raw non-UTF-8 names, nested directories */
  function makeSource (): string {
    const src = path.join(tmp.path, 'src')
    fs.mkdirSync(path.join(src, 'a', 'b'), { recursive: true })
    const sizes = [0, 1, 4095, 4096, 40_000, 300_000, 1_500_000]
    sizes.forEach((size, i) => { fs.writeFileSync(path.join(src, 'a', `f${i}`), Buffer.alloc(size, i + 1)) })
    fs.writeFileSync(path.join(src, 'a', 'b', 'deep'), 'deep')
    for (const name of [Buffer.from([0x66, 0xff]), Buffer.from([0x66, 0x80, 0x41]), Buffer.from('F'), Buffer.from('f')]) {
      fs.writeFileSync(Buffer.concat([Buffer.from(src + '/'), name]), name)
    }
    for (const p of ['a/b/deep', 'a/b', 'a', '.']) treeNative().lutimens(path.join(src, p), 1_600_000_000, 5)
    return src
  }

  it('encodeTreeBatches (one recycled buffer) gives encodeTree\'s bytes; names sort bytewise', async () => {
    const src = makeSource()
    const whole = await collect(encodeTree(src, { featureFlags: FLAGS, batchBytes: 64 * 1024 }))
    const parts: Buffer[] = []
    const seen = new Set<ArrayBufferLike>()
    for (const batch of encodeTreeBatches(src, { featureFlags: FLAGS, batchBytes: 64 * 1024 })) {
      for (const b of batch) { parts.push(Buffer.from(b)); seen.add(b.buffer) }
    }
    assert.ok(Buffer.concat(parts).equals(whole), 'the batches differ from encodeTree')
    assert.ok(seen.size < 5, `${seen.size} buffers for ${whole.byteLength} bytes: the batches were not recycled`)
    const order = whole.indexOf(Buffer.from('F\0')) < whole.indexOf(Buffer.from('a\0')) && whole.indexOf(Buffer.from([0x66, 0x80, 0x41, 0])) < whole.indexOf(Buffer.from([0x66, 0xff, 0]))
    assert.ok(order, 'entries are not in bytewise name order')
  })

  it('HashingWriter writes and digests what it is given (sha256 and sha512-256), and reports write errors', () => {
    const file = path.join(tmp.path, 'hashed')
    const data = Buffer.alloc(20 << 20)
    for (let i = 0; i < data.byteLength; i += 4096) data.writeUInt32LE(i * 2654435761 >>> 0, i)
    for (const algorithm of ['sha256', 'sha512-256'] as const) {
      const fd = fs.openSync(file, 'w')
      const w = new HashingWriter(fd, algorithm)
      for (let o = 0; o < data.byteLength; o += 700_001) w.write(data.subarray(o, o + 700_001))
      const r = w.finish()
      fs.closeSync(fd)
      assert.equal(r.digest, createHash(algorithm).update(data).digest('hex'))
      assert.equal(r.bytes, data.byteLength)
      assert.ok(fs.readFileSync(file).equals(data), `${algorithm}: the file differs`)
    }
    const ro = fs.openSync(file, 'r')
    const w = new HashingWriter(ro)
    assert.throws(() => { for (let i = 0; i < 4; i++) w.write(data); w.finish() }, { code: 'EBADF' })
    fs.closeSync(ro)
    // from an unaligned position (all through the page cache), and digest only (fd -1)
    const fd = fs.openSync(file, 'w')
    fs.writeSync(fd, Buffer.from('head'))
    const after = new HashingWriter(fd)
    after.write(data.subarray(0, 3_000_000))
    assert.equal(after.finish().bytes, 3_000_000)
    fs.closeSync(fd)
    assert.ok(fs.readFileSync(file).equals(Buffer.concat([Buffer.from('head'), data.subarray(0, 3_000_000)])))
    const only = new HashingWriter(-1, 'sha512-256')
    only.write(data)
    assert.equal(only.finish().digest, createHash('sha512-256').update(data).digest('hex'))
  })

  it('extracts from one reused read buffer (readPieces) with files across its pieces, as from fresh pieces', async () => {
    const src = makeSource()
    const archive = await collect(encodeTree(src, { featureFlags: FLAGS }))
    const file = path.join(tmp.path, 'src.catar')
    fs.writeFileSync(file, archive)
    for (const pieceBytes of [1000, 65_536]) {
      const out = path.join(tmp.path, `out-${pieceBytes}`)
      await extractTree(readPieces(file, { pieceBytes }), out, { reusedInput: true })
      const again = await collect(encodeTree(out, { featureFlags: FLAGS }))
      assert.ok(again.equals(archive), `${pieceBytes}-byte pieces: the extracted tree serialises differently`)
    }
  })

  it('files of 1 MiB and more (written around the page cache) come out exact, across pieces, beyond the hold limit, with mode and time', async () => {
    const src = path.join(tmp.path, 'big-src')
    fs.mkdirSync(path.join(src, 'd'), { recursive: true })
    const sizes = [(1 << 20) - 1, 1 << 20, (1 << 20) + 1, 3_000_001, 9_000_000, 20 << 20]
    sizes.forEach((size, i) => {
      const data = Buffer.alloc(size)
      for (let o = 0; o + 4 <= size; o += 4096) data.writeUInt32LE((o * 2654435761 + i) >>> 0, o)
      data[size - 1] = 0xa5
      const f = path.join(src, 'd', `f${i}`)
      fs.writeFileSync(f, data)
      fs.chmodSync(f, i % 2 === 0 ? 0o4755 : 0o640)
      treeNative().lutimens(f, 1_600_000_000 + i, 123_456_789)
    })
    for (const p of ['d', '.']) treeNative().lutimens(path.join(src, p), 1_600_000_000, 5)
    const archive = await collect(encodeTree(src, { featureFlags: FLAGS }))
    const file = path.join(tmp.path, 'big.catar')
    fs.writeFileSync(file, archive)
    for (const pieceBytes of [65_537, 1 << 20]) {
      const out = path.join(tmp.path, `big-out-${pieceBytes}`)
      await extractTree(readPieces(file, { pieceBytes }), out, { reusedInput: true })
      const again = await collect(encodeTree(out, { featureFlags: FLAGS }))
      assert.ok(again.equals(archive), `${pieceBytes}-byte pieces: the extracted tree serialises differently`)
    }
    // the same through the page cache alone
    process.env.CASWARM_DIRECT_IO = '0'
    try {
      const out = path.join(tmp.path, 'big-out-buffered')
      await extractTree(readPieces(file), out, { reusedInput: true })
      assert.ok((await collect(encodeTree(out, { featureFlags: FLAGS }))).equals(archive))
    } finally { delete process.env.CASWARM_DIRECT_IO }
  })

  it('an archive cut off inside a big file: refused, nothing left behind, no descriptor left open', async () => {
    const src = path.join(tmp.path, 'cut-src')
    fs.mkdirSync(src)
    fs.writeFileSync(path.join(src, 'big'), Buffer.alloc(5 << 20, 7))
    const archive = await collect(encodeTree(src, { featureFlags: FLAGS }))
    const file = path.join(tmp.path, 'cut.catar')
    fs.writeFileSync(file, archive.subarray(0, 3 << 20))
    const fds = (): number => fs.readdirSync('/proc/self/fd').length
    const before = fds()
    const out = path.join(tmp.path, 'cut-out')
    await assert.rejects(extractTree(readPieces(file), out, { reusedInput: true }), { code: 'ERR_INVALID_FORMAT' })
    assert.equal(fds(), before, 'descriptors left open')
    assert.deepEqual(fs.readdirSync(tmp.path).filter(n => n.includes('cut-out')), [], 'something of the output was left')
  })

  it('plain files made on the creator thread give the same tree as made in line (directory modes and times restored after)', async () => {
    const src = makeSource()
    fs.chmodSync(path.join(src, 'a', 'b'), 0o555) // a directory its files could not be made in once its mode is set
    treeNative().lutimens(path.join(src, 'a', 'b'), 1_600_000_000, 5)
    const archive = await collect(encodeTree(src, { featureFlags: FLAGS }))
    for (const queueFiles of [true, false]) {
      const out = path.join(tmp.path, `queued-${String(queueFiles)}`)
      await extractTree([archive], out, { queueFiles })
      const again = await collect(encodeTree(out, { featureFlags: FLAGS }))
      assert.ok(again.equals(archive), `queueFiles ${String(queueFiles)}: the extracted tree serialises differently`)
    }
  })

  it('the creator thread reports a file it could not make, with its path, at the drain (once)', () => {
    const n = treeNative()
    const ok = path.join(tmp.path, 'made-by-thread')
    const missing = path.join(tmp.path, 'no-such-dir', 'file')
    n.createFileQueued(ok, [Buffer.from('ab'), Buffer.from('c')], 0o640, -1, -1, 1_600_000_000, 7, 0)
    n.createFileQueued(missing, [Buffer.from('x')], 0o644, -1, -1, -1, 0, 1)
    assert.throws(() => { n.createFilesDrain() }, (err: any) => err.code === 'ENOENT' && String(err.message).includes(missing))
    n.createFilesDrain()
    assert.equal(fs.readFileSync(ok, 'utf8'), 'abc')
    const st = fs.statSync(ok, { bigint: true })
    assert.equal(st.mode & 0o777n, 0o640n)
    assert.equal(st.mtimeNs, 1_600_000_000_000_000_007n)
  })
})
