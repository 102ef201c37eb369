/**
 * The swarm's decisions, with no I/O: which peer to ask for a chunk, whether to wait for a peer
 * or fetch from the origin, what each peer holds, and who is banned. The real host
 * (`node/swarm/`, over libp2p) and the fleet simulator (`sim/`, over a simulated transport)
 * drive the same `SwarmPolicy`: they feed it what they hear (announcements, answers, failures)
 * and ask it what to do. It has no sockets, no timers and no randomness; time is a number of
 * milliseconds the caller passes in (`now`), so a virtual clock works as well as `Date.now()`.
 *
 * **Origin coordination.** Hosts working on the same index tell each other which of its chunks
 * they lack (`noteWants`, from `prepare(index, missing)` on each host). The index's *origin
 * fetchers* are the `originFetchers` workers with the highest rendezvous weight for the index;
 * the host that must fetch a chunk from the origin (its *owner*) is dealt round robin by the
 * chunk's position in the index among the fetchers that lack it, in that rank order
 * (`positionOwner`; rendezvous hashing among them for a chunk whose position is not known), so
 * every host with the same view picks the same owner without talking, the fleet fetches each
 * chunk from the origin about once, and every fetcher owns an even share spread over the whole
 * index (owners drawn by hashing own from 1 to twice their share: the last of the largest shares
 * kept the origin's tail waiting). Owners fetch their chunks a few at a time in index order, so the
 * origin sends a steady stream of chunks whatever the fleet's size (with every host owning a
 * share, thousands of fetches would share the origin's link and all finish at the end). The
 * others wait for the owner (or for any peer that announced it is fetching the chunk) and take
 * the chunk from the first peer that announces it. A wait ends in an origin fetch when the
 * awaited peer shows no progress (no announcement, no chunk served) for `ownerTimeout` ms
 * (`fetchingTtl` once it announced it is fetching that very chunk), or when it leaves or is
 * banned, so a dead or lying peer cannot stall anyone for longer than that.
 *
 * **Peer selection.** A chunk that peers are known to hold is requested from the holder with the
 * fewest requests in flight (at most `maxInFlightPerPeer` each), ties broken by a hash of
 * (self, peer, chunk) so that many requesters spread over many holders. A host serves at most
 * `maxInbound` requests at once (few upload slots finish each upload fast, so a new chunk's
 * receivers become uploaders sooner); up to `inboundQueue` more wait for the next free slot, and
 * beyond that it answers BUSY; a busy peer is not asked again for `busyRetry` ms (doubling while
 * it stays busy). Which announced chunk to request next is `pickRecent`'s: one of the most
 * recently announced, which are the rarest.
 *
 * **Reputation.** A peer that serves a chunk failing verification is banned for `banDuration`.
 * A peer that claimed a chunk and then answered "missing", timed out, failed a request, or kept
 * others waiting as owner without progress, gets a strike; `maxStrikes` strikes ban it. A banned
 * peer's claims are forgotten; it is never asked, never waited for, and its inbound requests are
 * refused. Bans expire; strikes decay when the peer serves good chunks.
 *
 * Keys are strings: a peer by its ID string (`peerId.toString()`, or a simulator's host name),
 * a chunk by its 64-char hex ID (`ChunkId.toString()`; its first 8 hex digits serve as its
 * hash, so they must be uniformly distributed, as digests are), an index by any stable string
 * (the host uses the hex digest of the index's chunk list).
 *
 * @example
 * ```ts
 * const policy = new SwarmPolicy({ self: 'A' })
 * policy.addPeer('B', now)
 * policy.noteWants(index, 'A', missing, now)            // our own prepare()
 * policy.noteWants(index, 'B', bMissing, now)           // B's announcement
 * const plan = policy.plan(index, chunk, now)
 * if (plan.action === 'peer') {
 *   policy.requestStarted(plan.peer, chunk, now)
 *   // ... fetch, verify ...
 *   policy.requestSucceeded(plan.peer, chunk, bytes, now)   // or requestFailed(peer, chunk, 'invalid', now)
 * } else if (plan.action === 'wait') {
 *   // re-plan at plan.until, or as soon as an announcement about `chunk` arrives
 * } else {
 *   // fetch from the origin; then noteHave(index, self, chunk, now) and announce it
 * }
 * ```
 *
 * API stability: the simulator depends on this file. Changes are announced in commit messages.
 */

export type PeerKey = string
export type ChunkKey = string
export type IndexKey = string

export type FailureReason =
  /** the peer answered that it lacks the chunk */
  | 'missing'
  /** the chunk failed verification (bad digest, size, compression) */
  | 'invalid'
  /** the request took too long */
  | 'timeout'
  /** the stream or connection failed, or the answer was malformed */
  | 'error'
  /** the peer has every upload slot taken: ask someone else, or again after busyRetry */
  | 'busy'

export type Plan =
  /** Request the chunk from this peer now (call requestStarted first). */
  | { action: 'peer', peer: PeerKey }
  /**
   * A peer is expected to have the chunk soon (`peer`: the owner, or a peer fetching it; or,
   * with reason 'busy', every holder is at its in-flight limit). Re-plan at `until` or as soon as
   * availability of this chunk changes.
   */
  | { action: 'wait', peer: PeerKey | undefined, until: number, reason: 'owner' | 'fetching' | 'busy' }
  /**
   * Fetch the chunk from the origin yourself. 'owner': this host owns it; 'alone': no other host
   * lacks it or holds it; 'timeout': the awaited peer made no progress in time.
   */
  | { action: 'origin', reason: 'owner' | 'alone' | 'timeout' }

export interface SwarmPolicyInit {
  /** This host's key. */
  self: PeerKey
  /**
   * Requests in flight to one peer at once: as many as a peer serves one host at once
   * (`maxInboundPerPeer`). Each one more comes back BUSY and has the peer left alone for a
   * while, which stalls a host with one or two holders. Simulated p99 over the ideal, 8 against
   * 4 (with the small-fleet origin lanes of `ownerLanes`), seeds 1-3: 2 hosts, 16 MiB at 64 KiB,
   * 3.1-3.5x against 1.65-1.80x; 2 hosts, 64 MiB at 256 KiB, 2.26-3.66x against 1.03-1.08x; 3
   * hosts at 1 MiB 1.21-1.53x against 1.21-1.25x; 1,000 hosts at 64 KiB unchanged (1.358-1.379x);
   * but 5,000 hosts, 500 MiB at 1 MiB, 1.35x against 1.39x, and at 4 MiB 1.84x against 1.91x.
   * @default 4
   */
  maxInFlightPerPeer?: number
  /**
   * Inbound requests served to one peer at once. @default 4
   */
  maxInboundPerPeer?: number
  /**
   * Inbound requests served at once in total (upload slots); more wait (inboundQueue) or are
   * answered BUSY. Few slots make each upload finish fast, so a new chunk's receivers become
   * holders (and uploaders) sooner; as many slots as the requests a host keeps in flight itself
   * (chunkSizeDefaults peerPrefetch) measured best in the simulator once origin owners were
   * dealt by position (16 MiB, p99 over ideal: 1,000 hosts 1.35x with 6 slots and 6 requests, 1.44x with 6 and 12,
   * 1.38x with 8 and 8, 1.42x with 4 and 4; 2,000 hosts 1.37x with 6 and 6, 1.42x with 6 and 12,
   * 1.44x with 8 and 8), and with twice as many requests as slots half of them come back BUSY.
   * @default 6 (at 64 KiB chunks; see setChunkSize)
   */
  maxInbound?: number
  /**
   * Requests that find every upload slot taken and wait for the next free one (first come, first
   * served); more are answered BUSY. A waiting request takes a slot the moment it frees, where a
   * BUSY one costs a reply, a pause and a new request; a long queue holds requests behind a few
   * uploads while new holders appear elsewhere. Simulated p99 over the ideal (16 MiB at 64 KiB,
   * 1,000 hosts, seeds 1-3): 1.384/1.364/1.364x with no queue, 1.368/1.362/1.358x with 1 (10%
   * fewer events: fewer BUSY answers and retries), 1.384/1.350/1.357x with 2 (18% fewer),
   * 1.399/1.375/1.396x with 3, 1.45-1.47x with 6; staggered waves, 5,000 hosts, seed 3: 1.473x,
   * 1.493x, 1.519x with 0, 1 and 2; 500 MiB at 1 MiB, 1,000 hosts: 1.501x, 1.395x, 1.374x.
   * @default 1
   */
  inboundQueue?: number
  /**
   * Hosts per index that fetch from the origin: the owners of the origin split are drawn from
   * this many of the index's workers (the highest rendezvous weights for the index), so the
   * fleet keeps about `originFetchers` × (their prefetch lanes) origin fetches in flight, in
   * index order, whatever its size (every host fetching its own share at once would have the
   * origin send them all side by side and finish them all at the end). @default 32
   */
  originFetchers?: number
  /** ms an awaited peer may go without progress before we fetch from the origin ourselves. @default 3000 */
  ownerTimeout?: number
  /** ms a peer that answered BUSY is left alone (doubling while it stays busy, up to 8×). @default 2 */
  busyRetry?: number
  /** ms a "fetching" announcement counts without a following "have". @default 30_000 */
  fetchingTtl?: number
  /** ms a ban lasts. @default 600_000 (10 minutes) */
  banDuration?: number
  /** strikes that ban a peer. @default 3 */
  maxStrikes?: number
}

export interface PeerReputation {
  peer: PeerKey
  strikes: number
  /** the time the current ban ends (0: not banned) */
  bannedUntil: number
  banReason?: string
  /** chunks received from this peer that verified */
  goodChunks: number
  /** chunks received from this peer that did not verify */
  badChunks: number
  /** claims this peer made that turned out false ("have" then "missing") */
  falseClaims: number
  bytesReceived: number
}

/**
 * What a host knows of one peer (its load, pauses, claims and reputation). Flat, with the
 * reputation's counters in it rather than in an object of their own, and its hash a signed
 * 32-bit integer (a small integer to V8, not a boxed number): plan() reads every holder's state,
 * and a simulated fleet has hundreds of thousands of them, so each one is a memory access.
 */
export interface PeerState extends Omit<PeerReputation, 'peer'> {
  key: PeerKey
  /** hashKey(key) | 0 (only ever used through bitwise operations) */
  hash: number
  connected: boolean
  inFlight: number
  inbound: number
  lastProgress: number
  /** it answered BUSY (every upload slot taken): not asked again before this time */
  busyUntil: number
  /** BUSY answers in a row (the pause doubles with each, up to 8 × busyRetry) */
  busyStreak: number
  /** chunks the peer announced or proved it has */
  haves: Set<ChunkKey>
  /** chunk → time the peer announced it is fetching it */
  fetching: Map<ChunkKey, number>
}

interface IndexState {
  /** chunk → hosts (peers and maybe self) that lack it and will fetch it */
  wanters: Map<ChunkKey, Set<PeerKey>>
  /** hosts working on this index */
  workers: Set<PeerKey>
  /** when (ms) the last of them was added (-Infinity: none yet) */
  lastJoin: number
  /** the origin fetchers (in rank order), as of a membership stamp */
  fetchers?: { stamp: string, set: Set<PeerKey> }
  /** a chunk's position in the index (see setChunkOrder) */
  positionOf?: (chunk: ChunkKey) => number | undefined
}

function reputationOf (s: PeerState): PeerReputation {
  const rep: PeerReputation = { peer: s.key, strikes: s.strikes, bannedUntil: s.bannedUntil, goodChunks: s.goodChunks, badChunks: s.badChunks, falseClaims: s.falseClaims, bytesReceived: s.bytesReceived }
  if (s.banReason != null) rep.banReason = s.banReason
  return rep
}

// a peer's haves and fetching start as these shared empty ones, replaced on the first write (a
// simulated fleet has hundreds of thousands of peer states, most of which never hold a claim)
const NO_HAVES: Set<ChunkKey> = new Set()
const NO_FETCHING: Map<ChunkKey, number> = new Map()

/** murmur3's fmix32: a bijective 32-bit mixer with full avalanche */
function mix32 (h: number): number {
  h ^= h >>> 16
  h = Math.imul(h, 0x85ebca6b)
  h ^= h >>> 13
  h = Math.imul(h, 0xc2b2ae35)
  h ^= h >>> 16
  return h >>> 0
}

/** FNV-1a over a string's UTF-16 code units, then mixed */
export function hashKey (s: string): number {
  let h = 0x811c9dc5
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i)
    h = Math.imul(h, 0x01000193)
  }
  return mix32(h >>> 0)
}

/** A chunk's hash: the first 32 bits of its hex ID (digests are uniform), or FNV for other keys. */
export function chunkHash (chunk: ChunkKey): number {
  if (chunk.length < 8) return hashKey(chunk)
  // parsed by hand: this runs for every plan
  let n = 0
  for (let i = 0; i < 8; i++) {
    const d = hexDigit(chunk.charCodeAt(i))
    if (d < 0) return hashKey(chunk)
    n = (n << 4) | d
  }
  return n >>> 0
}

function hexDigit (code: number): number {
  if (code >= 48 && code <= 57) return code - 48
  const lower = code | 0x20
  if (lower >= 97 && lower <= 102) return lower - 87
  return -1
}

/** The rendezvous weight of a host for a chunk (deterministic; the highest wins). */
export function rendezvousWeight (peerHash: number, chunkHashValue: number): number {
  return mix32((peerHash ^ mix32(chunkHashValue ^ 0x9e3779b9)) >>> 0)
}

/**
 * The owner of a chunk among `candidates` by rendezvous hashing: the same answer on every host
 * given the same candidates, in any order. Ties (equal weights) go to the smaller key.
 */
export function rendezvousOwner (candidates: Iterable<PeerKey>, chunk: ChunkKey, hashOf: (p: PeerKey) => number = hashKey): PeerKey | undefined {
  const ch = chunkHash(chunk)
  let best: PeerKey | undefined
  let bestWeight = -1
  for (const p of candidates) {
    const w = rendezvousWeight(hashOf(p), ch)
    if (w > bestWeight || (w === bestWeight && best != null && p < best)) {
      best = p
      bestWeight = w
    }
  }
  return best
}

/**
 * The owner of the chunk at `position` in its index among `candidates`, the origin fetchers that
 * lack it in rank order (see `originFetchers`): dealt round robin, so each fetcher owns every
 * n-th chunk. Every host with the same view gets the same answer.
 */
export function positionOwner<T> (candidates: readonly T[], position: number): T | undefined {
  if (candidates.length === 0) return undefined
  return candidates[position % candidates.length]
}

/**
 * The hosts among `candidates` that fetch `index`'s chunks from the origin: the `count` with the
 * highest rendezvous weight for the index (the same set on every host with the same view).
 */
export function originFetchers (candidates: Iterable<PeerKey>, index: IndexKey, count: number, hashOf: (p: PeerKey) => number = hashKey): Set<PeerKey> {
  const ih = hashKey(index)
  const ranked: Array<{ p: PeerKey, w: number }> = []
  for (const p of candidates) ranked.push({ p, w: rendezvousWeight(hashOf(p), ih) })
  ranked.sort((a, b) => b.w - a.w || (a.p < b.p ? -1 : a.p > b.p ? 1 : 0))
  return new Set(ranked.slice(0, Math.max(1, count)).map(r => r.p))
}

/**
 * Which of the chunks peers announced (and this host lacks) to request next, given how many
 * there are (`length`, oldest first): one of the `among` most recent, at random. The most
 * recently announced chunks are the rarest in the swarm (they just arrived), so taking them
 * first spreads new chunks fast and gives every host something its peers lack to upload; the
 * random pick among a few keeps the hosts that heard the same announcement from all asking for
 * the same chunk. `rand` is a 32-bit PRNG state (see nextRandom). Returns -1 when length is 0.
 */
export function pickRecent (length: number, among: number, rand: number): number {
  if (length <= 0) return -1
  return length - 1 - (among > 1 ? rand % Math.min(among, length) : 0)
}

/** A 32-bit LCG step (Numerical Recipes' constants): cheap, deterministic, good enough for pickRecent. */
export function nextRandom (state: number): number {
  return (Math.imul(state, 1664525) + 1013904223) >>> 0
}

/** casync's default average chunk size, at which the swarm's defaults were calibrated */
const CALIBRATED_CHUNK_SIZE = 64 * 1024

/**
 * The swarm's defaults for an index whose chunks average `avg` bytes. At casync's 64 KiB they are
 * the constructor's defaults; larger chunks take longer to move, so a BUSY peer is left alone for
 * longer (in proportion, so a wait costs about as many chunk times), and a host keeps fewer
 * uploads, fewer requests and the fleet fewer origin fetchers in flight (by the square root:
 * fewer transfers sharing a link finish each chunk sooner, so it is relayed sooner, while enough
 * stay in flight to keep the links busy). A 64 KiB chunk gets 2 ms, 6 upload slots, 6 peer
 * requests and 32 origin fetchers; a 4 MiB chunk 128 ms, 4 upload slots, 4 peer requests and 8
 * origin fetchers.
 */
export function chunkSizeDefaults (avg: number): { maxInbound: number, busyRetry: number, originFetchers: number, peerPrefetch: number } {
  const scale = Math.max(1, avg / CALIBRATED_CHUNK_SIZE)
  const root = Math.sqrt(scale)
  const clamp = (x: number, lo: number, hi: number): number => Math.min(hi, Math.max(lo, Math.round(x)))
  return {
    maxInbound: clamp(6 / root, 4, 6),
    busyRetry: 2 * scale,
    originFetchers: clamp(32 / root, 8, 32),
    peerPrefetch: clamp(6 / root, 4, 6)
  }
}

/**
 * Bytes the origin fetchers of an index keep in flight in all, at least: enough to fill a
 * 1 Gbit/s origin over a 30 ms round trip (64 chunks at 64 KiB).
 */
export const ORIGIN_BYTES_IN_FLIGHT = 4 << 20

/**
 * The origin prefetch lanes of one of `fetchers` origin fetchers (node/swarm/source.ts, and the
 * simulator): `base` (4) in a fleet of 16 or more, more in a smaller one, so the few fetchers of a
 * small fleet still keep ORIGIN_BYTES_IN_FLIGHT in flight (up to `max`, the HTTP client's
 * requests at once). The base lanes open one per fetched chunk (a slow start), the extra ones at
 * once. Simulated, 16 MiB at 64 KiB, 10 ms to the origin, p99 over the ideal, seeds 1-3: 2 hosts
 * 4.38-4.91x with 4 lanes, 1.65-1.80x with these opened one at a time, 1.31-1.44x with the extra
 * ones at once (and maxInFlightPerPeer 4); 3 hosts 3.07-3.44x, 1.41-1.48x, 1.08-1.14x; 5 hosts
 * 2.03-2.25x, 1.28-1.33x, 1.12-1.20x; 8 hosts 1.49-1.59x, 1.21-1.32x, 1.18-1.25x; 16 and more
 * unchanged.
 */
export function ownerLanes (base: number, fetchers: number, chunkAvg: number, max = 16): number {
  const want = Math.ceil(ORIGIN_BYTES_IN_FLIGHT / Math.max(1, chunkAvg) / Math.max(1, fetchers))
  return Math.max(base, Math.min(max, want))
}

/** How many recent announcements pickRecent chooses among. */
export const PICK_AMONG = 8

export class SwarmPolicy {
  readonly self: PeerKey
  readonly maxInFlightPerPeer: number
  readonly maxInboundPerPeer: number
  /** requests that may wait for an upload slot (see SwarmPolicyInit.inboundQueue) */
  readonly maxInboundQueue: number
  /** upload slots (see SwarmPolicyInit.maxInbound; setChunkSize scales the default) */
  maxInbound: number
  readonly ownerTimeout: number
  originFetcherCount: number
  busyRetry: number
  readonly fetchingTtl: number
  readonly banDuration: number
  readonly maxStrikes: number
  private readonly selfHash: number
  private readonly init: SwarmPolicyInit
  private readonly peerStates = new Map<PeerKey, PeerState>()
  private readonly indexes = new Map<IndexKey, IndexState>()
  /** chunk → peers holding it (reverse of PeerState.haves, for fast selection) */
  private readonly holders = new Map<ChunkKey, Set<PeerKey>>()
  /** chunk → when we first had to wait for it */
  private readonly waitingSince = new Map<ChunkKey, number>()
  private inboundTotal = 0
  /** inbound requests waiting for an upload slot */
  private inboundQueued = 0
  /** the peer state looked up last (see state()) */
  private lastState?: PeerState
  /** bumped when who works on what, or who is usable, changes */
  private membership = 0

  constructor (init: SwarmPolicyInit) {
    this.self = init.self
    this.maxInFlightPerPeer = init.maxInFlightPerPeer ?? 4
    this.maxInboundPerPeer = init.maxInboundPerPeer ?? 4
    this.maxInboundQueue = init.inboundQueue ?? 1
    this.init = init
    this.maxInbound = init.maxInbound ?? 6
    this.ownerTimeout = init.ownerTimeout ?? 3000
    this.originFetcherCount = init.originFetchers ?? 32
    this.busyRetry = init.busyRetry ?? 2
    this.fetchingTtl = init.fetchingTtl ?? 30_000
    this.banDuration = init.banDuration ?? 600_000
    this.maxStrikes = init.maxStrikes ?? 3
    this.selfHash = hashKey(this.self)
  }

  /**
   * Scales the defaults that depend on how long a chunk takes to move (upload slots, the BUSY
   * pause, the number of origin fetchers) to an index's average chunk size; options given to
   * the constructor stay as given. Call it when extraction of an index starts.
   */
  setChunkSize (avg: number): void {
    const d = chunkSizeDefaults(avg)
    this.maxInbound = this.init.maxInbound ?? d.maxInbound
    this.busyRetry = this.init.busyRetry ?? d.busyRetry
    this.originFetcherCount = this.init.originFetchers ?? d.originFetchers
    this.membership++
  }

  // ---- membership -------------------------------------------------------------------------

  /** A peer connected (or was discovered and is reachable). Idempotent. */
  addPeer (peer: PeerKey, now: number): void {
    if (peer === this.self) return
    const s = this.state(peer)
    if (!s.connected) this.membership++
    s.connected = true
    s.lastProgress = Math.max(s.lastProgress, now)
  }

  /** A peer disconnected: its claims, wants and in-flight requests are dropped; its reputation stays. */
  removePeer (peer: PeerKey, _now: number): void {
    const s = this.peerStates.get(peer)
    if (s == null) return
    this.membership++
    s.connected = false
    s.inFlight = 0
    this.forgetClaims(s)
  }

  /** Connected peers (banned ones included). */
  peers (): PeerKey[] {
    return [...this.peerStates.values()].filter(s => s.connected).map(s => s.key)
  }

  /** Connected, non-banned peers. */
  usablePeers (now: number): PeerKey[] {
    return [...this.peerStates.values()].filter(s => s.connected && !this.bannedAt(s, now)).map(s => s.key)
  }

  // ---- availability -----------------------------------------------------------------------

  /**
   * `host` (a peer, or self) works on `index` and lacks `chunks` (it will fetch them). Adds to
   * what was said before; a chunk it then gets is removed by noteHave. For self, call it from
   * prepare(index, missing) with every chunk the host will need from the network.
   */
  noteWants (index: IndexKey, host: PeerKey, chunks: Iterable<ChunkKey>, now: number): void {
    if (host !== this.self) {
      const s = this.state(host)
      if (this.bannedAt(s, now)) return
      s.lastProgress = Math.max(s.lastProgress, now)
    }
    const st = this.indexState(index)
    if (!st.workers.has(host)) { this.membership++; st.lastJoin = Math.max(st.lastJoin, now) }
    st.workers.add(host)
    for (const c of chunks) {
      if (host !== this.self && this.peerStates.get(host)?.haves.has(c) === true) continue
      let set = st.wanters.get(c)
      if (set == null) st.wanters.set(c, set = new Set())
      set.add(host)
    }
  }

  /**
   * How to find a chunk's position in `index` (its first place in the chunk list): owners are
   * then dealt round robin by position (`positionOwner`) instead of by hashing. Every host on the
   * index must say it, or none: the owner of a chunk must be the same on every host.
   */
  setChunkOrder (index: IndexKey, positionOf: (chunk: ChunkKey) => number | undefined): void {
    this.indexState(index).positionOf = positionOf
  }

  /** `host` stopped working on `index` (finished, or gave up): it no longer owns any of its chunks. */
  leaveIndex (index: IndexKey, host: PeerKey): void {
    const st = this.indexes.get(index)
    if (st == null) return
    this.membership++
    st.workers.delete(host)
    for (const [c, set] of st.wanters) {
      set.delete(host)
      if (set.size === 0) st.wanters.delete(c)
    }
    if (st.workers.size === 0 && st.wanters.size === 0) this.indexes.delete(index)
  }

  /**
   * `host` has `chunk` (announced, or just served it verified). `index` may be undefined when the
   * chunk is not tied to an index (a query answer). Self's haves only clear its wants.
   */
  noteHave (index: IndexKey | undefined, host: PeerKey, chunk: ChunkKey, now: number): void {
    this.noteHaves(index, host, [chunk], now)
  }

  noteHaves (index: IndexKey | undefined, host: PeerKey, chunks: Iterable<ChunkKey>, now: number): void {
    const indexes = index != null ? [this.indexes.get(index)] : [...this.indexes.values()]
    let s: PeerState | undefined
    if (host !== this.self) {
      s = this.state(host)
      if (this.bannedAt(s, now)) return
      s.lastProgress = Math.max(s.lastProgress, now)
    }
    for (const c of chunks) {
      for (const st of indexes) {
        const set = st?.wanters.get(c)
        if (set == null) continue
        set.delete(host)
        if (set.size === 0) st!.wanters.delete(c)
      }
      if (s == null) {
        this.waitingSince.delete(c)
        continue
      }
      s.fetching.delete(c)
      if (!s.haves.has(c)) {
        if (s.haves === NO_HAVES) s.haves = new Set()
        s.haves.add(c)
        let hs = this.holders.get(c)
        if (hs == null) this.holders.set(c, hs = new Set())
        hs.add(host)
      }
    }
  }

  /** `peer` said it does not have `chunk` (a query answer or a "missing" reply). */
  noteLacks (peer: PeerKey, chunk: ChunkKey, _now: number): void {
    const s = this.peerStates.get(peer)
    if (s == null) return
    this.dropHave(s, chunk)
  }

  /** `peer` announced it is fetching `chunk` (from the origin); others wait for it. */
  noteFetching (peer: PeerKey, chunk: ChunkKey, now: number): void {
    if (peer === this.self) return
    const s = this.state(peer)
    if (this.bannedAt(s, now) || s.haves.has(chunk)) return
    if (s.fetching === NO_FETCHING) s.fetching = new Map()
    s.fetching.set(chunk, now)
    s.lastProgress = Math.max(s.lastProgress, now)
  }

  /** Whether a (non-banned) peer is known to hold the chunk. */
  has (peer: PeerKey, chunk: ChunkKey, now: number): boolean {
    const s = this.peerStates.get(peer)
    return s != null && s.connected && !this.bannedAt(s, now) && s.haves.has(chunk)
  }

  /** Connected, non-banned peers known to hold the chunk. */
  holdersOf (chunk: ChunkKey, now: number): PeerKey[] {
    const hs = this.holders.get(chunk)
    if (hs == null) return []
    return [...hs].filter(p => {
      const s = this.peerStates.get(p)!
      return s.connected && !this.bannedAt(s, now)
    })
  }

  /**
   * The states of holdersOf(chunk): what plan() chooses among. (The fleet simulator overrides it,
   * reading holders from its shared state.)
   */
  protected holderStates (chunk: ChunkKey, now: number): PeerState[] {
    const hs = this.holders.get(chunk)
    if (hs == null) return []
    const out: PeerState[] = []
    for (const p of hs) {
      const s = this.peerStates.get(p)!
      if (s.connected && !this.bannedAt(s, now)) out.push(s)
    }
    return out
  }

  /** Connected, non-banned peers that announced (within fetchingTtl) they are fetching the chunk. */
  fetchersOf (chunk: ChunkKey, now: number): PeerKey[] {
    const out: PeerKey[] = []
    for (const s of this.peerStates.values()) {
      const t = s.fetching.get(chunk)
      if (t != null && now - t <= this.fetchingTtl && s.connected && !this.bannedAt(s, now)) out.push(s.key)
    }
    return out
  }

  /** Hosts working on the index (self included if it called noteWants), banned peers excluded. */
  workers (index: IndexKey, now: number): PeerKey[] {
    const st = this.indexes.get(index)
    if (st == null) return []
    return [...st.workers].filter(p => this.eligible(p, now)).sort()
  }

  /** When (ms) a host last joined `index` as this host sees it (-Infinity: none). */
  lastWorkerJoin (index: IndexKey): number {
    return this.indexes.get(index)?.lastJoin ?? Number.NEGATIVE_INFINITY
  }

  /**
   * When (ms) this host, which joined `index` at `joinedAt`, may start fetching the chunks it owns
   * from the origin: once no host has joined the index for `quiet` ms (the owner split is then
   * worked out from a view its peers share: a whole wave of hosts that start together has heard
   * of one another), and no later than `settle` ms after it joined (hosts that keep arriving do
   * not hold the origin back for ever).
   */
  prefetchStartAt (index: IndexKey, joinedAt: number, quiet: number, settle: number): number {
    return Math.min(joinedAt + settle, Math.max(joinedAt, this.lastWorkerJoin(index)) + quiet)
  }

  /**
   * The index's origin fetchers (see `originFetchers`): the eligible workers still lacking some
   * chunk of it, ranked by rendezvous weight for the index.
   */
  originFetchersOf (index: IndexKey, now: number): Set<PeerKey> {
    const st = this.indexes.get(index)
    if (st == null) return new Set()
    // the view changes with membership (joins, leaves, bans); ban expiry is caught within a second
    const stamp = `${this.membership}/${Math.floor(now / 1000)}`
    if (st.fetchers?.stamp === stamp) return st.fetchers.set
    const lacking = new Set<PeerKey>()
    for (const set of st.wanters.values()) for (const p of set) lacking.add(p)
    const candidates = [...st.workers].filter(p => lacking.has(p) && this.eligible(p, now))
    const set = originFetchers(candidates, index, this.originFetcherCount, p => this.hashOf(p))
    st.fetchers = { stamp, set }
    return set
  }

  /**
   * The host that should fetch `chunk` from the origin: among the index's origin fetchers that
   * lack it, dealt by the chunk's position (`positionOwner`), or by rendezvous hashing when the
   * position is not known; rendezvous among every eligible host lacking it when none of the
   * fetchers does.
   */
  ownerOf (index: IndexKey, chunk: ChunkKey, now: number): PeerKey | undefined {
    const st = this.indexes.get(index)
    const set = st?.wanters.get(chunk)
    if (st == null || set == null) return undefined
    const candidates: PeerKey[] = []
    // the fetchers' set is in rank order, and so are the candidates taken from it
    for (const p of this.originFetchersOf(index, now)) if (set.has(p)) candidates.push(p)
    if (candidates.length > 0) {
      const position = st.positionOf?.(chunk)
      if (position != null) return positionOwner(candidates, position)
    } else {
      for (const p of set) if (this.eligible(p, now)) candidates.push(p)
    }
    return rendezvousOwner(candidates, chunk, p => this.hashOf(p))
  }

  // ---- decisions ----------------------------------------------------------------------------

  /**
   * What to do about a chunk this host needs (it does not hold it locally). Holders first (least
   * loaded), then wait for the owner or a fetching peer while they make progress, else origin.
   */
  plan (index: IndexKey, chunk: ChunkKey, now: number): Plan {
    // 1. a peer has it
    const holders = this.holderStates(chunk, now)
    if (holders.length > 0) {
      const ch = chunkHash(chunk)
      let best: PeerState | undefined
      let bestTie = 0
      let retry = now + this.busyRetry
      for (let i = 0; i < holders.length; i++) {
        const s = holders[i]!
        if (s.busyUntil > now) { retry = Math.min(retry, s.busyUntil); continue }
        if (s.inFlight >= this.maxInFlightPerPeer) continue
        const tie = rendezvousWeight(s.hash ^ this.selfHash, ch)
        if (best == null || s.inFlight < best.inFlight || (s.inFlight === best.inFlight && tie > bestTie)) {
          best = s
          bestTie = tie
        }
      }
      if (best != null) {
        this.lastState = best // requestStarted names it next
        return { action: 'peer', peer: best.key }
      }
      return { action: 'wait', peer: undefined, until: retry, reason: 'busy' }
    }

    // 2. someone else will fetch it: its owner, or a peer that said it is fetching it
    const waitKey = chunk
    let awaited: PeerState | undefined
    let reason: 'owner' | 'fetching' = 'owner'
    const owner = this.ownerOf(index, chunk, now)
    if (owner != null && owner !== this.self) {
      awaited = this.peerStates.get(owner)
    } else {
      for (const s of this.peerStates.values()) {
        const t = s.fetching.get(chunk)
        if (t == null || !s.connected || this.bannedAt(s, now)) continue
        if (now - t > this.fetchingTtl) { s.fetching.delete(chunk); continue }
        if (awaited == null || s.lastProgress > awaited.lastProgress) awaited = s
        reason = 'fetching'
      }
    }
    if (awaited == null) {
      this.waitingSince.delete(waitKey)
      return { action: 'origin', reason: owner === this.self ? 'owner' : 'alone' }
    }
    let since = this.waitingSince.get(waitKey)
    if (since == null) this.waitingSince.set(waitKey, since = now)
    // an awaited peer that announced it is fetching this very chunk is moving it: it has
    // fetchingTtl to deliver (a large chunk behind a busy origin takes longer than ownerTimeout,
    // and giving up on it would only add a second copy to the origin's load); otherwise it must
    // show some progress every ownerTimeout
    const fetchingSince = awaited.fetching.get(chunk)
    const deadline = fetchingSince != null && now - fetchingSince <= this.fetchingTtl
      ? fetchingSince + this.fetchingTtl
      : Math.max(since, awaited.lastProgress) + this.ownerTimeout
    if (now >= deadline) {
      this.waitingSince.delete(waitKey)
      this.strike(awaited, now, `kept ${chunk.slice(0, 12)}… waiting without progress`)
      return { action: 'origin', reason: 'timeout' }
    }
    return { action: 'wait', peer: awaited.key, until: deadline, reason }
  }

  // ---- outbound requests --------------------------------------------------------------------

  /** A request for `chunk` to `peer` is now in flight. */
  requestStarted (peer: PeerKey, _chunk: ChunkKey, _now: number): void {
    this.state(peer).inFlight++
  }

  /** `peer` served `chunk` and it verified (`bytes`: its size on the wire). */
  requestSucceeded (peer: PeerKey, chunk: ChunkKey, bytes: number, now: number): void {
    const s = this.state(peer)
    s.inFlight = Math.max(0, s.inFlight - 1)
    s.lastProgress = Math.max(s.lastProgress, now)
    s.goodChunks++
    s.bytesReceived += bytes
    s.busyStreak = 0
    // good service slowly pays off strikes
    if (s.strikes > 0 && s.goodChunks % 64 === 0) s.strikes--
    if (!this.bannedAt(s, now) && s.connected) this.served(peer, chunk, now)
  }

  /**
   * `peer` just served `chunk` verified, so it holds it: recorded as a holder. (The fleet
   * simulator overrides this and `claimed`, which read what peers hold from its shared state.)
   */
  protected served (peer: PeerKey, chunk: ChunkKey, _now: number): void {
    const s = this.state(peer)
    if (s.haves.has(chunk)) return
    if (s.haves === NO_HAVES) s.haves = new Set()
    s.haves.add(chunk)
    let hs = this.holders.get(chunk)
    if (hs == null) this.holders.set(chunk, hs = new Set())
    hs.add(peer)
  }

  /** Whether `peer` claimed (announced) `chunk`: a "missing" answer for it is then a false claim. */
  protected claimed (peer: PeerKey, chunk: ChunkKey): boolean {
    return this.peerStates.get(peer)?.haves.has(chunk) === true
  }

  /**
   * A request for `chunk` to `peer` failed. 'invalid' bans the peer at once; 'missing' after the
   * peer claimed the chunk, 'timeout' and 'error' are strikes; 'busy' (every upload slot of the
   * peer taken) only keeps it from being asked again for `busyRetry` ms.
   */
  requestFailed (peer: PeerKey, chunk: ChunkKey, reason: FailureReason, now: number): void {
    const s = this.state(peer)
    s.inFlight = Math.max(0, s.inFlight - 1)
    const claimed = reason === 'missing' && this.claimed(peer, chunk)
    if (reason !== 'busy') this.dropHave(s, chunk)
    switch (reason) {
      case 'invalid':
        s.badChunks++
        this.ban(peer, now, `served chunk ${chunk.slice(0, 12)}… that failed verification`)
        break
      case 'missing':
        if (claimed) {
          s.falseClaims++
          this.strike(s, now, `claimed chunk ${chunk.slice(0, 12)}… it lacks`)
        }
        break
      case 'timeout':
      case 'error':
        this.strike(s, now, `request for ${chunk.slice(0, 12)}… failed (${reason})`)
        break
      case 'busy':
        // not a fault, and the claim stands: leave the peer alone for a moment, longer each time
        s.busyUntil = now + this.busyRetry * Math.min(8, 2 ** s.busyStreak)
        s.busyStreak++
        break
    }
  }

  /** In-flight requests to a peer. */
  inFlight (peer: PeerKey): number {
    return this.peerStates.get(peer)?.inFlight ?? 0
  }

  // ---- inbound requests ---------------------------------------------------------------------

  /**
   * A request from `peer` found every upload slot taken (acceptInbound said no): whether it may
   * wait for the next free one. If true, the caller keeps it in a first-come-first-served queue
   * and, when a slot frees (inboundDone) or the request goes, calls unqueueInbound and then asks
   * acceptInbound again.
   */
  queueInbound (peer: PeerKey, now: number): boolean {
    if (this.inboundQueued >= this.maxInboundQueue || this.inboundTotal < this.maxInbound) return false
    const s = this.state(peer)
    if (this.bannedAt(s, now) || s.inbound >= this.maxInboundPerPeer) return false
    this.inboundQueued++
    return true
  }

  /** A request queued by queueInbound leaves the queue (to be served, or given up). */
  unqueueInbound (): void {
    this.inboundQueued = Math.max(0, this.inboundQueued - 1)
  }

  /** Whether to serve one more request from `peer` now; if true, call inboundDone when finished. */
  acceptInbound (peer: PeerKey, now: number): boolean {
    // every slot taken (most refusals in a busy fleet): answered without looking the peer up
    if (this.inboundTotal >= this.maxInbound) return false
    const s = this.state(peer)
    if (this.bannedAt(s, now)) return false
    if (s.inbound >= this.maxInboundPerPeer) return false
    s.inbound++
    this.inboundTotal++
    return true
  }

  inboundDone (peer: PeerKey): void {
    const s = this.peerStates.get(peer)
    if (s == null || s.inbound === 0) return
    s.inbound--
    this.inboundTotal = Math.max(0, this.inboundTotal - 1)
  }

  // ---- reputation ---------------------------------------------------------------------------

  /** Bans a peer for banDuration: its claims and wants are forgotten, it is neither asked nor served. */
  ban (peer: PeerKey, now: number, reason: string): void {
    const s = this.state(peer)
    this.membership++
    s.bannedUntil = now + this.banDuration
    s.banReason = reason
    s.strikes = 0
    this.forgetClaims(s)
  }

  isBanned (peer: PeerKey, now: number): boolean {
    const s = this.peerStates.get(peer)
    return s != null && this.bannedAt(s, now)
  }

  reputation (peer: PeerKey): PeerReputation {
    return reputationOf(this.state(peer))
  }

  reputations (): PeerReputation[] {
    return [...this.peerStates.values()].map(reputationOf)
  }

  // ---- internals ----------------------------------------------------------------------------

  /** The state of a peer, created on first mention. */
  protected state (peer: PeerKey): PeerState {
    // a request's start, answer and the plan before it name the same peer in a row
    if (this.lastState?.key === peer) return this.lastState
    let s = this.peerStates.get(peer)
    if (s == null) {
      s = {
        key: peer,
        hash: hashKey(peer) | 0,
        connected: false,
        inFlight: 0,
        inbound: 0,
        lastProgress: -Infinity,
        busyUntil: 0,
        busyStreak: 0,
        haves: NO_HAVES,
        fetching: NO_FETCHING,
        strikes: 0,
        bannedUntil: 0,
        banReason: undefined,
        goodChunks: 0,
        badChunks: 0,
        falseClaims: 0,
        bytesReceived: 0
      }
      this.peerStates.set(peer, s)
    }
    this.lastState = s
    return s
  }

  private indexState (index: IndexKey): IndexState {
    let st = this.indexes.get(index)
    if (st == null) this.indexes.set(index, st = { wanters: new Map(), workers: new Set(), lastJoin: Number.NEGATIVE_INFINITY })
    return st
  }

  private hashOf (p: PeerKey): number {
    return p === this.self ? this.selfHash : this.state(p).hash
  }

  private bannedAt (s: PeerState, now: number): boolean {
    return s.bannedUntil > now
  }

  /** self, or a connected non-banned peer */
  private eligible (p: PeerKey, now: number): boolean {
    if (p === this.self) return true
    const s = this.peerStates.get(p)
    return s != null && s.connected && !this.bannedAt(s, now)
  }

  private strike (s: PeerState, now: number, reason: string): void {
    // a banned peer's requests that fail (those aborted when it was banned, for one) add
    // nothing: its ban and the reason for it stand
    if (this.bannedAt(s, now)) return
    s.strikes++
    if (s.strikes >= this.maxStrikes) this.ban(s.key, now, `${s.strikes} strikes, last: ${reason}`)
  }

  private dropHave (s: PeerState, chunk: ChunkKey): void {
    if (!s.haves.delete(chunk)) return
    const hs = this.holders.get(chunk)
    hs?.delete(s.key)
    if (hs?.size === 0) this.holders.delete(chunk)
  }

  private forgetClaims (s: PeerState): void {
    for (const c of s.haves) {
      const hs = this.holders.get(c)
      hs?.delete(s.key)
      if (hs?.size === 0) this.holders.delete(c)
    }
    s.haves.clear()
    s.fetching.clear()
    for (const [index, st] of this.indexes) {
      if (st.workers.has(s.key)) this.leaveIndex(index, s.key)
    }
  }
}
