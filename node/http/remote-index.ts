// Fetching an index (.caibx/.caidx) from an http(s):// URL, with the same retries as chunk fetches.
// The bytes are decoded as they arrive by node/index-io.ts, so a bad index names its URL and offset.
import { HttpClient, statusError, type HttpClientInit } from './client.ts'

/** Largest index accepted: 1 GiB (about 27 million chunks). */
export const MAX_INDEX_SIZE = 1 << 30

export interface FetchIndexOptions extends HttpClientInit {
  signal?: AbortSignal
  /** @default MAX_INDEX_SIZE */
  maxSize?: number
}

/** The index file's bytes; a 404 is an ENOENT-coded error naming the URL. */
export async function * fetchIndexStream (url: string, options: FetchIndexOptions = {}): AsyncGenerator<Uint8Array> {
  const parsed = new URL(url)
  const client = new HttpClient(parsed.origin, { connections: 1, pipelining: 1, ...options })
  const limit = options.maxSize ?? MAX_INDEX_SIZE
  try {
    // The whole body is read inside the retried attempt (an index is small next to its image),
    // so a reset halfway is retried rather than surfacing as a truncated index.
    const bytes = await client.run({
      method: 'GET',
      path: parsed.pathname + parsed.search,
      signal: options.signal,
      limit,
      handleBytes: ({ statusCode, headers, body }, u) => {
        if (statusCode === 404 || statusCode === 410) {
          throw Object.assign(new Error(`index ${u} does not exist (${statusCode})`), { code: 'ENOENT' })
        }
        if (statusCode !== 200) throw statusError(statusCode, u, '', headers)
        return body
      }
    })
    yield bytes
  } finally {
    await client.close()
  }
}
