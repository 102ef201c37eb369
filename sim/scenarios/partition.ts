// Two LAN segments joined by a link (a quarter of each host's connections cross it). A quarter of
// the way in, the link between them fails: each side re-splits the chunks it still lacks among
// its own hosts, and fetches from the origin what only the other side had. Everyone finishes;
// the origin sends at most two copies (one per side).
import { idealSeconds } from '../config.ts'
import { allComplete, baseHeadlines, originAtMost, type Scenario } from './types.ts'

export const scenario: Scenario = {
  name: 'partition',
  summary: 'two LAN segments lose the link between them a quarter of the way in',
  configure (config) {
    if (config.segments < 2) config.segments = 2
    const ideal = idealSeconds(config, config.update.bytes)
    const half = Math.ceil(config.segments / 2)
    const a = Array.from({ length: half }, (_, i) => i)
    const b = Array.from({ length: config.segments - half }, (_, i) => half + i)
    config.events.push({ at: 0.25 * ideal, kind: 'partition', groups: [a, b] })
  },
  headlines: (r) => [...baseHeadlines(r), allComplete(r), originAtMost(r, 2)]
}
