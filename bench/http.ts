// HTTP origin benchmark: a cold extract over loopback HTTP from a real nginx, caswarm against
// casync (whose casync-http helper fetches one chunk at a time), and a seeded extract that must ask
// nginx for exactly the chunks the seed lacks (counted from nginx's access log).
//   node --import tsx bench/http.ts [--size-mb=128] [--runs=3] [--rtt-ms=2,10] [--no-build]
import '../node/polyfills.ts'
import { execFile } from 'node:child_process'
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { decodeIndex } from '../protocol/index-file.ts'
import { readIndex } from '../node/index-io.ts'
import { HttpStore } from '../node/store/http-store.ts'
import { pseudoRandom } from '../test/helpers/fixtures.ts'
import { startNginx } from '../test/helpers/nginx.ts'
import { benchEnv, caswarmCli } from './cli.ts'
import { startDelayProxy } from './delay-proxy.ts'
import type { BenchOptions, BenchRow, Measure } from './run.ts'


export interface HttpBenchOptions {
  /** size of the image (MB). @default 128 */
  sizeMB?: number
  /** timed runs of each extract; the median is reported. @default 3 */
  runs?: number
  log?: (line: string) => void
  /** where the images, store and outputs go. @default /dev/shm when there is one */
  dir?: string
  /** rebuild dist/ first and measure the compiled CLI. @default true */
  build?: boolean
  /**
   * also measure through a delay proxy with each of these round-trip times (ms): on bare loopback
   * a request costs almost nothing, so one-at-a-time fetching hardly shows. @default [2, 10]
   */
  rttMs?: number[]
}

export interface HttpBenchResult {
  name: 'http'
  sizeBytes: number
  chunks: number
  /** median wall-clock seconds of `caswarm extract` (process start to exit) */
  caswarmSeconds: number
  /** median of the time caswarm itself reports (without process start-up) */
  caswarmExtractSeconds: number
  casyncSeconds: number
  /** casync time / caswarm time (median wall clock) */
  speedup: number
  /** best (least disturbed) runs: wall-clock seconds of each, and their ratio */
  best: { caswarmSeconds: number, casyncSeconds: number, speedup: number }
  caswarmMBps: number
  casyncMBps: number
  /** the HttpStore alone: every chunk fetched and verified, 16 in flight */
  storeRequestsPerSecond: number
  storeMBps: number
  /** the same cold extracts through a proxy that delays every packet (`rttMs` round trip) */
  latency: Array<{ rttMs: number, caswarmSeconds: number, casyncSeconds: number, speedup: number, casyncTmpfsSeconds: number, speedupTmpfs: number }>
  /** casync with TMPDIR in memory (its chunk hand-over directory costs next to nothing): median s, and casync-in-memory / caswarm */
  casyncTmpfsSeconds: number
  speedupTmpfs: number
  seeded: { chunksLacking: number, chunkRequests: number, distinctRequested: number, exact: boolean, otherRequests: string[] }
}

function timed (cmd: string, args: string[], env: Record<string, string> = {}): Promise<{ seconds: number, stdout: string }> {
  const t = performance.now()
  return new Promise((resolve, reject) => {
    // no LAN peers and no swarm cache: a cold extract from the origin alone
    execFile(cmd, args, { maxBuffer: 1 << 26, env: benchEnv(undefined, { CASWARM_PEERS: 'off', ...env }) }, (err, stdout, stderr) => {
      if (err != null) { reject(new Error(`${cmd} ${args.join(' ')} failed: ${stderr}`)); return }
      resolve({ seconds: (performance.now() - t) / 1000, stdout })
    })
  })
}

function median (xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b)
  return s[Math.floor(s.length / 2)]!
}

export async function benchHttp (options: HttpBenchOptions = {}): Promise<HttpBenchResult> {
  const log = options.log ?? ((line: string) => { process.stderr.write(line + '\n') })
  const size = Math.round((options.sizeMB ?? 128) * 1e6)
  const runs = options.runs ?? 3
  const rtts = options.rttMs ?? [2, 10]
  const cli = await caswarmCli(log, options.build !== false)
  benchEnv(log) // (says so in the log when it drops NODE_EXTRA_CA_CERTS)
  // in RAM when possible: the disk's writeback must not be what is measured
  const tmp = (() => {
    const base = options.dir ?? (existsSync('/dev/shm') ? '/dev/shm' : tmpdir())
    const path = mkdtempSync(join(base, 'caswarm-bench-http-'))
    return { path, cleanup: () => { rmSync(path, { recursive: true, force: true }) } }
  })()
  const root = join(tmp.path, 'www')
  mkdirSync(root)
  const nginx = await startNginx(root, join(tmp.path, 'nginx'))
  try {
    const v1 = join(tmp.path, 'v1.img')
    const v2 = join(tmp.path, 'v2.img')
    const a = pseudoRandom(size, 5)
    writeFileSync(v1, a)
    // v2: v1 with 20 small edits spread over the image
    const b = Buffer.from(a)
    for (let i = 0; i < 20; i++) pseudoRandom(300, 100 + i).copy(b, Math.floor((i + 0.5) * size / 20))
    writeFileSync(v2, b)
    await timed(process.execPath, [...cli, 'make', '--no-progress', join(root, 'v1.caibx'), v1])
    await timed(process.execPath, [...cli, 'make', '--no-progress', join(root, 'v2.caibx'), v2])
    const index = await readIndex(join(root, 'v1.caibx'))
    log(`http bench: ${(size / 1e6).toFixed(0)} MB, ${index.chunks.length} chunks, nginx at ${nginx.url}`)

    // the store alone
    const store = new HttpStore(`${nginx.url}default.castr`)
    const t0 = performance.now()
    let next = 0
    await Promise.all(Array.from({ length: 16 }, async () => {
      while (next < index.chunks.length) { const c = index.chunks.at(next++); await store.get(c.id, { size: c.size }) }
    }))
    const storeSeconds = (performance.now() - t0) / 1000
    await store.close()
    log(`  HttpStore alone: ${(index.chunks.length / storeSeconds).toFixed(0)} chunks/s, ${(size / 1e6 / storeSeconds).toFixed(0)} MB/s`)

    const out = join(tmp.path, 'out.img')
    // both tools, alternating, against `base` (nginx itself, or the delay proxy in front of it)
    // casync's HTTP helper hands every chunk over through a directory of files and symlinks in
    // $TMPDIR (default /var/tmp, here ext4 without a journal, where creating files just after
    // thousands were deleted, as by casync's previous run, is several times slower): measured
    // as it comes, and with TMPDIR in memory, where that directory costs next to nothing
    const casyncTmp = join(tmp.path, 'casync-tmp')
    mkdirSync(casyncTmp)
    const cold = async (base: string, label: string): Promise<{ cw: number[], cwInner: number[], ca: number[], caMem: number[] }> => {
      const cw: number[] = []; const cwInner: number[] = []; const ca: number[] = []; const caMem: number[] = []
      for (let r = 0; r < runs; r++) {
        rmSync(out, { force: true })
        const x = await timed(process.execPath, [...cli, 'extract', '--no-progress', '--no-seed-output', '--json', `${base}v1.caibx`, out])
        cw.push(x.seconds)
        cwInner.push(JSON.parse(x.stdout).seconds)
        if (!readFileSync(out).equals(a)) throw new Error('caswarm extract produced wrong bytes')
        const casyncArgs = ['extract', '--seed-output=no', `--store=${base}default.castr`, `${base}v1.caibx`, out]
        rmSync(out, { force: true })
        const y = await timed('casync', casyncArgs)
        ca.push(y.seconds)
        if (!readFileSync(out).equals(a)) throw new Error('casync extract produced wrong bytes')
        rmSync(out, { force: true })
        const z = await timed('casync', casyncArgs, { TMPDIR: casyncTmp })
        caMem.push(z.seconds)
        if (!readFileSync(out).equals(a)) throw new Error('casync extract produced wrong bytes')
        log(`  ${label} run ${r + 1}: caswarm ${x.seconds.toFixed(2)} s (extract ${cwInner[r]!.toFixed(2)} s), casync ${y.seconds.toFixed(2)} s, casync with TMPDIR in memory ${z.seconds.toFixed(2)} s`)
      }
      rmSync(out, { force: true })
      return { cw, cwInner, ca, caMem }
    }
    const { cw, cwInner, ca, caMem } = await cold(nginx.url, 'loopback')
    const latency: HttpBenchResult['latency'] = []
    for (const rttMs of rtts.filter(r => r > 0)) {
      const proxy = await startDelayProxy(Number(new URL(nginx.url).port), rttMs / 2)
      try {
        const d = await cold(proxy.url, `RTT ${rttMs} ms`)
        const l = { rttMs, caswarmSeconds: median(d.cw), casyncSeconds: median(d.ca), speedup: median(d.ca) / median(d.cw), casyncTmpfsSeconds: median(d.caMem), speedupTmpfs: median(d.caMem) / median(d.cw) }
        latency.push(l)
        log(`  cold extract with ${rttMs} ms RTT (median of ${runs}): caswarm ${l.caswarmSeconds.toFixed(2)} s, casync ${l.casyncSeconds.toFixed(2)} s: ${l.speedup.toFixed(2)}x; casync with TMPDIR in memory ${l.casyncTmpfsSeconds.toFixed(2)} s: ${l.speedupTmpfs.toFixed(2)}x`)
      } finally { await proxy.close() }
    }

    // seeded: v2 with v1 as seed must ask for exactly the chunks v1 lacks
    const before = nginx.requests().length
    await timed(process.execPath, [...cli, 'extract', '--no-progress', `--seed=${v1}`, `${nginx.url}v2.caibx`, out])
    if (!readFileSync(out).equals(b)) throw new Error('seeded caswarm extract produced wrong bytes')
    const asked = nginx.requests().slice(before)
    const i1 = decodeIndex(readFileSync(join(root, 'v1.caibx')))
    const i2 = decodeIndex(readFileSync(join(root, 'v2.caibx')))
    const inSeed = new Set([...i1.chunks].map(c => c.id.toString()))
    const lacking = [...new Set([...i2.chunks].map(c => c.id.toString()).filter(id => !inSeed.has(id)))].sort()
    const got = asked.filter(l => l.includes('.cacnk')).map(l => /([0-9a-f]{64})\.cacnk/.exec(l)?.[1] ?? l).sort()
    const seeded = {
      chunksLacking: lacking.length,
      chunkRequests: got.length,
      distinctRequested: new Set(got).size,
      exact: got.length === lacking.length && got.every((id, i) => id === lacking[i]),
      otherRequests: asked.filter(l => !l.includes('.cacnk'))
    }
    log(`  seeded extract: ${seeded.chunkRequests} chunk requests for ${seeded.chunksLacking} chunks the seed lacks (exact: ${seeded.exact}); other requests: ${seeded.otherRequests.join(', ')}`)

    const caswarmSeconds = median(cw)
    const casyncSeconds = median(ca)
    const result: HttpBenchResult = {
      name: 'http',
      sizeBytes: size,
      chunks: index.chunks.length,
      caswarmSeconds,
      caswarmExtractSeconds: median(cwInner),
      casyncSeconds,
      speedup: casyncSeconds / caswarmSeconds,
      casyncTmpfsSeconds: median(caMem),
      speedupTmpfs: median(caMem) / caswarmSeconds,
      best: { caswarmSeconds: Math.min(...cw), casyncSeconds: Math.min(...ca), speedup: Math.min(...ca) / Math.min(...cw) },
      caswarmMBps: size / 1e6 / caswarmSeconds,
      casyncMBps: size / 1e6 / casyncSeconds,
      storeRequestsPerSecond: index.chunks.length / storeSeconds,
      storeMBps: size / 1e6 / storeSeconds,
      latency,
      seeded
    }
    log(`  cold extract over HTTP (median of ${runs}): caswarm ${caswarmSeconds.toFixed(2)} s (${result.caswarmMBps.toFixed(0)} MB/s), casync ${casyncSeconds.toFixed(2)} s (${result.casyncMBps.toFixed(0)} MB/s): ${result.speedup.toFixed(2)}x; casync with TMPDIR in memory ${result.casyncTmpfsSeconds.toFixed(2)} s: ${result.speedupTmpfs.toFixed(2)}x; best runs: ${result.best.caswarmSeconds.toFixed(2)} s vs ${result.best.casyncSeconds.toFixed(2)} s: ${result.best.speedup.toFixed(2)}x`)
    return result
  } finally {
    await nginx.stop()
    tmp.cleanup()
  }
}

/**
 * The bench module shape bench/run.ts calls: the cold extracts as table rows (medians; no RSS),
 * the seeded extract's request count in a note. The image is 128 MB whatever --size says: casync
 * fetches it one chunk at a time, several times over.
 */
export async function run (opts: BenchOptions): Promise<BenchRow[]> {
  const r = await benchHttp({ log: opts.log, build: opts.build })
  const mb = r.sizeBytes / 1e6
  const m = (seconds: number): Measure => ({ seconds, peakRssMB: 0 })
  const target = '>= 5x'
  const rows: BenchRow[] = [
    { suite: 'http', op: 'cold extract, loopback', mb, casync: m(r.casyncSeconds), caswarm: m(r.caswarmSeconds), target, note: `median of runs; seeded extract: ${r.seeded.chunkRequests} chunk requests for the ${r.seeded.chunksLacking} chunks the seed lacks (exact: ${String(r.seeded.exact)})` },
    { suite: 'http', op: 'cold extract, loopback, casync TMPDIR in RAM', mb, casync: m(r.casyncTmpfsSeconds), caswarm: m(r.caswarmSeconds), target }
  ]
  for (const l of r.latency) {
    rows.push({ suite: 'http', op: `cold extract, ${l.rttMs} ms RTT`, mb, casync: m(l.casyncSeconds), caswarm: m(l.caswarmSeconds), target })
    rows.push({ suite: 'http', op: `cold extract, ${l.rttMs} ms RTT, casync TMPDIR in RAM`, mb, casync: m(l.casyncTmpfsSeconds), caswarm: m(l.caswarmSeconds), target })
  }
  return rows
}

if (process.argv[1] != null && fileURLToPath(import.meta.url) === process.argv[1]) {
  const arg = (name: string): string | undefined => process.argv.find(a => a.startsWith(`--${name}=`))?.split('=')[1]
  const result = await benchHttp({ sizeMB: arg('size-mb') != null ? Number(arg('size-mb')) : undefined, runs: arg('runs') != null ? Number(arg('runs')) : undefined, rttMs: arg('rtt-ms') != null ? arg('rtt-ms')!.split(',').map(Number) : undefined, build: !process.argv.includes('--no-build') })
  process.stdout.write(JSON.stringify(result, null, 2) + '\n')
}
