// One extraction's use of the swarm: start (or borrow) a host, build the SwarmSource before the
// origin stores, declare the missing chunks once seeds are indexed, and close it all afterwards.
// `caswarm extract` and the demo use it; a daemon on the same host is just another peer.
import { digestFromFlags, type ChunkId } from '../../protocol/chunk-id.ts'
import type { Index } from '../../protocol/index-file.ts'
import type { ExtractStats } from '../assemble.ts'
import type { Seed } from '../seed.ts'
import type { ChunkSource, ChunkStore, RawChunkSource } from '../store/chunk-store.ts'
import { SwarmHost, type SwarmHostInit } from './host.ts'
import { SwarmSource } from './source.ts'

export { defaultCacheDir, defaultKeyFile } from './paths.ts'

export interface ExtractSwarmInit {
  index: Index
  /** the origin stores, in order */
  origins: ChunkSource[]
  /** the cache chunks are written to and served from */
  cache: ChunkStore & RawChunkSource
  /** host options (listen, peers, mdns, swarm key); a host is started for this extraction */
  host?: SwarmHostInit
  /** an already running host to use instead */
  existing?: SwarmHost
  /** ms to wait for peers' answers before the first chunk. @default 1500 */
  settle?: number
  /** ms of host uptime before the split starts (mDNS discovery). @default 500 with mDNS, else 0 */
  minUptime?: number
}

export interface ExtractSwarm {
  host: SwarmHost
  source: SwarmSource
  /** give to extractBlob's onSeedsReady: declares the chunks not in seeds (nor needless) as missing */
  seedsReady: (seeds: Seed[], needless?: ChunkId[]) => void
  /** replace the 'swarm' stats entry by per-peer and origin entries */
  finish: (stats: ExtractStats) => void
  close: () => Promise<void>
}

export async function openExtractSwarm (init: ExtractSwarmInit): Promise<ExtractSwarm> {
  const host = init.existing ?? await SwarmHost.create({ ...init.host, store: init.cache })
  const mdnsOn = init.existing == null && (init.host?.mdns ?? true)
  const source = new SwarmSource({
    host,
    index: init.index,
    digest: digestFromFlags(init.index.featureFlags),
    origins: init.origins,
    cache: init.cache,
    settle: init.settle,
    minUptime: init.minUptime ?? (mdnsOn ? 500 : 0)
  })
  return {
    host,
    source,
    seedsReady: (seeds, needless = []) => {
      const chunks = init.index.chunks
      const missing: ChunkId[] = []
      for (let i = 0; i < chunks.length; i++) {
        const id = chunks.id(i)
        if (!seeds.some(s => s.has(id)) && !needless.some(n => n.equals(id))) missing.push(id)
      }
      source.prepare(missing).catch(() => {})
    },
    finish: (stats) => { source.mergeStats(stats) },
    close: async () => {
      await source.close()
      if (init.existing == null) await host.stop()
    }
  }
}
