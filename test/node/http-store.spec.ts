import '../helpers/setup.ts'
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { existsSync, readdirSync, readFileSync } from 'node:fs'
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { fileURLToPath } from 'node:url'
import { chunkPath } from '../../protocol/chunk-id.ts'
import { encodeIndex, type Index } from '../../protocol/index-file.ts'
import { makeIndex } from '../../node/make.ts'
import { readIndex, writeIndexFile } from '../../node/index-io.ts'
import { FailoverGroup } from '../../node/store/failover.ts'
import { HttpStore } from '../../node/store/http-store.ts'
import { LocalStore } from '../../node/store/local-store.ts'
import { defaultStoreFor, openStore } from '../../node/store/location.ts'
import { pseudoRandom } from '../helpers/fixtures.ts'
import { freePort } from '../helpers/nginx.ts'
import { tempDir } from '../helpers/temp-dir.ts'

const CLI = fileURLToPath(new URL('../../bin/caswarm.js', import.meta.url))

type Fault = 'ok' | '404' | '500' | '503-retry-after' | 'cut' | 'corrupt' | 'stall-headers' | 'stall-body' | 'chunked'

/** A tiny static server for the store dir whose answers a test can spoil, request by request. */
class FaultyServer {
  readonly root: string
  fault: (req: IncomingMessage, n: number) => Fault = () => 'ok'
  readonly log: string[] = []
  private readonly server: Server
  private readonly stalled: ServerResponse[] = []
  private n = 0

  constructor (root: string) {
    this.root = root
    this.server = createServer((req, res) => { this.handle(req, res) })
  }

  async start (): Promise<string> {
    await new Promise<void>(resolve => this.server.listen(0, '127.0.0.1', resolve))
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}/`
  }

  private handle (req: IncomingMessage, res: ServerResponse): void {
    const n = this.n++
    this.log.push(`${req.method!} ${req.url!}`)
    const file = join(this.root, decodeURIComponent(req.url!.split('?')[0]!))
    const fault = this.fault(req, n)
    if (fault === '500') { res.writeHead(500).end('oops'); return }
    if (fault === '503-retry-after') { res.writeHead(503, { 'retry-after': '1' }).end('busy'); return }
    if (fault === 'stall-headers') { this.stalled.push(res); return }
    let data: Buffer
    try { data = readFileSync(file) } catch { res.writeHead(404).end('not found'); return }
    if (fault === '404') { res.writeHead(404).end('not found'); return }
    if (fault === 'chunked') { res.writeHead(200); res.write(data.subarray(0, 100)); res.end(data.subarray(100)); return }
    res.writeHead(200, { 'content-length': data.byteLength })
    if (req.method === 'HEAD') { res.end(); return }
    if (fault === 'cut') { res.write(data.subarray(0, data.byteLength >> 1)); setImmediate(() => res.socket?.destroy()); return }
    if (fault === 'stall-body') { res.write(data.subarray(0, 10)); this.stalled.push(res); return }
    if (fault === 'corrupt') { const bad = Buffer.from(data); bad[bad.byteLength - 1]! ^= 0xff; res.end(bad); return }
    res.end(data)
  }

  async stop (): Promise<void> {
    for (const r of this.stalled) r.destroy()
    this.server.closeAllConnections()
    await new Promise(resolve => this.server.close(resolve))
  }
}

function cli (args: string[], env: Record<string, string> = {}): Promise<{ code: number, stdout: string, stderr: string }> {
  return new Promise(resolve => {
    execFile(process.execPath, [CLI, ...args], { env: { ...process.env, CASWARM_PEERS: 'off', ...env } }, (err: any, stdout, stderr) => {
      resolve({ code: err == null ? 0 : (typeof err.code === 'number' ? err.code : 1), stdout, stderr })
    })
  })
}

describe('HTTP chunk store', () => {
  const tmp = tempDir('caswarm-http-store-')
  const storeDir = join(tmp.path, 'default.castr')
  const data = pseudoRandom(1_500_000, 7)
  let index: Index
  let server: FaultyServer
  let base: string
  let storeUrl: string
  const fast = { retryDelay: 5, maxRetryDelay: 20 }

  before(async () => {
    const local = new LocalStore(storeDir)
    index = (await makeIndex((async function * () { yield data })(), local)).index
    await writeIndexFile(join(tmp.path, 'blob.caibx'), index)
    server = new FaultyServer(tmp.path)
    base = await server.start()
    storeUrl = `${base}default.castr`
  })
  after(async () => { await server.stop(); tmp.cleanup() })

  it('fetches and verifies every chunk, and counts requests and bytes honestly', async () => {
    server.fault = () => 'ok'
    const store = new HttpStore(storeUrl)
    try {
      const parts = await Promise.all([...index.chunks].map(async c => await store.get(c.id, { size: c.size })))
      assert.deepEqual(Buffer.concat(parts), data)
      const fileBytes = [...index.chunks].reduce((n, c) => n + readFileSync(join(storeDir, chunkPath(c.id))).byteLength, 0)
      const s = store.stats
      assert.equal(s.requests, index.chunks.length)
      assert.equal(s.chunks, index.chunks.length)
      assert.equal(s.bytesReceived, fileBytes)
      assert.equal(s.plainBytes, data.byteLength)
      assert.equal(s.retries, 0)
      assert.equal(store.toString(), storeUrl)
      assert.equal(await store.has(index.chunks.at(0).id), true)
    } finally { await store.close() }
  })

  it('a body without Content-Length is read whole; one larger than maxChunkFile is refused, with or without it', async () => {
    const c = [...index.chunks].reduce((a, b) => (a.size > b.size ? a : b))
    const fileSize = readFileSync(join(storeDir, chunkPath(c.id))).byteLength
    server.fault = () => 'chunked'
    const store = new HttpStore(storeUrl)
    try {
      assert.deepEqual(Buffer.from(await store.get(c.id, { size: c.size })), data.subarray(c.start, c.start + c.size))
    } finally { await store.close() }
    for (const fault of ['ok', 'chunked'] as const) {
      server.fault = () => fault
      const small = new HttpStore(storeUrl, { maxChunkFile: fileSize - 1, ...fast })
      try {
        await assert.rejects(small.get(c.id, { size: c.size }), (err: Error) => {
          assert.match(err.message, /larger than the \d+ (bytes )?allowed/)
          assert.ok(err.message.includes(chunkPath(c.id)), err.message)
          return true
        })
        assert.equal(small.stats.retries, 0, 'an oversize body is not retried')
      } finally { await small.close() }
    }
  })

  it('a 503 with Retry-After is retried after the time the server asked for, not the backoff', async () => {
    const c = index.chunks.at(0)
    const first = server.log.length // the number the next request gets
    server.fault = (_req, n) => (n === first ? '503-retry-after' : 'ok')
    const store = new HttpStore(storeUrl, fast) // backoff of 5-20 ms
    try {
      const t = performance.now()
      assert.deepEqual(Buffer.from(await store.get(c.id, { size: c.size })), data.subarray(c.start, c.start + c.size))
      const waited = performance.now() - t
      assert.equal(store.stats.retries, 1)
      assert.ok(waited >= 950, `retried after ${waited.toFixed(0)} ms, not the 1 s the server asked for`)
    } finally { await store.close() }
  })

  it('raw chunks: getCompressed returns the stored file, verified', async () => {
    const store = new HttpStore(storeUrl)
    try {
      const c = index.chunks.at(1)
      assert.deepEqual(Buffer.from(await store.getCompressed(c.id, { size: c.size })), readFileSync(join(storeDir, chunkPath(c.id))))
    } finally { await store.close() }
  })

  it('404 is ChunkMissingError naming the URL, asked once, and has() says false', async () => {
    server.fault = () => '404'
    const store = new HttpStore(storeUrl, fast)
    try {
      const c = index.chunks.at(0)
      await assert.rejects(store.get(c.id), (err: any) => err.code === 'ERR_CHUNK_MISSING' && err.message.includes(`${storeUrl}/${chunkPath(c.id)}`))
      assert.equal(store.stats.requests, 1)
      server.fault = () => 'ok'
      const absent = (await import('../../protocol/chunk-id.ts')).ChunkId.digest(Buffer.from('not stored'))
      assert.equal(await store.has(absent), false)
    } finally { await store.close() }
  })

  it('retries 500s, cut connections and a bad copy, and ends with the right bytes', async () => {
    const faults: Fault[] = ['500', 'cut', 'corrupt']
    const seen = new Map<string, number>()
    server.fault = (req) => {
      const k = req.url!
      const n = seen.get(k) ?? 0
      seen.set(k, n + 1)
      return n < 1 ? faults[k.length % 3 === 0 ? 0 : (k.charCodeAt(20) % 3)]! : 'ok'
    }
    const store = new HttpStore(storeUrl, fast)
    try {
      const parts = await Promise.all([...index.chunks].map(async c => await store.get(c.id, { size: c.size })))
      assert.deepEqual(Buffer.concat(parts), data)
      assert.equal(store.stats.retries, index.chunks.length)
      assert.equal(store.stats.requests, 2 * index.chunks.length)
    } finally { await store.close() }
  })

  it('a persistent 500 fails with ERR_ORIGIN naming the URL after the retries', async () => {
    server.fault = () => '500'
    const store = new HttpStore(storeUrl, { ...fast, retries: 2 })
    try {
      const c = index.chunks.at(0)
      await assert.rejects(store.get(c.id), (err: any) => err.code === 'ERR_ORIGIN' && err.statusCode === 500 &&
        err.message.includes(`${storeUrl}/${chunkPath(c.id)}`) && err.message.includes('3 attempts'))
      assert.equal(store.stats.requests, 3)
      assert.equal(store.stats.failures, 1)
    } finally { await store.close() }
  })

  it('a persistently corrupt chunk is ChunkInvalidError naming the URL (one retry)', async () => {
    server.fault = () => 'corrupt'
    const store = new HttpStore(storeUrl, fast)
    try {
      const c = index.chunks.at(2)
      await assert.rejects(store.get(c.id, { size: c.size }), (err: any) => err.code === 'ERR_CHUNK_INVALID' && err.message.includes(storeUrl))
      assert.equal(store.stats.requests, 2)
      assert.equal(store.stats.invalid, 2)
    } finally { await store.close() }
  })

  it('a stalled body or stalled headers time out with the URL named', async () => {
    const store = new HttpStore(storeUrl, { ...fast, timeout: 150, retries: 1 })
    try {
      server.fault = () => 'stall-body'
      await assert.rejects(store.get(index.chunks.at(0).id), (err: any) => err.code === 'UND_ERR_BODY_TIMEOUT' && err.message.includes(storeUrl))
      server.fault = () => 'stall-headers'
      await assert.rejects(store.get(index.chunks.at(1).id), (err: any) => err.code === 'UND_ERR_HEADERS_TIMEOUT' && err.message.includes(storeUrl))
    } finally { await store.close() }
  })

  it('an abort stops a fetch at once with the abort reason', async () => {
    server.fault = () => 'stall-headers'
    const store = new HttpStore(storeUrl, fast)
    try {
      const controller = new AbortController()
      const p = store.get(index.chunks.at(0).id, { signal: controller.signal })
      setTimeout(() => { controller.abort(new Error('stop now')) }, 50)
      await assert.rejects(p, /stop now/)
    } finally { await store.close() }
  })

  it('a|b failover: moves on after an outage, not after a missing chunk', async () => {
    server.fault = () => 'ok'
    const dead = new HttpStore('http://127.0.0.1:9/default.castr', { ...fast, retries: 0 })
    const good = new HttpStore(storeUrl, fast)
    const group = new FailoverGroup([dead, good])
    try {
      const c = index.chunks.at(0)
      assert.equal(group.toString(), `http://127.0.0.1:9/default.castr|${storeUrl}`)
      assert.equal(Buffer.compare(Buffer.from(await group.get(c.id, { size: c.size })), data.subarray(c.start, c.start + c.size)), 0)
      assert.equal(group.current, good)
      const empty = new HttpStore(`${base}nothing.castr`, fast)
      const group2 = new FailoverGroup([empty, good])
      await assert.rejects(group2.get(c.id), { code: 'ERR_CHUNK_MISSING' })
      assert.equal(good.stats.requests, 1)
      await group2.close()
    } finally { await group.close() }
  })

  it('openStore and defaultStoreFor understand URLs and a|b', async () => {
    const s = openStore(storeUrl, { digest: 'sha256' })
    assert.ok(s instanceof HttpStore)
    const g = openStore(`${storeDir}|${storeUrl}`, { digest: 'sha256' })
    assert.ok(g instanceof FailoverGroup)
    assert.ok(g.members[0] instanceof LocalStore)
    assert.equal(defaultStoreFor(`${base}x/y/v2.caibx?x=1`), `${base}x/y/default.castr`)
    await s.close(); await g.close()
  })

  it('readIndex reads a URL, retrying a cut; errors name the URL', async () => {
    let first = true
    server.fault = (req) => { if (req.url === '/blob.caibx' && first) { first = false; return 'cut' } return 'ok' }
    const remote = await readIndex(`${base}blob.caibx`)
    assert.deepEqual(encodeIndex(remote), encodeIndex(index))
    server.fault = () => 'ok'
    await assert.rejects(readIndex(`${base}nope.caibx`), (err: any) => err.code === 'ENOENT' && err.message.includes(`${base}nope.caibx`))
    await assert.rejects(readIndex(`${base}default.castr/${chunkPath(index.chunks.at(0).id)}`), (err: any) => err.code === 'ERR_INVALID_FORMAT' && err.message.includes(base))
  })

  it('CLI extract from a corrupt origin: exit 5, no output file; from a flaky one: the right bytes', async () => {
    const out = join(tmp.path, 'out.bin')
    server.fault = (req) => req.url!.endsWith('.cacnk') && req.url!.includes(`/${index.chunks.at(3).id.toString()}`) ? 'corrupt' : 'ok'
    const bad = await cli(['extract', '--no-progress', `${base}blob.caibx`, out])
    assert.equal(bad.code, 5, bad.stderr)
    assert.match(bad.stderr, new RegExp(index.chunks.at(3).id.toString()))
    assert.equal(existsSync(out), false)
    assert.deepEqual(readdirSync(tmp.path).filter(f => f.startsWith('out.bin')), [])
    let n = 0
    server.fault = (req) => req.url!.endsWith('.cacnk') && n++ % 3 === 0 ? (n % 2 === 0 ? '500' : 'cut') : 'ok'
    const ok = await cli(['extract', '--no-progress', `${base}blob.caibx`, out])
    assert.equal(ok.code, 0, ok.stderr)
    assert.deepEqual(readFileSync(out), data)
  })

  it('CLI extract from a store nobody answers for: exit 6 naming the URL, no output', async () => {
    const out = join(tmp.path, 'dead.bin')
    server.fault = () => 'ok'
    const dead = `http://127.0.0.1:${await freePort()}/nothing.castr`
    const r = await cli(['extract', '--no-progress', `--store=${dead}`, `${base}blob.caibx`, out])
    assert.equal(r.code, 6, r.stderr)
    assert.match(r.stderr, /127\.0\.0\.1:\d+\/nothing\.castr\/[0-9a-f]{4}\/[0-9a-f]{64}\.cacnk/)
    assert.match(r.stderr, /ECONNREFUSED/)
    assert.equal(existsSync(out), false) // only the hidden partial file is kept, for a later run to resume
  })
})
