// Turning a stored (compressed) chunk into plain verified bytes. Every source goes through here,
// so no chunk reaches an output or a store without its digest checked.
import { ChunkId, type DigestAlgorithm } from '../../protocol/chunk-id.ts'
import { decompress } from '../../protocol/compression.ts'
import { ChunkInvalidError, InvalidFormatError } from '../../protocol/errors.ts'

/** Decompresses and verifies a .cacnk file (or uncompressed chunk when `compressed` is false). */
export async function decodeChunk (id: ChunkId, stored: Uint8Array, digest: DigestAlgorithm, options: { size?: number, compressed?: boolean, maxSize?: number, verify?: boolean } = {}): Promise<Uint8Array> {
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

export { InvalidFormatError }
