// The simulator's engine: event order, fair sharing on a link, the PRNG.
import '../helpers/setup.ts'
import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { EventQueue, Simulation } from '../../sim/engine.ts'
import { Link, startTransfer } from '../../sim/network.ts'
import { Random } from '../../sim/random.ts'

describe('sim engine', () => {
  it('pops events by time, and same-time events in the order they were pushed', () => {
    const q = new EventQueue()
    const order: string[] = []
    const rng = new Random(9)
    const items = Array.from({ length: 500 }, (_, i) => ({ t: Math.floor(rng.next() * 50), i }))
    for (const { t, i } of items) q.push(t, () => { order.push(`${t}:${i}`) })
    for (let e = q.pop(); e != null; e = q.pop()) e.handler(e.arg)
    const expected = [...items].sort((a, b) => a.t - b.t || a.i - b.i).map(x => `${x.t}:${x.i}`)
    assert.deepEqual(order, expected)
  })

  it('cancels a queued event (it never runs, the others keep their order); a handle whose event ran or was cancelled does nothing', () => {
    const q = new EventQueue()
    const ran: number[] = []
    const rng = new Random(4)
    const handles: number[] = []
    for (let i = 0; i < 300; i++) handles.push(q.push(Math.floor(rng.next() * 40), (x: number) => { ran.push(x) }, i))
    const cancelled = new Set<number>()
    for (let i = 0; i < 300; i += 3) { assert.equal(q.cancel(handles[i]!), true); cancelled.add(i) }
    assert.equal(q.cancel(handles[0]!), false, 'twice')
    assert.equal(q.size, 200)
    const times = new Map<number, number>()
    // replay with the same times to know the expected order
    const rng2 = new Random(4)
    for (let i = 0; i < 300; i++) times.set(i, Math.floor(rng2.next() * 40))
    for (let e = q.pop(); e != null; e = q.pop()) e.handler(e.arg)
    const expected = [...times].filter(([i]) => !cancelled.has(i)).sort((a, b) => a[1] - b[1] || a[0] - b[0]).map(([i]) => i)
    assert.deepEqual(ran, expected)
    // a slot is reused after its event ran: the old handle must not cancel the new event
    const h1 = q.push(1, () => {})
    q.pop()
    let fired = false
    q.push(2, () => { fired = true })
    assert.equal(q.cancel(h1), false)
    q.pop()!.handler(undefined)
    assert.equal(fired, true)
  })

  it('shares a link fairly: two equal transfers finish together at twice the time of one', () => {
    const sim = new Simulation()
    const link = new Link(sim, 'l', 1000) // 1000 bytes/s
    const done: Record<string, number> = {}
    startTransfer(sim, [link], 1000, 0, (ok) => { assert.ok(ok); done.a = sim.now })
    startTransfer(sim, [link], 1000, 0, (ok) => { assert.ok(ok); done.b = sim.now })
    sim.run()
    assert.ok(Math.abs(done.a! - 2) < 1e-9 && Math.abs(done.b! - 2) < 1e-9, JSON.stringify(done))
    assert.equal(link.carried, 2000)
  })

  it('processor sharing: a short transfer is not stuck behind a long one', () => {
    const sim = new Simulation()
    const link = new Link(sim, 'l', 1000)
    const done: Record<string, number> = {}
    startTransfer(sim, [link], 3000, 0, () => { done.long = sim.now })
    sim.after(1, () => { startTransfer(sim, [link], 500, 0.25, () => { done.short = sim.now }) })
    sim.run()
    // at t=1 the long one has 2000 left; both get 500 B/s; the short one needs 1 s, plus 0.25 s latency
    assert.ok(Math.abs(done.short! - 2.25) < 1e-9, String(done.short))
    // the long one: 500 B in [1,2], then 1500 B alone → t = 3.5
    assert.ok(Math.abs(done.long! - 3.5) < 1e-9, String(done.long))
  })

  it('a transfer over two links runs at the slower one; a failed link aborts it', () => {
    const sim = new Simulation()
    const fast = new Link(sim, 'fast', 4000)
    const slow = new Link(sim, 'slow', 1000)
    let t1 = -1
    startTransfer(sim, [fast, slow], 2000, 0, () => { t1 = sim.now })
    sim.run()
    assert.ok(Math.abs(t1 - 2) < 1e-9, String(t1))
    let result: boolean | undefined
    startTransfer(sim, [fast, slow], 2000, 0, (ok) => { result = ok })
    sim.after(0.5, () => { slow.fail() })
    sim.run()
    assert.equal(result, false)
    assert.equal(slow.load, 0)
    assert.equal(fast.load, 0)
  })

  it('the PRNG is deterministic per seed and spreads evenly', () => {
    const a = new Random(42)
    const b = new Random(42)
    const c = new Random(43)
    const xs = Array.from({ length: 1000 }, () => a.next())
    assert.deepEqual(xs, Array.from({ length: 1000 }, () => b.next()))
    assert.notDeepEqual(xs, Array.from({ length: 1000 }, () => c.next()))
    const buckets = new Array(10).fill(0)
    for (const x of xs) { assert.ok(x >= 0 && x < 1); buckets[Math.floor(x * 10)]++ }
    for (const n of buckets) assert.ok(n > 60 && n < 140, `uneven buckets ${buckets.join(',')}`)
    assert.deepEqual(new Random(5).sample(10, 10).sort((p, q) => p - q), [0, 1, 2, 3, 4, 5, 6, 7, 8, 9])
  })
})
