// caswarm keygen: write a private-swarm key (libp2p pnet format) for --swarm-key.
import type { Command } from 'commander'
import * as fs from 'node:fs/promises'
import type { CommandContext } from '../context.ts'

export function register (program: Command, ctx: CommandContext): void {
  program.command('keygen')
    .summary('write a private swarm key')
    .description('Write a new pre-shared swarm key to FILE (mode 0600; "-" for stdout). Hosts started with --swarm-key=FILE only talk to hosts holding the same key.')
    .argument('<file>', 'where to write the key')
    .option('--force', 'overwrite an existing file')
    .addHelpText('after', '\nExample:\n  caswarm keygen /etc/caswarm/swarm.key && caswarm node --swarm-key=/etc/caswarm/swarm.key')
    .action(async (file: string, opts: { force?: boolean }) => {
      const { generateKey } = await import('@libp2p/pnet')
      const key = new Uint8Array(95)
      generateKey(key)
      if (file === '-') { ctx.stdout.write(key); return }
      await fs.writeFile(file, key, { mode: 0o600, flag: opts.force === true ? 'w' : 'wx' }).catch((err: any) => {
        if (err.code === 'EEXIST') throw Object.assign(new Error(`${file} exists (use --force to overwrite)`), { code: 'ERR_INVALID_ARGUMENT' })
        throw err
      })
      ctx.stderr.write(`swarm key written to ${file}\n`)
    })
}
