// First import of every spec: the Node 20 polyfills libp2p needs, and the CI switch.
import '../../node/polyfills.ts'

/** Under CASWARM_CI=1 a test that would skip for a missing tool fails instead. */
export const STRICT = process.env.CASWARM_CI === '1'

// `caswarm extract` takes chunks from LAN peers (libp2p, mDNS) by default. Tests in the root
// namespace must not multicast, so CLIs they spawn default to --peers=off; swarm tests opt in.
process.env.CASWARM_PEERS ??= 'off'
