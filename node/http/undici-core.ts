// The part of undici caswarm's HTTP client uses: Pool and the request API. undici's main entry
// also loads fetch, WebSocket, EventSource, cookies and the cache interceptors, which costs
// ~170 ms in every thread that imports it; Pool and request alone load in ~40 ms, and an extract
// over HTTP loads them in three threads while it starts. undici 7 has no "exports" map, so its
// files can be imported directly; should a later undici move them, the main entry is used.
import type { Dispatcher, Pool } from 'undici'

export interface UndiciCore {
  Pool: typeof Pool
  /** `dispatcher.request(options)`, for any dispatcher (a Pool, an Agent, a MockAgent) */
  request: (dispatcher: Dispatcher, options: Dispatcher.RequestOptions) => Promise<Dispatcher.ResponseData>
}

let loading: Promise<UndiciCore> | undefined

// non-literal specifiers: these files have no type declarations of their own
const POOL = 'undici/lib/dispatcher/pool.js'
const API = 'undici/lib/api/index.js'

export function loadUndici (): Promise<UndiciCore> {
  loading ??= (async (): Promise<UndiciCore> => {
    try {
      const [pool, api] = await Promise.all([import(POOL), import(API)])
      const PoolClass = pool.default as typeof Pool
      const request = api.default?.request as ((this: Dispatcher, o: Dispatcher.RequestOptions) => Promise<Dispatcher.ResponseData>) | undefined
      if (typeof PoolClass !== 'function' || typeof request !== 'function') throw new Error('undici layout changed')
      return { Pool: PoolClass, request: (d, o) => request.call(d, o) }
    } catch {
      const undici = await import('undici')
      return { Pool: undici.Pool, request: async (d, o) => await d.request(o) }
    }
  })()
  return loading
}
