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

/**
 * A binary min-heap ordered by (time, seq), kept in typed arrays: the heap moves two numbers and
 * a slot index per step, and an event allocates nothing (its handler and argument sit in a slot
 * reused once it has run). Tens of millions of events go through it in a 10,000-host run.
 */
export class EventQueue {
  private times = new Float64Array(1024)
  private seqs = new Float64Array(1024)
  private slots = new Int32Array(1024)
  private handlers: Array<EventHandler | undefined> = new Array(1024).fill(undefined)
  private args: unknown[] = new Array(1024).fill(undefined)
  private free = new Int32Array(1024)
  private nFree = 0
  private nSlots = 0
  private n = 0
  private seq = 0

  get size (): number { return this.n }

  push (time: number, handler: EventHandler, arg?: unknown): void {
    let slot: number
    if (this.nFree > 0) slot = this.free[--this.nFree]!
    else {
      slot = this.nSlots++
      if (slot >= this.handlers.length) {
        this.handlers.length = 2 * slot
        this.args.length = 2 * slot
      }
    }
    this.handlers[slot] = handler
    this.args[slot] = arg
    if (this.n === this.times.length) this.grow()
    const seq = this.seq++
    const t = this.times
    const s = this.seqs
    const sl = this.slots
    let i = this.n++
    while (i > 0) {
      const p = (i - 1) >> 1
      const pt = t[p]!
      if (pt < time || (pt === time && s[p]! < seq)) break
      t[i] = pt
      s[i] = s[p]!
      sl[i] = sl[p]!
      i = p
    }
    t[i] = time
    s[i] = seq
    sl[i] = slot
  }

  peekTime (): number {
    return this.n > 0 ? this.times[0]! : Infinity
  }

  /** Removes the earliest event; returns its slot (-1 if none). Its handler and arg stay readable until the next push. */
  popSlot (): number {
    if (this.n === 0) return -1
    const t = this.times
    const s = this.seqs
    const sl = this.slots
    const top = sl[0]!
    const m = --this.n
    if (m > 0) {
      const lt = t[m]!
      const ls = s[m]!
      const lsl = sl[m]!
      let i = 0
      for (;;) {
        const l = 2 * i + 1
        if (l >= m) break
        const r = l + 1
        let c = l
        let ct = t[l]!
        if (r < m) {
          const rt = t[r]!
          if (rt < ct || (rt === ct && s[r]! < s[l]!)) { c = r; ct = rt }
        }
        if (lt < ct || (lt === ct && ls < s[c]!)) break
        t[i] = ct
        s[i] = s[c]!
        sl[i] = sl[c]!
        i = c
      }
      t[i] = lt
      s[i] = ls
      sl[i] = lsl
    }
    this.free[this.nFree++] = top
    return top
  }

  handlerOf (slot: number): EventHandler { return this.handlers[slot]! }
  argOf (slot: number): unknown { return this.args[slot] }

  /** Takes the slot's handler and argument out (so the argument can be collected). */
  take (slot: number): void {
    this.handlers[slot] = undefined
    this.args[slot] = undefined
  }

  pop (): Entry | undefined {
    if (this.n === 0) return undefined
    const time = this.times[0]!
    const seq = this.seqs[0]!
    const slot = this.popSlot()
    const e: Entry = { time, seq, handler: this.handlers[slot]!, arg: this.args[slot] }
    this.take(slot)
    return e
  }

  private grow (): void {
    const cap = 2 * this.times.length
    const t = new Float64Array(cap); t.set(this.times); this.times = t
    const s = new Float64Array(cap); s.set(this.seqs); this.seqs = s
    const sl = new Int32Array(cap); sl.set(this.slots); this.slots = sl
    const f = new Int32Array(cap); f.set(this.free); this.free = f
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
      const time = q.peekTime()
      if (time > until || time === Infinity) break
      const slot = q.popSlot()
      this.now = time
      const handler = q.handlerOf(slot)
      const arg = q.argOf(slot)
      q.take(slot)
      handler(arg)
      if (++n === yieldEvery) { this.events += n; n = 0; onYield?.() }
    }
    this.events += n
  }

  get pending (): number { return this.queue.size }
}
