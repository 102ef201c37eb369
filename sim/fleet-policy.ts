// The simulator's host policy: node/swarm/policy.ts's SwarmPolicy, with its *knowledge* read from
// the fleet's shared, compact state instead of per-host sets. SwarmPolicy keeps, per host, a set
// of every peer's wants and haves (O(peers × chunks) per host); 10,000 simulated hosts cannot
// each hold that. Here every host's view comes from one shared structure (a bit per host and
// chunk), which is what the announcements of the real protocol would have told it:
//
//   - holdersOf/has: the host's connected neighbours that hold the chunk (or, for a lying peer,
//     claim to), as their "have" announcements say;
//   - ownerOf: the owner dealt by position (the module's own originFetchers/positionOwner) among
//     the reachable origin fetchers that lack the chunk, the same answer on every host;
//     the owner is awaited whether or not it is a connection (its announcements reach every host
//     on the index, as they do on a LAN);
//   - noteWants/noteHaves/noteLacks of peers: already in the shared state.
//
// It plugs into SwarmPolicy's protected hooks for knowledge, not into its decisions:
// holderStates (what plan() chooses among), served/claimed (a served chunk's holder, a peer's
// claim) and state (a connection's state, found by its place among the host's neighbours).
// Every *decision* is inherited unchanged: plan() (least-loaded holder, wait for the owner while
// it makes progress, origin on timeout), requestStarted/Succeeded/Failed (strikes, the ban on a
// chunk that fails verification), acceptInbound/inboundDone, ban/isBanned.
import { SwarmPolicy, type ChunkKey, type IndexKey, type PeerState, type PeerKey, type SwarmPolicyInit } from '../node/swarm/policy.ts'

/** What the fleet tells each host's policy (implemented by Fleet). */
export interface FleetView {
  /** host index by key */
  hostIndex: (key: PeerKey) => number
  hostKey: (host: number) => PeerKey
  /** chunk index by key */
  chunkIndex: (key: ChunkKey) => number
  /** neighbours (connections) of a host */
  neighbors: (host: number) => Int32Array
  /** precomputed hashKey(hostKey) */
  hostHash: (host: number) => number
  /** the neighbours of `host` it can reach that hold `chunk` or claim to: their positions in neighbors(host) go into `out`, and their count is returned */
  neighborHolders: (host: number, chunk: number, out: Int32Array) => number
  /** whether `peer` holds `chunk` or claims to (a lying peer claims everything) */
  holds: (peer: number, chunk: number) => boolean
  /** whether `peer` is up and reachable from `host` */
  reachable: (host: number, peer: number) => boolean
  /** the owner of `chunk` (policy.ts positionOwner) among the hosts reachable from `host` (-1: none) */
  owner: (host: number, chunk: number) => number
  /** when (ms) `peer` started the origin fetch of `chunk` it has in flight (-1: none) */
  fetchingSince: (peer: number, chunk: number) => number
  /** last time (ms) `peer` showed progress (joined, started an origin fetch, or received a verified chunk) */
  lastProgress: (peer: number) => number
  /** when (ms) a host last joined the index among those `host` can reach (-Infinity: none) */
  lastJoin: (host: number) => number
  /**
   * `host` knows `peer` from its announcements, not a connection (an owner awaited across the
   * LAN): when `peer` leaves, `host` hears of it, as every host on a real LAN sees its
   * connection to the leaver close
   */
  knows: (host: number, peer: number) => void
}

export class FleetPolicy extends SwarmPolicy {
  private readonly view: FleetView
  private readonly host: number

  /** bans this host has handed out (a shortcut: with none, nobody is banned) */
  private banned = 0
  /** the state of each connection (by position in the view's neighbors), once looked up */
  private readonly neighborStates: Array<PeerState | undefined> = []
  private scratch = new Int32Array(0)

  constructor (init: SwarmPolicyInit, view: FleetView, host: number) {
    super(init)
    this.view = view
    this.host = host
  }

  /** A connection was added at position `at` among the host's neighbours (the later ones move up). */
  neighborInserted (at: number): void {
    if (at < this.neighborStates.length) this.neighborStates.splice(at, 0, undefined)
  }

  override ban (peer: PeerKey, now: number, reason: string): void {
    this.banned++
    super.ban(peer, now, reason)
  }

  /** That a peer holds a chunk it served is in the shared state already (no per-host sets). */
  protected override served (_peer: PeerKey, _chunk: ChunkKey, _now: number): void {}

  /** A peer's claims are in the shared state (a lying peer claims everything). */
  protected override claimed (peer: PeerKey, chunk: ChunkKey): boolean {
    const v = this.view
    return v.holds(v.hostIndex(peer), v.chunkIndex(chunk))
  }

  override isBanned (peer: PeerKey, now: number): boolean {
    return this.banned > 0 && super.isBanned(peer, now)
  }

  // Peers' wants and haves live in the shared state, and so do self's (ownerOf reads the shared
  // split); the base class sees self's haves only to clear its own waits.
  override noteWants (_index: IndexKey, host: PeerKey, _chunks: Iterable<ChunkKey>, now: number): void {
    if (host !== this.self) super.addPeer(host, now)
  }

  override noteHaves (index: IndexKey | undefined, host: PeerKey, chunks: Iterable<ChunkKey>, now: number): void {
    if (host === this.self) super.noteHaves(index, host, chunks, now)
  }

  override noteLacks (_peer: PeerKey, _chunk: ChunkKey, _now: number): void {}

  override has (peer: PeerKey, chunk: ChunkKey, now: number): boolean {
    const v = this.view
    const p = v.hostIndex(peer)
    return v.reachable(this.host, p) && !this.isBanned(peer, now) && v.holds(p, v.chunkIndex(chunk))
  }

  override holdersOf (chunk: ChunkKey, now: number): PeerKey[] {
    return this.holderStates(chunk, now).map(s => s.key)
  }

  /** A connection's state by its position among the host's neighbours (sorted: a binary search, not a map lookup). */
  protected override state (peer: PeerKey): PeerState {
    const v = this.view
    const nbrs = v.neighbors(this.host)
    const i = v.hostIndex(peer)
    let lo = 0
    let hi = nbrs.length - 1
    while (lo <= hi) {
      const mid = (lo + hi) >> 1
      const x = nbrs[mid]!
      if (x === i) return this.neighborStates[mid] ?? (this.neighborStates[mid] = super.state(peer))
      if (x < i) lo = mid + 1
      else hi = mid - 1
    }
    return super.state(peer)
  }

  protected override holderStates (chunk: ChunkKey, now: number): PeerState[] {
    const v = this.view
    const found = this.scratch.length >= v.neighbors(this.host).length ? this.scratch : (this.scratch = new Int32Array(v.neighbors(this.host).length))
    const n = v.neighborHolders(this.host, v.chunkIndex(chunk), found)
    const out: PeerState[] = []
    for (let i = 0; i < n; i++) {
      const k = found[i]!
      // the state of each connection, looked up once
      let s = this.neighborStates[k]
      if (s == null) s = this.neighborStates[k] = super.state(v.hostKey(v.neighbors(this.host)[k]!))
      if (this.banned > 0 && this.isBanned(s.key, now)) continue
      out.push(s)
    }
    return out
  }

  /** Who joined when is in the shared state (the wants it would have been told). */
  override lastWorkerJoin (_index: IndexKey): number {
    return this.view.lastJoin(this.host)
  }

  override ownerOf (_index: IndexKey, chunk: ChunkKey, now: number): PeerKey | undefined {
    const v = this.view
    const c = v.chunkIndex(chunk)
    const o = v.owner(this.host, c)
    if (o < 0) return undefined
    if (o === this.host) return this.self
    // the owner's announcements (its WANT, FETCHING and HAVEs) reach every host working on the
    // index, as on a LAN where hosts know one another; it is awaited even when not a connection
    const key = v.hostKey(o)
    if (this.isBanned(key, now)) return this.self
    // what its announcements told us: it is connected, last made progress then, and (FETCHING)
    // is fetching the chunk from the origin now
    super.addPeer(key, v.lastProgress(o))
    v.knows(this.host, o)
    const since = v.fetchingSince(o, c)
    if (since >= 0) super.noteFetching(key, chunk, since)
    return key
  }
}
