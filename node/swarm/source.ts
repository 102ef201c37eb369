// The LAN swarm as a chunk source for one extraction. Put it before the origin stores: for each
// chunk it asks the swarm policy what to do: take it from a peer that holds it, wait for the
// peer that owns its origin fetch (or is fetching it), or, when this host owns it (or the wait
// timed out), fetch it from the origin stores itself. Every chunk, from a peer or the origin, is
// verified (decodeChunk), written to the cache in its compressed form and announced to the
// peers at once, so they can take it from here while the extraction goes on.
import { setMaxListeners } from 'node:events'
import { setTimeout as sleep } from 'node:timers/promises'
import { ChunkId, type DigestAlgorithm } from '../../protocol/chunk-id.ts'
import { ChunkMissingError } from '../../protocol/errors.ts'
import type { Index } from '../../protocol/index-file.ts'
import type { ExtractStats } from '../assemble.ts'
import { defaultLogger, type Logger } from '../logger.ts'
import { isRawChunkSource, type AbortOptions, type ChunkSource, type ChunkStore, type GetOptions } from '../store/chunk-store.ts'
import { decodeChunk } from '../store/verify.ts'
import { indexKeyOf, type SwarmHost } from './host.ts'
import { chunkSizeDefaults, hashKey, nextRandom, ownerLanes, pickRecent, PICK_AMONG } from './policy.ts'

export interface SwarmSourceInit {
  host: SwarmHost
  /** The index being extracted. */
  index: Index
  digest: DigestAlgorithm
  /** Where chunks come from when this host must fetch them itself, in order. */
  origins: ChunkSource[]
  /** Written at once with every chunk obtained (what peers are served from). */
  cache?: ChunkStore
  /**
   * ms to wait in prepare() for peers to answer; also the longest the origin prefetch waits for
   * the hosts on the index to stop arriving (see `quiet`). @default 1500
   */
  settle?: number
  /**
   * The origin prefetch starts once no host has joined the index for this many ms
   * (SwarmPolicy.prefetchStartAt), at most `settle` ms after this host joined. @default half of
   * `settle` (750 ms of 1,500: a longer settle, given for slow discovery, also waits longer for
   * hosts still being found). On the calibration LAN (five hosts as processes on two cores, see
   * test/sim/calibrate-netns.ts) a fifth let some hosts start before they had found the others:
   * 1.000-1.045x the origin requests over three runs, against 1.000x in three runs with half.
   */
  quiet?: number
  /** prepare() waits until the host has run this long (discovery). @default 300 */
  minUptime?: number
  /**
   * Origin fetches this host runs ahead of the extraction for the chunks it owns (0: none, fetch
   * an owned chunk only when the extraction reaches it). Only the index's origin fetchers
   * (SwarmPolicy originFetchers) own chunks. The lanes open one at a time, one more with each
   * chunk fetched (a slow start: the fleet's first origin fetches are not all shared out at once,
   * so its first chunks arrive early). A fleet of fewer than 16 fetchers opens more (policy.ts
   * ownerLanes). Needs a cache. @default 4 (as the simulator)
   */
  ownerPrefetch?: number
  /**
   * Requests this host keeps in flight, besides the extraction's own, for chunks peers announce,
   * the most recently announced first (policy.ts pickRecent): the host takes what is new on the
   * LAN as it arrives rather than waiting on the chunks at its extraction's position, so it
   * always has something its peers lack to serve. Needs a cache. @default chunkSizeDefaults(index.chunkSizeAvg).peerPrefetch
   * (12 at casync's 64 KiB, fewer for larger chunks; the simulator's window)
   */
  peerPrefetch?: number
}

/** Every chunk ID of the index, made as they are asked for. */
function * allIds (index: Index): Generator<ChunkId> {
  for (let i = 0; i < index.chunks.length; i++) yield index.chunks.id(i)
}

export interface SwarmSourceStats {
  /** per source: 'peer:ID' or an origin's name */
  sources: Record<string, { chunks: number, bytes: number }>
  /** wire (compressed) bytes from peers and from origins */
  peerWireBytes: number
  originWireBytes: number
  /** chunks fetched from an origin because the awaited peer made no progress */
  timeouts: number
  /** chunks from peers that failed verification */
  invalid: Record<string, number>
}

export class SwarmSource implements ChunkSource {
  readonly host: SwarmHost
  readonly digest: DigestAlgorithm
  readonly stats: SwarmSourceStats = { sources: {}, peerWireBytes: 0, originWireBytes: 0, timeouts: 0, invalid: {} }
  private readonly index: Index
  private readonly origins: ChunkSource[]
  private readonly cache?: ChunkStore
  private readonly settle: number
  private readonly quiet: number
  /** when (ms) this host joined the index (prepare) */
  joinedAt = 0
  /** when (ms) the prefetch of the chunks this host owns started (undefined: not yet) */
  prefetchStartedAt?: number
  private readonly minUptime: number
  private readonly log: Logger
  private key = ''
  private ready?: Promise<void>
  private readonly inFlight = new Map<string, Promise<Uint8Array>>()
  private readonly ownerPrefetch: number
  private readonly peerPrefetch: number
  /** chunks peers announced that this host still wants, oldest first (see startPeerLanes) */
  private readonly announced: string[] = []
  private readonly queued = new Set<string>()
  private readonly ids = new Map<string, ChunkId>()
  /** wanted chunks not obtained yet */
  private readonly wanted = new Set<string>()
  private rand = 0
  private announcedWaiters: Array<() => void> = []
  private onHave?: (peer: string, chunks: string[]) => void
  private readonly prefetchAbort = new AbortController()
  private readonly lastOrigin = new Map<string, string>()
  private prefetching?: Promise<void>
  private peerLanes?: Promise<void>
  /** chunks prefetched into the cache that get() has not handed out (the extraction reads them from the cache) */
  private readonly prefetched = new Map<string, string>()

  constructor (init: SwarmSourceInit) {
    this.host = init.host
    this.index = init.index
    this.digest = init.digest
    this.origins = init.origins
    this.cache = init.cache
    this.settle = init.settle ?? 1500
    this.quiet = init.quiet ?? Math.round(this.settle / 2)
    this.minUptime = init.minUptime ?? 300
    this.ownerPrefetch = init.cache != null ? (init.ownerPrefetch ?? 4) : 0
    this.peerPrefetch = init.cache != null ? (init.peerPrefetch ?? chunkSizeDefaults(init.index.chunkSizeAvg).peerPrefetch) : 0
    // every prefetch lane's requests listen on it
    setMaxListeners(Infinity, this.prefetchAbort.signal)
    this.log = defaultLogger().forComponent('caswarm:swarm:source')
  }

  toString (): string { return 'swarm' }

  /**
   * A chunk's first position in the index, by hex ID (the policy deals origin owners by it).
   * Looked up in the index's table each time rather than kept in maps by hex ID (~150 bytes a chunk).
   */
  private positionOf (k: string): number | undefined {
    const i = this.index.chunks.find(Buffer.from(k, 'hex'))
    return i < 0 ? undefined : i
  }

  private sizeOf (k: string): number | undefined {
    const i = this.positionOf(k)
    return i == null ? undefined : this.index.chunks.size(i)
  }

  /**
   * Declares the chunks this host will need from the network (those not in seeds; the cache is
   * checked here), joins the index's swarm and waits for peers to answer. get() waits for this.
   * Without it, the first get() prepares with every chunk of the index not in the cache.
   */
  async prepare (missing?: ChunkId[], options: AbortOptions = {}): Promise<void> {
    this.ready ??= (async () => {
      this.key = Buffer.from(await indexKeyOf(this.index.chunks)).toString('hex')
      // upload slots, BUSY pauses and origin fetchers follow the chunk size (policy.ts chunkSizeDefaults)
      this.host.policy.setChunkSize(this.index.chunkSizeAvg)
      // origin owners are dealt by position in the index, the same on every host
      this.host.policy.setChunkOrder(this.key, k => this.positionOf(k))
      const seen = new Set<string>()
      const wanted: ChunkId[] = []
      for (const id of missing ?? allIds(this.index)) {
        const k = id.toString()
        if (seen.has(k)) continue
        seen.add(k)
        wanted.push(id)
      }
      const wants: ChunkId[] = []
      for (let i = 0; i < wanted.length; i += 64) {
        const part = wanted.slice(i, i + 64)
        const has = this.cache != null ? await Promise.all(part.map(async id => await this.cache!.has(id).catch(() => false))) : []
        part.forEach((id, j) => { if (has[j] !== true) wants.push(id) })
      }
      this.joinedAt = Date.now()
      await this.host.join(Buffer.from(this.key, 'hex'), this.digest, wants, { settle: this.settle, minUptime: this.minUptime, signal: options.signal })
      this.log('joined index %s wanting %d chunks; %d peers', this.key.slice(0, 12), wants.length, this.host.connectedPeers().length)
      for (const id of wants) { this.wanted.add(id.toString()); this.ids.set(id.toString(), id) }
      this.startPrefetch(wants)
      this.startPeerLanes()
    })()
    await this.ready
  }

  /**
   * The chunks this host owns (by the policy's rendezvous split) are fetched from the origin
   * right away, a few at a time in index order, rather than when the extraction reaches them:
   * peers waiting for them are served sooner, so their waits do not time out into duplicate
   * origin fetches. Each lands in the cache (where the extraction finds it) and is announced.
   */
  private startPrefetch (wants: ChunkId[]): void {
    if (this.ownerPrefetch <= 0 || wants.length === 0) return
    const queue = wants.slice()
    const policy = this.host.policy
    const signal = this.prefetchAbort.signal
    const lane = async (): Promise<void> => {
      while (queue.length > 0 && !signal.aborted) {
        // alone on the index (no peer found yet, or none left): owning every chunk is no reason
        // to fetch them all ahead; the extraction fetches what it needs, and prefetch resumes
        // once another host works on the index
        if (policy.workers(this.key, Date.now()).length < 2) {
          await sleep(100, undefined, { signal }).catch(() => {})
          continue
        }
        const id = queue.shift()!
        const k = id.toString()
        const now = Date.now()
        if (this.inFlight.has(k) || policy.ownerOf(this.key, k, now) !== policy.self) continue
        if (policy.holdersOf(k, now).length > 0 || policy.fetchersOf(k, now).length > 0) continue
        const p = this.fromOrigin(id, { signal, size: this.sizeOf(k) }).finally(() => this.inFlight.delete(k))
        this.inFlight.set(k, p)
        try {
          await p
          this.prefetched.set(k, this.lastOrigin.get(k) ?? 'origin')
          open()
        } catch (err: any) {
          if (!signal.aborted) this.log('prefetch of %s failed - %s', k.slice(0, 12), err.message)
        }
      }
    }
    const lanes: Array<Promise<void>> = []
    // more lanes in a small fleet, so its few fetchers still fill the origin's pipe (ownerLanes)
    const maxLanes = (): number => ownerLanes(this.ownerPrefetch, policy.originFetchersOf(this.key, Date.now()).size, this.index.chunkSizeAvg)
    const open = (): void => { if (lanes.length < maxLanes()) lanes.push(lane()) }
    this.prefetching = (async () => {
      // let the hosts' views of who wants what settle before acting on ownership: a wave of hosts
      // that start together begins once they have all heard of one another
      for (;;) {
        const wait = policy.prefetchStartAt(this.key, this.joinedAt, this.quiet, this.settle) - Date.now()
        if (wait <= 0 || signal.aborted) break
        await sleep(Math.min(wait, 50), undefined, { signal }).catch(() => {})
      }
      if (signal.aborted) return
      this.prefetchStartedAt = Date.now()
      this.log('origin prefetch starts %d ms after the join', this.prefetchStartedAt - this.joinedAt)
      // one lane, and a small fleet's extra lanes, at once; the rest one per fetched chunk
      for (let i = maxLanes() - this.ownerPrefetch; i >= 0; i--) open()
      for (let i = 0; i < lanes.length; i++) await lanes[i]
    })()
  }

  /**
   * `peerPrefetch` lanes take the chunks peers announce, one of the most recent at random
   * (policy.ts pickRecent), and fetch them into the cache as the extraction would, through
   * obtain() (a busy holder or one that turns out to lack it sends it back to the policy).
   */
  private startPeerLanes (): void {
    if (this.peerPrefetch <= 0 || this.wanted.size === 0) return
    this.rand = hashKey(`${this.host.policy.self}/pick`)
    const signal = this.prefetchAbort.signal
    const wake = (): void => { const ws = this.announcedWaiters; this.announcedWaiters = []; for (const w of ws) w() }
    this.onHave = (_peer, chunks) => {
      let added = false
      for (const c of chunks) {
        if (!this.wanted.has(c) || this.queued.has(c) || this.inFlight.has(c)) continue
        this.queued.add(c)
        this.announced.push(c)
        added = true
      }
      if (added) wake()
    }
    this.host.haveListeners.add(this.onHave)
    // what peers announced before this host joined
    const now = Date.now()
    for (const c of this.wanted) if (this.host.policy.holdersOf(c, now).length > 0) { this.queued.add(c); this.announced.push(c) }
    signal.addEventListener('abort', wake, { once: true })
    const lane = async (): Promise<void> => {
      while (!signal.aborted && this.wanted.size > 0) {
        if (this.announced.length === 0) {
          await new Promise<void>(resolve => { this.announcedWaiters.push(resolve) })
          continue
        }
        this.rand = nextRandom(this.rand)
        const i = pickRecent(this.announced.length, PICK_AMONG, this.rand)
        const k = this.announced[i]!
        this.announced[i] = this.announced[this.announced.length - 1]!
        this.announced.pop()
        this.queued.delete(k)
        if (!this.wanted.has(k) || this.inFlight.has(k)) continue
        const id = this.ids.get(k)!
        const p = this.obtain(id, { signal, size: this.sizeOf(k) }, true).finally(() => this.inFlight.delete(k))
        this.inFlight.set(k, p)
        try {
          await p
          this.prefetched.set(k, 'peer')
        } catch (err: any) {
          if (!signal.aborted && err.code !== ChunkMissingError.code) this.log('peer prefetch of %s failed - %s', k.slice(0, 12), err.message)
        }
      }
    }
    this.peerLanes = Promise.all(Array.from({ length: this.peerPrefetch }, lane)).then(() => {})
  }

  async has (id: ChunkId): Promise<boolean> {
    return this.host.policy.holdersOf(id.toString(), Date.now()).length > 0
  }

  async get (id: ChunkId, options: GetOptions = {}): Promise<Uint8Array> {
    await this.prepare(undefined, options)
    const k = id.toString()
    this.prefetched.delete(k)
    let pending = this.inFlight.get(k)
    while (pending != null) {
      try {
        const data = await pending
        this.prefetched.delete(k)
        return data
      } catch (err: any) {
        // a peer prefetch lane gave the chunk up (no peer has it now): plan it here
        options.signal?.throwIfAborted()
        if (err.code !== ChunkMissingError.code) throw err
      }
      pending = this.inFlight.get(k)
    }
    const p = this.obtain(id, options).finally(() => this.inFlight.delete(k))
    this.inFlight.set(k, p)
    return await p
  }

  /**
   * Gets a chunk as the policy plans it. `peersOnly` (the peer prefetch lanes): only from peers
   * that hold it (waiting while they are busy); when the plan turns to waiting for an owner or
   * to the origin, it gives up with ChunkMissingError and leaves the chunk to the extraction.
   */
  private async obtain (id: ChunkId, options: GetOptions, peersOnly = false): Promise<Uint8Array> {
    const k = id.toString()
    const policy = this.host.policy
    while (true) {
      options.signal?.throwIfAborted()
      const plan = policy.plan(this.key, k, Date.now())
      if (peersOnly && plan.action !== 'peer' && !(plan.action === 'wait' && plan.reason === 'busy')) {
        throw new ChunkMissingError(id, `chunk ${k}: no peer holds it now`)
      }
      if (plan.action === 'peer') {
        const peer = this.host.connectedPeers().find(p => p.toString() === plan.peer)
        if (peer == null) { policy.removePeer(plan.peer, Date.now()); continue }
        try {
          const { plain, compressed } = await this.host.exchange.fetchChunk(peer, id, { digest: this.digest, size: options.size, signal: options.signal })
          this.stats.peerWireBytes += compressed.byteLength
          await this.keep(id, plain, compressed, `peer:${plan.peer}`)
          return plain
        } catch (err: any) {
          options.signal?.throwIfAborted()
          if (err.code === 'ERR_CHUNK_INVALID') this.stats.invalid[`peer:${plan.peer}`] = (this.stats.invalid[`peer:${plan.peer}`] ?? 0) + 1
          this.log('chunk %s from %s failed - %s', k.slice(0, 12), plan.peer, err.message)
          continue
        }
      }
      if (plan.action === 'wait') {
        await this.host.waitChunk(k, plan.until - Date.now(), options.signal)
        continue
      }
      if (plan.reason === 'timeout') this.stats.timeouts++
      return await this.fromOrigin(id, options)
    }
  }

  /** This host fetches the chunk from the origins (in order), verifies, keeps and announces it. */
  private async fromOrigin (id: ChunkId, options: GetOptions): Promise<Uint8Array> {
    this.host.fetching(this.key, id)
    const errors: Error[] = []
    for (const origin of this.origins) {
      try {
        let plain: Uint8Array
        let compressed: Uint8Array | undefined
        if (isRawChunkSource(origin)) {
          compressed = await origin.getCompressed(id, { signal: options.signal, size: options.size, verify: false })
          plain = await decodeChunk(id, compressed, this.digest, { size: options.size })
          this.stats.originWireBytes += compressed.byteLength
        } else {
          plain = await origin.get(id, options)
        }
        await this.keep(id, plain, compressed, origin.toString())
        this.lastOrigin.set(id.toString(), origin.toString())
        return plain
      } catch (err: any) {
        options.signal?.throwIfAborted()
        if (err.code !== ChunkMissingError.code) {
          this.log.error('%s failed for %s - %s', origin.toString(), id.toString(), err.message)
          errors.push(err)
        }
      }
    }
    // let the caller's own store list report what is wrong
    throw new ChunkMissingError(id, `chunk ${id.toString()}: no origin supplied it${errors.length > 0 ? ` (${errors.map(e => e.message).join('; ')})` : ''}`)
  }

  private async keep (id: ChunkId, plain: Uint8Array, compressed: Uint8Array | undefined, source: string): Promise<void> {
    const s = this.stats.sources[source] ??= { chunks: 0, bytes: 0 }
    s.chunks++
    s.bytes += plain.byteLength
    if (this.cache != null) {
      try {
        if (compressed != null && this.cache.putCompressed != null) await this.cache.putCompressed(id, compressed)
        else await this.cache.put(id, plain)
      } catch (err: any) {
        this.log.error('could not cache %s - %s', id.toString(), err.message)
      }
    }
    this.wanted.delete(id.toString())
    this.host.gotChunk(id)
  }

  /** Replaces the 'swarm' entry of extract stats by where the swarm's chunks came from. */
  mergeStats (stats: ExtractStats): void {
    delete stats.sources[this.toString()]
    // prefetched chunks the extraction read back from the cache: count them once, as origin bytes
    const cacheName = this.cache != null ? `cache:${this.cache.toString()}` : undefined
    const cached = cacheName != null ? stats.sources[cacheName] : undefined
    if (cached != null) {
      for (const k of this.prefetched.keys()) {
        cached.chunks--
        cached.bytes -= this.sizeOf(k) ?? 0
      }
      if (cached.chunks <= 0) delete stats.sources[cacheName!]
    }
    for (const [name, s] of Object.entries(this.stats.sources)) {
      const t = stats.sources[name] ??= { chunks: 0, bytes: 0 }
      t.chunks += s.chunks
      t.bytes += s.bytes
    }
    for (const [name, n] of Object.entries(this.stats.invalid)) stats.invalid[name] = (stats.invalid[name] ?? 0) + n
  }

  async close (): Promise<void> {
    this.prefetchAbort.abort()
    if (this.onHave != null) this.host.haveListeners.delete(this.onHave)
    await this.prefetching?.catch(() => {})
    await this.peerLanes?.catch(() => {})
    if (this.key !== '') this.host.leave(this.key)
  }
}
