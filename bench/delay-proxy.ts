// A TCP proxy on 127.0.0.1 that holds every piece of data for `oneWayMs` in each direction, so a
// benchmark over loopback sees a round-trip time like a real origin's. (This kernel has no netem.)
// Order is kept: every piece waits the same time, and timers of equal delay fire in order.
import { createConnection, createServer, type Server, type Socket } from 'node:net'
import type { AddressInfo } from 'node:net'

export interface DelayProxy { url: string, close: () => Promise<void> }

function pipeDelayed (from: Socket, to: Socket, ms: number): void {
  from.on('data', (piece: Buffer) => { setTimeout(() => { if (!to.destroyed) to.write(piece) }, ms) })
  from.on('end', () => { setTimeout(() => { to.end() }, ms) })
  from.on('error', () => { to.destroy() })
  from.on('close', () => { setTimeout(() => { to.destroy() }, ms + 1) })
}

/** Listens on 127.0.0.1 and forwards each connection to `targetPort` with the delay both ways. */
export async function startDelayProxy (targetPort: number, oneWayMs: number): Promise<DelayProxy> {
  const sockets = new Set<Socket>()
  const server: Server = createServer((client) => {
    const upstream = createConnection({ host: '127.0.0.1', port: targetPort })
    for (const s of [client, upstream]) { s.setNoDelay(true); sockets.add(s); s.on('close', () => sockets.delete(s)) }
    pipeDelayed(client, upstream, oneWayMs)
    pipeDelayed(upstream, client, oneWayMs)
  })
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
  const port = (server.address() as AddressInfo).port
  return {
    url: `http://127.0.0.1:${port}/`,
    close: async () => {
      for (const s of sockets) s.destroy()
      await new Promise(resolve => server.close(resolve))
    }
  }
}
