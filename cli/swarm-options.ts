// The LAN swarm's command-line options, shared by `node`, `peers` and `extract`. The swarm
// modules (libp2p) are imported only when a swarm is actually opened.
import type { Command } from 'commander'
import { digestFromFlags } from '../protocol/digest.ts'
import type { Index } from '../protocol/index-file.ts'
import type { ChunkSource, ChunkStore } from '../node/store/chunk-store.ts'
import type { LocalStore } from '../node/store/local-store.ts'
import type { SwarmHostInit } from '../node/swarm/host.ts'
import type { ExtractSwarm } from '../node/swarm/session.ts'
import { InvalidArgumentError } from '../protocol/errors.ts'
import { collect } from './context.ts'

export interface SwarmCliOptions {
  listen?: string[]
  peer?: string[]
  swarmKey?: string
  mdns: boolean
  mdnsTag?: string
}

export function addSwarmOptions (cmd: Command, defaultListen = '/ip4/0.0.0.0/tcp/0'): Command {
  return cmd
    .option('--listen <multiaddr>', `address to listen on (repeatable; default ${defaultListen})`, collect)
    .option('--peer <multiaddr>', 'static peer, e.g. /ip4/10.0.0.5/tcp/7700/p2p/12D3… (repeatable; for LANs without multicast)', collect)
    .option('--swarm-key <file>', 'private swarm: only hosts with this key (from `caswarm keygen`) can connect')
    .option('--no-mdns', 'no mDNS discovery (static peers only)')
    .option('--mdns-tag <tag>', 'mDNS service tag; hosts with another tag are ignored', 'caswarm.local')
}

export async function swarmHostInit (opts: SwarmCliOptions, defaultListen = '/ip4/0.0.0.0/tcp/0'): Promise<SwarmHostInit> {
  return {
    listen: opts.listen != null && opts.listen.length > 0 ? opts.listen : [defaultListen],
    peers: opts.peer ?? [],
    mdns: opts.mdns,
    serviceTag: opts.mdnsTag,
    swarmKey: opts.swarmKey != null ? await (await import('../node/swarm/host.ts')).readSwarmKey(opts.swarmKey) : undefined
  }
}

/**
 * Checks a --peers value: 'on' (default) or 'off'. Here rather than in node/swarm/ so that an
 * extract with --peers=off loads none of the swarm's modules (libp2p takes ~0.3 s to load).
 */
export function parsePeersOption (value: string | undefined): boolean {
  if (value == null || value === 'on' || value === 'auto') return true
  if (value === 'off') return false
  throw new InvalidArgumentError(`--peers must be on or off, not ${value}`)
}

/** The swarm for one `caswarm extract`, or undefined with --peers=off. The cache defaults to the daemon's. */
export async function openSwarmForExtract (index: Index, stores: ChunkSource[], cache: ChunkStore | undefined, opts: SwarmCliOptions & { peers?: string, settle?: string }): Promise<(ExtractSwarm & { cache: LocalStore }) | undefined> {
  if (!parsePeersOption(opts.peers)) return undefined
  const settle = opts.settle == null ? undefined : Number(opts.settle)
  if (settle != null && !(Number.isInteger(settle) && settle >= 0)) throw new InvalidArgumentError(`--settle must be a whole number of milliseconds, not ${String(opts.settle)}`)
  const [{ defaultCacheDir, openExtractSwarm }, { LocalStore }] = await Promise.all([import('../node/swarm/session.ts'), import('../node/store/local-store.ts')])
  const local = cache instanceof LocalStore ? cache : new LocalStore(defaultCacheDir(), { digest: digestFromFlags(index.featureFlags) })
  const swarm = await openExtractSwarm({ index, origins: stores, cache: local, host: await swarmHostInit(opts), settle })
  return { ...swarm, cache: local }
}
