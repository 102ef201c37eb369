// `npm start`: an end-to-end demo on embedded defaults. It makes a sample image and a newer
// version into a chunk store, extracts the new version with the old one as seed, and shows where
// every byte came from. When the LAN swarm is available it then updates a small fleet on
// loopback from a local origin (127.0.0.1 only, static peers, no multicast).
import '../node/polyfills.ts'
import { createReadStream, createWriteStream, existsSync } from 'node:fs'
import * as fs from 'node:fs/promises'
import { tmpdir } from 'node:os'
import * as path from 'node:path'
import { Readable } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import { extractBlob } from '../node/extract.ts'
import { readIndex, writeIndexFile } from '../node/index-io.ts'
import { makeIndex } from '../node/make.ts'
import { nextVersion, sampleImage } from '../node/sample-image.ts'
import { LocalStore } from '../node/store/local-store.ts'
import { useWorkerPool } from '../node/store/verify.ts'
import { sharedPool } from '../node/workers/pool.ts'

const SIZE = Number(process.env.CASWARM_DEMO_MB ?? 64) * 1024 * 1024
const mb = (n: number): string => `${(n / 1e6).toFixed(1)} MB`

async function sameFiles (a: string, b: string): Promise<boolean> {
  const [x, y] = await Promise.all([fs.readFile(a), fs.readFile(b)])
  return x.equals(y)
}

async function main (): Promise<void> {
  const dir = await fs.mkdtemp(path.join(tmpdir(), 'caswarm-demo-'))
  useWorkerPool(sharedPool())
  try {
    console.log(`caswarm demo in ${dir}\n`)
    const v1 = path.join(dir, 'image-v1.img')
    const v2 = path.join(dir, 'image-v2.img')
    await pipeline(Readable.from(sampleImage(SIZE, 1)), createWriteStream(v1))
    await pipeline(Readable.from(nextVersion(sampleImage(SIZE, 1), SIZE, 24)), createWriteStream(v2))
    console.log(`1. sample images: image-v1.img ${mb(SIZE)}, image-v2.img = v1 with 24 edits and insertions`)

    const store = new LocalStore(path.join(dir, 'default.castr'))
    for (const [name, file] of [['image-v1', v1], ['image-v2', v2]] as const) {
      const r = await makeIndex(createReadStream(file, { highWaterMark: 1 << 20 }), store)
      await writeIndexFile(path.join(dir, `${name}.caibx`), r.index)
      console.log(`2. caswarm make ${name}.caibx ${name}.img: ${r.stats.chunks} chunks, ${r.stats.newChunks} new in the store, ${mb(r.stats.bytes)} at ${(r.stats.bytes / 1e6 / r.stats.seconds).toFixed(0)} MB/s`)
    }

    const index = await readIndex(path.join(dir, 'image-v2.caibx'))
    const out = path.join(dir, 'image-v2.extracted.img')
    const stats = await extractBlob(index, out, { sources: [store], seedPaths: [v1] })
    console.log(`3. caswarm extract --seed=image-v1.img image-v2.caibx image-v2.extracted.img (${stats.seconds.toFixed(2)} s)`)
    for (const [source, s] of Object.entries(stats.sources)) {
      console.log(`     from ${source.padEnd(50)} ${String(s.chunks).padStart(5)} chunks  ${mb(s.bytes).padStart(9)}`)
    }
    const exact = await sameFiles(out, v2)
    console.log(`   output ${exact ? 'matches' : 'DOES NOT MATCH'} image-v2.img byte for byte\n`)
    if (!exact) process.exitCode = 1

    const swarmDemo = path.join(import.meta.dirname, '..', 'node', 'swarm', 'demo.ts')
    if (existsSync(swarmDemo)) {
      const { runSwarmDemo } = await import('../node/swarm/demo.ts' as string) as { runSwarmDemo: (opts: { dir: string, v1: string, v2: string, log: (line: string) => void }) => Promise<boolean> }
      const ok = await runSwarmDemo({ dir, v1, v2, log: (line) => { console.log(line) } })
      if (!ok) process.exitCode = 1
    }
  } finally {
    await sharedPool().close()
    await fs.rm(dir, { recursive: true, force: true })
  }
}

await main()
