import { createHash } from 'node:crypto'
import { CID } from 'multiformats/cid'
import * as Digest from 'multiformats/hashes/digest'
import { copyBytes } from './bytes.ts'
import { CHUNK_ID_SIZE, CHUNK_SUFFIX } from './constants.ts'
import { DEFAULT_DIGEST, type DigestAlgorithm } from './digest.ts'
import { ChunkInvalidError, InvalidFormatError } from './errors.ts'

export { DEFAULT_DIGEST, digestFlag, digestFromFlags, parseDigest, type DigestAlgorithm } from './digest.ts'

/** multicodec codes: raw 0x55, sha2-256 0x12, sha2-512-256 0x1014 */
const RAW_CODEC = 0x55
const MULTIHASH_CODE: Record<DigestAlgorithm, number> = { sha256: 0x12, 'sha512-256': 0x1014 }

const HEX = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, '0'))

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

  /** A CIDv1 with the raw codec and the digest as multihash (sha2-256 or sha2-512-256). */
  toCID (algorithm: DigestAlgorithm = DEFAULT_DIGEST): CID {
    return CID.createV1(RAW_CODEC, Digest.create(MULTIHASH_CODE[algorithm], this.bytes))
  }

  static fromCID (cid: CID): { id: ChunkId, algorithm: DigestAlgorithm } {
    if (cid.code !== RAW_CODEC) throw new InvalidFormatError(`CID ${cid.toString()} does not use the raw codec`)
    const algorithm = (Object.keys(MULTIHASH_CODE) as DigestAlgorithm[]).find(a => MULTIHASH_CODE[a] === cid.multihash.code)
    if (algorithm == null) throw new InvalidFormatError(`CID ${cid.toString()} uses an unknown hash 0x${cid.multihash.code.toString(16)}`)
    return { id: new ChunkId(cid.multihash.digest), algorithm }
  }

  equals (other: ChunkId): boolean {
    const a = this.bytes; const b = other.bytes
    for (let i = 0; i < CHUNK_ID_SIZE; i++) if (a[i] !== b[i]) return false
    return true
  }

  toString (): string {
    if (this.hex == null) {
      let s = ''
      for (let i = 0; i < CHUNK_ID_SIZE; i++) s += HEX[this.bytes[i]!]
      this.hex = s
    }
    return this.hex
  }
}

export function digestBytes (data: Uint8Array, algorithm: DigestAlgorithm = DEFAULT_DIGEST): Uint8Array {
  const digest = createHash(algorithm === 'sha256' ? 'sha256' : 'sha512-256').update(data).digest()
  return copyBytes(digest) // the digest Buffer may sit in Node's shared pool
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
