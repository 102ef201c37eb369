// A bounded count of holders released in FIFO order: the HTTP client's requests in flight,
// make's jobs in flight on the worker pool.

/** A bounded count of holders, released in FIFO order. */
export class Limiter {
  readonly limit: number
  private active = 0
  private readonly waiting: Array<() => void> = []

  constructor (limit: number) {
    this.limit = Math.max(1, limit)
  }

  async acquire (signal?: AbortSignal): Promise<() => void> {
    signal?.throwIfAborted()
    if (this.active >= this.limit) {
      await new Promise<void>((resolve, reject) => {
        const go = (): void => { signal?.removeEventListener('abort', onAbort); resolve() }
        const onAbort = (): void => {
          const i = this.waiting.indexOf(go)
          if (i >= 0) this.waiting.splice(i, 1)
          reject(signal!.reason)
        }
        signal?.addEventListener('abort', onAbort, { once: true })
        this.waiting.push(go)
      })
    }
    this.active++
    let released = false
    return () => {
      if (released) return
      released = true
      this.active--
      this.waiting.shift()?.()
    }
  }
}
