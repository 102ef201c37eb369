// Exit codes by error class. Scripts can tell a usage mistake from corrupt input from a missing
// chunk from a network failure.
import { UNTRUSTED_CERT_CODES } from '../protocol/errors.ts'

export const EXIT = {
  OK: 0,
  FAILURE: 1,
  USAGE: 2,
  INVALID_FORMAT: 3,
  CHUNK_MISSING: 4,
  CHUNK_INVALID: 5,
  NETWORK: 6,
  IO: 7,
  INTERRUPTED: 130
} as const

const IO_CODES = new Set(['EACCES', 'EPERM', 'ENOSPC', 'EROFS', 'EISDIR', 'ENOTDIR', 'ENOENT', 'EEXIST', 'EIO', 'EMFILE', 'EBUSY', 'EXDEV'])
const NET_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'EPIPE', 'ENOTFOUND', 'EAI_AGAIN', 'EPROTO', 'UND_ERR_CONNECT_TIMEOUT', 'UND_ERR_SOCKET', 'UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_BODY_TIMEOUT',
  // TLS: a certificate the client does not trust, or a handshake that fails
  ...UNTRUSTED_CERT_CODES, 'CERT_HAS_EXPIRED', 'CERT_NOT_YET_VALID', 'CERT_UNTRUSTED', 'ERR_TLS_CERT_ALTNAME_INVALID', 'ERR_SSL_WRONG_VERSION_NUMBER'])

export function exitCodeFor (err: any): number {
  const code: string | undefined = err?.code
  switch (code) {
    case 'ERR_INVALID_ARGUMENT': case 'commander.invalidArgument': case 'commander.missingArgument':
    case 'commander.unknownOption': case 'commander.unknownCommand': case 'commander.optionMissingArgument':
    case 'commander.excessArguments': case 'commander.missingMandatoryOptionValue':
      return EXIT.USAGE
    case 'ERR_INVALID_FORMAT': case 'ERR_MESSAGE_TOO_LARGE': return EXIT.INVALID_FORMAT
    case 'ERR_CHUNK_MISSING': case 'ERR_ALL_SOURCES_FAILED': return EXIT.CHUNK_MISSING
    case 'ERR_CHUNK_INVALID': return EXIT.CHUNK_INVALID
    case 'ERR_ORIGIN': return EXIT.NETWORK
    case 'ERR_INTERRUPTED': case 'ABORT_ERR': return EXIT.INTERRUPTED
  }
  if (code != null && IO_CODES.has(code)) return EXIT.IO
  if (code != null && NET_CODES.has(code)) return EXIT.NETWORK
  return EXIT.FAILURE
}

export const EXIT_CODES_HELP = `
Exit codes:
  0  success            4  chunks missing from every source
  1  other failure      5  a chunk failed verification and no source had a good copy
  2  usage error        6  network or origin error
  3  corrupt input      7  file-system error (permission, space, missing file)
  130 interrupted (Ctrl+C)`
