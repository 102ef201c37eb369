// The C buzhash scan (native/chunker.c), installed into protocol/chunker.ts's CutFinder when
// the addon was built; the JavaScript loop is used otherwise. Both give identical cuts
// (test/node/native-chunker.spec.ts).
import { createRequire } from 'node:module'
import { setCutScanner, type CutScanner } from '../protocol/chunker.ts'
import { defaultLogger } from './logger.ts'

const log = defaultLogger().forComponent('caswarm:chunker')
const require = createRequire(import.meta.url)

let loaded: CutScanner | null | undefined

/** The native scan, or null when the addon is not built. */
export function nativeCutScanner (): CutScanner | null {
  if (loaded !== undefined) return loaded
  for (const p of ['../native/build/Release/caswarm_chunker.node', '../../native/build/Release/caswarm_chunker.node']) {
    try {
      loaded = (require(p) as { scan: CutScanner }).scan
      return loaded
    } catch {}
  }
  log('native chunker not built; using the JavaScript scan')
  loaded = null
  return loaded
}

/** Uses the native scan for every CutFinder in this thread when available (CASWARM_NATIVE_CHUNKER=0 turns it off). */
export function useNativeChunker (): boolean {
  if (process.env.CASWARM_NATIVE_CHUNKER === '0') return false
  const scan = nativeCutScanner()
  if (scan == null) return false
  setCutScanner(scan)
  return true
}
