// Stores from CLI strings. A local path is a LocalStore; other kinds (http://, https://, 'a|b'
// failover groups) register an opener in `storeOpeners`.
import * as path from 'node:path'
import type { DigestAlgorithm } from '../../protocol/chunk-id.ts'
import type { Compression } from '../../protocol/compression.ts'
import { DEFAULT_STORE_NAME } from '../../protocol/constants.ts'
import type { ChunkStore } from './chunk-store.ts'
import { LocalStore } from './local-store.ts'
import { isHttpUrl } from '../http/client.ts'
import { HttpUploadStore } from '../http/upload.ts'
import { FailoverGroup } from './failover.ts'
import { HttpStore } from './http-store.ts'

export interface OpenStoreOptions {
  digest: DigestAlgorithm
  compression?: Compression
  /** the store will be written to (make); local stores are created on the first put */
  writable?: boolean
}

export const storeOpeners: Array<{ matches: (location: string) => boolean, open: (location: string, options: OpenStoreOptions) => ChunkStore }> = []

export function openStore (location: string, options: OpenStoreOptions): ChunkStore {
  const opener = storeOpeners.find(o => o.matches(location))
  if (opener != null) return opener.open(location, options)
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(location)) throw Object.assign(new Error(`unsupported store location ${location}`), { code: 'ERR_INVALID_ARGUMENT' })
  return new LocalStore(location, { digest: options.digest, compression: options.compression })
}

/** casync's default: the index location's last component replaced by default.castr (spec §2.2). */
export function defaultStoreFor (indexLocation: string): string {
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(indexLocation)) {
    const url = new URL(indexLocation)
    url.pathname = url.pathname.replace(/[^/]*$/, DEFAULT_STORE_NAME)
    url.search = ''
    url.hash = ''
    return url.toString()
  }
  return path.join(path.dirname(indexLocation), DEFAULT_STORE_NAME)
}

// 'a|b': mirrors of one store, tried in turn on errors other than "missing" (node/store/failover.ts).
// http(s)://: an HTTP store; opened for writing (make), it uploads with the token in CASWARM_TOKEN.
storeOpeners.push(
  {
    matches: (location) => location.includes('|'),
    open: (location, options) => new FailoverGroup(location.split('|').filter(p => p.trim() !== '').map(p => openStore(p.trim(), options)))
  },
  {
    matches: isHttpUrl,
    open: (location, options) => options.writable === true
      ? new HttpUploadStore(location, { digest: options.digest, compression: options.compression })
      : new HttpStore(location, { digest: options.digest, compression: options.compression })
  }
)
