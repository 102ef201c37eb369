// One logging system for the whole host: @libp2p/logger (debug), `caswarm:` namespaces, off by
// default. Enable with DEBUG=caswarm:* (add libp2p:* for the network stack).
export { defaultLogger, prefixLogger, logger } from '@libp2p/logger'
export type { ComponentLogger, Logger } from '@libp2p/interface'
