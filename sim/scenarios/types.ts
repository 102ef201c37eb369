// What a scenario file exports: how it changes the default fleet, and the property it exists to
// show (checked by test/sim and printed by `caswarm sim`).
import type { FleetConfig } from '../config.ts'
import type { SimReport } from '../report.ts'

export interface Headline {
  /** what must hold, in words */
  claim: string
  ok: boolean
  /** the measured values */
  detail: string
}

export interface Scenario {
  name: string
  summary: string
  /** Adjusts the config (already holding the defaults and the CLI's --hosts/--seed etc.). */
  configure: (config: FleetConfig) => void
  /** The scenario's headline properties, judged on its report. */
  headlines: (report: SimReport, config: FleetConfig) => Headline[]
}

/** The properties every scenario keeps: outputs intact, bytes accounted for. */
export function baseHeadlines (r: SimReport): Headline[] {
  return [
    { claim: 'no corrupted output', ok: r.corruptedOutputs === 0, detail: `corruptedOutputs=${r.corruptedOutputs}` },
    { claim: 'every received byte is counted at its source', ok: r.conservation.ok, detail: `fromOrigin=${r.conservation.fromOrigin} fromPeers=${r.conservation.fromPeers} servedByPeers=${r.conservation.servedByPeers}` }
  ]
}

export function allComplete (r: SimReport): Headline {
  return { claim: 'every honest host completes', ok: r.completedHosts === r.honestHosts, detail: `${r.completedHosts}/${r.honestHosts}` }
}

export function originAtMost (r: SimReport, factor: number): Headline {
  return { claim: `origin bytes ≤ ${factor}× unique bytes`, ok: r.originRatio <= factor, detail: `originRatio=${r.originRatio}` }
}

export function p99AtMost (r: SimReport, factor: number, stayers = false): Headline {
  const p99 = stayers ? r.completionStayers.p99 : r.completion.p99
  return { claim: `p99 completion${stayers ? ' (hosts that stayed)' : ''} ≤ ${factor}× one host's ideal time`, ok: p99 <= factor * r.idealSeconds, detail: `p99=${p99}s ideal=${r.idealSeconds}s (${(p99 / r.idealSeconds).toFixed(2)}×)` }
}
