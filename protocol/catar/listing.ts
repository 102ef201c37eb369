// Text formats of casync's list, mtree and stat verbs (spec §5.3–§5.5), from decoded nodes.
import { S_IFBLK, S_IFCHR, S_IFDIR, S_IFIFO, S_IFLNK, S_IFMT, S_IFREG, S_IFSOCK } from './constants.ts'
import {
  timeGranularity, WITH_16BIT_UIDS, WITH_32BIT_UIDS, WITH_FLAG_APPEND, WITH_FLAG_ARCHIVE, WITH_FLAG_COMPR,
  WITH_FLAG_DIRSYNC, WITH_FLAG_HIDDEN, WITH_FLAG_IMMUTABLE, WITH_FLAG_NOATIME, WITH_FLAG_NOCOMP,
  WITH_FLAG_NOCOW, WITH_FLAG_NODUMP, WITH_FLAG_PROJINHERIT, WITH_FLAG_SYNC, WITH_FLAG_SYSTEM, WITH_USER_NAMES
} from './feature-flags.ts'
import type { ArchiveNode } from './types.ts'

/** `ls -l` style mode: type letter and rwx triplets with s/S and t/T (sticky on directories only). */
export function lsMode (mode: number): string {
  const type = mode & S_IFMT
  const t = type === S_IFDIR ? 'd' : type === S_IFREG ? '-' : type === S_IFLNK ? 'l' : type === S_IFBLK ? 'b' : type === S_IFCHR ? 'c' : type === S_IFIFO ? 'p' : type === S_IFSOCK ? 's' : '?'
  const r = (bit: number, c: string): string => (mode & bit) !== 0 ? c : '-'
  const x = (bit: number, special: number, on: string, off: string): string =>
    (mode & special) !== 0 ? ((mode & bit) !== 0 ? on : off) : r(bit, 'x')
  return t +
    r(0o400, 'r') + r(0o200, 'w') + x(0o100, 0o4000, 's', 'S') +
    r(0o040, 'r') + r(0o020, 'w') + x(0o010, 0o2000, 's', 'S') +
    r(0o004, 'r') + r(0o002, 'w') + (type === S_IFDIR ? x(0o001, 0o1000, 't', 'T') : r(0o001, 'x'))
}

const OCT = Array.from({ length: 256 }, (_, i) => '\\' + i.toString(8).padStart(3, '0'))

/** mtree escaping: bytes ≤ 0x20, ≥ 0x7f, '\' and '#' become \ooo. */
export function mtreeEscape (bytes: Uint8Array): string {
  let out = ''
  for (const b of bytes) out += (b <= 0x20 || b >= 0x7f || b === 0x5c || b === 0x23) ? OCT[b]! : String.fromCharCode(b)
  return out
}

/** The archive-relative path of a node ('.' for the root), escaped. */
export function pathString (path: Uint8Array[]): string {
  if (path.length === 0) return '.'
  return path.map(mtreeEscape).join('/')
}

export function listLine (node: ArchiveNode, path: Uint8Array[]): string {
  return `${lsMode(node.mode)} ${pathString(path)}`
}

const MTREE_TYPES: Record<number, string> = { [S_IFDIR]: 'dir', [S_IFREG]: 'file', [S_IFLNK]: 'link', [S_IFBLK]: 'block', [S_IFCHR]: 'char', [S_IFIFO]: 'fifo', [S_IFSOCK]: 'socket' }
const MTREE_FLAGS: Array<[bigint, string]> = [
  [WITH_FLAG_HIDDEN, 'hidden'], [WITH_FLAG_SYSTEM, 'system'], [WITH_FLAG_ARCHIVE, 'archive'],
  [WITH_FLAG_APPEND, 'sappend'], [WITH_FLAG_NODUMP, 'nodump'], [WITH_FLAG_IMMUTABLE, 'simmutable']
]

export function formatTime (ns: bigint): string {
  const sec = ns / 1_000_000_000n
  const frac = (ns % 1_000_000_000n).toString().padStart(9, '0')
  return `${sec}.${frac}`
}

/**
 * One mtree line. `digest` is the payload digest (hex) of a regular file, `digestKey` the key
 * casync prints ('sha512256digest' or 'sha256digest', from the command line's --digest).
 */
export function mtreeLine (node: ArchiveNode, path: Uint8Array[], featureFlags: bigint, digest?: string, digestKey = 'sha512256digest'): string {
  const type = node.mode & S_IFMT
  const parts = [pathString(path), `type=${MTREE_TYPES[type] ?? 'unknown'}`, `mode=${(node.mode & 0o7777).toString(8).padStart(4, '0')}`]
  if (type === S_IFREG) parts.push(`size=${node.size ?? 0}`)
  if (type === S_IFLNK && node.target != null) parts.push(`link=${mtreeEscape(node.target)}`)
  if (type === S_IFBLK || type === S_IFCHR) parts.push(`device=linux,${node.major ?? 0},${node.minor ?? 0}`)
  if ((featureFlags & (WITH_16BIT_UIDS | WITH_32BIT_UIDS)) !== 0n) parts.push(`uid=${node.uid}`, `gid=${node.gid}`)
  if ((featureFlags & WITH_USER_NAMES) !== 0n) {
    const user = node.user ?? (node.uid === 0 ? 'root' : undefined)
    const group = node.group ?? (node.gid === 0 ? 'root' : undefined)
    if (user != null) parts.push(`uname=${mtreeEscape(Buffer.from(user))}`)
    if (group != null) parts.push(`gname=${mtreeEscape(Buffer.from(group))}`)
  }
  const shown = MTREE_FLAGS.filter(([bit]) => (featureFlags & bit) !== 0n)
  if (shown.length > 0) {
    const known = type === S_IFREG || type === S_IFDIR
    parts.push('flags=' + shown.map(([bit, word]) => !known || (node.flags & bit) !== 0n ? word : `no${word}`).join(','))
  }
  if (timeGranularity(featureFlags) !== 0n) parts.push(`time=${formatTime(node.mtime)}`)
  if (type === S_IFREG && digest != null) parts.push(`${digestKey}=${digest}`)
  return parts.join(' ')
}

// casync stat: lsattr-style letters (e2fsprogs order) and FAT letters
const CHATTR_LETTERS: Array<[bigint, string]> = [
  [WITH_FLAG_SYNC, 'S'], [WITH_FLAG_DIRSYNC, 'D'], [WITH_FLAG_IMMUTABLE, 'i'], [WITH_FLAG_APPEND, 'a'],
  [WITH_FLAG_NODUMP, 'd'], [WITH_FLAG_NOATIME, 'A'], [WITH_FLAG_COMPR, 'c'], [WITH_FLAG_NOCOW, 'C'],
  [WITH_FLAG_PROJINHERIT, 'P'], [WITH_FLAG_NOCOMP, 'm']
]
const FAT_LETTERS: Array<[bigint, string]> = [[WITH_FLAG_HIDDEN, 'h'], [WITH_FLAG_SYSTEM, 's'], [WITH_FLAG_ARCHIVE, 'a']]

function localTime (ns: bigint): string {
  const ms = Number(ns / 1_000_000n)
  const d = new Date(ms)
  const p = (n: number, w = 2): string => String(n).padStart(w, '0')
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}.${(ns % 1_000_000_000n).toString().padStart(9, '0')}`
}

export interface StatInfo {
  node: ArchiveNode
  path: Uint8Array[]
  /** archive offset of the ENTRY */
  offset: number
  featureFlags: bigint
  /** payload digest (regular files; devices hash an empty payload) */
  digest?: string
  /** digest over ENTRY … end of PAYLOAD/SYMLINK (non-directories) */
  hlDigest?: string
}

/** casync stat's lines for one node. */
export function statLines (s: StatInfo): string[] {
  const { node, featureFlags: f } = s
  const type = node.mode & S_IFMT
  const out = [`    File: ${s.path.length === 0 ? '.' : s.path.map(n => Buffer.from(n).toString()).join('/')}`, `    Mode: ${lsMode(node.mode)}`]
  if (type === S_IFREG || type === S_IFDIR) {
    out.push(`FileAttr: ${CHATTR_LETTERS.map(([bit, c]) => (node.flags & bit) !== 0n ? c : '-').join('')}`)
    out.push(` FATAttr: ${FAT_LETTERS.map(([bit, c]) => (node.flags & bit) !== 0n ? c : '-').join('')}`)
  }
  out.push(`  Offset: ${s.offset}`)
  if (timeGranularity(f) !== 0n) out.push(`    Time: ${localTime(node.mtime)}`)
  if (type === S_IFREG) out.push(`    Size: ${node.size ?? 0}`)
  if ((f & (WITH_16BIT_UIDS | WITH_32BIT_UIDS | WITH_USER_NAMES)) !== 0n) {
    const user = node.user ?? (node.uid === 0 ? 'root' : undefined)
    const group = node.group ?? (node.gid === 0 ? 'root' : undefined)
    out.push(`    User: ${user != null ? `${user} (${node.uid})` : node.uid}`)
    out.push(`   Group: ${group != null ? `${group} (${node.gid})` : node.gid}`)
  }
  if (type === S_IFLNK && node.target != null) out.push(`  Target: ${Buffer.from(node.target).toString()}`)
  if (type === S_IFBLK || type === S_IFCHR) out.push(`  Device: ${node.major ?? 0}:${node.minor ?? 0}`)
  for (const x of node.xattrs ?? []) out.push(`   XAttr: ${Buffer.from(x.name).toString()} → ${Buffer.from(x.value).toString()}`)
  if (s.digest != null) out.push(`  Digest: ${s.digest}`)
  if (s.hlDigest != null) out.push(`HLDigest: ${s.hlDigest}`)
  return out
}
