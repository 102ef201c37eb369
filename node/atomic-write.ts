// Atomic file writes: a temporary name beside the target, fsync, rename. Apart from index-io.ts so
// that writing a .catar does not load the index codec.
import { randomBytes } from 'node:crypto'
import * as fs from 'node:fs/promises'
import * as path from 'node:path'

/**
 * Creates `<dir>/.<name>.<random>.tmp`, lets `write` fill it, fsyncs, then renames it into place;
 * on any failure the temporary file is removed and `file` is left as it was.
 */
export async function writeAtomic (file: string, write: (handle: fs.FileHandle) => Promise<void>, options: { mode?: number } = {}): Promise<void> {
  const dir = path.dirname(file)
  const tmp = path.join(dir, `.${path.basename(file)}.${randomBytes(6).toString('hex')}.tmp`)
  const handle = await fs.open(tmp, 'wx', options.mode ?? 0o666)
  try {
    await write(handle)
    await handle.sync()
    await handle.close()
    await fs.rename(tmp, file)
  } catch (err) {
    await handle.close().catch(() => {})
    await fs.rm(tmp, { force: true })
    throw err
  }
}

/** writeAtomic() for bytes already in memory. */
export async function writeFileAtomic (file: string, data: Uint8Array, options: { mode?: number } = {}): Promise<void> {
  await writeAtomic(file, async (handle) => { await handle.writeFile(data) }, options)
}

