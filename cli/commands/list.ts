// caswarm list: one line per node, `<ls-mode> <path>`, as casync list (spec §5.3).
import type { Command } from 'commander'
import { listLine } from '../../protocol/catar/listing.ts'
import type { CommandContext } from '../context.ts'
import { addTreeOptions, subpathParts, walkTree, type TreeCliOptions } from '../tree-archive.ts'

interface ListOptions extends TreeCliOptions { recursive?: string }

export function register (program: Command, ctx: CommandContext): void {
  addTreeOptions(program.command('list')
    .summary('list the entries of a .catar, .caidx or directory')
    .description('Print one line per entry, "<ls-mode> <path>", in archive order, exactly as casync list does. A .caidx is reassembled from its store; a directory is serialised with --with/--without first.')
    .argument('<input>', 'a .catar, a .caidx or a directory')
    .argument('[subpath]', 'list only this path inside the archive')
    .option('--recursive <yes|no>', 'no: only the node and its direct children', 'yes'))
    .addHelpText('after', `
Examples:
  caswarm list rootfs.catar
  caswarm list --store=/srv/castr rootfs.caidx etc
  caswarm list --with=unix /srv/rootfs`)
    .action(async (input: string, subpath: string | undefined, opts: ListOptions) => {
      const recursive = !/^(no|false|0)$/i.test(opts.recursive ?? 'yes')
      let lines: string[] = []
      const flush = (): void => { if (lines.length > 0) { ctx.stdout.write(lines.join('\n') + '\n'); lines = [] } }
      await walkTree(input, opts, ctx, subpathParts(subpath), {
        node: (v) => {
          if (!recursive && v.depth > 1) return
          lines.push(listLine(v.node, v.path))
          if (lines.length >= 1024) flush()
        }
      })
      flush()
    })
}
