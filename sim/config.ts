// A simulation's inputs: the fleet, its links, the update, and what happens during the rollout.
// Every field has a default; scenarios (sim/scenarios/) override some, the CLI a few more.
import { PICK_AMONG, type SwarmPolicyInit } from '../node/swarm/policy.ts'

const MBIT = 1e6 / 8

/** Something that happens at a simulated time. */
export type SimEvent =
  /** the origin stops answering (connections refused) */
  | { at: number, kind: 'origin-down' }
  | { at: number, kind: 'origin-up' }
  /** the origin's egress bandwidth changes (bytes/s) */
  | { at: number, kind: 'origin-bandwidth', bandwidth: number }
  /** LAN segments split into groups that cannot reach each other (each keeps the origin) */
  | { at: number, kind: 'partition', groups: number[][] }
  | { at: number, kind: 'heal' }

export interface UpdateConfig {
  /** plain bytes of the update the hosts lack. @default 64 MiB */
  bytes: number
  /** chunk sizes (casync's 16K:64K:256K by default) */
  chunkMin: number
  chunkAvg: number
  chunkMax: number
}

export interface FleetConfig {
  /** hosts in the fleet (malicious ones included). @default 100 */
  hosts: number
  /** PRNG seed: the same seed gives the same report. @default 1 */
  seed: number
  update: UpdateConfig
  /** LAN segments; hosts are spread evenly. @default 1 */
  segments: number
  /** connections per host (libp2p connection limit); the mesh is full below it. @default 32 */
  degree: number
  /** share of a host's connections that go to other segments (via --peer). @default 0.25 */
  crossSegment: number
  /** per-host link bandwidths, bytes/s. @default 1 Gbit/s each way */
  hostUp: number
  hostDown: number
  /** one-way latency between two hosts, seconds. @default 0.2 ms */
  latency: number
  /** bandwidth of each segment's link to the other segments, bytes/s. @default 10 Gbit/s */
  segmentLink: number
  /** bandwidth of each segment's path to the origin, bytes/s. @default 10 Gbit/s */
  segmentWan: number
  origin: {
    /** egress bytes/s. @default 1 Gbit/s */
    bandwidth: number
    /** one-way latency, seconds. @default 10 ms */
    latency: number
  }
  /**
   * requests a host keeps in flight for chunks its peers announced (node/swarm/source.ts
   * peerPrefetch), and chunks it waits for in its own order (extract's concurrency); 0: as
   * source.ts picks it for the chunk size (policy.ts chunkSizeDefaults: 6 at 64 KiB). @default 0
   */
  window: number
  /**
   * origin fetches an origin fetcher keeps in flight for the chunks it owns, in index order
   * (node/swarm/source.ts ownerPrefetch; 0: only when its window reaches them). Its lanes open
   * one more with each chunk it fetched (a slow start); a fleet of fewer than 16 fetchers opens
   * more (policy.ts ownerLanes). @default 4
   */
  ownerPrefetch: number
  /**
   * a host's prefetch lanes start once no host has joined the index for `settleQuiet` seconds,
   * and at most `settle` seconds after it started (SwarmPolicy.prefetchStartAt, as
   * node/swarm/source.ts: the owner split starts from a view its peers share). @default 0.02
   */
  settle: number
  /**
   * @default 0.004: 10 LAN round trips. Here a host's view of who works on the index is the
   * fleet's shared state, current at once; a real host hears of others over a loaded network,
   * and source.ts waits half its settle (750 ms).
   */
  settleQuiet: number
  /** a host requests one of this many most recently announced chunks, at random (node/swarm/policy.ts pickRecent). @default PICK_AMONG (8) */
  pickAmong: number
  /**
   * chunks no peer announced yet are waited for in a per-host order within blocks of this many
   * (a power of two); 1: strict index order (what extract's own window does). @default 64
   */
  shuffleBlock: number
  /** share of hosts that are malicious (they extract nothing). @default 0 */
  malicious: number
  /** what malicious hosts do: serve corrupt chunks, claim chunks they lack, or half and half */
  maliciousMode: 'corrupt' | 'liar' | 'mixed'
  /** share of honest hosts that leave once during the rollout and come back. @default 0 */
  churn: number
  /** when hosts start: all at once (within `startJitter`), or in `waves` waves `waveGap` s apart */
  start: { kind: 'all', jitter: number } | { kind: 'waves', waves: number, gap: number }
  /** scripted events (origin outage, slow origin, partition) */
  events: SimEvent[]
  /** SwarmPolicy options (times in ms, as the policy takes them) */
  policy: Partial<Omit<SwarmPolicyInit, 'self'>>
  /** stop after this many simulated seconds (hosts not done count as incomplete). @default 3600 */
  maxTime: number
  /** verify received chunks (off only to prove the corruption check can fail). @default true */
  verify: boolean
  /** seconds per bucket of the origin egress series; 0: 1/100 of the ideal time */
  bucket: number
}

export function defaultConfig (): FleetConfig {
  return {
    hosts: 100,
    seed: 1,
    // an image update's changed chunks (what every figure in the README uses)
    update: { bytes: 16 * 1024 * 1024, chunkMin: 16 * 1024, chunkAvg: 64 * 1024, chunkMax: 256 * 1024 },
    segments: 1,
    degree: 32,
    crossSegment: 0.25,
    hostUp: 1000 * MBIT,
    hostDown: 1000 * MBIT,
    latency: 0.0002,
    segmentLink: 10_000 * MBIT,
    segmentWan: 10_000 * MBIT,
    origin: { bandwidth: 1000 * MBIT, latency: 0.010 },
    window: 0,
    ownerPrefetch: 4,
    settle: 0.02,
    settleQuiet: 0.004,
    pickAmong: PICK_AMONG,
    shuffleBlock: 64,
    malicious: 0,
    maliciousMode: 'mixed',
    churn: 0,
    start: { kind: 'all', jitter: 0.01 },
    events: [],
    policy: {},
    maxTime: 3600,
    verify: true,
    bucket: 0
  }
}

export { MBIT }

/** One host alone fetching the whole update from the origin over the same links. */
export function idealSeconds (config: FleetConfig, uniqueBytes: number): number {
  const rate = Math.min(config.hostDown, config.origin.bandwidth, config.segmentWan)
  return uniqueBytes / rate + 2 * config.origin.latency
}
