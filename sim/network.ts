// The network model: every link (a host's uplink and downlink, a LAN segment's trunk, the
// origin's egress) is a processor-sharing server, so concurrent transfers on a link share its
// capacity fairly (each of n active transfers gets capacity/n). A transfer occupies every link of
// its path at once (cut-through, as a TCP stream does) and is done when the last of them has
// carried its bytes, then a one-way latency later; so its time is set by its bottleneck link's
// fair share. Each link keeps its own virtual clock, which costs O(log n) per link per chunk
// instead of a global max-min recomputation on every change. (A transfer that is fast on one
// link leaves it early, so a link may lend a little more than a strict max-min share; every
// link still carries at most its capacity.)
import type { Simulation } from './engine.ts'

interface Job {
  transfer: Transfer
  tag: number
  dead: boolean
}

/** A transfer in progress (one chunk or message over a path). */
export interface Transfer {
  readonly bytes: number
  readonly path: Link[]
  /** links still carrying it */
  left: number
  jobs: Job[]
  readonly latency: number
  /** called once: true when the last byte arrived (after the latency), false when a link failed */
  readonly done: (ok: boolean, transfer: Transfer) => void
  finished: boolean
  /** free for the caller (the transport keeps its request here) */
  tag?: unknown
}

/** Per-bucket byte counts over simulated time (origin egress for the plot). */
export class Meter {
  readonly bucket: number
  readonly values: number[] = []
  total = 0

  constructor (bucketSeconds: number) { this.bucket = bucketSeconds }

  add (time: number, bytes: number): void {
    const i = Math.floor(time / this.bucket)
    while (this.values.length <= i) this.values.push(0)
    this.values[i]! += bytes
    this.total += bytes
  }
}

export class Link {
  readonly name: string
  /** bytes per second */
  capacity: number
  up = true
  /** bytes that finished crossing this link */
  carried = 0
  meter?: Meter
  private readonly sim: Simulation
  private active = 0
  /** virtual time: the service each active job has received so far, in bytes */
  private virtual = 0
  private last = 0
  private heap: Job[] = []
  /** the pending timer (an event handle; -1: none) and when it fires */
  private timer = -1
  private timerAt = Infinity
  private readonly onTimer: () => void

  constructor (sim: Simulation, name: string, capacity: number) {
    this.sim = sim
    this.name = name
    this.capacity = capacity
    this.onTimer = () => {
      this.timer = -1
      this.timerAt = Infinity
      this.advance()
      while (this.heap.length > 0 && this.heap[0]!.dead) this.popJob()
      const head = this.heap[0]
      if (head == null || this.active === 0) return
      // rounding: the head may still lack a hair of service; finish it then
      const remaining = head.tag - this.virtual
      if (remaining > 1e-9 * head.tag && remaining * this.active / this.capacity > 1e-12) this.reschedule()
      else this.complete()
    }
  }

  get load (): number { return this.active }

  private advance (): void {
    const now = this.sim.now
    if (this.active > 0) this.virtual += (now - this.last) * this.capacity / this.active
    this.last = now
  }

  enter (transfer: Transfer): Job {
    this.advance()
    const job: Job = { transfer, tag: this.virtual + transfer.bytes, dead: false }
    this.pushJob(job)
    this.active++
    this.reschedule()
    return job
  }

  /** Removes a job whose transfer was aborted elsewhere (another link failed). */
  drop (job: Job): void {
    if (job.dead) return
    this.advance()
    job.dead = true
    this.active--
    this.reschedule()
  }

  /** Cuts the link: every transfer on it fails; new ones fail until restore(). */
  fail (): void {
    if (!this.up) return
    this.advance()
    this.up = false
    const jobs = this.heap
    this.heap = []
    this.active = 0
    this.cancelTimer()
    for (const job of jobs) {
      if (job.dead) continue
      job.dead = true
      abortTransfer(this.sim, job.transfer)
    }
  }

  restore (): void {
    if (this.up) return
    this.advance()
    this.up = true
  }

  /** Changes the capacity from now on (a slow origin, a throttled link). */
  setCapacity (capacity: number): void {
    this.advance()
    this.capacity = capacity
    this.reschedule()
  }

  /**
   * Sets the timer for the first job's finish, cancelling one set for another time (a transfer
   * that joins delays the others' finish, one that leaves hastens it): the timer that fires is
   * the one that finishes a job, and the work happens while the link is in the cache.
   */
  private reschedule (): void {
    while (this.heap.length > 0 && this.heap[0]!.dead) this.popJob()
    if (this.active === 0 || this.heap.length === 0) {
      this.cancelTimer()
      return
    }
    const remaining = Math.max(0, this.heap[0]!.tag - this.virtual)
    const at = this.sim.now + remaining * this.active / this.capacity
    if (this.timerAt === at) return
    this.cancelTimer()
    this.timerAt = at
    this.timer = this.sim.at(at, this.onTimer)
  }

  private cancelTimer (): void {
    if (this.timer >= 0) this.sim.cancel(this.timer)
    this.timer = -1
    this.timerAt = Infinity
  }

  private complete (): void {
    this.advance()
    const job = this.popJob()
    if (job == null) return
    job.dead = true // done here: a later drop() must not count it again
    this.active--
    // the finished job's tag is the virtual time now (up to rounding): snap to it
    if (job.tag > this.virtual) this.virtual = job.tag
    const t = job.transfer
    this.carried += t.bytes
    this.meter?.add(this.sim.now, t.bytes)
    this.reschedule()
    if (--t.left === 0 && !t.finished) {
      if (t.latency > 0) this.sim.after(t.latency, deliver, t)
      else finish(t, true)
    }
  }

  private pushJob (job: Job): void {
    const h = this.heap
    let i = h.length
    h.push(job)
    while (i > 0) {
      const p = (i - 1) >> 1
      if (h[p]!.tag <= job.tag) break
      h[i] = h[p]!
      i = p
    }
    h[i] = job
  }

  private popJob (): Job | undefined {
    const h = this.heap
    if (h.length === 0) return undefined
    const top = h[0]!
    const last = h.pop()!
    const m = h.length
    if (m > 0) {
      let i = 0
      for (;;) {
        const l = 2 * i + 1
        if (l >= m) break
        const r = l + 1
        const c = r < m && h[r]!.tag < h[l]!.tag ? r : l
        if (last.tag <= h[c]!.tag) break
        h[i] = h[c]!
        i = c
      }
      h[i] = last
    }
    return top
  }
}

function finish (t: Transfer, ok: boolean): void {
  if (t.finished) return
  t.finished = true
  t.done(ok, t)
}

function dropAll (t: Transfer): void {
  for (let i = 0; i < t.jobs.length; i++) t.path[i]!.drop(t.jobs[i]!)
}

function abortTransfer (sim: Simulation, t: Transfer): void {
  if (t.finished || t.left < 0) return
  t.left = -1
  dropAll(t)
  // the failure is seen at once (a reset connection)
  sim.after(0, (x: Transfer) => { finish(x, false) }, t)
}

const deliver = (t: Transfer): void => { if (!t.finished && t.left === 0) finish(t, true) }

/** Starts moving `bytes` over `path`; `done(ok)` is called once. */
export function startTransfer (sim: Simulation, path: Link[], bytes: number, latency: number, done: (ok: boolean, t: Transfer) => void, tag?: unknown): Transfer {
  const t: Transfer = { bytes, path, left: path.length, jobs: [], latency, done, finished: false, tag }
  for (const link of path) {
    if (!link.up) { abortTransfer(sim, t); return t }
  }
  for (const link of path) t.jobs.push(link.enter(t))
  if (path.length === 0) sim.after(latency, deliver, t)
  return t
}

/** Aborts a transfer from outside (the receiver gave up or its host left). */
export function cancelTransfer (_sim: Simulation, t: Transfer): void {
  if (t.finished) return
  t.finished = true
  dropAll(t)
}
