// Chunk IDs as CIDs (multiformats): CIDv1, raw codec, the digest as multihash. Apart from
// chunk-id.ts so that only the swarm's wire codec loads multiformats (~20 ms of start-up per
// thread that make and extract do without).
import { CID } from 'multiformats/cid'
import * as Digest from 'multiformats/hashes/digest'
import { ChunkId, type DigestAlgorithm, DEFAULT_DIGEST } from './chunk-id.ts'
import { InvalidFormatError } from './errors.ts'

/** multicodec codes: raw 0x55, sha2-256 0x12, sha2-512-256 0x1014 */
const RAW_CODEC = 0x55
const MULTIHASH_CODE: Record<DigestAlgorithm, number> = { sha256: 0x12, 'sha512-256': 0x1014 }

/** A CIDv1 with the raw codec and the digest as multihash (sha2-256 or sha2-512-256). */
export function chunkCid (id: ChunkId, algorithm: DigestAlgorithm = DEFAULT_DIGEST): CID {
  return CID.createV1(RAW_CODEC, Digest.create(MULTIHASH_CODE[algorithm], id.bytes))
}

/** The chunk ID and digest a CID names; refuses other codecs and hashes. */
export function chunkIdFromCid (cid: CID): { id: ChunkId, algorithm: DigestAlgorithm } {
  if (cid.code !== RAW_CODEC) throw new InvalidFormatError(`CID ${cid.toString()} does not use the raw codec`)
  const algorithm = (Object.keys(MULTIHASH_CODE) as DigestAlgorithm[]).find(a => MULTIHASH_CODE[a] === cid.multihash.code)
  if (algorithm == null) throw new InvalidFormatError(`CID ${cid.toString()} uses an unknown hash 0x${cid.multihash.code.toString(16)}`)
  return { id: new ChunkId(cid.multihash.digest), algorithm }
}
