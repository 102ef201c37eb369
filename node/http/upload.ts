// Uploads to `caswarm serve` (started with a token): a writable HTTP chunk store and an index PUT.
// `make --store=http://…` asks HEAD for each chunk and PUTs only those the server lacks, then the
// index. The server verifies every chunk before it keeps it.
import type { ChunkId } from '../../protocol/chunk-id.ts'
import { compress } from '../../protocol/compression.ts'
import { OriginError } from '../../protocol/errors.ts'
import type { AbortOptions } from '../store/chunk-store.ts'
import { HttpStore, type HttpStoreComponents, type HttpStoreInit } from '../store/http-store.ts'
import { HttpClient, statusError, type HttpClientInit } from './client.ts'

/** The token uploads send when none is given: env CASWARM_TOKEN. */
export function defaultToken (): string | undefined {
  const t = process.env.CASWARM_TOKEN
  return t != null && t !== '' ? t : undefined
}

function refused (statusCode: number, url: string): OriginError {
  const hint = statusCode === 401 || statusCode === 403
    ? ' (upload refused: start `caswarm serve` with --token and give the same token in CASWARM_TOKEN)'
    : statusCode === 405 ? ' (this server takes no uploads)' : ''
  return statusError(statusCode, url, hint)
}

async function expectStored (statusCode: number, body: { dump: () => Promise<void>, text: () => Promise<string> }, url: string): Promise<void> {
  if (statusCode === 200 || statusCode === 201 || statusCode === 204) { await body.dump(); return }
  let detail = ''
  try { detail = (await body.text()).trim().slice(0, 300) } catch {}
  const err = refused(statusCode, url)
  if (detail !== '') err.message += `: ${detail}`
  throw err
}

export class HttpUploadStore extends HttpStore {
  constructor (url: string, init: HttpStoreInit = {}, components?: HttpStoreComponents) {
    super(url, { ...init, token: init.token ?? defaultToken() }, components)
  }

  override async put (id: ChunkId, data: Uint8Array, options: AbortOptions = {}): Promise<void> {
    if (await this.has(id, options)) return
    await this.putCompressed(id, await compress(data, this.compression), options)
  }

  /** PUTs the chunk file; the server verifies it and keeps it (an existing copy is left alone). */
  async putCompressed (id: ChunkId, compressed: Uint8Array, options: AbortOptions = {}): Promise<void> {
    await this.client.run({
      method: 'PUT',
      path: this.chunkUrlPath(id),
      body: compressed,
      headers: { 'content-type': 'application/octet-stream' },
      signal: options.signal,
      handle: async ({ statusCode, body }, url) => { await expectStored(statusCode, body, url) }
    })
    this.log.trace('uploaded %s (%d bytes)', id.toString(), compressed.byteLength)
  }
}

/** PUTs an encoded index to its URL (after its chunks). */
export async function uploadIndex (url: string, bytes: Uint8Array, init: HttpClientInit & { signal?: AbortSignal } = {}): Promise<void> {
  const parsed = new URL(url)
  const client = new HttpClient(parsed.origin, { ...init, token: init.token ?? defaultToken(), connections: 1, pipelining: 1 })
  try {
    await client.run({
      method: 'PUT',
      path: parsed.pathname + parsed.search,
      body: bytes,
      headers: { 'content-type': 'application/octet-stream' },
      signal: init.signal,
      handle: async ({ statusCode, body }, u) => { await expectStored(statusCode, body, u) }
    })
  } finally {
    await client.close()
  }
}
