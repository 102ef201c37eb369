import '../helpers/setup.ts'
import assert from 'node:assert/strict'
import { createReadStream, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { after, before, describe, it } from 'node:test'
import { writeIndexFile } from '../../node/index-io.ts'
import { makeIndex } from '../../node/make.ts'
import { LocalStore } from '../../node/store/local-store.ts'
import { pseudoRandom } from '../helpers/fixtures.ts'
import { tempDir } from '../helpers/temp-dir.ts'
import { writeNginxConf } from '../helpers/nginx.ts'
import { STRICT } from '../helpers/setup.ts'
import { needs } from '../helpers/tools.ts'
import { createLan, output, type Lan } from './lan.ts'

const ROOT = join(import.meta.dirname, '..', '..')
const CLI = join(ROOT, 'bin', 'caswarm.js')
const HOSTS = 5
function rootOnly (): string | false {
  if (process.getuid?.() === 0) return needs('ip', 'nginx')
  if (STRICT) throw new Error('CASWARM_CI=1 and the network-namespace tests need root')
  return 'needs root (network namespaces)'
}
const skip = rootOnly()

describe('swarm on a LAN of network namespaces (nginx origin, mDNS)', { skip }, () => {
  const tmp = tempDir('caswarm-lan-')
  let lan: Lan | undefined
  const v1 = pseudoRandom(6 * 1024 * 1024, 11)
  const v2 = Buffer.from(v1)
  // the update: 4 MiB of the image replaced
  v2.set(pseudoRandom(4 * 1024 * 1024, 12), 1024 * 1024)
  let missing = 0

  before(async () => {
    const store = new LocalStore(join(tmp.path, 'www', 'store'))
    writeFileSync(join(tmp.path, 'v1.img'), v1)
    writeFileSync(join(tmp.path, 'v2.img'), v2)
    const i1 = (await makeIndex(createReadStream(join(tmp.path, 'v1.img')), store)).index
    const i2 = (await makeIndex(createReadStream(join(tmp.path, 'v2.img')), store)).index
    await writeIndexFile(join(tmp.path, 'v2.caibx'), i2)
    const old = new Set([...i1.chunks].map(c => c.id.toString()))
    missing = new Set([...i2.chunks].map(c => c.id.toString()).filter(c => !old.has(c))).size
  })

  after(() => {
    lan?.destroy()
    tmp.cleanup()
  })

  it(`${HOSTS} hosts extract one update at once: exact outputs, the origin sends each chunk about once, a hostile host is banned`, async () => {
    lan = createLan(['origin', 'hostile', ...Array.from({ length: HOSTS }, (_, i) => `host${i}`)])
    const [originHost, hostileHost, ...hosts] = lan.hosts as [typeof lan.hosts[0], typeof lan.hosts[0], ...typeof lan.hosts]
    const port = 8080
    const ngDir = join(tmp.path, 'nginx')
    const conf = writeNginxConf(ngDir, join(tmp.path, 'www'), originHost.ip, port)
    const nginx = lan.spawn(originHost, '/usr/sbin/nginx', ['-p', ngDir, '-c', conf, '-g', 'daemon off;'])
    const hostile = lan.spawn(hostileHost, process.execPath, ['--import', 'tsx', join(ROOT, 'test', 'netns', 'hostile-node.ts'), `/ip4/${hostileHost.ip}/tcp/7700`])
    let hostileId = ''
    hostile.stdout!.on('data', (d: Buffer) => { hostileId += d.toString() })
    for (let i = 0; i < 100 && !hostileId.includes('\n'); i++) await sleep(100)
    hostileId = hostileId.trim()
    assert.match(hostileId, /^12D3/, 'the hostile host started')
    // nginx is up once it answers
    for (let i = 0; i < 50; i++) {
      if (readFileSync(join(ngDir, 'logs', 'error.log'), { encoding: 'utf8', flag: 'a+' }).includes('emerg')) break
      try { readFileSync(join(ngDir, 'nginx.pid')); break } catch { await sleep(100) }
    }

    const runs = hosts.map(async (h, i) => {
      const out = join(tmp.path, `out-${i}.img`)
      // seven processes (five hosts, the hostile one, nginx) start at once on two cores: a host
      // can be up, and done waiting for peers, well before the others answer mDNS (a fresh-clone
      // CI run once saw one host fetch every chunk on its own: 1.90x). --settle gives discovery
      // the time a loaded machine needs; what is checked is the economics once hosts find each other
      const c = lan!.spawn(h, process.execPath, [CLI, 'extract', '--peers=on', '--settle=5000', `--listen=/ip4/${h.ip}/tcp/0`,
        `--store=http://${originHost.ip}:${port}/store/`, `--seed=${join(tmp.path, 'v1.img')}`, `--cache=${join(tmp.path, `cache-${i}`)}`,
        '--json', '--no-progress', join(tmp.path, 'v2.caibx'), out])
      const stats = JSON.parse(await output(c, `extract on ${h.name}`))
      return { out, stats }
    })
    const results = await Promise.all(runs)
    hostile.kill('SIGTERM')
    nginx.kill('SIGQUIT')
    await sleep(200)

    for (const r of results) assert.ok(readFileSync(r.out).equals(v2), `${r.out} is not the update`)
    const chunkGets = readFileSync(join(ngDir, 'logs', 'access.log'), 'utf8').split('\n').filter(l => /"GET \S+\.cacnk /.test(l))
    let peerBytes = 0
    let originBytes = 0
    for (const r of results) {
      for (const [name, s] of Object.entries(r.stats.sources as Record<string, { bytes: number }>)) {
        if (name.startsWith('peer:')) peerBytes += s.bytes
        if (name.startsWith('http://')) originBytes += s.bytes
        assert.notEqual(name, `peer:${hostileId}`, 'no chunk from the hostile host was used')
      }
    }
    const ratio = chunkGets.length / missing
    console.log(`# netns LAN: ${HOSTS} hosts, ${missing} distinct missing chunks, ${chunkGets.length} origin chunk requests (${ratio.toFixed(3)}x); ${originBytes} plain bytes from the origin, ${peerBytes} from peers`)
    assert.ok(ratio <= 1.2, `origin chunk requests ${chunkGets.length} for ${missing} distinct missing chunks (${ratio.toFixed(2)}x > 1.2x)`)
    assert.ok(peerBytes > originBytes, 'peers supplied more than the origin')
    const touched = results.filter(r => Object.keys(r.stats.invalid).some(k => k.includes(hostileId)))
    console.log(`# hostile host rejected by ${touched.length} of ${HOSTS} hosts`)
    assert.ok(touched.length >= 1, 'the hostile host\'s garbage was seen and rejected')
  })
})
