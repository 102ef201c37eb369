#!/usr/bin/env node
// Launcher. Runs the compiled CLI (dist/, built by `npm install` through the prepare script)
// when it is at least as new as every source file; otherwise runs the TypeScript sources through
// tsx, so a developer's edit is never shadowed by a stale build.
import { existsSync, readdirSync, statSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

const root = join(dirname(fileURLToPath(import.meta.url)), '..')
const stamp = join(root, 'dist', '.build-stamp')

function newestSource (dir) {
  let newest = 0
  let entries
  try { entries = readdirSync(dir, { withFileTypes: true }) } catch { return 0 }
  for (const e of entries) {
    const p = join(dir, e.name)
    if (e.isDirectory()) newest = Math.max(newest, newestSource(p))
    else if (e.name.endsWith('.ts')) newest = Math.max(newest, statSync(p).mtimeMs)
  }
  return newest
}

function buildIsFresh () {
  if (process.env.CASWARM_FROM_SOURCE === '1' || !existsSync(stamp)) return false
  const built = statSync(stamp).mtimeMs
  return ['protocol', 'node', 'cli', 'sim'].every(d => newestSource(join(root, d)) <= built)
}

if (buildIsFresh()) {
  await import('../dist/cli/index.js')
} else {
  const { register } = await import('tsx/esm/api')
  register()
  await import('../cli/index.ts')
}
