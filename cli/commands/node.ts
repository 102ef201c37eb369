// caswarm node: the LAN swarm daemon. Serves this host's cache store (the one `extract` writes)
// to peers over /caswarm/chunks/1.0.0, finds peers by mDNS and --peer, and exports Prometheus
// metrics. Runs until interrupted.
import type { Command } from 'commander'
import { once } from 'node:events'
import { defaultCacheDir, defaultKeyFile } from '../../node/swarm/paths.ts'
import type { CommandContext } from '../context.ts'
import { addSwarmOptions, swarmHostInit, type SwarmCliOptions } from '../swarm-options.ts'

interface NodeOptions extends SwarmCliOptions {
  cache?: string
  key?: string
  metrics: string
}

export function register (program: Command, ctx: CommandContext): void {
  const cmd = program.command('node')
    .summary('run the LAN swarm daemon')
    .description('Serve this host\'s chunk cache to LAN peers (every chunk they receive is verified by them), discover peers by mDNS and --peer, and export Prometheus metrics. `caswarm extract` on this or any other host takes chunks from it. Runs until interrupted.')
    .option('-c, --cache <dir>', `the chunk cache served (default ${defaultCacheDir()})`)
    .option('--key <file>', `host identity, created if missing (default ${defaultKeyFile()})`)
    .option('--metrics <[host:]port|off>', 'serve /metrics and /peers here', '127.0.0.1:9464')
  addSwarmOptions(cmd, '/ip4/0.0.0.0/tcp/7700')
    .addHelpText('after', `
Examples:
  caswarm node
  caswarm node --cache=/var/lib/caswarm/cache --swarm-key=/etc/caswarm/swarm.key
  caswarm node --no-mdns --listen=/ip4/10.0.0.2/tcp/7700 --peer=/ip4/10.0.0.3/tcp/7700/p2p/12D3KooW…`)
    .action(async (opts: NodeOptions) => {
      // libp2p and prom-client load here, not when `caswarm --help` lists the commands
      const [{ LocalStore }, { loadOrCreateKey, SwarmHost }, { serveMetrics, swarmRegistry }] = await Promise.all([
        import('../../node/store/local-store.ts'), import('../../node/swarm/host.ts'), import('../../node/swarm/metrics.ts')
      ])
      const cache = new LocalStore(opts.cache ?? defaultCacheDir())
      const host = await SwarmHost.create({
        ...await swarmHostInit(opts, '/ip4/0.0.0.0/tcp/7700'),
        store: cache,
        privateKey: await loadOrCreateKey(opts.key ?? defaultKeyFile())
      })
      let metrics: Awaited<ReturnType<typeof serveMetrics>> | undefined
      try {
        if (opts.metrics !== 'off') metrics = await serveMetrics(host, swarmRegistry(host), opts.metrics)
        ctx.stderr.write(`caswarm node ${host.peerId.toString()} serving ${cache.path}\n`)
        for (const a of host.addresses()) ctx.stderr.write(`  listening on ${a}\n`)
        if (metrics != null) ctx.stderr.write(`  metrics at ${metrics.url}\n`)
        if (!ctx.signal.aborted) await once(ctx.signal, 'abort')
      } finally {
        metrics?.server.close()
        await host.stop()
      }
      // a daemon stopped by a signal ends normally
    })
}
