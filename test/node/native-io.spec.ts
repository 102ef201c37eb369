// The page-cache hints of native/io.c: read-ahead of store files, write-behind of outputs, and
// the eviction the benchmark uses. They only advise the kernel, so the tests check what can be
// observed: which files were advised, and that data written and advised reads back intact.
// writeOut: ranges written partly with O_DIRECT read back exactly, whatever their alignment.
import '../helpers/setup.ts'
import assert from 'node:assert/strict'
import { closeSync, constants, existsSync, fsyncSync, openSync, readFileSync, rmSync, writeFileSync, writeSync } from 'node:fs'
import * as path from 'node:path'
import { after, describe, it } from 'node:test'
import { dontNeed, flushOut, lineAlignedStart, nativeIoLoaded, openDirect, slowReadInto, willNeed, writeBehind, writeOut } from '../../node/native-io.ts'
import { pseudoRandom } from '../helpers/fixtures.ts'
import { STRICT } from '../helpers/setup.ts'
import { tempDir } from '../helpers/temp-dir.ts'

const built = nativeIoLoaded()
if (!built && STRICT) throw new Error('CASWARM_CI=1 and the native addon (native/build/Release/caswarm_io.node) was not built')

describe('native page-cache hints', { skip: built ? false : 'native addon not built' }, () => {
  const t = tempDir()
  after(() => { t.cleanup() })

  it('lineAlignedStart places a file position at the same offset in its cache line as in the file', () => {
    const raw = new Uint8Array((1 << 20) + 64)
    const positions = [0, 1, 16, 31, 32, 63, 64, 4096 + 17, 123_456_789]
    const starts = positions.map(p => lineAlignedStart(raw, p))
    for (const [i, p] of positions.entries()) {
      const s = starts[i]!
      assert.ok(s >= 0 && s < 64, `start ${s} for ${p}`)
      // placed there, the view is aligned for p: it needs no further skip
      assert.equal(lineAlignedStart(raw.subarray(s), p), 0, `position ${p}`)
      // one byte further on, the byte for p + 1 is aligned too (offsets move together)
      assert.equal(lineAlignedStart(raw.subarray(s + 1), p + 1), 0, `position ${p + 1}`)
      // and a view one byte off needs 63 more
      assert.equal(lineAlignedStart(raw.subarray(s + 1), p), 63, `position ${p}, one byte off`)
      // reading p into a view 1-31 bytes further into its line than p is the slow copy; 0 or 32-63 is not
      assert.equal(slowReadInto(raw.subarray(s), p), false, `position ${p}, placed`)
      assert.equal(slowReadInto(raw.subarray(s + 1), p), true, `position ${p}, 1 byte ahead`)
      assert.equal(slowReadInto(raw.subarray(s + 31), p), true, `position ${p}, 31 bytes ahead`)
      assert.equal(slowReadInto(raw.subarray(s + 32), p), false, `position ${p}, 32 bytes ahead`)
    }
    // positions 64 apart go to the same place; positions one apart to neighbouring places
    assert.equal(starts[positions.indexOf(0)], starts[positions.indexOf(64)])
    assert.equal((starts[positions.indexOf(32)]! + 31) % 64, starts[positions.indexOf(63)])
  })

  it('willNeed and dontNeed advise the files that exist, skip the others, and follow no symlink', () => {
    const a = path.join(t.path, 'a')
    const b = path.join(t.path, 'b')
    writeFileSync(a, pseudoRandom(100_000, 1))
    writeFileSync(b, 'b')
    assert.equal(willNeed([a, path.join(t.path, 'missing'), b]), 2)
    assert.equal(dontNeed([a, b, path.join(t.path, 'missing')]), 2)
    assert.ok(readFileSync(a).equals(pseudoRandom(100_000, 1))) // dropped clean pages read back from disk
    assert.equal(willNeed([]), 0)
  })

  it('writeBehind starts writeback of a range; the data and a later fsync are unaffected', () => {
    const file = path.join(t.path, 'out')
    const data = pseudoRandom(1 << 20, 2)
    const fd = openSync(file, 'w+')
    try {
      writeSync(fd, data, 0, data.byteLength, 0)
      writeBehind(fd, 0, 1 << 19)
      writeBehind(fd, 1 << 19, 1 << 19)
      fsyncSync(fd)
    } finally { closeSync(fd) }
    assert.ok(readFileSync(file).equals(data))
    assert.throws(() => { writeBehind(-1 as number, 0, 1) }, /writeBehind/)
  })

  it('writeOut puts unaligned ranges, back to back and out of order, exactly where they belong', () => {
    const file = path.join(t.path, 'direct')
    const size = (3 << 20) + 12_345
    const data = pseudoRandom(size, 3)
    const fd = openSync(file, 'w+')
    const direct = openDirect(file)
    try {
      // O_DIRECT is to be had on the file system the tests write to (ext4 here, in CI too)
      if (STRICT) assert.notEqual(direct, undefined, `no O_DIRECT descriptor on ${file}`)
      // cuts that split 4 KiB blocks between ranges, ranges from 1 byte to over 2 MiB (the bounce buffer)
      const cuts = [0, 1, 4095, 4097, 70_000, 70_001, 200_000, 2_500_000, size]
      const ranges = cuts.slice(1).map((end, i) => [cuts[i]!, end] as const)
      // one scratch buffer for every call, overwritten as soon as writeOut returns: what is queued
      // for the writer thread must have been copied
      const scratch = Buffer.alloc(size)
      for (const [from, to] of [...ranges.filter((_, i) => i % 2 === 1), ...ranges.filter((_, i) => i % 2 === 0).reverse()]) {
        data.copy(scratch, 0, from, to)
        writeOut(fd, scratch.subarray(0, to - from), from, direct)
        scratch.fill(0xee)
      }
      flushOut()
      fsyncSync(fd)
    } finally {
      closeSync(fd)
      if (direct != null) closeSync(direct)
    }
    dontNeed([file])
    assert.ok(readFileSync(file).equals(data))
  })

  it('writeOut without a direct descriptor writes through the page cache; on tmpfs too', () => {
    const data = pseudoRandom(300_000, 4)
    const dirs = [t.path, ...(existsSync('/dev/shm') ? ['/dev/shm'] : [])]
    for (const dir of dirs) {
      const file = path.join(dir, `caswarm-plain-${process.pid}`)
      const fd = openSync(file, 'w+')
      const direct = openDirect(file) // tmpfs: refused before Linux 6.6, taken since
      try {
        writeOut(fd, data, 5, undefined)
        writeOut(fd, data, 300_005, direct)
        flushOut()
      } finally {
        closeSync(fd)
        if (direct != null) closeSync(direct)
      }
      const back = readFileSync(file)
      rmSync(file, { force: true })
      assert.equal(back.byteLength, 600_005, file)
      assert.ok(back.subarray(5, 300_005).equals(data), file)
      assert.ok(back.subarray(300_005).equals(data), file)
    }
  })

  it('a queued direct write that fails is reported by flushOut (or the next writeOut), once', () => {
    const file = path.join(t.path, 'refused')
    writeFileSync(file, '')
    const fd = openSync(file, 'r+')
    const readOnly = openSync(file, constants.O_RDONLY | constants.O_DIRECT)
    try {
      writeOut(fd, pseudoRandom(1 << 20, 5), 0, readOnly)
      assert.throws(() => { flushOut() }, { code: 'EBADF' })
      flushOut() // reported once
    } finally {
      closeSync(fd)
      closeSync(readOnly)
    }
  })
})
