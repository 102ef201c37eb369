// The native addon (native/tree.c, built by node-gyp on `npm install`): the Linux calls Node has
// no API for. Loaded lazily so that commands not touching trees work without it.
import { createRequire } from 'node:module'

export type PathLike = Buffer | string

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
  mknod: (path: PathLike, mode: number, major: number, minor: number) => void
  /** utimensat(AT_SYMLINK_NOFOLLOW) with nanoseconds, atime = mtime */
  lutimens: (path: PathLike, sec: number, nsec: number) => void
  futimens: (fd: number, sec: number, nsec: number) => void
  userName: (uid: number) => string | null
  groupName: (gid: number) => string | null
  userId: (name: string) => number | null
  groupId: (name: string) => number | null
}

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
