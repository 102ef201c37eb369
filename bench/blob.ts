// Blob benchmark: casync and caswarm side by side on the same image, same flags
// (--digest=sha256, default chunk size 16K:64K:256K, zstd): make, extract from the store, and the
// extract of a modified version with the old one as seed. Every command is a child process timed
// by wall clock (caswarm with CASWARM_PEERS=off: no LAN swarm, no swarm cache, as casync); peak RSS comes from `/usr/bin/time -v` (Debian package `time`) when installed,
// else from polling /proc/<pid>/status (VmHWM). Every run writes stores and outputs of its own,
// and nothing is deleted until the end: on ext4 without a journal (these machines), creating files
// skips inodes freed in the last 60 to 360 s (ext4's recently_deleted), so a run that follows the
// deletion of a 6,000-file store measured ext4 rather than the tool (casync's make 3.5 against
// 5.2 s back to back).
//   node --import tsx bench/blob.ts [--size=512] [--reps=3] [--work-dir=DIR] [--keep]
import '../node/polyfills.ts'
import { execFileSync, spawn } from 'node:child_process'
import { createHash } from 'node:crypto'
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync } from 'node:fs'
import * as fs from 'node:fs/promises'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { decodeIndex } from '../protocol/index-file.ts'
import { dontNeed } from '../node/native-io.ts'
import type { BenchOptions, BenchRow, Measure } from './run.ts'
import { benchEnv, caswarmCli } from './cli.ts'

const ROOT = fileURLToPath(new URL('..', import.meta.url))
const GNU_TIME = '/usr/bin/time'

/** xorshift32, deterministic */
function rng (seed: number): () => number {
  let x = seed >>> 0 || 1
  return () => { x ^= x << 13; x >>>= 0; x ^= x >>> 17; x ^= x << 5; x >>>= 0; return x }
}

function randomBlock (size: number, next: () => number): Buffer {
  const b = Buffer.allocUnsafe(size)
  for (let i = 0; i + 4 <= size; i += 4) b.writeUInt32LE(next(), i)
  return b
}

const WORDS = ('lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod tempor incididunt ut labore et dolore ' +
  'magna aliqua kernel module driver config systemd unit service socket mount device package version release build ' +
  'error warning info debug trace request response header payload chunk index store seed cache peer origin').split(' ')

/** A text-like corpus (log/config style lines) that blocks are cut from. */
function corpus (next: () => number): Buffer {
  const lines: string[] = []
  let n = 0
  while (n < 1 << 20) {
    const words = 4 + next() % 12
    let line = `${(next() % 100000).toString().padStart(5, '0')}:`
    for (let w = 0; w < words; w++) line += ` ${WORDS[next() % WORDS.length]!}`
    line += next() % 3 === 0 ? ` 0x${next().toString(16)}\n` : '\n'
    lines.push(line)
    n += line.length
  }
  return Buffer.from(lines.join(''))
}

/**
 * A deterministic "disk image": 1 MiB blocks, about 45% random (compressed files, binaries),
 * 40% text-like (slices of a log/config corpus), 15% zeros (free space).
 */
export async function writeImage (file: string, sizeMB: number, seed = 1): Promise<void> {
  const next = rng(seed)
  const text = corpus(rng(seed + 1000))
  const handle = await fs.open(file, 'w')
  try {
    for (let i = 0; i < sizeMB; i++) {
      const kind = next() % 100
      let block: Buffer
      if (kind < 45) {
        block = randomBlock(1 << 20, next)
      } else if (kind < 85) {
        const parts: Buffer[] = []
        let n = 0
        while (n < 1 << 20) {
          const len = Math.min((1 << 20) - n, 200 + next() % 8000)
          const at = next() % (text.byteLength - len)
          parts.push(text.subarray(at, at + len))
          n += len
        }
        block = Buffer.concat(parts)
      } else {
        block = Buffer.alloc(1 << 20)
      }
      await handle.write(block)
    }
  } finally {
    await handle.close()
  }
}

/** v2: v1 with a change every ~8 MiB on average: an insertion (100 B–5 KiB) or an overwrite (4–64 KiB). */
export async function writeModified (v1: string, v2: string, seed = 2): Promise<{ changes: number }> {
  const next = rng(seed)
  const input = await fs.open(v1, 'r')
  const output = await fs.open(v2, 'w')
  let changes = 0
  try {
    const size = (await input.stat()).size
    let at = 0
    while (at < size) {
      const gap = Math.min(size - at, (4 << 20) + next() % (8 << 20))
      const buf = Buffer.allocUnsafe(gap)
      await input.read(buf, 0, gap, at)
      at += gap
      if (at >= size) { await output.write(buf); break }
      if (next() % 2 === 0) {
        await output.write(buf)
        await output.write(randomBlock(100 + next() % 5000, next))
      } else {
        const len = Math.min(gap, 4096 + next() % 61440)
        randomBlock(len, next).copy(buf, gap - len)
        await output.write(buf)
      }
      changes++
    }
  } finally {
    await input.close()
    await output.close()
  }
  return { changes }
}

interface Run extends Measure { stdout: string }

/** Runs a command, timing it and measuring its peak RSS. */
async function measure (cmd: string, args: string[], env: NodeJS.ProcessEnv = process.env): Promise<Run> {
  // start every measured run with no dirty pages left by the previous one (either tool's
  // writeback would otherwise be charged to whichever runs next)
  execFileSync('sync')
  const useTime = existsSync(GNU_TIME)
  const argv = useTime ? [GNU_TIME, '-v', cmd, ...args] : [cmd, ...args]
  const started = performance.now()
  return await new Promise((resolve, reject) => {
    const child = spawn(argv[0]!, argv.slice(1), { env, stdio: ['ignore', 'pipe', 'pipe'] })
    let stdout = ''
    let stderr = ''
    let hwm = 0
    const poll = useTime
      ? undefined
      : setInterval(() => {
        try {
          const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${child.pid!}/status`, 'utf8'))
          if (m != null) hwm = Math.max(hwm, Number(m[1]))
        } catch {}
      }, 20)
    child.stdout.on('data', (d: Buffer) => { stdout += d.toString() })
    child.stderr.on('data', (d: Buffer) => { stderr += d.toString() })
    child.on('error', reject)
    child.on('close', (code) => {
      if (poll != null) clearInterval(poll)
      const seconds = (performance.now() - started) / 1000
      if (code !== 0) { reject(new Error(`${cmd} ${args.join(' ')} exited ${String(code)}: ${stderr.slice(-2000)}`)); return }
      const m = /Maximum resident set size \(kbytes\): (\d+)/.exec(stderr)
      if (m != null) hwm = Number(m[1])
      resolve({ seconds, peakRssMB: Math.round(hwm / 1024), stdout })
    })
  })
}

async function sha256File (file: string): Promise<string> {
  const h = createHash('sha256')
  for await (const d of (await import('node:fs')).createReadStream(file, { highWaterMark: 1 << 20 })) h.update(d as Buffer)
  return h.digest('hex')
}

function argValue (name: string): string | undefined {
  const a = process.argv.find(x => x.startsWith(`--${name}=`))
  return a?.slice(name.length + 3)
}

/** Every regular file under `dir` (a chunk store). */
function filesUnder (dir: string): string[] {
  const out: string[] = []
  for (const e of readdirSync(dir, { withFileTypes: true, recursive: true })) if (e.isFile()) out.push(join(e.parentPath, e.name))
  return out
}

/** The bench module shape bench/run.ts calls (see there). */
export async function run (opts: BenchOptions): Promise<BenchRow[]> {
  const log = opts.log ?? ((line: string) => { process.stderr.write(`${line}\n`) })
  const sizeMB = Math.max(1, opts.sizeMB)
  const reps = Math.max(1, Number(argValue('reps') ?? 3))
  const dir = join(opts.workDir, 'blob')
  rmSync(dir, { recursive: true, force: true })
  mkdirSync(dir, { recursive: true })
  const p = (name: string): string => join(dir, name)
  const cli = await caswarmCli(log, opts.build !== false)
  const caswarm = async (args: string[]): Promise<Run> => await measure(process.execPath, [...cli, ...args, '--no-progress'], benchEnv(log, { CASWARM_PEERS: 'off' }))
  const casync = async (args: string[]): Promise<Run> => await measure('casync', args)
  const bytes = sizeMB * (1 << 20)
  const mb = bytes / 1e6
  const rows: BenchRow[] = []
  const row = (op: string, a: Measure | undefined, b: Measure | undefined, target: string, note = ''): void => {
    rows.push({ suite: 'blob', op, mb, casync: a, caswarm: b, target, note })
  }
  const best = (runs: Run[]): Run => runs.reduce((x, y) => (y.seconds < x.seconds ? y : x))
  const spread = (runs: Run[]): string => runs.map(r => r.seconds.toFixed(2)).join('/')
  /**
   * Runs each tool `reps` times, alternating (this machine is shared and noisy), run `i` writing
   * names of its own; `before` runs before every run (dropping the store from the page cache).
   * The order changes from one round to the next, so that no command always follows the same
   * one (on these VMs a run after one that freed much memory pays more for fresh pages: a seeded
   * extract right after an unseeded one took 1.5-2.2 s of system time, after another seeded one
   * 0.6-0.9 s).
   * `also`: a second caswarm command run in the same rotation (what `w` is compared with), so
   * that the machine's drift from one minute to the next does not decide which is faster.
   */
  const alternate = async (c: ((i: number) => Promise<Run>) | undefined, w: (i: number) => Promise<Run>, before: () => void = () => {}, also?: (i: number) => Promise<Run>): Promise<{ c?: Run, w: Run, also?: Run, note: string, alsoNote: string }> => {
    const cs: Run[] = []
    const ws: Run[] = []
    const as: Run[] = []
    const turn: Array<(i: number) => Promise<void>> = []
    if (c != null) turn.push(async (i) => { before(); cs.push(await c(i)) })
    if (also != null) turn.push(async (i) => { before(); as.push(await also(i)) })
    turn.push(async (i) => { before(); ws.push(await w(i)) })
    // rounds in the orders 0 1 2, 2 0 1, 1 0 2 (and again): each command comes after each
    // other one, and after itself, at least once in three rounds
    const ids = turn.map((_, k) => k)
    const orders = [ids, [ids.length - 1, ...ids.slice(0, -1)], [...ids.slice(0, 2).reverse(), ...ids.slice(2)]]
    for (let i = 0; i < reps; i++) {
      for (const k of orders[i % orders.length]!) await turn[k]!(i)
    }
    return {
      c: cs.length > 0 ? best(cs) : undefined,
      w: best(ws),
      also: as.length > 0 ? best(as) : undefined,
      note: `best of ${reps}; runs: casync ${cs.length > 0 ? spread(cs) : '-'} s, caswarm ${spread(ws)} s`,
      alsoNote: `best of ${reps}, in turn with the runs above; runs: caswarm ${spread(as)} s`
    }
  }
  const last = reps - 1

  log(`blob: writing a ${sizeMB} MiB image and a modified copy in ${dir}`)
  await writeImage(p('v1.img'), sizeMB)
  const { changes } = await writeModified(p('v1.img'), p('v2.img'))
  const v2sum = await sha256File(p('v2.img'))
  const flags = ['--digest=sha256']
  // "on disk": the store's chunk files (and the seed) dropped from the page cache before each run,
  // as for an image extracted a while after its store was written (the machines here page out
  // files unused for ~30 s); "cached": the store read from memory
  let evictable: string[] = []
  const evict = (): void => { dontNeed(evictable) }

  try {
    log(`blob: make v1 into an empty store (${reps}x each, alternating)`)
    const make = await alternate(
      async (i) => await casync(['make', ...flags, `--store=${p(`c${i}.castr`)}`, p('v1-c.caibx'), p('v1.img')]),
      async (i) => await caswarm(['make', ...flags, `--store=${p(`w${i}.castr`)}`, p('v1-w.caibx'), p('v1.img')]))
    const same = readFileSync(p('v1-c.caibx')).equals(readFileSync(p('v1-w.caibx')))
    if (!same) throw new Error('caswarm\'s v1 index differs from casync\'s')
    row('make (empty store)', make.c, make.w, '>= 2x', `indexes byte-identical; ${make.note}`)
    renameSync(p(`c${last}.castr`), p('c.castr'))
    renameSync(p(`w${last}.castr`), p('w.castr'))

    log('blob: make v2 into the stores that hold v1')
    const make2C = await casync(['make', ...flags, `--store=${p('c.castr')}`, p('v2-c.caibx'), p('v2.img')])
    const make2W = await caswarm(['make', ...flags, `--store=${p('w.castr')}`, p('v2-w.caibx'), p('v2.img')])
    if (!readFileSync(p('v2-c.caibx')).equals(readFileSync(p('v2-w.caibx')))) throw new Error('caswarm\'s v2 index differs from casync\'s')
    row('make v2 (store has v1)', make2C, make2W, '', `${changes} changes; one run each`)

    evictable = [...filesUnder(p('c.castr')), ...filesUnder(p('w.castr'))]
    for (const [label, before] of [['store on disk', evict], ['store cached', () => {}]] as const) {
      log(`blob: extract v1 from the store (${label})`)
      const tag = label.replace(/ /g, '-')
      const ex = await alternate(
        async (i) => await casync(['extract', `--store=${p('c.castr')}`, p('v1-c.caibx'), p(`x1-c-${tag}-${i}.img`)]),
        async (i) => await caswarm(['extract', `--store=${p('w.castr')}`, p('v1-w.caibx'), p(`x1-w-${tag}-${i}.img`)]),
        before)
      for (const f of [`x1-c-${tag}-${last}.img`, `x1-w-${tag}-${last}.img`]) if ((await fs.stat(p(f))).size !== bytes) throw new Error(`${f} has the wrong size`)
      row(`extract (${label})`, ex.c, ex.w, '>= 1.5x', ex.note)
    }

    const index1 = decodeIndex(readFileSync(p('v1-c.caibx')))
    const index2 = decodeIndex(readFileSync(p('v2-c.caibx')))
    const inV1 = new Set([...index1.chunks].map(c => c.id.toString()))
    const fromV1 = [...index2.chunks].filter(c => inV1.has(c.id.toString())).length
    for (const [label, before] of [['seed and store on disk', () => { evict(); dontNeed([p('v1.img')]) }], ['cached', () => {}]] as const) {
      log(`blob: extract v2 with v1 as seed, and without (${label})`)
      const tag = label.replace(/ /g, '-')
      // casync seeded, caswarm unseeded, caswarm seeded, in turn (the order turning round)
      const seeded = await alternate(
        async (i) => await casync(['extract', `--store=${p('c.castr')}`, `--seed=${p('v1.img')}`, p('v2-c.caibx'), p(`x2-c-${tag}-${i}.img`)]),
        async (i) => await caswarm(['extract', '--json', `--store=${p('w.castr')}`, `--seed=${p('v1.img')}`, p('v2-w.caibx'), p(`x2-w-${tag}-${i}.img`)]),
        before,
        async (i) => await caswarm(['extract', '--json', `--store=${p('w.castr')}`, p('v2-w.caibx'), p(`x2n-w-${tag}-${i}.img`)]))
      const unseeded = { w: seeded.also!, note: seeded.alsoNote }
      for (const f of [`x2-c-${tag}-${last}.img`, `x2-w-${tag}-${last}.img`, `x2n-w-${tag}-${last}.img`]) if (await sha256File(p(f)) !== v2sum) throw new Error(`${f} differs from v2`)
      const stats = JSON.parse(seeded.w.stdout)
      const seedChunks = Object.entries(stats.sources as Record<string, { chunks: number }>).filter(([k]) => k.startsWith('seed')).reduce((n, [, s]) => n + s.chunks, 0)
      const zeroChunks = (stats.sources as Record<string, { chunks: number }>).zeros?.chunks ?? 0
      const faster = seeded.w.seconds < unseeded.w.seconds ? 'faster' : 'NOT faster'
      row(`extract v2, v1 as seed (${label})`, seeded.c, seeded.w, '>= 3x; < own unseeded',
        `caswarm: ${seedChunks}/${index2.chunks.length} chunks from the seed, ${zeroChunks} of runs of zeros from none (${fromV1} of v2's chunks are in v1); ${faster} than its own unseeded extract (${unseeded.w.seconds.toFixed(2)} s); ${seeded.note}`)
      row(`extract v2, no seed (${label})`, undefined, unseeded.w, '', unseeded.note)
    }
  } finally {
    if (opts.keep !== true) rmSync(dir, { recursive: true, force: true })
  }
  return rows
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const { printTable } = await import('./run.ts')
  const workDir = argValue('work-dir') ?? join(fileURLToPath(new URL('..', import.meta.url)), '.bench')
  const rows = await run({ workDir, sizeMB: Number(argValue('size') ?? 512), keep: process.argv.includes('--keep'), build: !process.argv.includes('--no-build') })
  printTable(rows)
}
