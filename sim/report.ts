// The report: plain JSON a test can assert on, and that `caswarm sim --json` prints.
import type { FleetResult } from './fleet.ts'

export interface Percentiles { p50: number, p90: number, p99: number, max: number }

export interface SimReport {
  scenario: string
  seed: number
  hosts: number
  honestHosts: number
  maliciousHosts: number
  completedHosts: number
  corruptedOutputs: number
  /** bytes of the update's distinct chunks the fleet lacked */
  uniqueBytes: number
  /** bytes that left the origin */
  originBytes: number
  /** verified bytes hosts received from peers */
  peerBytes: number
  /** bytes hosts received and rejected (failed verification) */
  rejectedBytes: number
  /** originBytes / uniqueBytes */
  originRatio: number
  /** seconds from each honest host's start to its last chunk (simulated) */
  completion: Percentiles
  /** one host alone fetching the update from the origin over the same links */
  idealSeconds: number
  /** completion.p99 / idealSeconds */
  p99OverIdeal: number
  /** completion of the hosts that never left (churn excluded) */
  completionStayers: Percentiles
  /** simulated seconds until the last event */
  simulatedSeconds: number
  wallSeconds: number
  events: number
  chunks: number
  bans: number
  invalidChunks: number
  falseClaims: number
  originFetches: { owner: number, alone: number, timeout: number }
  /** conservation: every byte received was counted where it came from */
  conservation: { received: number, fromOrigin: number, fromPeers: number, servedByPeers: number, ok: boolean }
  /** origin egress per bucket (bytes), for the plot */
  originSeries: { bucketSeconds: number, bytes: number[] }
  /** sorted completion times (s) of honest hosts that finished, for the plot */
  completionTimes: number[]
}

export function percentiles (sorted: number[]): Percentiles {
  if (sorted.length === 0) return { p50: NaN, p90: NaN, p99: NaN, max: NaN }
  const q = (f: number): number => sorted[Math.min(sorted.length - 1, Math.ceil(f * sorted.length) - 1)]!
  return { p50: round(q(0.5)), p90: round(q(0.9)), p99: round(q(0.99)), max: round(sorted[sorted.length - 1]!) }
}

function round (x: number, digits = 4): number {
  const f = 10 ** digits
  return Math.round(x * f) / f
}

export function buildReport (scenario: string, r: FleetResult, wallSeconds: number): SimReport {
  const honest = r.hosts.filter(h => h.malice === 0)
  const done = honest.filter(h => h.doneTime >= 0)
  const times = done.map(h => h.doneTime - h.startTime).sort((a, b) => a - b)
  const stayers = done.filter(h => h.leaves === 0).map(h => h.doneTime - h.startTime).sort((a, b) => a - b)
  let fromOrigin = 0
  let fromPeers = 0
  let served = 0
  let rejected = 0
  let received = 0
  for (const h of r.hosts) {
    fromOrigin += h.fromOrigin
    fromPeers += h.fromPeers
    rejected += h.rejected
    served += h.served
  }
  // what each finished host holds came from the origin or a peer, byte for byte
  for (const h of done) received += r.uniqueBytes
  const unfinishedHeld = honest.filter(h => h.doneTime < 0).reduce((s, h) => s + h.fromOrigin + h.fromPeers, 0)
  const ok = fromOrigin + fromPeers === received + unfinishedHeld &&
    served === fromPeers + rejected &&
    fromOrigin <= r.originBytes
  const completion = percentiles(times)
  return {
    scenario,
    seed: r.config.seed,
    hosts: r.hosts.length,
    honestHosts: honest.length,
    maliciousHosts: r.hosts.length - honest.length,
    completedHosts: done.length,
    corruptedOutputs: honest.filter(h => h.corrupted).length,
    uniqueBytes: r.uniqueBytes,
    originBytes: r.originBytes,
    peerBytes: fromPeers,
    rejectedBytes: rejected,
    originRatio: round(r.originBytes / r.uniqueBytes),
    completion,
    idealSeconds: round(r.idealSeconds),
    p99OverIdeal: round(completion.p99 / r.idealSeconds),
    completionStayers: percentiles(stayers),
    simulatedSeconds: round(r.simulatedSeconds),
    wallSeconds: round(wallSeconds, 2),
    events: r.events,
    chunks: r.chunkSizes.length,
    bans: r.bans,
    invalidChunks: r.invalidChunks,
    falseClaims: r.falseClaims,
    originFetches: r.originFetches,
    conservation: { received: received + unfinishedHeld, fromOrigin, fromPeers, servedByPeers: served, ok },
    originSeries: { bucketSeconds: r.originMeter.bucket, bytes: r.originMeter.values },
    completionTimes: times.map(t => round(t))
  }
}
