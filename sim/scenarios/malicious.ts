// Some hosts are hostile: half serve corrupt chunks, half claim chunks they lack. Every corrupt
// chunk fails verification and gets its server banned; false claims cost strikes. No output is
// corrupted and the honest hosts still finish.
import { allComplete, baseHeadlines, originAtMost, type Scenario } from './types.ts'

export const scenario: Scenario = {
  name: 'malicious',
  summary: 'a share of the hosts (default 5%) serves corrupt chunks or claims chunks it lacks',
  configure (config) {
    if (config.malicious === 0) config.malicious = 0.05
  },
  headlines: (r) => [
    ...baseHeadlines(r),
    allComplete(r),
    originAtMost(r, 1.05),
    { claim: 'corrupt chunks were caught by verification and their servers banned', ok: r.maliciousHosts === 0 || (r.invalidChunks > 0 && r.bans > 0), detail: `invalidChunks=${r.invalidChunks} bans=${r.bans} falseClaims=${r.falseClaims}` }
  ]
}
