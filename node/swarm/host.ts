// A swarm host: one libp2p node (TCP, Noise, yamux, identify; mDNS and static peers for
// discovery; optionally a private swarm with a pre-shared key) running the chunk exchange and
// the swarm policy. It serves its cache store to peers, keeps the policy informed of what peers
// announce, and announces what this host gets the moment it is verified. `caswarm node` runs one
// as a daemon; `caswarm extract` runs one for the length of an extraction (node/swarm/source.ts).
import { generateKeyPair, privateKeyFromProtobuf, privateKeyToProtobuf } from '@libp2p/crypto/keys'
import { identify } from '@libp2p/identify'
import type { Libp2p, PeerId, PrivateKey } from '@libp2p/interface'
import { mdns } from '@libp2p/mdns'
import { noise } from '@libp2p/noise'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { preSharedKey } from '@libp2p/pnet'
import { tcp } from '@libp2p/tcp'
import { yamux } from '@libp2p/yamux'
import { multiaddr, type Multiaddr } from '@multiformats/multiaddr'
import { createLibp2p } from 'libp2p'
import * as fs from 'node:fs/promises'
import * as path from 'node:path'
import type { ChunkId, DigestAlgorithm } from '../../protocol/chunk-id.ts'
import type { ChunkTable } from '../../protocol/chunk-table.ts'
import { InvalidArgumentError } from '../../protocol/errors.ts'
import { splitIds, type WireMessage } from '../../protocol/wire.ts'
import { chunkExchange, type ChunkExchange } from '../exchange/index.ts'
import { defaultLogger, type ComponentLogger, type Logger } from '../logger.ts'
import type { RawChunkSource } from '../store/chunk-store.ts'
import { SwarmPolicy, type SwarmPolicyInit } from './policy.ts'

export interface SwarmHostInit {
  /** The store served to peers (the host's cache). */
  store?: RawChunkSource
  /** Listen addresses. @default ['/ip4/0.0.0.0/tcp/0'] */
  listen?: string[]
  /** Static peers (multiaddrs with /p2p/ID), dialled at start and redialled when lost. */
  peers?: string[]
  /** mDNS discovery (only where multicast stays on the LAN). @default true */
  mdns?: boolean
  /** mDNS query interval, ms. @default 5000 */
  mdnsInterval?: number
  /** mDNS service tag: hosts with different tags ignore each other. @default 'caswarm.local' */
  serviceTag?: string
  /** A private swarm's pre-shared key (the file `caswarm keygen` writes). */
  swarmKey?: Uint8Array
  /** The host's identity; a new one when absent (see loadOrCreateKey). */
  privateKey?: PrivateKey
  /** Options for the policy (its `self` is the peer ID). */
  policy?: Omit<SwarmPolicyInit, 'self'>
  /** Largest chunk frame. */
  maxMessageSize?: number
  logger?: ComponentLogger
}

type Waiter = () => void

/** The digest of an index's chunk list: how hosts name the index they work on. */
export async function indexKeyOf (chunks: ChunkTable): Promise<Uint8Array> {
  const { createHash } = await import('node:crypto')
  const h = createHash('sha256')
  for (let i = 0; i < chunks.length; i++) h.update(chunks.idBytes(i))
  return new Uint8Array(h.digest())
}

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex')

/** join() takes the peers it knows as all of them once none has been added for this long */
const PEERS_STABLE_MS = 300

export class SwarmHost {
  readonly policy: SwarmPolicy
  readonly peerId: PeerId
  node!: Libp2p<{ exchange: ChunkExchange, identify: unknown }>
  private readonly init: SwarmHostInit
  private readonly privateKey: PrivateKey
  private readonly log: Logger
  private readonly waiters = new Map<string, Set<Waiter>>()
  private readonly anyWaiters = new Set<Waiter>()
  /** called with every HAVE announcement a peer sends (SwarmSource's peer prefetch lanes) */
  readonly haveListeners = new Set<(peer: string, chunks: string[]) => void>()
  /** indexes this host works on: hex key → state */
  private readonly sessions = new Map<string, { key: Uint8Array, digest: DigestAlgorithm, wants: Map<string, ChunkId>, sentTo: Set<string>, acked: Set<string> }>()
  private readonly pendingHaves = new Map<string, ChunkId[]>()
  private readonly pendingFetching = new Map<string, ChunkId[]>()
  /** chunks this host is fetching from the origin right now */
  private readonly fetchingNow = new Set<string>()
  private flushScheduled = false
  private redial?: NodeJS.Timeout
  private readonly staticPeers: Multiaddr[]
  readonly startedAt = Date.now()

  private constructor (init: SwarmHostInit, privateKey: PrivateKey) {
    this.init = init
    this.privateKey = privateKey
    this.peerId = peerIdFromPrivateKey(privateKey)
    this.policy = new SwarmPolicy({ ...init.policy, self: this.peerId.toString() })
    this.log = (init.logger ?? defaultLogger()).forComponent('caswarm:swarm')
    this.staticPeers = (init.peers ?? []).map(a => {
      try {
        return multiaddr(a)
      } catch (err: any) {
        throw new InvalidArgumentError(`--peer ${a}: not a multiaddr (${String(err.message)})`)
      }
    })
  }

  static async create (init: SwarmHostInit = {}): Promise<SwarmHost> {
    const key = init.privateKey ?? await generateKeyPair('Ed25519')
    const host = new SwarmHost(init, key)
    await host.start()
    return host
  }

  get exchange (): ChunkExchange {
    return this.node.services.exchange
  }

  private async start (): Promise<void> {
    const init = this.init
    const useMdns = init.mdns ?? true
    this.node = await createLibp2p({
      privateKey: this.privateKey,
      addresses: { listen: init.listen ?? ['/ip4/0.0.0.0/tcp/0'] },
      transports: [tcp()],
      connectionEncrypters: [noise()],
      streamMuxers: [yamux({ maxInboundStreams: 1024, streamOptions: { maxReadBufferLength: 32 * 1024 * 1024, maxStreamWindowSize: 16 * 1024 * 1024 } })],
      ...(init.swarmKey != null ? { connectionProtector: preSharedKey({ psk: init.swarmKey }) } : {}),
      peerDiscovery: useMdns ? [mdns({ interval: init.mdnsInterval ?? 5000, serviceTag: init.serviceTag ?? 'caswarm.local' })] : [],
      connectionManager: { maxConnections: 512 },
      services: {
        identify: identify(),
        exchange: chunkExchange({
          policy: this.policy,
          store: init.store,
          maxMessageSize: init.maxMessageSize,
          onMessage: (peer, msg) => { this.onMessage(peer, msg) }
        })
      },
      logger: init.logger
    }) as any
    this.node.addEventListener('peer:discovery', (evt) => {
      const { id, multiaddrs } = evt.detail
      if (id.equals(this.peerId)) return
      if (this.node.getConnections(id).length > 0) return
      this.log('discovered %p', id)
      this.node.dial(multiaddrs.length > 0 ? multiaddrs : id).catch(err => { this.log('dial %p failed - %s', id, err.message) })
    })
    this.node.addEventListener('peer:connect', (evt) => { this.onConnect(evt.detail) })
    this.node.addEventListener('peer:disconnect', (evt) => { this.onDisconnect(evt.detail) })
    await this.dialStatic()
    if (this.staticPeers.length > 0) {
      this.redial = setInterval(() => { this.dialStatic().catch(() => {}) }, 2000)
      this.redial.unref()
    }
  }

  /** Dials the static peers not connected; resolves when every attempt ended. */
  async dialStatic (): Promise<void> {
    await Promise.all(this.staticPeers.map(async (ma) => {
      const id = ma.getComponents().find(c => c.name === 'p2p')?.value
      if (id === this.peerId.toString()) return
      if (id != null && this.node.getConnections().some(c => c.remotePeer.toString() === id)) return
      try {
        await this.node.dial(ma, { signal: AbortSignal.timeout(5000) })
      } catch (err: any) {
        this.log('static peer %s unreachable - %s', ma.toString(), err.message)
      }
    }))
  }

  async stop (): Promise<void> {
    if (this.redial != null) clearInterval(this.redial)
    for (const key of [...this.sessions.keys()]) this.leave(key)
    this.flush()
    // let LEAVE announcements go out
    await new Promise(resolve => setTimeout(resolve, 20))
    await this.node.stop()
    this.wakeAll()
  }

  /** The addresses peers can dial this host at (with /p2p/ID). */
  addresses (): string[] {
    return this.node.getMultiaddrs().map(a => a.toString())
  }

  /** Connected peers. */
  connectedPeers (): PeerId[] {
    return this.node.getPeers()
  }

  // ---- sessions (indexes this host works on) ----------------------------------------------

  /**
   * This host works on the index `key` and lacks `wants`: tell connected peers, and wait until
   * they answered (or `settle` ms passed) so the owner split starts from a shared view.
   */
  async join (key: Uint8Array, digest: DigestAlgorithm, wants: ChunkId[], options: { settle?: number, minUptime?: number, signal?: AbortSignal } = {}): Promise<void> {
    const k = hex(key)
    const session = { key, digest, wants: new Map(wants.map(id => [id.toString(), id])), sentTo: new Set<string>(), acked: new Set<string>() }
    this.sessions.set(k, session)
    this.policy.noteWants(k, this.policy.self, session.wants.keys(), Date.now())
    for (const peer of this.node.getPeers()) this.sendWants(peer, k)
    // give discovery a moment (mDNS answers in tens of ms), then wait for the answers
    const deadline = Date.now() + (options.settle ?? 1500)
    const minUntil = this.startedAt + (options.minUptime ?? 0)
    // discovery is gradual: the peers known are taken as all of them only once none has been
    // added for PEERS_STABLE_MS (hosts that split the chunks among the first peers they saw each
    // fetched what the others were fetching too)
    let known = -1
    let changedAt = Date.now()
    while (Date.now() < deadline) {
      options.signal?.throwIfAborted()
      const peers = this.node.getPeers().map(p => p.toString())
      if (peers.length !== known) { known = peers.length; changedAt = Date.now() }
      // with no peer connected yet, keep waiting for discovery until the deadline: a host that
      // declares itself alone too early becomes the owner of every chunk and fetches them all
      if (Date.now() >= minUntil && Date.now() - changedAt >= PEERS_STABLE_MS && peers.length > 0 && peers.every(p => session.acked.has(p) || this.policy.isBanned(p, Date.now()))) break
      await this.waitAny(Math.min(50, deadline - Date.now()))
    }
  }

  /** This host got a chunk (verified and stored): it no longer wants it, and peers are told. */
  gotChunk (id: ChunkId): void {
    const c = id.toString()
    this.fetchingNow.delete(c)
    for (const [k, s] of this.sessions) {
      if (!s.wants.delete(c)) continue
      this.policy.noteHave(k, this.policy.self, c, Date.now())
      let list = this.pendingHaves.get(k)
      if (list == null) this.pendingHaves.set(k, list = [])
      list.push(id)
    }
    this.scheduleFlush()
  }

  /** This host starts fetching a chunk from the origin: peers wait for it rather than fetch it too. */
  fetching (key: string, id: ChunkId): void {
    this.fetchingNow.add(id.toString())
    let list = this.pendingFetching.get(key)
    if (list == null) this.pendingFetching.set(key, list = [])
    list.push(id)
    this.scheduleFlush()
  }

  /** Stop working on an index: peers re-split what this host owned. */
  leave (key: string): void {
    const s = this.sessions.get(key)
    if (s == null) return
    this.sessions.delete(key)
    this.policy.leaveIndex(key, this.policy.self)
    for (const peer of this.workerPeers(key)) this.exchange.send(peer, { type: 'leave', index: s.key })
  }

  // ---- waiting -------------------------------------------------------------------------

  /** Resolves when availability of `chunk` may have changed, or after `ms`. */
  async waitChunk (chunk: string, ms: number, signal?: AbortSignal): Promise<void> {
    await new Promise<void>((resolve, reject) => {
      let set = this.waiters.get(chunk)
      if (set == null) this.waiters.set(chunk, set = new Set())
      const done = (): void => {
        clearTimeout(timer)
        set!.delete(done)
        this.anyWaiters.delete(done)
        if (set!.size === 0 && this.waiters.get(chunk) === set) this.waiters.delete(chunk)
        signal?.removeEventListener('abort', onAbort)
        resolve()
      }
      const onAbort = (): void => { done(); reject(signal!.reason) }
      const timer = setTimeout(done, Math.max(1, ms))
      set.add(done)
      this.anyWaiters.add(done)
      signal?.addEventListener('abort', onAbort, { once: true })
    })
  }

  private async waitAny (ms: number): Promise<void> {
    await new Promise<void>(resolve => {
      const done = (): void => { clearTimeout(timer); this.anyWaiters.delete(done); resolve() }
      const timer = setTimeout(done, Math.max(1, ms))
      this.anyWaiters.add(done)
    })
  }

  private wake (chunk: string): void {
    const set = this.waiters.get(chunk)
    if (set != null) for (const w of [...set]) w()
  }

  private wakeAll (): void {
    for (const w of [...this.anyWaiters]) w()
  }

  // ---- messages ------------------------------------------------------------------------

  private workerPeers (key: string): PeerId[] {
    const workers = new Set(this.policy.workers(key, Date.now()))
    return this.node.getPeers().filter(p => workers.has(p.toString()))
  }

  private sendWants (peer: PeerId, key: string): void {
    const s = this.sessions.get(key)
    if (s == null || s.sentTo.has(peer.toString())) return
    s.sentTo.add(peer.toString())
    const ids = [...s.wants.values()]
    if (ids.length === 0) {
      this.exchange.send(peer, { type: 'want', index: s.key, digest: s.digest, ids: [] })
      return
    }
    for (const part of splitIds(ids)) this.exchange.send(peer, { type: 'want', index: s.key, digest: s.digest, ids: part })
  }

  private onConnect (peer: PeerId): void {
    this.log('connected to %p', peer)
    this.policy.addPeer(peer.toString(), Date.now())
    for (const key of this.sessions.keys()) this.sendWants(peer, key)
    this.wakeAll()
  }

  private onDisconnect (peer: PeerId): void {
    this.log('disconnected from %p', peer)
    this.policy.removePeer(peer.toString(), Date.now())
    this.exchange.peerGone(peer)
    for (const s of this.sessions.values()) { s.sentTo.delete(peer.toString()); s.acked.delete(peer.toString()) }
    this.wakeAll()
  }

  private onMessage (peer: PeerId, msg: WireMessage): void {
    const p = peer.toString()
    const now = Date.now()
    switch (msg.type) {
      case 'want': {
        const k = hex(msg.index)
        this.policy.noteWants(k, p, msg.ids.map(id => id.toString()), now)
        this.answerWant(peer, msg.index, msg.digest, msg.ids).catch(err => { this.log('answering %p failed - %s', peer, err.message) })
        if (this.sessions.has(k)) this.sendWants(peer, k)
        this.wakeAll()
        break
      }
      case 'have': {
        const keys = msg.ids.map(id => id.toString())
        this.policy.noteHaves(msg.index != null ? hex(msg.index) : undefined, p, keys, now)
        if (msg.index != null) this.sessions.get(hex(msg.index))?.acked.add(p)
        for (const c of keys) this.wake(c)
        for (const listener of this.haveListeners) listener(p, keys)
        if (msg.index != null) this.wakeAll()
        break
      }
      case 'fetching':
        for (const id of msg.ids) { this.policy.noteFetching(p, id.toString(), now); this.wake(id.toString()) }
        break
      case 'leave':
        this.policy.leaveIndex(hex(msg.index), p)
        this.wakeAll()
        break
    }
  }

  /** Answers a WANT with what this host holds of it (always, so the sender knows we answered). */
  private async answerWant (peer: PeerId, index: Uint8Array, digest: DigestAlgorithm, ids: ChunkId[]): Promise<void> {
    const store = this.init.store
    // first what we are fetching from the origin now (so a late joiner waits for it), then what we hold
    const busy = ids.filter(id => this.fetchingNow.has(id.toString()))
    if (busy.length > 0) for (const part of splitIds(busy)) this.exchange.send(peer, { type: 'fetching', index, digest, ids: part })
    const held: ChunkId[] = []
    if (store != null) {
      for (let i = 0; i < ids.length; i += 64) {
        const part = ids.slice(i, i + 64)
        const has = await Promise.all(part.map(async id => await store.has(id).catch(() => false)))
        part.forEach((id, j) => { if (has[j] === true) held.push(id) })
      }
    }
    if (held.length === 0) {
      this.exchange.send(peer, { type: 'have', index, digest, ids: [] })
      return
    }
    for (const part of splitIds(held)) this.exchange.send(peer, { type: 'have', index, digest, ids: part })
  }

  private scheduleFlush (): void {
    if (this.flushScheduled) return
    this.flushScheduled = true
    setTimeout(() => { this.flushScheduled = false; this.flush() }, 2)
  }

  private flush (): void {
    for (const [k, ids] of this.pendingHaves) {
      const s = this.sessions.get(k)
      const key = s?.key ?? Buffer.from(k, 'hex')
      const digest = s?.digest ?? 'sha256'
      for (const peer of this.workerPeers(k)) for (const part of splitIds(ids)) this.exchange.send(peer, { type: 'have', index: key, digest, ids: part })
    }
    this.pendingHaves.clear()
    for (const [k, ids] of this.pendingFetching) {
      const s = this.sessions.get(k)
      if (s == null) continue
      for (const peer of this.workerPeers(k)) for (const part of splitIds(ids)) this.exchange.send(peer, { type: 'fetching', index: s.key, digest: s.digest, ids: part })
    }
    this.pendingFetching.clear()
  }
}


// ---- identity and swarm keys -------------------------------------------------------------

/** Reads the host key from `file`, or creates it (mode 0600) so the peer ID survives restarts. */
export async function loadOrCreateKey (file: string): Promise<PrivateKey> {
  try {
    return privateKeyFromProtobuf(new Uint8Array(await fs.readFile(file)))
  } catch (err: any) {
    if (err.code !== 'ENOENT') throw Object.assign(new Error(`${file}: not a libp2p private key (${String(err.message)})`), { code: 'ERR_INVALID_FORMAT' })
  }
  const key = await generateKeyPair('Ed25519')
  await fs.mkdir(path.dirname(file), { recursive: true })
  const tmp = `${file}.tmp-${process.pid}`
  await fs.writeFile(tmp, privateKeyToProtobuf(key), { mode: 0o600 })
  await fs.rename(tmp, file)
  return key
}

/** Reads and checks a swarm key file (`/key/swarm/psk/1.0.0/`, base16, 32 bytes). */
export async function readSwarmKey (file: string): Promise<Uint8Array> {
  const bytes = new Uint8Array(await fs.readFile(file))
  const text = Buffer.from(bytes).toString('utf8').split(/\r?\n/)
  if (text[0] !== '/key/swarm/psk/1.0.0/' || text[1] !== '/base16/' || !/^[0-9a-f]{64}$/i.test(text[2] ?? '')) {
    throw Object.assign(new Error(`${file}: not a swarm key (expected /key/swarm/psk/1.0.0/, /base16/ and 64 hex digits)`), { code: 'ERR_INVALID_FORMAT' })
  }
  return bytes
}
