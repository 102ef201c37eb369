// The fleet simulator: the same seed gives the same report, every byte is accounted for, the
// swarm's own policy makes the decisions, and verification is what keeps outputs clean.
import '../helpers/setup.ts'
import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { SwarmPolicy } from '../../node/swarm/policy.ts'
import { defaultConfig } from '../../sim/config.ts'
import { Fleet } from '../../sim/fleet.ts'
import { buildReport, type SimReport } from '../../sim/report.ts'
import { renderPlot } from '../../sim/plot.ts'
import { runScenario, runScenarioInThread } from '../../sim/run.ts'
import { scenarios } from '../../sim/scenarios/index.ts'

const small = { hosts: 40, updateBytes: 2 << 20 }

function withoutWall (r: SimReport): Omit<SimReport, 'wallSeconds'> {
  const { wallSeconds, ...rest } = r
  return rest
}

describe('sim fleet', () => {
  it('is deterministic: the same seed gives the same report, another seed another one', () => {
    const a = runScenario(scenarios.churn!, { ...small, seed: 3 }).report
    const b = runScenario(scenarios.churn!, { ...small, seed: 3 }).report
    const c = runScenario(scenarios.churn!, { ...small, seed: 4 }).report
    assert.deepEqual(withoutWall(a), withoutWall(b))
    assert.notDeepEqual(withoutWall(a).completionTimes, withoutWall(c).completionTimes)
  })

  it('conserves bytes: what each host holds came from the origin or a peer, and peers served exactly that', () => {
    const config = defaultConfig()
    config.hosts = 50
    config.update.bytes = 3 << 20
    config.malicious = 0.1
    config.churn = 0.1
    const fleet = new Fleet(config)
    const result = fleet.run()
    const report = buildReport('conservation', result, 0)
    assert.equal(report.completedHosts, report.honestHosts)
    let served = 0
    let fromPeers = 0
    let rejected = 0
    for (const h of result.hosts) {
      served += h.served
      fromPeers += h.fromPeers
      rejected += h.rejected
      if (h.malice !== 0) {
        assert.equal(h.fromOrigin + h.fromPeers, 0, `${h.key} is malicious and fetches nothing`)
        continue
      }
      // each chunk arrives exactly once, verified: the host received the update's bytes, no more
      assert.equal(h.fromOrigin + h.fromPeers, result.uniqueBytes, `${h.key} received ${h.fromOrigin}+${h.fromPeers}`)
    }
    assert.equal(served, fromPeers + rejected, 'bytes served by peers = bytes received from peers (kept or rejected)')
    const fromOrigin = result.hosts.reduce((s, h) => s + h.fromOrigin, 0)
    assert.ok(fromOrigin <= result.originBytes, 'hosts cannot receive more from the origin than it sent')
    assert.equal(result.originMeter.total, result.originBytes)
    assert.ok(report.conservation.ok)
    assert.ok(rejected > 0, 'the corrupt peers did send something')
  })

  it('drives the real SwarmPolicy: a corrupt chunk gets its server banned through requestFailed', () => {
    const config = defaultConfig()
    config.hosts = 30
    config.update.bytes = 1 << 20
    config.malicious = 0.1
    config.maliciousMode = 'corrupt'
    const fleet = new Fleet(config)
    const result = fleet.run()
    const honest = result.hosts.filter(h => h.malice === 0)
    assert.ok(honest.every(h => h.policy instanceof SwarmPolicy))
    const bad = result.hosts.filter(h => h.malice !== 0).map(h => h.key)
    const reps = honest.flatMap(h => h.policy.reputations()).filter(r => bad.includes(r.peer) && r.badChunks > 0)
    assert.ok(reps.length > 0, 'some host received a corrupt chunk')
    for (const r of reps) assert.ok(r.bannedUntil > 0 && /failed verification/.test(r.banReason ?? ''), JSON.stringify(r))
    assert.equal(result.invalidChunks, reps.reduce((s, r) => s + r.badChunks, 0))
  })

  it('verification is what keeps outputs clean: without it, corrupt chunks reach outputs', () => {
    const run = (verify: boolean): SimReport => runScenario(scenarios.malicious!, { hosts: 40, updateBytes: 1 << 20, malicious: 0.1, tweak: c => { c.verify = verify; c.maliciousMode = 'corrupt' } }).report
    assert.equal(run(true).corruptedOutputs, 0)
    assert.ok(run(false).corruptedOutputs > 0)
  })

  it('is event-efficient: about a dozen events per delivered chunk (what lets 10,000 hosts run on one machine)', () => {
    const { report } = runScenario(scenarios.rollout!, { hosts: 100, updateBytes: 4 << 20 })
    const perChunk = report.events / report.chunks / report.hosts
    // a link completion per link, the request, a wait or two; BUSY answers fold into the request
    assert.ok(perChunk > 2 && perChunk < 11, `${perChunk.toFixed(2)} events per delivered chunk`)
  })

  it('deals the origin fetches evenly over the fetchers (hashing gave the busiest twice the average, and the origin a long tail)', () => {
    const config = defaultConfig()
    config.hosts = 150
    config.update.bytes = 16 << 20
    const result = new Fleet(config).run()
    const perHost = result.hosts.map(h => h.originChunks).filter(n => n > 0)
    const chunks = result.chunkSizes.length
    assert.equal(perHost.reduce((a, b) => a + b, 0), chunks)
    // 32 fetchers: 7 or 8 chunks each, a few more where the fetcher set changed while hosts joined
    assert.ok(Math.max(...perHost) <= 1.5 * Math.ceil(chunks / 32), `origin fetches per host: ${perHost.sort((a, b) => b - a).join(',')}`)
  })

  it('a partition closes the connections across it: each side re-splits its owners and nobody waits for the other side', () => {
    // seed 1 at 100 hosts: with the other side's FETCHING claims kept, a host that became owner
    // waited for a peer it could no longer reach until ownerTimeout (origin 2.9x, p99 59x ideal)
    const { report } = runScenario(scenarios.partition!, { hosts: 100, updateBytes: 4 << 20, seed: 1 })
    assert.equal(report.completedHosts, 100)
    assert.equal(report.originFetches.timeout, 0)
    assert.ok(report.originRatio <= 2, `originRatio=${report.originRatio}`)
    assert.ok(report.p99OverIdeal < 4, `p99=${report.p99OverIdeal}x ideal`)
  })

  it('runs in a worker thread (caswarm sim does, for its larger young generation) with the same report; an abort ends the thread', async () => {
    const here = runScenario(scenarios.churn!, { ...small, seed: 5 })
    const there = await runScenarioInThread('churn', { ...small, seed: 5 })
    assert.deepEqual(withoutWall(there.report), withoutWall(here.report))
    assert.deepEqual(there.headlines, here.headlines)
    const ac = new AbortController()
    const run = runScenarioInThread('rollout', { hosts: 3000, updateBytes: 64 << 20 }, ac.signal)
    setTimeout(() => { ac.abort() }, 200)
    await assert.rejects(run, { code: 'ERR_INTERRUPTED' })
    await assert.rejects(runScenarioInThread('no-such-scenario', small), /unknown scenario/)
  })

  it('renders the report as an SVG with both panels', () => {
    const { report } = runScenario(scenarios.rollout!, small)
    const svg = renderPlot(report)
    assert.match(svg, /^<svg [^>]*xmlns="http:\/\/www.w3.org\/2000\/svg"/)
    assert.match(svg, /hosts done \(CDF\): 40\/40/)
    assert.match(svg, /origin egress/)
    assert.equal((svg.match(/<polyline/g) ?? []).length, 2)
    assert.ok(svg.trimEnd().endsWith('</svg>'))
  })
})
