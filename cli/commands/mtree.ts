// caswarm mtree: one mtree(5) line per node with casync's keywords (spec §5.4).
import { createHash, type Hash } from 'node:crypto'
import type { Command } from 'commander'
import { digestFromFlags } from '../../protocol/chunk-id.ts'
import { S_IFMT, S_IFREG } from '../../protocol/catar/constants.ts'
import { mtreeLine } from '../../protocol/catar/listing.ts'
import type { CommandContext } from '../context.ts'
import { addTreeOptions, digestKey, hashName, subpathParts, walkTree, type TreeCliOptions } from '../tree-archive.ts'

export function register (program: Command, ctx: CommandContext): void {
  addTreeOptions(program.command('mtree')
    .summary('print an mtree description of a .catar, .caidx or directory')
    .description('Print one mtree line per entry (type, mode, size, link, device, uid/gid, names, flags, time and the payload digest of regular files), exactly as casync mtree does. The digest uses the archive\'s own algorithm; its label follows --digest, as in casync.')
    .argument('<input>', 'a .catar, a .caidx or a directory')
    .argument('[subpath]', 'describe only this path inside the archive'))
    .addHelpText('after', `
Examples:
  caswarm mtree rootfs.catar > rootfs.mtree
  caswarm mtree --digest=sha512-256 /srv/rootfs`)
    .action(async (input: string, subpath: string | undefined, opts: TreeCliOptions) => {
      const key = digestKey(opts)
      let lines: string[] = []
      const flush = (): void => { if (lines.length > 0) { ctx.stdout.write(lines.join('\n') + '\n'); lines = [] } }
      let flags = 0n
      let hash: Hash | undefined
      await walkTree(input, opts, ctx, subpathParts(subpath), {
        node: (v, f) => {
          flags = f
          if ((v.node.mode & S_IFMT) === S_IFREG) hash = createHash(hashName(digestFromFlags(f)))
          else lines.push(mtreeLine(v.node, v.path, flags))
        },
        payload: (_v, data) => { hash?.update(data) },
        end: (v) => {
          if ((v.node.mode & S_IFMT) !== S_IFREG) return
          lines.push(mtreeLine(v.node, v.path, flags, hash!.digest('hex'), key))
          hash = undefined
          if (lines.length >= 1024) flush()
        }
      })
      flush()
    })
}
