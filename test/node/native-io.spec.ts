// The page-cache hints of native/io.c: read-ahead of store files, write-behind of outputs, and
// the eviction the benchmark uses. They only advise the kernel, so the tests check what can be
// observed: which files were advised, and that data written and advised reads back intact.
import '../helpers/setup.ts'
import assert from 'node:assert/strict'
import { closeSync, fsyncSync, openSync, readFileSync, writeFileSync, writeSync } from 'node:fs'
import * as path from 'node:path'
import { after, describe, it } from 'node:test'
import { dontNeed, nativeIoLoaded, willNeed, writeBehind } from '../../node/native-io.ts'
import { pseudoRandom } from '../helpers/fixtures.ts'
import { STRICT } from '../helpers/setup.ts'
import { tempDir } from '../helpers/temp-dir.ts'

const built = nativeIoLoaded()
if (!built && STRICT) throw new Error('CASWARM_CI=1 and the native addon (native/build/Release/caswarm_io.node) was not built')

describe('native page-cache hints', { skip: built ? false : 'native addon not built' }, () => {
  const t = tempDir()
  after(() => { t.cleanup() })

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
})
