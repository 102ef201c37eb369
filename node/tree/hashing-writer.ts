// Digests a byte stream and writes it to a file descriptor on a native thread (native/tree.c),
// so that a synchronous producer (the tree reader and encoder) keeps the main thread while the
// SHA-256 and the write() calls run on another core. casync does all three in one thread. The
// bytes are copied into the thread's ring, and write() blocks while the ring is full.
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

