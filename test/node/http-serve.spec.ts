import '../helpers/setup.ts'
import assert from 'node:assert/strict'
import { execFile, spawn } from 'node:child_process'
import { existsSync, mkdirSync, readFileSync, writeFileSync, readdirSync } from 'node:fs'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { fileURLToPath } from 'node:url'
import { request } from 'undici'
import { ChunkId, chunkPath } from '../../protocol/chunk-id.ts'
import { compress } from '../../protocol/compression.ts'
import { decodeIndex, encodeIndex, type Index } from '../../protocol/index-file.ts'
import { ChunkServer, formatLogEntry, type RequestLogEntry } from '../../node/http/server.ts'
import { parseListen } from '../../cli/commands/serve.ts'
import { HttpUploadStore } from '../../node/http/upload.ts'
import { makeIndex } from '../../node/make.ts'
import { writeIndexFile } from '../../node/index-io.ts'
import { LocalStore } from '../../node/store/local-store.ts'
import { pseudoRandom } from '../helpers/fixtures.ts'
import { tempDir } from '../helpers/temp-dir.ts'

const CLI = fileURLToPath(new URL('../../bin/caswarm.js', import.meta.url))

function cli (args: string[], env: Record<string, string> = {}): Promise<{ code: number, stdout: string, stderr: string }> {
  return new Promise(resolve => {
    execFile(process.execPath, [CLI, ...args], { env: { ...process.env, CASWARM_PEERS: 'off', ...env } }, (err: any, stdout, stderr) => {
      resolve({ code: err == null ? 0 : (typeof err.code === 'number' ? err.code : 1), stdout, stderr })
    })
  })
}

async function fetch (url: string, init: { method?: 'GET' | 'HEAD' | 'PUT', body?: Uint8Array, token?: string } = {}): Promise<{ status: number, body: Buffer, headers: Record<string, any> }> {
  const res = await request(url, {
    method: init.method ?? 'GET',
    body: init.body != null ? Buffer.from(init.body) : undefined,
    headers: init.token != null ? { authorization: `Bearer ${init.token}` } : {}
  })
  return { status: res.statusCode, body: Buffer.from(await res.body.arrayBuffer()), headers: res.headers }
}

describe('caswarm serve', () => {
  const tmp = tempDir('caswarm-serve-')
  const srv = join(tmp.path, 'srv')
  const storeDir = join(srv, 'default.castr')
  const data = pseudoRandom(800_000, 3)
  const TOKEN = 'test-token-123'
  let index: Index
  let server: ChunkServer
  let base: string
  const log: RequestLogEntry[] = []

  before(async () => {
    index = (await makeIndex((async function * () { yield data })(), new LocalStore(storeDir))).index
    await writeIndexFile(join(srv, 'blob.caibx'), index)
    server = new ChunkServer({ store: storeDir, indexDir: srv, token: TOKEN, onRequest: e => log.push(e) })
    base = await server.listen(0)
  })
  after(async () => { await server.close(); tmp.cleanup() })

  it('GET and HEAD chunks at the static paths, and indexes from --index-dir', async () => {
    const c = index.chunks.at(0)
    const file = readFileSync(join(storeDir, chunkPath(c.id)))
    for (const url of [`${base}default.castr/${chunkPath(c.id)}`, `${base}${chunkPath(c.id)}`]) {
      const r = await fetch(url)
      assert.equal(r.status, 200)
      assert.deepEqual(r.body, file)
      assert.match(r.headers['cache-control'], /immutable/)
    }
    const head = await fetch(`${base}default.castr/${chunkPath(c.id)}`, { method: 'HEAD' })
    assert.equal(head.status, 200)
    assert.equal(Number(head.headers['content-length']), file.byteLength)
    assert.equal(head.body.byteLength, 0)
    const idx = await fetch(`${base}blob.caibx`)
    assert.equal(idx.status, 200)
    assert.deepEqual(idx.body, readFileSync(join(srv, 'blob.caibx')))
    assert.equal(server.storeUrl, `${base}default.castr/`)
  })

  it('404 for absent chunks and other paths; no escape from the index dir', async () => {
    const absent = ChunkId.digest(Buffer.from('absent'))
    assert.equal((await fetch(`${base}default.castr/${chunkPath(absent)}`)).status, 404)
    assert.equal((await fetch(`${base}default.castr/0000/${absent.toString()}.cacnk`)).status, 404)
    assert.equal((await fetch(`${base}nothing.txt`)).status, 404)
    assert.notEqual((await fetch(`${base}..%2f..%2fetc%2fx.caibx`)).status, 200)
    assert.notEqual((await fetch(`${base}%2e%2e/x.caibx`)).status, 200)
    assert.equal((await fetch(`${base}blob.caibx`, { method: 'PUT', body: Buffer.from('x') })).status, 401)
  })

  it('PUT: a token is needed; a bad chunk or index is refused and not kept', async () => {
    const plain = Buffer.from('a chunk uploaded in a test')
    const id = ChunkId.digest(plain)
    const url = `${base}default.castr/${chunkPath(id)}`
    const compressed = await compress(plain)
    assert.equal((await fetch(url, { method: 'PUT', body: compressed })).status, 401)
    assert.equal((await fetch(url, { method: 'PUT', body: compressed, token: 'wrong' })).status, 401)
    const wrong = await compress(Buffer.from('other bytes'))
    const rejected = await fetch(url, { method: 'PUT', body: wrong, token: TOKEN })
    assert.equal(rejected.status, 422)
    assert.match(rejected.body.toString(), /rejected/)
    assert.equal(existsSync(join(storeDir, chunkPath(id))), false)
    assert.equal((await fetch(url, { method: 'PUT', body: Buffer.from('garbage'), token: TOKEN })).status, 422)
    assert.equal((await fetch(url, { method: 'PUT', body: compressed, token: TOKEN })).status, 201)
    assert.equal((await fetch(url, { method: 'PUT', body: compressed, token: TOKEN })).status, 200)
    assert.deepEqual(readFileSync(join(storeDir, chunkPath(id))), Buffer.from(compressed))
    assert.equal((await fetch(`${base}up/bad.caibx`, { method: 'PUT', body: Buffer.from('not an index'), token: TOKEN })).status, 422)
    assert.equal(existsSync(join(srv, 'up', 'bad.caibx')), false)
  })

  it('a server without a token takes no uploads', async () => {
    const ro = new ChunkServer({ store: storeDir })
    const u = await ro.listen(0)
    try {
      const plain = Buffer.from('x')
      const r = await fetch(`${u}default.castr/${chunkPath(ChunkId.digest(plain))}`, { method: 'PUT', body: await compress(plain), token: TOKEN })
      assert.equal(r.status, 405)
      const store = new HttpUploadStore(`${u}default.castr`, { token: TOKEN })
      await assert.rejects(store.put(ChunkId.digest(plain), plain), (err: any) => err.code === 'ERR_ORIGIN' && err.statusCode === 405 && err.message.includes(u))
      await store.close()
    } finally { await ro.close() }
  })

  it('metrics and the request log', async () => {
    const m = await fetch(`${base}metrics`)
    assert.equal(m.status, 200)
    const text = m.body.toString()
    assert.match(text, /caswarm_http_requests_total\{method="GET",kind="chunk",status="200"\} \d+/)
    assert.match(text, /caswarm_uploads_total\{kind="chunk",result="rejected"\} 2/)
    assert.match(text, /caswarm_http_request_duration_seconds_bucket/)
    const line = formatLogEntry(log.find(e => e.kind === 'index')!)
    assert.match(line, /^127\.0\.0\.1 - - \[.+\] "GET \/blob\.caibx HTTP\/1\.1" 200 \d+ /)
  })

  it('make --store=http:// uploads only the chunks the server lacks, then the index; extract reads it back', async () => {
    const v1 = join(tmp.path, 'v1.bin')
    const v2 = join(tmp.path, 'v2.bin')
    writeFileSync(v1, pseudoRandom(1_200_000, 11))
    const b = Buffer.from(readFileSync(v1))
    writeFileSync(v2, Buffer.concat([b.subarray(0, 600_000), Buffer.from('inserted bytes here'), b.subarray(600_000)]))
    const env = { CASWARM_TOKEN: TOKEN }
    const storeUrl = `${base}default.castr`
    const before1 = readdirSync(storeDir).length
    const r1 = await cli(['make', '--no-progress', `--store=${storeUrl}`, `${base}v/v1.caibx`, v1], env)
    assert.equal(r1.code, 0, r1.stderr)
    const i1 = decodeIndex(readFileSync(join(srv, 'v', 'v1.caibx')))
    assert.ok(readdirSync(storeDir).length > before1)
    for (const c of i1.chunks) assert.ok(existsSync(join(storeDir, chunkPath(c.id))), c.id.toString())

    log.length = 0
    const r2 = await cli(['make', '--no-progress', `--store=${storeUrl}`, `${base}v/v2.caibx`, v2], env)
    assert.equal(r2.code, 0, r2.stderr)
    const i2 = decodeIndex(readFileSync(join(srv, 'v', 'v2.caibx')))
    const had = new Set([...i1.chunks].map(c => c.id.toString()))
    const fresh = new Set([...i2.chunks].map(c => c.id.toString()).filter(id => !had.has(id)))
    assert.ok(fresh.size >= 1 && fresh.size < i2.chunks.length / 2)
    const puts = log.filter(e => e.method === 'PUT' && e.kind === 'chunk').map(e => /([0-9a-f]{64})\.cacnk$/.exec(e.path)![1]!)
    assert.deepEqual(puts.sort(), [...fresh].sort())
    assert.equal(log.filter(e => e.method === 'PUT' && e.kind === 'index').length, 1)

    const noToken = await cli(['make', '--no-progress', `--store=${storeUrl}`, `${base}v/v3.caibx`, v2], { CASWARM_TOKEN: '' })
    assert.equal(noToken.code, 6, noToken.stderr)
    assert.match(noToken.stderr, /401/)

    const out = join(tmp.path, 'v2.out')
    const x = await cli(['extract', '--no-progress', `--store=${storeUrl}`, `${base}v/v2.caibx`, out])
    assert.equal(x.code, 0, x.stderr)
    assert.deepEqual(readFileSync(out), readFileSync(v2))
    assert.deepEqual(Buffer.from(encodeIndex(i2)), readFileSync(join(srv, 'v', 'v2.caibx')))
  })

  it('the CLI: listens where told, logs each request on stdout, stops cleanly on SIGTERM', async () => {
    assert.deepEqual(parseListen('0.0.0.0:80'), { host: '0.0.0.0', port: 80 })
    assert.deepEqual(parseListen(':8080'), { host: '127.0.0.1', port: 8080 })
    assert.deepEqual(parseListen('[::1]:9'), { host: '::1', port: 9 })
    assert.throws(() => parseListen('host:99999'), { code: 'ERR_INVALID_ARGUMENT' })
    const child = spawn(process.execPath, [CLI, 'serve', `--store=${storeDir}`, `--index-dir=${srv}`, '--listen=127.0.0.1:0'], { stdio: ['ignore', 'pipe', 'pipe'] })
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (d: Buffer) => { stdout += d.toString() })
    const url = await new Promise<string>((resolve, reject) => {
      child.stderr.on('data', (d: Buffer) => {
        stderr += d.toString()
        const m = /listening on (http:\/\/\S+\/)/.exec(stderr)
        if (m != null) resolve(m[1]!)
      })
      child.once('exit', (code) => { reject(new Error(`serve exited with ${String(code)}: ${stderr}`)) })
    })
    const r = await fetch(`${url}blob.caibx`)
    assert.equal(r.status, 200)
    const exited = new Promise<number | null>(resolve => child.once('exit', resolve))
    await new Promise(resolve => setTimeout(resolve, 100))
    child.kill('SIGTERM')
    assert.equal(await exited, 0)
    assert.match(stdout, /"GET \/blob\.caibx HTTP\/1\.1" 200 \d+/)
  })

  it('list and mtree read a remote .caidx and its store over HTTP', async () => {
    const tree = join(tmp.path, 'tree')
    mkdirSync(join(tree, 'sub'), { recursive: true })
    writeFileSync(join(tree, 'a.txt'), 'hello\n')
    writeFileSync(join(tree, 'sub', 'b.txt'), 'world\n')
    const made = await cli(['make', '--no-progress', `--store=${storeDir}`, join(srv, 'tree.caidx'), tree])
    assert.equal(made.code, 0, made.stderr)
    const local = await cli(['list', `--store=${storeDir}`, join(srv, 'tree.caidx')])
    const remote = await cli(['list', `${base}tree.caidx`])
    assert.equal(remote.code, 0, remote.stderr)
    assert.match(remote.stdout, /-rw-r--r-- sub\/b\.txt/)
    assert.equal(remote.stdout, local.stdout)
    const mtree = await cli(['mtree', `${base}tree.caidx`])
    assert.equal(mtree.code, 0, mtree.stderr)
    assert.match(mtree.stdout, /^a\.txt type=file .*size=6/m)
  })
})
