// How casync turns an lstat() result and the inode's extras into ENTRY fields under a feature
// set (spec §4.4), and back (which chattr/FAT bits to restore). Pure: the caller does the I/O.
import { S_IFDIR, S_IFLNK, S_IFMT, S_IFREG } from './constants.ts'
import {
  timeGranularity, WITH_16BIT_UIDS, WITH_32BIT_UIDS, WITH_ACL, WITH_FLAG_APPEND, WITH_FLAG_ARCHIVE,
  WITH_FLAG_COMPR, WITH_FLAG_DIRSYNC, WITH_FLAG_HIDDEN, WITH_FLAG_IMMUTABLE, WITH_FLAG_NOATIME,
  WITH_FLAG_NOCOMP, WITH_FLAG_NOCOW, WITH_FLAG_NODUMP, WITH_FLAG_PROJINHERIT, WITH_FLAG_SYNC,
  WITH_FLAG_SYSTEM, WITH_PERMISSIONS, WITH_READ_ONLY, WITH_SUBVOLUME, WITH_SUBVOLUME_RO
} from './feature-flags.ts'
import { InvalidArgumentError } from '../errors.ts'

/** ENTRY.flags bit ↔ Linux FS_IOC_GETFLAGS bit (casync-constants.json chattr_map) */
export const CHATTR_MAP: ReadonlyArray<readonly [bigint, number]> = [
  [WITH_FLAG_APPEND, 0x20], [WITH_FLAG_NOATIME, 0x80], [WITH_FLAG_COMPR, 0x4], [WITH_FLAG_NOCOW, 0x800000],
  [WITH_FLAG_NODUMP, 0x40], [WITH_FLAG_DIRSYNC, 0x10000], [WITH_FLAG_IMMUTABLE, 0x10], [WITH_FLAG_SYNC, 0x8],
  [WITH_FLAG_NOCOMP, 0x400], [WITH_FLAG_PROJINHERIT, 0x20000000]
]
/** ENTRY.flags bit ↔ FAT attribute bit (fat_attr_map) */
export const FAT_MAP: ReadonlyArray<readonly [bigint, number]> = [
  [WITH_FLAG_HIDDEN, 0x2], [WITH_FLAG_SYSTEM, 0x4], [WITH_FLAG_ARCHIVE, 0x20]
]
/** FS_NODUMP_FL */
export const FS_NODUMP_FL = 0x40

/** The stat fields casync uses (from lstat with bigint times). */
export interface NodeStat {
  mode: number
  uid: number
  gid: number
  mtimeNs: bigint
}

/** ENTRY.mode (spec §4.4.1) */
export function deriveMode (mode: number, flags: bigint): number {
  const type = mode & S_IFMT
  if (type === S_IFLNK) return S_IFLNK | 0o777
  if ((flags & (WITH_PERMISSIONS | WITH_ACL)) !== 0n) return mode & (S_IFMT | 0o7777)
  const dir = type === S_IFDIR
  if ((flags & WITH_READ_ONLY) !== 0n) {
    return type | ((mode & 0o222) !== 0 ? (dir ? 0o777 : 0o666) : (dir ? 0o555 : 0o444))
  }
  return type | (dir ? 0o777 : 0o666)
}

/** ENTRY.uid/gid (spec §4.4.2); throws for ids casync refuses */
export function deriveId (id: number, flags: bigint, what: string): number {
  if ((flags & (WITH_16BIT_UIDS | WITH_32BIT_UIDS)) === 0n) return 0
  if (id === 0xffff || id === 0xffffffff) throw new InvalidArgumentError(`${what} ${id} cannot be archived`)
  if ((flags & WITH_32BIT_UIDS) === 0n && id > 0xffff) throw new InvalidArgumentError(`${what} ${id} does not fit 16 bits (16bit-uids)`)
  return id
}

/** ENTRY.mtime (spec §4.4.3) */
export function deriveMtime (mtimeNs: bigint, flags: bigint): bigint {
  const g = timeGranularity(flags)
  if (g === 0n) return 0n
  return mtimeNs < 0n ? 0n : (mtimeNs / g) * g
}

/** ENTRY.flags from chattr / FAT attributes / subvolume state (spec §4.4.4) */
export function deriveEntryFlags (mode: number, flags: bigint, chattr: number, fat: number, subvolume: boolean, subvolumeRo: boolean): bigint {
  const type = mode & S_IFMT
  if (type !== S_IFREG && type !== S_IFDIR) return 0n
  let out = 0n
  for (const [bit, fl] of CHATTR_MAP) if ((chattr & fl) !== 0) out |= bit
  for (const [bit, fa] of FAT_MAP) if ((fat & fa) !== 0) out |= bit
  if (type === S_IFDIR && subvolume) out |= WITH_SUBVOLUME
  if (type === S_IFDIR && subvolumeRo) out |= WITH_SUBVOLUME_RO
  return out & flags
}

/** FS_IOC_SETFLAGS bits for ENTRY.flags, and the mask of bits the archive could carry */
export function chattrFromEntryFlags (entryFlags: bigint, featureFlags: bigint): { value: number, mask: number } {
  let value = 0
  let mask = 0
  for (const [bit, fl] of CHATTR_MAP) {
    if ((featureFlags & bit) === 0n) continue
    mask |= fl
    if ((entryFlags & bit) !== 0n) value |= fl
  }
  return { value, mask }
}

export function fatFromEntryFlags (entryFlags: bigint): number {
  let v = 0
  for (const [bit, fa] of FAT_MAP) if ((entryFlags & bit) !== 0n) v |= fa
  return v
}
