import '../helpers/setup.ts'
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { fileURLToPath } from 'node:url'
import { decodeIndex } from '../../protocol/index-file.ts'
import { ChunkServer } from '../../node/http/server.ts'
import { pseudoRandom } from '../helpers/fixtures.ts'
import { startNginx, type Nginx } from '../helpers/nginx.ts'
import { tempDir } from '../helpers/temp-dir.ts'
import { needs, run } from '../helpers/tools.ts'

const CLI = fileURLToPath(new URL('../../bin/caswarm.js', import.meta.url))

function cli (args: string[], env: Record<string, string> = {}): Promise<{ code: number, stdout: string, stderr: string }> {
  return new Promise(resolve => {
    execFile(process.execPath, [CLI, ...args], { env: { ...process.env, CASWARM_PEERS: 'off', ...env } }, (err: any, stdout, stderr) => {
      resolve({ code: err == null ? 0 : (typeof err.code === 'number' ? err.code : 1), stdout, stderr })
    })
  })
}

function casync (args: string[]): Promise<{ code: number, stderr: string }> {
  return new Promise(resolve => {
    execFile('casync', args, (err: any, _stdout, stderr) => { resolve({ code: err == null ? 0 : (err.code ?? 1), stderr }) })
  })
}

const skip = needs('casync', 'nginx')

describe('HTTP interop: nginx, casync and caswarm serve', { skip }, () => {
  const tmp = tempDir('caswarm-http-interop-')
  const root = join(tmp.path, 'www')
  const v1 = join(tmp.path, 'v1.bin')
  const v2 = join(tmp.path, 'v2.bin')
  let nginx: Nginx

  before(async () => {
    mkdirSync(join(root, 'cw'), { recursive: true })
    mkdirSync(join(root, 'ca'), { recursive: true })
    const a = pseudoRandom(3_000_000, 21)
    writeFileSync(v1, a)
    writeFileSync(v2, Buffer.concat([a.subarray(0, 1_000_000), pseudoRandom(5000, 22), a.subarray(1_000_000, 2_000_000), a.subarray(2_100_000)]))
    for (const [name, file] of [['v1', v1], ['v2', v2]] as const) {
      const r = await cli(['make', '--no-progress', join(root, 'cw', `${name}.caibx`), file])
      assert.equal(r.code, 0, r.stderr)
    }
    run('casync', ['make', `--store=${join(root, 'ca', 'default.castr')}`, join(root, 'ca', 'v1.caibx'), v1])
    nginx = await startNginx(root, join(tmp.path, 'nginx'))
  })
  after(async () => { await nginx?.stop(); tmp.cleanup() })

  it('caswarm extracts from nginx a store made by caswarm (store URL derived from the index URL)', async () => {
    const out = join(tmp.path, 'cw-v1.out')
    const r = await cli(['extract', '--no-progress', `${nginx.url}cw/v1.caibx`, out])
    assert.equal(r.code, 0, r.stderr)
    assert.deepEqual(readFileSync(out), readFileSync(v1))
    assert.ok(nginx.requests().some(l => l.startsWith('GET /cw/default.castr/')))
  })

  it('caswarm extracts from nginx a store made by casync (SHA-512/256)', async () => {
    const out = join(tmp.path, 'ca-v1.out')
    const r = await cli(['extract', '--no-progress', `--store=${nginx.url}ca/default.castr`, `${nginx.url}ca/v1.caibx`, out])
    assert.equal(r.code, 0, r.stderr)
    assert.deepEqual(readFileSync(out), readFileSync(v1))
  })

  it('a seeded extract asks nginx for exactly the chunks the seed lacks, each once', async () => {
    const out = join(tmp.path, 'seeded-v2.out')
    const before = nginx.requests().length
    const r = await cli(['extract', '--no-progress', `--seed=${v1}`, `${nginx.url}cw/v2.caibx`, out])
    assert.equal(r.code, 0, r.stderr)
    assert.deepEqual(readFileSync(out), readFileSync(v2))
    const i1 = decodeIndex(readFileSync(join(root, 'cw', 'v1.caibx')))
    const i2 = decodeIndex(readFileSync(join(root, 'cw', 'v2.caibx')))
    const inSeed = new Set([...i1.chunks].map(c => c.id.toString()))
    const lacking = [...new Set([...i2.chunks].map(c => c.id.toString()).filter(id => !inSeed.has(id)))].sort()
    assert.ok(lacking.length > 0 && lacking.length < i2.chunks.length)
    const asked = nginx.requests().slice(before)
    const chunkGets = asked.filter(l => l.includes('.cacnk')).map(l => /([0-9a-f]{64})\.cacnk/.exec(l)![1]!).sort()
    assert.deepEqual(chunkGets, lacking)
    assert.deepEqual(asked.filter(l => !l.includes('.cacnk')), ['GET /cw/v2.caibx HTTP/1.1'])
  })

  it('a|b failover: a dead mirror first, nginx second', async () => {
    const out = join(tmp.path, 'failover.out')
    const r = await cli(['extract', '--no-progress', `--store=http://127.0.0.1:9/default.castr|${nginx.url}cw/default.castr`, `${nginx.url}cw/v1.caibx`, out])
    assert.equal(r.code, 0, r.stderr)
    assert.deepEqual(readFileSync(out), readFileSync(v1))
  })

  it('casync extracts from nginx a store made by caswarm', async () => {
    const out = join(tmp.path, 'casync-from-nginx.out')
    const r = await casync(['extract', `--store=${nginx.url}cw/default.castr`, `${nginx.url}cw/v2.caibx`, out])
    assert.equal(r.code, 0, r.stderr)
    assert.deepEqual(readFileSync(out), readFileSync(v2))
  })

  it('casync extracts from caswarm serve (index and chunks)', async () => {
    const requests: string[] = []
    const server = new ChunkServer({ store: join(root, 'cw', 'default.castr'), indexDir: join(root, 'cw'), onRequest: e => requests.push(`${e.method} ${e.path} ${e.status}`) })
    const url = await server.listen(0)
    try {
      const out = join(tmp.path, 'casync-from-serve.out')
      const r = await casync(['extract', `--store=${url}default.castr`, `${url}v2.caibx`, out])
      assert.equal(r.code, 0, r.stderr)
      assert.deepEqual(readFileSync(out), readFileSync(v2))
      const i2 = decodeIndex(readFileSync(join(root, 'cw', 'v2.caibx')))
      assert.equal(requests.filter(l => l.includes('.cacnk') && l.endsWith(' 200')).length, new Set([...i2.chunks].map(c => c.id.toString())).size)
    } finally { await server.close() }
  })
})
