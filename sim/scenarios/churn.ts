// Hosts leave during the rollout (their transfers cut, their owned chunks re-split) and come back
// with their cache. Everyone still finishes; the origin pays little for the departures.
import { allComplete, baseHeadlines, originAtMost, type Scenario } from './types.ts'

export const scenario: Scenario = {
  name: 'churn',
  summary: 'a share of the hosts (default 10%) leaves once mid-rollout and comes back',
  configure (config) {
    if (config.churn === 0) config.churn = 0.1
  },
  headlines: (r) => [...baseHeadlines(r), allComplete(r), originAtMost(r, 1.2)]
}
