// caswarm digest: the digest casync prints for an archive, an archive index or a directory
// (spec §5.2): of the whole catar stream, or of one file's payload / one subtree's serialisation.
import { createHash, type Hash } from 'node:crypto'
import type { Command } from 'commander'
import { digestFromFlags } from '../../protocol/chunk-id.ts'
import { S_IFDIR, S_IFMT, S_IFREG } from '../../protocol/catar/constants.ts'
import { ArchiveEncoder } from '../../protocol/catar/encoder.ts'
import { InvalidArgumentError } from '../../protocol/errors.ts'
import type { CommandContext } from '../context.ts'
import { addTreeOptions, hashName, subpathParts, walkTree, type TreeCliOptions } from '../tree-archive.ts'

export function register (program: Command, ctx: CommandContext): void {
  addTreeOptions(program.command('digest')
    .summary('print the digest of a .catar, .caidx or directory (or of a path inside)')
    .description('Print the digest casync digest prints: of the whole catar stream (for a directory, the stream make would write), of a regular file\'s contents, or of a subdirectory\'s serialisation. Archives use their own digest; directories use --digest. Blobs and .caibx: see caswarm make.')
    .argument('<input>', 'a .catar, a .caidx or a directory')
    .argument('[subpath]', 'a file or directory inside the archive'))
    .addHelpText('after', `
Examples:
  caswarm digest rootfs.catar
  caswarm digest rootfs.catar etc/os-release
  caswarm digest --digest=sha512-256 /srv/rootfs`)
    .action(async (input: string, subpath: string | undefined, opts: TreeCliOptions) => {
      const parts = subpathParts(subpath)
      if (parts.length === 0) {
        const pending: Uint8Array[] = []
        let whole: Hash | undefined
        const flags = await walkTree(input, opts, ctx, [], {
          node: (_v, f) => { whole ??= createHashFor(f, pending) }
        }, (data) => { if (whole != null) whole.update(data); else pending.push(data) })
        whole ??= createHashFor(flags, pending)
        ctx.stdout.write(`${whole.digest('hex')}\n`)
        return
      }
      let hash: Hash | undefined
      let encoder: ArchiveEncoder | undefined
      let kind = 0
      await walkTree(input, opts, ctx, parts, {
        node: (v, f) => {
          if (v.depth === 0) {
            kind = v.node.mode & S_IFMT
            if (kind !== S_IFREG && kind !== S_IFDIR) throw new InvalidArgumentError(`${subpath!} is neither a regular file nor a directory`)
            hash = createHash(hashName(digestFromFlags(f)))
            if (kind === S_IFDIR) encoder = new ArchiveEncoder({ featureFlags: f })
          }
          if (encoder != null) { const { name, ...rest } = v.node; encoder.node(v.depth === 0 ? rest : v.node); drain() }
        },
        payload: (_v, data) => {
          if (encoder != null) { encoder.payload(data); drain() } else hash!.update(data)
        },
        end: () => { if (encoder != null) { encoder.end(); drain() } }
      })
      function drain (): void { for (const b of encoder!.take()) hash!.update(b) }
      ctx.stdout.write(`${hash!.digest('hex')}\n`)
    })
}

function createHashFor (flags: bigint, buffered: Uint8Array[]): Hash {
  const h = createHash(hashName(digestFromFlags(flags)))
  for (const b of buffered.splice(0)) h.update(b)
  return h
}
