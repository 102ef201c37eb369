// The tree writer: turns decoded ArchiveEvents into files, restoring what the archive's feature
// set holds (owners when root, modes, nanosecond times, symlinks, devices, FIFOs, sockets,
// xattrs, ACLs, file capabilities, chattr flags). It never follows a symlink: every node is
// created with O_EXCL/O_NOFOLLOW (or mkdir/symlink/mknod, which do not follow), whatever was in
// the way is removed first, and metadata calls are the l*/f* variants. Names were validated by the
// decoder and are checked again here, so nothing can land outside the target.
import { randomBytes } from 'node:crypto'
import * as fs from 'node:fs'
import * as path from 'node:path'
import { S_IFBLK, S_IFCHR, S_IFDIR, S_IFIFO, S_IFLNK, S_IFMT, S_IFREG, S_IFSOCK } from '../../protocol/catar/constants.ts'
import { ArchiveDecoder } from '../../protocol/catar/decoder.ts'
import { chattrFromEntryFlags, fatFromEntryFlags } from '../../protocol/catar/derive.ts'
import { checkName } from '../../protocol/catar/encoder.ts'
import {
  timeGranularity, WITH_16BIT_UIDS, WITH_32BIT_UIDS, WITH_ACL, WITH_FAT_ATTRS, WITH_PERMISSIONS
} from '../../protocol/catar/feature-flags.ts'
import type { AclEntry, ArchiveEvent, ArchiveNode } from '../../protocol/catar/types.ts'
import { InvalidArgumentError, InvalidFormatError } from '../../protocol/errors.ts'
import { accessAclXattr, ACL_ACCESS_XATTR, ACL_DEFAULT_XATTR, defaultAclXattr } from './acl.ts'
import { treeNative, type TreeNative } from './native.ts'
import { flushOut, openDirect, writeOut } from '../native-io.ts'

const SLASH = Buffer.from('/')
const O_CREATE = fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL | fs.constants.O_NOFOLLOW | fs.constants.O_NOCTTY

export interface TreeWriterOptions {
  /** restore owners (needs root). @default process.getuid() === 0 */
  owners?: boolean
  /** the target may hold an older tree: replace what is in the way, delete what the archive lacks */
  inPlace?: boolean
  /**
   * make plain files, directories and symlinks on the native creator threads while this one
   * decodes (extractTree: into a fresh directory, unless false); directories and symlinks get
   * their metadata at finish()
   */
  queueFiles?: boolean
  signal?: AbortSignal
}

export interface TreeWriteStats {
  files: number
  directories: number
  symlinks: number
  others: number
  bytes: number
}

interface Frame {
  path: Buffer
  node: ArchiveNode
  kind: number
  fd?: number
  names?: Set<string>
  /** a plain file not created yet: its payload so far, for one createFile() call at its end */
  pieces?: Uint8Array[]
  held?: number
  /** the creator thread of this entry's top-level subtree (queued writing) */
  lane?: number
  /** an open file's next write offset, and its O_DIRECT descriptor (null: none to be had) */
  at?: number
  direct?: number | null
}

/** a plain file's payload is held for one native call up to this size, else it is streamed */
const HOLD_MAX = 8 << 20
/**
 * A file of this size or more is written around the page cache (native-io writeOut): a buffered
 * write of fresh data costs the kernel ~15 us per 4 KiB page on these VMs, and for files of
 * 1-12 MB an O_DIRECT write took a quarter of the time (0.12-0.14 s against 0.47-0.54 s for 175
 * MB); for smaller files the wait for the device ate the gain.
 */
const DIRECT_MIN = 1 << 20

/** after a failure: a frame's descriptors closed, errors ignored */
function closeFiles (f: Frame): void {
  if (f.direct != null) { try { fs.closeSync(f.direct) } catch {} f.direct = undefined }
  if (f.fd != null) { try { fs.closeSync(f.fd) } catch {} f.fd = undefined }
}

export class TreeWriter {
  readonly root: Buffer
  readonly stats: TreeWriteStats = { files: 0, directories: 0, symlinks: 0, others: 0, bytes: 0 }
  private readonly owners: boolean
  private readonly inPlace: boolean
  private readonly native: TreeNative
  private readonly stack: Frame[] = []
  private readonly umask: number
  private readonly ids = { user: new Map<string, number | null>(), group: new Map<string, number | null>() }
  private flags = 0n
  private done = false
  /** entries are made on the native creator threads; directories and symlinks get their metadata at finish() */
  private readonly queued: boolean
  private readonly deferred: Frame[] = []
  private lanes = 0

  constructor (root: string | Buffer, options: TreeWriterOptions = {}) {
    this.root = Buffer.isBuffer(root) ? root : Buffer.from(root)
    this.owners = options.owners ?? process.getuid?.() === 0
    this.inPlace = options.inPlace ?? false
    this.native = treeNative()
    this.queued = !this.inPlace && options.queueFiles === true
    this.umask = process.umask()
  }

  get finished (): boolean { return this.done }

  /** Writes one event; `featureFlags` are the archive's (ArchiveDecoder.featureFlags). */
  push (event: ArchiveEvent, featureFlags: bigint): void {
    this.flags = featureFlags
    try {
      if (event.type === 'node') this.node(event.node)
      else if (event.type === 'payload') this.payload(event.data)
      else this.end()
    } catch (err: any) {
      this.closeAll()
      throw err
    }
  }

  /** after a failure: closes the open files, once their queued direct writes have landed (a closed descriptor's number is reused) */
  private closeAll (): void {
    try { flushOut() } catch {}
    for (const f of this.stack) closeFiles(f)
  }

  private node (node: ArchiveNode): void {
    if (this.done) throw new InvalidFormatError('data after the root directory')
    const parent = this.stack[this.stack.length - 1]
    const kind = node.mode & S_IFMT
    if (parent == null) {
      if (kind !== S_IFDIR) throw new InvalidFormatError('the root of an archive must be a directory')
      const st = fs.lstatSync(this.root)
      if (!st.isDirectory()) throw new InvalidArgumentError(`${this.root.toString()} is not a directory`)
      this.stack.push({ path: this.root, node, kind, names: this.inPlace ? new Set() : undefined })
      this.stats.directories++
      return
    }
    if (parent.kind !== S_IFDIR || node.name == null) throw new InvalidFormatError('an entry outside a directory')
    checkName(node.name)
    parent.names?.add(Buffer.from(node.name.buffer, node.name.byteOffset, node.name.byteLength).toString('latin1'))
    const p = Buffer.concat([parent.path, SLASH, node.name])
    // each top-level subtree goes whole to one creator thread, in turn
    const frame: Frame = { path: p, node, kind, lane: parent.lane ?? this.lanes++ }
    switch (kind) {
      case S_IFDIR:
        if (this.queued) this.native.makeDirQueued(p, frame.lane!)
        else this.create(p, true, () => { fs.mkdirSync(p, 0o700) })
        if (this.inPlace) frame.names = new Set()
        this.stats.directories++
        break
      case S_IFREG:
        if (this.plain(node)) {
          frame.pieces = []
          frame.held = 0
        } else {
          this.create(p, false, () => { frame.fd = fs.openSync(p, O_CREATE, 0o600) })
        }
        this.stats.files++
        break
      case S_IFLNK:
        if (this.queued) this.native.makeSymlinkQueued(Buffer.from(node.target!), p, frame.lane!)
        else this.create(p, false, () => { fs.symlinkSync(Buffer.from(node.target!), p) })
        this.stats.symlinks++
        break
      case S_IFBLK: case S_IFCHR: case S_IFIFO: case S_IFSOCK:
        this.create(p, false, () => { this.native.mknod(p, kind | 0o600, node.major ?? 0, node.minor ?? 0) })
        this.stats.others++
        break
      default:
        throw new InvalidFormatError(`unknown file type in mode 0o${node.mode.toString(8)}`)
    }
    this.stack.push(frame)
  }

  /** Runs `make`; if the name is taken, reuses a real directory (when `dir`) or removes the thing and retries. */
  private create (p: Buffer, dir: boolean, make: () => void): void {
    // the directories queued for the creator threads must exist first
    if (this.queued) this.native.createFilesDrain()
    try {
      make()
      return
    } catch (err: any) {
      if (err.code !== 'EEXIST') throw err
    }
    const st = fs.lstatSync(p)
    if (dir && st.isDirectory()) return
    if (st.isDirectory()) fs.rmSync(p, { recursive: true, force: true })
    else fs.unlinkSync(p)
    make()
  }

  /** a regular file with nothing to restore but owner, mode and time: written by one native call */
  private plain (node: ArchiveNode): boolean {
    return node.xattrs == null && node.fcaps == null && node.selinux == null && node.flags === 0n && node.quotaProjId == null &&
      node.aclUser == null && node.aclGroup == null && node.aclGroupObj == null
  }

  private payload (data: Uint8Array): void {
    const top = this.stack[this.stack.length - 1]
    if (top?.pieces != null) {
      top.pieces.push(data) // the decoder hands out views of its input, which is never reused
      top.held! += data.byteLength
      this.stats.bytes += data.byteLength
      if (top.held! > HOLD_MAX) this.open(top)
      return
    }
    if (top?.fd == null) throw new InvalidFormatError('payload outside a regular file')
    this.write(top, data)
    this.stats.bytes += data.byteLength
  }

  /** appends to an open file; once it holds DIRECT_MIN bytes, whole blocks go around the page cache */
  private write (frame: Frame, data: Uint8Array): void {
    const at = frame.at ?? 0
    frame.at = at + data.byteLength
    if (frame.direct === undefined && frame.at >= DIRECT_MIN) {
      // a second descriptor on the very file (never its path again: a symlink could be put there)
      frame.direct = openDirect(`/proc/self/fd/${frame.fd!}`) ?? null
    }
    if (frame.direct != null) { writeOut(frame.fd!, data, at, frame.direct); return }
    let off = 0
    while (off < data.byteLength) off += fs.writeSync(frame.fd!, data, off, data.byteLength - off, at + off)
  }

  /** creates a held file the ordinary way and writes what it holds (a big file, or a name in the way) */
  private open (frame: Frame): void {
    const pieces = frame.pieces!
    frame.pieces = undefined
    this.create(frame.path, false, () => { frame.fd = fs.openSync(frame.path, O_CREATE, 0o600) })
    for (const data of pieces) this.write(frame, data)
  }

  private end (): void {
    const top = this.stack.pop()
    if (top == null) throw new InvalidFormatError('end of a node that was never opened')
    if (top.kind === S_IFDIR && top.names != null) this.removeExtras(top.path, top.names)
    if (this.stack.length === 0) this.done = true
    if (top.pieces != null && top.held! >= DIRECT_MIN && !this.queued) {
      this.open(top) // a big file: written around the page cache (its metadata follows below)
    } else if (top.pieces != null) {
      try {
        this.createPlain(top)
        return
      } catch (err: any) {
        if (err.code !== 'EEXIST') throw err
        this.open(top) // something is in the way (an extraction in place): replace it
      }
    }
    // a directory's metadata waits until the files queued inside it are made (its time would
    // change, its mode might forbid them), a symlink's until it is made; children end before
    // their parents, so the order holds
    if (this.queued && (top.kind === S_IFDIR || top.kind === S_IFLNK)) this.deferred.push(top)
    else this.metadata(top)
  }

  /** Waits for the queued files and restores the directories' metadata; call once the root ended. */
  finish (): void {
    if (!this.queued) return
    this.native.createFilesDrain()
    for (const frame of this.deferred.splice(0)) this.metadata(frame)
  }

  /** After a failure: closes the open files and waits for the queued ones (their errors no longer matter), so the tree can be removed. */
  abandon (): void {
    this.closeAll()
    if (!this.queued) return
    try { this.native.createFilesDrain() } catch {}
    this.deferred.length = 0
  }

  /**
   * Lets go of the caller's buffer: a file not yet written whose payload goes on in the next
   * piece of input is created now and what it holds is written (rather than copied), so that the
   * caller may reuse the buffer its last events were views of. extractTree() calls it after every
   * piece of a `reusedInput`.
   */
  detach (): void {
    const top = this.stack[this.stack.length - 1]
    if (top?.pieces != null) this.open(top)
  }

  /** metadata() for a plain file, with the create and the writes, in one native call */
  private createPlain (frame: Frame): void {
    const { path: p, node } = frame
    const f = this.flags
    let uid = -1
    let gid = -1
    if (this.owners && (f & (WITH_16BIT_UIDS | WITH_32BIT_UIDS)) !== 0n) {
      uid = this.resolveId('user', node.user, node.uid)
      gid = this.resolveId('group', node.group, node.gid)
    }
    const perms = (f & (WITH_PERMISSIONS | WITH_ACL)) !== 0n ? node.mode & 0o7777 : node.mode & 0o777 & ~this.umask
    const timed = timeGranularity(f) !== 0n
    const sec = timed ? Number(node.mtime / 1_000_000_000n) : -1
    const nsec = timed ? Number(node.mtime % 1_000_000_000n) : 0
    if (this.queued) this.native.createFileQueued(p, frame.pieces!, perms, uid, gid, sec, nsec, frame.lane!)
    else this.native.createFile(p, frame.pieces!, perms, uid, gid, sec, nsec)
  }

  private removeExtras (dir: Buffer, keep: Set<string>): void {
    for (const name of fs.readdirSync(dir, { encoding: 'buffer' })) {
      if (keep.has(name.toString('latin1'))) continue
      const p = Buffer.concat([dir, SLASH, name])
      const st = fs.lstatSync(p)
      if (st.isDirectory()) fs.rmSync(p, { recursive: true, force: true })
      else fs.unlinkSync(p)
    }
  }

  private resolveId (kind: 'user' | 'group', name: string | undefined, id: number): number {
    if (name == null) return id
    const cache = this.ids[kind]
    let found = cache.get(name)
    if (found === undefined) {
      found = kind === 'user' ? this.native.userId(name) : this.native.groupId(name)
      cache.set(name, found)
    }
    return found ?? id
  }

  private readonly resolveAcl = (e: AclEntry, kind: 'user' | 'group'): number => this.resolveId(kind, e.name, e.id)

  /** restores what the feature flags hold, in an order that keeps each step valid */
  private metadata (frame: Frame): void {
    const { path: p, node, kind } = frame
    const f = this.flags
    const fd = frame.fd
    const n = this.native
    try {
      if (frame.direct != null) {
        // its queued writes first: then the owner, mode and time, which the writes must not follow
        try { flushOut() } catch (err: any) { throw Object.assign(err, { message: `${p.toString()}: ${String(err.message)}` }) }
        fs.closeSync(frame.direct)
        frame.direct = undefined
      }
      if (this.owners && (f & (WITH_16BIT_UIDS | WITH_32BIT_UIDS)) !== 0n) {
        const uid = this.resolveId('user', node.user, node.uid)
        const gid = this.resolveId('group', node.group, node.gid)
        if (fd != null) fs.fchownSync(fd, uid, gid)
        else fs.lchownSync(p, uid, gid)
      }
      if (kind !== S_IFLNK) {
        const perms = (f & (WITH_PERMISSIONS | WITH_ACL)) !== 0n ? node.mode & 0o7777 : node.mode & 0o777 & ~this.umask
        if (fd != null) fs.fchmodSync(fd, perms)
        else fs.chmodSync(p, perms)
        for (const x of node.xattrs ?? []) n.lsetxattr(p, Buffer.from(x.name).toString('latin1'), x.value)
        if ((f & WITH_ACL) !== 0n) {
          const access = accessAclXattr(node, this.resolveAcl)
          if (access != null) n.lsetxattr(p, ACL_ACCESS_XATTR, access)
          const def = kind === S_IFDIR ? defaultAclXattr(node, this.resolveAcl) : undefined
          if (def != null) n.lsetxattr(p, ACL_DEFAULT_XATTR, def)
        }
        if (node.fcaps != null) n.lsetxattr(p, 'security.capability', node.fcaps)
      }
      if (node.selinux != null) {
        try { n.lsetxattr(p, 'security.selinux', Buffer.from(node.selinux + '\0')) } catch (err: any) { if (err.code !== 'ENOTSUP' && err.code !== 'EOPNOTSUPP') throw err }
      }
      if (timeGranularity(f) !== 0n) {
        const sec = Number(node.mtime / 1_000_000_000n)
        const nsec = Number(node.mtime % 1_000_000_000n)
        if (fd != null) n.futimens(fd, sec, nsec)
        else n.lutimens(p, sec, nsec)
      }
      if (fd != null) { fs.closeSync(fd); frame.fd = undefined }
      if ((kind === S_IFREG || kind === S_IFDIR) && (node.flags !== 0n || node.quotaProjId != null)) {
        const { value, mask } = chattrFromEntryFlags(node.flags, f)
        const fat = (f & WITH_FAT_ATTRS) !== 0n && (node.flags & WITH_FAT_ATTRS) !== 0n ? fatFromEntryFlags(node.flags) : -1
        n.setInodeFlags(p, value, value !== 0 ? mask : 0, fat, node.quotaProjId != null ? Number(node.quotaProjId) : -1)
      }
    } catch (err: any) {
      closeFiles(frame)
      throw err
    }
  }

  /** re-applies the root's time (a rename may touch it) */
  touchRoot (root: Buffer, node: ArchiveNode): void {
    if (timeGranularity(this.flags) === 0n) return
    this.native.lutimens(root, Number(node.mtime / 1_000_000_000n), Number(node.mtime % 1_000_000_000n))
  }
}

export interface ExtractTreeOptions extends TreeWriterOptions {
  /** the source reuses a piece's buffer once the next piece is asked for (readPieces() does) */
  reusedInput?: boolean
  /** called with the archive's feature flags once the first ENTRY is read */
  onFeatureFlags?: (flags: bigint) => void
}

export interface ExtractTreeResult extends TreeWriteStats {
  featureFlags: bigint
  /** how the target was written: 'new' (temp dir renamed into place), 'replaced' (old tree swapped out), 'in-place' */
  mode: 'new' | 'replaced' | 'in-place'
}

/**
 * Decodes a catar stream and writes the tree to `target`. The tree is built in a temporary
 * directory beside the target and renamed into place at the end, so a failure (corrupt archive,
 * missing chunk, Ctrl+C) leaves the target as it was; an existing target is replaced as a whole
 * (what casync's --delete=yes default amounts to). Where a rename is impossible (the target is a
 * mount point) the tree is written in place.
 */
export async function extractTree (source: AsyncIterable<Uint8Array> | Iterable<Uint8Array>, target: string, options: ExtractTreeOptions = {}): Promise<ExtractTreeResult> {
  const abs = path.resolve(target)
  let existing: fs.Stats | undefined
  try { existing = fs.lstatSync(abs) } catch (err: any) { if (err.code !== 'ENOENT') throw err }
  if (existing != null && !existing.isDirectory()) throw Object.assign(new Error(`${target} exists and is not a directory`), { code: 'EEXIST' })
  let work = path.join(path.dirname(abs), `.${path.basename(abs)}.caswarm-${randomBytes(6).toString('hex')}`)
  // a mount point cannot be renamed: write into it directly
  let inPlace = existing != null && existing.dev !== fs.lstatSync(path.dirname(abs)).dev
  if (inPlace) {
    work = abs
  } else {
    try {
      fs.mkdirSync(work, 0o700)
    } catch (err: any) {
      if (existing == null || (err.code !== 'EACCES' && err.code !== 'EROFS' && err.code !== 'EPERM')) throw err
      inPlace = true
      work = abs
    }
  }
  // into a fresh directory, entries are made on the native creator threads while this one decodes
  const writer = new TreeWriter(work, { ...options, inPlace, queueFiles: !inPlace && options.queueFiles !== false })
  const decoder = new ArchiveDecoder()
  let rootNode: ArchiveNode | undefined
  try {
    for await (const data of source) {
      options.signal?.throwIfAborted()
      for (const event of decoder.push(data)) {
        if (rootNode == null && event.type === 'node') {
          rootNode = event.node
          options.onFeatureFlags?.(decoder.featureFlags!)
        }
        writer.push(event, decoder.featureFlags!)
      }
      if (options.reusedInput === true) writer.detach()
    }
    decoder.end()
    if (!writer.finished) throw new InvalidFormatError('archive ended before the root directory was complete')
    writer.finish()
  } catch (err) {
    writer.abandon()
    if (!inPlace) fs.rmSync(work, { recursive: true, force: true })
    throw err
  }
  const result = { ...writer.stats, featureFlags: decoder.featureFlags!, mode: 'new' as ExtractTreeResult['mode'] }
  if (inPlace) return { ...result, mode: 'in-place' }
  try {
    fs.renameSync(work, abs)
  } catch (err: any) {
    if (err.code !== 'ENOTEMPTY' && err.code !== 'EEXIST' && err.code !== 'EBUSY') { fs.rmSync(work, { recursive: true, force: true }); throw err }
    const old = path.join(path.dirname(abs), `.${path.basename(abs)}.caswarm-old-${randomBytes(6).toString('hex')}`)
    try {
      fs.renameSync(abs, old)
    } catch (err2) {
      fs.rmSync(work, { recursive: true, force: true })
      throw err2
    }
    fs.renameSync(work, abs)
    fs.rmSync(old, { recursive: true, force: true })
    result.mode = 'replaced'
  }
  if (rootNode != null) writer.touchRoot(Buffer.from(abs), rootNode)
  return result
}

/**
 * A file's bytes in 1 MiB pieces, read synchronously (the extraction that consumes them is
 * synchronous too: a stream only adds thread-pool round trips and copies), with a turn of the
 * event loop every few MiB so that a Ctrl+C is seen. One buffer serves every piece: a piece is
 * valid until the next one is asked for (fresh buffers cost a page fault per 4 KiB): pass
 * `reusedInput: true` to extractTree().
 */
export async function * readPieces (file: string, options: { signal?: AbortSignal, pieceBytes?: number } = {}): AsyncGenerator<Uint8Array> {
  const size = options.pieceBytes ?? 1 << 20
  const fd = fs.openSync(file, 'r')
  try {
    const buf = Buffer.allocUnsafeSlow(size)
    for (let n = 1; ; n++) {
      let got = 0
      while (got < size) {
        const k = fs.readSync(fd, buf, got, size - got, null)
        if (k === 0) break
        got += k
      }
      // a plain view: the decoder's many subarrays of it are cheaper than a Buffer's
      if (got > 0) yield new Uint8Array(buf.buffer, buf.byteOffset, got)
      if (got < size) return
      if (n % 8 === 0) {
        await new Promise(setImmediate)
        options.signal?.throwIfAborted()
      }
    }
  } finally {
    fs.closeSync(fd)
  }
}
