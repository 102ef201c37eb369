/**
 * The simulator's scenarios, one file each: a rollout wave (all at once, or staggered), churn,
 * malicious peers, an origin outage, a slow origin, and partitioned LAN segments. Each adjusts
 * the default fleet and names the property it exists to show.
 *
 * @example
 * ```ts
 * import { scenarios } from './sim/scenarios/index.ts'
 * import { runScenario } from './sim/run.ts'
 * const { report, headlines } = runScenario(scenarios.churn, { hosts: 500, seed: 7 })
 * ```
 */
import type { Scenario } from './types.ts'
import { scenario as churn } from './churn.ts'
import { scenario as malicious } from './malicious.ts'
import { scenario as originOutage } from './origin-outage.ts'
import { scenario as partition } from './partition.ts'
import { scenario as rollout } from './rollout.ts'
import { scenario as slowOrigin } from './slow-origin.ts'
import { scenario as staggered } from './staggered.ts'

export type { Headline, Scenario } from './types.ts'

export const scenarios: Record<string, Scenario> = {
  rollout,
  staggered,
  churn,
  malicious,
  'origin-outage': originOutage,
  'slow-origin': slowOrigin,
  partition
}
