// Where a host keeps its swarm state by default. A module of its own so that the command line can
// show these defaults in --help without loading libp2p.
import { homedir } from 'node:os'
import * as path from 'node:path'

/** `/var/lib/caswarm/cache` as root, `~/.cache/caswarm` otherwise (XDG_CACHE_HOME respected). */
export function defaultCacheDir (): string {
  if (process.getuid?.() === 0) return '/var/lib/caswarm/cache'
  return path.join(process.env.XDG_CACHE_HOME ?? path.join(homedir(), '.cache'), 'caswarm')
}

/** Where `caswarm node` keeps its identity. */
export function defaultKeyFile (): string {
  if (process.getuid?.() === 0) return '/var/lib/caswarm/node.key'
  return path.join(process.env.XDG_CONFIG_HOME ?? path.join(homedir(), '.config'), 'caswarm', 'node.key')
}
