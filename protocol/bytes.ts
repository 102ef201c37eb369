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
