// The origin goes down a fifth of the way into the rollout and comes back after one ideal time.
// Hosts keep trading what the LAN has, retry the origin with backoff, and all finish after it
// returns; no chunk is fetched twice because of the outage.
import { idealSeconds } from '../config.ts'
import { allComplete, baseHeadlines, originAtMost, type Scenario } from './types.ts'

export const scenario: Scenario = {
  name: 'origin-outage',
  summary: 'the origin is down from 20% to 120% of the ideal time',
  configure (config) {
    const ideal = idealSeconds(config, config.update.bytes)
    config.events.push({ at: 0.2 * ideal, kind: 'origin-down' }, { at: 1.2 * ideal, kind: 'origin-up' })
  },
  headlines: (r) => [
    ...baseHeadlines(r),
    allComplete(r),
    originAtMost(r, 1.05),
    { claim: 'the last host finishes after the origin returns', ok: r.completion.max >= 1.2 * r.idealSeconds, detail: `max=${r.completion.max}s, origin back at ${(1.2 * r.idealSeconds).toFixed(3)}s` }
  ]
}
