import '../helpers/setup.ts'
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { ChunkId } from '../../protocol/chunk-id.ts'
import type { Index } from '../../protocol/index-file.ts'
import { emptyStats } from '../../node/assemble.ts'
import { extractBlob } from '../../node/extract.ts'
import { zeroRunChunk } from '../../node/seed.ts'
import { openExtractSwarm } from '../../node/swarm/session.ts'
import { makeIndex } from '../../node/make.ts'
import type { GetOptions, RawChunkSource } from '../../node/store/chunk-store.ts'
import { LocalStore } from '../../node/store/local-store.ts'
import { generateKey } from '@libp2p/pnet'
import { setTimeout as sleep } from 'node:timers/promises'
import { SwarmHost } from '../../node/swarm/host.ts'
import { SwarmSource } from '../../node/swarm/source.ts'
import { pieces, pseudoRandom } from '../helpers/fixtures.ts'
import { tempDir } from '../helpers/temp-dir.ts'

/** An origin that counts what it is asked (a stand-in for an HTTP origin). */
class CountingOrigin implements RawChunkSource {
  readonly store: LocalStore
  requests = 0
  bytes = 0
  readonly asked = new Set<string>()
  constructor (store: LocalStore) { this.store = store }
  toString (): string { return 'origin' }
  async get (id: ChunkId, options?: GetOptions): Promise<Uint8Array> { this.requests++; this.asked.add(id.toString()); return await this.store.get(id, options) }
  async getCompressed (id: ChunkId, options?: GetOptions & { verify?: boolean }): Promise<Uint8Array> {
    this.requests++
    this.asked.add(id.toString())
    const b = await this.store.getCompressed(id, options)
    this.bytes += b.byteLength
    return b
  }

  async has (id: ChunkId): Promise<boolean> { return await this.store.has(id) }
  async close (): Promise<void> {}
}

/** A host that claims every chunk and serves garbage (each copy `delayMs` after it is asked for). */
class GarbageStore implements RawChunkSource {
  readonly delayMs: number
  served = 0
  constructor (delayMs = 0) { this.delayMs = delayMs }
  toString (): string { return 'garbage' }
  async get (): Promise<Uint8Array> { return new Uint8Array(10) }
  async getCompressed (): Promise<Uint8Array> {
    if (this.delayMs > 0) await sleep(this.delayMs)
    this.served++
    return Uint8Array.from([0x28, 0xb5, 0x2f, 0xfd, 1, 2, 3, 4])
  }
  async has (): Promise<boolean> { return true }
  async close (): Promise<void> {}
}

/** A store that serves each chunk `delayMs` after it is asked for, and counts the reads under way. */
class SlowStore implements RawChunkSource {
  readonly store: LocalStore
  readonly delayMs: number
  readonly concurrent = { now: 0, max: 0 }
  constructor (store: LocalStore, delayMs: number) { this.store = store; this.delayMs = delayMs }
  toString (): string { return 'slow' }
  async get (id: ChunkId, options?: GetOptions): Promise<Uint8Array> { return await this.store.get(id, options) }
  async getCompressed (id: ChunkId, options?: GetOptions & { verify?: boolean }): Promise<Uint8Array> {
    this.concurrent.max = Math.max(this.concurrent.max, ++this.concurrent.now)
    try {
      await sleep(this.delayMs)
      return await this.store.getCompressed(id, options)
    } finally {
      this.concurrent.now--
    }
  }

  async has (id: ChunkId): Promise<boolean> { return await this.store.has(id) }
  async close (): Promise<void> {}
}

const tmp = tempDir('caswarm-swarm-')
const data = pseudoRandom(3 * 1024 * 1024, 7)
let index: Index
let originStore: LocalStore

async function fleet (n: number, extra: SwarmHost[] = []): Promise<SwarmHost[]> {
  const hosts: SwarmHost[] = []
  for (let i = 0; i < n; i++) {
    const cache = new LocalStore(join(tmp.path, `run-${Math.random().toString(16).slice(2)}-cache${i}`))
    hosts.push(await SwarmHost.create({ store: cache, listen: ['/ip4/127.0.0.1/tcp/0'], mdns: false, peers: [...hosts, ...extra].flatMap(h => h.addresses()) }))
  }
  return hosts
}

describe('swarm on loopback (real libp2p nodes in one process)', () => {
  before(async () => {
    originStore = new LocalStore(join(tmp.path, 'origin.castr'))
    index = (await makeIndex((async function * () { yield * pieces(data, 1 << 20) })(), originStore)).index
  })
  after(() => { tmp.cleanup() })

  it('five hosts extracting at once fetch each chunk from the origin about once', async () => {
    const hosts = await fleet(5)
    const origin = new CountingOrigin(originStore)
    try {
      const distinct = new Set([...index.chunks].map(c => c.id.toString())).size
      const results = await Promise.all(hosts.map(async (host, i) => {
        const cache = (host as any).init.store as LocalStore
        const source = new SwarmSource({ host, index, digest: 'sha256', origins: [origin], cache, settle: 2000, minUptime: 0 })
        const stats = emptyStats()
        const out = join(tmp.path, `out-${i}`)
        await source.prepare([...index.chunks].map(c => c.id))
        await extractBlob(index, out, { sources: [source, origin], cache, stats, concurrency: 16 })
        source.mergeStats(stats)
        await source.close()
        return { out, stats, source }
      }))
      for (const r of results) assert.ok(Buffer.from(readFileSync(r.out)).equals(data), `${r.out} differs`)
      const peerBytes = results.reduce((n, r) => n + Object.entries(r.stats.sources).filter(([k]) => k.startsWith('peer:')).reduce((m, [, s]) => m + s.bytes, 0), 0)
      assert.ok(origin.requests <= Math.ceil(distinct * 1.2), `origin asked ${origin.requests} times for ${distinct} distinct chunks`)
      assert.ok(peerBytes >= data.length * 3, `only ${peerBytes} bytes came from peers`)
      console.log(`# loopback: ${origin.requests} origin requests for ${distinct} distinct chunks; ${peerBytes} bytes from peers, ${origin.bytes} wire bytes from origin`)
    } finally {
      await Promise.all(hosts.map(async h => await h.stop()))
    }
  })

  it('a fresh output with runs of zeros: the swarm session does not want the chunk of zeros, and the origin is never asked for it', async () => {
    const sparse = Buffer.concat([pseudoRandom(400_000, 81), Buffer.alloc(1_500_000), pseudoRandom(400_000, 82)])
    const store = new LocalStore(join(tmp.path, 'sparse-origin.castr'))
    const sparseIndex = (await makeIndex((async function * () { yield * pieces(sparse, 1 << 20) })(), store)).index
    const zero = sparseIndex.chunks.id(zeroRunChunk(sparseIndex))
    const [host] = await fleet(1)
    const origin = new CountingOrigin(store)
    const cache = (host as any).init.store as LocalStore
    const swarm = await openExtractSwarm({ index: sparseIndex, origins: [origin], cache, existing: host, settle: 200, minUptime: 0 })
    try {
      const stats = emptyStats()
      const out = join(tmp.path, 'sparse-out')
      await extractBlob(sparseIndex, out, { sources: [swarm.source, origin], cache, stats, onSeedsReady: swarm.seedsReady })
      // (what the source still wants: the swarm would fetch it ahead, from peers or the origin)
      const stillWanted = (swarm.source as any).wanted as Set<string>
      assert.equal(stillWanted.has(zero.toString()), false, 'the swarm wants the chunk of zeros')
      assert.ok(Buffer.from(readFileSync(out)).equals(sparse))
      assert.ok((stats.sources.zeros?.chunks ?? 0) >= 3, JSON.stringify(stats.sources))
      assert.ok(origin.requests > 0)
      assert.equal(origin.asked.has(zero.toString()), false, 'the origin was asked for the chunk of zeros')
    } finally {
      await swarm.close()
      await host!.stop()
    }
  })

  it('the owner prefetch starts once the hosts on the index stop arriving, not a whole settle after the join', async () => {
    const hosts = await fleet(3)
    const origin = new CountingOrigin(originStore)
    const settle = 60_000
    const quiet = 150
    try {
      const distinct = new Set([...index.chunks].map(c => c.id.toString())).size
      const results = await Promise.all(hosts.map(async (host, i) => {
        const cache = (host as any).init.store as LocalStore
        // the join ends as soon as every peer has answered (settle is only its deadline)
        const source = new SwarmSource({ host, index, digest: 'sha256', origins: [origin], cache, settle, quiet, minUptime: 0 })
        const stats = emptyStats()
        const out = join(tmp.path, `quiet-out-${i}`)
        await source.prepare([...index.chunks].map(c => c.id))
        // the extraction waits a little, so that the prefetch has something to do
        await sleep(quiet * 3)
        await extractBlob(index, out, { sources: [source, origin], cache, stats, concurrency: 2 })
        source.mergeStats(stats)
        const lastJoin = host.policy.lastWorkerJoin((source as any).key)
        await source.close()
        return { out, source, lastJoin }
      }))
      for (const r of results) {
        assert.ok(Buffer.from(readFileSync(r.out)).equals(data), `${r.out} differs`)
        const started = r.source.prefetchStartedAt
        assert.ok(started != null, 'the owner prefetch never started (it waited for the whole settle)')
        assert.ok(started - r.source.joinedAt < settle / 4, `the owner prefetch started ${started - r.source.joinedAt} ms after the join`)
        assert.ok(started >= r.lastJoin + quiet, `the owner prefetch started ${started - r.lastJoin} ms after the last host joined (quiet: ${quiet} ms)`)
      }
      assert.ok(origin.requests <= Math.ceil(distinct * 1.2), `origin asked ${origin.requests} times for ${distinct} distinct chunks`)
    } finally {
      await Promise.all(hosts.map(async h => await h.stop()))
    }
  })

  it('a host serving garbage is banned and changes nothing else', async () => {
    const evil = await SwarmHost.create({ store: new GarbageStore(), listen: ['/ip4/127.0.0.1/tcp/0'], mdns: false })
    const hosts = await fleet(2, [evil])
    const origin = new CountingOrigin(originStore)
    try {
      const results = await Promise.all(hosts.map(async (host, i) => {
        const cache = (host as any).init.store as LocalStore
        const source = new SwarmSource({ host, index, digest: 'sha256', origins: [origin], cache, settle: 2000, minUptime: 0 })
        const stats = emptyStats()
        const out = join(tmp.path, `evil-out-${i}`)
        await extractBlob(index, out, { sources: [source, origin], cache, stats })
        source.mergeStats(stats)
        await source.close()
        return { out, stats, host }
      }))
      for (const r of results) {
        assert.ok(Buffer.from(readFileSync(r.out)).equals(data))
        assert.equal(r.host.policy.isBanned(evil.peerId.toString(), Date.now()), true, 'the garbage host is banned')
        assert.ok((r.stats.invalid[`peer:${evil.peerId.toString()}`] ?? 0) >= 1)
        assert.equal(r.stats.sources[`peer:${evil.peerId.toString()}`], undefined)
      }
      const distinct = new Set([...index.chunks].map(c => c.id.toString())).size
      assert.ok(origin.requests <= Math.ceil(distinct * 1.2), `origin asked ${origin.requests} times for ${distinct}`)
    } finally {
      await Promise.all([...hosts, evil].map(async h => await h.stop()))
    }
  })

  it('a peer banned for a bad copy loses every other request at once: a slow garbage host costs one bad copy, not a batch of them', async () => {
    const garbage = new GarbageStore(400)
    const evil = await SwarmHost.create({ store: garbage, listen: ['/ip4/127.0.0.1/tcp/0'], mdns: false })
    const hosts = await fleet(2, [evil])
    const origin = new CountingOrigin(originStore)
    try {
      const started = Date.now()
      const results = await Promise.all(hosts.map(async (host, i) => {
        const cache = (host as any).init.store as LocalStore
        const source = new SwarmSource({ host, index, digest: 'sha256', origins: [origin], cache, settle: 2000, minUptime: 0 })
        const stats = emptyStats()
        const out = join(tmp.path, `slow-evil-out-${i}`)
        await extractBlob(index, out, { sources: [source, origin], cache, stats })
        source.mergeStats(stats)
        await source.close()
        return { out, stats, host }
      }))
      const evilKey = evil.peerId.toString()
      const counters = hosts.map(h => (h as any).exchange?.counters ?? (h as any).services?.exchange?.counters)
      for (const r of results) {
        assert.ok(Buffer.from(readFileSync(r.out)).equals(data))
        assert.equal(r.host.policy.isBanned(evilKey, Date.now()), true)
        // one bad copy per stream it had open to the garbage host (each read its first reply),
        // then nothing more: the rest of each batch was dropped, not read to its end
        const invalid = r.stats.invalid[`peer:${evilKey}`] ?? 0
        assert.ok(invalid >= 1 && invalid <= 2, `${invalid} bad copies received`)
      }
      console.log(`# slow garbage host: served ${garbage.served} bad copies; extracts took ${Date.now() - started} ms; exchange counters ${JSON.stringify(counters.map(c => c?.invalidReceived))}`)
    } finally {
      await Promise.all([...hosts, evil].map(async h => await h.stop()))
    }
  })

  it('a request that finds every upload slot taken waits for the next one while the short queue has room; more are answered BUSY', async () => {
    // one upload slot and a queue of one: of four requests at once, one is served, one waits
    // and is served next, two come back BUSY
    const slow = new SlowStore(originStore, 400)
    const server = await SwarmHost.create({ store: slow, listen: ['/ip4/127.0.0.1/tcp/0'], mdns: false, policy: { maxInbound: 1, inboundQueue: 1 } })
    const clients = await Promise.all([0, 1, 2, 3].map(async () => await SwarmHost.create({ listen: ['/ip4/127.0.0.1/tcp/0'], mdns: false, peers: server.addresses() })))
    try {
      for (const c of clients) {
        for (let i = 0; c.connectedPeers().length === 0; i++) { assert.ok(i < 100, 'no connection to the server'); await sleep(50) }
      }
      const chunks = [...index.chunks].slice(0, 4)
      const started = Date.now()
      const results = await Promise.allSettled(clients.map(async (c, i) => {
        const got = await c.exchange.fetchChunk(server.peerId, chunks[i]!.id, { digest: 'sha256', size: chunks[i]!.size })
        return { i, at: Date.now() - started, plain: got.plain }
      }))
      const served = results.flatMap(r => r.status === 'fulfilled' ? [r.value] : [])
      const refused = results.flatMap(r => r.status === 'rejected' ? [r.reason] : [])
      assert.equal(served.length, 2, `served ${served.length}`)
      for (const r of served) assert.ok(Buffer.from(r.plain).equals(data.subarray(chunks[r.i]!.start, chunks[r.i]!.start + chunks[r.i]!.size)), `chunk ${r.i} differs`)
      for (const err of refused) assert.equal(err.code, 'ERR_PEER_BUSY', String(err))
      // the queued one was served after the first (one slot: one upload at a time)
      const [first, second] = served.map(r => r.at).sort((a, b) => a - b)
      assert.ok(second! - first! >= 300, `served at ${first} and ${second} ms`)
      assert.deepEqual([server.exchange.counters.chunksServed, server.exchange.counters.busyServed], [2, 2])
      assert.equal(slow.concurrent.max, 1)
    } finally {
      await Promise.all([server, ...clients].map(async h => await h.stop()))
    }
  })

  it('a private swarm: hosts with the key connect, a host without it cannot', async () => {
    const key = new Uint8Array(95)
    generateKey(key)
    const other = new Uint8Array(95)
    generateKey(other)
    const a = await SwarmHost.create({ listen: ['/ip4/127.0.0.1/tcp/0'], mdns: false, swarmKey: key })
    const b = await SwarmHost.create({ listen: ['/ip4/127.0.0.1/tcp/0'], mdns: false, swarmKey: key, peers: a.addresses() })
    const c = await SwarmHost.create({ listen: ['/ip4/127.0.0.1/tcp/0'], mdns: false, swarmKey: other, peers: a.addresses() })
    const d = await SwarmHost.create({ listen: ['/ip4/127.0.0.1/tcp/0'], mdns: false, peers: a.addresses() })
    try {
      await sleep(300)
      assert.deepEqual(b.connectedPeers().map(p => p.toString()), [a.peerId.toString()])
      assert.deepEqual(c.connectedPeers(), [])
      assert.deepEqual(d.connectedPeers(), [])
    } finally {
      await Promise.all([a, b, c, d].map(async h => await h.stop()))
    }
  })
})
