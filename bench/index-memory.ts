// What a decoded index costs in memory, per chunk: writes a synthetic .caibx of N chunks (random
// IDs, 16-256 KiB chunks), reads it back with readIndex() (the streaming path extract uses) and
// prints the heap, array-buffer and RSS growth it caused, before and after the ID lookup extract
// builds (node/extract.ts finds repeated chunks with it).
//   node --expose-gc --import tsx bench/index-memory.ts [--chunks=1000000] [--keep]
import { randomBytes } from 'node:crypto'
import { closeSync, openSync, rmSync, writeSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { encodeIndexHeader, encodeIndexTail, writeIndexItem } from '../protocol/index-file.ts'
import { TABLE_ITEM_SIZE } from '../protocol/constants.ts'
import { readIndex } from '../node/index-io.ts'

const arg = (name: string): string | undefined => process.argv.find(a => a.startsWith(`--${name}=`))?.split('=')[1]
const N = Number(arg('chunks') ?? 1_000_000)
const gc = (globalThis as any).gc as (() => void) | undefined
if (gc == null) throw new Error('run with node --expose-gc')

/** Writes the index item by item (1 MiB at a time), so the writer itself holds no per-chunk state. */
function writeSyntheticIndex (file: string, n: number): void {
  const fd = openSync(file, 'w')
  try {
    writeSync(fd, encodeIndexHeader({ featureFlags: 0n, chunkSizeMin: 16 << 10, chunkSizeAvg: 64 << 10, chunkSizeMax: 256 << 10 }))
    const per = 1 << 15
    const buf = Buffer.alloc(per * TABLE_ITEM_SIZE)
    const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength)
    let end = 0
    for (let i = 0; i < n; i += per) {
      const m = Math.min(per, n - i)
      const ids = randomBytes(m * 32)
      for (let k = 0; k < m; k++) {
        end += (16 << 10) + ids.readUInt32LE(k * 32) % (240 << 10)
        writeIndexItem(buf, view, k * TABLE_ITEM_SIZE, end, ids.subarray(k * 32, k * 32 + 32))
      }
      writeSync(fd, buf, 0, m * TABLE_ITEM_SIZE)
    }
    writeSync(fd, encodeIndexTail(n))
  } finally {
    closeSync(fd)
  }
}

interface Usage { heap: number, buffers: number, rss: number }

function usage (): Usage {
  for (let i = 0; i < 3; i++) gc!()
  const m = process.memoryUsage()
  return { heap: m.heapUsed, buffers: m.arrayBuffers, rss: m.rss }
}

function report (what: string, before: Usage, after: Usage): void {
  const per = (k: keyof Usage): string => ((after[k] - before[k]) / N).toFixed(1)
  const mb = (k: keyof Usage): string => ((after[k] - before[k]) / 2 ** 20).toFixed(1)
  console.log(`${what}: heap +${mb('heap')} MiB (${per('heap')} B/chunk), array buffers +${mb('buffers')} MiB (${per('buffers')} B/chunk), ` +
    `heap + buffers ${((after.heap + after.buffers - before.heap - before.buffers) / N).toFixed(1)} B/chunk, RSS +${mb('rss')} MiB (${per('rss')} B/chunk)`)
}

const file = join(tmpdir(), `caswarm-index-memory-${process.pid}.caibx`)
writeSyntheticIndex(file, N)
try {
  const before = usage()
  const started = performance.now()
  const index = await readIndex(file)
  const seconds = (performance.now() - started) / 1000
  const decoded = usage()
  console.log(`${N} chunks decoded in ${seconds.toFixed(2)} s (${index.chunks.length} chunks; peak RSS so far ${(process.resourceUsage().maxRSS / 1024).toFixed(0)} MiB)`)
  report('decoded index', before, decoded)
  // the ID lookup (ChunkTable.find), where there is one
  const table = index.chunks as unknown as { find?: (id: Uint8Array) => number, idBytes?: (i: number) => Uint8Array }
  if (typeof table.find === 'function' && typeof table.idBytes === 'function') {
    const t = performance.now()
    let found = 0
    for (let i = 0; i < N; i++) if (table.find(table.idBytes(i)) === i) found++
    const lookups = (performance.now() - t) / 1000
    report(`with the ID lookup (${found} of ${N} found in ${lookups.toFixed(2)} s)`, before, usage())
  }
  console.log(`peak RSS ${(process.resourceUsage().maxRSS / 1024).toFixed(0)} MiB`)
} finally {
  if (process.argv.includes('--keep')) console.log(`kept ${file}`)
  else rmSync(file, { force: true })
}
