/**
 * The chunk exchange: a libp2p service speaking `/caswarm/chunks/1.0.0` (protocol/wire.ts).
 * Outbound, requests to one peer are queued and sent in batches (one REQUEST frame for up to
 * `maxBatch` chunks) on a few long-lived streams that are reused for the next batch, since
 * opening a stream costs milliseconds. Every chunk received is checked with `decodeChunk`
 * (decompressed, size and digest verified) before it is handed out; the outcome of every
 * request feeds the swarm policy (node/swarm/policy.ts), which bans a peer that sent a bad chunk.
 * Announcements (WANT/HAVE/FETCHING/LEAVE) go out on one more reused stream per peer, queued and
 * coalesced.
 *
 * Inbound, one handler reads frames in a loop: REQUESTs are answered in order from the serving
 * store in stored (compressed) form, within the policy's per-peer and total inbound limits
 * (requests over the limit wait); other messages go to `onMessage`. Banned peers' streams are
 * closed. Malformed frames abort the stream and count against the sender.
 *
 * @example
 * ```ts
 * const node = await createLibp2p({ ..., services: { exchange: chunkExchange({ policy, store, onMessage }) } })
 * const { plain, compressed } = await node.services.exchange.fetchChunk(peerId, id, { digest: 'sha256', size })
 * ```
 */
import type { ComponentLogger, Connection, Logger, PeerId, Startable, Stream } from '@libp2p/interface'
import type { ConnectionManager, Registrar } from '@libp2p/interface-internal'
import { lpStream, type LengthPrefixedStream } from '@libp2p/utils'
import type { ChunkId, DigestAlgorithm } from '../../protocol/chunk-id.ts'
import { ChunkInvalidError, ChunkMissingError, InvalidFormatError, MessageTooLargeError, PeerBusyError } from '../../protocol/errors.ts'
import { CHUNK_EXCHANGE_PROTOCOL, decodeMessage, encodeMessage, MAX_MESSAGE_SIZE, MAX_REQUEST_IDS, type WireMessage } from '../../protocol/wire.ts'
import type { SwarmPolicy } from '../swarm/policy.ts'
import type { RawChunkSource } from '../store/chunk-store.ts'
import { decodeChunk } from '../store/verify.ts'

export interface ChunkExchangeInit {
  /** The per-host decision logic; request outcomes and inbound limits go through it. */
  policy: SwarmPolicy
  /** What this host serves (its cache store). Undefined: serve nothing (every request MISSING). */
  store?: RawChunkSource
  /** Called with every non-request message a peer sends (announcements). */
  onMessage?: (peer: PeerId, message: WireMessage) => void
  /** Called after a chunk is served to a peer (compressed bytes sent). */
  onServed?: (peer: PeerId, id: ChunkId, bytes: number) => void
  /** Per-request timeout, ms. @default 15_000 */
  timeout?: number
  /** Largest frame accepted or sent. @default MAX_MESSAGE_SIZE */
  maxMessageSize?: number
  /** Most chunks in one REQUEST. @default 16 */
  maxBatch?: number
  /** Reused request streams per peer. @default 2 */
  streamsPerPeer?: number
  /** Inbound streams per connection for this protocol. @default 64 */
  maxInboundStreams?: number
  /** Outbound streams per connection for this protocol. @default 64 */
  maxOutboundStreams?: number
}

export interface ChunkExchangeComponents {
  registrar: Registrar
  connectionManager: ConnectionManager
  logger: ComponentLogger
}

export interface FetchOptions {
  signal?: AbortSignal
  digest: DigestAlgorithm
  /** plain size from the index */
  size?: number
}

export interface FetchedChunk {
  /** verified plain bytes */
  plain: Uint8Array
  /** the stored (compressed) form, as received: verified through `plain` */
  compressed: Uint8Array
}

export interface ExchangeCounters {
  requestsSent: number
  batchesSent: number
  chunksReceived: number
  bytesReceived: number
  invalidReceived: number
  missingReceived: number
  chunksServed: number
  bytesServed: number
  missingServed: number
  busyReceived: number
  busyServed: number
  streamsOpened: number
}

interface Pending {
  id: ChunkId
  digest: DigestAlgorithm
  resolve: (data: Uint8Array) => void
  reject: (err: Error) => void
  signal?: AbortSignal
}

interface PeerChannel {
  peer: PeerId
  queue: Pending[]
  idle: Array<LengthPrefixedStream<Stream>>
  busy: number
  announce: WireMessage[]
  announcing: boolean
  /** the reused stream announcements go out on */
  announceStream?: LengthPrefixedStream<Stream>
  /** batches of requests under way: dropChannel aborts them, and their streams go */
  active: Set<AbortController>
}

/** An error a peer caused (bad frame, wrong reply): the policy counts it. */
class PeerProtocolError extends InvalidFormatError {}

/** An inbound request waiting for an upload slot: `grant` is called once a slot frees. */
interface SlotWaiter {
  /** called once: true when it has a slot, false when the exchange stops */
  grant: (ok: boolean) => void
  gone: boolean
}

export class ChunkExchange implements Startable {
  readonly policy: SwarmPolicy
  store?: RawChunkSource
  onMessage?: (peer: PeerId, message: WireMessage) => void
  onServed?: (peer: PeerId, id: ChunkId, bytes: number) => void
  readonly counters: ExchangeCounters = { requestsSent: 0, batchesSent: 0, chunksReceived: 0, bytesReceived: 0, invalidReceived: 0, missingReceived: 0, chunksServed: 0, bytesServed: 0, missingServed: 0, busyReceived: 0, busyServed: 0, streamsOpened: 0 }
  private readonly components: ChunkExchangeComponents
  private readonly log: Logger
  private readonly timeout: number
  private readonly maxMessageSize: number
  private readonly maxBatch: number
  private readonly streamsPerPeer: number
  private readonly maxInboundStreams: number
  private readonly maxOutboundStreams: number
  private readonly channels = new Map<string, PeerChannel>()
  /** inbound requests waiting for an upload slot (policy.queueInbound), first come first served */
  private readonly slotWaiters: SlotWaiter[] = []
  private running = false

  constructor (components: ChunkExchangeComponents, init: ChunkExchangeInit) {
    this.components = components
    this.policy = init.policy
    this.store = init.store
    this.onMessage = init.onMessage
    this.onServed = init.onServed
    this.timeout = init.timeout ?? 15_000
    this.maxMessageSize = init.maxMessageSize ?? MAX_MESSAGE_SIZE
    this.maxBatch = Math.min(init.maxBatch ?? 16, MAX_REQUEST_IDS)
    this.streamsPerPeer = init.streamsPerPeer ?? 2
    this.maxInboundStreams = init.maxInboundStreams ?? 64
    this.maxOutboundStreams = init.maxOutboundStreams ?? 64
    this.log = components.logger.forComponent('caswarm:exchange')
  }

  readonly [Symbol.toStringTag] = 'caswarm/chunk-exchange'

  async start (): Promise<void> {
    await this.components.registrar.handle(CHUNK_EXCHANGE_PROTOCOL, (stream, connection) => {
      this.handle(stream, connection).catch(err => {
        this.log('inbound stream from %p ended - %s', connection.remotePeer, err.message)
      })
    }, { maxInboundStreams: this.maxInboundStreams, maxOutboundStreams: this.maxOutboundStreams })
    this.running = true
  }

  async stop (): Promise<void> {
    this.running = false
    await this.components.registrar.unhandle(CHUNK_EXCHANGE_PROTOCOL)
    for (const waiter of this.slotWaiters.splice(0)) if (!waiter.gone) waiter.grant(false)
    for (const ch of this.channels.values()) this.dropChannel(ch, new Error('exchange stopped'))
    this.channels.clear()
  }

  /** Forget a peer's streams (it disconnected); its requests, queued or under way, fail. */
  peerGone (peer: PeerId): void {
    this.dropPeer(peer, new Error(`peer ${peer.toString()} disconnected`))
  }

  /**
   * Fetches one chunk from a peer (batched with other requests to it) and verifies it. Rejects
   * with ChunkMissingError when the peer lacks it, ChunkInvalidError when it fails verification
   * (the peer is banned), or another error (timeout, stream failure: a strike). Bookkeeping in
   * the policy (requestStarted/Succeeded/Failed) is done here.
   */
  async fetchChunk (peer: PeerId, id: ChunkId, options: FetchOptions): Promise<FetchedChunk> {
    const key = peer.toString()
    const chunkKey = id.toString()
    const signal = options.signal != null ? AbortSignal.any([options.signal, AbortSignal.timeout(this.timeout)]) : AbortSignal.timeout(this.timeout)
    this.policy.requestStarted(key, chunkKey, Date.now())
    let compressed: Uint8Array
    try {
      compressed = await this.enqueue(peer, { id, digest: options.digest, signal })
    } catch (err: any) {
      if (err.code === ChunkMissingError.code) {
        this.counters.missingReceived++
        this.policy.requestFailed(key, chunkKey, 'missing', Date.now())
      } else if (err.code === PeerBusyError.code) {
        this.counters.busyReceived++
        this.policy.requestFailed(key, chunkKey, 'busy', Date.now())
      } else if (options.signal?.aborted === true) {
        // our own cancellation: no fault of the peer
        this.policy.requestFailed(key, chunkKey, 'missing', Date.now())
      } else {
        this.policy.requestFailed(key, chunkKey, err.name === 'TimeoutError' ? 'timeout' : 'error', Date.now())
      }
      throw err
    }
    let plain: Uint8Array
    try {
      plain = await decodeChunk(id, compressed, options.digest, { size: options.size, maxSize: options.size == null ? this.maxMessageSize * 64 : undefined })
    } catch (err: any) {
      this.counters.invalidReceived++
      this.policy.requestFailed(key, chunkKey, 'invalid', Date.now())
      this.log.error('peer %p served a bad copy of %s - %s; banned', peer, chunkKey, err.message)
      // what else it was asked is given up at once (its callers turn to other sources), rather
      // than waited for: more bad copies, as slow as the peer cares to make them
      if (this.policy.isBanned(key, Date.now())) this.dropPeer(peer, new Error(`peer ${key} is banned: it served a bad copy of ${chunkKey}`))
      throw err.code === ChunkInvalidError.code ? err : new ChunkInvalidError(id, undefined, `peer ${key}: ${String(err.message)}`)
    }
    this.counters.chunksReceived++
    this.counters.bytesReceived += compressed.byteLength
    this.policy.requestSucceeded(key, chunkKey, compressed.byteLength, Date.now())
    return { plain, compressed }
  }

  /** Queues an announcement for a peer; messages are sent in order on a reused stream. */
  send (peer: PeerId, message: WireMessage): void {
    const ch = this.channel(peer)
    ch.announce.push(message)
    if (!ch.announcing) {
      ch.announcing = true
      this.pumpAnnouncements(ch).catch(err => {
        this.log('announcements to %p failed - %s', peer, err.message)
      }).finally(() => { ch.announcing = false })
    }
  }

  // ---- outbound ------------------------------------------------------------------------

  private channel (peer: PeerId): PeerChannel {
    const key = peer.toString()
    let ch = this.channels.get(key)
    if (ch == null) this.channels.set(key, ch = { peer, queue: [], idle: [], busy: 0, announce: [], announcing: false, active: new Set() })
    return ch
  }

  private async enqueue (peer: PeerId, p: Omit<Pending, 'resolve' | 'reject'>): Promise<Uint8Array> {
    const ch = this.channel(peer)
    return await new Promise<Uint8Array>((resolve, reject) => {
      const item: Pending = { ...p, resolve, reject }
      ch.queue.push(item)
      p.signal?.addEventListener('abort', () => {
        const i = ch.queue.indexOf(item)
        if (i >= 0) ch.queue.splice(i, 1)
        reject(p.signal!.reason)
      }, { once: true })
      this.pump(ch)
    })
  }

  private pump (ch: PeerChannel): void {
    while (ch.queue.length > 0 && ch.busy < this.streamsPerPeer) {
      const batch = ch.queue.splice(0, this.maxBatch).filter(p => p.signal?.aborted !== true)
      if (batch.length === 0) continue
      // one digest per REQUEST frame
      const digest = batch[0]!.digest
      const rest = batch.filter(p => p.digest !== digest)
      if (rest.length > 0) ch.queue.unshift(...rest)
      const same = batch.filter(p => p.digest === digest)
      ch.busy++
      this.runBatch(ch, same).finally(() => {
        ch.busy--
        if (this.channels.get(ch.peer.toString()) === ch) this.pump(ch)
      }).catch(() => {})
    }
  }

  private async openLp (peer: PeerId, signal: AbortSignal): Promise<LengthPrefixedStream<Stream>> {
    const stream = await this.components.connectionManager.openStream(peer, CHUNK_EXCHANGE_PROTOCOL, { signal, maxOutboundStreams: this.maxOutboundStreams })
    stream.maxReadBufferLength = Math.max(stream.maxReadBufferLength, this.maxMessageSize * 4)
    this.counters.streamsOpened++
    return lpStream(stream, { maxDataLength: this.maxMessageSize })
  }

  private async runBatch (ch: PeerChannel, batch: Pending[]): Promise<void> {
    // a sent batch is read to the end (replies come in order), whatever its callers do, unless
    // the channel is dropped meanwhile (a ban, a disconnect, stop: dropChannel aborts it)
    const dropped = new AbortController()
    const signal = AbortSignal.any([AbortSignal.timeout(this.timeout), dropped.signal])
    ch.active.add(dropped)
    let lp: LengthPrefixedStream<Stream> | undefined
    let i = 0
    try {
      lp = ch.idle.pop() ?? await this.openLp(ch.peer, signal)
      const digest = batch[0]!.digest
      await lp.write(encodeMessage({ type: 'request', digest, ids: batch.map(p => p.id) }, this.maxMessageSize), { signal })
      this.counters.batchesSent++
      this.counters.requestsSent += batch.length
      for (; i < batch.length; i++) {
        const p = batch[i]!
        const frame = await lp.read({ signal })
        let reply: WireMessage
        try {
          reply = decodeMessage(frame.subarray(), this.maxMessageSize)
        } catch (err: any) {
          throw new PeerProtocolError(`peer ${ch.peer.toString()}: ${String(err.message)}`)
        }
        if ((reply.type !== 'chunk' && reply.type !== 'missing' && reply.type !== 'busy') || !reply.id.equals(p.id)) {
          throw new PeerProtocolError(`peer ${ch.peer.toString()} answered ${reply.type} out of order for ${p.id.toString()}`)
        }
        if (reply.type === 'chunk') p.resolve(reply.data)
        else if (reply.type === 'busy') p.reject(new PeerBusyError(p.id, `peer ${ch.peer.toString()} is busy`))
        else p.reject(new ChunkMissingError(p.id, `peer ${ch.peer.toString()} does not have chunk ${p.id.toString()}`))
      }
      ch.active.delete(dropped)
      if (ch.idle.length < this.streamsPerPeer && this.channels.get(ch.peer.toString()) === ch) ch.idle.push(lp)
      else await lp.unwrap().close().catch(() => {})
    } catch (err: any) {
      ch.active.delete(dropped)
      lp?.unwrap().abort(err)
      for (; i < batch.length; i++) batch[i]!.reject(err)
    }
  }

  private async pumpAnnouncements (ch: PeerChannel): Promise<void> {
    while (ch.announce.length > 0) {
      const batch = ch.announce.splice(0, ch.announce.length)
      const signal = AbortSignal.timeout(this.timeout)
      try {
        ch.announceStream ??= await this.openLp(ch.peer, signal)
        await ch.announceStream.writeV(batch.map(m => encodeMessage(m, this.maxMessageSize)), { signal })
      } catch (err) {
        ch.announceStream?.unwrap().abort(err as Error)
        ch.announceStream = undefined
        throw err
      }
    }
  }

  /** Aborts every request to a peer, under way or queued, and forgets its streams. */
  private dropPeer (peer: PeerId, err: Error): void {
    const ch = this.channels.get(peer.toString())
    if (ch == null) return
    this.channels.delete(peer.toString())
    this.dropChannel(ch, err)
  }

  private dropChannel (ch: PeerChannel, err: Error): void {
    for (const batch of ch.active) batch.abort(err)
    ch.active.clear()
    for (const lp of ch.idle) lp.unwrap().abort(err)
    ch.idle = []
    ch.announceStream?.unwrap().abort(err)
    ch.announceStream = undefined
    for (const p of ch.queue.splice(0)) p.reject(err)
  }

  // ---- inbound -------------------------------------------------------------------------

  private async handle (stream: Stream, connection: Connection): Promise<void> {
    const peer = connection.remotePeer
    const key = peer.toString()
    if (this.policy.isBanned(key, Date.now())) {
      stream.abort(new Error('banned'))
      return
    }
    stream.maxReadBufferLength = Math.max(stream.maxReadBufferLength, this.maxMessageSize * 4)
    const lp = lpStream(stream, { maxDataLength: this.maxMessageSize })
    try {
      while (true) {
        let frame
        try {
          frame = await lp.read()
        } catch (err: any) {
          // the remote closed its end: a clean finish
          if (err.name === 'UnexpectedEOFError' || err.code === 'ERR_UNEXPECTED_EOF' || stream.readStatus !== 'readable') break
          throw err
        }
        let msg: WireMessage
        try {
          msg = decodeMessage(frame.subarray(), this.maxMessageSize)
        } catch (err: any) {
          this.log.error('peer %p sent a bad frame - %s', peer, err.message)
          this.policy.requestFailed(key, '', 'error', Date.now())
          throw err
        }
        if (msg.type === 'request') {
          if (this.policy.isBanned(key, Date.now())) throw new Error(`peer ${key} is banned`)
          // every upload slot taken: it waits for the next free one if the policy's short queue
          // has room, else BUSY at once, so the requester asks a less loaded holder (a long queue
          // would hold it behind others while new holders appear elsewhere)
          if (!this.policy.acceptInbound(key, Date.now()) && !(this.policy.queueInbound(key, Date.now()) && await this.slotFreed(key))) {
            await lp.writeV(msg.ids.map(id => encodeMessage({ type: 'busy', digest: msg.digest, id }, this.maxMessageSize)))
            this.counters.busyServed += msg.ids.length
            continue
          }
          try {
            await this.serve(lp, peer, msg.digest, msg.ids)
          } finally {
            this.policy.inboundDone(key)
            this.grantSlot()
          }
        } else if (msg.type === 'chunk' || msg.type === 'missing' || msg.type === 'busy') {
          throw new InvalidFormatError(`unsolicited ${msg.type} from ${key}`)
        } else {
          if (this.policy.isBanned(key, Date.now())) throw new Error(`peer ${key} is banned`)
          this.onMessage?.(peer, msg)
        }
      }
      await stream.close().catch(() => {})
    } catch (err: any) {
      stream.abort(err)
      if (err.code !== MessageTooLargeError.code && err.code !== InvalidFormatError.code) throw err
    }
  }

  /**
   * Waits, in the order requests came, for an upload slot to free (grantSlot), then takes it if
   * the policy still serves `key`; false when it does not, or when no slot freed within the
   * request timeout (the requester has given up by then).
   */
  private async slotFreed (key: string): Promise<boolean> {
    const granted = await new Promise<boolean>((resolve) => {
      const waiter: SlotWaiter = {
        grant: (ok) => { clearTimeout(timer); resolve(ok) },
        gone: false
      }
      const timer = setTimeout(() => { waiter.gone = true; resolve(false) }, this.timeout)
      timer.unref()
      this.slotWaiters.push(waiter)
    })
    this.policy.unqueueInbound()
    if (!granted) return false
    if (this.policy.acceptInbound(key, Date.now())) return true
    // not served after all (banned meanwhile, or at its per-peer limit): the slot passes on
    this.grantSlot()
    return false
  }

  /** A slot freed: the first request still waiting for one takes it. */
  private grantSlot (): void {
    while (this.slotWaiters.length > 0) {
      const waiter = this.slotWaiters.shift()!
      if (waiter.gone) continue
      waiter.grant(true)
      return
    }
  }

  private async serve (lp: LengthPrefixedStream<Stream>, peer: PeerId, digest: DigestAlgorithm, ids: ChunkId[]): Promise<void> {
    for (const id of ids) {
      let reply: WireMessage
      let data: Uint8Array | undefined
      try {
        if (this.store == null) throw new ChunkMissingError(id)
        // the receiver verifies; reading unverified keeps serving cheap
        data = await this.store.getCompressed(id, { verify: false })
        reply = { type: 'chunk', digest, id, data }
      } catch (err: any) {
        if (err.code !== ChunkMissingError.code) this.log.error('serving %s to %p failed - %s', id.toString(), peer, err.message)
        reply = { type: 'missing', digest, id }
        data = undefined
      }
      if (data != null && data.byteLength + 64 > this.maxMessageSize) reply = { type: 'missing', digest, id }
      await lp.write(encodeMessage(reply, this.maxMessageSize))
      if (reply.type === 'chunk') {
        this.counters.chunksServed++
        this.counters.bytesServed += data!.byteLength
        this.onServed?.(peer, id, data!.byteLength)
      } else {
        this.counters.missingServed++
      }
    }
  }
}

export function chunkExchange (init: ChunkExchangeInit): (components: ChunkExchangeComponents) => ChunkExchange {
  return (components) => new ChunkExchange(components, init)
}
