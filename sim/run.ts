// Runs one scenario: defaults, then the scenario's changes, then the caller's overrides; returns
// the report and the scenario's headline properties judged on it.
import { Worker } from 'node:worker_threads'
import { InterruptedError } from '../protocol/errors.ts'
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

/** What runScenarioInThread sends its worker (RunOptions without the callbacks). */
export interface ThreadJob {
  scenario: string
  options: Omit<RunOptions, 'tweak' | 'onProgress'>
}

/** Compiled (dist/*.js): the worker's own .js file; from sources: an entry that loads tsx first. */
const THREAD_URL = import.meta.url.endsWith('.js')
  ? new URL('./thread.js', import.meta.url)
  : new URL('./thread-entry.mjs', import.meta.url)

/**
 * Young generation of the simulation's thread, MB. Measured (3,000 hosts, 16 MiB): 33.2 s with
 * V8's default (16 MB semi-spaces), 30.9 s with 192, 29.5 s with 384; GC 2.3 s → 0.8 s.
 */
const YOUNG_GENERATION_MB = 384

/**
 * runScenario in a worker thread with a large young generation (see sim/thread.ts), by scenario
 * name. `signal` ends the thread (the promise rejects with InterruptedError).
 */
export async function runScenarioInThread (scenario: string, options: ThreadJob['options'] = {}, signal?: AbortSignal): Promise<RunResult> {
  const job: ThreadJob = { scenario, options }
  const worker = new Worker(THREAD_URL, { workerData: job, resourceLimits: { maxYoungGenerationSizeMb: YOUNG_GENERATION_MB } })
  return await new Promise<RunResult>((resolve, reject) => {
    const onAbort = (): void => { void worker.terminate(); reject(new InterruptedError()) }
    if (signal?.aborted === true) { onAbort(); return }
    signal?.addEventListener('abort', onAbort, { once: true })
    const settle = (fn: () => void): void => { signal?.removeEventListener('abort', onAbort); fn() }
    worker.once('message', (m: { ok: true, result: RunResult } | { ok: false, message: string, code?: string }) => {
      settle(() => {
        void worker.terminate()
        if (m.ok) resolve(m.result)
        else reject(Object.assign(new Error(m.message), m.code != null ? { code: m.code } : {}))
      })
    })
    worker.once('error', (err) => { settle(() => { reject(err) }) })
    worker.once('exit', (code) => { settle(() => { reject(new Error(`the simulation thread exited (code ${code}) without a result`)) }) })
  })
}
