// `npm run bench`: caswarm against casync, side by side, on this machine.
//   node --import tsx bench/run.ts [--size=512] [--only=blob,tree,http] [--work-dir=DIR] [--keep] [--no-build] [--json]
//
// Bench modules are bench/<name>.ts files; this entry runs bench/blob.ts and, when they exist,
// bench/tree.ts and bench/http.ts (imported dynamically). The shape a module exports:
//
//   export async function run (opts: BenchOptions): Promise<BenchRow[]>
//
// BenchOptions: { workDir: string (a scratch directory the module may fill and must clean up),
// sizeMB: number (the image size asked for; a module may cap it), keep?: boolean, build?: boolean
// (rebuild dist/ and measure the compiled CLI; default true), log?: (line) => void }.
// BenchRow: one operation measured for both tools: { suite, op, mb (payload in 10^6 bytes, for MB/s),
// casync?: Measure, caswarm?: Measure, target?: string, note?: string }, Measure: { seconds (wall
// clock of the whole process), peakRssMB (0: not measured) }. The table prints time ratios
// casync/caswarm (> 1 means caswarm is faster).
import '../node/polyfills.ts'
import { existsSync, mkdirSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'

export interface Measure {
  /** wall-clock seconds of the whole process */
  seconds: number
  /** peak resident set size of the process, MiB */
  peakRssMB: number
}

export interface BenchOptions {
  workDir: string
  sizeMB: number
  keep?: boolean
  /** rebuild dist/ before measuring the compiled CLI. @default true */
  build?: boolean
  log?: (line: string) => void
}

export interface BenchRow {
  suite: string
  op: string
  /** payload size in MB (10^6 bytes), for MB/s */
  mb: number
  casync?: Measure
  caswarm?: Measure
  target?: string
  note?: string
}

const ROOT = fileURLToPath(new URL('..', import.meta.url))
const MODULES = ['blob', 'tree', 'http']

function pad (s: string, n: number, right = false): string {
  return right ? s.padStart(n) : s.padEnd(n)
}

/** Prints rows as a fixed-width table on stdout, notes below. */
export function printTable (rows: BenchRow[]): void {
  const head = ['suite', 'operation', 'MB', 'casync s', 'caswarm s', 'casync MB/s', 'caswarm MB/s', 'ratio', 'casync RSS', 'caswarm RSS', 'target']
  const body = rows.map(r => [
    r.suite, r.op, r.mb.toFixed(0),
    r.casync?.seconds.toFixed(2) ?? '-', r.caswarm?.seconds.toFixed(2) ?? '-',
    r.casync != null ? (r.mb / r.casync.seconds).toFixed(0) : '-',
    r.caswarm != null ? (r.mb / r.caswarm.seconds).toFixed(0) : '-',
    r.casync != null && r.caswarm != null ? `${(r.casync.seconds / r.caswarm.seconds).toFixed(2)}x` : '-',
    r.casync != null && r.casync.peakRssMB > 0 ? `${r.casync.peakRssMB} MB` : '-',
    r.caswarm != null && r.caswarm.peakRssMB > 0 ? `${r.caswarm.peakRssMB} MB` : '-',
    r.target ?? ''
  ])
  const widths = head.map((h, i) => Math.max(h.length, ...body.map(b => b[i]!.length)))
  const line = (cells: string[]): string => cells.map((c, i) => pad(c, widths[i]!, i >= 2 && i <= 9)).join('  ')
  const out = [line(head), widths.map(w => '-'.repeat(w)).join('  '), ...body.map(line)]
  const notes = rows.filter(r => r.note != null && r.note !== '').map(r => `  ${r.suite}/${r.op}: ${r.note!}`)
  process.stdout.write(`${out.join('\n')}\n${notes.length > 0 ? `notes:\n${notes.join('\n')}\n` : ''}`)
}

function argValue (name: string): string | undefined {
  const a = process.argv.find(x => x.startsWith(`--${name}=`))
  return a?.slice(name.length + 3)
}

async function main (): Promise<void> {
  const sizeMB = Number(argValue('size') ?? 512)
  const only = argValue('only')?.split(',')
  const workDir = argValue('work-dir') ?? join(ROOT, '.bench')
  mkdirSync(workDir, { recursive: true })
  const log = (line: string): void => { process.stderr.write(`${line}\n`) }
  const rows: BenchRow[] = []
  for (const name of MODULES) {
    if (only != null && !only.includes(name)) continue
    const file = join(ROOT, 'bench', `${name}.ts`)
    if (!existsSync(file)) continue
    const mod = await import(file) as Record<string, unknown>
    try {
      if (typeof mod.run !== 'function') { log(`bench/${name}.ts exports no run(); skipped`); continue }
      rows.push(...await (mod.run as (o: BenchOptions) => Promise<BenchRow[]>)({ workDir, sizeMB, keep: process.argv.includes('--keep'), build: !process.argv.includes('--no-build'), log }))
    } catch (err: any) {
      log(`bench/${name}.ts failed: ${String(err?.stack ?? err)}`)
      process.exitCode = 1
    }
  }
  if (process.argv.includes('--json')) {
    process.stdout.write(`${JSON.stringify({ rows }, null, 2)}\n`)
    return
  }
  printTable(rows)
}

if (process.argv[1] === fileURLToPath(import.meta.url)) await main()
