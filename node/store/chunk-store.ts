// The interface every chunk source implements: local stores, HTTP origins, LAN peers, seeds,
// routers and caches. desync's Store/WriteStore split with js-stores' (key, options) signatures.
import type { ChunkId } from '../../protocol/chunk-id.ts'

export interface AbortOptions {
  signal?: AbortSignal
}

export interface GetOptions extends AbortOptions {
  /** The chunk's plain size when known (from the index); a chunk of another size is invalid. */
  size?: number
}

export interface ChunkSource {
  /** Resolves with the chunk's plain, verified bytes; rejects with ChunkMissingError if absent. */
  get: (id: ChunkId, options?: GetOptions) => Promise<Uint8Array>
  has: (id: ChunkId, options?: AbortOptions) => Promise<boolean>
  close: () => Promise<void>
  /** 'local:/var/lib/caswarm/default.castr', 'http://origin/store', 'peer:12D3…' */
  toString: () => string
}

/** A source that can hand out chunks in their stored, compressed (.cacnk) form. */
export interface RawChunkSource extends ChunkSource {
  /** The compressed chunk file as stored; verified unless options.verify is false. */
  getCompressed: (id: ChunkId, options?: GetOptions & { verify?: boolean }) => Promise<Uint8Array>
}

export interface ChunkStore extends ChunkSource {
  /** Stores plain bytes (the store compresses them). The caller has verified them. */
  put: (id: ChunkId, data: Uint8Array, options?: AbortOptions) => Promise<void>
  /** Stores an already compressed chunk file. The caller has verified its content. */
  putCompressed?: (id: ChunkId, compressed: Uint8Array, options?: AbortOptions) => Promise<void>
}

export function isRawChunkSource (s: ChunkSource): s is RawChunkSource {
  return typeof (s as RawChunkSource).getCompressed === 'function'
}
