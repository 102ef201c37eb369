// Runs one scenario: defaults, then the scenario's changes, then the caller's overrides; returns
// the report and the scenario's headline properties judged on it.
import { defaultConfig, type FleetConfig } from './config.ts'
import { Fleet } from './fleet.ts'
import { buildReport, type SimReport } from './report.ts'
import type { Headline, Scenario } from './scenarios/types.ts'

export interface RunOptions {
  hosts?: number
  seed?: number
  malicious?: number
  churn?: number
  /** update size in bytes */
  updateBytes?: number
  /** average chunk size in bytes (min avg/4, max 4×avg, casync's ratios) */
  chunkSize?: number
  /** any other config change, applied last */
  tweak?: (config: FleetConfig) => void
  /** called every ~250k events with the fleet (progress, abort checks) */
  onProgress?: (fleet: Fleet) => void
}

export interface RunResult {
  config: FleetConfig
  report: SimReport
  headlines: Headline[]
}

export function configFor (scenario: Scenario, options: RunOptions = {}): FleetConfig {
  const config = defaultConfig()
  if (options.hosts != null) config.hosts = options.hosts
  if (options.seed != null) config.seed = options.seed
  if (options.malicious != null) config.malicious = options.malicious
  if (options.churn != null) config.churn = options.churn
  if (options.updateBytes != null) config.update.bytes = options.updateBytes
  if (options.chunkSize != null) {
    config.update.chunkAvg = options.chunkSize
    config.update.chunkMin = Math.max(1, Math.floor(options.chunkSize / 4))
    config.update.chunkMax = options.chunkSize * 4
  }
  scenario.configure(config)
  options.tweak?.(config)
  return config
}

export function runScenario (scenario: Scenario, options: RunOptions = {}): RunResult {
  const config = configFor(scenario, options)
  const started = performance.now()
  const fleet = new Fleet(config)
  const result = fleet.run(options.onProgress)
  const report = buildReport(scenario.name, result, (performance.now() - started) / 1000)
  return { config, report, headlines: scenario.headlines(report, config) }
}
