/**
 * caswarm's pure formats and algorithms: the buzhash chunker exactly as casync cuts, chunk IDs
 * (SHA-256 or SHA-512/256, also as CIDs), the .caibx/.caidx index codec, chunk compression
 * framing, and (in later modules) catar archives and the chunk-exchange wire messages.
 *
 * Nothing here touches files, sockets or timers: everything works on Uint8Array and
 * AsyncIterable<Uint8Array>, so every format is testable in memory.
 *
 * @example
 * ```ts
 * import { chunk, ChunkId, encodeIndex } from './protocol/index.ts'
 * const chunks = []
 * for await (const c of chunk(stream)) chunks.push({ id: ChunkId.digest(c.data), start: c.start, size: c.size })
 * const caibx = encodeIndex({ featureFlags: 0x9000000000000000n, chunkSizeMin: 16384, chunkSizeAvg: 65536, chunkSizeMax: 262144, chunks })
 * ```
 */
export * from './constants.ts'
export * from './errors.ts'
export * from './chunk-id.ts'
export * from './chunk-cid.ts'
export * from './chunker.ts'
export * from './index-file.ts'
export * from './chunk-table.ts'
export * from './compression.ts'
