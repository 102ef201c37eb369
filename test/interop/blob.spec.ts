import '../helpers/setup.ts'
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { createHash } from 'node:crypto'
import { readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import * as path from 'node:path'
import { after, before, describe, it } from 'node:test'
import { fileURLToPath } from 'node:url'
import { chunkPath } from '../../protocol/chunk-id.ts'
import { detectCompression } from '../../protocol/compression.ts'
import { decodeIndex } from '../../protocol/index-file.ts'
import { pseudoRandom, specRandom } from '../helpers/fixtures.ts'
import { tempDir } from '../helpers/temp-dir.ts'
import { needs } from '../helpers/tools.ts'

const CLI = fileURLToPath(new URL('../../bin/caswarm.js', import.meta.url))
const skip = needs('casync')

function exec (cmd: string, args: string[]): string {
  const r = spawnSync(cmd, args, { encoding: 'utf8', env: { ...process.env, CI: '1', CASWARM_PEERS: 'off' }, maxBuffer: 1 << 26 })
  assert.equal(r.status, 0, `${cmd} ${args.join(' ')} exited ${String(r.status)}: ${r.stderr}`)
  return r.stdout
}
const caswarm = (...args: string[]): string => exec(process.execPath, [CLI, ...args])
const casync = (...args: string[]): string => exec('casync', args)

function storeFiles (root: string): string[] {
  return readdirSync(root).flatMap(d => readdirSync(path.join(root, d)).map(f => path.join(root, d, f)))
}

/** Mixed input: random, text-like and zero runs, so all compressions have something to do. */
function input (size: number, label: string): Buffer {
  const text = Buffer.from(`${label}: the rain in spain stays mainly in the plain; `.repeat(Math.ceil(size / 150)))
  const third = Math.floor(size / 3)
  return Buffer.concat([specRandom(third, label), text.subarray(0, third), Buffer.alloc(size >> 4), pseudoRandom(size - 2 * third - (size >> 4), 61)])
}

interface Case { chunkSize: string, digest: 'sha256' | 'sha512-256', compression: 'zstd' | 'xz' | 'gzip', size: number }

// Every compression with both digests, spread over three chunk sizes; xz gets small inputs (casync
// compresses xz at about 1 MB/s per chunk).
const CASES: Case[] = [
  { chunkSize: 'default', digest: 'sha256', compression: 'zstd', size: 6_000_000 },
  { chunkSize: '16384', digest: 'sha512-256', compression: 'zstd', size: 3_000_000 },
  { chunkSize: 'default', digest: 'sha512-256', compression: 'xz', size: 1_500_000 },
  { chunkSize: '16384', digest: 'sha256', compression: 'xz', size: 1_000_000 },
  { chunkSize: '64:256:1024', digest: 'sha256', compression: 'gzip', size: 400_000 },
  { chunkSize: 'default', digest: 'sha512-256', compression: 'gzip', size: 3_000_000 },
  { chunkSize: '64:256:1024', digest: 'sha512-256', compression: 'zstd', size: 300_000 }
]

describe('interop with casync (blobs)', { skip }, () => {
  const t = tempDir()
  after(() => { t.cleanup() })

  for (const c of CASES) {
    const name = `${c.chunkSize}-${c.digest}-${c.compression}`
    describe(`--chunk-size=${c.chunkSize} --digest=${c.digest} --compression=${c.compression}`, () => {
      const dir = path.join(t.path, name)
      const p = (f: string): string => path.join(dir, f)
      const data = input(c.size, name)
      const flags = [`--digest=${c.digest}`, `--compression=${c.compression}`, ...(c.chunkSize === 'default' ? [] : [`--chunk-size=${c.chunkSize}`])]
      let casyncDigest = ''
      let caswarmDigest = ''

      before(() => {
        exec('mkdir', ['-p', dir])
        writeFileSync(p('in.img'), data)
        casyncDigest = casync('make', ...flags, `--store=${p('casync.castr')}`, p('casync.caibx'), p('in.img')).trim()
        caswarmDigest = caswarm('make', ...flags, `--store=${p('caswarm.castr')}`, p('caswarm.caibx'), p('in.img')).trim()
      })

      it('caswarm\'s index is byte-identical to casync\'s, and so is the printed digest', () => {
        assert.ok(readFileSync(p('caswarm.caibx')).equals(readFileSync(p('casync.caibx'))))
        assert.equal(caswarmDigest, casyncDigest)
        assert.equal(casyncDigest, createHash(c.digest).update(data).digest('hex'))
        const files = storeFiles(p('caswarm.castr'))
        assert.equal(files.length, new Set([...decodeIndex(readFileSync(p('casync.caibx'))).chunks].map(x => x.id.toString())).size)
        for (const f of files) assert.equal(detectCompression(readFileSync(f)), c.compression, f)
      })

      it('casync extracts from caswarm\'s store', () => {
        casync('extract', `--store=${p('caswarm.castr')}`, p('caswarm.caibx'), p('by-casync.img'))
        assert.ok(readFileSync(p('by-casync.img')).equals(data))
      })

      it('caswarm extracts from casync\'s store', () => {
        caswarm('extract', `--store=${p('casync.castr')}`, p('casync.caibx'), p('by-caswarm.img'))
        assert.ok(readFileSync(p('by-caswarm.img')).equals(data))
      })
    })
  }

  it('a casync-made index with a caswarm seed: chunks the store lacks come from the seed', () => {
    const dir = path.join(t.path, 'seeded')
    const p = (f: string): string => path.join(dir, f)
    exec('mkdir', ['-p', dir])
    const v1 = input(4_000_000, 'seeded')
    const v2 = Buffer.concat([v1.subarray(0, 1_000_000), Buffer.from('inserted by the test'), v1.subarray(1_000_000, 3_000_000), pseudoRandom(50_000, 71), v1.subarray(3_050_000)])
    writeFileSync(p('v1.img'), v1)
    writeFileSync(p('v2.img'), v2)
    casync('make', `--store=${p('s.castr')}`, p('v1.caibx'), p('v1.img'))
    casync('make', `--store=${p('s.castr')}`, p('v2.caibx'), p('v2.img'))
    const index1 = decodeIndex(readFileSync(p('v1.caibx')))
    const index2 = decodeIndex(readFileSync(p('v2.caibx')))
    for (const ch of index1.chunks) rmSync(p(`s.castr/${chunkPath(ch.id)}`), { force: true })
    const stats = JSON.parse(caswarm('extract', '--json', `--store=${p('s.castr')}`, `--seed=${p('v1.img')}`, p('v2.caibx'), p('out.img')))
    assert.ok(readFileSync(p('out.img')).equals(v2))
    const inV1 = new Set([...index1.chunks].map(ch => ch.id.toString()))
    const shared = [...index2.chunks].filter(ch => inV1.has(ch.id.toString())).length
    assert.ok(shared > index2.chunks.length / 2)
    assert.equal(stats.sources[`seed:${p('v1.img')}`].chunks + (stats.sources.repeat?.chunks ?? 0), shared, JSON.stringify(stats.sources))
    // and casync, given caswarm's seeded output as its seed, agrees
    casync('extract', `--store=${p('s.castr')}`, `--seed=${p('out.img')}`, p('v2.caibx'), p('out-casync.img'))
    assert.ok(readFileSync(p('out-casync.img')).equals(v2))
  })
})
