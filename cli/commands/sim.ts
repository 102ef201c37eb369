// caswarm sim: roll an update out to a simulated fleet (thousands of hosts on this machine,
// running the swarm's own policy code over a simulated network) and report what it cost.
import { writeFile, rename } from 'node:fs/promises'
import type { Command } from 'commander'
import { InvalidArgumentError } from '../../protocol/errors.ts'
import { renderPlot } from '../../sim/plot.ts'
import { runScenarioInThread } from '../../sim/run.ts'
import { scenarios } from '../../sim/scenarios/index.ts'
import { printJson, type CommandContext } from '../context.ts'

interface SimCliOptions {
  scenario: string
  hosts?: string
  malicious?: string
  churn?: string
  seed?: string
  size?: string
  chunkSize?: string
  json?: boolean
  plot?: string
  check?: boolean
  list?: boolean
}

function fraction (name: string, v: string | undefined): number | undefined {
  if (v == null) return undefined
  const x = Number(v)
  if (!Number.isFinite(x) || x < 0 || x >= 1) throw new InvalidArgumentError(`--${name} must be a fraction in [0, 1), not ${JSON.stringify(v)}`)
  return x
}

function integer (name: string, v: string | undefined, min: number): number | undefined {
  if (v == null) return undefined
  const x = Number(v)
  if (!Number.isInteger(x) || x < min) throw new InvalidArgumentError(`--${name} must be an integer ≥ ${min}, not ${JSON.stringify(v)}`)
  return x
}

function size (v: string | undefined, name = 'size'): number | undefined {
  if (v == null) return undefined
  const m = /^(\d+(?:\.\d+)?)([KMG]?)i?B?$/i.exec(v.trim())
  if (m == null) throw new InvalidArgumentError(`--${name} must look like 64M or 1G, not ${JSON.stringify(v)}`)
  const mult = { '': 1, K: 1024, M: 1024 ** 2, G: 1024 ** 3 }[m[2]!.toUpperCase() as '' | 'K' | 'M' | 'G']
  const bytes = Math.round(Number(m[1]) * mult)
  if (bytes < 1024) throw new InvalidArgumentError(`--${name} must be at least 1K`)
  return bytes
}

const mb = (b: number): string => `${(b / 1e6).toFixed(1)} MB`

export function register (program: Command, ctx: CommandContext): void {
  program.command('sim')
    .summary('simulate a rollout to a fleet of hosts and report origin cost and completion times')
    .description('Simulate a fleet rolling out one update over a simulated LAN (per-host links, latency, LAN segments, an origin), with every host running the swarm\'s own peer-selection, origin-split, verification and ban code. Chunks are IDs and sizes, so 10,000 hosts fit on one machine. The same seed gives the same report.')
    .option('--scenario <name>', `one of: ${Object.keys(scenarios).join(', ')}`, 'rollout')
    .option('--hosts <n>', 'hosts in the fleet (malicious ones included)')
    .option('--malicious <fraction>', 'share of hosts that serve corrupt chunks or claim chunks they lack')
    .option('--churn <fraction>', 'share of honest hosts that leave once mid-rollout and come back')
    .option('--seed <n>', 'PRNG seed', '1')
    .option('--size <bytes>', 'update size (the bytes every host lacks), e.g. 64M (default 16M)')
    .option('--chunk-size <bytes>', 'average chunk size, e.g. 4M; min is a quarter, max four times it (default 64K, casync\'s)')
    .option('--json', 'print the report as JSON')
    .option('--plot <file.svg>', 'write an SVG: completion CDF and origin egress over time')
    .option('--check', 'exit 1 unless every headline property of the scenario holds')
    .option('--list', 'list the scenarios and exit')
    .addHelpText('after', `
Examples:
  caswarm sim --hosts=1000
  caswarm sim --scenario=malicious --hosts=500 --malicious=0.05 --plot=malicious.svg
  caswarm sim --scenario=churn --churn=0.2 --seed=7 --json
  caswarm sim --scenario=partition --hosts=2000 --size=32M --check
  caswarm sim --hosts=10000 --size=16M --check
  caswarm sim --hosts=5000 --size=500M --chunk-size=1M`)
    .action(async (opts: SimCliOptions) => {
      if (opts.list === true) {
        for (const s of Object.values(scenarios)) ctx.stdout.write(`${s.name.padEnd(15)} ${s.summary}\n`)
        return
      }
      const scenario = scenarios[opts.scenario]
      if (scenario == null) throw new InvalidArgumentError(`unknown scenario ${JSON.stringify(opts.scenario)} (one of: ${Object.keys(scenarios).join(', ')})`)
      const { report, headlines } = await runScenarioInThread(scenario.name, {
        hosts: integer('hosts', opts.hosts, 2),
        seed: integer('seed', opts.seed, 0),
        malicious: fraction('malicious', opts.malicious),
        churn: fraction('churn', opts.churn),
        updateBytes: size(opts.size),
        chunkSize: size(opts.chunkSize, 'chunk-size')
      }, ctx.signal)
      if (opts.plot != null) {
        const tmp = `${opts.plot}.tmp-${process.pid}`
        await writeFile(tmp, renderPlot(report))
        await rename(tmp, opts.plot)
      }
      if (opts.json === true) {
        const { completionTimes, ...rest } = report
        printJson(ctx, { ...rest, headlines })
      } else {
        const r = report
        const lines = [
          `scenario ${r.scenario}, seed ${r.seed}: ${r.hosts} hosts (${r.maliciousHosts} malicious), ${r.chunks} chunks, ${mb(r.uniqueBytes)} unique`,
          `completed     ${r.completedHosts}/${r.honestHosts} honest hosts, ${r.corruptedOutputs} corrupted outputs`,
          `origin        ${mb(r.originBytes)} (${r.originRatio}× unique)`,
          `peers         ${mb(r.peerBytes)} verified, ${mb(r.rejectedBytes)} rejected; ${r.bans} bans`,
          `completion    p50 ${r.completion.p50}s  p90 ${r.completion.p90}s  p99 ${r.completion.p99}s  max ${r.completion.max}s (simulated)`,
          `ideal         ${r.idealSeconds}s for one host alone; p99 is ${r.p99OverIdeal}×`,
          `wall          ${r.wallSeconds}s for ${r.events} events`,
          ...headlines.map(h => `${h.ok ? 'ok  ' : 'FAIL'}          ${h.claim}: ${h.detail}`)
        ]
        ctx.stdout.write(lines.join('\n') + '\n')
        if (opts.plot != null) ctx.stdout.write(`plot          ${opts.plot}\n`)
      }
      if (opts.check === true && headlines.some(h => !h.ok)) process.exitCode = 1
    })
}
