// Each scenario's headline property, on a small fleet (the p99-vs-ideal targets are measured at
// scale, see the README's "Fleet simulator" section; here the properties that must always hold,
// and the rollout's p99 target on a mid-size fleet).
import '../helpers/setup.ts'
import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { Fleet } from '../../sim/fleet.ts'
import { configFor, runScenario } from '../../sim/run.ts'
import { scenarios } from '../../sim/scenarios/index.ts'

describe('sim scenarios', () => {
  for (const scenario of Object.values(scenarios)) {
    it(`${scenario.name}: ${scenario.summary}`, () => {
      const { report, headlines } = runScenario(scenario, { hosts: 60, updateBytes: 3 << 20, seed: 2 })
      assert.ok(report.completedHosts > 0)
      for (const h of headlines) {
        if (/p99 completion/.test(h.claim)) continue
        assert.ok(h.ok, `${scenario.name}: ${h.claim} (${h.detail})`)
      }
    })
  }

  it('rollout: origin fetchers, BUSY upload slots and newest-first requests bring p99 within 1.5× the ideal', () => {
    const { report } = runScenario(scenarios.rollout!, { hosts: 150, updateBytes: 32 << 20 })
    assert.equal(report.completedHosts, 150)
    assert.ok(report.originRatio <= 1.05, `originRatio=${report.originRatio}`)
    assert.ok(report.p99OverIdeal <= 1.5, `p99=${report.completion.p99}s ideal=${report.idealSeconds}s (${report.p99OverIdeal}×)`)
    // without the origin fetchers (every host owning a share), the origin's chunks all land at the end
    const spread = runScenario(scenarios.rollout!, { hosts: 150, updateBytes: 32 << 20, tweak: c => { c.policy.originFetchers = 150 } }).report
    assert.ok(spread.p99OverIdeal > report.p99OverIdeal, `${spread.p99OverIdeal}× with every host a fetcher vs ${report.p99OverIdeal}×`)
  })

  it('rollout on a small fleet: its few origin fetchers open more lanes at once, and a host asks a peer no more than the peer serves it at once', () => {
    // (with 4 lanes each, opened one at a time, and 8 requests per peer: 2 hosts 4.38x, 3 hosts
    // 3.07x, 5 hosts 2.03x; the 10 ms origin round trip left the origin mostly idle, and the
    // requests beyond a peer's 4 came back BUSY)
    for (const hosts of [2, 3, 5]) {
      const { report } = runScenario(scenarios.rollout!, { hosts, updateBytes: 16 << 20, seed: 1 })
      assert.equal(report.completedHosts, hosts)
      assert.ok(report.originRatio <= 1.05, `originRatio=${report.originRatio}`)
      assert.ok(report.p99OverIdeal <= 1.5, `${hosts} hosts: p99 ${report.p99OverIdeal}x`)
    }
  })

  it('rollout with 4 MiB chunks (Kraken-like): the policy scales to the chunk size, so BUSY pauses do not flood the run and p99 improves', () => {
    const big = { hosts: 100, updateBytes: 128 << 20, chunkSize: 4 << 20 }
    const { report } = runScenario(scenarios.rollout!, big)
    assert.equal(report.completedHosts, 100)
    assert.ok(report.originRatio <= 1.05, `originRatio=${report.originRatio}`)
    // the defaults calibrated at 64 KiB (2 ms BUSY pause, 16 slots and requests, 32 fetchers)
    const fixed = runScenario(scenarios.rollout!, { ...big, tweak: c => { c.policy.busyRetry = 2; c.policy.maxInbound = 16; c.policy.originFetchers = 32; c.window = 16 } }).report
    const perChunk = (r: typeof report): number => r.events / r.chunks / r.hosts
    assert.ok(perChunk(report) < 25 && perChunk(fixed) > 2 * perChunk(report), `${perChunk(report).toFixed(1)} events per delivered chunk scaled, ${perChunk(fixed).toFixed(1)} fixed`)
    assert.ok(report.p99OverIdeal < fixed.p99OverIdeal, `p99 ${report.p99OverIdeal}× scaled vs ${fixed.p99OverIdeal}× fixed`)
  })

  it('malicious: with 5% hostile hosts, liars are struck and banned and corrupt servers banned', () => {
    const { report } = runScenario(scenarios.malicious!, { hosts: 100, updateBytes: 2 << 20, malicious: 0.05 })
    assert.equal(report.maliciousHosts, 5)
    assert.equal(report.corruptedOutputs, 0)
    assert.ok(report.falseClaims > 0 && report.invalidChunks > 0 && report.bans > 0, JSON.stringify({ f: report.falseClaims, i: report.invalidChunks, b: report.bans }))
  })

  it('malicious: a host that bans a corrupt server gives up what else it asked of it, so each ban costs one bad copy', () => {
    const { report } = runScenario(scenarios.malicious!, { hosts: 300, updateBytes: 8 << 20, malicious: 0.05, tweak: c => { c.maliciousMode = 'corrupt' } })
    assert.equal(report.corruptedOutputs, 0)
    assert.ok(report.bans > 0)
    // (waiting for the rest of what it was asked, as before: 2,598 bad copies for 414 bans, p99 1.99x)
    assert.ok(report.invalidChunks <= report.bans * 1.1, `${report.invalidChunks} bad copies for ${report.bans} bans`)
    assert.ok(report.p99OverIdeal < 1.8, `p99 ${report.p99OverIdeal}x`)
  })

  it('churn: an owner that leaves in the middle of its origin fetch is forgotten by the hosts that awaited it without a connection', () => {
    // seed 3: host 52 leaves 18 ms in, fetching chunk 44 from the origin; host 39, its new owner,
    // is not one of 52's connections and kept waiting for 52's fetch (30 s of fetchingTtl), while
    // the fleet waited for 39 until its owner timeout: every host fetched chunk 44 itself at 3.2 s
    // (origin 2.12x, p99 21.9x the ideal)
    const { report, headlines } = runScenario(scenarios.churn!, { hosts: 300, updateBytes: 16 << 20, seed: 3 })
    assert.equal(report.completedHosts, 300)
    for (const h of headlines) if (!/p99 completion/.test(h.claim)) assert.ok(h.ok, `${h.claim} (${h.detail})`)
    assert.ok(report.originRatio <= 1.05, `originRatio=${report.originRatio}`)
    assert.equal(report.originFetches.timeout, 0)
    assert.ok(report.p99OverIdeal < 3, `p99 ${report.p99OverIdeal}x (downtime included)`)
  })

  it('origin-outage: peers keep trading while the origin is down', () => {
    const { report, config } = runScenario(scenarios['origin-outage']!, { hosts: 60, updateBytes: 3 << 20 })
    const down = config.events.find(e => e.kind === 'origin-down')!.at
    const up = config.events.find(e => e.kind === 'origin-up')!.at
    const b = report.originSeries.bucketSeconds
    const during = report.originSeries.bytes.slice(Math.ceil(down / b) + 1, Math.floor(up / b))
    assert.ok(during.length > 0 && during.every(x => x === 0), 'nothing leaves the origin while it is down')
    assert.equal(report.completedHosts, report.honestHosts)
  })

  it('staggered: a host that starts early dials other workers after its settle, so the first wave is not left with a tenth of its connections', () => {
    const config = configFor(scenarios.staggered!, { hosts: 300, updateBytes: 16 << 20 })
    const waves = config.start.kind === 'waves' ? config.start.waves : 0
    assert.equal(waves, 10)
    const fleet = new Fleet(config)
    const result = fleet.run()
    // the first wave (every tenth host) started alone: each now has degree/2 connections among it
    const first = fleet.hosts.filter(h => h.index % waves === 0)
    for (const h of first) {
      const inWave = [...h.neighbors].filter(n => n % waves === 0).length
      assert.ok(inWave >= config.degree / 2, `host ${h.index}: ${inWave} connections in its wave`)
      assert.deepEqual([...h.neighbors], [...h.neighbors].sort((a, b) => a - b), 'neighbours stay sorted (FleetPolicy finds them by binary search)')
    }
    // connections are both ways
    for (const h of fleet.hosts) for (const n of h.neighbors) assert.ok(fleet.hosts[n]!.neighbors.includes(h.index), `${h.index}-${n}`)
    // a wave starts together: its hosts' origin lanes open once no host has joined for settleQuiet,
    // not a whole settle after each start (SwarmPolicy.prefetchStartAt)
    for (const h of fleet.hosts) {
      assert.ok(Math.abs(h.lanesAt - h.startTime - config.settleQuiet) < 1e-9, `host ${h.index}: lanes opened ${((h.lanesAt - h.startTime) * 1000).toFixed(2)} ms after its start`)
    }
    const done = result.hosts.map(h => (h.doneTime - h.startTime) / result.idealSeconds).sort((a, b) => a - b)
    const p99 = done[Math.ceil(done.length * 0.99) - 1]!
    // with the static graph alone this fleet's p99 was 2.19x; with lanes a whole settle after the start, 1.44x
    assert.ok(p99 <= 1.4, `p99 ${p99.toFixed(3)}x the ideal`)
    assert.equal(result.originBytes, result.uniqueBytes)
  })

  it('rollout: hosts that start one after another open their origin lanes once the arrivals stop (or a settle after their start)', () => {
    const config = configFor(scenarios.rollout!, { hosts: 200, updateBytes: 4 << 20 })
    assert.equal(config.start.kind, 'all')
    const fleet = new Fleet(config)
    fleet.run()
    const starts = fleet.hosts.map(h => h.startTime).sort((a, b) => a - b)
    const last = starts[starts.length - 1]!
    for (const h of fleet.hosts) {
      const expect = Math.min(h.startTime + config.settle, last + config.settleQuiet)
      assert.ok(Math.abs(h.lanesAt - expect) < 1e-9, `host ${h.index} started ${(h.startTime * 1000).toFixed(2)} ms, lanes at ${(h.lanesAt * 1000).toFixed(2)} ms, expected ${(expect * 1000).toFixed(2)} ms`)
    }
  })

  it('partition: each side finishes on its own', () => {
    const { report } = runScenario(scenarios.partition!, { hosts: 60, updateBytes: 3 << 20 })
    assert.equal(report.completedHosts, report.honestHosts)
    assert.ok(report.originRatio > 1, 'chunks only the other side had are fetched again')
  })
})
