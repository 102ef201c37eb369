// One logging system for the whole host: @libp2p/logger (debug), `caswarm:` namespaces, off by
// default. Enable with DEBUG=caswarm:* (add libp2p:* for the network stack).
// Without DEBUG nothing can be enabled, so @libp2p/logger is not loaded at all (with debug, tty
// and net it costs ~30 ms of start-up in every thread, the workers included): every logger is a
// no-op whose `enabled` is false. The LAN swarm's libp2p loads @libp2p/logger for itself.
import type { ComponentLogger, Logger } from '@libp2p/interface'

export type { ComponentLogger, Logger }

const real = (process.env.DEBUG ?? '') !== '' ? await import('@libp2p/logger') : undefined

const silent: Logger = Object.assign((_formatter: any, ..._args: any[]): void => {}, {
  enabled: false,
  error: (_formatter: any, ..._args: any[]): void => {},
  trace: (_formatter: any, ..._args: any[]): void => {},
  newScope: (_name: string): Logger => silent
})

const silentComponents: ComponentLogger = { forComponent: () => silent }

export function defaultLogger (): ComponentLogger {
  return real?.defaultLogger() ?? silentComponents
}
