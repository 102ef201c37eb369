// The chunk digest algorithms and how indexes and archives name them, apart from chunk-id.ts so
// that code which only needs the names (the CLI's option parsing, the tree commands) does not
// load the CID library chunk-id.ts uses.
import { CA_FORMAT_SHA512_256 } from './constants.ts'
import { InvalidFormatError } from './errors.ts'

/** The chunk digest algorithms casync knows (spec §2.1). caswarm defaults to sha256. */
export type DigestAlgorithm = 'sha256' | 'sha512-256'
export const DEFAULT_DIGEST: DigestAlgorithm = 'sha256'

/** The digest that feature flags select: bit SHA512_256 set → sha512-256, clear → sha256 (spec §2.1). */
export function digestFromFlags (flags: bigint): DigestAlgorithm {
  return (flags & CA_FORMAT_SHA512_256) !== 0n ? 'sha512-256' : 'sha256'
}

export function digestFlag (algorithm: DigestAlgorithm): bigint {
  return algorithm === 'sha512-256' ? CA_FORMAT_SHA512_256 : 0n
}

export function parseDigest (name: string): DigestAlgorithm {
  if (name === 'sha256') return 'sha256'
  if (name === 'sha512-256' || name === 'sha512/256' || name === 'default') return 'sha512-256'
  throw new InvalidFormatError(`unknown digest "${name}" (sha256 or sha512-256)`)
}
