// The directory-tree side of the CLI: `make`/`extract` of .catar and .caidx (hooked into the
// lead's make.ts/extract.ts), and what list/mtree/digest/stat share: casync's --with/--without
// options, input opening and a scoped walk over the decoded archive.
import * as fs from 'node:fs/promises'
import type { Command } from 'commander'
import { digestFromFlags, parseDigest, type DigestAlgorithm } from '../protocol/digest.ts'
import { InvalidArgumentError, InvalidFormatError, withContext } from '../protocol/errors.ts'
import { archiveFeatureFlags, checkFeatureFlags, withHelp } from '../protocol/catar/feature-flags.ts'
import type { ArchiveNode } from '../protocol/catar/types.ts'
import type { Seed } from '../node/seed.ts'
import type { TreeInputKind } from '../node/tree/input.ts'
import { collect, printJson, type CommandContext } from './context.ts'
import type { ExtractCliOptions } from './commands/extract.ts'
import type { MakeCliOptions } from './commands/make.ts'

// Each path below imports what it needs when it runs: a `make x.catar` loads neither the
// stores, the chunker nor the HTTP client, and starts that much sooner.

export interface TreeCliOptions {
  with?: string[]
  without?: string[]
  digest?: string
  excludeNodump?: string
  excludeFile?: string
  excludeSubmounts?: string
  what?: string
  store?: string
  extraStore?: string[]
}

function yesNo (v: string | undefined, name: string, fallback: boolean): boolean {
  if (v == null) return fallback
  if (/^(yes|y|true|1|on)$/i.test(v)) return true
  if (/^(no|n|false|0|off)$/i.test(v)) return false
  throw new InvalidArgumentError(`--${name} takes yes or no, not ${v}`)
}

/** The archive flags for a directory input or a make (casync's rules, spec §4.3.3). */
export function treeFeatureFlags (opts: TreeCliOptions): bigint {
  const all = [...(opts.with ?? []), ...(opts.without ?? [])]
  if (all.includes('help')) throw Object.assign(new InvalidArgumentError(withHelp()), { help: true })
  return archiveFeatureFlags({
    with: opts.with,
    without: opts.without,
    digest: parseDigest(opts.digest ?? 'sha256'),
    excludeNodump: yesNo(opts.excludeNodump, 'exclude-nodump', true),
    excludeFile: yesNo(opts.excludeFile, 'exclude-file', true),
    excludeSubmounts: yesNo(opts.excludeSubmounts, 'exclude-submounts', false)
  })
}

/** Options list/mtree/digest/stat share. */
export function addTreeOptions (cmd: Command): Command {
  return cmd
    .option('-s, --store <location>', 'chunk store for a .caidx input (default: default.castr beside it)')
    .option('--extra-store <location>', 'further store (repeatable)', collect)
    .option('--with <feature>', 'archive feature for a directory input (repeatable; --with=help lists them)', collect)
    .option('--without <feature>', 'archive feature to leave out (repeatable)', collect)
    .option('--digest <name>', 'sha256 or sha512-256 (directory inputs; mtree\'s digest label)', 'sha256')
    .option('--exclude-nodump <yes|no>', 'leave out chattr +d files (directory inputs)')
    .option('--exclude-file <yes|no>', 'honour .caexclude files (directory inputs)')
    .option('--exclude-submounts <yes|no>', 'leave out other mounts (directory inputs)')
    .option('--what <kind>', 'archive, archive-index or directory (default: by suffix)')
}

export function parseWhat (what: string | undefined): TreeInputKind | undefined {
  if (what == null) return undefined
  if (what === 'archive' || what === 'archive-index' || what === 'directory') return what
  throw new InvalidArgumentError(`--what must be archive, archive-index or directory, not ${what}`)
}

/** Splits a SUBPATH argument into raw name components ('' and '.' dropped). */
export function subpathParts (subpath: string | undefined): Uint8Array[] {
  if (subpath == null) return []
  const parts = subpath.split('/').filter(p => p !== '' && p !== '.')
  if (parts.includes('..')) throw new InvalidArgumentError(`${subpath}: ".." is not allowed in an archive path`)
  return parts.map(p => Buffer.from(p))
}

function startsWith (path: Uint8Array[], prefix: Uint8Array[]): boolean {
  if (path.length < prefix.length) return false
  for (let i = 0; i < prefix.length; i++) if (Buffer.compare(path[i]!, prefix[i]!) !== 0) return false
  return true
}

export interface Visit {
  node: ArchiveNode
  path: Uint8Array[]
  /** archive offset of the node's ENTRY */
  offset: number
  /** depth below the subpath (0 = the subpath's node) */
  depth: number
}

export interface WalkHandlers {
  node?: (v: Visit, featureFlags: bigint) => void
  payload?: (v: Visit, data: Uint8Array) => void
  end?: (v: Visit, endOffset: number) => void
}

/**
 * Decodes `input` and calls the handlers for the nodes at and below `subpath`. Throws when the
 * subpath is not in the archive. Returns the archive's feature flags.
 */
export async function walkTree (input: string, opts: TreeCliOptions, ctx: CommandContext, subpath: Uint8Array[], handlers: WalkHandlers, onBytes?: (data: Uint8Array) => void): Promise<bigint> {
  const [{ openTreeInput }, { ArchiveDecoder }] = await Promise.all([import('../node/tree/input.ts'), import('../protocol/catar/decoder.ts')])
  const src = await openTreeInput(input, { what: parseWhat(opts.what), featureFlags: treeFeatureFlags(opts), stores: opts.store != null ? [opts.store, ...(opts.extraStore ?? [])] : undefined, signal: ctx.signal })
  const decoder = new ArchiveDecoder()
  const stack: Array<Visit | null> = []
  let found = false
  try {
    for await (const data of src.stream) {
      onBytes?.(data)
      for (const ev of decoder.push(data)) {
        if (ev.type === 'node') {
          const p = ev.path ?? []
          const inScope = startsWith(p, subpath)
          const v = inScope ? { node: ev.node, path: p, offset: ev.offset ?? 0, depth: p.length - subpath.length } : null
          if (v != null) { found = true; handlers.node?.(v, decoder.featureFlags!) }
          stack.push(v)
        } else if (ev.type === 'payload') {
          const v = stack[stack.length - 1]
          if (v != null) handlers.payload?.(v, ev.data)
        } else {
          const v = stack.pop()
          if (v != null) handlers.end?.(v, ev.offset ?? 0)
        }
      }
    }
    decoder.end()
  } catch (err: any) {
    if (err instanceof InvalidFormatError) throw withContext(err, input)
    throw err
  } finally {
    await src.close()
  }
  if (!found) throw Object.assign(new Error(`${input}: no ${subpath.map(p => Buffer.from(p).toString()).join('/')} in the archive`), { code: 'ENOENT' })
  return decoder.featureFlags!
}

export function digestKey (opts: TreeCliOptions): string {
  return parseDigest(opts.digest ?? 'sha256') === 'sha256' ? 'sha256digest' : 'sha512256digest'
}

export function hashName (a: DigestAlgorithm): string {
  return a === 'sha256' ? 'sha256' : 'sha512-256'
}

// ---- make X.catar|X.caidx DIR ------------------------------------------------------------

/** archiveMakers hook: makes a .catar or .caidx from a directory; false for other targets. */
export async function makeTreeArchive (target: string, input: string, opts: MakeCliOptions, ctx: CommandContext): Promise<boolean> {
  const catar = target.endsWith('.catar')
  if (!catar && !target.endsWith('.caidx')) return false
  const st = await fs.stat(input)
  if (!st.isDirectory()) throw new InvalidArgumentError(`${input} is not a directory (a .catar/.caidx archives a directory tree)`)
  const featureFlags = treeFeatureFlags(opts as TreeCliOptions)
  const digest = digestFromFlags(featureFlags)
  const started = performance.now()
  if (catar) {
    const [{ writeAtomic }, { HashingWriter }, { encodeTreeBatches }, { progressBar }] = await Promise.all([
      import('../node/atomic-write.ts'), import('../node/tree/hashing-writer.ts'), import('../node/tree/reader.ts'), import('./progress.ts')
    ])
    let hex = ''
    let bytes = 0
    const bar = progressBar(ctx, 'make', null, opts.progress)
    try {
      await writeAtomic(target, async (handle) => {
        // the tree is read and encoded on this thread; a native thread hashes and writes the archive
        const writer = new HashingWriter(handle.fd, digest)
        try {
          let written = 0
          for (const batch of encodeTreeBatches(input, { featureFlags, signal: ctx.signal })) {
            for (const data of batch) { writer.write(data); written += data.byteLength }
            bar.update(written)
            await new Promise(setImmediate) // lets a Ctrl+C through
          }
          ({ digest: hex, bytes } = writer.finish())
        } catch (err) {
          writer.abort()
          throw err
        }
      })
    } finally {
      bar.stop()
    }
    if (opts.json === true) printJson(ctx, { archive: target, digest: hex, featureFlags, bytes, seconds: (performance.now() - started) / 1000 })
    else ctx.stdout.write(`${hex}\n`)
    return true
  }
  const [{ parseChunkSize }, { parseCompression }, { writeIndexFile }, { makeIndex }, { defaultStoreFor, openStore }, { encodeTree }, { progressBar }] = await Promise.all([
    import('../protocol/chunker.ts'), import('../protocol/compression.ts'), import('../node/index-io.ts'),
    import('../node/make.ts'), import('../node/store/location.ts'), import('../node/tree/reader.ts'), import('./progress.ts')
  ])
  const storeLocation = opts.store ?? process.env.CASYNC_STORE ?? defaultStoreFor(target)
  const store = openStore(storeLocation, { digest, compression: parseCompression(opts.compression), writable: true })
  const bar = progressBar(ctx, 'make', null, opts.progress)
  try {
    const result = await makeIndex(encodeTree(input, { featureFlags, signal: ctx.signal }), store, {
      chunkSize: parseChunkSize(opts.chunkSize ?? ''), digest, compression: parseCompression(opts.compression), featureFlags, signal: ctx.signal, onProgress: bar.update
    })
    await writeIndexFile(target, result.index, { mode: 0o666 })
    if (opts.json === true) printJson(ctx, { index: target, store: store.toString(), digest: result.streamDigest, featureFlags, ...result.stats })
    else ctx.stdout.write(`${result.streamDigest}\n`)
  } finally {
    bar.stop()
    await store.close()
  }
  return true
}

// ---- extract X.catar|X.caidx DIR ----------------------------------------------------------

/** passes a .catar's pieces through, telling onBytes how many bytes have gone by (a .caidx's stream reports its own, assembleStream's onProgress) */
async function * counted (pieces: AsyncIterable<Uint8Array>, onBytes: (done: number) => void): AsyncGenerator<Uint8Array> {
  let done = 0
  for await (const piece of pieces) {
    done += piece.byteLength
    onBytes(done)
    yield piece
  }
}

/** archiveExtractors hook: writes the tree of a .catar or .caidx; false for other inputs. */
export async function extractTreeArchive (source: string, output: string, opts: ExtractCliOptions, ctx: CommandContext): Promise<boolean> {
  const catar = source.endsWith('.catar')
  if (!catar && !source.endsWith('.caidx')) return false
  const started = performance.now()
  const { progressBar } = await import('./progress.ts')
  if (catar) {
    const { extractTree, readPieces } = await import('../node/tree/writer.ts')
    const { size } = await fs.stat(source)
    const bar = progressBar(ctx, 'extract', size, opts.progress)
    let result
    try {
      // files made in line: with nothing else on this thread but reading and decoding, handing
      // them to the creator threads measured slower here (A/B: 0.40-0.44 s in line, 0.43-0.48 s
      // queued, /usr/share/doc; 3.67-3.80 s against 4.64-5.54 s for /usr/share); a .caidx,
      // whose chunks also come through this thread, gains from them
      result = await extractTree(counted(readPieces(source, { signal: ctx.signal }), bar.update), output, { signal: ctx.signal, reusedInput: true, queueFiles: false })
    } catch (err: any) {
      if (err instanceof InvalidFormatError) throw withContext(err, source)
      throw err
    } finally {
      bar.stop()
    }
    if (opts.json === true) printJson(ctx, { archive: source, output, ...result, seconds: (performance.now() - started) / 1000 })
    return true
  }
  // chunks are decoded on this thread: posting them to the worker pool (as the blob path does)
  // measured slower here, ~1.7-2.2 s against ~1.4-1.6 s for /usr/share/doc on tmpfs
  const [{ readIndex }, { assembleStream, emptyStats }, { FileSeed }, { DirectorySeed }, { extractTree }, { openSources, printStats, sourceProviders }, { streamSize }] = await Promise.all([
    import('../node/index-io.ts'), import('../node/assemble.ts'), import('../node/seed.ts'), import('../node/tree/seed.ts'),
    import('../node/tree/writer.ts'), import('./commands/extract.ts'), import('../protocol/index-file.ts')
  ])
  const index = await readIndex(source, { signal: ctx.signal })
  checkFeatureFlags(index.featureFlags, `${source}: feature flags`)
  const { stores, cache } = await openSources(source, index, opts)
  const provided = await Promise.all(sourceProviders.map(async p => await p(index, opts, ctx, cache)))
  const seeds: Seed[] = []
  const stats = emptyStats()
  try {
    const seedPaths = [...(opts.seedOutput ? [output] : []), ...(opts.seed ?? [])]
    for (const p of seedPaths) {
      let st
      try { st = await fs.stat(p) } catch { continue }
      if (st.isDirectory()) seeds.push(await DirectorySeed.index(p, index, { signal: ctx.signal }, p === output && opts.seedOutput ? `seed:${p} (output)` : undefined) as Seed)
      else seeds.push(await FileSeed.index(p, index, { signal: ctx.signal }))
    }
    const bar = progressBar(ctx, 'extract', streamSize(index), opts.progress)
    const stream = assembleStream(index, {
      sources: [...provided.flatMap(p => p.sources), ...stores],
      cache,
      seeds,
      concurrency: Number(opts.concurrency ?? 16),
      signal: ctx.signal,
      stats,
      onProgress: bar.update
    })
    try {
      await extractTree(stream, output, { signal: ctx.signal })
    } catch (err: any) {
      if (err instanceof InvalidFormatError) throw withContext(err, source)
      throw err
    } finally {
      bar.stop()
    }
    stats.seconds = (performance.now() - started) / 1000
    printStats(ctx, stats, { index: source, output }, opts.json)
  } finally {
    for (const s of seeds) await s.close()
    for (const p of provided) await p.close()
    for (const s of stores) await s.close()
    await cache?.close()
  }
  return true
}
