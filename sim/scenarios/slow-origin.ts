// The origin serves at a tenth of a host's link speed. The swarm cannot beat the origin, but it
// should not fetch more from it: the fleet finishes about when one host alone would.
import { allComplete, baseHeadlines, originAtMost, p99AtMost, type Scenario } from './types.ts'

export const scenario: Scenario = {
  name: 'slow-origin',
  summary: 'the origin serves at a tenth of a host link',
  configure (config) {
    config.origin.bandwidth = config.hostDown / 10
  },
  headlines: (r) => [...baseHeadlines(r), allComplete(r), originAtMost(r, 1.05), p99AtMost(r, 1.5)]
}
