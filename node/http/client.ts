// What every HTTP client in caswarm shares: one undici Pool per origin (keep-alive connections),
// a bound on requests in flight, retries with jittered exponential backoff on 5xx, resets and
// timeouts, bodies read with a size limit, and errors that name the method and URL.
import { setMaxListeners } from 'node:events'
import { setTimeout as sleep } from 'node:timers/promises'
import type { Dispatcher } from 'undici'
import { loadUndici, type UndiciCore } from './undici-core.ts'
import { Limiter } from '../limiter.ts'
import { ChunkInvalidError, OriginError, UNTRUSTED_CERT_CODES } from '../../protocol/errors.ts'

/** requests in flight, and keep-alive connections (one per request: see HttpClientInit.connections) */
export const DEFAULT_CONCURRENCY = 16
export const DEFAULT_CONNECTIONS = 16

export interface HttpClientInit {
  /** Requests in flight at once (across connections). @default 16 */
  concurrency?: number
  /**
   * Keep-alive connections to the origin. @default 16: one per request in flight. Pipelined
   * requests measured no faster on loopback and far slower behind a 2 ms round trip (1,952 chunks:
   * 2.2 s over 4 connections pipelining 4, 1.1 s over 16 connections), and many servers and
   * proxies handle pipelining poorly.
   */
  connections?: number
  /** Requests pipelined on one connection. @default 1 */
  pipelining?: number
  /** Time allowed for the response headers, and between two pieces of a body (ms). @default 30_000 */
  timeout?: number
  /** @default 10_000 */
  connectTimeout?: number
  /** Further attempts after a retryable failure. @default 4 */
  retries?: number
  /** First backoff delay (ms); doubles per attempt, with jitter. @default 100 */
  retryDelay?: number
  /** Longest backoff delay (ms). @default 5_000 */
  maxRetryDelay?: number
  /** Sent as `Authorization: Bearer <token>` (uploads to `caswarm serve`). */
  token?: string
  /** A dispatcher to use instead of an own Pool (tests pass a MockAgent); not closed by close(). */
  dispatcher?: Dispatcher
}

/** Counters every HTTP client keeps; bytes are body bytes on the wire (headers not counted). */
export interface HttpStats {
  requests: number
  retries: number
  /** requests that ended in an error after all retries */
  failures: number
  bytesReceived: number
  bytesSent: number
}

const RETRYABLE_CODES = new Set([
  'ECONNRESET', 'ECONNREFUSED', 'EPIPE', 'ETIMEDOUT', 'ECONNABORTED', 'EAI_AGAIN',
  'UND_ERR_SOCKET', 'UND_ERR_CLOSED', 'UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_BODY_TIMEOUT',
  'UND_ERR_CONNECT_TIMEOUT', 'UND_ERR_RES_CONTENT_LENGTH_MISMATCH', 'UND_ERR_REQ_CONTENT_LENGTH_MISMATCH',
  'ERR_TRUNCATED_BODY'
])

/** Whether another attempt may succeed: 5xx, 408, 429, resets, timeouts, truncated bodies. */
export function isRetryable (err: any): boolean {
  if (err == null) return false
  if (err.code === OriginError.code) {
    const s = err.statusCode as number
    return s >= 500 || s === 408 || s === 429
  }
  if (RETRYABLE_CODES.has(err.code)) return true
  return err.cause != null && err.cause !== err && isRetryable(err.cause)
}


/** A response read whole by the client (`Attempt.limit`). */
export interface BytesResponse {
  statusCode: number
  headers: Record<string, string | string[] | undefined>
  /** the body of a 2xx response; empty for any other status (its body is dropped) */
  body: Uint8Array
}

interface AttemptBase {
  method: 'GET' | 'HEAD' | 'PUT'
  /** path and query, relative to the origin */
  path: string
  body?: Uint8Array
  headers?: Record<string, string>
  /** retry once on ChunkInvalidError too (a bad copy in transit or in a proxy) */
  retryInvalid?: boolean
  signal?: AbortSignal
}

/**
 * One request. The handler throws OriginError for a status to retry, anything else to stop. With
 * `limit`, the client reads a 2xx body whole (at most `limit` bytes, exactly its Content-Length)
 * through undici's dispatch API, without a stream per response: the path every chunk takes.
 */
export type Attempt<T> = AttemptBase & (
  | { handle: (res: Dispatcher.ResponseData, url: string) => Promise<T> }
  | { limit: number, handleBytes: (res: BytesResponse, url: string) => Promise<T> | T }
)

const raisedListenerLimit = new WeakSet<AbortSignal>()

/** One origin: a Pool, a limiter, retry policy and counters. */
export class HttpClient {
  readonly origin: string
  readonly stats: HttpStats = { requests: 0, retries: 0, failures: 0, bytesReceived: 0, bytesSent: 0 }
  readonly timeout: number
  private dispatcher?: Dispatcher
  /** undici is imported on the first request (node/http/undici-core.ts) */
  private dispatcherReady?: Promise<{ dispatcher: Dispatcher, request: UndiciCore['request'] }>
  private readonly poolOptions: ConstructorParameters<typeof import('undici').Pool>[1]
  private readonly ownDispatcher: boolean
  private readonly limiter: Limiter
  private readonly retries: number
  private readonly retryDelay: number
  private readonly maxRetryDelay: number
  private readonly token?: string
  private closed = false

  constructor (origin: string, init: HttpClientInit = {}) {
    this.origin = new URL(origin).origin
    this.timeout = init.timeout ?? 30_000
    this.retries = init.retries ?? 4
    this.retryDelay = init.retryDelay ?? 100
    this.maxRetryDelay = init.maxRetryDelay ?? 5_000
    this.token = init.token
    this.limiter = new Limiter(init.concurrency ?? DEFAULT_CONCURRENCY)
    this.ownDispatcher = init.dispatcher == null
    this.dispatcher = init.dispatcher
    this.poolOptions = {
      connections: init.connections ?? DEFAULT_CONNECTIONS,
      pipelining: init.pipelining ?? 1,
      connect: { timeout: init.connectTimeout ?? 10_000 },
      keepAliveTimeout: 30_000,
      headersTimeout: this.timeout,
      bodyTimeout: this.timeout
    }
  }

  private async getDispatcher (): Promise<{ dispatcher: Dispatcher, request: UndiciCore['request'] }> {
    this.dispatcherReady ??= loadUndici().then(({ Pool, request }) => {
      this.dispatcher ??= new Pool(this.origin, this.poolOptions)
      return { dispatcher: this.dispatcher, request }
    })
    return await this.dispatcherReady
  }

  get hasToken (): boolean { return this.token != null && this.token !== '' }

  /** Runs a request with retries; the final error names the method and URL and keeps its code. */
  async run<T> (attempt: Attempt<T>): Promise<T> {
    const url = this.origin + attempt.path
    const signal = attempt.signal
    // one caller signal is shared by every request in flight (and waiting for a slot)
    if (signal != null && !raisedListenerLimit.has(signal)) { setMaxListeners(0, signal); raisedListenerLimit.add(signal) }
    let invalidRetried = false
    let lastError: { retryAfterMs?: number } | undefined
    for (let n = 0; ; n++) {
      signal?.throwIfAborted()
      const release = await this.limiter.acquire(signal)
      let result: T
      try {
        this.stats.requests++
        const headers: Record<string, string> = { ...attempt.headers }
        if (this.hasToken) headers.authorization = `Bearer ${this.token!}`
        if (attempt.body != null) this.stats.bytesSent += attempt.body.byteLength
        const { dispatcher, request } = await this.getDispatcher()
        const options: Dispatcher.RequestOptions = {
          origin: this.origin,
          path: attempt.path,
          method: attempt.method,
          headers,
          body: attempt.body != null ? Buffer.from(attempt.body.buffer, attempt.body.byteOffset, attempt.body.byteLength) : undefined,
          headersTimeout: this.timeout,
          bodyTimeout: this.timeout
        }
        if ('limit' in attempt) {
          const res = await collect(dispatcher, options, attempt.limit, url, this.stats, signal)
          return await attempt.handleBytes(res, url)
        }
        const res = await request(dispatcher, { ...options, signal })
        try {
          result = await attempt.handle(res, url)
        } finally {
          if (!res.body.destroyed && !res.body.readableEnded) res.body.destroy()
        }
        return result
      } catch (err: any) {
        if (signal?.aborted === true) throw signal.reason
        const invalid = err?.code === ChunkInvalidError.code
        const again = invalid ? attempt.retryInvalid === true && !invalidRetried : isRetryable(err)
        if (!again || n >= this.retries) {
          this.stats.failures++
          throw describe(err, attempt.method, url, n + 1)
        }
        if (invalid) invalidRetried = true
        this.stats.retries++
        lastError = err
      } finally {
        release()
      }
      const delay = lastError?.retryAfterMs != null
        ? Math.min(lastError.retryAfterMs, Math.max(this.maxRetryDelay, MAX_RETRY_AFTER)) // the server said when
        : Math.min(this.maxRetryDelay, this.retryDelay * 2 ** n) * (0.5 + Math.random() / 2)
      await sleep(delay, undefined, { signal })
    }
  }

  /** Closes the own Pool (once; later calls do nothing). */
  async close (): Promise<void> {
    if (!this.ownDispatcher || this.closed) return
    this.closed = true
    if (this.dispatcherReady != null) await (await this.dispatcherReady).dispatcher.close()
  }
}

/**
 * Sends one request through `dispatcher.dispatch` and reads the response whole: a 2xx body into
 * one buffer (sized from Content-Length when there is one), refusing more than `limit` bytes and
 * a body shorter than its Content-Length; any other status's body is counted and dropped.
 */
function collect (dispatcher: Dispatcher, options: Dispatcher.DispatchOptions, limit: number, url: string, counter: HttpStats, signal?: AbortSignal): Promise<BytesResponse> {
  return new Promise((resolve, reject) => {
    let controller: Dispatcher.DispatchController | undefined
    let statusCode = 0
    let headers: BytesResponse['headers'] = {}
    let keep = false
    let expected: number | undefined
    let body: Buffer | undefined
    let parts: Buffer[] | undefined
    let received = 0
    let settled = false
    const onAbort = (): void => { controller?.abort(signal!.reason) }
    const finish = (err: unknown, res?: BytesResponse): void => {
      if (settled) return
      settled = true
      signal?.removeEventListener('abort', onAbort)
      if (err != null) reject(err)
      else resolve(res!)
    }
    const fail = (err: Error): void => { finish(err); controller?.abort(err) }
    if (signal != null) {
      if (signal.aborted) { reject(signal.reason); return }
      signal.addEventListener('abort', onAbort, { once: true })
    }
    dispatcher.dispatch(options, {
      onRequestStart (c) {
        controller = c
        if (signal?.aborted === true) c.abort(signal.reason)
      },
      onResponseStart (_c, status, h) {
        if (status < 200) return // 1xx: the real status follows
        statusCode = status
        headers = h as BytesResponse['headers']
        keep = status >= 200 && status < 300
        const length = h['content-length']
        expected = typeof length === 'string' ? Number.parseInt(length, 10) : undefined
        if (!keep) return
        if (expected != null && expected > limit) {
          fail(new OriginError(200, url, `response of ${expected} bytes is larger than the ${limit} allowed`))
          return
        }
        if (expected != null) body = Buffer.allocUnsafe(expected)
        else parts = []
      },
      onResponseData (_c, chunk) {
        if (settled) return
        counter.bytesReceived += chunk.byteLength
        if (!keep) { received += chunk.byteLength; return }
        if (received + chunk.byteLength > (expected ?? limit)) {
          if (expected != null) fail(Object.assign(new Error(`body longer than its Content-Length of ${expected} bytes`), { code: 'UND_ERR_RES_CONTENT_LENGTH_MISMATCH' }))
          else fail(new OriginError(200, url, `response is larger than the ${limit} bytes allowed`))
          return
        }
        if (body != null) chunk.copy(body, received)
        else parts!.push(chunk)
        received += chunk.byteLength
      },
      onResponseEnd () {
        if (settled) return
        if (keep && expected != null && received !== expected) {
          finish(Object.assign(new Error(`body ended after ${received} of ${expected} bytes`), { code: 'ERR_TRUNCATED_BODY' }))
          return
        }
        const bytes = !keep ? new Uint8Array(0) : body ?? Buffer.concat(parts!, received)
        finish(null, { statusCode, headers, body: new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength) })
      },
      onResponseError (_c, err) { finish(err) }
    })
  })
}

/** Puts "METHOD URL" in front of an error's message (once), and the attempt count. */
function describe (err: any, method: string, url: string, attempts: number): Error {
  if (!(err instanceof Error)) err = new Error(String(err))
  const where = `${method} ${url}`
  if (!err.message.includes(url)) err.message = `${where}: ${err.message}`
  if (attempts > 1) err.message += ` (after ${attempts} attempts)`
  if (UNTRUSTED_CERT_CODES.has((err as any).code)) err.message += ' (a private CA can be trusted with NODE_EXTRA_CA_CERTS=/path/to/ca.pem)'
  return err
}

/**
 * A status other than the expected ones, as an OriginError naming the URL; with the response's
 * headers, a Retry-After (seconds or an HTTP date) is kept for the next attempt's wait.
 */
export function statusError (statusCode: number, url: string, what = '', headers?: BytesResponse['headers']): OriginError {
  const err = new OriginError(statusCode, url, `the server answered ${statusCode}${what !== '' ? ` ${what}` : ''}`)
  const after = headers?.['retry-after']
  if (typeof after === 'string' && after !== '') {
    const ms = /^\d+$/.test(after.trim()) ? Number(after.trim()) * 1000 : Date.parse(after) - Date.now()
    if (Number.isFinite(ms)) err.retryAfterMs = Math.max(0, ms)
  }
  return err
}

/** the longest a Retry-After is obeyed (a longer one is cut to this), ms */
const MAX_RETRY_AFTER = 30_000

export function isHttpUrl (location: string): boolean {
  return /^https?:\/\//i.test(location)
}
