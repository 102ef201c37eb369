// caswarm peers: the swarm peers this host can find (mDNS and --peer), or those a running daemon knows.
import type { Command } from 'commander'
import { setTimeout as sleep } from 'node:timers/promises'
import type { PeerInfo } from '../../node/swarm/metrics.ts'
import { printJson, type CommandContext } from '../context.ts'
import { addSwarmOptions, swarmHostInit, type SwarmCliOptions } from '../swarm-options.ts'

interface PeersOptions extends SwarmCliOptions {
  wait: string
  daemon?: string
  json?: boolean
}

export function register (program: Command, ctx: CommandContext): void {
  const cmd = program.command('peers')
    .summary('list the swarm peers found')
    .description('Start a short-lived swarm host, look for peers (mDNS and --peer) for --wait ms, and list them. With --daemon, ask a running `caswarm node` (its metrics address) for the peers it knows instead.')
    .option('--wait <ms>', 'how long to look for peers', '2000')
    .option('--daemon <[host:]port>', 'ask the daemon whose metrics listen here')
    .option('--json', 'print JSON')
  addSwarmOptions(cmd, '/ip4/0.0.0.0/tcp/0')
    .action(async (opts: PeersOptions) => {
      let peers: PeerInfo[]
      if (opts.daemon != null) {
        const url = `http://${opts.daemon.includes(':') ? opts.daemon : `127.0.0.1:${opts.daemon}`}/peers`
        const { request } = await import('undici') // loaded here, not for `caswarm --help`
        const { statusCode, body } = await request(url, { signal: ctx.signal })
        if (statusCode !== 200) { await body.dump(); throw Object.assign(new Error(`${url} answered ${statusCode}`), { code: 'ERR_ORIGIN' }) }
        peers = await body.json() as PeerInfo[]
      } else {
        const [{ SwarmHost }, { peerList }] = await Promise.all([import('../../node/swarm/host.ts'), import('../../node/swarm/metrics.ts')])
        const host = await SwarmHost.create(await swarmHostInit(opts, '/ip4/0.0.0.0/tcp/0'))
        try {
          await sleep(Number(opts.wait), undefined, { signal: ctx.signal })
          peers = peerList(host)
        } finally {
          await host.stop()
        }
      }
      if (opts.json === true) { printJson(ctx, peers); return }
      if (peers.length === 0) ctx.stdout.write('no peers found\n')
      for (const p of peers) ctx.stdout.write(`${p.id} ${p.addresses.join(' ')}${p.banned ? ' (banned)' : ''}\n`)
    })
}
