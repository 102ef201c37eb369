// The simulator's host policy: node/swarm/policy.ts's SwarmPolicy, with its *knowledge* read from
// the fleet's shared, compact state instead of per-host sets. SwarmPolicy keeps, per host, a set
// of every peer's wants and haves (O(peers × chunks) per host); 10,000 simulated hosts cannot
// each hold that. Here every host's view comes from one shared structure (a bit per host and
// chunk), which is what the announcements of the real protocol would have told it:
//
//   - holdersOf/has: the host's connected neighbours that hold the chunk (or, for a lying peer,
//     claim to), as their "have" announcements say;
//   - ownerOf: the rendezvous owner (the module's own rendezvousWeight/hashKey/chunkHash) among
//     the reachable hosts that needed the chunk when they joined, the same answer on every host;
//     the owner is awaited whether or not it is a connection (its announcements reach every host
//     on the index, as they do on a LAN);
//   - noteWants/noteHaves/noteLacks of peers: already in the shared state.
//
// Every *decision* is inherited unchanged: plan() (least-loaded holder, wait for the owner while
// it makes progress, origin on timeout), requestStarted/Succeeded/Failed (strikes, the ban on a
// chunk that fails verification), acceptInbound/inboundDone, ban/isBanned.
import { SwarmPolicy, type ChunkKey, type FailureReason, type IndexKey, type PeerKey, type SwarmPolicyInit } from '../node/swarm/policy.ts'

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
  /** whether `peer` holds `chunk` or claims to (a lying peer claims everything) */
  holds: (peer: number, chunk: number) => boolean
  /** whether `peer` is up and reachable from `host` */
  reachable: (host: number, peer: number) => boolean
  /** the rendezvous owner of `chunk` among the hosts reachable from `host` (-1: none) */
  owner: (host: number, chunk: number) => number
  /** when (ms) `peer` started the origin fetch of `chunk` it has in flight (-1: none) */
  fetchingSince: (peer: number, chunk: number) => number
  /** last time (ms) `peer` showed progress (joined, started an origin fetch, or received a verified chunk) */
  lastProgress: (peer: number) => number
}

export class FleetPolicy extends SwarmPolicy {
  private readonly view: FleetView
  private readonly host: number

  /** bans this host has handed out (a shortcut: with none, nobody is banned) */
  private banned = 0

  constructor (init: SwarmPolicyInit, view: FleetView, host: number) {
    super(init)
    this.view = view
    this.host = host
  }

  override ban (peer: PeerKey, now: number, reason: string): void {
    this.banned++
    super.ban(peer, now, reason)
  }

  /**
   * The base class also records the peer as a holder of the chunk; here that is already in the
   * shared state, so the per-host copy is dropped again (it would grow to hosts × chunks sets).
   */
  override requestSucceeded (peer: PeerKey, chunk: ChunkKey, bytes: number, now: number): void {
    super.requestSucceeded(peer, chunk, bytes, now)
    super.noteLacks(peer, chunk, now)
  }

  /**
   * The base class strikes a peer that answered "missing" only if it had claimed the chunk; the
   * claim lives in the shared state, so it is handed to the base class first.
   */
  override requestFailed (peer: PeerKey, chunk: ChunkKey, reason: FailureReason, now: number): void {
    const v = this.view
    if (v.holds(v.hostIndex(peer), v.chunkIndex(chunk))) super.noteHaves(undefined, peer, [chunk], now)
    super.requestFailed(peer, chunk, reason, now)
  }

  override isBanned (peer: PeerKey, now: number): boolean {
    return this.banned > 0 && super.isBanned(peer, now)
  }

  // Peers' wants and haves live in the shared state; self's go to the base class, which only
  // uses them to clear its own waits.
  override noteWants (index: IndexKey, host: PeerKey, chunks: Iterable<ChunkKey>, now: number): void {
    if (host === this.self) return
    super.addPeer(host, now)
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
    const v = this.view
    const c = v.chunkIndex(chunk)
    const out: PeerKey[] = []
    for (const p of v.neighbors(this.host)) {
      if (!v.holds(p, c) || !v.reachable(this.host, p)) continue
      const key = v.hostKey(p)
      if (!this.isBanned(key, now)) out.push(key)
    }
    return out
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
    const since = v.fetchingSince(o, c)
    if (since >= 0) super.noteFetching(key, chunk, since)
    return key
  }
}
