// Directory trees: make and extract of .catar and .caidx, caswarm against casync, on a real tree
// (default /usr/share, the issue's example: ~550 MB in ~50,000 entries on a Debian machine;
// `--tree=DIR` picks another. On a small tree such as /usr/share/doc, ~100 MB, both tools take
// well under a second and caswarm's ~0.1 s of Node start-up weighs in the ratio). Each operation runs `reps` times
// alternating the two tools, and the fastest run of each counts (this machine is shared and
// noisy). Both sides use --digest=sha256 and must produce identical archives and trees.
//   node --import tsx bench/run.ts --only=tree [--tree=/usr/share] [--reps=3]
import { spawn, execFileSync } from 'node:child_process'
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import type { BenchOptions, BenchRow, Measure } from './run.ts'
import { benchEnv, caswarmCli } from './cli.ts'

const ROOT = fileURLToPath(new URL('..', import.meta.url))

function argValue (name: string): string | undefined {
  const a = process.argv.find(x => x.startsWith(`--${name}=`))
  return a?.slice(name.length + 3)
}

interface Run extends Measure { stdout: string }

async function measure (cmd: string, args: string[]): Promise<Run> {
  execFileSync('sync') // no dirty pages left by the previous run
  const argv = existsSync('/usr/bin/time') ? ['/usr/bin/time', '-v', cmd, ...args] : [cmd, ...args]
  const started = performance.now()
  return await new Promise((resolve, reject) => {
    const child = spawn(argv[0]!, argv.slice(1), { env: benchEnv(undefined, { CASWARM_PEERS: 'off', TZ: 'UTC' }), stdio: ['ignore', 'pipe', 'pipe'] })
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (d: Buffer) => { stdout += d.toString() })
    child.stderr.on('data', (d: Buffer) => { stderr += d.toString() })
    child.on('error', reject)
    child.on('close', (code) => {
      const seconds = (performance.now() - started) / 1000
      if (code !== 0) { reject(new Error(`${cmd} ${args.join(' ')} exited ${String(code)}: ${stderr.slice(-2000)}`)); return }
      const m = /Maximum resident set size \(kbytes\): (\d+)/.exec(stderr)
      resolve({ seconds, peakRssMB: m != null ? Math.round(Number(m[1]) / 1024) : 0, stdout })
    })
  })
}

function duBytes (dir: string): number {
  let total = 0
  const walk = (d: string): void => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const p = join(d, e.name)
      if (e.isDirectory()) walk(p)
      else if (e.isFile()) total += statSync(p).size
    }
  }
  walk(dir)
  return total
}

export async function run (opts: BenchOptions): Promise<BenchRow[]> {
  const log = opts.log ?? ((l: string) => { process.stderr.write(`${l}\n`) })
  const tree = argValue('tree') ?? '/usr/share'
  const reps = Math.max(1, Number(argValue('reps') ?? 3))
  const dir = join(opts.workDir, 'tree')
  rmSync(dir, { recursive: true, force: true })
  mkdirSync(dir, { recursive: true })
  const p = (n: string): string => join(dir, n)
  const cli = await caswarmCli(log, opts.build !== false)
  benchEnv(log) // (says so in the log when it drops NODE_EXTRA_CA_CERTS)
  const caswarm = async (args: string[]): Promise<Run> => await measure(process.execPath, [...cli, ...args])
  const casync = async (args: string[]): Promise<Run> => await measure('casync', args)
  const mb = duBytes(tree) / 1e6
  log(`tree: ${tree} (${mb.toFixed(0)} MB of file data), best of ${reps}`)
  const rows: BenchRow[] = []

  /**
   * best of `reps` for each tool, alternating; run i writes names of its own (suffix -i) and
   * nothing is deleted until the end: on ext4 without a journal, creating files right after
   * thousands were deleted is several times slower (see bench/blob.ts)
   */
  const best = async (a: (i: number) => Promise<Run>, b: (i: number) => Promise<Run>): Promise<[Run, Run]> => {
    let ra: Run | undefined
    let rb: Run | undefined
    for (let i = 0; i < reps; i++) {
      const x = await a(i); if (ra == null || x.seconds < ra.seconds) ra = x
      const y = await b(i); if (rb == null || y.seconds < rb.seconds) rb = y
    }
    return [ra!, rb!]
  }
  const last = reps - 1

  // make .catar
  const [mc, mw] = await best(
    async (i) => await casync(['make', '--digest=sha256', p(`casync-${i}.catar`), tree]),
    async (i) => await caswarm(['make', '--digest=sha256', p(`caswarm-${i}.catar`), tree]))
  const same = readFileSync(p(`casync-${last}.catar`)).equals(readFileSync(p(`caswarm-${last}.catar`)))
  rows.push({ suite: 'tree', op: 'make .catar', mb, casync: mc, caswarm: mw, target: '≥ 1x', note: same ? 'archives byte-identical' : 'ARCHIVES DIFFER' })

  // make .caidx (a fresh store each time: every chunk compressed and written)
  const [ic, iw] = await best(
    async (i) => await casync(['make', '--digest=sha256', `--store=${p(`casync-${i}.castr`)}`, p(`casync-${i}.caidx`), tree]),
    async (i) => await caswarm(['make', '--digest=sha256', '--no-progress', '-s', p(`caswarm-${i}.castr`), p(`caswarm-${i}.caidx`), tree]))
  const sameIdx = readFileSync(p(`casync-${last}.caidx`)).equals(readFileSync(p(`caswarm-${last}.caidx`)))
  rows.push({ suite: 'tree', op: 'make .caidx', mb, casync: ic, caswarm: iw, target: '≥ 1x', note: sameIdx ? 'indexes byte-identical' : 'INDEXES DIFFER' })

  // extract .catar (into a fresh directory)
  const catar = p(`casync-${last}.catar`)
  const [xc, xw] = await best(
    async (i) => await casync(['extract', catar, p(`x-casync-${i}`)]),
    async (i) => await caswarm(['extract', '--no-progress', catar, p(`x-caswarm-${i}`)]))
  const d1 = (await casync(['digest', '--digest=sha256', p(`x-caswarm-${last}`)])).stdout
  const d0 = (await casync(['digest', '--digest=sha256', tree])).stdout
  rows.push({ suite: 'tree', op: 'extract .catar', mb, casync: xc, caswarm: xw, target: '≥ 1x', note: d1 === d0 ? 'extracted tree digests as the source' : 'EXTRACTED TREE DIFFERS' })

  // extract .caidx from the local store (no seeds: --seed-output=no for casync, a fresh output for both)
  const store = p(`casync-${last}.castr`)
  const caidx = p(`casync-${last}.caidx`)
  const [yc, yw] = await best(
    async (i) => await casync(['extract', '--seed-output=no', `--store=${store}`, caidx, p(`y-casync-${i}`)]),
    async (i) => await caswarm(['extract', '--no-progress', '--no-seed-output', '-s', store, caidx, p(`y-caswarm-${i}`)]))
  const d2 = (await casync(['digest', '--digest=sha256', p(`y-caswarm-${last}`)])).stdout
  rows.push({ suite: 'tree', op: 'extract .caidx', mb, casync: yc, caswarm: yw, target: '≥ 1x', note: d2 === d0 ? 'extracted tree digests as the source' : 'EXTRACTED TREE DIFFERS' })

  if (opts.keep !== true) rmSync(dir, { recursive: true, force: true })
  return rows
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const { printTable } = await import('./run.ts')
  printTable(await run({ workDir: join(ROOT, '.bench'), sizeMB: 0, build: !process.argv.includes('--no-build') }))
}
