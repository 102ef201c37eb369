// caswarm stat: casync stat's description of one node (spec §5.5).
import { createHash, type Hash } from 'node:crypto'
import type { Command } from 'commander'
import { digestFromFlags } from '../../protocol/chunk-id.ts'
import { S_IFBLK, S_IFCHR, S_IFDIR, S_IFMT, S_IFREG } from '../../protocol/catar/constants.ts'
import { encodeNodeRecords } from '../../protocol/catar/encoder.ts'
import { statLines, type StatInfo } from '../../protocol/catar/listing.ts'
import type { CommandContext } from '../context.ts'
import { addTreeOptions, hashName, subpathParts, walkTree, type TreeCliOptions } from '../tree-archive.ts'

export function register (program: Command, ctx: CommandContext): void {
  addTreeOptions(program.command('stat')
    .summary('describe one entry of a .catar, .caidx or directory')
    .description('Print mode, attributes, archive offset, time, size, owner, link target, device, xattrs and digests of one entry (the root by default), as casync stat does.')
    .argument('<input>', 'a .catar, a .caidx or a directory')
    .argument('[path]', 'the entry inside the archive (default: the root)'))
    .addHelpText('after', `
Examples:
  caswarm stat rootfs.catar etc/passwd
  caswarm stat /srv/rootfs`)
    .action(async (input: string, subpath: string | undefined, opts: TreeCliOptions) => {
      let info: StatInfo | undefined
      let payload: Hash | undefined
      let hl: Hash | undefined
      await walkTree(input, opts, ctx, subpathParts(subpath), {
        node: (v, f) => {
          if (v.depth !== 0) return
          info = { node: v.node, path: v.path, offset: v.offset, featureFlags: f }
          const kind = v.node.mode & S_IFMT
          if (kind === S_IFDIR) return
          const algorithm = hashName(digestFromFlags(f))
          hl = createHash(algorithm).update(encodeNodeRecords(v.node, f))
          // casync prints a payload digest for regular files and (of nothing) for devices
          if (kind === S_IFREG || kind === S_IFBLK || kind === S_IFCHR) payload = createHash(algorithm)
        },
        payload: (v, data) => { if (v.depth === 0) { payload?.update(data); hl?.update(data) } }
      })
      if (info == null) return
      if (payload != null) info.digest = payload.digest('hex')
      if (hl != null) info.hlDigest = hl.digest('hex')
      ctx.stdout.write(statLines(info).join('\n') + '\n')
    })
}
