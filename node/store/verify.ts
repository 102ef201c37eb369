// Turning a stored (compressed) chunk into plain verified bytes. Every source goes through here,
// so no chunk reaches an output or a store without its digest checked. When a worker pool is
// registered (the CLI does), the work runs on the pool's threads.
import { ownBuffer, standalone } from '../../protocol/bytes.ts'
import { ChunkId, type DigestAlgorithm } from '../../protocol/chunk-id.ts'
import { decompress } from '../../protocol/compression.ts'
import { ChunkInvalidError } from '../../protocol/errors.ts'
import type { WorkerPool } from '../workers/pool.ts'

export interface DecodeOptions {
  /** plain size from the index; any other size is invalid */
  size?: number
  /** false for a chunk stored uncompressed. @default true */
  compressed?: boolean
  /** largest plain size accepted when `size` is unknown */
  maxSize?: number
  /** false skips the digest check (only for stores opened with verify: false). @default true */
  verify?: boolean
  /** decode on the calling thread even when a worker pool is registered (cheap zstd chunks that
   *  arrived on the main thread: posting them to a worker costs more than decoding them) */
  inline?: boolean
}

let pool: WorkerPool | undefined

/** Decode chunks on these worker threads from now on (undefined: on the calling thread). */
export function useWorkerPool (p: WorkerPool | undefined): void {
  pool = p
}

export async function decodeChunk (id: ChunkId, stored: Uint8Array, digest: DigestAlgorithm, options: DecodeOptions = {}): Promise<Uint8Array> {
  if (pool != null && options.inline !== true) {
    const reply = await pool.run({
      op: 'decode',
      data: ownBuffer(stored),
      id: standalone(id.bytes),
      digest,
      compressed: options.compressed !== false,
      size: options.size,
      maxSize: options.maxSize,
      verify: options.verify
    })
    return new Uint8Array(reply.plain!)
  }
  let plain: Uint8Array
  if (options.compressed === false) {
    plain = stored
  } else {
    try {
      plain = await decompress(stored, { maxSize: options.size ?? options.maxSize })
    } catch (err: any) {
      throw new ChunkInvalidError(id, undefined, `chunk ${id.toString()} cannot be decompressed: ${String(err?.message ?? err)}`)
    }
  }
  if (options.size != null && plain.byteLength !== options.size) {
    throw new ChunkInvalidError(id, undefined, `chunk ${id.toString()} has ${plain.byteLength} bytes, the index says ${options.size}`)
  }
  if (options.verify === false) return plain
  const actual = ChunkId.digest(plain, digest)
  if (!actual.equals(id)) throw new ChunkInvalidError(id, actual)
  return plain
}
