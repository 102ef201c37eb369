// caswarm make: chunk a file or block device (or, with .catar/.caidx, a directory tree) into a
// store and write the index.
// The blob path's modules are imported when it runs, so that a tree make does not load them.
import * as fs from 'node:fs/promises'
import type { Command } from 'commander'
import { parseDigest } from '../../protocol/digest.ts'
import { InvalidArgumentError } from '../../protocol/errors.ts'
import { collect, printJson, type CommandContext } from '../context.ts'
import { makeTreeArchive } from '../tree-archive.ts'

export interface MakeCliOptions {
  store?: string
  chunkSize?: string
  digest: string
  compression: string
  json?: boolean
  progress: boolean
  with?: string[]
  without?: string[]
}

/** Hook for archive targets (.catar/.caidx): returns true when it handled the command. */
export const archiveMakers: Array<(target: string, input: string, opts: MakeCliOptions, ctx: CommandContext) => Promise<boolean>> = [makeTreeArchive]

export function register (program: Command, ctx: CommandContext): void {
  program.command('make')
    .summary('chunk a file, block device or directory into a store and write an index')
    .description('Chunk INPUT with casync\'s buzhash chunker, store the compressed chunks in a .castr store and write INDEX (.caibx for a blob; .catar/.caidx for a directory tree). Chunks the store already holds are not written again.')
    .argument('<index>', 'the index to write: X.caibx (blob), X.caidx or X.catar (directory)')
    .argument('<input>', 'a file, block device or directory; - for standard input (a blob)')
    .option('-s, --store <path>', 'chunk store (default: default.castr beside the index)')
    .option('--chunk-size <[min:]avg[:max]>', 'chunk sizes, e.g. 64K or 16K:64K:256K', '16K:64K:256K')
    .option('--digest <name>', 'chunk digest: sha256 or sha512-256 (casync\'s default)', 'sha256')
    .option('--compression <name>', 'chunk compression: zstd, xz or gzip', 'zstd')
    .option('--with <feature>', 'archive feature to include (repeatable; see casync --with)', collect)
    .option('--without <feature>', 'archive feature to leave out (repeatable)', collect)
    .option('--json', 'print stats as JSON on stdout')
    .option('--no-progress', 'no progress bar')
    .addHelpText('after', `
Examples:
  caswarm make image-v1.caibx image-v1.img
  caswarm make --store=/srv/castr --chunk-size=16K:64K:256K image-v2.caibx /dev/sdb
  caswarm make --digest=sha512-256 --compression=xz image.caibx image.img
  zcat image.img.gz | caswarm make image.caibx -
  caswarm make --json rootfs.caidx /srv/rootfs`)
    .action(async (indexPath: string, input: string, opts: MakeCliOptions) => {
      for (const maker of archiveMakers) if (await maker(indexPath, input, opts, ctx)) return
      if (!indexPath.endsWith('.caibx')) throw new InvalidArgumentError(`${indexPath}: the index must end in .caibx (blob), .caidx or .catar (directory)`)
      // `-`: the blob comes from standard input (chunked as it arrives, on this thread)
      const stdin = input === '-'
      const st = stdin ? undefined : await fs.stat(input)
      if (st?.isDirectory() === true) throw new InvalidArgumentError(`${input} is a directory: use a .caidx or .catar index for a directory tree`)
      const [{ parseChunkSize }, { parseCompression }, { writeIndexFile }, { makeIndex, makeIndexFromFile }, { blockDeviceSize }, { defaultStoreFor, openStore }, { progressBar }] = await Promise.all([
        import('../../protocol/chunker.ts'), import('../../protocol/compression.ts'), import('../../node/index-io.ts'),
        import('../../node/make.ts'), import('../../node/block-device.ts'), import('../../node/store/location.ts'), import('../progress.ts')
      ])
      const digest = parseDigest(opts.digest)
      const chunkSize = parseChunkSize(opts.chunkSize ?? '')
      const compression = parseCompression(opts.compression)
      const storeLocation = opts.store ?? process.env.CASYNC_STORE ?? defaultStoreFor(indexPath)
      const store = openStore(storeLocation, { digest, compression, writable: true })
      const total = st == null ? 0 : st.isBlockDevice() ? await blockDeviceSize(input) : st.size
      const bar = progressBar(ctx, 'make', total, opts.progress)
      try {
        const makeOptions = { chunkSize, digest, compression, signal: ctx.signal, onProgress: bar.update }
        const result = stdin ? await makeIndex(process.stdin, store, makeOptions) : await makeIndexFromFile(input, store, makeOptions)
        bar.stop()
        await writeIndexFile(indexPath, result.index, st != null ? { mode: st.mode & 0o666 } : {})
        const stats = {
          index: indexPath,
          store: store.toString(),
          digest: result.streamDigest,
          ...result.stats,
          mbPerSecond: Number((result.stats.bytes / 1e6 / Math.max(result.stats.seconds, 1e-9)).toFixed(1))
        }
        if (opts.json === true) printJson(ctx, stats)
        else ctx.stdout.write(`${result.streamDigest}\n`)
      } finally {
        bar.stop()
        await store.close()
      }
    })
}
