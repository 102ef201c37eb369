// Page-cache hints from the native addon (native/io.c): willNeed() starts reading files in the
// background so a store on disk is read with many requests in flight; writeBehind() starts
// writing an output range to disk so the final fsync is short; dontNeed() drops files' clean
// cached pages (the benchmark's "store on disk" runs). Without the addon they do nothing.
// writeOut() writes an output range with its whole blocks through an O_DIRECT descriptor
// (openDirect) and the rest through the page cache; without the addon, or without a direct
// descriptor, it is a plain pwrite loop.
import * as fs from 'node:fs'
import { createRequire } from 'node:module'

const require = createRequire(import.meta.url)

interface IoAddon {
  willNeed: (paths: string[]) => number
  dontNeed: (paths: string[]) => number
  writeBehind: (fd: number, offset: number, length: number) => number
  writeOut?: (fd: number, directFd: number, data: Uint8Array, offset: number) => void
  flushOut?: () => void
  lineOffset?: (view: Uint8Array) => number
}

let addon: IoAddon | null | undefined

function load (): IoAddon | null {
  if (addon !== undefined) return addon
  addon = null
  if (process.env.CASWARM_PREFETCH === '0') return addon
  for (const p of ['../native/build/Release/caswarm_io.node', '../../native/build/Release/caswarm_io.node']) {
    try { addon = require(p) as IoAddon; break } catch {}
  }
  return addon
}

/** Asks the kernel to read these files ahead; returns how many it was asked for. */
export function willNeed (paths: string[]): number {
  return paths.length === 0 ? 0 : (load()?.willNeed(paths) ?? 0)
}

/** Drops these files' clean pages from the page cache; returns how many were advised. */
export function dontNeed (paths: string[]): number {
  return paths.length === 0 ? 0 : (load()?.dontNeed(paths) ?? 0)
}

/** Starts writing a range of fd's dirty pages to disk without waiting for it. */
export function writeBehind (fd: number, offset: number, length: number): void {
  if (length > 0) load()?.writeBehind(fd, offset, length)
}

/**
 * Where in `buf` (which has 63 bytes to spare) to put the byte at file position `position` so
 * that reads into it run at full speed: on this project's AMD machines the kernel's copy from the
 * page cache is up to 6x slower (0.5-0.7 against 0.11 s of system time per GiB) when the
 * destination sits 1-31 bytes further into its 64-byte cache line than the source, which is
 * where Node's large buffers land (16 bytes in) for reads at page-aligned positions. Returns the
 * index in [0, 64) at which the byte for `position` should go (0 without the addon).
 */
export function lineAlignedStart (buf: Uint8Array, position: number): number {
  const offset = load()?.lineOffset?.(buf)
  if (offset == null) return 0
  return (((position - offset) % 64) + 64) % 64
}

/**
 * `length` bytes of `raw` (which has 63 to spare) placed for reading file position `position`
 * into them at full speed (lineAlignedStart).
 */
export function placedFor (raw: Uint8Array, position: number, length: number): Uint8Array {
  const start = lineAlignedStart(raw, position)
  return raw.subarray(start, start + length)
}

/**
 * Whether reading file position `position` straight into `view` would take the kernel's slow
 * copy (the view's first byte 1-31 bytes further into its cache line than the position is in
 * its own; see lineAlignedStart). False without the addon.
 */
export function slowReadInto (view: Uint8Array, position: number): boolean {
  // the view is 64 - lineAlignedStart bytes further into its line than the position (mod 64)
  return lineAlignedStart(view, position) >= 33
}

/** Whether the addon is there (tests). */
export function nativeIoLoaded (): boolean {
  return load() != null
}

/**
 * A second descriptor on the file at `path` (already open as an output) for O_DIRECT writes, or
 * undefined where that is not to be had: no addon, a file system without O_DIRECT (tmpfs), or
 * CASWARM_DIRECT_IO=0. The caller closes it.
 */
export function openDirect (path: string): number | undefined {
  if (process.env.CASWARM_DIRECT_IO === '0' || load()?.writeOut == null) return undefined
  try {
    return fs.openSync(path, fs.constants.O_WRONLY | fs.constants.O_DIRECT)
  } catch {
    return undefined
  }
}

/**
 * Writes all of `data` at `offset` of fd; with a direct descriptor on the same file (openDirect),
 * its whole 4 KiB blocks are queued for a native thread of this thread's that writes them around
 * the page cache while the caller goes on. Throws the error of an earlier queued write. Call
 * flushOut() (on every thread that wrote) before the descriptors are synced or closed.
 */
export function writeOut (fd: number, data: Uint8Array, offset: number, directFd?: number): void {
  const writeOutNative = directFd == null ? undefined : load()?.writeOut
  if (writeOutNative != null) {
    writeOutNative(fd, directFd!, data, offset)
    return
  }
  let written = 0
  while (written < data.byteLength) written += fs.writeSync(fd, data, written, data.byteLength - written, offset + written)
}

/** Waits for this thread's queued writeOut() writes; throws the first error of one. */
export function flushOut (): void {
  load()?.flushOut?.()
}
