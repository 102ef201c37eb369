import '../helpers/setup.ts'
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import * as fs from 'node:fs'
import * as path from 'node:path'
import { after, before, describe, it } from 'node:test'
import { fileURLToPath } from 'node:url'
import { treeNative } from '../../node/tree/native.ts'
import { tempDir } from '../helpers/temp-dir.ts'
import { needs } from '../helpers/tools.ts'

const CLI = fileURLToPath(new URL('../../bin/caswarm.js', import.meta.url))
const skip = needs('casync')

function exec (cmd: string, args: string[], ok = true): { stdout: string, stderr: string, status: number | null } {
  const r = spawnSync(cmd, args, { encoding: 'utf8', env: { ...process.env, CI: '1', TZ: 'UTC' }, maxBuffer: 1 << 26 })
  if (ok) assert.equal(r.status, 0, `${cmd} ${args.join(' ')} exited ${String(r.status)}: ${r.stderr}`)
  return r
}
const caswarm = (...args: string[]): string => exec(process.execPath, [CLI, ...args]).stdout
const casync = (...args: string[]): string => exec('casync', args).stdout

/** POSIX ACL xattr: u:daemon:rwx, g:daemon:r--, mask rwx (what `setfacl -m u:daemon:rwx,g:daemon:r` writes) */
function aclXattr (): Buffer {
  const entries: Array<[number, number, number]> = [[1, 6, 0xffffffff], [2, 7, 1], [4, 4, 0xffffffff], [8, 4, 1], [0x10, 7, 0xffffffff], [0x20, 4, 0xffffffff]]
  const b = Buffer.alloc(4 + 8 * entries.length)
  b.writeUInt32LE(2, 0)
  entries.forEach(([t, p, id], i) => { b.writeUInt16LE(t, 4 + 8 * i); b.writeUInt16LE(p, 6 + 8 * i); b.writeUInt32LE(id, 8 + 8 * i) })
  return b
}

/** A small tree with everything awkward casync archives; times are set last, with nanoseconds. */
export function makeAwkwardTree (root: string): void {
  const n = treeNative()
  const w = (p: string, data: string | Buffer = ''): void => { fs.writeFileSync(path.join(root, p), data) }
  fs.mkdirSync(root)
  w('file.txt', 'hello\n')
  w('a b', 'spaces in the name\n')
  w('CAPS', 'upper'); w('caps', 'lower')
  w('ä-umlaut', 'unicode\n'); w('日本語.txt', 'nihongo\n')
  w('#hash', 'x'); w('back\\slash', 'y')
  w('x'.repeat(200), 'a 200-byte name\n')
  w('empty')
  fs.mkdirSync(path.join(root, 'empty-dir'))
  fs.mkdirSync(path.join(root, 'many'))
  for (let i = 0; i < 300; i++) fs.writeFileSync(path.join(root, 'many', `f${i}`), `file ${i}\n`.repeat(i % 7))
  let deep = path.join(root, 'deep')
  for (let i = 0; i < 30; i++) { fs.mkdirSync(deep); deep = path.join(deep, `d${i}`) }
  fs.writeFileSync(deep + '.txt', 'at the bottom\n')
  w('big.bin', Buffer.from(Array.from({ length: 300_000 }, (_, i) => (i * 7919) % 251)))
  w('suid', '#!/bin/sh\n'); fs.chmodSync(path.join(root, 'suid'), 0o4755)
  fs.mkdirSync(path.join(root, 'sgid-dir')); fs.chmodSync(path.join(root, 'sgid-dir'), 0o2775)
  fs.mkdirSync(path.join(root, 'sticky')); fs.chmodSync(path.join(root, 'sticky'), 0o1777)
  w('daemon-file', 'd'); fs.chownSync(path.join(root, 'daemon-file'), 1, 1)
  w('nouser', 'n'); fs.chownSync(path.join(root, 'nouser'), 1234, 4321)
  fs.symlinkSync('file.txt', path.join(root, 'link'))
  fs.symlinkSync('/etc/passwd', path.join(root, 'abs-link'))
  fs.symlinkSync('does/not/exist', path.join(root, 'dangling'))
  w('hard1', 'hardlinked\n'); fs.linkSync(path.join(root, 'hard1'), path.join(root, 'hard2'))
  n.mknod(path.join(root, 'fifo'), 0o010644, 0, 0)
  n.mknod(path.join(root, 'chardev'), 0o020644, 1, 3)
  n.mknod(path.join(root, 'blockdev'), 0o060600, 7, 200)
  n.mknod(path.join(root, 'sock'), 0o140755, 0, 0)
  w('xattrs', 'x')
  n.lsetxattr(path.join(root, 'xattrs'), 'user.b', Buffer.from('second'))
  n.lsetxattr(path.join(root, 'xattrs'), 'user.a', Buffer.from('first'))
  n.lsetxattr(path.join(root, 'xattrs'), 'trusted.t', Buffer.from([0, 1, 2]))
  w('acl-file', 'acl'); fs.chmodSync(path.join(root, 'acl-file'), 0o644)
  n.lsetxattr(path.join(root, 'acl-file'), 'system.posix_acl_access', aclXattr())
  w('noatime', 'A'); n.setInodeFlags(path.join(root, 'noatime'), 0x80, 0x80, -1, -1)
  w('nodump', 'skipped by default'); n.setInodeFlags(path.join(root, 'nodump'), 0x40, 0x40, -1, -1)
  w('.caexclude', '# test\nexcluded-*\n')
  w('excluded-by-caexclude', 'never archived')
  // nanosecond times, children before their directories
  let t = 1_600_000_000n
  const stamp = (p: string): void => { t += 7n; n.lutimens(p, Number(t), Number((t * 123_456_789n) % 1_000_000_000n)) }
  const walk = (dir: string): void => {
    for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
      const p = path.join(dir, e.name)
      if (e.isDirectory()) walk(p)
      stamp(p)
    }
  }
  walk(root)
  stamp(root)
}

describe('catar interop with casync', { skip }, () => {
  let tmp: { path: string, cleanup: () => void }
  let tree: string
  before(() => {
    tmp = tempDir('caswarm-catar-')
    tree = path.join(tmp.path, 'tree')
    makeAwkwardTree(tree)
  })
  after(() => { tmp?.cleanup() })

  const variants: Array<[string, string[]]> = [
    ['default', []],
    ['--with=unix', ['--with=unix']],
    ['--without=all', ['--without=all']]
  ]
  for (const [label, flags] of variants) {
    it(`make .catar is byte-identical to casync (${label}, sha256)`, () => {
      const ours = path.join(tmp.path, `ours-${label}.catar`)
      const theirs = path.join(tmp.path, `theirs-${label}.catar`)
      const d1 = caswarm('make', '--digest=sha256', ...flags, ours, tree)
      const d2 = casync('make', '--digest=sha256', ...flags, theirs, tree)
      assert.equal(d1, d2)
      assert.ok(fs.readFileSync(ours).equals(fs.readFileSync(theirs)), 'archives differ')
    })
  }

  it('make .catar with sha512-256 (casync\'s default) matches casync byte for byte', () => {
    const ours = path.join(tmp.path, 'ours-512.catar')
    const theirs = path.join(tmp.path, 'theirs-512.catar')
    assert.equal(caswarm('make', '--digest=sha512-256', ours, tree), casync('make', theirs, tree))
    assert.ok(fs.readFileSync(ours).equals(fs.readFileSync(theirs)))
  })

  it('make .caidx: identical index and chunks as casync, for small chunks too', () => {
    for (const size of ['64:256:1024', '16K:64K:256K']) {
      const casyncSize = size.split(':').map(s => s.replace('K', '') === s ? s : String(Number(s.replace('K', '')) * 1024)).join(':')
      const ours = path.join(tmp.path, `ours-${size}.caidx`)
      const theirs = path.join(tmp.path, `theirs-${size}.caidx`)
      caswarm('make', '--digest=sha256', `--chunk-size=${size}`, '-s', path.join(tmp.path, 'ours.castr'), ours, tree)
      casync('make', '--digest=sha256', `--chunk-size=${casyncSize}`, `--store=${path.join(tmp.path, 'theirs.castr')}`, theirs, tree)
      assert.ok(fs.readFileSync(ours).equals(fs.readFileSync(theirs)), `indexes differ for ${size}`)
    }
  })

  it('list, mtree and digest print what casync prints (directory, .catar and .caidx inputs)', () => {
    const catar = path.join(tmp.path, 'theirs-default.catar')
    const caidx = path.join(tmp.path, 'theirs-64:256:1024.caidx')
    const store = path.join(tmp.path, 'theirs.castr')
    const list = casync('list', catar)
    assert.ok(list.includes('-rwsr-xr-x suid') && list.includes('drwxrwxrwt sticky') && list.includes('\\303\\244-umlaut'))
    assert.equal(caswarm('list', catar), list)
    assert.equal(caswarm('list', '--digest=sha256', tree), list)
    const mtree = casync('mtree', '--digest=sha256', catar)
    assert.ok(mtree.includes('uname=daemon') && mtree.includes('device=linux,7,200'))
    assert.equal(caswarm('mtree', catar), mtree)
    assert.equal(caswarm('mtree', '--digest=sha256', tree), mtree)
    assert.equal(caswarm('mtree', '-s', store, caidx), mtree)
    assert.equal(caswarm('digest', catar), casync('digest', catar))
    assert.equal(caswarm('digest', '-s', store, caidx), casync('digest', `--store=${store}`, caidx))
    assert.equal(caswarm('digest', catar, 'big.bin'), casync('digest', catar, 'big.bin'))
    assert.equal(caswarm('digest', catar, 'many'), casync('digest', catar, 'many'))
    assert.equal(caswarm('list', '--recursive=no', catar), casync('list', '--recursive=no', catar))
    for (const p of ['daemon-file', 'link', 'blockdev']) {
      assert.equal(exec(process.execPath, [CLI, 'stat', catar, p]).stdout, exec('casync', ['stat', catar, p]).stdout, `stat ${p}`)
    }
  })

  it('a tree extracted by caswarm (from .catar and from .caidx) digests the same under casync', () => {
    const catar = path.join(tmp.path, 'theirs-default.catar')
    const want = casync('digest', '--digest=sha256', tree)
    const out1 = path.join(tmp.path, 'x-catar')
    caswarm('extract', catar, out1)
    assert.equal(casync('digest', '--digest=sha256', out1), want)
    assert.equal(casync('mtree', out1), casync('mtree', tree))
    const out2 = path.join(tmp.path, 'x-caidx')
    caswarm('extract', '-s', path.join(tmp.path, 'theirs.castr'), path.join(tmp.path, 'theirs-64:256:1024.caidx'), out2)
    assert.equal(casync('digest', '--digest=sha256', out2), want)
    // and casync reads what caswarm made
    const out3 = path.join(tmp.path, 'x-casync')
    casync('extract', path.join(tmp.path, 'ours-default.catar'), out3)
    assert.equal(casync('digest', '--digest=sha256', out3), want)
  })

  it('extract of a .caidx into an existing tree takes its chunks from it (implicit seed) and from --seed=DIR', () => {
    const store = path.join(tmp.path, 'seedtest.castr')
    const idx = path.join(tmp.path, 'seedtest.caidx')
    caswarm('make', '--digest=sha256', '--chunk-size=64:256:1024', '-s', store, idx, tree)
    fs.rmSync(store, { recursive: true })
    fs.mkdirSync(store)
    const out = path.join(tmp.path, 'x-seeded')
    const r = exec(process.execPath, [CLI, 'extract', '--json', '-s', store, `--seed=${tree}`, idx, out])
    const stats = JSON.parse(r.stdout)
    assert.equal(Object.keys(stats.sources).some((k: string) => k.startsWith('seed:')), true)
    assert.equal(casync('digest', '--digest=sha256', out), casync('digest', '--digest=sha256', tree))
    // again, with no seed but the output itself
    const again = JSON.parse(exec(process.execPath, [CLI, 'extract', '--json', '-s', store, idx, out]).stdout)
    assert.ok(Object.keys(again.sources).some((k: string) => k.includes('(output)')), JSON.stringify(again.sources))
    assert.equal(casync('digest', '--digest=sha256', out), casync('digest', '--digest=sha256', tree))
  })
})
