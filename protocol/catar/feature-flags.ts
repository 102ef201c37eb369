// catar feature flags (spec §4.3): the single bits with their --with/--without names, the
// composite names, casync's default set, how the CLI combines them, and normalisation.
import {
  CA_FORMAT_EXCLUDE_FILE, CA_FORMAT_EXCLUDE_NODUMP, CA_FORMAT_EXCLUDE_SUBMOUNTS,
  CA_FORMAT_FEATURE_FLAGS_MAX, CA_FORMAT_SHA512_256, CA_FORMAT_WITH_MASK
} from '../constants.ts'
import { InvalidArgumentError, InvalidFormatError } from '../errors.ts'

// casync src/caformat.h CA_FORMAT_WITH_*; values fit in 33 bits, so numbers would do, but
// they are combined with the high bits below, hence bigint throughout.
export const WITH_16BIT_UIDS = 0x1n
export const WITH_32BIT_UIDS = 0x2n
export const WITH_USER_NAMES = 0x4n
export const WITH_SEC_TIME = 0x8n
export const WITH_USEC_TIME = 0x10n
export const WITH_NSEC_TIME = 0x20n
export const WITH_2SEC_TIME = 0x40n
export const WITH_READ_ONLY = 0x80n
export const WITH_PERMISSIONS = 0x100n
export const WITH_SYMLINKS = 0x200n
export const WITH_DEVICE_NODES = 0x400n
export const WITH_FIFOS = 0x800n
export const WITH_SOCKETS = 0x1000n
export const WITH_FLAG_HIDDEN = 0x2000n
export const WITH_FLAG_SYSTEM = 0x4000n
export const WITH_FLAG_ARCHIVE = 0x8000n
export const WITH_FLAG_APPEND = 0x10000n
export const WITH_FLAG_NOATIME = 0x20000n
export const WITH_FLAG_COMPR = 0x40000n
export const WITH_FLAG_NOCOW = 0x80000n
export const WITH_FLAG_NODUMP = 0x100000n
export const WITH_FLAG_DIRSYNC = 0x200000n
export const WITH_FLAG_IMMUTABLE = 0x400000n
export const WITH_FLAG_SYNC = 0x800000n
export const WITH_FLAG_NOCOMP = 0x1000000n
export const WITH_FLAG_PROJINHERIT = 0x2000000n
export const WITH_SUBVOLUME = 0x4000000n
export const WITH_SUBVOLUME_RO = 0x8000000n
export const WITH_XATTRS = 0x10000000n
export const WITH_ACL = 0x20000000n
export const WITH_SELINUX = 0x40000000n
export const WITH_FCAPS = 0x80000000n
export const WITH_QUOTA_PROJID = 0x100000000n

export const WITH_UID_BITS = WITH_16BIT_UIDS | WITH_32BIT_UIDS
export const WITH_TIME_BITS = WITH_SEC_TIME | WITH_USEC_TIME | WITH_NSEC_TIME | WITH_2SEC_TIME
export const WITH_FAT_ATTRS = WITH_FLAG_HIDDEN | WITH_FLAG_SYSTEM | WITH_FLAG_ARCHIVE
export const WITH_CHATTR = 0x3ff0000n
/** The bits that can appear in ENTRY.flags (spec §4.4.4) */
export const ENTRY_FLAG_BITS = WITH_FAT_ATTRS | WITH_CHATTR | WITH_SUBVOLUME | WITH_SUBVOLUME_RO

/** casync's CA_FORMAT_DEFAULT (spec §4.3.3), with SHA512_256 set */
export const CA_FORMAT_DEFAULT = 0xb0000001ffeffe26n

/** The 33 single names in bit order (`--with=help` prints them in this order) */
export const WITH_NAMES: ReadonlyArray<readonly [string, bigint]> = [
  ['16bit-uids', WITH_16BIT_UIDS], ['32bit-uids', WITH_32BIT_UIDS], ['user-names', WITH_USER_NAMES],
  ['sec-time', WITH_SEC_TIME], ['usec-time', WITH_USEC_TIME], ['nsec-time', WITH_NSEC_TIME],
  ['2sec-time', WITH_2SEC_TIME], ['read-only', WITH_READ_ONLY], ['permissions', WITH_PERMISSIONS],
  ['symlinks', WITH_SYMLINKS], ['device-nodes', WITH_DEVICE_NODES], ['fifos', WITH_FIFOS],
  ['sockets', WITH_SOCKETS], ['flag-hidden', WITH_FLAG_HIDDEN], ['flag-system', WITH_FLAG_SYSTEM],
  ['flag-archive', WITH_FLAG_ARCHIVE], ['flag-append', WITH_FLAG_APPEND], ['flag-noatime', WITH_FLAG_NOATIME],
  ['flag-compr', WITH_FLAG_COMPR], ['flag-nocow', WITH_FLAG_NOCOW], ['flag-nodump', WITH_FLAG_NODUMP],
  ['flag-dirsync', WITH_FLAG_DIRSYNC], ['flag-immutable', WITH_FLAG_IMMUTABLE], ['flag-sync', WITH_FLAG_SYNC],
  ['flag-nocomp', WITH_FLAG_NOCOMP], ['flag-projinherit', WITH_FLAG_PROJINHERIT], ['subvolume', WITH_SUBVOLUME],
  ['subvolume-ro', WITH_SUBVOLUME_RO], ['xattrs', WITH_XATTRS], ['acl', WITH_ACL], ['selinux', WITH_SELINUX],
  ['fcaps', WITH_FCAPS], ['quota-projid', WITH_QUOTA_PROJID]
]

/** Composite names (spec §4.3.2) */
export const WITH_COMPOSITES: ReadonlyArray<readonly [string, bigint]> = [
  ['best', 0x1fffffe26n],
  ['unix', 0x1f09n],
  ['fat', 0xe0c0n],
  ['chattr', WITH_CHATTR],
  ['fat-attrs', WITH_FAT_ATTRS],
  ['privileged', 0x1ec414407n],
  ['fuse', 0x13fffffbn],
  ['all', CA_FORMAT_WITH_MASK]
]

const BY_NAME = new Map<string, bigint>([...WITH_NAMES, ...WITH_COMPOSITES])

/** The value of one --with/--without name (single or composite); InvalidArgumentError if unknown. */
export function withFlag (name: string): bigint {
  const v = BY_NAME.get(name)
  if (v == null) throw new InvalidArgumentError(`unknown feature "${name}" (try --with=help)`)
  return v
}

/** The text `--with=help` prints: one name a line, single bits in bit order, then composites. */
export function withHelp (): string {
  return [...WITH_NAMES, ...WITH_COMPOSITES].map(([n]) => n).join('\n') + '\n'
}

/** Names of the single bits set in `flags` (in bit order), for messages and `--json` output. */
export function describeFlags (flags: bigint): string[] {
  const out = WITH_NAMES.filter(([, v]) => (flags & v) !== 0n).map(([n]) => n)
  if ((flags & CA_FORMAT_EXCLUDE_NODUMP) !== 0n) out.push('exclude-nodump')
  if ((flags & CA_FORMAT_EXCLUDE_SUBMOUNTS) !== 0n) out.push('exclude-submounts')
  if ((flags & CA_FORMAT_SHA512_256) !== 0n) out.push('sha512-256')
  if ((flags & CA_FORMAT_EXCLUDE_FILE) !== 0n) out.push('exclude-file')
  return out
}

/** casync's ca_feature_flags_normalize (spec §4.3.3 step 3), in its order. */
export function normalizeFeatureFlags (flags: bigint): bigint {
  let f = flags
  if ((f & WITH_ACL) !== 0n && (f & (WITH_UID_BITS | WITH_USER_NAMES)) === 0n) f |= WITH_32BIT_UIDS | WITH_USER_NAMES
  if ((f & WITH_32BIT_UIDS) !== 0n) f &= ~WITH_16BIT_UIDS
  if ((f & WITH_NSEC_TIME) !== 0n) f &= ~(WITH_USEC_TIME | WITH_SEC_TIME | WITH_2SEC_TIME)
  if ((f & WITH_USEC_TIME) !== 0n) f &= ~(WITH_SEC_TIME | WITH_2SEC_TIME)
  if ((f & WITH_SEC_TIME) !== 0n) f &= ~WITH_2SEC_TIME
  if ((f & WITH_ACL) !== 0n) f &= ~(WITH_PERMISSIONS | WITH_READ_ONLY)
  if ((f & WITH_PERMISSIONS) !== 0n) f &= ~WITH_READ_ONLY
  if ((f & CA_FORMAT_EXCLUDE_NODUMP) !== 0n) f &= ~WITH_FLAG_NODUMP
  if ((f & WITH_SUBVOLUME_RO) !== 0n) f |= WITH_SUBVOLUME
  return f
}

/** Throws unless `flags` has only known bits and is normalised (what casync's readers require). */
export function checkFeatureFlags (flags: bigint, where = 'feature flags'): void {
  if ((flags & ~CA_FORMAT_FEATURE_FLAGS_MAX) !== 0n) throw new InvalidFormatError(`${where} 0x${flags.toString(16)} have unknown bits`)
  if (normalizeFeatureFlags(flags) !== flags) throw new InvalidFormatError(`${where} 0x${flags.toString(16)} are not normalised`)
}

export interface FeatureFlagOptions {
  /** --with names (repeatable); none given → every WITH bit (casync's default for archives) */
  with?: string[]
  /** --without names (repeatable) */
  without?: string[]
  /** @default 'sha512-256' (casync's default); caswarm's CLI passes its own --digest */
  digest?: 'sha256' | 'sha512-256'
  /** --exclude-nodump. @default true */
  excludeNodump?: boolean
  /** --exclude-file (.caexclude). @default true */
  excludeFile?: boolean
  /** --exclude-submounts. @default false */
  excludeSubmounts?: boolean
}

/** The archive flags casync's CLI computes for make/list/mtree/digest of a tree (spec §4.3.3). */
export function archiveFeatureFlags (options: FeatureFlagOptions = {}): bigint {
  const withs = (options.with ?? []).flatMap(splitNames)
  let f = withs.length > 0 ? withs.reduce((a, n) => a | withFlag(n), 0n) : CA_FORMAT_WITH_MASK
  for (const n of (options.without ?? []).flatMap(splitNames)) f &= ~withFlag(n)
  if (options.excludeNodump ?? true) f |= CA_FORMAT_EXCLUDE_NODUMP
  if (options.excludeFile ?? true) f |= CA_FORMAT_EXCLUDE_FILE
  if (options.excludeSubmounts ?? false) f |= CA_FORMAT_EXCLUDE_SUBMOUNTS
  if ((options.digest ?? 'sha512-256') === 'sha512-256') f |= CA_FORMAT_SHA512_256
  return normalizeFeatureFlags(f)
}

/** casync accepts comma-separated lists in one --with=a,b too. */
function splitNames (s: string): string[] {
  return s.split(',').map(x => x.trim()).filter(x => x !== '')
}

/** mtime granularity in ns for the flags (spec §4.4.3); 0n when no time bit is set. */
export function timeGranularity (flags: bigint): bigint {
  if ((flags & WITH_NSEC_TIME) !== 0n) return 1n
  if ((flags & WITH_USEC_TIME) !== 0n) return 1000n
  if ((flags & WITH_SEC_TIME) !== 0n) return 1_000_000_000n
  if ((flags & WITH_2SEC_TIME) !== 0n) return 2_000_000_000n
  return 0n
}
