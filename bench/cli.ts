// The caswarm CLI a benchmark measures: the compiled one (what `npm install` builds and
// bin/caswarm.js runs), built afresh first so edits are measured; the TypeScript sources through
// tsx only if there is no build. bin/caswarm.js itself is not used: it falls back to tsx as soon
// as any source file is newer than the build.
import { spawn } from 'node:child_process'
import { existsSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'

const ROOT = fileURLToPath(new URL('..', import.meta.url))

let built: Promise<boolean> | undefined

/** node arguments that run the CLI (pass them before the CLI's own); builds once per process. */
export async function caswarmCli (log: (line: string) => void, build = true): Promise<string[]> {
  if (build) {
    built ??= runBuild()
    if (!await built) log('bench: `npm run build` failed; measuring whatever dist/ holds, or the sources through tsx')
  }
  const dist = join(ROOT, 'dist', 'cli', 'index.js')
  if (existsSync(dist)) return [dist]
  log('bench: no dist/ build; running the sources through tsx (slower start, more memory)')
  return ['--import', 'tsx', join(ROOT, 'cli', 'index.ts')]
}

async function runBuild (): Promise<boolean> {
  return await new Promise<boolean>((resolve) => {
    const child = spawn('npm', ['run', '--silent', 'build'], { cwd: ROOT, stdio: ['ignore', 'ignore', 'pipe'] })
    child.stderr.resume()
    child.on('close', code => { resolve(code === 0) })
    child.on('error', () => { resolve(false) })
  })
}

/**
 * The environment both tools run in: this one, without NODE_EXTRA_CA_CERTS. These machines set it
 * to the system CA bundle, which makes every Node process parse it before running any code
 * (`node -e 0`: 0.08-0.10 s with it, 0.02-0.03 s without); casync ignores it, and the benchmarks
 * fetch nothing over TLS. Said once in the log when it was set.
 */
export function benchEnv (log?: (line: string) => void, extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, ...extra }
  if (env.NODE_EXTRA_CA_CERTS != null) {
    delete env.NODE_EXTRA_CA_CERTS
    if (log != null && !told) { told = true; log('bench: NODE_EXTRA_CA_CERTS is unset for the measured runs (it costs every Node process ~60 ms of start-up here)') }
  }
  return env
}

let told = false
