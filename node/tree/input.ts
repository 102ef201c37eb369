// Tree inputs of list/mtree/digest/stat: a .catar file, a .caidx (reassembled from its stores),
// or a directory (serialised on the fly). All three become one catar byte stream.
import { createReadStream } from 'node:fs'
import * as fs from 'node:fs/promises'
import { digestFromFlags } from '../../protocol/chunk-id.ts'
import { InvalidArgumentError } from '../../protocol/errors.ts'
import { checkFeatureFlags } from '../../protocol/catar/feature-flags.ts'
import { assembleStream } from '../assemble.ts'
import { readIndex } from '../index-io.ts'
import type { ChunkSource } from '../store/chunk-store.ts'
import { defaultStoreFor, openStore } from '../store/location.ts'
import { encodeTree } from './reader.ts'

export type TreeInputKind = 'archive' | 'archive-index' | 'directory'

export interface TreeInputOptions {
  /** --what: overrides the choice by suffix / file type */
  what?: TreeInputKind
  /** flags for serialising a directory input */
  featureFlags: bigint
  /** stores for a .caidx (default: default.castr beside it, or $CASYNC_STORE) */
  stores?: string[]
  signal?: AbortSignal
}

export interface TreeInput {
  kind: TreeInputKind
  stream: AsyncIterable<Uint8Array>
  close: () => Promise<void>
}

export async function inputKind (input: string, what?: TreeInputKind): Promise<TreeInputKind> {
  if (what != null) return what
  if (input.endsWith('.catar')) return 'archive'
  if (input.endsWith('.caidx')) return 'archive-index'
  const st = await fs.stat(input)
  if (st.isDirectory()) return 'directory'
  throw new InvalidArgumentError(`${input}: not a .catar, .caidx or directory (use --what=)`)
}

export async function openTreeInput (input: string, options: TreeInputOptions): Promise<TreeInput> {
  const kind = await inputKind(input, options.what)
  if (kind === 'archive') {
    await fs.access(input)
    return { kind, stream: createReadStream(input, { highWaterMark: 1 << 20, signal: options.signal }), close: async () => {} }
  }
  if (kind === 'directory') {
    return { kind, stream: encodeTree(input, { featureFlags: options.featureFlags, signal: options.signal }), close: async () => {} }
  }
  const index = await readIndex(input, { signal: options.signal })
  try { checkFeatureFlags(index.featureFlags, `${input}: feature flags`) } catch (err) { throw err }
  const digest = digestFromFlags(index.featureFlags)
  const locations = options.stores != null && options.stores.length > 0 ? options.stores : [process.env.CASYNC_STORE ?? defaultStoreFor(input)]
  const sources: ChunkSource[] = locations.map(l => openStore(l, { digest }))
  return {
    kind,
    stream: assembleStream(index, { sources, signal: options.signal }),
    close: async () => { for (const s of sources) await s.close() }
  }
}
