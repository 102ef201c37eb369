import '../helpers/setup.ts'
import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { describe, it } from 'node:test'
import { SwarmPolicy, chunkSizeDefaults, nextRandom, ownerLanes, pickRecent, positionOwner, rendezvousOwner } from '../../node/swarm/policy.ts'

const chunkKey = (n: number): string => createHash('sha256').update(`chunk ${n}`).digest('hex')
const chunks = Array.from({ length: 400 }, (_, i) => chunkKey(i))
const IDX = 'index-1'

function fleet (names: string[], now = 0): Map<string, SwarmPolicy> {
  const m = new Map<string, SwarmPolicy>()
  for (const n of names) {
    const p = new SwarmPolicy({ self: n })
    for (const o of names) if (o !== n) p.addPeer(o, now)
    m.set(n, p)
  }
  // everybody lacks everything and says so to everybody
  for (const p of m.values()) for (const n of names) p.noteWants(IDX, n, chunks, now)
  return m
}

describe('swarm policy', () => {
  it('rendezvous owner is order-independent and splits chunks evenly', () => {
    const hosts = ['h1', 'h2', 'h3', 'h4', 'h5']
    const counts = new Map<string, number>()
    for (const c of chunks) {
      const a = rendezvousOwner(hosts, c)!
      const b = rendezvousOwner([...hosts].reverse(), c)!
      assert.equal(a, b)
      counts.set(a, (counts.get(a) ?? 0) + 1)
    }
    assert.equal(counts.size, 5)
    for (const n of counts.values()) assert.ok(n > 400 / 5 * 0.6 && n < 400 / 5 * 1.4, `uneven split ${[...counts.values()].join(',')}`)
    // removing one host only moves that host's chunks
    for (const c of chunks) {
      const before = rendezvousOwner(hosts, c)!
      const after = rendezvousOwner(hosts.filter(h => h !== 'h3'), c)!
      if (before !== 'h3') assert.equal(after, before)
    }
  })

  it('hosts with the same view agree: each chunk has exactly one origin fetcher', () => {
    const names = ['a', 'b', 'c', 'd', 'e']
    const f = fleet(names)
    for (const c of chunks) {
      const fetchers = names.filter(n => f.get(n)!.plan(IDX, c, 0).action === 'origin')
      assert.equal(fetchers.length, 1, `chunk ${c} fetched by ${fetchers.join(',')}`)
      for (const n of names) {
        const plan = f.get(n)!.plan(IDX, c, 0)
        if (n !== fetchers[0]) assert.deepEqual(plan, { action: 'wait', peer: fetchers[0], until: 3000, reason: 'owner' })
      }
    }
  })

  it('a host alone fetches from the origin; a holder is preferred to the origin', () => {
    const p = new SwarmPolicy({ self: 'a' })
    p.noteWants(IDX, 'a', chunks, 0)
    assert.deepEqual(p.plan(IDX, chunks[0]!, 0), { action: 'origin', reason: 'owner' })
    p.addPeer('b', 0)
    p.noteHave(IDX, 'b', chunks[0]!, 1)
    assert.deepEqual(p.plan(IDX, chunks[0]!, 1), { action: 'peer', peer: 'b' })
  })

  it('when the owner announces the chunk, waiters fetch it from the owner', () => {
    const f = fleet(['a', 'b'])
    const c = chunks.find(c => f.get('a')!.ownerOf(IDX, c, 0) === 'b')!
    const a = f.get('a')!
    assert.equal(a.plan(IDX, c, 0).action, 'wait')
    a.noteHave(IDX, 'b', c, 10)
    assert.deepEqual(a.plan(IDX, c, 10), { action: 'peer', peer: 'b' })
  })

  it('a dead or silent owner cannot stall anyone past ownerTimeout', () => {
    const f = fleet(['a', 'b', 'c'])
    const a = f.get('a')!
    const c = chunks.find(c => a.ownerOf(IDX, c, 0) === 'b')!
    const plan = a.plan(IDX, c, 0)
    assert.equal(plan.action, 'wait')
    // progress from b pushes the deadline out
    a.noteHave(IDX, 'b', chunks.find(x => x !== c)!, 2500)
    assert.equal(a.plan(IDX, c, 3000).action, 'wait')
    assert.deepEqual(a.plan(IDX, c, 5500), { action: 'origin', reason: 'timeout' })
    assert.equal(a.reputation('b').strikes, 1)
    // b leaves: its chunks are re-split among the rest at once
    const d = chunks.find(x => a.ownerOf(IDX, x, 0) === 'b' && x !== c)!
    a.removePeer('b', 6000)
    const owner = a.ownerOf(IDX, d, 6000)
    assert.ok(owner === 'a' || owner === 'c')
    assert.equal(a.plan(IDX, d, 6000).action, owner === 'a' ? 'origin' : 'wait')
  })

  it('a late joiner waits for a peer that announced it is fetching the chunk', () => {
    const a = new SwarmPolicy({ self: 'a' })
    a.noteWants(IDX, 'a', chunks, 0)
    a.addPeer('b', 0)
    // b was alone and started fetching everything; it has no wants left to share for chunk 0
    a.noteFetching('b', chunks[0]!, 0)
    const plan = a.plan(IDX, chunks[0]!, 1)
    assert.equal(plan.action, 'wait')
    assert.equal(plan.action === 'wait' && plan.reason, 'fetching')
  })

  it('the origin prefetch starts once no host has joined the index for `quiet` ms, and at most `settle` ms after the join', () => {
    const a = new SwarmPolicy({ self: 'a' })
    assert.equal(a.lastWorkerJoin(IDX), Number.NEGATIVE_INFINITY)
    a.noteWants(IDX, 'a', chunks, 1000)
    // a wave that started together: everyone heard of by 1002, so the prefetch starts at 1002 + quiet
    a.addPeer('b', 1001)
    a.noteWants(IDX, 'b', chunks, 1001)
    a.addPeer('c', 1002)
    a.noteWants(IDX, 'c', chunks, 1002)
    // a host already known saying more is not a join
    a.noteWants(IDX, 'b', chunks.slice(0, 3), 1400)
    assert.equal(a.lastWorkerJoin(IDX), 1002)
    assert.equal(a.prefetchStartAt(IDX, 1000, 300, 1500), 1302)
    // nobody else: quiet counts from the join itself
    const lone = new SwarmPolicy({ self: 'z' })
    lone.noteWants(IDX, 'z', chunks, 500)
    assert.equal(lone.prefetchStartAt(IDX, 500, 300, 1500), 800)
    // hosts that keep arriving push it back, up to the settle
    a.addPeer('d', 1900)
    a.noteWants(IDX, 'd', chunks, 1900)
    assert.equal(a.prefetchStartAt(IDX, 1000, 300, 1500), 2200)
    a.addPeer('e', 2400)
    a.noteWants(IDX, 'e', chunks, 2400)
    assert.equal(a.prefetchStartAt(IDX, 1000, 300, 1500), 2500)
  })

  it('holders are chosen by load and per-peer in-flight limits are kept', () => {
    const p = new SwarmPolicy({ self: 'a', maxInFlightPerPeer: 2 })
    for (const peer of ['b', 'c']) {
      p.addPeer(peer, 0)
      p.noteHaves(IDX, peer, chunks, 0)
    }
    const picks: string[] = []
    for (let i = 0; i < 4; i++) {
      const plan = p.plan(IDX, chunks[i]!, 0)
      assert.equal(plan.action, 'peer')
      if (plan.action !== 'peer') return
      p.requestStarted(plan.peer, chunks[i]!, 0)
      picks.push(plan.peer)
    }
    assert.deepEqual(picks.sort(), ['b', 'b', 'c', 'c'])
    const busy = p.plan(IDX, chunks[5]!, 0)
    assert.equal(busy.action, 'wait')
    assert.equal(busy.action === 'wait' && busy.reason, 'busy')
    p.requestSucceeded('b', chunks[0]!, 100, 1)
    assert.deepEqual(p.plan(IDX, chunks[5]!, 1), { action: 'peer', peer: 'b' })
  })

  it('a peer serving a bad chunk is banned, forgotten and refused; the ban expires', () => {
    const p = new SwarmPolicy({ self: 'a', banDuration: 1000 })
    p.noteWants(IDX, 'a', chunks, 0)
    p.addPeer('evil', 0)
    p.noteWants(IDX, 'evil', chunks, 0)
    p.noteHaves(IDX, 'evil', chunks.slice(0, 10), 0)
    p.requestStarted('evil', chunks[0]!, 0)
    p.requestFailed('evil', chunks[0]!, 'invalid', 1)
    assert.equal(p.isBanned('evil', 1), true)
    assert.deepEqual(p.holdersOf(chunks[1]!, 1), [])
    assert.deepEqual(p.workers(IDX, 1), ['a'])
    for (const c of chunks) assert.deepEqual(p.plan(IDX, c, 1), { action: 'origin', reason: 'owner' })
    assert.equal(p.acceptInbound('evil', 1), false)
    p.noteHaves(IDX, 'evil', chunks, 2) // claims while banned are ignored
    assert.deepEqual(p.holdersOf(chunks[1]!, 2), [])
    assert.equal(p.reputation('evil').badChunks, 1)
    // the requests aborted when it was banned fail too: they neither add strikes nor change the ban
    const ban = p.reputation('evil')
    for (let i = 1; i < 6; i++) { p.requestStarted('evil', chunks[i]!, 1); p.requestFailed('evil', chunks[i]!, 'error', 2) }
    assert.deepEqual({ ...p.reputation('evil') }, { ...ban })
    assert.match(p.reputation('evil').banReason ?? '', /failed verification/)
    assert.equal(p.isBanned('evil', 1001), false)
    assert.equal(p.acceptInbound('evil', 1001), true)
  })

  it('false claims are strikes and enough of them ban', () => {
    const p = new SwarmPolicy({ self: 'a', maxStrikes: 3 })
    p.addPeer('liar', 0)
    p.noteHaves(IDX, 'liar', chunks, 0)
    for (let i = 0; i < 3; i++) {
      assert.deepEqual(p.plan(IDX, chunks[i]!, 0), { action: 'peer', peer: 'liar' })
      p.requestStarted('liar', chunks[i]!, 0)
      p.requestFailed('liar', chunks[i]!, 'missing', 0)
      assert.equal(p.has('liar', chunks[i]!, 0), false)
    }
    assert.equal(p.reputation('liar').falseClaims, 3)
    assert.equal(p.isBanned('liar', 0), true)
    // a "missing" for something never claimed is no strike
    p.addPeer('honest', 0)
    p.requestStarted('honest', chunks[9]!, 0)
    p.requestFailed('honest', chunks[9]!, 'missing', 0)
    assert.equal(p.reputation('honest').strikes, 0)
  })

  it('inbound limits per peer and in total', () => {
    const p = new SwarmPolicy({ self: 'a', maxInboundPerPeer: 2, maxInbound: 3 })
    assert.equal(p.acceptInbound('b', 0), true)
    assert.equal(p.acceptInbound('b', 0), true)
    assert.equal(p.acceptInbound('b', 0), false)
    assert.equal(p.acceptInbound('c', 0), true)
    assert.equal(p.acceptInbound('d', 0), false)
    p.inboundDone('b')
    assert.equal(p.acceptInbound('d', 0), true)
  })

  it('ownerLanes: 4 origin lanes per fetcher in a fleet of 16 or more, more in a smaller one (enough to keep 4 MiB in flight, up to 16)', () => {
    assert.equal(ownerLanes(4, 32, 64 << 10), 4)
    assert.equal(ownerLanes(4, 16, 64 << 10), 4)
    assert.equal(ownerLanes(4, 8, 64 << 10), 8)
    assert.equal(ownerLanes(4, 5, 64 << 10), 13)
    assert.equal(ownerLanes(4, 2, 64 << 10), 16)
    assert.equal(ownerLanes(4, 0, 64 << 10), 16)
    // larger chunks: the same bytes are fewer chunks
    assert.equal(ownerLanes(4, 2, 1 << 20), 4)
    assert.equal(ownerLanes(4, 1, 256 << 10), 16)
    assert.equal(ownerLanes(4, 3, 256 << 10), 6)
    // never fewer than asked for
    assert.equal(ownerLanes(20, 2, 64 << 10), 20)
    // a host asks one peer for as many chunks at once as a peer serves one host
    const p = new SwarmPolicy({ self: 'a' })
    assert.equal(p.maxInFlightPerPeer, p.maxInboundPerPeer)
  })

  it('a request that finds every slot taken may wait in a short queue; beyond it, or at its per-peer limit, BUSY', () => {
    const p = new SwarmPolicy({ self: 'a', maxInboundPerPeer: 2, maxInbound: 2, inboundQueue: 2 })
    assert.equal(p.acceptInbound('b', 0), true)
    // a free slot: nothing to queue for
    assert.equal(p.queueInbound('c', 0), false)
    assert.equal(p.acceptInbound('c', 0), true)
    assert.equal(p.acceptInbound('d', 0), false)
    assert.equal(p.queueInbound('d', 0), true)
    assert.equal(p.queueInbound('e', 0), true)
    // the queue is full
    assert.equal(p.queueInbound('f', 0), false)
    // d's turn: a slot frees, d leaves the queue and takes it; the queue has room again
    p.inboundDone('b')
    p.unqueueInbound()
    assert.equal(p.acceptInbound('d', 0), true)
    assert.equal(p.queueInbound('f', 0), true)
    // a peer at its per-peer limit is not queued, and neither is a banned one
    assert.equal(p.acceptInbound('c', 0), false)
    p.unqueueInbound()
    p.inboundDone('d')
    assert.equal(p.acceptInbound('c', 0), true)
    assert.equal(p.queueInbound('c', 0), false)
    p.ban('g', 0, 'test')
    assert.equal(p.queueInbound('g', 0), false)
    // by default one waits
    const q = new SwarmPolicy({ self: 'a', maxInbound: 1 })
    assert.equal(q.acceptInbound('b', 0), true)
    assert.deepEqual([q.queueInbound('c', 0), q.queueInbound('d', 0)], [true, false])
  })

  it('owners are drawn from the index\'s origin fetchers only, the same set on every host', () => {
    const names = Array.from({ length: 12 }, (_, i) => `h${i}`)
    const m = new Map<string, SwarmPolicy>()
    for (const n of names) {
      const p = new SwarmPolicy({ self: n, originFetchers: 3 })
      for (const o of names) if (o !== n) p.addPeer(o, 0)
      for (const o of names) p.noteWants(IDX, o, chunks, 0)
      m.set(n, p)
    }
    const fetchers = [...m.get('h0')!.originFetchersOf(IDX, 0)].sort()
    assert.equal(fetchers.length, 3)
    const owners = new Set<string>()
    for (const p of m.values()) {
      assert.deepEqual([...p.originFetchersOf(IDX, 0)].sort(), fetchers)
      for (const c of chunks.slice(0, 100)) owners.add(p.ownerOf(IDX, c, 0)!)
    }
    assert.deepEqual([...owners].sort(), fetchers, 'only fetchers own chunks, and all of them do')
    // a fetcher that leaves is replaced by the next in rank
    const p = m.get('h0')!
    p.leaveIndex(IDX, fetchers[0]!)
    const after = p.originFetchersOf(IDX, 0)
    assert.equal(after.size, 3)
    assert.ok(!after.has(fetchers[0]!) && after.has(fetchers[1]!) && after.has(fetchers[2]!))
  })

  it('with the index\'s chunk order, owners are dealt round robin by position: the same on every host, an even share each', () => {
    const names = Array.from({ length: 12 }, (_, i) => `h${i}`)
    const position = new Map(chunks.map((c, i) => [c, i]))
    const m = new Map<string, SwarmPolicy>()
    for (const n of names) {
      const p = new SwarmPolicy({ self: n, originFetchers: 7 })
      for (const o of names) if (o !== n) p.addPeer(o, 0)
      p.setChunkOrder(IDX, c => position.get(c))
      for (const o of names) p.noteWants(IDX, o, chunks, 0)
      m.set(n, p)
    }
    const ranked = [...m.get('h0')!.originFetchersOf(IDX, 0)]
    assert.equal(ranked.length, 7)
    const counts = new Map<string, number>()
    chunks.forEach((c, i) => {
      const owners = new Set(names.map(n => m.get(n)!.ownerOf(IDX, c, 0)))
      assert.equal(owners.size, 1, `hosts disagree on the owner of chunk ${i}`)
      const owner = [...owners][0]!
      // in rank order: chunk i goes to the (i mod 7)-th fetcher
      assert.equal(owner, ranked[i % 7])
      counts.set(owner, (counts.get(owner) ?? 0) + 1)
    })
    // 400 chunks over 7 fetchers: 57 or 58 each (hashing gave some fetchers twice the share of others)
    assert.deepEqual([...new Set(counts.values())].sort(), [57, 58])
    const byHash = new Map<string, number>()
    for (const c of chunks) { const o = rendezvousOwner(ranked, c)!; byHash.set(o, (byHash.get(o) ?? 0) + 1) }
    assert.ok(Math.max(...byHash.values()) - Math.min(...byHash.values()) > 1, 'rendezvous hashing is uneven (what dealing by position fixes)')
    // a fetcher that holds the chunk is skipped: the next one in rank takes it
    const p = m.get('h0')!
    const c0 = chunks[0]!
    p.noteHave(IDX, ranked[0]!, c0, 0)
    assert.equal(p.ownerOf(IDX, c0, 0), ranked[1])
    assert.equal(positionOwner(['x', 'y', 'z'], 7), 'y')
    assert.equal(positionOwner([], 3), undefined)
  })

  it('a host whose owner role moved to it waits for the peer already fetching the chunk, not the origin', () => {
    const p = new SwarmPolicy({ self: 'a' })
    p.addPeer('b', 0)
    p.setChunkOrder(IDX, c => chunks.indexOf(c))
    p.noteWants(IDX, 'a', chunks, 0)
    const c = chunks[5]!
    // only a lacks it, so a owns it; but b said it is fetching it (it owned it under another view)
    p.noteFetching('b', c, 10)
    assert.deepEqual(p.plan(IDX, c, 20), { action: 'wait', peer: 'b', until: 30_010, reason: 'fetching' })
  })

  it('a BUSY peer is left alone for busyRetry, longer while it stays busy, and is not struck', () => {
    const p = new SwarmPolicy({ self: 'a', busyRetry: 10 })
    p.addPeer('b', 0)
    p.addPeer('c', 0)
    p.noteWants(IDX, 'a', [chunks[0]!], 0)
    p.noteHaves(IDX, 'b', [chunks[0]!], 0)
    p.requestStarted('b', chunks[0]!, 0)
    p.requestFailed('b', chunks[0]!, 'busy', 0)
    assert.equal(p.reputation('b').strikes, 0)
    assert.ok(p.has('b', chunks[0]!, 0), 'the claim stands')
    const wait = p.plan(IDX, chunks[0]!, 1)
    assert.deepEqual(wait, { action: 'wait', peer: undefined, until: 10, reason: 'busy' })
    // another holder is asked meanwhile
    p.noteHaves(IDX, 'c', [chunks[0]!], 2)
    assert.deepEqual(p.plan(IDX, chunks[0]!, 2), { action: 'peer', peer: 'c' })
    // busy again: twice as long; a served chunk resets it
    p.requestStarted('b', chunks[0]!, 10)
    p.requestFailed('b', chunks[0]!, 'busy', 10)
    p.noteLacks('c', chunks[0]!, 10)
    assert.equal(p.plan(IDX, chunks[0]!, 25).action, 'wait', 'still left alone 15 ms later')
    assert.deepEqual(p.plan(IDX, chunks[0]!, 30), { action: 'peer', peer: 'b' })
    p.requestStarted('b', chunks[1]!, 30)
    p.requestSucceeded('b', chunks[1]!, 100, 30)
    p.requestStarted('b', chunks[0]!, 30)
    p.requestFailed('b', chunks[0]!, 'busy', 30)
    assert.deepEqual(p.plan(IDX, chunks[0]!, 31), { action: 'wait', peer: undefined, until: 40, reason: 'busy' })
  })

  it('setChunkSize scales upload slots, the BUSY pause and the origin fetchers to the chunk size; options given stay', () => {
    const p = new SwarmPolicy({ self: 'a' })
    const d = { maxInbound: p.maxInbound, busyRetry: p.busyRetry, originFetchers: p.originFetcherCount }
    // casync's 64 KiB: the constructor's defaults
    assert.deepEqual(chunkSizeDefaults(64 * 1024), { ...d, peerPrefetch: 6 })
    p.setChunkSize(64 * 1024)
    assert.deepEqual({ maxInbound: p.maxInbound, busyRetry: p.busyRetry, originFetchers: p.originFetcherCount }, d)
    // 4 MiB chunks take 64 times as long to move: a BUSY peer is left alone 64 times as long,
    // and fewer transfers share each link
    p.setChunkSize(4 << 20)
    assert.equal(p.busyRetry, 128)
    assert.equal(p.maxInbound, 4)
    assert.equal(p.maxInFlightPerPeer, p.maxInboundPerPeer)
    assert.equal(p.originFetcherCount, 8)
    assert.equal(chunkSizeDefaults(4 << 20).peerPrefetch, 4)
    const q = new SwarmPolicy({ self: 'a', busyRetry: 3, maxInbound: 9, originFetchers: 5 })
    q.setChunkSize(4 << 20)
    assert.deepEqual([q.busyRetry, q.maxInbound, q.originFetcherCount], [3, 9, 5])
    // the BUSY pause in a plan follows
    p.addPeer('b', 0)
    p.noteHaves(IDX, 'b', [chunks[0]!], 0)
    p.requestStarted('b', chunks[0]!, 0)
    p.requestFailed('b', chunks[0]!, 'busy', 0)
    assert.deepEqual(p.plan(IDX, chunks[0]!, 1), { action: 'wait', peer: undefined, until: 128, reason: 'busy' })
  })

  it('pickRecent takes one of the most recent announcements, spread over them', () => {
    assert.equal(pickRecent(0, 8, 123), -1)
    assert.equal(pickRecent(5, 1, 123), 4)
    const seen = new Map<number, number>()
    let r = 1
    for (let i = 0; i < 800; i++) {
      r = nextRandom(r)
      const k = pickRecent(100, 8, r)
      assert.ok(k >= 92 && k <= 99, `picked ${k}`)
      seen.set(k, (seen.get(k) ?? 0) + 1)
    }
    assert.equal(seen.size, 8)
    for (const n of seen.values()) assert.ok(n > 50, `uneven picks ${[...seen.values()].join(',')}`)
    assert.ok(pickRecent(3, 8, 7) >= 0 && pickRecent(3, 8, 7) <= 2)
  })

  it('a host that got a chunk is no longer its owner', () => {
    const f = fleet(['a', 'b'])
    const a = f.get('a')!
    const c = chunks.find(c => a.ownerOf(IDX, c, 0) === 'b')!
    a.noteHave(IDX, 'b', c, 1)
    assert.equal(a.ownerOf(IDX, c, 1), 'a')
    // but b now holds it, so a asks b
    assert.deepEqual(a.plan(IDX, c, 1), { action: 'peer', peer: 'b' })
  })

  it('simulated fleet: origin fetches equal the distinct chunks, whatever the arrival order', () => {
    const names = ['a', 'b', 'c', 'd', 'e', 'f']
    const f = fleet(names)
    let origin = 0
    const have = new Map(names.map(n => [n, new Set<string>()]))
    let now = 0
    for (let round = 0; round < 50 && [...have.values()].some(s => s.size < chunks.length); round++) {
      now += 10
      for (const n of names) {
        const p = f.get(n)!
        for (const c of chunks) {
          if (have.get(n)!.has(c)) continue
          const plan = p.plan(IDX, c, now)
          let got = false
          if (plan.action === 'origin') { origin++; got = true }
          if (plan.action === 'peer') { p.requestStarted(plan.peer, c, now); p.requestSucceeded(plan.peer, c, 1, now); got = true }
          if (!got) continue
          have.get(n)!.add(c)
          for (const q of f.values()) q.noteHave(IDX, n, c, now)
        }
      }
    }
    for (const s of have.values()) assert.equal(s.size, chunks.length)
    assert.equal(origin, chunks.length)
  })
})
