// caswarm's command line: one file per command under cli/commands/, each exporting
// `register(program, ctx)`, loaded only when its verb runs. Errors map to exit codes by class (cli/errors.ts).
import '../node/polyfills.ts'
// first: worker threads start loading while this thread loads commander and the command
import './warm.ts'
import { Command, CommanderError } from 'commander'
import { InterruptedError } from '../protocol/errors.ts'
import type { CommandContext } from './context.ts'
import { EXIT, EXIT_CODES_HELP, exitCodeFor } from './errors.ts'
import { loadCommands } from './commands/index.ts'

export async function main (argv: string[] = process.argv): Promise<number> {
  const controller = new AbortController()
  const onSignal = (): void => { controller.abort(new InterruptedError()) }
  process.once('SIGINT', onSignal)
  process.once('SIGTERM', onSignal)
  const ctx: CommandContext = {
    signal: controller.signal,
    stdout: process.stdout,
    stderr: process.stderr,
    interactive: process.stderr.isTTY === true && process.env.CI == null
  }
  const program = new Command('caswarm')
    .description('casync-compatible content-addressed sync with a LAN swarm')
    .version('0.1.0')
    .showHelpAfterError()
    .exitOverride()
    .addHelpText('after', EXIT_CODES_HELP)
  for (const register of await loadCommands(argv)) register(program, ctx)
  try {
    await program.parseAsync(argv)
    return EXIT.OK
  } catch (err: any) {
    if (err instanceof CommanderError) {
      if (err.code === 'commander.helpDisplayed' || err.code === 'commander.version' || err.code === 'commander.help') return EXIT.OK
      return EXIT.USAGE
    }
    const code = exitCodeFor(controller.signal.aborted ? controller.signal.reason : err)
    const message = controller.signal.aborted ? 'interrupted' : (err?.message ?? String(err))
    process.stderr.write(`caswarm: ${message}\n`)
    if (process.env.DEBUG != null && err?.stack != null) process.stderr.write(`${String(err.stack)}\n`)
    return code
  } finally {
    process.off('SIGINT', onSignal)
    process.off('SIGTERM', onSignal)
  }
}

const code = await main()
// Let stdout drain, then exit with the code (open sockets/timers must not keep us alive).
process.exitCode = code
setImmediate(() => process.exit(code))
