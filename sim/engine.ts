// The discrete-event core: a virtual clock and a priority queue of timed callbacks. Nothing here
// reads the wall clock; events at the same instant run in the order they were scheduled, so a
// run is a pure function of its inputs and seed.

export type EventHandler = (arg: any) => void

interface Entry {
  time: number
  seq: number
  handler: EventHandler
  arg: unknown
}

/** A binary min-heap ordered by (time, seq). */
export class EventQueue {
  private readonly heap: Entry[] = []
  private seq = 0

  get size (): number { return this.heap.length }

  push (time: number, handler: EventHandler, arg?: unknown): void {
    const e: Entry = { time, seq: this.seq++, handler, arg }
    const h = this.heap
    let i = h.length
    h.push(e)
    while (i > 0) {
      const p = (i - 1) >> 1
      const q = h[p]!
      if (q.time < time || (q.time === time && q.seq < e.seq)) break
      h[i] = q
      i = p
    }
    h[i] = e
  }

  peekTime (): number {
    return this.heap.length > 0 ? this.heap[0]!.time : Infinity
  }

  pop (): Entry | undefined {
    const h = this.heap
    const n = h.length
    if (n === 0) return undefined
    const top = h[0]!
    const last = h.pop()!
    if (n > 1) {
      const m = n - 1
      let i = 0
      for (;;) {
        const l = 2 * i + 1
        if (l >= m) break
        const r = l + 1
        let c = l
        let cv = h[l]!
        if (r < m) {
          const rv = h[r]!
          if (rv.time < cv.time || (rv.time === cv.time && rv.seq < cv.seq)) { c = r; cv = rv }
        }
        if (last.time < cv.time || (last.time === cv.time && last.seq < cv.seq)) break
        h[i] = cv
        i = c
      }
      h[i] = last
    }
    return top
  }
}

/** The simulation clock and scheduler. Times are in simulated seconds. */
export class Simulation {
  now = 0
  /** events run so far (a measure of work for the report) */
  events = 0
  private readonly queue = new EventQueue()
  private stopped = false

  /** Runs `handler(arg)` `delay` seconds from now. */
  after (delay: number, handler: EventHandler, arg?: unknown): void {
    this.queue.push(this.now + (delay > 0 ? delay : 0), handler, arg)
  }

  /** Runs `handler(arg)` at absolute time `time` (or now, if that has passed). */
  at (time: number, handler: EventHandler, arg?: unknown): void {
    this.queue.push(time > this.now ? time : this.now, handler, arg)
  }

  stop (): void { this.stopped = true }

  /**
   * Runs events in time order until none are left, `stop()` is called, or the clock passes
   * `until`. `onYield` is called every `yieldEvery` events (for progress and abort checks).
   */
  run (until = Infinity, onYield?: () => void, yieldEvery = 1 << 20): void {
    this.stopped = false
    const q = this.queue
    let n = 0
    while (!this.stopped) {
      if (q.peekTime() > until) break
      const e = q.pop()
      if (e == null) break
      this.now = e.time
      e.handler(e.arg)
      if (++n === yieldEvery) { this.events += n; n = 0; onYield?.() }
    }
    this.events += n
  }

  get pending (): number { return this.queue.size }
}
