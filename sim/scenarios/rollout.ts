// The whole fleet starts the same update at once (within 10 ms): the origin should send about one
// copy, and the swarm should bring every host close to its own link speed.
import { allComplete, baseHeadlines, originAtMost, p99AtMost, type Scenario } from './types.ts'

export const scenario: Scenario = {
  name: 'rollout',
  summary: 'every host starts the update at once',
  configure (config) {
    config.start = { kind: 'all', jitter: 0.01 }
  },
  headlines: (r) => [...baseHeadlines(r), allComplete(r), originAtMost(r, 1.05), p99AtMost(r, 1.5)]
}
