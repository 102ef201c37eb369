// What every command gets: an abort signal (Ctrl+C), output streams, and shared option helpers.
import type { Writable } from 'node:stream'

export interface CommandContext {
  /** aborted on SIGINT/SIGTERM with an InterruptedError */
  signal: AbortSignal
  stdout: Writable
  stderr: Writable
  /** whether stderr is a TTY (progress bars only then) */
  interactive: boolean
}

/** Collects a repeatable option (`--seed=a --seed=b`). */
export function collect (value: string, previous: string[] = []): string[] {
  return [...previous, value]
}

export function printJson (ctx: CommandContext, value: unknown): void {
  ctx.stdout.write(JSON.stringify(value, (_k, v) => typeof v === 'bigint' ? `0x${v.toString(16)}` : v, 2) + '\n')
}
