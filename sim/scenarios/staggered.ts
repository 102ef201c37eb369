// The rollout in waves: a tenth of the fleet every half ideal time. Later waves find most chunks
// already on the LAN, so the origin still sends about one copy.
import { idealSeconds } from '../config.ts'
import { allComplete, baseHeadlines, originAtMost, p99AtMost, type Scenario } from './types.ts'

export const scenario: Scenario = {
  name: 'staggered',
  summary: 'the fleet starts in 10 waves, half an ideal time apart',
  configure (config) {
    config.start = { kind: 'waves', waves: 10, gap: idealSeconds(config, config.update.bytes) / 2 }
  },
  headlines: (r) => [...baseHeadlines(r), allComplete(r), originAtMost(r, 1.05), p99AtMost(r, 1.5)]
}
