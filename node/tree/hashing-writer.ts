// Digests a byte stream and writes it to a file descriptor on a native thread (native/tree.c),
// so that a synchronous producer (the tree reader and encoder) keeps the main thread while the
// SHA-256 and the write() calls run on another core. casync does all three in one thread. The
// bytes are copied into the thread's ring, and write() blocks while the ring is full.
import { createStreamDigest } from '../../protocol/chunk-id.ts'
import type { DigestAlgorithm } from '../../protocol/digest.ts'
import { treeNative, type HashingWriterHandle, type TreeNative } from './native.ts'

export interface HashingWriterResult {
  /** hex digest of everything written */
  digest: string
  bytes: number
}

export class HashingWriter {
  private readonly native: TreeNative
  private readonly handle: HashingWriterHandle
  private closed = false

  /**
   * Starts the thread; it writes to `fd` (left open) from the current file position, whole 4 KiB
   * blocks with O_DIRECT where it can. With fd -1 it only digests.
   */
  constructor (fd: number, algorithm: DigestAlgorithm = 'sha256') {
    this.native = treeNative()
    this.handle = this.native.hashingWriter(fd, algorithm)
  }

  /** Hands `data` to the thread (a copy: the caller may reuse it). Throws the first write error. */
  write (data: Uint8Array): void {
    this.native.hashingWriterWrite(this.handle, data)
  }

  /** Waits until everything is written; throws the first write error. */
  finish (): HashingWriterResult {
    this.closed = true
    const [digest, bytes] = this.native.hashingWriterFinish(this.handle)
    return { digest, bytes }
  }

  /** Stops the thread without writing what it still holds (after a failure). */
  abort (): void {
    if (this.closed) return
    this.closed = true
    this.native.hashingWriterAbort(this.handle)
  }
}

export interface StreamDigest {
  update: (data: Uint8Array) => void
  /** hex digest of everything given; ends the digest */
  digest: () => string
  /** drops the digest (after a failure) */
  abort: () => void
}

/**
 * A digest of a stream computed on a native thread: update() only copies the bytes (`make` of a
 * .caidx, whose main thread reads and encodes the tree). On this thread when the addon is absent.
 */
export function backgroundDigest (algorithm: DigestAlgorithm): StreamDigest {
  let writer: HashingWriter
  try {
    writer = new HashingWriter(-1, algorithm)
  } catch {
    const d = createStreamDigest(algorithm)
    return { update: d.update, digest: d.digest, abort: () => {} }
  }
  return { update: (data) => { writer.write(data) }, digest: () => writer.finish().digest, abort: () => { writer.abort() } }
}
