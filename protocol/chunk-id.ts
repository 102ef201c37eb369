import { createHash } from 'node:crypto'
import { copyBytes } from './bytes.ts'
import { CHUNK_ID_SIZE, CHUNK_SUFFIX } from './constants.ts'
import { DEFAULT_DIGEST, type DigestAlgorithm } from './digest.ts'
import { ChunkInvalidError, InvalidFormatError } from './errors.ts'

export { DEFAULT_DIGEST, digestFlag, digestFromFlags, parseDigest, type DigestAlgorithm } from './digest.ts'

/** A 32-byte chunk digest. Immutable; compare with equals() or by toString(). */
export class ChunkId {
  readonly bytes: Uint8Array
  private hex?: string

  constructor (bytes: Uint8Array) {
    if (bytes.byteLength !== CHUNK_ID_SIZE) throw new InvalidFormatError(`a chunk ID has ${CHUNK_ID_SIZE} bytes, not ${bytes.byteLength}`)
    this.bytes = bytes
  }

  static parse (hex: string): ChunkId {
    if (!/^[0-9a-f]{64}$/i.test(hex)) throw new InvalidFormatError(`not a chunk ID: ${JSON.stringify(hex.slice(0, 80))}`)
    return new ChunkId(Uint8Array.from(Buffer.from(hex, 'hex')))
  }

  static digest (data: Uint8Array, algorithm: DigestAlgorithm = DEFAULT_DIGEST): ChunkId {
    return new ChunkId(digestBytes(data, algorithm))
  }

  equals (other: ChunkId): boolean {
    const a = this.bytes; const b = other.bytes
    for (let i = 0; i < CHUNK_ID_SIZE; i++) if (a[i] !== b[i]) return false
    return true
  }

  toString (): string {
    // Buffer's hex is one flat string; built by concatenation it would be a rope of 32 pieces,
    // which every charCodeAt (policy.ts chunkHash, once per plan) walks through
    this.hex ??= Buffer.from(this.bytes.buffer, this.bytes.byteOffset, CHUNK_ID_SIZE).toString('hex')
    return this.hex
  }
}

export function digestBytes (data: Uint8Array, algorithm: DigestAlgorithm = DEFAULT_DIGEST): Uint8Array {
  const digest = createHash(algorithm === 'sha256' ? 'sha256' : 'sha512-256').update(data).digest()
  return copyBytes(digest) // the digest Buffer may sit in Node's shared pool
}

const zeroIds = new Map<string, Uint8Array>()

/** The ID of `size` zero bytes (remembered per size and digest, for the last 256 sizes asked). */
export function zeroChunkId (size: number, algorithm: DigestAlgorithm = DEFAULT_DIGEST): Uint8Array {
  const key = `${algorithm}:${size}`
  let id = zeroIds.get(key)
  if (id == null) {
    if (zeroIds.size >= 256) zeroIds.clear()
    zeroIds.set(key, id = digestBytes(new Uint8Array(size), algorithm))
  }
  return id
}

/** An incremental whole-stream digest (what `casync make` and `casync digest` print). */
export function createStreamDigest (algorithm: DigestAlgorithm = DEFAULT_DIGEST): { update: (data: Uint8Array) => void, digest: () => string } {
  const h = createHash(algorithm === 'sha256' ? 'sha256' : 'sha512-256')
  return { update: (data) => { h.update(data) }, digest: () => h.digest('hex') }
}

/** Checks plain chunk bytes against their ID; returns the bytes or throws ChunkInvalidError. */
export function verifyChunk (id: ChunkId, data: Uint8Array, algorithm: DigestAlgorithm = DEFAULT_DIGEST): Uint8Array {
  const actual = ChunkId.digest(data, algorithm)
  if (!actual.equals(id)) throw new ChunkInvalidError(id, actual)
  return data
}

/** `06b7/06b727fd….cacnk`, as casync's ca_chunk_id_format_path and desync's nameFromID */
export function chunkPath (id: ChunkId, extension = CHUNK_SUFFIX): string {
  const hex = id.toString()
  return `${hex.slice(0, 4)}/${hex}${extension}`
}
