// The directory reader: walks a tree like casync's encoder does (spec §4.4–§4.8) and produces the
// ArchiveEvents for it. Synchronous file-system calls on purpose: for thousands of small files
// they are several times faster than the promise API, and the callers pull the events in batches.
// Names stay raw bytes (Buffers) from readdir to the archive.
import * as fs from 'node:fs'
import {
  CA_FORMAT_EXCLUDE_FILE, CA_FORMAT_EXCLUDE_NODUMP, CA_FORMAT_EXCLUDE_SUBMOUNTS
} from '../../protocol/constants.ts'
import { S_IFDIR, S_IFREG } from '../../protocol/catar/constants.ts'
import { deriveEntryFlags, deriveId, deriveMode, deriveMtime, FS_NODUMP_FL } from '../../protocol/catar/derive.ts'
import { ArchiveEncoder } from '../../protocol/catar/encoder.ts'
import { isExcluded, parseExcludeFile, type ExcludePattern } from '../../protocol/catar/exclude.ts'
import {
  WITH_16BIT_UIDS, WITH_32BIT_UIDS, WITH_ACL, WITH_CHATTR, WITH_DEVICE_NODES, WITH_FAT_ATTRS, WITH_FCAPS,
  WITH_FIFOS, WITH_QUOTA_PROJID, WITH_SELINUX, WITH_SOCKETS, WITH_SUBVOLUME, WITH_SUBVOLUME_RO,
  WITH_SYMLINKS, WITH_USER_NAMES, WITH_XATTRS
} from '../../protocol/catar/feature-flags.ts'
import type { AclEntry, ArchiveEvent, ArchiveNode } from '../../protocol/catar/types.ts'
import { InvalidArgumentError } from '../../protocol/errors.ts'
import { ACL_ACCESS_XATTR, ACL_DEFAULT_XATTR, aclDefaultFields, parseAclXattr } from './acl.ts'
import { treeNative, type TreeNative } from './native.ts'

export interface ReadTreeOptions {
  /** the archive's feature flags (archiveFeatureFlags() or an index header's) */
  featureFlags: bigint
  signal?: AbortSignal
}

// statfs f_type magics of virtual API file systems whose directories casync archives empty
// (casync src/util.c is_temporary_fs/is_api_fs; linux/magic.h)
const API_FS = new Set([
  0x9fa0, /* proc */ 0x62656572, /* sysfs */ 0x27e0eb, /* cgroup */ 0x63677270, /* cgroup2 */
  0x1cd1, /* devpts */ 0x64626720, /* debugfs */ 0x74726163, /* tracefs */ 0x73636673, /* securityfs */
  0xcafe4a11, /* bpf */ 0x6165676c, /* pstore */ 0x62656570, /* configfs */ 0x65735543, /* fusectl */
  0xde5e81e4, /* efivarfs */ 0xf97cff8c, /* selinuxfs */ 0x42494e4d, /* binfmt_misc */ 0x19800202 /* mqueue */
])
const FAT_FS = new Set([0x4d44, /* msdos/vfat */ 0x65735546 /* fuse */])
const BTRFS_FS = 0x9123683e
const XATTR_PREFIXES = ['user.', 'trusted.']
/** small reads share one buffer (the encoder copies pieces below 32 KiB); big ones are fresh */
const SMALL = 32 * 1024
const PIECE = 1 << 20

const SLASH = Buffer.from('/')
const O_READ = fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW | fs.constants.O_NOCTTY | (fs.constants.O_NOATIME ?? 0)

export class TreeReader {
  private readonly flags: bigint
  private readonly signal?: AbortSignal
  private readonly native: TreeNative
  private readonly names = { user: new Map<number, string | null>(), group: new Map<number, string | null>() }
  private readonly fsTypes = new Map<bigint, number>()
  private readonly scratch = Buffer.allocUnsafe(SMALL)
  private readonly selinux: boolean
  private rootDev = 0n
  private noatime = true

  constructor (options: ReadTreeOptions) {
    this.flags = options.featureFlags
    this.signal = options.signal
    this.native = treeNative()
    this.selinux = (this.flags & WITH_SELINUX) !== 0n && fs.existsSync('/sys/fs/selinux/enforce')
  }

  /** The events of the tree at `root` (a directory; a symlink to one is followed). */
  * events (root: string | Buffer): Generator<ArchiveEvent> {
    const path = Buffer.isBuffer(root) ? root : Buffer.from(root)
    const st = fs.statSync(path, { bigint: true })
    if (!st.isDirectory()) throw new InvalidArgumentError(`${path.toString()} is not a directory`)
    this.rootDev = st.dev
    yield * this.directory(path, st, [], [])
  }

  private fsType (dev: bigint, path: Buffer): number {
    let t = this.fsTypes.get(dev)
    if (t == null) {
      t = this.native.statfsType(path)
      this.fsTypes.set(dev, t)
    }
    return t
  }

  private lookup (kind: 'user' | 'group', id: number): string | null {
    const cache = this.names[kind]
    let name = cache.get(id)
    if (name === undefined) {
      name = kind === 'user' ? this.native.userName(id) : this.native.groupName(id)
      cache.set(id, name)
    }
    return name
  }

  /** USER/GROUP value (spec §4.4.5): none for id 0, the name if it resolves, else the id without uid bits */
  private ownerName (kind: 'user' | 'group', id: number): string | undefined {
    if ((this.flags & WITH_USER_NAMES) === 0n || id === 0) return undefined
    const name = this.lookup(kind, id)
    if (name != null) return name
    return (this.flags & (WITH_16BIT_UIDS | WITH_32BIT_UIDS)) !== 0n ? undefined : String(id)
  }

  private aclEntries (list: Array<{ id: number, permissions: number }>, kind: 'user' | 'group'): AclEntry[] | undefined {
    if (list.length === 0) return undefined
    const uids = (this.flags & (WITH_16BIT_UIDS | WITH_32BIT_UIDS)) !== 0n
    return list.map(({ id, permissions }) => {
      const e: AclEntry = { id: uids ? id : 0, permissions }
      if ((this.flags & WITH_USER_NAMES) !== 0n && id !== 0) {
        const name = this.lookup(kind, id)
        if (name != null) e.name = name
      }
      return e
    })
  }

  /** extended attributes, ACLs, file capabilities and SELinux label (spec §4.4.6) */
  private extras (path: Buffer, node: ArchiveNode, type: number): void {
    const f = this.flags
    if ((f & (WITH_XATTRS | WITH_ACL | WITH_FCAPS)) === 0n && !this.selinux) return
    const all = this.native.lxattrs(path)
    if (all.length === 0) return
    for (const [nameBuf, value] of all) {
      const name = nameBuf.toString('latin1')
      if ((f & WITH_XATTRS) !== 0n && XATTR_PREFIXES.some(p => name.startsWith(p)) && name.length > 0) {
        (node.xattrs ??= []).push({ name: nameBuf, value })
      } else if (name === ACL_ACCESS_XATTR && (f & WITH_ACL) !== 0n) {
        const acl = parseAclXattr(value)
        if (acl == null) continue
        node.aclUser = this.aclEntries(acl.users, 'user')
        node.aclGroup = this.aclEntries(acl.groups, 'group')
        if (acl.mask != null && acl.groupObj != null) node.aclGroupObj = acl.groupObj
      } else if (name === ACL_DEFAULT_XATTR && (f & WITH_ACL) !== 0n && type === S_IFDIR) {
        const acl = parseAclXattr(value)
        if (acl == null) continue
        node.aclDefault = aclDefaultFields(acl)
        node.aclDefaultUser = this.aclEntries(acl.users, 'user')
        node.aclDefaultGroup = this.aclEntries(acl.groups, 'group')
      } else if (name === 'security.capability' && (f & WITH_FCAPS) !== 0n && type === S_IFREG) {
        node.fcaps = value
      } else if (name === 'security.selinux' && this.selinux) {
        const end = value.indexOf(0)
        node.selinux = value.subarray(0, end < 0 ? value.byteLength : end).toString('utf8')
      }
    }
    if (node.aclUser == null) delete node.aclUser
    if (node.aclGroup == null) delete node.aclGroup
    if (node.aclDefaultUser == null) delete node.aclDefaultUser
    if (node.aclDefaultGroup == null) delete node.aclDefaultGroup
  }

  /** The node for an lstat result, or undefined when casync would leave it out. */
  private node (path: Buffer, name: Buffer | undefined, st: fs.BigIntStats): ArchiveNode | undefined {
    const f = this.flags
    const mode = Number(st.mode)
    const type = mode & 0o170000
    const node: ArchiveNode = {
      mode: deriveMode(mode, f),
      flags: 0n,
      uid: deriveId(Number(st.uid), f, 'uid'),
      gid: deriveId(Number(st.gid), f, 'gid'),
      mtime: deriveMtime(st.mtimeNs, f)
    }
    if (name != null) node.name = name
    if (type === S_IFREG || type === S_IFDIR) {
      const fsType = this.fsType(st.dev, path)
      const fat = (f & WITH_FAT_ATTRS) !== 0n && FAT_FS.has(fsType)
      const subvolume = type === S_IFDIR && (f & WITH_SUBVOLUME) !== 0n && fsType === BTRFS_FS && st.ino === 256n
      if ((f & (WITH_CHATTR | WITH_QUOTA_PROJID)) !== 0n || (f & CA_FORMAT_EXCLUDE_NODUMP) !== 0n || fat || subvolume) {
        let chattr = 0; let fatAttrs = 0; let projid = 0; let ro = 0
        try {
          [chattr, fatAttrs, projid, ro] = this.native.inodeFlags(path, fat, subvolume && (f & WITH_SUBVOLUME_RO) !== 0n)
        } catch (err: any) {
          if (err.code !== 'EACCES' && err.code !== 'ENXIO' && err.code !== 'EPERM') throw err
        }
        if (chattr < 0) chattr = 0
        if ((f & CA_FORMAT_EXCLUDE_NODUMP) !== 0n && (chattr & FS_NODUMP_FL) !== 0 && name != null) return undefined
        node.flags = deriveEntryFlags(mode, f, chattr, Math.max(fatAttrs, 0), subvolume, ro === 1)
        if ((f & WITH_QUOTA_PROJID) !== 0n && projid > 0) node.quotaProjId = BigInt(projid)
      }
    }
    const user = this.ownerName('user', Number(st.uid))
    if (user != null) node.user = user
    const group = this.ownerName('group', Number(st.gid))
    if (group != null) node.group = group
    if (type !== 0o120000) this.extras(path, node, type)
    return node
  }

  private * directory (path: Buffer, st: fs.BigIntStats, rel: string[], inherited: ExcludePattern[]): Generator<ArchiveEvent> {
    const node = this.node(path, rel.length > 0 ? Buffer.from(rel[rel.length - 1]!, 'latin1') : undefined, st)
    if (node == null) return
    yield { type: 'node', node }
    if (API_FS.has(this.fsType(st.dev, path))) { yield { type: 'end' }; return }
    this.signal?.throwIfAborted()
    const names = fs.readdirSync(path, { encoding: 'buffer' })
    names.sort(Buffer.compare)
    let patterns = inherited
    const f = this.flags
    if ((f & CA_FORMAT_EXCLUDE_FILE) !== 0n && names.some(n => n.equals(CAEXCLUDE))) {
      const file = Buffer.concat([path, SLASH, CAEXCLUDE])
      try {
        if (fs.lstatSync(file).isFile()) patterns = [...inherited, ...parseExcludeFile(fs.readFileSync(file, 'utf8'), rel.length)]
      } catch (err: any) {
        if (err.code !== 'ENOENT') throw err
      }
    }
    for (const name of names) {
      const child = Buffer.concat([path, SLASH, name])
      let cst: fs.BigIntStats
      try {
        cst = fs.lstatSync(child, { bigint: true })
      } catch (err: any) {
        if (err.code === 'ENOENT') continue // vanished meanwhile
        throw err
      }
      const mode = Number(cst.mode)
      const type = mode & 0o170000
      switch (type) {
        case 0o120000: if ((f & WITH_SYMLINKS) === 0n) continue; break
        case 0o060000: case 0o020000: if ((f & WITH_DEVICE_NODES) === 0n) continue; break
        case 0o010000: if ((f & WITH_FIFOS) === 0n) continue; break
        case 0o140000: if ((f & WITH_SOCKETS) === 0n) continue; break
      }
      const childRel = [...rel, name.toString('latin1')]
      if (patterns.length > 0 && isExcluded(patterns, childRel, type === S_IFDIR)) continue
      if ((f & CA_FORMAT_EXCLUDE_SUBMOUNTS) !== 0n && cst.dev !== this.rootDev) continue
      if (type === S_IFDIR) {
        yield * this.directory(child, cst, childRel, patterns)
        continue
      }
      const n = this.node(child, name, cst)
      if (n == null) continue
      if (type === S_IFREG) {
        const api = API_FS.has(this.fsType(cst.dev, child))
        n.size = api ? 0 : Number(cst.size)
        yield { type: 'node', node: n }
        if (n.size > 0) yield * this.payload(child, n.size)
      } else if (type === 0o120000) {
        n.target = fs.readlinkSync(child, { encoding: 'buffer' })
        yield { type: 'node', node: n }
      } else {
        if (type === 0o060000 || type === 0o020000) {
          const rdev = cst.rdev
          n.major = Number(((rdev >> 8n) & 0xfffn) | ((rdev >> 32n) & ~0xfffn))
          n.minor = Number((rdev & 0xffn) | ((rdev >> 12n) & ~0xffn))
        }
        yield { type: 'node', node: n }
      }
      yield { type: 'end' }
    }
    yield { type: 'end' }
  }

  private openRead (path: Buffer): number {
    if (this.noatime) {
      try {
        return fs.openSync(path, O_READ)
      } catch (err: any) {
        if (err.code !== 'EPERM') throw err
        this.noatime = false
      }
    }
    return fs.openSync(path, O_READ & ~(fs.constants.O_NOATIME ?? 0))
  }

  private * payload (path: Buffer, size: number): Generator<ArchiveEvent> {
    const fd = this.openRead(path)
    try {
      let left = size
      while (left > 0) {
        const want = Math.min(left, PIECE)
        const buf = want < SMALL ? this.scratch : Buffer.allocUnsafeSlow(want)
        let got = 0
        while (got < want) {
          const n = fs.readSync(fd, buf, got, want - got, null)
          if (n === 0) throw Object.assign(new Error(`${path.toString()} shrank while it was being archived`), { code: 'ERR_FILE_CHANGED' })
          got += n
        }
        left -= want
        yield { type: 'payload', data: buf.subarray(0, want) }
      }
    } finally {
      fs.closeSync(fd)
    }
  }
}

const CAEXCLUDE = Buffer.from('.caexclude')

/** The events of the tree at `root` under `options.featureFlags`. */
export function readTree (root: string | Buffer, options: ReadTreeOptions): Generator<ArchiveEvent> {
  return new TreeReader(options).events(root)
}

export interface EncodeTreeOptions extends ReadTreeOptions {
  /** bytes per yielded batch. @default 1 MiB */
  batchBytes?: number
}

/**
 * The catar stream of the directory `root`, exactly as `casync make` writes it for the same
 * feature flags. This is also what a directory seed is: chunk it with the index's parameters.
 */
export async function * encodeTree (root: string | Buffer, options: EncodeTreeOptions): AsyncGenerator<Uint8Array> {
  const encoder = new ArchiveEncoder({ featureFlags: options.featureFlags })
  const batch = options.batchBytes ?? 1 << 20
  for (const event of readTree(root, options)) {
    encoder.push(event)
    if (encoder.pendingBytes >= batch) {
      yield * encoder.take()
      options.signal?.throwIfAborted()
    }
  }
  yield * encoder.take()
}
