// Prometheus metrics for a swarm host (prom-client), served over HTTP by `caswarm node --metrics`.
// Counters are read from the exchange and policy when scraped, so nothing is double-counted.
import { createServer, type Server } from 'node:http'
import { Counter, Gauge, Registry, collectDefaultMetrics } from 'prom-client'
import type { SwarmHost } from './host.ts'

export function swarmRegistry (host: SwarmHost, registry = new Registry()): Registry {
  collectDefaultMetrics({ register: registry })
  const registers = [registry]
  const c = (): SwarmHost['exchange']['counters'] => host.exchange.counters
  const counter = (name: string, help: string, read: () => number): void => {
    // a Counter whose value is set from the source at scrape time
    const m: Counter = new Counter({
      name,
      help,
      registers,
      collect () { m.reset(); m.inc(read()) }
    })
  }
  counter('caswarm_chunks_served_total', 'chunks served to peers', () => c().chunksServed)
  counter('caswarm_bytes_served_total', 'compressed chunk bytes served to peers', () => c().bytesServed)
  counter('caswarm_missing_served_total', 'requests for chunks this host lacks', () => c().missingServed)
  counter('caswarm_busy_served_total', 'requests answered BUSY (every upload slot taken)', () => c().busyServed)
  counter('caswarm_busy_received_total', 'requests a peer answered BUSY', () => c().busyReceived)
  counter('caswarm_chunks_received_total', 'verified chunks received from peers', () => c().chunksReceived)
  counter('caswarm_bytes_received_total', 'compressed chunk bytes received from peers', () => c().bytesReceived)
  counter('caswarm_invalid_chunks_received_total', 'chunks from peers that failed verification', () => c().invalidReceived)
  counter('caswarm_request_batches_sent_total', 'REQUEST frames sent', () => c().batchesSent)
  counter('caswarm_streams_opened_total', 'chunk-exchange streams opened', () => c().streamsOpened)
  const peers: Gauge = new Gauge({ name: 'caswarm_peers', help: 'connected peers', registers, collect () { peers.set(host.connectedPeers().length) } })
  const banned: Gauge = new Gauge({
    name: 'caswarm_banned_peers',
    help: 'peers currently banned',
    registers,
    collect () { banned.set(host.policy.reputations().filter(r => r.bannedUntil > Date.now()).length) }
  })
  return registry
}

/** Serves /metrics (Prometheus text) and /peers (JSON) on host:port; resolves with the URL. */
export async function serveMetrics (host: SwarmHost, registry: Registry, address: string): Promise<{ url: string, server: Server }> {
  const m = /^(?:(.*):)?(\d+)$/.exec(address)
  if (m == null) throw Object.assign(new Error(`--metrics must be [HOST:]PORT, not ${address}`), { code: 'ERR_INVALID_ARGUMENT' })
  const bindHost = m[1] ?? '127.0.0.1'
  const port = Number(m[2])
  const server = createServer((req, res) => {
    if (req.url === '/metrics') {
      registry.metrics().then(text => {
        res.writeHead(200, { 'content-type': registry.contentType })
        res.end(text)
      }, err => { res.writeHead(500); res.end(String(err)) })
    } else if (req.url === '/peers') {
      res.writeHead(200, { 'content-type': 'application/json' })
      res.end(JSON.stringify(peerList(host), null, 2))
    } else {
      res.writeHead(404)
      res.end()
    }
  })
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(port, bindHost, () => { server.off('error', reject); resolve() })
  })
  const a = server.address() as { port: number }
  return { url: `http://${bindHost.includes(':') ? `[${bindHost}]` : bindHost}:${a.port}/metrics`, server }
}

export interface PeerInfo {
  id: string
  addresses: string[]
  banned: boolean
  strikes: number
  goodChunks: number
  badChunks: number
}

export function peerList (host: SwarmHost): PeerInfo[] {
  const now = Date.now()
  return host.connectedPeers().map(p => {
    const rep = host.policy.reputation(p.toString())
    return {
      id: p.toString(),
      addresses: host.node.getConnections(p).map(c => c.remoteAddr.toString()),
      banned: rep.bannedUntil > now,
      strikes: rep.strikes,
      goodChunks: rep.goodChunks,
      badChunks: rep.badChunks
    }
  })
}
