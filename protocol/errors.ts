// Errors with a stable `code` (undici/libp2p style). ChunkMissingError is the only one that means
// "ask the next source"; every other error is a real failure of that source.
import type { ChunkId } from './chunk-id.ts'

export class ChunkMissingError extends Error {
  static readonly code = 'ERR_CHUNK_MISSING'
  readonly code = ChunkMissingError.code
  override name = 'ChunkMissingError'
  readonly id: ChunkId

  constructor (id: ChunkId, message = `chunk ${id.toString()} missing from store`) {
    super(message)
    this.id = id
  }
}

/** A peer answered BUSY: every upload slot it has is taken. Ask another peer, or again later. */
export class PeerBusyError extends Error {
  static readonly code = 'ERR_PEER_BUSY'
  readonly code = PeerBusyError.code
  override name = 'PeerBusyError'
  readonly id: ChunkId

  constructor (id: ChunkId, message = `peer busy: chunk ${id.toString()} not sent`) {
    super(message)
    this.id = id
  }
}

export class ChunkInvalidError extends Error {
  static readonly code = 'ERR_CHUNK_INVALID'
  readonly code = ChunkInvalidError.code
  override name = 'ChunkInvalidError'
  readonly id: ChunkId
  readonly actual?: ChunkId

  constructor (id: ChunkId, actual?: ChunkId, message = `chunk ${id.toString()} failed verification${actual != null ? ` (content hashes to ${actual.toString()})` : ''}`) {
    super(message)
    this.id = id
    this.actual = actual
  }
}

export class InvalidFormatError extends Error {
  static readonly code = 'ERR_INVALID_FORMAT'
  readonly code = InvalidFormatError.code
  override name = 'InvalidFormatError'
  /** byte offset in the file or stream where the problem was found, when known */
  readonly offset?: number

  constructor (message = 'invalid format', offset?: number) {
    super(message)
    this.offset = offset
  }
}

export class InvalidArgumentError extends Error {
  static readonly code = 'ERR_INVALID_ARGUMENT'
  readonly code = InvalidArgumentError.code
  override name = 'InvalidArgumentError'
}

export class MessageTooLargeError extends Error {
  static readonly code = 'ERR_MESSAGE_TOO_LARGE'
  readonly code = MessageTooLargeError.code
  override name = 'MessageTooLargeError'
}

export class OriginError extends Error {
  static readonly code = 'ERR_ORIGIN'
  readonly code = OriginError.code
  override name = 'OriginError'
  readonly statusCode: number
  readonly url: string
  /** how long the server asked to wait before the next attempt (Retry-After), ms */
  retryAfterMs?: number

  constructor (statusCode: number, url: string, message = `origin answered ${statusCode} for ${url}`) {
    super(message)
    this.statusCode = statusCode
    this.url = url
  }
}

export class AllSourcesFailedError extends AggregateError {
  static readonly code = 'ERR_ALL_SOURCES_FAILED'
  readonly code = AllSourcesFailedError.code
  override name = 'AllSourcesFailedError'
}

export class InterruptedError extends Error {
  static readonly code = 'ERR_INTERRUPTED'
  readonly code = InterruptedError.code
  override name = 'InterruptedError'

  constructor (message = 'interrupted') {
    super(message)
  }
}

/** Wraps an error with the file or peer it concerns, keeping its code. */
export function withContext<E extends Error> (err: E, context: string): E {
  if (!err.message.startsWith(context)) err.message = `${context}: ${err.message}`
  return err
}

/** Node's (OpenSSL's) codes for a server certificate the client does not trust. */
export const UNTRUSTED_CERT_CODES: ReadonlySet<string> = new Set([
  'DEPTH_ZERO_SELF_SIGNED_CERT', 'SELF_SIGNED_CERT_IN_CHAIN', 'UNABLE_TO_VERIFY_LEAF_SIGNATURE', 'UNABLE_TO_GET_ISSUER_CERT', 'UNABLE_TO_GET_ISSUER_CERT_LOCALLY'
])
