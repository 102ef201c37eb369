// Byte helpers. Node's Buffer#slice returns a view (unlike Uint8Array#slice), and a Buffer may
// sit in Node's shared allocation pool, so anything kept or transferred is copied through here.

/** A fresh copy with its own ArrayBuffer (safe to keep or to transfer to a worker). */
export function copyBytes (data: Uint8Array, start = 0, end = data.byteLength): Uint8Array<ArrayBuffer> {
  return Uint8Array.prototype.slice.call(data, start, end) as Uint8Array<ArrayBuffer>
}

/** An ArrayBuffer holding exactly these bytes, copied unless `data` already owns all of one that is not pooled. */
export function ownBuffer (data: Uint8Array): ArrayBuffer {
  return copyBytes(data).buffer
}

/**
 * `data` itself when it spans the whole of an unshared ArrayBuffer, else a copy: what to post to
 * a worker thread, since a structured clone copies a view's whole buffer (a chunk ID that is a
 * view into an index's table would take the table with it).
 */
export function standalone (data: Uint8Array): Uint8Array {
  return data.byteOffset === 0 && data.byteLength === data.buffer.byteLength && data.buffer instanceof ArrayBuffer ? data : copyBytes(data)
}

const ZEROS = Buffer.alloc(1 << 16)

/** Whether every byte is 0 (compared 64 KiB at a time against a buffer of zeros). */
export function isZero (data: Uint8Array): boolean {
  const buf = Buffer.from(data.buffer, data.byteOffset, data.byteLength)
  for (let at = 0; at < buf.byteLength; at += ZEROS.byteLength) {
    const end = Math.min(buf.byteLength, at + ZEROS.byteLength)
    if (buf.compare(ZEROS, 0, end - at, at, end) !== 0) return false
  }
  return true
}
