// make from and extract to a block device (a loop device over a temporary file; needs root).
import '../helpers/setup.ts'
import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import { createReadStream, readFileSync, writeFileSync } from 'node:fs'
import * as path from 'node:path'
import { after, before, describe, it } from 'node:test'
import { extractBlob } from '../../node/extract.ts'
import { makeIndex } from '../../node/make.ts'
import { LocalStore } from '../../node/store/local-store.ts'
import { chunkSizes } from '../../protocol/chunker.ts'
import { pseudoRandom } from '../helpers/fixtures.ts'
import { tempDir } from '../helpers/temp-dir.ts'
import { needs } from '../helpers/tools.ts'
import { STRICT } from '../helpers/setup.ts'

function loopAvailable (): string | false {
  const missing = needs('losetup')
  if (missing !== false) return missing
  if (process.getuid?.() !== 0) {
    if (STRICT) throw new Error('CASWARM_CI=1 and block-device tests need root')
    return 'needs root for loop devices'
  }
  return false
}

describe('block devices', { skip: loopAvailable() }, () => {
  const tmp = tempDir()
  const size = 4 << 20
  let device = ''
  before(() => {
    writeFileSync(path.join(tmp.path, 'disk'), Buffer.alloc(size))
    device = execFileSync('losetup', ['-f', '--show', path.join(tmp.path, 'disk')], { encoding: 'utf8' }).trim()
  })
  after(() => {
    if (device !== '') execFileSync('losetup', ['-d', device])
    tmp.cleanup()
  })

  it('extracts into a block device in place, and reuses the blocks already right', async () => {
    const v1 = pseudoRandom(size, 11)
    const v2 = Buffer.from(v1)
    v2.fill(7, 1 << 20, (1 << 20) + 5000) // one region changed in place
    const store = new LocalStore(path.join(tmp.path, 'store.castr'))
    const sizes = chunkSizes({ min: 4096, avg: 16384, max: 65536 })
    const i1 = (await makeIndex([v1], store, { chunkSize: sizes })).index
    const i2 = (await makeIndex([v2], store, { chunkSize: sizes })).index

    const first = await extractBlob(i1, device, { sources: [store] })
    assert.equal(first.bytes, size)
    assert.ok(readFileSync(device).subarray(0, size).equals(v1))

    const second = await extractBlob(i2, device, { sources: [store] })
    assert.ok(readFileSync(device).subarray(0, size).equals(v2))
    // only the chunks around the changed region were written; the rest were already right
    const inPlace = second.sources['in-place']?.chunks ?? 0
    const fromStore = second.sources[store.toString()]?.chunks ?? 0
    assert.equal(inPlace + fromStore, i2.chunks.length)
    assert.ok(fromStore >= 1 && fromStore <= 3, `chunks written: ${fromStore}`)
  })

  it('makes an index from a block device identical to one made from the same bytes in a file', async () => {
    const file = path.join(tmp.path, 'copy')
    writeFileSync(file, readFileSync(device).subarray(0, size))
    const store = new LocalStore(path.join(tmp.path, 'store2.castr'))
    const fromDevice = await makeIndex(createReadStream(device), store)
    const fromFile = await makeIndex(createReadStream(file), store)
    assert.deepEqual([...fromDevice.index.chunks].map(c => c.id.toString()), [...fromFile.index.chunks].map(c => c.id.toString()))
    assert.equal(fromDevice.streamDigest, fromFile.streamDigest)
  })
})
