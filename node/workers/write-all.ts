import * as fs from 'node:fs'

/** pwrite until all of `data` is at `offset` of fd (a short write is not an error). */
export function writeAll (fd: number, data: Uint8Array, offset: number): void {
  let written = 0
  while (written < data.byteLength) written += fs.writeSync(fd, data, written, data.byteLength - written, offset + written)
}
