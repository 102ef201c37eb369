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

/** slots per generation in an event handle (handle = generation × SLOT_SPAN + slot) */
const SLOT_SPAN = 2 ** 26

/**
 * A 4-ary min-heap ordered by (time, seq) (half the levels of a binary one, and a node's
 * children share a cache line or two), kept in typed arrays: the heap moves two numbers and
 * a slot index per step, and an event allocates nothing (its handler and argument sit in a slot
 * reused once it has run). Tens of millions of events go through it in a 10,000-host run. Each
 * slot knows its place in the heap, so an event can be cancelled (`cancel(handle)`, O(log n))
 * instead of running for nothing: a wait that ended early, a timer set again.
 */
export class EventQueue {
  private times = new Float64Array(1024)
  private seqs = new Float64Array(1024)
  private slots = new Int32Array(1024)
  /** slot → its index in the heap (-1: not queued) */
  private pos = new Int32Array(1024).fill(-1)
  /** slot → how many times it has been freed (stale handles compare it) */
  private gens = new Int32Array(1024)
  private handlers: Array<EventHandler | undefined> = new Array(1024).fill(undefined)
  private args: unknown[] = new Array(1024).fill(undefined)
  private free = new Int32Array(1024)
  private nFree = 0
  private nSlots = 0
  private n = 0
  private seq = 0

  get size (): number { return this.n }

  /** Queues `handler(arg)` at `time`; returns a handle for cancel(). */
  push (time: number, handler: EventHandler, arg?: unknown): number {
    let slot: number
    if (this.nFree > 0) slot = this.free[--this.nFree]!
    else {
      slot = this.nSlots++
      if (slot >= this.handlers.length) {
        this.handlers.length = 2 * slot
        this.args.length = 2 * slot
      }
      if (slot >= this.pos.length) this.growSlots()
    }
    this.handlers[slot] = handler
    this.args[slot] = arg
    if (this.n === this.times.length) this.grow()
    this.siftUp(this.n++, time, this.seq++, slot)
    return this.gens[slot]! * SLOT_SPAN + slot
  }

  /** Removes a queued event; false if it already ran or was cancelled. */
  cancel (handle: number): boolean {
    const slot = handle % SLOT_SPAN
    if (slot >= this.nSlots || this.gens[slot] !== (handle - slot) / SLOT_SPAN) return false
    const i = this.pos[slot]!
    if (i < 0) return false
    const m = --this.n
    if (i < m) {
      // the last entry takes the freed place, then moves up or down to where it belongs
      const lt = this.times[m]!
      const ls = this.seqs[m]!
      const lsl = this.slots[m]!
      const p = (i - 1) >> 2
      if (i > 0 && (this.times[p]! > lt || (this.times[p] === lt && this.seqs[p]! > ls))) this.siftUp(i, lt, ls, lsl)
      else this.siftDown(i, lt, ls, lsl)
    }
    this.release(slot)
    this.handlers[slot] = undefined
    this.args[slot] = undefined
    return true
  }

  peekTime (): number {
    return this.n > 0 ? this.times[0]! : Infinity
  }

  /** Removes the earliest event; returns its slot (-1 if none). Its handler and arg stay readable until the next push. */
  popSlot (): number {
    if (this.n === 0) return -1
    const top = this.slots[0]!
    const m = --this.n
    if (m > 0) this.siftDown(0, this.times[m]!, this.seqs[m]!, this.slots[m]!)
    this.release(top)
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

  private release (slot: number): void {
    this.pos[slot] = -1
    this.gens[slot]!++
    this.free[this.nFree++] = slot
  }

  /** Places (time, seq, slot) at heap index i or above. */
  private siftUp (i: number, time: number, seq: number, slot: number): void {
    const t = this.times
    const s = this.seqs
    const sl = this.slots
    const pos = this.pos
    while (i > 0) {
      const p = (i - 1) >> 2
      const pt = t[p]!
      if (pt < time || (pt === time && s[p]! < seq)) break
      t[i] = pt
      s[i] = s[p]!
      sl[i] = sl[p]!
      pos[sl[i]!] = i
      i = p
    }
    t[i] = time
    s[i] = seq
    sl[i] = slot
    pos[slot] = i
  }

  /** Places (time, seq, slot) at heap index i or below (the heap has this.n entries). */
  private siftDown (i: number, time: number, seq: number, slot: number): void {
    const t = this.times
    const s = this.seqs
    const sl = this.slots
    const pos = this.pos
    const m = this.n
    for (;;) {
      const first = 4 * i + 1
      if (first >= m) break
      // the earliest of up to four children
      let c = first
      let ct = t[first]!
      const last = first + 3 < m ? first + 3 : m - 1
      for (let k = first + 1; k <= last; k++) {
        const kt = t[k]!
        if (kt < ct || (kt === ct && s[k]! < s[c]!)) { c = k; ct = kt }
      }
      if (time < ct || (time === ct && seq < s[c]!)) break
      t[i] = ct
      s[i] = s[c]!
      sl[i] = sl[c]!
      pos[sl[i]!] = i
      i = c
    }
    t[i] = time
    s[i] = seq
    sl[i] = slot
    pos[slot] = i
  }

  private grow (): void {
    const cap = 2 * this.times.length
    const t = new Float64Array(cap); t.set(this.times); this.times = t
    const s = new Float64Array(cap); s.set(this.seqs); this.seqs = s
    const sl = new Int32Array(cap); sl.set(this.slots); this.slots = sl
  }

  private growSlots (): void {
    const cap = 2 * this.pos.length
    const p = new Int32Array(cap).fill(-1); p.set(this.pos); this.pos = p
    const g = new Int32Array(cap); g.set(this.gens); this.gens = g
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

  /** Runs `handler(arg)` `delay` seconds from now; returns a handle for cancel(). */
  after (delay: number, handler: EventHandler, arg?: unknown): number {
    return this.queue.push(this.now + (delay > 0 ? delay : 0), handler, arg)
  }

  /** Runs `handler(arg)` at absolute time `time` (or now, if that has passed); returns a handle for cancel(). */
  at (time: number, handler: EventHandler, arg?: unknown): number {
    return this.queue.push(time > this.now ? time : this.now, handler, arg)
  }

  /** Drops a scheduled event that has not run; false if it already ran or was cancelled. */
  cancel (handle: number): boolean {
    return this.queue.cancel(handle)
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
