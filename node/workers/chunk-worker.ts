// Worker thread for CPU-bound chunk work: hashing, compressing (and writing into a local store),
// decompressing and verifying. Runs the same protocol/ code as the main thread.
import { randomBytes } from 'node:crypto'
import * as fs from 'node:fs'
import * as path from 'node:path'
import { parentPort } from 'node:worker_threads'
import { copyBytes, ownBuffer } from '../../protocol/bytes.ts'
import { ChunkId, chunkPath, digestBytes } from '../../protocol/chunk-id.ts'
import { compress, decompress } from '../../protocol/compression.ts'
import { ChunkInvalidError } from '../../protocol/errors.ts'
import type { WorkerReply, WorkerRequest } from './pool.ts'

const madeDirs = new Set<string>()

function exists (file: string): boolean {
  try { fs.accessSync(file); return true } catch { return false }
}

async function handle (req: WorkerRequest): Promise<{ reply: WorkerReply, transfer: ArrayBuffer[] }> {
  if (req.op === 'hash') {
    const id = digestBytes(new Uint8Array(req.data), req.digest)
    return { reply: { seq: req.seq, id: copyBytes(id) }, transfer: [] }
  }
  if (req.op === 'store') {
    const data = new Uint8Array(req.data)
    const idBytes = digestBytes(data, req.digest)
    const id = new ChunkId(idBytes)
    if (req.storePath != null) {
      const file = path.join(req.storePath, chunkPath(id, req.extension))
      if (exists(file) || exists(path.join(req.storePath, chunkPath(id, '')))) return { reply: { seq: req.seq, id: copyBytes(idBytes), stored: false }, transfer: [] }
      const compressed = await compress(data, req.compression)
      const dir = path.dirname(file)
      if (!madeDirs.has(dir)) { fs.mkdirSync(dir, { recursive: true }); madeDirs.add(dir) }
      const tmp = `${dir}/${id.toString()}.${randomBytes(8).toString('hex')}.tmp`
      try {
        fs.writeFileSync(tmp, compressed, { mode: 0o444 })
        fs.renameSync(tmp, file)
      } catch (err) {
        try { fs.rmSync(tmp, { force: true }) } catch {}
        throw err
      }
      return { reply: { seq: req.seq, id: copyBytes(idBytes), stored: true, storedBytes: compressed.byteLength }, transfer: [] }
    }
    const compressed = await compress(data, req.compression)
    const buffer = ownBuffer(compressed)
    return { reply: { seq: req.seq, id: copyBytes(idBytes), compressed: buffer }, transfer: [buffer] }
  }
  // decode: decompress (unless plain) and verify
  const id = new ChunkId(new Uint8Array(req.id))
  let plain: Uint8Array
  if (req.compressed) {
    try {
      plain = await decompress(new Uint8Array(req.data), { maxSize: req.size ?? req.maxSize })
    } catch (err: any) {
      throw new ChunkInvalidError(id, undefined, `chunk ${id.toString()} cannot be decompressed: ${String(err?.message ?? err)}`)
    }
  } else {
    plain = new Uint8Array(req.data)
  }
  if (req.size != null && plain.byteLength !== req.size) throw new ChunkInvalidError(id, undefined, `chunk ${id.toString()} has ${plain.byteLength} bytes, the index says ${req.size}`)
  if (req.verify !== false) {
    const actual = new ChunkId(digestBytes(plain, req.digest))
    if (!actual.equals(id)) throw new ChunkInvalidError(id, actual)
  }
  const buffer = ownBuffer(plain)
  return { reply: { seq: req.seq, plain: buffer }, transfer: [buffer] }
}

parentPort!.on('message', (req: WorkerRequest) => {
  handle(req).then(({ reply, transfer }) => {
    parentPort!.postMessage(reply, transfer)
  }, (err: any) => {
    parentPort!.postMessage({ seq: req.seq, error: { message: String(err?.message ?? err), code: err?.code, name: err?.name } } satisfies WorkerReply)
  })
})
