// caswarm extract: rebuild a blob (or, with .catar/.caidx, a directory tree) from an index,
// taking chunks from seeds first, then the cache, then the stores in order.
// The blob path's and the stores' modules are imported when they are needed, so that a .catar
// extraction does not load them.
import type { Command } from 'commander'
import { digestFromFlags } from '../../protocol/digest.ts'
import { streamSize, type Index } from '../../protocol/index-file.ts'
import type { ExtractStats } from '../../node/assemble.ts'
import type { ChunkSource, ChunkStore } from '../../node/store/chunk-store.ts'
import { InvalidArgumentError } from '../../protocol/errors.ts'
import { collect, printJson, type CommandContext } from '../context.ts'
import { extractTreeArchive } from '../tree-archive.ts'
import { addSwarmOptions, openSwarmForExtract } from '../swarm-options.ts'

export interface ExtractCliOptions {
  store?: string
  extraStore?: string[]
  seed?: string[]
  cache?: string
  seedOutput: boolean
  concurrency: string
  json?: boolean
  progress: boolean
  with?: string[]
  without?: string[]
  peers?: string
}

/** Sources placed between the cache and the stores (the LAN swarm registers one). */
export interface SourceProvider {
  (index: Index, opts: ExtractCliOptions, ctx: CommandContext, cache: ChunkStore | undefined): Promise<{ sources: ChunkSource[], close: () => Promise<void> }>
}
export const sourceProviders: SourceProvider[] = []

/** Hook for archive outputs (.catar/.caidx): returns true when it handled the command. */
export const archiveExtractors: Array<(indexPath: string, output: string, opts: ExtractCliOptions, ctx: CommandContext) => Promise<boolean>> = [extractTreeArchive]

/** Opens the stores an extraction reads, in order: --store (or the default beside the index), then --extra-store. */
export async function openSources (indexPath: string, index: Index, opts: ExtractCliOptions): Promise<{ stores: ChunkSource[], cache?: ChunkStore }> {
  const [{ LocalStore }, { defaultStoreFor, openStore }] = await Promise.all([import('../../node/store/local-store.ts'), import('../../node/store/location.ts')])
  const digest = digestFromFlags(index.featureFlags)
  const main = opts.store ?? process.env.CASYNC_STORE ?? defaultStoreFor(indexPath)
  const stores: ChunkSource[] = [main, ...(opts.extraStore ?? [])].map(l => openStore(l, { digest }))
  const cache = opts.cache != null ? new LocalStore(opts.cache, { digest }) : undefined
  return { stores, cache }
}

export function printStats (ctx: CommandContext, stats: ExtractStats, extra: Record<string, unknown>, json: boolean | undefined): void {
  if (json === true) {
    printJson(ctx, { ...extra, ...stats, mbPerSecond: Number((stats.bytes / 1e6 / Math.max(stats.seconds, 1e-9)).toFixed(1)) })
    return
  }
  const lines = Object.entries(stats.sources).map(([name, s]) => `  ${name}: ${s.chunks} chunks, ${s.bytes} bytes`)
  const bad = Object.entries(stats.invalid).map(([name, n]) => `  ${name}: ${n} bad chunks rejected`)
  ctx.stderr.write(`${stats.chunks} chunks, ${stats.bytes} bytes in ${stats.seconds.toFixed(2)} s\n${[...lines, ...bad].join('\n')}\n`)
}

export function register (program: Command, ctx: CommandContext): void {
  addSwarmOptions(program.command('extract'))
    .summary('rebuild a file, block device or directory from an index')
    .description('Read INDEX (.caibx blob, .caidx/.catar directory) and write OUTPUT, taking each chunk from seeds first (the existing output is one), then the cache, then LAN peers, then the stores in order. Every chunk is verified before it is written. A file output is assembled under a hidden partial name and renamed into place when complete; re-running an interrupted extract reuses what is already right.')
    .argument('<index>', 'the index to read: a path (or URL where supported)')
    .argument('<output>', 'the file, block device or directory to write')
    .option('-s, --store <location>', 'chunk store (default: default.castr beside the index)')
    .option('--extra-store <location>', 'further store, tried after --store (repeatable)', collect)
    .option('--seed <path>', 'a file, block device or directory that may hold chunks (repeatable)', collect)
    .option('-c, --cache <dir>', 'local cache store: read first, fetched chunks written to it')
    .option('--no-seed-output', 'do not use the existing output as a seed')
    .option('--concurrency <n>', 'chunks in flight', '16')
    .option('--with <feature>', 'archive feature to restore (repeatable)', collect)
    .option('--without <feature>', 'archive feature to leave out (repeatable)', collect)
    .option('--json', 'print stats as JSON on stdout')
    .option('--peers <on|off>', 'take chunks from LAN peers before the stores (see `caswarm node`); default $CASWARM_PEERS or on', process.env.CASWARM_PEERS ?? 'on')
    .option('--settle <ms>', 'how long to wait for LAN peers to be found and to answer before the first chunk; default 1500')
    .option('--no-progress', 'no progress bar')
    .addHelpText('after', `
Examples:
  caswarm extract image-v2.caibx image-v2.img
  caswarm extract --seed=image-v1.img --store=/srv/castr image-v2.caibx image-v2.img
  caswarm extract --store=/mnt/a.castr --extra-store=/mnt/b.castr --json v2.caibx /dev/sdb
  caswarm extract rootfs.caidx /srv/rootfs`)
    .action(async (indexPath: string, output: string, opts: ExtractCliOptions) => {
      for (const extractor of archiveExtractors) if (await extractor(indexPath, output, opts, ctx)) return
      if (!indexPath.endsWith('.caibx')) throw new InvalidArgumentError(`${indexPath}: the index must end in .caibx (blob), .caidx or .catar (directory)`)
      const concurrency = Number(opts.concurrency)
      if (!Number.isInteger(concurrency) || concurrency < 1) throw new InvalidArgumentError(`--concurrency must be a positive integer, not ${opts.concurrency}`)
      const [{ extractBlob }, { readIndex }, { useWorkerPool }, { sharedPool }, { progressBar }] = await Promise.all([
        import('../../node/extract.ts'), import('../../node/index-io.ts'), import('../../node/store/verify.ts'),
        import('../../node/workers/pool.ts'), import('../progress.ts')
      ])
      useWorkerPool(sharedPool())
      const index = await readIndex(indexPath, { signal: ctx.signal })
      const { stores, cache: givenCache } = await openSources(indexPath, index, opts)
      const swarm = await openSwarmForExtract(index, stores, givenCache, opts as any)
      const cache = swarm?.cache ?? givenCache
      const provided = await Promise.all(sourceProviders.map(async p => await p(index, opts, ctx, cache)))
      const total = streamSize(index)
      let bar = progressBar(ctx, 'seed', 0, false)
      try {
        const stats = await extractBlob(index, output, {
          sources: [...(swarm != null ? [swarm.source] : []), ...provided.flatMap(p => p.sources), ...stores],
          cache,
          seedPaths: opts.seed,
          seedOutput: opts.seedOutput,
          concurrency,
          signal: ctx.signal,
          onSeedsReady: (seeds) => { swarm?.seedsReady(seeds); bar.stop(); bar = progressBar(ctx, 'extract', total, opts.progress) },
          onProgress: (b) => { bar.update(b) }
        })
        bar.stop()
        swarm?.finish(stats)
        printStats(ctx, stats, { index: indexPath, output }, opts.json)
      } finally {
        bar.stop()
        await swarm?.close()
        for (const p of provided) await p.close()
        for (const s of stores) await s.close()
        await cache?.close()
      }
    })
}
