// `caswarm serve`: a chunk store and its indexes over HTTP, at the paths a static server would use
// for the same directories, so casync-http, nginx mirrors and CDNs need nothing special:
//   /<store dir name>/<4hex>/<id>.cacnk   (also /<4hex>/<id>.cacnk)     chunks, GET and HEAD
//   /<path under --index-dir>.caibx|.caidx                               indexes, GET and HEAD
//   /metrics                                                             Prometheus metrics
// With a token, PUT uploads chunks (verified before they are kept) and indexes (decoded first).
import { timingSafeEqual, createHash } from 'node:crypto'
import * as fs from 'node:fs/promises'
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import * as path from 'node:path'
import { Counter, Histogram, Registry, collectDefaultMetrics } from 'prom-client'
import { ChunkId, type DigestAlgorithm } from '../../protocol/chunk-id.ts'
import { CHUNK_SUFFIX, MAX_CHUNK_DECOMPRESSED } from '../../protocol/constants.ts'
import { ChunkInvalidError } from '../../protocol/errors.ts'
import { decodeIndex } from '../../protocol/index-file.ts'
import { writeFileAtomic } from '../index-io.ts'
import { defaultLogger, type ComponentLogger, type Logger } from '../logger.ts'
import { LocalStore } from '../store/local-store.ts'
import { decodeChunk } from '../store/verify.ts'

export interface ChunkServerInit {
  /** the .castr directory served */
  store: string
  /** directory whose .caibx/.caidx files are served (and uploaded into) */
  indexDir?: string
  /** enables PUT; clients send `Authorization: Bearer <token>` */
  token?: string
  /** digests an uploaded chunk may use. @default both, as casync tries both */
  digests?: DigestAlgorithm[]
  /** largest upload (chunk file or index). @default 128 MiB */
  maxUpload?: number
  /** called once per finished request (the request log) */
  onRequest?: (entry: RequestLogEntry) => void
  /** @default a new Registry with the default process metrics */
  registry?: Registry
}

export interface ChunkServerComponents { logger: ComponentLogger }

export interface RequestLogEntry {
  time: Date
  remote: string
  method: string
  path: string
  status: number
  /** body bytes sent (or received, for PUT) */
  bytes: number
  seconds: number
  kind: RequestKind
}

type RequestKind = 'chunk' | 'index' | 'metrics' | 'other'

const CHUNK_RE = /^\/([0-9a-f]{4})\/([0-9a-f]{64})(\.cacnk)?$/
const INDEX_RE = /\.ca(ibx|idx)$/

class HttpError extends Error {
  readonly status: number
  constructor (status: number, message: string) {
    super(message)
    this.status = status
  }
}

/** A request log line in the combined log format nginx writes. */
export function formatLogEntry (e: RequestLogEntry): string {
  const t = e.time.toISOString()
  return `${e.remote} - - [${t}] "${e.method} ${e.path} HTTP/1.1" ${e.status} ${e.bytes} ${e.seconds.toFixed(4)}`
}

export class ChunkServer {
  readonly storeDir: string
  readonly indexDir?: string
  readonly registry: Registry
  private readonly storeName: string
  private readonly token?: Buffer
  private readonly digests: DigestAlgorithm[]
  private readonly maxUpload: number
  private readonly onRequest?: (entry: RequestLogEntry) => void
  private readonly store: LocalStore
  private readonly server: Server
  private readonly log: Logger
  private readonly metrics: {
    requests: Counter<'method' | 'kind' | 'status'>
    bytes: Counter<'kind' | 'direction'>
    duration: Histogram<'kind'>
    uploads: Counter<'kind' | 'result'>
  }

  constructor (init: ChunkServerInit, components: ChunkServerComponents = { logger: defaultLogger() }) {
    this.storeDir = path.resolve(init.store)
    this.indexDir = init.indexDir != null ? path.resolve(init.indexDir) : undefined
    this.storeName = path.basename(this.storeDir)
    this.token = init.token != null && init.token !== '' ? createHash('sha256').update(init.token).digest() : undefined
    this.digests = init.digests ?? ['sha256', 'sha512-256']
    this.maxUpload = init.maxUpload ?? 128 * 1024 * 1024
    this.onRequest = init.onRequest
    this.store = new LocalStore(this.storeDir, { createIfMissing: true })
    this.log = components.logger.forComponent('caswarm:serve')
    this.registry = init.registry ?? new Registry()
    if (init.registry == null) collectDefaultMetrics({ register: this.registry, prefix: 'caswarm_' })
    const registers = [this.registry]
    this.metrics = {
      requests: new Counter({ name: 'caswarm_http_requests_total', help: 'HTTP requests by method, kind and status', labelNames: ['method', 'kind', 'status'], registers }),
      bytes: new Counter({ name: 'caswarm_http_body_bytes_total', help: 'body bytes sent (out) and received (in)', labelNames: ['kind', 'direction'], registers }),
      duration: new Histogram({ name: 'caswarm_http_request_duration_seconds', help: 'time to answer a request', labelNames: ['kind'], buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1, 5], registers }),
      uploads: new Counter({ name: 'caswarm_uploads_total', help: 'PUT uploads by kind and result (stored, exists, rejected)', labelNames: ['kind', 'result'], registers })
    }
    this.server = createServer({ keepAliveTimeout: 30_000 }, (req, res) => { void this.handle(req, res) })
  }

  /** Listens; port 0 picks a free one. Resolves with the base URL. */
  async listen (port = 8080, host = '127.0.0.1'): Promise<string> {
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject)
      this.server.listen(port, host, () => { this.server.off('error', reject); resolve() })
    })
    return this.url
  }

  get address (): AddressInfo { return this.server.address() as AddressInfo }

  get url (): string {
    const a = this.address
    const host = a.family === 'IPv6' ? `[${a.address}]` : a.address
    return `http://${host}:${a.port}/`
  }

  /** The URL of the store (what `--store=` takes). */
  get storeUrl (): string { return `${this.url}${encodeURIComponent(this.storeName)}/` }

  async close (): Promise<void> {
    await new Promise<void>((resolve) => {
      this.server.close(() => { resolve() })
      this.server.closeAllConnections()
    })
  }

  private async handle (req: IncomingMessage, res: ServerResponse): Promise<void> {
    const started = performance.now()
    const method = req.method ?? 'GET'
    let kind: RequestKind = 'other'
    let bytes = 0
    let urlPath = req.url ?? '/'
    try {
      urlPath = decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname)
      const target = this.route(urlPath)
      kind = target.kind
      if (target.kind === 'metrics') {
        if (method !== 'GET' && method !== 'HEAD') throw new HttpError(405, 'GET only')
        const text = await this.registry.metrics()
        bytes = this.send(res, method, 200, Buffer.from(text), this.registry.contentType, 'no-store')
      } else if (method === 'GET' || method === 'HEAD') {
        if (target.file == null) throw new HttpError(404, 'not found')
        const data = await this.readFile(target.file)
        bytes = this.send(res, method, 200, data, 'application/octet-stream',
          target.kind === 'chunk' ? 'public, max-age=31536000, immutable' : 'no-cache')
      } else if (method === 'PUT') {
        bytes = await this.upload(req, res, target)
      } else {
        res.setHeader('allow', this.token != null ? 'GET, HEAD, PUT' : 'GET, HEAD')
        throw new HttpError(405, `${method} is not supported`)
      }
    } catch (err: any) {
      const status = err instanceof HttpError ? err.status : 500
      if (status === 500) this.log.error('%s %s failed - %e', method, urlPath, err)
      if (!res.headersSent) {
        const body = Buffer.from(`${String(err?.message ?? err)}\n`)
        res.writeHead(status, { 'content-type': 'text/plain; charset=utf-8', 'content-length': body.byteLength })
        res.end(method === 'HEAD' ? undefined : body)
      } else {
        res.destroy()
      }
      // an unread upload body must not be taken for the next request
      if (!req.complete) req.resume()
    }
    const seconds = (performance.now() - started) / 1000
    const status = res.statusCode
    this.metrics.requests.inc({ method, kind, status: String(status) })
    this.metrics.duration.observe({ kind }, seconds)
    if (bytes > 0) this.metrics.bytes.inc({ kind, direction: method === 'PUT' ? 'in' : 'out' }, bytes)
    this.onRequest?.({ time: new Date(), remote: req.socket.remoteAddress ?? '-', method, path: req.url ?? urlPath, status, bytes, seconds, kind })
  }

  /** Maps a decoded URL path to what it names. */
  private route (urlPath: string): { kind: RequestKind, file?: string, id?: ChunkId, indexFile?: string } {
    if (urlPath === '/metrics') return { kind: 'metrics' }
    if (urlPath.includes('\0')) throw new HttpError(400, 'bad path')
    let rest: string | undefined
    const prefix = `/${this.storeName}`
    if (urlPath.startsWith(prefix + '/')) rest = urlPath.slice(prefix.length)
    else if (CHUNK_RE.test(urlPath)) rest = urlPath
    if (rest != null) {
      const m = CHUNK_RE.exec(rest)
      if (m == null || !m[2]!.startsWith(m[1]!)) return { kind: 'chunk' }
      const id = ChunkId.parse(m[2]!)
      // `<4hex>/<id>` without the suffix is casync's uncompressed form (spec §2.2)
      return { kind: 'chunk', id, file: path.join(this.storeDir, m[1]!, m[2]! + (m[3] != null ? CHUNK_SUFFIX : '')) }
    }
    if (this.indexDir != null && INDEX_RE.test(urlPath)) {
      const segments = urlPath.split('/').filter(s => s !== '')
      if (segments.some(s => s === '..' || s === '.' || s.startsWith('.'))) throw new HttpError(400, 'bad path')
      const file = path.join(this.indexDir, ...segments)
      if (!file.startsWith(this.indexDir + path.sep)) throw new HttpError(400, 'bad path')
      return { kind: 'index', file, indexFile: file }
    }
    return { kind: 'other' }
  }

  private async readFile (file: string): Promise<Buffer> {
    try {
      const st = await fs.stat(file)
      if (!st.isFile()) throw new HttpError(404, 'not found')
      return await fs.readFile(file)
    } catch (err: any) {
      if (err instanceof HttpError) throw err
      if (err.code === 'ENOENT' || err.code === 'ENOTDIR') throw new HttpError(404, 'not found')
      if (err.code === 'EACCES') throw new HttpError(403, 'forbidden')
      throw err
    }
  }

  private send (res: ServerResponse, method: string, status: number, body: Buffer, type: string, cache: string): number {
    res.writeHead(status, { 'content-type': type, 'content-length': body.byteLength, 'cache-control': cache })
    if (method === 'HEAD') { res.end(); return 0 }
    res.end(body)
    return body.byteLength
  }

  private authorized (req: IncomingMessage): boolean {
    if (this.token == null) return false
    const m = /^Bearer\s+(.+)$/i.exec(req.headers.authorization ?? '')
    if (m == null) return false
    return timingSafeEqual(createHash('sha256').update(m[1]!.trim()).digest(), this.token)
  }

  private async readUpload (req: IncomingMessage): Promise<Buffer> {
    const length = Number.parseInt(req.headers['content-length'] ?? '', 10)
    if (Number.isFinite(length) && length > this.maxUpload) throw new HttpError(413, `upload larger than ${this.maxUpload} bytes`)
    const parts: Buffer[] = []
    let n = 0
    for await (const piece of req as AsyncIterable<Buffer>) {
      n += piece.byteLength
      if (n > this.maxUpload) throw new HttpError(413, `upload larger than ${this.maxUpload} bytes`)
      parts.push(piece)
    }
    if (Number.isFinite(length) && n !== length) throw new HttpError(400, `upload ended after ${n} of ${length} bytes`)
    return Buffer.concat(parts, n)
  }

  private async upload (req: IncomingMessage, res: ServerResponse, target: { kind: RequestKind, id?: ChunkId, indexFile?: string }): Promise<number> {
    if (this.token == null) { res.setHeader('allow', 'GET, HEAD'); throw new HttpError(405, 'this server takes no uploads (start it with a token)') }
    if (!this.authorized(req)) { res.setHeader('www-authenticate', 'Bearer'); throw new HttpError(401, 'a valid bearer token is needed to upload') }
    if (target.kind === 'chunk' && target.id != null) {
      const id = target.id
      if (await this.store.has(id)) {
        await this.readUpload(req)
        this.metrics.uploads.inc({ kind: 'chunk', result: 'exists' })
        res.writeHead(200, { 'content-length': 0 }).end()
        return 0
      }
      const body = await this.readUpload(req)
      await this.verifyUpload(id, body)
      await this.store.putCompressed(id, body)
      this.metrics.uploads.inc({ kind: 'chunk', result: 'stored' })
      res.writeHead(201, { 'content-length': 0 }).end()
      return body.byteLength
    }
    if (target.kind === 'index' && target.indexFile != null) {
      const body = await this.readUpload(req)
      try {
        decodeIndex(body)
      } catch (err: any) {
        this.metrics.uploads.inc({ kind: 'index', result: 'rejected' })
        throw new HttpError(422, `not a valid index: ${String(err?.message ?? err)}`)
      }
      await fs.mkdir(path.dirname(target.indexFile), { recursive: true })
      await writeFileAtomic(target.indexFile, body, { mode: 0o644 })
      this.metrics.uploads.inc({ kind: 'index', result: 'stored' })
      res.writeHead(201, { 'content-length': 0 }).end()
      return body.byteLength
    }
    throw new HttpError(target.kind === 'chunk' ? 400 : 404, target.kind === 'chunk' ? 'not a chunk path' : 'not a chunk or index path')
  }

  /** A chunk is kept only if it decompresses to bytes whose digest (either algorithm) is its name. */
  private async verifyUpload (id: ChunkId, body: Uint8Array): Promise<void> {
    let last: any
    for (const digest of this.digests) {
      try {
        await decodeChunk(id, body, digest, { maxSize: MAX_CHUNK_DECOMPRESSED })
        return
      } catch (err: any) {
        last = err
        // a chunk that does not even decompress will not do better with the other digest
        if (err?.code !== ChunkInvalidError.code || err.actual == null) break
      }
    }
    this.metrics.uploads.inc({ kind: 'chunk', result: 'rejected' })
    throw new HttpError(422, `chunk rejected: ${String(last?.message ?? last)}`)
  }
}
