// The native addon (native/tree.c, built by node-gyp on `npm install`): the Linux calls Node has
// no API for. Loaded lazily so that commands not touching trees work without it.
import { createRequire } from 'node:module'

export type PathLike = Buffer | string
/** an opaque native handle */
export interface HashingWriterHandle { readonly __hashingWriter: never }

export interface TreeNative {
  /** every extended attribute of the inode (not following symlinks): [name, value] pairs */
  lxattrs: (path: PathLike) => Array<[Buffer, Buffer]>
  lsetxattr: (path: PathLike, name: string, value: Uint8Array) => void
  lremovexattr: (path: PathLike, name: string) => void
  /** [chattr, fatAttrs, projid, subvolumeReadOnly]; -1 where unavailable (regular files/dirs only) */
  inodeFlags: (path: PathLike, fat: boolean, subvolume: boolean) => [number, number, number, number]
  /** sets the chattr bits in `mask` to `value`; fat/projid -1 = leave alone */
  setInodeFlags: (path: PathLike, value: number, mask: number, fat: number, projid: number) => void
  statfsType: (path: PathLike) => number
  /**
   * The entries of a directory, sorted bytewise by name, with their lstat fields and (as the
   * SCAN_* bits in `options` ask) inode flags and xattrs, read through one descriptor per
   * regular file or directory. `fields` holds SCAN_FIELDS numbers per entry (SCAN_* offsets).
   */
  scanDir: (path: PathLike, options: number) => [names: Buffer, fields: Float64Array, xattrs: Array<Array<[Buffer, Buffer]> | undefined>, targets: Array<Buffer | undefined>]
  /** fills `buffer` from `position` of the regular file at path (O_NOFOLLOW); fewer bytes only at its end */
  readAt: (path: PathLike, buffer: Uint8Array, position: number) => number
  /**
   * creates a regular file that must not exist (O_EXCL|O_NOFOLLOW), writes `pieces`, then
   * fchown (uid >= 0), fchmod and futimens (sec >= 0), and closes it
   */
  createFile: (path: PathLike, pieces: Uint8Array[], mode: number, uid: number, gid: number, sec: number, nsec: number) => void
  /**
   * createFile() on creator thread `lane` (the bytes are copied); throws a failure of an earlier
   * queued file. A directory and everything in it must go to one lane (its jobs run in order).
   */
  createFileQueued: (path: PathLike, pieces: Uint8Array[], mode: number, uid: number, gid: number, sec: number, nsec: number, lane: number) => void
  /** waits until every queued file is made; throws the first failure (with its path) */
  createFilesDrain: () => void
  /** mkdir(path, 0o700) on the creator thread, in turn with the files queued */
  makeDirQueued: (path: PathLike, lane: number) => void
  /** symlink(target, path) on the creator thread, in turn with the files queued */
  makeSymlinkQueued: (target: Buffer, path: PathLike, lane: number) => void
  /** starts a thread that digests and writes to `fd` what hashingWriterWrite() hands it */
  hashingWriter: (fd: number, algorithm: 'sha256' | 'sha512-256') => HashingWriterHandle
  /** copies `data` for the thread; blocks while its ring is full; throws its first write error */
  hashingWriterWrite: (handle: HashingWriterHandle, data: Uint8Array) => void
  /** waits for the thread to write everything: [hex digest, bytes written] */
  hashingWriterFinish: (handle: HashingWriterHandle) => [string, number]
  /** stops the thread without writing what is left */
  hashingWriterAbort: (handle: HashingWriterHandle) => void
  mknod: (path: PathLike, mode: number, major: number, minor: number) => void
  /** utimensat(AT_SYMLINK_NOFOLLOW) with nanoseconds, atime = mtime */
  lutimens: (path: PathLike, sec: number, nsec: number) => void
  futimens: (fd: number, sec: number, nsec: number) => void
  userName: (uid: number) => string | null
  groupName: (gid: number) => string | null
  userId: (name: string) => number | null
  groupId: (name: string) => number | null
}

/** scanDir options: chattr and project id, xattrs, FAT attributes, btrfs subvolume flags */
export const SCAN_FLAGS = 1
export const SCAN_XATTRS = 2
export const SCAN_FAT = 4
export const SCAN_SUBVOLUME = 8
/** scanDir fields: numbers per entry, and what each one is (native/tree.c scan_dir) */
export const SCAN_FIELDS = 18
export const F_NAME = 0
export const F_NAME_LENGTH = 1
export const F_MODE = 2
export const F_UID = 3
export const F_GID = 4
export const F_SIZE = 5
export const F_MTIME_SEC = 6
export const F_MTIME_NSEC = 7
export const F_DEV = 8
export const F_INO = 9
export const F_RDEV_MAJOR = 10
export const F_RDEV_MINOR = 11
export const F_CHATTR = 12
export const F_FAT = 13
export const F_PROJID = 14
export const F_SUBVOLUME_RO = 15
export const F_STAT_ERRNO = 16
export const F_EXTRAS_ERRNO = 17

let loaded: TreeNative | undefined

export function treeNative (): TreeNative {
  if (loaded != null) return loaded
  const require = createRequire(import.meta.url)
  try {
    // from node/tree/ in the sources, or from dist/node/tree/ in the compiled build
    try {
      loaded = require('../../native/index.cjs') as TreeNative
    } catch (err: any) {
      if (err.code !== 'MODULE_NOT_FOUND') throw err
      loaded = require('../../../native/index.cjs') as TreeNative
    }
  } catch (err: any) {
    throw Object.assign(new Error(`the native tree addon is not built (run "npm install" or "npx node-gyp rebuild -C native"): ${String(err.message)}`), { code: 'ERR_NATIVE_MISSING', cause: err })
  }
  return loaded
}
