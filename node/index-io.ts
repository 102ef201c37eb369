// Reading and writing index files (.caibx/.caidx). Reads stream through the IndexDecoder so a
// truncated or garbled file fails with the file name and byte offset; writes are atomic.
import { randomBytes } from 'node:crypto'
import { createReadStream } from 'node:fs'
import * as fs from 'node:fs/promises'
import * as path from 'node:path'
import { InvalidFormatError } from '../protocol/errors.ts'
import { encodeIndex, IndexDecoder, type Index } from '../protocol/index-file.ts'
import { writeFileAtomic } from './atomic-write.ts'
import { isHttpUrl } from './http/client.ts'

export { writeAtomic, writeFileAtomic } from './atomic-write.ts'

export interface ReadIndexOptions { signal?: AbortSignal }

/** Remote index readers register here (the HTTP origin adds http:// and https://). */
export const indexReaders: Array<{ matches: (location: string) => boolean, read: (location: string, options: ReadIndexOptions) => AsyncIterable<Uint8Array> }> = []

export function isRemoteLocation (location: string): boolean {
  return /^[a-z][a-z0-9+.-]*:\/\//i.test(location)
}

/**
 * Decodes an index from a byte stream into a compact chunk table (~40 bytes a chunk; `size`, the
 * file's size when known, sets its room aside at once); errors name `location` and the byte offset.
 */
export async function decodeIndexFrom (source: AsyncIterable<Uint8Array>, location: string, size?: number): Promise<Index> {
  const decoder = new IndexDecoder({ size })
  try {
    for await (const data of source) decoder.append(data)
    return decoder.index()
  } catch (err: any) {
    if (err instanceof InvalidFormatError) {
      throw new InvalidFormatError(`${location}: ${err.message}${err.offset != null ? ` (at byte ${err.offset})` : ''}`, err.offset)
    }
    throw err
  }
}

export async function readIndex (location: string, options: ReadIndexOptions = {}): Promise<Index> {
  const reader = indexReaders.find(r => r.matches(location))
  if (reader != null) return await decodeIndexFrom(reader.read(location, options), location)
  if (isRemoteLocation(location)) throw new InvalidFormatError(`${location}: no reader for this kind of location`)
  let size: number | undefined
  try {
    const st = await fs.stat(location)
    if (st.isDirectory()) throw Object.assign(new Error(`${location} is a directory, not an index file`), { code: 'EISDIR' })
    if (st.isFile()) size = st.size
  } catch (err: any) {
    if (err.code === 'ENOENT') throw Object.assign(new Error(`index ${location} does not exist`), { code: 'ENOENT' })
    throw err
  }
  return await decodeIndexFrom(createReadStream(location, { highWaterMark: 1 << 20, signal: options.signal }), location, size)
}

export async function writeIndexFile (file: string, index: Index, options: { mode?: number } = {}): Promise<void> {
  // an http(s):// index goes to `caswarm serve` with a PUT (after its chunks)
  if (isHttpUrl(file)) {
    const { uploadIndex } = await import('./http/upload.ts') // loaded only for remote indexes
    await uploadIndex(file, encodeIndex(index))
    return
  }
  await writeFileAtomic(file, encodeIndex(index), options)
}

// http(s):// indexes: fetched with retries (node/http/remote-index.ts)
indexReaders.push({
  matches: isHttpUrl,
  read: async function * (location, options) {
    const { fetchIndexStream } = await import('./http/remote-index.ts') // loaded only for remote indexes
    yield * fetchIndexStream(location, options)
  }
})
