// A progress bar on stderr when it is a TTY; nothing otherwise (scripts get --json instead).
// cli-progress is loaded only when a bar is shown (~10 ms of start-up otherwise).
import type CliProgress from 'cli-progress'
import { createRequire } from 'node:module'
import type { CommandContext } from './context.ts'

const require = createRequire(import.meta.url)

export interface Progress {
  update: (done: number) => void
  stop: () => void
}

/**
 * A bar for `total` bytes; with `total` null (a tree being archived, whose size is known only at
 * the end) a counter of bytes and speed instead. Nothing when stderr is not a TTY, when disabled
 * (--no-progress) or for a total of 0.
 */
export function progressBar (ctx: CommandContext, label: string, total: number | null, enabled = true): Progress {
  if (!ctx.interactive || !enabled || total === 0 || (total != null && total < 0)) return { update: () => {}, stop: () => {} }
  const cliProgress = require('cli-progress') as typeof CliProgress
  const bar = new cliProgress.SingleBar({
    format: total == null
      ? `${label} {doneMB} MB | {speed} MB/s`
      : `${label} [{bar}] {percentage}% | {doneMB}/{totalMB} MB | {speed} MB/s | ETA {eta_formatted}`,
    stream: ctx.stderr as NodeJS.WriteStream,
    hideCursor: true,
    clearOnComplete: true,
    fps: 10
  }, cliProgress.Presets.shades_classic)
  const started = performance.now()
  const mb = (n: number): string => (n / 1e6).toFixed(1)
  bar.start(total ?? 0, 0, { doneMB: '0.0', totalMB: mb(total ?? 0), speed: '0' })
  return {
    update: (done) => {
      const s = (performance.now() - started) / 1000
      bar.update(done, { doneMB: mb(done), speed: s > 0 ? (done / 1e6 / s).toFixed(0) : '0' })
    },
    stop: () => { bar.stop() }
  }
}
