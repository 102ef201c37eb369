import { execFileSync, spawnSync } from 'node:child_process'
import { STRICT } from './setup.ts'

/** Whether a program is on PATH. */
export function haveTool (name: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${name}`], { stdio: 'ignore' }).status === 0
}

/**
 * The node:test `skip` option for a test that needs `tools`: a reason string when one is missing
 * (the test is skipped), or false. Under CASWARM_CI=1 a missing tool throws, so the run fails.
 */
export function needs (...tools: string[]): string | false {
  const missing = tools.filter(t => !haveTool(t))
  if (missing.length === 0) return false
  if (STRICT) throw new Error(`CASWARM_CI=1 and required tool(s) missing: ${missing.join(', ')}`)
  return `needs ${missing.join(', ')}`
}

export function run (cmd: string, args: string[], options: { cwd?: string, input?: Uint8Array } = {}): string {
  return execFileSync(cmd, args, { cwd: options.cwd, input: options.input, encoding: 'utf8', stdio: ['pipe', 'pipe', 'pipe'], maxBuffer: 1 << 28 })
}
