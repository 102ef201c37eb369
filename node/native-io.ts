// Page-cache hints from the native addon (native/io.c): willNeed() starts reading files in the
// background so a store on disk is read with many requests in flight; writeBehind() starts
// writing an output range to disk so the final fsync is short; dontNeed() drops files' clean
// cached pages (the benchmark's "store on disk" runs). Without the addon they do nothing.
import { createRequire } from 'node:module'

const require = createRequire(import.meta.url)

interface IoAddon { willNeed: (paths: string[]) => number, dontNeed: (paths: string[]) => number, writeBehind: (fd: number, offset: number, length: number) => number }

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

/** Whether the addon is there (tests). */
export function nativeIoLoaded (): boolean {
  return load() != null
}
