// The swarm part of `npm start`: a small fleet on loopback (127.0.0.1 only, static peers, no
// mDNS) updates from image-v1 to image-v2 at once from a local HTTP origin, and we show how many
// bytes the origin sent against how many came from peers.
import { createHash } from 'node:crypto'
import * as fs from 'node:fs/promises'
import * as path from 'node:path'
import { digestFromFlags } from '../../protocol/chunk-id.ts'
import { emptyStats } from '../assemble.ts'
import { extractBlob } from '../extract.ts'
import { ChunkServer } from '../http/server.ts'
import { readIndex } from '../index-io.ts'
import { HttpStore } from '../store/http-store.ts'
import { LocalStore } from '../store/local-store.ts'
import { SwarmHost } from './host.ts'
import { openExtractSwarm } from './session.ts'

export interface SwarmDemoOptions {
  /** holds default.castr, image-v1.caibx/.img and image-v2.caibx/.img */
  dir: string
  v1: string
  v2: string
  log: (line: string) => void
  /** @default 4 */
  hosts?: number
}

const mb = (n: number): string => `${(n / 1e6).toFixed(1)} MB`

async function fileDigest (file: string): Promise<string> {
  return createHash('sha256').update(await fs.readFile(file)).digest('hex')
}

/** Runs the fleet demo; resolves true when every host's output is exactly image-v2. */
export async function runSwarmDemo (options: SwarmDemoOptions): Promise<boolean> {
  const n = options.hosts ?? 4
  const log = options.log
  const index = await readIndex(path.join(options.dir, 'image-v2.caibx'))
  const digest = digestFromFlags(index.featureFlags)
  let originChunkRequests = 0
  const server = new ChunkServer({
    store: path.join(options.dir, 'default.castr'),
    onRequest: (e) => { if (e.kind === 'chunk' && e.method === 'GET') originChunkRequests++ }
  })
  const originUrl = await server.listen(0, '127.0.0.1')
  const storeUrl = new URL('/', originUrl).toString()
  const hosts: SwarmHost[] = []
  try {
    for (let i = 0; i < n; i++) {
      await fs.mkdir(path.join(options.dir, `fleet-${i}`), { recursive: true })
      const cache = new LocalStore(path.join(options.dir, `fleet-${i}`, 'cache'), { digest })
      hosts.push(await SwarmHost.create({ store: cache, listen: ['/ip4/127.0.0.1/tcp/0'], mdns: false, peers: hosts.flatMap(h => h.addresses()) }))
    }
    log(`4. a fleet of ${n} hosts on 127.0.0.1 (libp2p, static peers) updates image-v1 → image-v2 at once from ${storeUrl}`)
    const want = await fileDigest(options.v2)
    const results = await Promise.all(hosts.map(async (host, i) => {
      const origin = new HttpStore(storeUrl, { digest })
      const cache = (host as any).init.store as LocalStore
      const swarm = await openExtractSwarm({ index, origins: [origin], cache, existing: host, settle: 2000 })
      const stats = emptyStats()
      const out = path.join(options.dir, `fleet-${i}`, 'image-v2.img')
      try {
        await extractBlob(index, out, { sources: [swarm.source, origin], cache, seedPaths: [options.v1], stats, onSeedsReady: swarm.seedsReady })
        swarm.finish(stats)
      } finally {
        await swarm.close()
        await origin.close()
      }
      return { out, stats, exact: await fileDigest(out) === want }
    }))
    let fromOrigin = 0
    let fromPeers = 0
    let fromSeeds = 0
    for (const [i, r] of results.entries()) {
      let o = 0; let p = 0; let s = 0
      for (const [name, st] of Object.entries(r.stats.sources)) {
        if (name.startsWith('peer:')) p += st.bytes
        else if (name.startsWith('http')) o += st.bytes
        else s += st.bytes
      }
      fromOrigin += o; fromPeers += p; fromSeeds += s
      log(`     host ${i}: ${mb(s).padStart(9)} from its seed/cache  ${mb(o).padStart(9)} from the origin  ${mb(p).padStart(9)} from peers  ${r.exact ? 'exact' : 'WRONG OUTPUT'}`)
    }
    const old = (await readIndex(path.join(options.dir, 'image-v1.caibx'))).chunks
    let missing = 0
    for (let i = 0; i < index.chunks.length; i++) if (index.chunks.find(index.chunks.idBytes(i)) === i && old.find(index.chunks.idBytes(i)) < 0) missing++
    log(`   fleet: ${mb(fromOrigin)} from the origin, ${mb(fromPeers)} from peers, ${mb(fromSeeds)} from local seeds; ${originChunkRequests} origin chunk requests for the ${missing} chunks the fleet lacked`)
    return results.every(r => r.exact)
  } finally {
    await Promise.all(hosts.map(async h => await h.stop()))
    await server.close()
  }
}
