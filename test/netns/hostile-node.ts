// A hostile swarm host for the namespace LAN test: it claims every chunk anyone asks about, then
// serves garbage for some and "missing" for the others. Prints its peer ID, runs until killed.
import '../../node/polyfills.ts'
import type { ChunkId } from '../../protocol/chunk-id.ts'
import { ChunkMissingError } from '../../protocol/errors.ts'
import type { RawChunkSource } from '../../node/store/chunk-store.ts'
import { SwarmHost } from '../../node/swarm/host.ts'

class LyingStore implements RawChunkSource {
  toString (): string { return 'lies' }
  async get (id: ChunkId): Promise<Uint8Array> { throw new ChunkMissingError(id) }
  async getCompressed (id: ChunkId): Promise<Uint8Array> {
    if ((id.bytes[0]! & 1) === 0) throw new ChunkMissingError(id)
    // a zstd frame header and garbage: fails decompression or the digest check
    return Uint8Array.from([0x28, 0xb5, 0x2f, 0xfd, ...id.bytes])
  }

  async has (): Promise<boolean> { return true }
  async close (): Promise<void> {}
}

const listen = process.argv[2] ?? '/ip4/0.0.0.0/tcp/0'
const host = await SwarmHost.create({ store: new LyingStore(), listen: [listen], mdns: true, mdnsInterval: 1000 })
process.stdout.write(`${host.peerId.toString()}\n`)
process.once('SIGTERM', () => { host.stop().finally(() => process.exit(0)) })
