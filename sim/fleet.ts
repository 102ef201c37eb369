// A fleet of simulated hosts rolling out one update over a simulated network. Each honest host
// runs the loop of a swarm host (node/swarm/source.ts): requests for the chunks its peers
// announce, most recent first; waits, in its own order, for chunks nobody announced yet; and, if
// it is one of the index's origin fetchers, a few origin fetches of the chunks it owns in index
// order. For each chunk it asks its SwarmPolicy (node/swarm/policy.ts, through FleetPolicy) what
// to do: request it from a peer, wait for the peer that will fetch it, or fetch it from the
// origin. A request that finds every upload slot taken waits in a short queue for the next
// free one, or, when that is full, is answered BUSY. Every received chunk
// goes through protocol/chunk-id.ts verifyChunk (on a small stand-in payload whose digest is the
// chunk's ID), and a chunk that fails makes the host call the policy's requestFailed('invalid'),
// which bans the peer, exactly as the real host does. Chunks are IDs and sizes, not bytes.
import { ChunkId, verifyChunk } from '../protocol/chunk-id.ts'
import { ChunkInvalidError } from '../protocol/errors.ts'
import { chunkSizeDefaults, hashKey, ownerLanes, nextRandom, originFetchers, pickRecent, positionOwner, rendezvousWeight, type PeerKey, type Plan } from '../node/swarm/policy.ts'
import { idealSeconds, type FleetConfig } from './config.ts'
import { Simulation } from './engine.ts'
import { FleetPolicy, type FleetView } from './fleet-policy.ts'
import { cancelTransfer, Link, Meter, startTransfer, type Transfer } from './network.ts'
import { Random } from './random.ts'

const INDEX = 'update'
/** the bits of Fleet.flags */
const HAVE = 1
const WAITING = 2
const QUEUED = 4
const PEND = 8

type Malice = 0 | 1 | 2 // honest, serves corrupt chunks, claims chunks it lacks

interface Pending {
  host: Host
  chunk: number
  /** bumped on every plan; stale replies compare it */
  gen: number
  waiting: boolean
  /** its wait's timer (an event handle; -1: none), cancelled when the wait ends before it fires */
  timer: number
  /** a wake-up (an announcement of the chunk, a change of owner) is scheduled */
  wakeQueued: boolean
  /** fetched ahead of the window because this host owns it */
  ahead: boolean
  /** when (ms) its origin fetch started (its FETCHING announcement) */
  originSince?: number
  transfer?: Transfer
  /** the host its current plan asked (-1: none; its origin fetch or wait) */
  asked: number
  /**
   * no longer the host's state of the chunk (it arrived, or the host left: leave() marks every
   * one of its states done, so a state not done belongs to a host that is up, in the epoch it was
   * started in)
   */
  done: boolean
}

interface QueuedRequest {
  from: Host
  server: Host
  /** why it failed (set when it does) */
  reason: 'missing' | 'busy' | 'error'
  chunk: number
  gen: number
  cancelled: boolean
  /** the requester's state of the chunk when it asked (current while not done and gen matches) */
  p: Pending
}

export interface Host {
  readonly index: number
  readonly key: string
  readonly segment: number
  readonly malice: Malice
  readonly up: Link
  readonly down: Link
  neighbors: Int32Array
  policy: FleetPolicy
  alive: boolean
  /** the host has started extracting (it is a worker on the index) */
  joined: boolean
  /** bumped when the host restarts; stale events compare it */
  epoch: number
  startTime: number
  /** when its prefetch lanes may start (after the join settle) */
  lanesAt: number
  doneTime: number
  /** chunks still missing */
  missing: number
  cursor: number
  /** next chunk to look at for owner prefetch */
  ownCursor: number
  /** in-order chunks in flight (the window), and owned chunks fetched ahead */
  inWindow: number
  inAhead: number
  /** window chunks waiting (for their owner, or a free holder) */
  nWait: number
  /** chunks peers announced that this host lacks, most recent last (see pump) */
  avail: number[]
  pumpQueued: boolean
  /** PRNG state for picking among recent announcements */
  rand: number
  /** chunks in hand (requested, waited for, or fetched from the origin): Fleet.pendingOf holds them */
  nPending: number
  /** requests accepted from each peer, served one after another on that peer's stream */
  streams: Map<number, { active: boolean, queue: QueuedRequest[] }>
  /** requests waiting for one of its upload slots, first come first served (policy.ts inboundQueue) */
  slotQueue: QueuedRequest[]
  lastProgressMs: number
  /** chunks fetched from the origin */
  originChunks: number
  /** bytes received: from the origin, from peers (verified), and rejected */
  fromOrigin: number
  fromPeers: number
  rejected: number
  /** bytes served to peers */
  served: number
  /** a chunk that did not match its ID reached this host's output */
  corrupted: boolean
  leaves: number
  /** this host's order within a block: position i → (i * A + B) mod block */
  shuffleA: number
  shuffleB: number
}

export interface FleetResult {
  config: FleetConfig
  hosts: Host[]
  chunkSizes: Int32Array
  uniqueBytes: number
  originBytes: number
  originMeter: Meter
  idealSeconds: number
  simulatedSeconds: number
  events: number
  bans: number
  invalidChunks: number
  falseClaims: number
  originFetches: { owner: number, alone: number, timeout: number }
}

/** The chunk's stand-in content: 8 bytes that only it has; its ID is their SHA-256. */
function standIn (seed: number, chunk: number): Uint8Array {
  const b = new Uint8Array(8)
  const v = new DataView(b.buffer)
  v.setUint32(0, seed >>> 0)
  v.setUint32(4, chunk >>> 0)
  return b
}

export class Fleet implements FleetView {
  readonly config: FleetConfig
  readonly sim = new Simulation()
  readonly rng: Random
  readonly hosts: Host[] = []
  readonly chunkSizes: Int32Array
  readonly chunkKeys: string[]
  private readonly chunkIds: ChunkId[]
  private readonly chunkByKey = new Map<string, number>()
  private readonly hostHashes: Uint32Array
  private readonly hostKeys: string[] = []
  /** a malicious host claims every chunk */
  private readonly claimsAll: Uint8Array
  private readonly aliveFlag: Uint8Array
  /** some segments cannot reach others */
  private partitioned = false
  readonly C: number
  readonly H: number
  /**
   * flags[c * H + h], host h's state of chunk c, one byte (the bits below) so that a look at a
   * neighbour's state of a chunk is one memory access, not four: HAVE, it holds the chunk
   * (verified); WAITING, it waits for the chunk to appear at a neighbour; QUEUED, the chunk is on
   * its list of announced candidates; PEND, it has the chunk in hand (pendingOf[c * H + h] is
   * its state)
   */
  private readonly flags: Uint8Array
  private readonly pendingOf: Array<Pending | undefined>
  /** per host, the hosts that know it from its announcements rather than a connection (FleetView.knows) */
  private readonly knownBy: Array<Set<number> | undefined> = []
  /** hosts holding each chunk */
  private readonly holderCount: Int32Array
  private readonly verifiedOnce: Uint8Array
  /** an origin fetch of the chunk started: its owner is no longer re-assigned to newcomers */
  private readonly claimed: Uint8Array
  private honestLeft = 0
  /** the owner per partition component and chunk (-1: none) */
  private ownerOf: Int32Array[] = []
  /** the origin fetchers of each component (policy.ts originFetchers), in rank order */
  private fetchers: number[][] = []
  private readonly ownerScratch: number[] = []
  private readonly fetcherCount: number
  private readonly indexHash = hashKey(INDEX)
  /** component of each segment (partitions) */
  private component: Int32Array
  readonly origin: Link
  readonly originMeter: Meter
  private readonly segWan: Link[] = []
  private readonly segCore: Link[] = []
  uniqueBytes = 0
  bans = 0
  invalidChunks = 0
  falseClaims = 0
  originFetches = { owner: 0, alone: 0, timeout: 0 }
  private readonly ideal: number
  /** requests for announced chunks (and waits in its own order) a host keeps in flight */
  private readonly window: number
  /** per segment, the hosts that have started on the index, in the order they started */
  private readonly workers: number[][]
  /** picks the workers a host dials when it has too few (onSettled) */
  private readonly meetRng: Random
  /** per segment, when (ms) a host last started (or came back) on the index */
  private readonly lastJoinMs: Float64Array

  constructor (config: FleetConfig) {
    this.config = config
    this.rng = new Random(config.seed)
    this.window = config.window > 0 ? config.window : chunkSizeDefaults(config.update.chunkAvg).peerPrefetch
    this.workers = Array.from({ length: config.segments }, () => [])
    this.meetRng = this.rng.fork(6)
    this.lastJoinMs = new Float64Array(config.segments).fill(Number.NEGATIVE_INFINITY)
    const sim = this.sim

    // the update: distinct chunks with casync-like sizes (clamped exponential around the average)
    const sizes: number[] = []
    const urng = this.rng.fork(1)
    let total = 0
    const { chunkMin, chunkAvg, chunkMax } = config.update
    while (total < config.update.bytes) {
      let s = Math.round(chunkMin + urng.exponential(chunkAvg - chunkMin))
      if (s > chunkMax) s = chunkMax
      s = Math.min(s, config.update.bytes - total)
      if (s <= 0) break
      sizes.push(s)
      total += s
    }
    this.C = sizes.length
    this.chunkSizes = Int32Array.from(sizes)
    this.chunkIds = sizes.map((_, c) => ChunkId.digest(standIn(config.seed, c)))
    this.chunkKeys = this.chunkIds.map(id => id.toString())
    this.chunkKeys.forEach((k, c) => this.chunkByKey.set(k, c))
    this.verifiedOnce = new Uint8Array(this.C)
    this.holderCount = new Int32Array(this.C)
    this.claimed = new Uint8Array(this.C)

    // hosts
    const H = this.H = config.hosts
    this.flags = new Uint8Array(H * this.C)
    this.pendingOf = new Array(H * this.C).fill(undefined)
    this.hostHashes = new Uint32Array(H)
    this.claimsAll = new Uint8Array(H)
    this.aliveFlag = new Uint8Array(H).fill(1)
    const nMalicious = Math.round(H * config.malicious)
    const maliciousSet = new Set(this.rng.fork(2).sample(H, nMalicious))
    let m = 0
    for (let i = 0; i < H; i++) {
      const key = `h${i}`
      const segment = i % config.segments
      let malice: Malice = 0
      if (maliciousSet.has(i)) {
        malice = config.maliciousMode === 'corrupt' ? 1 : config.maliciousMode === 'liar' ? 2 : (m++ % 2 === 0 ? 1 : 2)
      }
      const host: Host = {
        index: i,
        key,
        segment,
        malice,
        up: new Link(sim, `${key}.up`, config.hostUp),
        down: new Link(sim, `${key}.down`, config.hostDown),
        neighbors: new Int32Array(0),
        policy: undefined as unknown as FleetPolicy,
        alive: true,
        joined: false,
        epoch: 0,
        startTime: 0,
        lanesAt: 0,
        doneTime: -1,
        missing: malice === 0 ? this.C : 0,
        cursor: 0,
        ownCursor: 0,
        inWindow: 0,
        inAhead: 0,
        nWait: 0,
        avail: [],
        pumpQueued: false,
        rand: hashKey(`${key}/pick`),
        nPending: 0,
        streams: new Map(),
        slotQueue: [],
        lastProgressMs: -Infinity,
        originChunks: 0,
        fromOrigin: 0,
        fromPeers: 0,
        rejected: 0,
        served: 0,
        corrupted: false,
        leaves: 0,
        shuffleA: (hashKey(key) | 1) >>> 0,
        shuffleB: hashKey(`${key}/b`) >>> 0
      }
      host.policy = this.newPolicy(i)
      this.hosts.push(host)
      this.hostKeys.push(key)
      this.claimsAll[i] = malice !== 0 ? 1 : 0
      this.hostHashes[i] = hashKey(key)
    }
    for (const c of sizes) this.uniqueBytes += c
    this.ideal = idealSeconds(config, this.uniqueBytes)

    // links: the origin's egress, each segment's path to the origin and to the other segments
    this.origin = new Link(sim, 'origin', config.origin.bandwidth)
    this.originMeter = new Meter(config.bucket > 0 ? config.bucket : Math.max(this.ideal / 100, 1e-3))
    this.origin.meter = this.originMeter
    for (let s = 0; s < config.segments; s++) {
      this.segWan.push(new Link(sim, `seg${s}.wan`, config.segmentWan))
      this.segCore.push(new Link(sim, `seg${s}.core`, config.segmentLink))
    }
    this.component = new Int32Array(config.segments)
    this.fetcherCount = this.hosts[0]!.policy.originFetcherCount
    this.buildNeighbors()
    this.resetOwners()
  }

  private newPolicy (i: number): FleetPolicy {
    const policy = new FleetPolicy({ ...this.config.policy, self: `h${i}` }, this, i)
    // as source.ts does when it starts on an index
    policy.setChunkSize(this.config.update.chunkAvg)
    return policy
  }

  /** A random graph: each host dials degree/2 peers (a share of them in other segments). */
  private buildNeighbors (): void {
    const { degree, segments, crossSegment } = this.config
    const rng = this.rng.fork(3)
    const sets: Array<Set<number>> = this.hosts.map(() => new Set())
    const bySeg: number[][] = Array.from({ length: segments }, () => [])
    for (const h of this.hosts) bySeg[h.segment]!.push(h.index)
    const link = (a: number, b: number): void => { if (a !== b) { sets[a]!.add(b); sets[b]!.add(a) } }
    for (const h of this.hosts) {
      const local = bySeg[h.segment]!
      if (local.length - 1 <= degree && segments === 1) {
        for (const p of local) link(h.index, p)
        continue
      }
      const want = Math.ceil(degree / 2)
      for (let k = 0; k < want; k++) {
        const cross = segments > 1 && rng.next() < crossSegment
        const pool = cross ? bySeg[(h.segment + 1 + rng.int(segments - 1)) % segments]! : local
        if (pool.length > 1 || cross) link(h.index, pool[rng.int(pool.length)]!)
      }
    }
    for (const h of this.hosts) {
      h.neighbors = Int32Array.from([...sets[h.index]!].sort((a, b) => a - b))
      for (const p of h.neighbors) h.policy.addPeer(`h${p}`, 0)
    }
  }

  // ---- FleetView (what each host's policy reads) ---------------------------------------------

  hostIndex (key: string): number {
    // keys are `h${index}`: read the number back (this runs for every request)
    let i = 0
    for (let k = 1; k < key.length; k++) i = i * 10 + key.charCodeAt(k) - 48
    return i
  }
  hostKey (host: number): string { return this.hosts[host]!.key }

  /** The neighbours of `host` that hold `chunk` or claim to, and that it can reach (a scan of typed arrays: this runs for every plan). */
  neighborHolders (host: number, chunk: number, out: Int32Array): number {
    let n = 0
    const H = this.H
    const flags = this.flags
    const claimsAll = this.claimsAll
    const alive = this.aliveFlag
    const nbrs = this.hosts[host]!.neighbors
    const comp = this.partitioned ? this.component[this.hosts[host]!.segment]! : -1
    for (let k = 0; k < nbrs.length; k++) {
      const p = nbrs[k]!
      if (((flags[chunk * H + p]! & HAVE) === 0 && claimsAll[p] === 0) || alive[p] === 0) continue
      if (comp >= 0 && this.component[this.hosts[p]!.segment] !== comp) continue
      out[n++] = k
    }
    return n
  }
  chunkIndex (key: string): number { return this.chunkByKey.get(key)! }
  neighbors (host: number): Int32Array { return this.hosts[host]!.neighbors }
  hostHash (host: number): number { return this.hostHashes[host]! }
  holds (peer: number, chunk: number): boolean {
    return this.hosts[peer]!.malice !== 0 || (this.flags[chunk * this.H + peer]! & HAVE) !== 0
  }

  reachable (host: number, peer: number): boolean {
    // (every request asks: one byte when no segments are cut off)
    if (!this.partitioned) return this.aliveFlag[peer] === 1
    const p = this.hosts[peer]!
    return p.alive && this.component[this.hosts[host]!.segment] === this.component[p.segment]
  }

  owner (host: number, chunk: number): number {
    const comp = this.component[this.hosts[host]!.segment]!
    const o = this.ownerOf[comp]![chunk]!
    return o >= 0 && this.aliveFlag[o] === 1 ? o : -1
  }

  lastProgress (peer: number): number { return this.hosts[peer]!.lastProgressMs }

  knows (host: number, peer: number): void {
    let set = this.knownBy[peer]
    if (set == null) this.knownBy[peer] = set = new Set()
    set.add(host)
  }

  lastJoin (host: number): number {
    const comp = this.component[this.hosts[host]!.segment]
    let last = Number.NEGATIVE_INFINITY
    for (let s = 0; s < this.lastJoinMs.length; s++) if (this.component[s] === comp) last = Math.max(last, this.lastJoinMs[s]!)
    return last
  }

  fetchingSince (peer: number, chunk: number): number {
    const p = this.pendingOf[chunk * this.H + peer]
    return p?.originSince ?? -1
  }

  // ---- ownership (the split among the origin fetchers, kept incrementally) ---------------------

  /** whether a host can be one of its component's origin fetchers (works on the index, lacks some of it) */
  private fetcherCandidate (h: Host, comp: number): boolean {
    return h.joined && h.alive && h.malice === 0 && h.missing > 0 && this.component[h.segment] === comp
  }

  /** A component's origin fetchers from scratch: policy.ts originFetchers over its candidates. */
  private rebuildFetchers (comp: number): void {
    const candidates: string[] = []
    for (const h of this.hosts) if (this.fetcherCandidate(h, comp)) candidates.push(h.key)
    const set = originFetchers(candidates, INDEX, this.fetcherCount, k => this.hostHashes[this.hostIndex(k)]!)
    this.fetchers[comp] = [...set].map(k => this.hostIndex(k))
  }

  /** Every chunk's owner in a component: dealt by position among its fetchers that lack the chunk. */
  private assignOwners (comp: number): void {
    const owners = this.ownerOf[comp]!
    const fetchers = this.fetchers[comp]!
    for (let c = 0; c < this.C; c++) {
      // a chunk already in the swarm keeps its owner (its peers relay it), and an origin fetch
      // under way keeps its owner (in its own component)
      const o = owners[c]!
      const here = o >= 0 && this.hosts[o]!.alive && this.component[this.hosts[o]!.segment] === comp
      if (here && (this.holderCount[c]! > 0 || this.claimed[c] === 1)) continue
      // policy.ts positionOwner: dealt round robin by position among the fetchers lacking it,
      // in rank order (the chunk's index in the update is its position)
      const cands = this.ownerScratch
      cands.length = 0
      for (const f of fetchers) if ((this.flags[c * this.H + f]! & HAVE) === 0) cands.push(f)
      const best = positionOwner(cands, c) ?? -1
      owners[c] = best
      if (best === o) continue
      // the fetch of an owner that left this component died with it (claims are per chunk; an
      // owner across a partition keeps fetching for its own side)
      if (o >= 0 && this.component[this.hosts[o]!.segment] === comp) this.claimed[c] = 0
      // the new owner re-plans a wait for the chunk at once (the real host wakes its waits on
      // every membership change)
      const np = best >= 0 ? this.pendingOf[c * this.H + best] : undefined
      if (np != null && np.waiting) this.wake(np, 0)
    }
    // the fetchers look over the index again for what they own now
    for (const f of fetchers) {
      const h = this.hosts[f]!
      h.ownCursor = 0
      if (!h.pumpQueued) { h.pumpQueued = true; this.sim.after(0, this.onPump, { h, epoch: h.epoch }) }
    }
  }

  /** Recomputes every component's fetchers and owners (start, partition, heal). */
  private resetOwners (): void {
    const comps = Math.max(...this.component) + 1
    const before = this.ownerOf
    this.ownerOf = Array.from({ length: comps }, (_, i) => before[i] ?? new Int32Array(this.C).fill(-1))
    // owners that are fetching keep their chunks in the component they are now in
    for (const old of before) {
      for (let c = 0; c < this.C; c++) {
        const o = old[c]!
        if (o < 0 || this.claimed[c] === 0 || this.holderCount[c]! > 0) continue
        const comp = this.component[this.hosts[o]!.segment]!
        this.ownerOf[comp]![c] = o
      }
    }
    this.fetchers = Array.from({ length: comps }, () => [])
    for (let comp = 0; comp < comps; comp++) {
      this.rebuildFetchers(comp)
      this.assignOwners(comp)
    }
  }

  /** A host joined (or came back): it becomes a fetcher if it ranks among the first. */
  private offerOwnership (h: Host): void {
    const comp = this.component[h.segment]!
    if (!this.fetcherCandidate(h, comp)) return
    const before = this.fetchers[comp]!
    // it ranks below a full set of fetchers: nothing changes (saves a scan of the fleet per join)
    const rank = (x: number): number => rendezvousWeight(this.hostHashes[x]!, this.indexHash)
    if (before.length >= this.fetcherCount && rank(h.index) < rank(before[before.length - 1]!)) return
    this.rebuildFetchers(comp)
    if (this.fetchers[comp]!.includes(h.index) || before.length !== this.fetchers[comp]!.length) this.assignOwners(comp)
  }

  /**
   * A fetcher left or finished: the next in rank takes its place, and its chunks are re-split.
   * A host that left the fetchers earlier may still own the chunks it had started fetching: they
   * are re-split too.
   */
  private withdrawOwnership (h: Host): void {
    const comp = this.component[h.segment]!
    const fetcher = this.fetchers[comp]!.includes(h.index)
    if (!fetcher && !this.ownerOf[comp]!.includes(h.index)) return
    if (fetcher) this.rebuildFetchers(comp)
    this.assignOwners(comp)
  }

  // ---- running ------------------------------------------------------------------------------

  private nowMs (): number { return this.sim.now * 1000 }

  run (onProgress?: (fleet: Fleet) => void): FleetResult {
    const { config, sim } = this
    // starts
    const srng = this.rng.fork(4)
    const honest = this.hosts.filter(h => h.malice === 0)
    this.honestLeft = honest.length
    for (const h of this.hosts) {
      if (h.malice !== 0) continue
      let t = 0
      if (config.start.kind === 'all') t = srng.next() * config.start.jitter
      else t = (h.index % config.start.waves) * config.start.gap
      sim.at(t, (x: Host) => { this.startHost(x) }, h)
    }
    // churn: each chosen host leaves once, at a random time during the rollout, for a while
    const crng = this.rng.fork(5)
    const churners = crng.sample(honest.length, Math.round(honest.length * config.churn)).map(i => honest[i]!)
    for (const h of churners) {
      const leaveAt = crng.range(0.05, 0.8) * this.ideal + (config.start.kind === 'waves' ? (h.index % config.start.waves) * config.start.gap : 0)
      const downFor = crng.range(0.2, 1) * this.ideal
      sim.at(leaveAt, (x: Host) => { this.leave(x) }, h)
      sim.at(leaveAt + downFor, (x: Host) => { this.rejoin(x) }, h)
    }
    for (const e of config.events) sim.at(e.at, () => { this.apply(e) })
    sim.run(config.maxTime, onProgress != null ? () => { onProgress(this) } : undefined, 1 << 18)

    return {
      config,
      hosts: this.hosts,
      chunkSizes: this.chunkSizes,
      uniqueBytes: this.uniqueBytes,
      originBytes: this.origin.carried,
      originMeter: this.originMeter,
      idealSeconds: this.ideal,
      simulatedSeconds: sim.now,
      events: sim.events,
      bans: this.bans,
      invalidChunks: this.invalidChunks,
      falseClaims: this.falseClaims,
      originFetches: this.originFetches
    }
  }

  private apply (e: FleetConfig['events'][number]): void {
    switch (e.kind) {
      case 'origin-down': this.origin.fail(); break
      case 'origin-up': this.origin.restore(); break
      case 'origin-bandwidth': this.origin.setCapacity(e.bandwidth); break
      case 'partition':
      case 'heal': {
        const comp = new Int32Array(this.config.segments)
        if (e.kind === 'partition') e.groups.forEach((g, i) => { for (const s of g) comp[s] = i })
        this.component = comp
        this.partitioned = e.kind === 'partition'
        // cut (or restore) the links between segments; transfers across them fail
        for (const l of this.segCore) { if (e.kind === 'partition') l.fail(); else l.restore() }
        // the connections across the cut close (what a peer said it holds or fetches goes with
        // them), and come back with the link, as on the real host
        const now = this.nowMs()
        for (const h of this.hosts) {
          if (!h.alive || h.malice !== 0) continue
          if (e.kind === 'partition') {
            for (const p of h.policy.peers()) if (!this.reachable(h.index, this.hostIndex(p))) h.policy.removePeer(p, now)
          } else {
            for (const n of h.neighbors) if (this.hosts[n]!.alive) h.policy.addPeer(this.hosts[n]!.key, now)
          }
        }
        this.resetOwners()
        // every host re-plans what it waits for (owners changed)
        for (const h of this.hosts) {
          if (!h.alive || h.malice !== 0) continue
          for (let c = 0; c < this.C; c++) {
            const p = this.pendingOf[c * this.H + h.index]
            if (p != null && p.waiting) this.replan(h, p)
          }
        }
        break
      }
    }
  }

  private startHost (h: Host): void {
    h.joined = true
    h.startTime = this.sim.now
    // the lanes start when the join settles (onSettled)
    h.lanesAt = Number.POSITIVE_INFINITY
    h.lastProgressMs = this.nowMs()
    this.lastJoinMs[h.segment] = this.nowMs()
    this.workers[h.segment]!.push(h.index)
    // its WANT (what it lacks is in the shared state: have[])
    h.policy.noteWants(INDEX, h.key, [], this.nowMs())
    this.offerOwnership(h)
    this.seedAvailable(h)
    this.pump(h)
    this.sim.after(Math.min(this.config.settleQuiet, this.config.settle), this.onSettled, { h, epoch: h.epoch })
  }

  /**
   * The join settles once no host has joined for `settleQuiet` (at most `settle` after the start:
   * SwarmPolicy.prefetchStartAt); then the host has heard who works on the index, and its
   * prefetch lanes start. A real host is connected to every host on its LAN it discovered (up to
   * 512), so it has every other worker as a peer; here, where each host has `degree` connections
   * to hosts picked regardless of when they start, a host that finds fewer than degree/2 of them
   * working on the index (an early wave of a staggered rollout: a tenth of its connections) dials
   * workers it is not connected to until it has degree/2. When every host starts within the
   * settle (the default), nothing is dialled.
   */
  private readonly onSettled = (x: { h: Host, epoch: number }): void => {
    const h = x.h
    if (h.epoch !== x.epoch || !h.alive) return
    const at = h.policy.prefetchStartAt(INDEX, h.startTime * 1000, this.config.settleQuiet * 1000, this.config.settle * 1000) / 1000
    // hosts are still arriving: look again when they may have stopped
    if (at > this.sim.now + 1e-9) { this.sim.at(at, this.onSettled, x); return }
    h.lanesAt = this.sim.now
    const want = Math.ceil(this.config.degree / 2)
    let working = 0
    for (const n of h.neighbors) if (this.hosts[n]!.joined && this.hosts[n]!.alive) working++
    const pool = this.workers[h.segment]!
    const now = this.nowMs()
    let dialled = 0
    for (let tries = 0; working < want && tries < 4 * want && pool.length > 1; tries++) {
      const b = pool[this.meetRng.int(pool.length)]!
      if (b === h.index || !this.hosts[b]!.alive || !this.reachable(h.index, b)) continue
      if (!this.connect(h.index, b, now)) continue
      working++
      dialled++
    }
    // what the new connections hold
    if (dialled > 0) this.seedAvailable(h)
    this.pump(h)
  }

  /** Connects hosts a and b unless they are: both neighbour lists (kept sorted) and policies learn of it. */
  private connect (a: number, b: number, now: number): boolean {
    if (!this.insertNeighbor(a, b)) return false
    this.insertNeighbor(b, a)
    this.hosts[a]!.policy.addPeer(this.hosts[b]!.key, now)
    this.hosts[b]!.policy.addPeer(this.hosts[a]!.key, now)
    return true
  }

  private insertNeighbor (a: number, b: number): boolean {
    const h = this.hosts[a]!
    const nbrs = h.neighbors
    let lo = 0
    let hi = nbrs.length
    while (lo < hi) {
      const mid = (lo + hi) >> 1
      if (nbrs[mid]! < b) lo = mid + 1
      else hi = mid
    }
    if (lo < nbrs.length && nbrs[lo] === b) return false
    const out = new Int32Array(nbrs.length + 1)
    out.set(nbrs.subarray(0, lo))
    out[lo] = b
    out.set(nbrs.subarray(lo), lo + 1)
    h.neighbors = out
    h.policy.neighborInserted(lo)
    return true
  }

  private leave (h: Host): void {
    if (!h.alive) return
    h.alive = false
    this.aliveFlag[h.index] = 0
    h.leaves++
    h.epoch++
    // its transfers die with its links (below); their servers see the failure and move on
    for (let c = 0; c < this.C; c++) {
      const i = c * this.H + h.index
      this.flags[i]! &= ~(WAITING | PEND)
      const p = this.pendingOf[i]
      if (p != null) { p.done = true; this.pendingOf[i] = undefined }
    }
    h.nPending = 0
    // requests waiting here: their connections close, the requesters see an error
    const waiting: QueuedRequest[] = []
    for (const st of h.streams.values()) waiting.push(...st.queue)
    h.streams.clear()
    waiting.push(...h.slotQueue)
    h.slotQueue = []
    for (const req of waiting) if (!req.cancelled) { req.cancelled = true; this.fail(req.from, h, req, 'error', this.config.latency) }
    h.up.fail()
    h.down.fail()
    const now = this.nowMs()
    for (const n of h.neighbors) this.hosts[n]!.policy.removePeer(h.key, now)
    // and the hosts that awaited it as an owner without a connection (what it said it was
    // fetching goes with it: they stop waiting for it)
    for (const w of this.knownBy[h.index] ?? []) this.hosts[w]!.policy.removePeer(h.key, now)
    this.knownBy[h.index] = undefined
    this.withdrawOwnership(h)
  }

  private rejoin (h: Host): void {
    if (h.alive) return
    h.alive = true
    this.aliveFlag[h.index] = 1
    h.up.restore()
    h.down.restore()
    // a restarted process: a fresh policy; the cache (what it has) survived
    h.policy = this.newPolicy(h.index)
    const now = this.nowMs()
    for (const n of h.neighbors) {
      const peer = this.hosts[n]!
      h.policy.addPeer(peer.key, now)
      peer.policy.addPeer(h.key, now)
    }
    h.cursor = 0
    h.ownCursor = 0
    h.inWindow = 0
    h.inAhead = 0
    h.nWait = 0
    h.pumpQueued = false
    for (const c of h.avail) this.flags[c * this.H + h.index]! &= ~QUEUED
    h.avail = []
    if (h.missing === 0) return
    h.lastProgressMs = now
    this.lastJoinMs[h.segment] = now
    h.policy.noteWants(INDEX, h.key, [], now)
    this.offerOwnership(h)
    this.seedAvailable(h)
    h.lanesAt = this.sim.now // a restart: its peers know of it already
    this.pump(h)
  }

  /**
   * Keeps the host's request slots busy (node/swarm/source.ts does the same):
   *   1. up to `window` requests for chunks its peers announced, the most recently announced
   *      first (those are the rarest: they just arrived in the neighbourhood);
   *   2. up to `window` chunks in the host's own order that no peer has announced yet wait for
   *      their owner (so a stalled owner is noticed and its chunk fetched from the origin);
   *   3. up to `ownerPrefetch` origin fetches of the chunks it owns, in index order.
   */
  private pump (h: Host): void {
    h.pumpQueued = false
    const hi = h.index
    const H = this.H
    const C = this.C
    const W = this.window
    const pick = this.config.pickAmong
    while (h.inWindow - h.nWait < W && h.inWindow < 2 * W && h.avail.length > 0) {
      // one of the most recent, at random (policy.ts pickRecent)
      const n = h.avail.length
      h.rand = nextRandom(h.rand)
      const k = pickRecent(n, pick, h.rand)
      const c = h.avail[k]!
      h.avail[k] = h.avail[n - 1]!
      h.avail.pop()
      this.flags[c * H + hi]! &= ~QUEUED
      if ((this.flags[c * H + hi]! & (HAVE | PEND)) !== 0) continue
      this.startPending(h, c, false)
    }
    const owners = this.ownerOf[this.component[h.segment]!]!
    const prefetch = this.config.ownerPrefetch
    const block = this.config.shuffleBlock
    const mask = block - 1
    const end = (C + mask) & ~mask
    while (h.nWait < W && h.inWindow < 2 * W && h.cursor < end) {
      const i = h.cursor++
      // within each block of `shuffleBlock` chunks, a per-host order (an affine permutation)
      const start = i & ~mask
      const c = block > 1 ? start + ((Math.imul(i & mask, h.shuffleA) + h.shuffleB) & mask) : i
      if (c >= C) continue
      if ((this.flags[c * H + hi]! & (HAVE | PEND)) !== 0) continue
      // an owned chunk is left to the prefetch lanes, which take them in index order
      if (prefetch > 0 && owners[c] === h.index) continue
      this.startPending(h, c, false)
    }
    // the prefetch lanes start once the host has heard who else works on the index (settle)
    if (prefetch <= 0 || this.sim.now < h.lanesAt) return
    // lanes open one at a time: one more with each chunk fetched from the origin (source.ts
    // does the same), so the origin's first chunks are not shared out among every fetcher's lanes
    // at once; a small fleet's few fetchers get more of them (policy.ts ownerLanes), and those
    // extra lanes open at the start
    const maxLanes = ownerLanes(prefetch, this.fetchers[this.component[h.segment]!]!.length, this.config.update.chunkAvg)
    const lanes = Math.min(maxLanes, maxLanes - prefetch + 1 + h.originChunks)
    while (h.inAhead < lanes && h.ownCursor < C) {
      const c = h.ownCursor++
      if (owners[c] !== h.index || (this.flags[c * H + hi]! & (HAVE | PEND)) !== 0) continue
      // as source.ts does: a chunk a peer holds already is not fetched ahead from the origin
      if (this.holderCount[c]! > 0 && h.policy.holdersOf(this.chunkKeys[c]!, this.nowMs()).length > 0) continue
      this.startPending(h, c, true)
    }
    // the window passed over owned chunks the lanes have not reached: nothing to do here, the lanes get there
  }

  private startPending (h: Host, c: number, ahead: boolean): void {
    const p: Pending = { host: h, chunk: c, gen: 0, waiting: false, timer: -1, wakeQueued: false, ahead, asked: -1, done: false }
    this.pendingOf[c * this.H + h.index] = p
    h.nPending++
    this.flags[c * this.H + h.index]! |= PEND
    if (ahead) h.inAhead++
    else h.inWindow++
    this.replan(h, p)
  }

  /** A peer of `h` announced chunk `c`: queue it as a candidate, and fill free slots. */
  private announce (h: Host, c: number): void {
    const idx = c * this.H + h.index
    if ((this.flags[idx]! & (HAVE | QUEUED | PEND)) !== 0) return
    this.flags[idx]! |= QUEUED
    h.avail.push(c)
    if (!h.pumpQueued && h.inWindow - h.nWait < this.window) {
      h.pumpQueued = true
      this.sim.after(this.config.latency, this.onPump, { h, epoch: h.epoch })
    }
  }

  private readonly onPump = (x: { h: Host, epoch: number }): void => {
    if (x.h.epoch !== x.epoch || !x.h.alive) return
    this.pump(x.h)
  }

  /** A host that (re)joins learns what its peers hold already (their answers to its WANT). */
  private seedAvailable (h: Host): void {
    const hi = h.index
    const H = this.H
    for (let c = this.C - 1; c >= 0; c--) {
      if ((this.flags[c * H + hi]! & (HAVE | QUEUED)) !== 0 || this.holderCount[c] === 0) continue
      for (const n of h.neighbors) {
        if ((this.flags[c * this.H + n]! & HAVE) !== 0 && this.hosts[n]!.alive) { this.flags[c * H + hi]! |= QUEUED; h.avail.push(c); break }
      }
    }
  }

  private replan (h: Host, p: Pending): void {
    p.gen++
    p.asked = -1
    p.originSince = undefined
    if (p.waiting) {
      p.waiting = false
      this.flags[p.chunk * this.H + h.index]! &= ~WAITING
      if (!p.ahead) h.nWait--
      if (p.timer >= 0) { this.sim.cancel(p.timer); p.timer = -1 }
    }
    const now = this.nowMs()
    const key = this.chunkKeys[p.chunk]!
    const plan: Plan = h.policy.plan(INDEX, key, now)
    switch (plan.action) {
      case 'peer': {
        const peer = this.hosts[this.hostIndex(plan.peer)]!
        h.policy.requestStarted(plan.peer, key, now)
        const req: QueuedRequest = { from: h, server: peer, reason: 'error', chunk: p.chunk, gen: p.gen, cancelled: false, p }
        p.asked = peer.index
        // the server decides one round trip after the request leaves, and its answer (or the
        // chunk's first byte) is at the requester then: one event per request, not three (see onRequest)
        this.sim.after(2 * this.config.latency, this.onRequest, req)
        break
      }
      case 'wait': {
        p.waiting = true
        this.flags[p.chunk * this.H + h.index]! |= WAITING
        if (!p.ahead) h.nWait++
        const at = Math.max(plan.until / 1000, this.sim.now + 1e-6)
        p.timer = this.sim.at(at, this.onTimer, p)
        break
      }
      case 'origin':
        this.originFetches[plan.reason]++
        this.claimed[p.chunk] = 1
        // its FETCHING announcement: progress, for the hosts waiting for it
        h.lastProgressMs = now
        p.originSince = now
        this.fetchOrigin(h, p, 0)
        break
    }
  }

  /** A waiting chunk's timer: its wait is over. */
  private readonly onTimer = (p: Pending): void => {
    p.timer = -1
    if (p.waiting && !p.done) this.replan(p.host, p)
  }

  /** Something a waiting chunk's plan depends on changed: plan it again `delay` s from now. */
  private wake (p: Pending, delay: number): void {
    if (p.wakeQueued) return
    p.wakeQueued = true
    this.sim.after(delay, this.onWake, p)
  }

  private readonly onWake = (p: Pending): void => {
    p.wakeQueued = false
    if (p.waiting && !p.done) this.replan(p.host, p)
  }

  /** `p` if it is still its host's state of the chunk (not done) and has not been planned again since `gen`. */
  private isCurrent (p: Pending, gen: number): Pending | undefined {
    return !p.done && p.gen === gen ? p : undefined
  }

  // ---- peer requests ------------------------------------------------------------------------

  /**
   * A request, one round trip after it was sent. The wire takes `latency` each way: the server
   * answers at +latency and the requester hears at +2 latency. Here the server's answer is
   * worked out at +2 latency and heard at once, and an accepted chunk's transfer occupies both
   * links from then on and is done when they have carried it (no further latency): the same
   * times for the requester, with the server's state read one latency later. That saves an
   * event for every answer (BUSY, MISSING) and every delivered chunk.
   */
  private readonly onRequest = (req: QueuedRequest): void => {
    const server = req.server
    const h = req.from
    if (this.isCurrent(req.p, req.gen) == null) return
    if (!this.reachable(h.index, server.index)) { this.fail(h, server, req, 'error', this.config.latency); return }
    if (server.malice === 2 || (server.malice === 0 && (this.flags[req.chunk * this.H + server.index]! & HAVE) === 0)) {
      this.fail(h, server, req, 'missing', 0)
      return
    }
    // every upload slot taken: it waits for the next free one if the queue has room, else BUSY
    // and the requester asks elsewhere (node/exchange does the same)
    if (server.malice === 0 && !server.policy.acceptInbound(h.key, this.nowMs())) {
      if (server.policy.queueInbound(h.key, this.nowMs())) server.slotQueue.push(req)
      else this.fail(h, server, req, 'busy', 0)
      return
    }
    this.serve(server, req)
  }

  /** A slot of `server` freed: the first queued request that is still wanted takes it. */
  private nextInQueue (server: Host): void {
    const q = server.slotQueue
    while (q.length > 0) {
      const req = q.shift()!
      server.policy.unqueueInbound()
      // given up by its requester meanwhile (it left, or has the chunk): its stream closed
      if (this.isCurrent(req.p, req.gen) == null) continue
      if (server.policy.acceptInbound(req.from.key, this.nowMs())) { this.serve(server, req); return }
      // not served after all (at its per-peer limit): BUSY, and the slot passes on
      this.fail(req.from, server, req, 'busy', 0)
    }
  }

  /** An accepted request joins the requester's stream; a stream sends one chunk at a time. */
  private serve (server: Host, req: QueuedRequest): void {
    let st = server.streams.get(req.from.index)
    if (st == null) server.streams.set(req.from.index, st = { active: false, queue: [] })
    st.queue.push(req)
    if (!st.active) this.nextOnStream(server, req.from.index)
  }

  /** The upload on `server`'s stream to `to` ended (served, or given up): its slot frees, and the stream moves on. */
  private uploadDone (server: Host, to: Host): void {
    if (server.malice === 0) server.policy.inboundDone(to.key)
    if (server.alive) {
      this.nextOnStream(server, to.index)
      this.nextInQueue(server)
    }
  }

  private nextOnStream (server: Host, peer: number): void {
    const st = server.streams.get(peer)
    if (st == null) return
    st.active = false
    let freed = 0
    while (st.queue.length > 0) {
      const req = st.queue.shift()!
      const h = req.from
      const p = this.isCurrent(req.p, req.gen)
      if (p == null) {
        if (server.malice === 0) { server.policy.inboundDone(h.key); freed++ }
        continue
      }
      st.active = true
      p.transfer = startTransfer(this.sim, this.peerPath(server, h), this.chunkSizes[req.chunk]!, 0, this.onServed, req)
      break
    }
    // the slots of requests given up go to the requests waiting for one (once this stream is settled)
    for (; freed > 0; freed--) this.nextInQueue(server)
  }

  private readonly onServed = (ok: boolean, t: Transfer): void => {
    const req = t.tag as QueuedRequest
    const server = req.server
    this.uploadDone(server, req.from)
    const h = req.from
    const p = this.isCurrent(req.p, req.gen)
    if (p == null) return
    p.transfer = undefined
    if (!ok) { this.fail(h, server, req, 'error', 0); return }
    const bytes = t.bytes
    server.served += bytes
    const now = this.nowMs()
    if (!this.verify(req.chunk, server.malice === 1, server.index)) {
      h.rejected += bytes
      this.invalidChunks++
      const wasBanned = h.policy.isBanned(server.key, now)
      h.policy.requestFailed(server.key, this.chunkKeys[req.chunk]!, 'invalid', now)
      this.replan(h, p)
      if (!wasBanned && h.policy.isBanned(server.key, now)) {
        this.bans++
        this.dropRequestsTo(h, server)
      }
      return
    }
    if (server.malice === 1) h.corrupted = true // only reachable with verification off
    h.fromPeers += bytes
    h.policy.requestSucceeded(server.key, this.chunkKeys[req.chunk]!, bytes, now)
    this.got(h, p)
  }

  /**
   * `h` banned `server`: what it still awaits from it is given up at once and planned again
   * (node/exchange aborts its streams to a peer it bans), rather than waiting for more bad copies.
   */
  private dropRequestsTo (h: Host, server: Host): void {
    const H = this.H
    const now = this.nowMs()
    for (let c = 0; c < this.C; c++) {
      const p = this.pendingOf[c * H + h.index]
      if (p == null || p.asked !== server.index) continue
      const t = p.transfer
      if (t != null) {
        // its transfer stops, and the server's stream to h moves on (to stale requests, dropped)
        cancelTransfer(this.sim, t)
        p.transfer = undefined
        this.uploadDone(server, h)
      }
      // as node/exchange reports each request it aborts (the peer's requests in flight go down)
      h.policy.requestFailed(server.key, this.chunkKeys[c]!, 'error', now)
      this.replan(h, p)
    }
  }

  /** The request failed at `server` (its answer reaches the requester `delay` s later). */
  private fail (h: Host, server: Host, req: QueuedRequest, reason: 'missing' | 'busy' | 'error', delay: number): void {
    req.server = server
    req.reason = reason
    if (delay > 0) this.sim.after(delay, this.onFailed, req)
    else this.onFailed(req)
  }

  private readonly onFailed = (req: QueuedRequest): void => {
    const h = req.from
    const server = req.server
    const reason = req.reason
    const p = this.isCurrent(req.p, req.gen)
    if (p == null) return
    p.transfer = undefined
    const now = this.nowMs()
    const key = this.chunkKeys[req.chunk]!
    if (reason === 'missing' && server.malice === 2) this.falseClaims++
    const wasBanned = h.policy.isBanned(server.key, now)
    h.policy.requestFailed(server.key, key, reason, now)
    if (!wasBanned && h.policy.isBanned(server.key, now)) this.bans++
    this.replan(h, p)
  }

  private peerPath (from: Host, to: Host): Link[] {
    if (from.segment === to.segment) return [from.up, to.down]
    return [from.up, this.segCore[from.segment]!, this.segCore[to.segment]!, to.down]
  }

  // ---- the origin ---------------------------------------------------------------------------

  private fetchOrigin (h: Host, p: Pending, attempt: number): void {
    const gen = p.gen
    const { latency } = this.config.origin
    this.sim.after(latency, () => {
      if (this.isCurrent(p, gen) == null) return
      if (!this.origin.up) {
        // connection refused after a round trip; retry with backoff (0.5 s doubling to 8 s)
        const backoff = Math.min(8, 0.5 * 2 ** attempt)
        this.sim.after(latency + backoff, () => {
          if (this.isCurrent(p, gen) == null) return
          // a peer may have it by now: ask the policy again before retrying the origin
          p.gen++
          const plan = h.policy.plan(INDEX, this.chunkKeys[p.chunk]!, this.nowMs())
          if (plan.action === 'origin') this.fetchOrigin(h, p, attempt + 1)
          else { p.gen--; this.replan(h, p) }
        })
        return
      }
      p.transfer = startTransfer(this.sim, [this.origin, this.segWan[h.segment]!, h.down], this.chunkSizes[p.chunk]!, latency, (ok, t) => {
        const cur = this.isCurrent(p, gen)
        if (cur == null) return
        cur.transfer = undefined
        if (!ok) { this.fetchOrigin(h, cur, attempt + 1); return }
        this.verify(p.chunk, false, -1)
        h.fromOrigin += t.bytes
        h.originChunks++
        this.got(h, cur)
      })
    })
  }

  // ---- verification and completion ------------------------------------------------------------

  /**
   * The real check: protocol/chunk-id.ts verifyChunk over the chunk's stand-in payload (or a
   * forged one from a corrupting peer). An honest payload's digest cannot change, so it is
   * checked once per chunk; every forged payload is checked.
   */
  private verify (chunk: number, forged: boolean, server: number): boolean {
    if (!this.config.verify) return true
    const id = this.chunkIds[chunk]!
    if (!forged) {
      if (this.verifiedOnce[chunk] === 0) { verifyChunk(id, standIn(this.config.seed, chunk)); this.verifiedOnce[chunk] = 1 }
      return true
    }
    const payload = standIn(this.config.seed, chunk)
    payload[0]! ^= 0xff
    payload[1]! ^= server & 0xff
    try {
      verifyChunk(id, payload)
      return true
    } catch (err: any) {
      if (err?.code === ChunkInvalidError.code) return false
      throw err
    }
  }

  private got (h: Host, p: Pending): void {
    const c = p.chunk
    const idx = c * this.H + h.index
    this.flags[idx]! |= HAVE
    this.holderCount[c]!++
    this.pendingOf[idx] = undefined
    p.done = true
    h.nPending--
    this.flags[idx]! &= ~PEND
    if (p.ahead) h.inAhead--
    else h.inWindow--
    h.missing--
    const now = this.nowMs()
    h.lastProgressMs = now
    h.policy.noteHave(INDEX, h.key, this.chunkKeys[c]!, now)
    // the announcement: neighbours waiting for this chunk plan again
    const H = this.H
    const flags = this.flags
    const nbrs = h.neighbors
    for (let k = 0; k < nbrs.length; k++) {
      const n = nbrs[k]!
      const nidx = c * H + n
      const f = flags[nidx]!
      if ((f & HAVE) !== 0) continue
      if ((f & WAITING) !== 0) {
        const nh = this.hosts[n]!
        const np = this.pendingOf[nidx]
        if (np != null && np.waiting && nh.alive) this.wake(np, this.config.latency)
      } else if ((f & (QUEUED | PEND)) === 0) {
        const nh = this.hosts[n]!
        if (nh.joined && nh.alive && nh.missing > 0) this.announce(nh, c)
      }
    }
    if (h.missing === 0) {
      h.doneTime = this.sim.now
      this.withdrawOwnership(h)
      h.policy.leaveIndex(INDEX, h.key)
      if (--this.honestLeft === 0) this.sim.stop()
      return
    }
    this.pump(h)
  }
}
