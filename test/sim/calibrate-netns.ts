// Calibration: one small rollout run twice, on a real LAN of network namespaces (the swarm's
// netns harness: real `caswarm extract` processes over libp2p/mDNS, an nginx origin, links shaped
// with tc) and in the simulator with the same links, so their results can be put side by side.
// Needs root, ip, tc and nginx. Run: node --import tsx test/sim/calibrate-netns.ts [hosts] [MiB] [Mbit/s]
import '../helpers/setup.ts'
import { execFileSync } from 'node:child_process'
import { createReadStream, mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { writeIndexFile } from '../../node/index-io.ts'
import { makeIndex } from '../../node/make.ts'
import { LocalStore } from '../../node/store/local-store.ts'
import { runScenario } from '../../sim/run.ts'
import { scenarios } from '../../sim/scenarios/index.ts'
import { pseudoRandom } from '../helpers/fixtures.ts'
import { createLan, output, type LanHost } from '../netns/lan.ts'

const HOSTS = Number(process.argv[2] ?? 5)
const MIB = Number(process.argv[3] ?? 16)
const MBIT = Number(process.argv[4] ?? 100)
const ROOT = join(import.meta.dirname, '..', '..')
const CLI = join(ROOT, 'bin', 'caswarm.js')
const rate = MBIT * 1e6 / 8

/** Shapes a host's link both ways: its eth0 egress (up), and the bridge side of its veth (down). */
function shape (h: LanHost, index: number): void {
  const tag = h.ns.replace(/^csw/, '').replace(/h\d+$/, '')
  const bridgeNs = `csw${tag}br`
  const tbf = ['root', 'tbf', 'rate', `${MBIT}mbit`, 'burst', '256kb', 'latency', '50ms']
  execFileSync('ip', ['netns', 'exec', h.ns, 'tc', 'qdisc', 'add', 'dev', 'eth0', ...tbf])
  execFileSync('ip', ['netns', 'exec', bridgeNs, 'tc', 'qdisc', 'add', 'dev', `c${tag}${index}b`, ...tbf])
}

const dir = join('/tmp', `caswarm-calibrate-${process.pid}`)
mkdirSync(join(dir, 'www'), { recursive: true })
const v2 = pseudoRandom(MIB << 20, 77)
writeFileSync(join(dir, 'v2.img'), v2)
const store = new LocalStore(join(dir, 'www', 'store'))
const made = await makeIndex(createReadStream(join(dir, 'v2.img')), store)
await writeIndexFile(join(dir, 'v2.caibx'), made.index)
const distinct = new Set([...made.index.chunks].map(c => c.id.toString())).size
const uniqueBytes = [...new Map([...made.index.chunks].map(c => [c.id.toString(), c.size])).values()].reduce((a, b) => a + b, 0)

const lan = createLan(['origin', ...Array.from({ length: HOSTS }, (_, i) => `host${i}`)])
try {
  lan.hosts.forEach((h, i) => { shape(h, i) })
  const [origin, ...hosts] = lan.hosts as [LanHost, ...LanHost[]]
  const ng = join(dir, 'nginx')
  mkdirSync(join(ng, 'logs'), { recursive: true })
  mkdirSync(join(ng, 'tmp'), { recursive: true })
  writeFileSync(join(ng, 'nginx.conf'), `user root; worker_processes 1; pid ${join(ng, 'nginx.pid')}; error_log ${join(ng, 'logs', 'error.log')} warn;
events { worker_connections 1024; }
http { access_log ${join(ng, 'logs', 'access.log')}; client_body_temp_path ${join(ng, 'tmp', 'b')}; proxy_temp_path ${join(ng, 'tmp', 'p')};
  fastcgi_temp_path ${join(ng, 'tmp', 'f')}; uwsgi_temp_path ${join(ng, 'tmp', 'u')}; scgi_temp_path ${join(ng, 'tmp', 's')};
  default_type application/octet-stream; sendfile on; keepalive_requests 1000000;
  server { listen ${origin.ip}:8080; root ${join(dir, 'www')}; } }
`)
  const nginx = lan.spawn(origin, '/usr/sbin/nginx', ['-p', ng, '-c', join(ng, 'nginx.conf'), '-g', 'daemon off;'])
  for (let i = 0; i < 50; i++) { try { readFileSync(join(ng, 'nginx.pid')); break } catch { await sleep(100) } }
  const started = performance.now()
  const results = await Promise.all(hosts.map(async (h, i) => {
    const c = lan.spawn(h, process.execPath, [CLI, 'extract', '--peers=on', `--listen=/ip4/${h.ip}/tcp/0`,
      `--store=http://${origin.ip}:8080/store/`, `--cache=${join(dir, `cache-${i}`)}`, '--json', '--no-progress',
      join(dir, 'v2.caibx'), join(dir, `out-${i}.img`)])
    const stats = JSON.parse(await output(c, `extract on ${h.name}`))
    return { stats, wall: (performance.now() - started) / 1000 }
  }))
  nginx.kill('SIGQUIT')
  const gets = readFileSync(join(ng, 'logs', 'access.log'), 'utf8').split('\n').filter(l => /"GET \S+\.cacnk /.test(l)).length
  let originBytes = 0
  let peerBytes = 0
  for (const r of results) {
    for (const [name, s] of Object.entries(r.stats.sources as Record<string, { bytes: number }>)) {
      if (name.startsWith('peer:')) peerBytes += s.bytes
      if (name.startsWith('http://')) originBytes += s.bytes
    }
    if (!readFileSync(join(dir, `out-${results.indexOf(r)}.img`)).equals(v2)) throw new Error('an output differs from the update')
  }
  const secs = results.map(r => Number(r.stats.seconds)).sort((a, b) => a - b)

  const sim = runScenario(scenarios.rollout!, {
    hosts: HOSTS,
    updateBytes: uniqueBytes,
    tweak: c => {
      c.hostUp = rate; c.hostDown = rate; c.origin.bandwidth = rate
      c.latency = 0.0001; c.origin.latency = 0.0001
    }
  }).report
  const row = (k: string, a: string, b: string): string => `| ${k} | ${a} | ${b} |`
  console.log([
    `Calibration: ${HOSTS} hosts, ${(uniqueBytes / 2 ** 20).toFixed(1)} MiB update (${distinct} chunks), every link ${MBIT} Mbit/s`,
    '',
    '| | netns LAN (real caswarm extract) | simulator |',
    '|---|---|---|',
    row('origin chunk requests / distinct chunks', `${gets}/${distinct} = ${(gets / distinct).toFixed(3)}×`, `${sim.originFetches.owner + sim.originFetches.alone + sim.originFetches.timeout}/${sim.chunks} = ${((sim.originFetches.owner + sim.originFetches.alone + sim.originFetches.timeout) / sim.chunks).toFixed(3)}×`),
    row('bytes from origin / unique', `${(originBytes / uniqueBytes).toFixed(3)}×`, `${sim.originRatio}×`),
    row('bytes from peers / unique', `${(peerBytes / uniqueBytes).toFixed(3)}×`, `${(sim.peerBytes / sim.uniqueBytes).toFixed(3)}×`),
    row('completion per host, s (min / median / max)', `${secs[0]!.toFixed(2)} / ${secs[Math.floor(secs.length / 2)]!.toFixed(2)} / ${secs[secs.length - 1]!.toFixed(2)} (extract's own seconds, incl. discovery and the ${'≤'}1.5 s join settle)`, `${sim.completionTimes[0]} / ${sim.completion.p50} / ${sim.completion.max}`),
    row('one host alone on these links (ideal), s', (uniqueBytes / rate).toFixed(2), String(sim.idealSeconds))
  ].join('\n'))
} finally {
  lan.destroy()
  execFileSync('rm', ['-rf', dir])
}
