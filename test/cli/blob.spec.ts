import '../helpers/setup.ts'
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { chmodSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import * as path from 'node:path'
import { after, before, describe, it } from 'node:test'
import { fileURLToPath } from 'node:url'
import { chunkPath } from '../../protocol/chunk-id.ts'
import { decodeIndex } from '../../protocol/index-file.ts'
import { pseudoRandom, specRandom } from '../helpers/fixtures.ts'
import { tempDir } from '../helpers/temp-dir.ts'
import { haveTool, needs } from '../helpers/tools.ts'

const CLI = fileURLToPath(new URL('../../bin/caswarm.js', import.meta.url))

interface Result { code: number, stdout: string, stderr: string }

function caswarm (...args: string[]): Result {
  const r = spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', env: { ...process.env, CI: '1', CASWARM_PEERS: 'off' }, maxBuffer: 1 << 26 })
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr }
}

function ok (r: Result): Result {
  assert.equal(r.code, 0, `exit ${r.code}: ${r.stderr}`)
  return r
}

/** v1: 2.5 MB of mixed data; v2: v1 with an insertion, an overwrite and an appended tail. */
function versions (): { v1: Buffer, v2: Buffer } {
  const text = Buffer.from('all work and no play makes jack a dull boy. '.repeat(20000)).subarray(0, 700_000)
  const v1 = Buffer.concat([specRandom(1_000_000, 'cli-v1'), text, pseudoRandom(800_000, 41)])
  const v2 = Buffer.concat([v1.subarray(0, 300_000), Buffer.from('NEW'.repeat(700)), v1.subarray(300_000, 1_900_000), pseudoRandom(30_000, 42), v1.subarray(1_930_000), pseudoRandom(40_000, 43)])
  return { v1, v2 }
}

describe('caswarm make / extract (CLI)', () => {
  const t = tempDir()
  const p = (...names: string[]): string => path.join(t.path, ...names)
  const { v1, v2 } = versions()
  const sources = (json: string): Record<string, { chunks: number, bytes: number }> => JSON.parse(json).sources

  before(() => {
    writeFileSync(p('v1.img'), v1)
    writeFileSync(p('v2.img'), v2)
  })
  after(() => { t.cleanup() })

  it('make - reads the blob from standard input: the same index and digest as from the file', () => {
    const fromFile = ok(caswarm('make', '--chunk-size=16384', '--store', p('stdin.castr'), p('file.caibx'), p('v2.img')))
    const r = spawnSync(process.execPath, [CLI, 'make', '--chunk-size=16384', '--store', p('stdin.castr'), p('stdin.caibx'), '-'], { input: v2, encoding: 'utf8', env: { ...process.env, CI: '1', CASWARM_PEERS: 'off' }, maxBuffer: 1 << 26 })
    assert.equal(r.status, 0, r.stderr)
    assert.equal(r.stdout, fromFile.stdout)
    assert.ok(readFileSync(p('stdin.caibx')).equals(readFileSync(p('file.caibx'))))
    ok(caswarm('extract', '--store', p('stdin.castr'), p('stdin.caibx'), p('stdin.out')))
    assert.ok(readFileSync(p('stdin.out')).equals(v2))
  })

  it('make writes the index and default.castr beside it; extract rebuilds the file (--json stats)', () => {
    const made = JSON.parse(ok(caswarm('make', '--json', '--chunk-size=16384', p('v1.caibx'), p('v1.img'))).stdout)
    assert.equal(made.bytes, v1.byteLength)
    assert.equal(made.newChunks, made.chunks)
    assert.equal(made.store, `local:${p('default.castr')}`)
    assert.ok(existsSync(p('default.castr')))
    const plain = ok(caswarm('make', '--chunk-size=16384', p('v2.caibx'), p('v2.img')))
    assert.match(plain.stdout, /^[0-9a-f]{64}\n$/) // like casync: the stream digest
    const stats = JSON.parse(ok(caswarm('extract', '--json', p('v1.caibx'), p('out1.img'))).stdout)
    assert.ok(readFileSync(p('out1.img')).equals(v1))
    assert.equal(stats.bytes, v1.byteLength)
    assert.equal(stats.chunks, decodeIndex(readFileSync(p('v1.caibx'))).chunks.length)
    assert.ok(sources(JSON.stringify(stats))[`local:${p('default.castr')}`]!.chunks > 0)
  })

  describe('with a store that lacks the chunks v1 holds', () => {
    before(() => {
      // lean.castr: v2's chunks minus every chunk of v1
      ok(caswarm('make', '--chunk-size=16384', `--store=${p('lean.castr')}`, p('v2.caibx'), p('v2.img')))
      for (const c of decodeIndex(readFileSync(p('v1.caibx'))).chunks) rmSync(p('lean.castr', chunkPath(c.id)), { force: true })
    })

    it('--seed=v1 rebuilds v2, most chunks from the seed', () => {
      const r = ok(caswarm('extract', '--json', `--store=${p('lean.castr')}`, `--seed=${p('v1.img')}`, p('v2.caibx'), p('out2.img')))
      assert.ok(readFileSync(p('out2.img')).equals(v2))
      const s = sources(r.stdout)
      const total = decodeIndex(readFileSync(p('v2.caibx'))).chunks.length
      assert.ok(s[`seed:${p('v1.img')}`]!.chunks > total / 2, r.stdout)
      assert.ok(s[`local:${p('lean.castr')}`]!.chunks > 0)
    })

    it('the existing output is an implicit seed', () => {
      writeFileSync(p('out3.img'), v1)
      const r = ok(caswarm('extract', '--json', `--store=${p('lean.castr')}`, p('v2.caibx'), p('out3.img')))
      assert.ok(readFileSync(p('out3.img')).equals(v2))
      assert.ok(sources(r.stdout)[`seed-output:${p('out3.img')}`]!.chunks > 0, r.stdout)
    })

    it('missing chunks: exit 4, how many and which stores; no output created, an existing one untouched', () => {
      const r = caswarm('extract', `--store=${p('lean.castr')}`, p('v2.caibx'), p('none.img'))
      assert.equal(r.code, 4, r.stderr)
      assert.match(r.stderr, /\d+ chunks? missing/)
      assert.ok(r.stderr.includes(`local:${p('lean.castr')}`), r.stderr)
      assert.equal(existsSync(p('none.img')), false)
      writeFileSync(p('keep.img'), 'do not touch')
      const again = caswarm('extract', `--store=${p('lean.castr')}`, '--extra-store', p('empty.castr'), p('v2.caibx'), p('keep.img'))
      assert.equal(again.code, 4, again.stderr)
      assert.ok(again.stderr.includes(`local:${p('empty.castr')}`), again.stderr)
      assert.equal(readFileSync(p('keep.img'), 'utf8'), 'do not touch')
    })
  })

  it('resumes an interrupted extract: right bytes of the partial file are reused in place', () => {
    const partial = Buffer.from(v1.subarray(0, 2_000_000))
    partial.fill(0x55, 600_000, 900_000)
    writeFileSync(p('.out4.img.caswarm-partial'), partial)
    const r = ok(caswarm('extract', '--json', p('v1.caibx'), p('out4.img')))
    assert.ok(readFileSync(p('out4.img')).equals(v1))
    const s = sources(r.stdout)
    assert.ok(s['in-place']!.chunks > 10, r.stdout)
    assert.ok(s[`local:${p('default.castr')}`]!.chunks > 0, r.stdout)
    assert.equal(existsSync(p('.out4.img.caswarm-partial')), false)
  })

  it('a corrupted chunk in --store is taken from --extra-store and counted as invalid', () => {
    mkdirSync(p('bad'))
    ok(caswarm('make', '--chunk-size=16384', `--store=${p('bad', 'default.castr')}`, p('bad', 'v1.caibx'), p('v1.img')))
    const c = decodeIndex(readFileSync(p('bad', 'v1.caibx'))).chunks.at(2)
    const file = p('bad', 'default.castr', chunkPath(c.id))
    chmodSync(file, 0o644)
    const bytes = readFileSync(file)
    bytes[bytes.length >> 1]! ^= 1
    writeFileSync(file, bytes)
    const r = ok(caswarm('extract', '--json', `--extra-store=${p('default.castr')}`, p('bad', 'v1.caibx'), p('out5.img')))
    assert.ok(readFileSync(p('out5.img')).equals(v1))
    const stats = JSON.parse(r.stdout)
    assert.equal(stats.invalid[`local:${p('bad', 'default.castr')}`], 1, r.stdout)
    assert.equal(stats.sources[`local:${p('default.castr')}`].chunks, 1, r.stdout)
  })

  it('a truncated or corrupt index: exit 3 naming the file and the offset', () => {
    const good = readFileSync(p('v1.caibx'))
    writeFileSync(p('trunc.caibx'), good.subarray(0, good.byteLength - 100))
    const r = caswarm('extract', `--store=${p('default.castr')}`, p('trunc.caibx'), p('x.img'))
    assert.equal(r.code, 3, r.stderr)
    assert.ok(r.stderr.includes(p('trunc.caibx')), r.stderr)
    assert.match(r.stderr, /truncated/)
    assert.match(r.stderr, /byte \d+/)
    const bad = Buffer.from(good)
    bad.writeBigUInt64LE(0n, 64 + 40) // the second chunk ends at 0
    writeFileSync(p('bad.caibx'), bad)
    const r2 = caswarm('extract', `--store=${p('default.castr')}`, p('bad.caibx'), p('x.img'))
    assert.equal(r2.code, 3, r2.stderr)
    assert.ok(r2.stderr.includes(p('bad.caibx')) && r2.stderr.includes('byte 104'), r2.stderr)
    assert.equal(existsSync(p('x.img')), false)
  })

  it('an unwritable output directory: exit 7 with a clear message', () => {
    const dir = p('locked')
    mkdirSync(dir)
    const root = process.getuid?.() === 0
    if (root && !haveTool('chattr')) return // root ignores modes; chattr +i is the only lock then
    if (root) spawnSync('chattr', ['+i', dir])
    else chmodSync(dir, 0o555)
    try {
      const r = caswarm('extract', `--store=${p('default.castr')}`, p('v1.caibx'), path.join(dir, 'out.img'))
      assert.equal(r.code, 7, r.stderr)
      assert.match(r.stderr, /cannot write output .*out\.img: (permission denied|Operation not permitted)/i)
      const gone = caswarm('extract', `--store=${p('default.castr')}`, p('v1.caibx'), p('no', 'such', 'dir', 'out.img'))
      assert.equal(gone.code, 7, gone.stderr)
      assert.match(gone.stderr, /does not exist/)
    } finally {
      if (root) spawnSync('chattr', ['-i', dir])
      else chmodSync(dir, 0o755)
    }
  })

  it('usage errors exit 2', () => {
    assert.equal(caswarm('make', '--chunk-size=1:2', p('y.caibx'), p('v1.img')).code, 2)
    assert.equal(caswarm('make', '--digest=md5', p('y.caibx'), p('v1.img')).code !== 0, true)
    assert.equal(caswarm('extract').code, 2)
  })

  it('a progress bar on a terminal for blob and tree make/extract; none with --no-progress or without one', { skip: needs('script') }, () => {
    mkdirSync(p('bar-tree', 'sub'), { recursive: true })
    writeFileSync(p('bar-tree', 'sub', 'a'), v1)
    writeFileSync(p('bar-tree', 'b'), v2)
    /** runs the CLI with stderr on a pseudo-terminal (util-linux `script`); what it showed there */
    const onTerminal = (...args: string[]): string => {
      const cmd = [process.execPath, CLI, ...args].map(a => `'${a.replace(/'/g, "'\\''")}'`).join(' ')
      const env: Record<string, string | undefined> = { ...process.env, CASWARM_PEERS: 'off' }
      delete env.CI
      const r = spawnSync('script', ['-qec', `${cmd} >/dev/null`, '/dev/null'], { encoding: 'utf8', env, maxBuffer: 1 << 26 })
      assert.equal(r.status, 0, `exit ${String(r.status)}: ${r.stdout}${r.stderr}`)
      return r.stdout
    }
    // each case writes its output under a name of its own per run (n)
    const cases: Array<[string, (n: string) => string[], RegExp]> = [
      ['blob make', n => ['make', p(`bar${n}.caibx`), p('v1.img')], /make \[.*\] \d+% \| [\d.]+\/2\.5 MB/],
      ['blob extract', n => ['extract', p('bar.caibx'), p(`bar${n}.img`)], /extract \[.*\] \d+% \| [\d.]+\/2\.5 MB/],
      ['.catar make', n => ['make', p(`bar${n}.catar`), p('bar-tree')], /make [\d.]+ MB \| \d+ MB\/s/],
      ['.catar extract', n => ['extract', p('bar.catar'), p(`bar-catar${n}`)], /extract \[.*\] \d+% \| [\d.]+\/[\d.]+ MB/],
      ['.caidx make', n => ['make', p(`bar${n}.caidx`), p('bar-tree')], /make [\d.]+ MB \| \d+ MB\/s/],
      ['.caidx extract', n => ['extract', p('bar.caidx'), p(`bar-caidx${n}`)], /extract \[.*\] \d+% \| [\d.]+\/[\d.]+ MB/]
    ]
    for (const [what, args, bar] of cases) {
      assert.match(onTerminal(...args('')), bar, what)
      // the same without a terminal, or with --no-progress on one: no bar
      assert.doesNotMatch(ok(caswarm(...args('-2'))).stderr, /MB\/s|\x1b\[/, `${what} without a terminal`)
      const [verb, ...rest] = args('-3')
      assert.doesNotMatch(onTerminal(verb!, '--no-progress', ...rest), /MB\/s|\x1b\[/, `${what} --no-progress`)
    }
  })

  it('--help shows examples', () => {
    for (const verb of ['make', 'extract']) {
      const r = ok(caswarm(verb, '--help'))
      assert.match(r.stdout, /Examples:/)
      assert.match(r.stdout, new RegExp(`caswarm ${verb} .*\\.caibx`))
    }
    assert.match(ok(caswarm('--help')).stdout, /Exit codes:/)
  })
})
