// The directory reader: walks a tree like casync's encoder does (spec §4.4–§4.8) and serialises
// it into an ArchiveEncoder. Synchronous calls on purpose: for thousands of small files they are
// several times faster than the promise API, and the callers take the output in batches. One
// native call per directory (scanDir) returns every entry's lstat fields, inode flags and xattrs,
// read through one descriptor per file as casync does; file contents are read straight into the
// encoder's output buffer. Names stay raw bytes (Buffers) from readdir to the archive.
import * as fs from 'node:fs'
import * as os from 'node:os'
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
import type { AclEntry, ArchiveNode } from '../../protocol/catar/types.ts'
import { InvalidArgumentError } from '../../protocol/errors.ts'
import { ACL_ACCESS_XATTR, ACL_DEFAULT_XATTR, aclDefaultFields, parseAclXattr } from './acl.ts'
import {
  F_CHATTR, F_DEV, F_EXTRAS_ERRNO, F_FAT, F_GID, F_INO, F_MODE, F_MTIME_NSEC, F_MTIME_SEC, F_NAME,
  F_NAME_LENGTH, F_PROJID, F_RDEV_MAJOR, F_RDEV_MINOR, F_SIZE, F_STAT_ERRNO, F_SUBVOLUME_RO, F_UID,
  SCAN_FAT, SCAN_FIELDS, SCAN_FLAGS, SCAN_SUBVOLUME, SCAN_XATTRS, treeNative, type TreeNative
} from './native.ts'

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
const SLASH = Buffer.from('/')
const ENOENT = os.constants.errno.ENOENT

/** An entry's lstat fields, and its flags and xattrs when a directory scan read them. */
interface EntryStat {
  mode: number
  uid: number
  gid: number
  size: number
  mtimeNs: bigint
  dev: number
  ino: number
  rdevMajor: number
  rdevMinor: number
  /** set when the scan read the inode flags (-1 = not available) */
  flags?: { chattr: number, fat: number, projid: number, subvolumeRo: number }
  /** set when the scan read the xattrs (empty: none) */
  xattrs?: Array<[Buffer, Buffer]>
}

function fromStats (st: fs.BigIntStats): EntryStat {
  const rdev = st.rdev
  return {
    mode: Number(st.mode),
    uid: Number(st.uid),
    gid: Number(st.gid),
    size: Number(st.size),
    mtimeNs: st.mtimeNs,
    dev: Number(st.dev),
    ino: Number(st.ino),
    rdevMajor: Number(((rdev >> 8n) & 0xfffn) | ((rdev >> 32n) & ~0xfffn)),
    rdevMinor: Number((rdev & 0xffn) | ((rdev >> 12n) & ~0xffn))
  }
}

const NO_XATTRS: Array<[Buffer, Buffer]> = []

export class TreeReader {
  private readonly flags: bigint
  private readonly signal?: AbortSignal
  private readonly native: TreeNative
  private readonly names = { user: new Map<number, string | null>(), group: new Map<number, string | null>() }
  private readonly fsTypes = new Map<number, number>()
  private readonly selinux: boolean
  private readonly wantXattrs: boolean
  private readonly wantFlags: boolean
  private rootDev = 0

  constructor (options: ReadTreeOptions) {
    this.flags = options.featureFlags
    this.signal = options.signal
    this.native = treeNative()
    this.selinux = (this.flags & WITH_SELINUX) !== 0n && fs.existsSync('/sys/fs/selinux/enforce')
    this.wantXattrs = (this.flags & (WITH_XATTRS | WITH_ACL | WITH_FCAPS)) !== 0n || this.selinux
    this.wantFlags = (this.flags & (WITH_CHATTR | WITH_QUOTA_PROJID | CA_FORMAT_EXCLUDE_NODUMP)) !== 0n
  }

  /**
   * Serialises the tree at `root` (a directory; a symlink to one is followed) into `encoder`,
   * pausing (yielding) whenever `encoder.pendingBytes` reaches `batch`, so that the caller can
   * take() the output.
   */
  * encode (root: string | Buffer, encoder: ArchiveEncoder, batch: number): Generator<void> {
    const path = Buffer.isBuffer(root) ? root : Buffer.from(root)
    const st = fs.statSync(path, { bigint: true })
    if (!st.isDirectory()) throw new InvalidArgumentError(`${path.toString()} is not a directory`)
    this.rootDev = Number(st.dev)
    yield * this.directory(encoder, batch, path, undefined, fromStats(st), [], [])
  }

  private fsType (dev: number, path: Buffer): number {
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
  private extras (path: Buffer, node: ArchiveNode, type: number, scanned: Array<[Buffer, Buffer]> | undefined): void {
    const f = this.flags
    if (!this.wantXattrs) return
    const all = scanned ?? this.native.lxattrs(path)
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

  /** The node for an entry, or undefined when casync would leave it out. */
  private node (path: Buffer, name: Buffer | undefined, st: EntryStat): ArchiveNode | undefined {
    const f = this.flags
    const mode = st.mode
    const type = mode & 0o170000
    const node: ArchiveNode = {
      mode: deriveMode(mode, f),
      flags: 0n,
      uid: deriveId(st.uid, f, 'uid'),
      gid: deriveId(st.gid, f, 'gid'),
      mtime: deriveMtime(st.mtimeNs, f)
    }
    if (name != null) node.name = name
    if (type === S_IFREG || type === S_IFDIR) {
      const fsType = this.fsType(st.dev, path)
      const fat = (f & WITH_FAT_ATTRS) !== 0n && FAT_FS.has(fsType)
      const subvolume = type === S_IFDIR && (f & WITH_SUBVOLUME) !== 0n && fsType === BTRFS_FS && st.ino === 256
      if (this.wantFlags || fat || subvolume) {
        let chattr = 0; let fatAttrs = 0; let projid = 0; let ro = 0
        if (st.flags != null) {
          ({ chattr, fat: fatAttrs, projid, subvolumeRo: ro } = st.flags)
        } else {
          try {
            [chattr, fatAttrs, projid, ro] = this.native.inodeFlags(path, fat, subvolume && (f & WITH_SUBVOLUME_RO) !== 0n)
          } catch (err: any) {
            if (err.code !== 'EACCES' && err.code !== 'ENXIO' && err.code !== 'EPERM') throw err
          }
        }
        if (chattr < 0) chattr = 0
        if ((f & CA_FORMAT_EXCLUDE_NODUMP) !== 0n && (chattr & FS_NODUMP_FL) !== 0 && name != null) return undefined
        node.flags = deriveEntryFlags(mode, f, chattr, Math.max(fatAttrs, 0), subvolume, ro === 1)
        if ((f & WITH_QUOTA_PROJID) !== 0n && projid > 0) node.quotaProjId = BigInt(projid)
      }
    }
    const user = this.ownerName('user', st.uid)
    if (user != null) node.user = user
    const group = this.ownerName('group', st.gid)
    if (group != null) node.group = group
    if (type !== 0o120000) this.extras(path, node, type, st.xattrs)
    return node
  }

  /** scanDir options for the entries of a directory on a file system of type `fsType` */
  private scanOptions (fsType: number): number {
    const f = this.flags
    let options = 0
    if (this.wantFlags) options |= SCAN_FLAGS
    if (this.wantXattrs) options |= SCAN_XATTRS
    if ((f & WITH_FAT_ATTRS) !== 0n && FAT_FS.has(fsType)) options |= SCAN_FAT
    if ((f & WITH_SUBVOLUME) !== 0n && fsType === BTRFS_FS) options |= SCAN_SUBVOLUME
    return options
  }

  private * directory (encoder: ArchiveEncoder, batch: number, path: Buffer, name: Buffer | undefined, st: EntryStat, rel: string[], inherited: ExcludePattern[]): Generator<void> {
    const node = this.node(path, name, st)
    if (node == null) return
    encoder.node(node)
    const dirType = this.fsType(st.dev, path)
    if (API_FS.has(dirType)) { encoder.end(); return }
    this.signal?.throwIfAborted()
    const [names, fields, xattrs, targets] = this.native.scanDir(path, this.scanOptions(dirType))
    const count = fields.length / SCAN_FIELDS
    const nameAt = (i: number): Buffer => names.subarray(fields[i * SCAN_FIELDS + F_NAME]!, fields[i * SCAN_FIELDS + F_NAME]! + fields[i * SCAN_FIELDS + F_NAME_LENGTH]!)
    let patterns = inherited
    const f = this.flags
    if ((f & CA_FORMAT_EXCLUDE_FILE) !== 0n) {
      for (let i = 0; i < count; i++) {
        if (!nameAt(i).equals(CAEXCLUDE)) continue
        const file = Buffer.concat([path, SLASH, CAEXCLUDE])
        try {
          if (fs.lstatSync(file).isFile()) patterns = [...inherited, ...parseExcludeFile(fs.readFileSync(file, 'utf8'), rel.length)]
        } catch (err: any) {
          if (err.code !== 'ENOENT') throw err
        }
        break
      }
    }
    for (let i = 0; i < count; i++) {
      const b = i * SCAN_FIELDS
      const childName = nameAt(i)
      const child = Buffer.concat([path, SLASH, childName])
      let cst: EntryStat
      const statErrno = fields[b + F_STAT_ERRNO]!
      if (statErrno === 0) {
        cst = {
          mode: fields[b + F_MODE]!,
          uid: fields[b + F_UID]!,
          gid: fields[b + F_GID]!,
          size: fields[b + F_SIZE]!,
          mtimeNs: BigInt(fields[b + F_MTIME_SEC]!) * 1_000_000_000n + BigInt(fields[b + F_MTIME_NSEC]!),
          dev: fields[b + F_DEV]!,
          ino: fields[b + F_INO]!,
          rdevMajor: fields[b + F_RDEV_MAJOR]!,
          rdevMinor: fields[b + F_RDEV_MINOR]!
        }
        // flags and xattrs the scan read, unless it failed (then node() reads them and reports
        // the error) or the entry is on another file system (a mount point: other flags apply)
        if (fields[b + F_EXTRAS_ERRNO] === 0 && cst.dev === st.dev) {
          cst.flags = { chattr: fields[b + F_CHATTR]!, fat: fields[b + F_FAT]!, projid: fields[b + F_PROJID]!, subvolumeRo: fields[b + F_SUBVOLUME_RO]! }
          if (this.wantXattrs) cst.xattrs = xattrs[i] ?? NO_XATTRS
        }
      } else {
        if (statErrno === ENOENT) continue // vanished meanwhile
        cst = fromStats(fs.lstatSync(child, { bigint: true })) // throws the error, or it went away
      }
      const mode = cst.mode
      const type = mode & 0o170000
      switch (type) {
        case 0o120000: if ((f & WITH_SYMLINKS) === 0n) continue; break
        case 0o060000: case 0o020000: if ((f & WITH_DEVICE_NODES) === 0n) continue; break
        case 0o010000: if ((f & WITH_FIFOS) === 0n) continue; break
        case 0o140000: if ((f & WITH_SOCKETS) === 0n) continue; break
      }
      const childRel = patterns.length > 0 || type === S_IFDIR ? [...rel, childName.toString('latin1')] : rel
      if (patterns.length > 0 && isExcluded(patterns, childRel, type === S_IFDIR)) continue
      if ((f & CA_FORMAT_EXCLUDE_SUBMOUNTS) !== 0n && cst.dev !== this.rootDev) continue
      if (type === S_IFDIR) {
        yield * this.directory(encoder, batch, child, childName, cst, childRel, patterns)
        continue
      }
      const n = this.node(child, childName, cst)
      if (n == null) continue
      if (type === S_IFREG) {
        const api = cst.dev === st.dev ? API_FS.has(dirType) : API_FS.has(this.fsType(cst.dev, child))
        n.size = api ? 0 : cst.size
        encoder.node(n)
        if (n.size > 0) yield * this.payload(encoder, batch, child, n.size)
      } else if (type === 0o120000) {
        n.target = targets[i] ?? fs.readlinkSync(child, { encoding: 'buffer' })
        encoder.node(n)
      } else {
        if (type === 0o060000 || type === 0o020000) {
          n.major = cst.rdevMajor
          n.minor = cst.rdevMinor
        }
        encoder.node(n)
      }
      encoder.end()
      if (encoder.pendingBytes >= batch) yield
    }
    encoder.end()
  }

  /** reads the file's `size` bytes straight into the encoder's output */
  private * payload (encoder: ArchiveEncoder, batch: number, path: Buffer, size: number): Generator<void> {
    let done = 0
    while (done < size) {
      const space = encoder.payloadSpace(size - done)
      const n = this.native.readAt(path, space, done)
      if (n < space.byteLength) throw Object.assign(new Error(`${path.toString()} shrank while it was being archived`), { code: 'ERR_FILE_CHANGED' })
      encoder.commitPayload(n)
      done += n
      if (done < size && encoder.pendingBytes >= batch) yield
    }
  }
}

const CAEXCLUDE = Buffer.from('.caexclude')

export interface EncodeTreeOptions extends ReadTreeOptions {
  /** bytes per yielded batch. @default 1 MiB */
  batchBytes?: number
}

/**
 * The catar stream of the directory `root`, exactly as `casync make` writes it for the same
 * feature flags. This is also what a directory seed is: chunk it with the index's parameters.
 * The pieces are the caller's to keep.
 */
export async function * encodeTree (root: string | Buffer, options: EncodeTreeOptions): AsyncGenerator<Uint8Array> {
  const batch = options.batchBytes ?? 1 << 20
  const encoder = new ArchiveEncoder({ featureFlags: options.featureFlags, bufferSize: batch })
  const steps = new TreeReader(options).encode(root, encoder, batch)
  while (steps.next().done !== true) {
    yield * encoder.take()
    options.signal?.throwIfAborted()
  }
  yield * encoder.take()
}

/**
 * encodeTree() for a consumer that is done with each batch before asking for the next (it copies
 * or writes it synchronously): the encoder reuses one output buffer, so the pieces of a batch are
 * valid only until the next batch is requested.
 */
export function * encodeTreeBatches (root: string | Buffer, options: EncodeTreeOptions): Generator<Uint8Array[]> {
  const batch = options.batchBytes ?? 1 << 20
  // room for a batch and the file that completes it, so that one buffer serves every batch
  const encoder = new ArchiveEncoder({ featureFlags: options.featureFlags, bufferSize: 2 * batch })
  const steps = new TreeReader(options).encode(root, encoder, batch)
  while (steps.next().done !== true) {
    yield encoder.take()
    encoder.recycle()
    options.signal?.throwIfAborted()
  }
  yield encoder.take()
}
