// The catar decoder (casync's cadecoder without the file system): archive bytes in, ArchiveEvents
// out. It checks everything casync's reader checks (spec §4.9) and more: names are valid and
// strictly increasing, every GOODBYE table is exactly the one casync would write, the archive ends
// right after the root's GOODBYE. Anything else is an InvalidFormatError with the byte offset.
import {
  CA_ENTRY_SIZE, CA_FCAPS_MAX, CA_FORMAT_ACL_DEFAULT, CA_FORMAT_ACL_DEFAULT_GROUP,
  CA_FORMAT_ACL_DEFAULT_USER, CA_FORMAT_ACL_GROUP, CA_FORMAT_ACL_GROUP_OBJ, CA_FORMAT_ACL_USER,
  CA_FORMAT_DEVICE, CA_FORMAT_ENTRY, CA_FORMAT_FCAPS, CA_FORMAT_FILENAME, CA_FORMAT_GOODBYE,
  CA_FORMAT_GROUP, CA_FORMAT_PAYLOAD, CA_FORMAT_QUOTA_PROJID, CA_FORMAT_SELINUX, CA_FORMAT_SYMLINK,
  CA_FORMAT_USER, CA_FORMAT_XATTR, CA_HEADER_SIZE, CA_NAME_MAX, CA_SELINUX_MAX, CA_SYMLINK_MAX,
  CA_USER_NAME_MAX, CA_XATTR_NAME_MAX, CA_XATTR_VALUE_MAX, CA_DEVICE_MAJOR_LIMIT, CA_DEVICE_MINOR_LIMIT,
  S_IFBLK, S_IFCHR, S_IFDIR, S_IFIFO, S_IFLNK, S_IFMT, S_IFREG, S_IFSOCK
} from './constants.ts'
import { compareAcl, compareBytes } from './encoder.ts'
import {
  checkFeatureFlags, ENTRY_FLAG_BITS, timeGranularity, WITH_16BIT_UIDS, WITH_32BIT_UIDS, WITH_ACL,
  WITH_DEVICE_NODES, WITH_FCAPS, WITH_FIFOS, WITH_PERMISSIONS, WITH_QUOTA_PROJID, WITH_READ_ONLY,
  WITH_SELINUX, WITH_SOCKETS, WITH_SYMLINKS, WITH_USER_NAMES, WITH_XATTRS
} from './feature-flags.ts'
import { encodeGoodbye, goodbyeSize, type GoodbyeChild } from './goodbye.ts'
import { siphash24 } from './siphash.ts'
import type { AclEntry, ArchiveEvent, ArchiveNode } from './types.ts'
import { InvalidFormatError } from '../errors.ts'

const R_ENTRY = 1; const R_USER = 2; const R_GROUP = 3; const R_XATTR = 4; const R_ACL_USER = 5
const R_ACL_GROUP = 6; const R_ACL_GROUP_OBJ = 7; const R_ACL_DEFAULT = 8; const R_ACL_DEFAULT_USER = 9
const R_ACL_DEFAULT_GROUP = 10; const R_SELINUX = 11; const R_FCAPS = 12; const R_QUOTA_PROJID = 13
const R_SYMLINK = 20; const R_DEVICE = 21; const R_PAYLOAD = 22; const R_FILENAME = 23; const R_GOODBYE = 24

const RECORD_NAMES: Record<number, string> = {
  [R_ENTRY]: 'ENTRY', [R_USER]: 'USER', [R_GROUP]: 'GROUP', [R_XATTR]: 'XATTR', [R_ACL_USER]: 'ACL_USER',
  [R_ACL_GROUP]: 'ACL_GROUP', [R_ACL_GROUP_OBJ]: 'ACL_GROUP_OBJ', [R_ACL_DEFAULT]: 'ACL_DEFAULT',
  [R_ACL_DEFAULT_USER]: 'ACL_DEFAULT_USER', [R_ACL_DEFAULT_GROUP]: 'ACL_DEFAULT_GROUP', [R_SELINUX]: 'SELINUX',
  [R_FCAPS]: 'FCAPS', [R_QUOTA_PROJID]: 'QUOTA_PROJID', [R_SYMLINK]: 'SYMLINK', [R_DEVICE]: 'DEVICE',
  [R_PAYLOAD]: 'PAYLOAD', [R_FILENAME]: 'FILENAME', [R_GOODBYE]: 'GOODBYE'
}

/** record kinds by the low 32 bits of their type (all distinct), with the high half to check */
const TYPES = new Map<number, [number, number]>()
for (const [type, kind] of [
  [CA_FORMAT_ENTRY, R_ENTRY], [CA_FORMAT_USER, R_USER], [CA_FORMAT_GROUP, R_GROUP], [CA_FORMAT_XATTR, R_XATTR],
  [CA_FORMAT_ACL_USER, R_ACL_USER], [CA_FORMAT_ACL_GROUP, R_ACL_GROUP], [CA_FORMAT_ACL_GROUP_OBJ, R_ACL_GROUP_OBJ],
  [CA_FORMAT_ACL_DEFAULT, R_ACL_DEFAULT], [CA_FORMAT_ACL_DEFAULT_USER, R_ACL_DEFAULT_USER],
  [CA_FORMAT_ACL_DEFAULT_GROUP, R_ACL_DEFAULT_GROUP], [CA_FORMAT_SELINUX, R_SELINUX], [CA_FORMAT_FCAPS, R_FCAPS],
  [CA_FORMAT_QUOTA_PROJID, R_QUOTA_PROJID], [CA_FORMAT_SYMLINK, R_SYMLINK], [CA_FORMAT_DEVICE, R_DEVICE],
  [CA_FORMAT_PAYLOAD, R_PAYLOAD], [CA_FORMAT_FILENAME, R_FILENAME], [CA_FORMAT_GOODBYE, R_GOODBYE]
] as Array<[bigint, number]>) TYPES.set(Number(type & 0xffffffffn), [Number(type >> 32n), kind])

/** the largest non-payload record we buffer: a GOODBYE for 2^22 children */
const MAX_GOODBYE = goodbyeSize(1 << 22)
const USER_NAME_RE = /^([A-Za-z_][A-Za-z0-9_-]*|[0-9]+)$/
const utf8 = new TextDecoder('utf-8', { fatal: false })

/**
 * A copy of bytes the decoder keeps (names, targets, xattrs, a cut record). Not `.slice()`: on a
 * Buffer that is a view, and the caller may reuse its input buffer once push() has returned.
 */
function copy (bytes: Uint8Array, start = 0, end = bytes.byteLength): Uint8Array {
  return Uint8Array.prototype.slice.call(bytes, start, end)
}

interface Frame {
  node: ArchiveNode
  kind: number
  entryStart: number
  start: number
  path: Uint8Array[]
  children: GoodbyeChild[]
  lastName?: Uint8Array
}

type Phase = 'entry' | 'meta' | 'children' | 'payload' | 'done'

interface Allowed {
  /** the feature flags' two 32-bit halves, to compare each ENTRY's with */
  lo: number
  hi: number
  symlinks: boolean
  devices: boolean
  fifos: boolean
  sockets: boolean
  /** permissions or ACLs: any mode bits */
  permissions: boolean
  readOnly: boolean
  uids: boolean
  uids32: boolean
  /** the ENTRY flag bits the archive may carry */
  entryFlags: bigint
  /** mtime granularity in ns; undefined for nanoseconds (every mtime is valid) */
  granularity?: bigint
}

export class ArchiveDecoder {
  /** the feature flags of the archive (from its first ENTRY); undefined before it is read */
  featureFlags?: bigint
  private allow?: Allowed
  private phase: Phase = 'entry'
  private readonly stack: Frame[] = []
  private offset = 0
  private leftover?: Uint8Array
  /** FILENAME of the node being read (absent for the root) */
  private pendingName?: Uint8Array
  private pendingStart = 0
  private pending?: { node: ArchiveNode, kind: number, entryStart: number, rank: number }
  private remaining = 0
  private events: ArchiveEvent[] = []

  /** archive offset of the next byte to be read */
  get position (): number { return this.offset + (this.leftover?.byteLength ?? 0) }
  get done (): boolean { return this.phase === 'done' }

  push (data: Uint8Array): ArchiveEvent[] {
    this.events = []
    let rest = data
    // a record cut by the previous piece: complete it from this one (copying only that record,
    // not the whole piece), decode it, then go on in `data` itself
    while (this.leftover != null && rest.byteLength > 0) {
      const have = this.leftover.byteLength
      const need = have < CA_HEADER_SIZE ? CA_HEADER_SIZE : this.recordSize(this.leftover)
      const take = Math.min(need - have, rest.byteLength)
      const joined = new Uint8Array(have + take)
      joined.set(this.leftover, 0)
      joined.set(rest.subarray(0, take), have)
      rest = rest.subarray(take)
      this.leftover = undefined
      this.decode(joined)
    }
    if (rest.byteLength > 0) this.decode(rest)
    return this.events
  }

  /** the size of the (non-payload) record whose header starts `buf`, as far as decode() needs it */
  private recordSize (buf: Uint8Array): number {
    const v = new DataView(buf.buffer, buf.byteOffset, CA_HEADER_SIZE)
    const size = v.getUint32(4, true) * 0x100000000 + v.getUint32(0, true)
    const t = TYPES.get(v.getUint32(8, true))
    // a PAYLOAD record's header is all decode() needs; anything odd is left to decode() to report
    return t != null && t[1] === R_PAYLOAD ? CA_HEADER_SIZE : Math.max(CA_HEADER_SIZE, Math.min(size, MAX_GOODBYE))
  }

  private decode (buf: Uint8Array): void {
    let at = 0
    while (at < buf.byteLength) {
      if (this.phase === 'done') throw this.fail('data after the end of the archive')
      if (this.phase === 'payload') {
        const n = Math.min(this.remaining, buf.byteLength - at)
        this.events.push({ type: 'payload', data: buf.subarray(at, at + n) })
        at += n
        this.offset += n
        this.remaining -= n
        if (this.remaining === 0) this.closeNode()
        continue
      }
      if (buf.byteLength - at < CA_HEADER_SIZE) break
      const v = new DataView(buf.buffer, buf.byteOffset + at, CA_HEADER_SIZE)
      const sizeLo = v.getUint32(0, true); const sizeHi = v.getUint32(4, true)
      const typeLo = v.getUint32(8, true); const typeHi = v.getUint32(12, true)
      const t = TYPES.get(typeLo)
      if (t == null || t[0] !== typeHi) throw this.fail(`unknown record type 0x${typeHi.toString(16).padStart(8, '0')}${typeLo.toString(16).padStart(8, '0')}`)
      const kind = t[1]
      if (sizeHi > 0x1fffff) throw this.fail(`${RECORD_NAMES[kind]!} record size too large`)
      const size = sizeHi * 0x100000000 + sizeLo
      if (size < CA_HEADER_SIZE) throw this.fail(`${RECORD_NAMES[kind]!} record size ${size} is smaller than its header`)
      if (kind === R_PAYLOAD) {
        this.payloadRecord(size)
        at += CA_HEADER_SIZE
        this.offset += CA_HEADER_SIZE
        continue
      }
      this.checkSize(kind, size)
      if (buf.byteLength - at < size) break
      this.record(kind, buf.subarray(at, at + size))
      at += size
      this.offset += size
    }
    if (at < buf.byteLength) this.leftover = copy(buf, at)
  }

  /** Call at the end of the input: throws if the archive is incomplete. */
  end (): void {
    if (this.phase !== 'done') {
      throw new InvalidFormatError(`archive truncated at byte ${this.position} (${this.stack.length > 0 || this.pending != null ? 'inside an entry' : 'empty'})`, this.position)
    }
  }

  private fail (message: string): InvalidFormatError {
    const path = this.stack.map(f => f.node.name).filter(n => n != null).map(n => Buffer.from(n).toString()).join('/')
    return new InvalidFormatError(`invalid archive at byte ${this.offset}${path !== '' ? ` (in ${path})` : ''}: ${message}`, this.offset)
  }

  private checkSize (kind: number, size: number): void {
    const body = size - CA_HEADER_SIZE
    let ok = true
    switch (kind) {
      case R_ENTRY: ok = size === CA_ENTRY_SIZE; break
      case R_USER: case R_GROUP: ok = body >= 2 && body <= CA_USER_NAME_MAX; break
      case R_XATTR: ok = body >= 3 && body <= CA_XATTR_NAME_MAX + 1 + CA_XATTR_VALUE_MAX; break
      case R_ACL_USER: case R_ACL_GROUP: case R_ACL_DEFAULT_USER: case R_ACL_DEFAULT_GROUP:
        ok = size === 32 || (size >= 34 && size <= 32 + CA_USER_NAME_MAX); break
      case R_ACL_GROUP_OBJ: case R_QUOTA_PROJID: ok = size === 24; break
      case R_ACL_DEFAULT: ok = size === 48; break
      case R_SELINUX: ok = body >= 2 && body <= CA_SELINUX_MAX; break
      case R_FCAPS: ok = body >= 1 && body <= CA_FCAPS_MAX; break
      case R_SYMLINK: ok = body >= 2 && body <= CA_SYMLINK_MAX; break
      case R_DEVICE: ok = size === 32; break
      case R_FILENAME: ok = body >= 2 && body <= CA_NAME_MAX; break
      case R_GOODBYE: ok = size <= MAX_GOODBYE; break
    }
    if (!ok) throw this.fail(`${RECORD_NAMES[kind]!} record has a bad size (${size})`)
  }

  private u64 (v: DataView, at: number, what: string): number {
    const hi = v.getUint32(at + 4, true)
    if (hi > 0x1fffff) throw this.fail(`${what} is out of range`)
    return hi * 0x100000000 + v.getUint32(at, true)
  }

  /** a NUL-terminated string body without inner NULs */
  private cstring (rec: Uint8Array, what: string): Uint8Array {
    const body = rec.subarray(CA_HEADER_SIZE)
    const nul = body.indexOf(0)
    if (nul !== body.byteLength - 1) throw this.fail(`${what} is not a single NUL-terminated string`)
    return body.subarray(0, nul)
  }

  private userName (rec: Uint8Array, what: string): string {
    const s = utf8.decode(this.cstring(rec, what))
    if (!USER_NAME_RE.test(s) || s === 'root' || s === '0') throw this.fail(`${what} "${s}" is not a valid name`)
    return s
  }

  private record (kind: number, rec: Uint8Array): void {
    switch (this.phase) {
      case 'entry':
        if (kind !== R_ENTRY) throw this.fail(`expected ENTRY, found ${RECORD_NAMES[kind]!}`)
        this.entry(rec)
        return
      case 'meta':
        this.meta(kind, rec)
        return
      case 'children':
        if (kind === R_FILENAME) { this.filename(rec); return }
        if (kind === R_GOODBYE) { this.goodbye(rec); return }
        throw this.fail(`expected FILENAME or GOODBYE, found ${RECORD_NAMES[kind]!}`)
      default:
        throw this.fail(`unexpected ${RECORD_NAMES[kind]!}`)
    }
  }

  /** what the archive's feature flags allow, worked out once (bigint tests cost per entry) */
  private allowed (f: bigint): Allowed {
    const g = timeGranularity(f)
    return {
      lo: Number(f & 0xffffffffn),
      hi: Number(f >> 32n),
      symlinks: (f & WITH_SYMLINKS) !== 0n,
      devices: (f & WITH_DEVICE_NODES) !== 0n,
      fifos: (f & WITH_FIFOS) !== 0n,
      sockets: (f & WITH_SOCKETS) !== 0n,
      permissions: (f & (WITH_PERMISSIONS | WITH_ACL)) !== 0n,
      readOnly: (f & WITH_READ_ONLY) !== 0n,
      uids: (f & (WITH_16BIT_UIDS | WITH_32BIT_UIDS)) !== 0n,
      uids32: (f & WITH_32BIT_UIDS) !== 0n,
      entryFlags: f & ENTRY_FLAG_BITS,
      granularity: g === 1n ? undefined : g
    }
  }

  private entry (rec: Uint8Array): void {
    const v = new DataView(rec.buffer, rec.byteOffset, rec.byteLength)
    let a = this.allow
    if (a == null || v.getUint32(16, true) !== a.lo || v.getUint32(20, true) !== a.hi) {
      const flags = v.getBigUint64(16, true)
      if (this.featureFlags == null) {
        try { checkFeatureFlags(flags, 'archive feature flags') } catch (err: any) { throw this.fail(err.message) }
        this.featureFlags = flags
        a = this.allow = this.allowed(flags)
      } else {
        throw this.fail(`ENTRY feature flags 0x${flags.toString(16)} differ from the archive's 0x${this.featureFlags.toString(16)}`)
      }
    }
    const mode = this.u64(v, 24, 'mode')
    const entryFlags = v.getUint32(32, true) === 0 && v.getUint32(36, true) === 0 ? 0n : v.getBigUint64(32, true)
    const uid = this.u64(v, 40, 'uid')
    const gid = this.u64(v, 48, 'gid')
    const mtime = v.getBigUint64(56, true)
    if ((mode & ~(S_IFMT | 0o7777)) !== 0 || mode > 0xffff) throw this.fail(`mode 0o${mode.toString(8)} has unknown bits`)
    const kind = mode & S_IFMT
    const perms = mode & 0o7777
    switch (kind) {
      case S_IFDIR: case S_IFREG: break
      case S_IFLNK: if (!a.symlinks) throw this.fail('symlink in an archive without symlinks'); break
      case S_IFBLK: case S_IFCHR: if (!a.devices) throw this.fail('device node in an archive without device-nodes'); break
      case S_IFIFO: if (!a.fifos) throw this.fail('FIFO in an archive without fifos'); break
      case S_IFSOCK: if (!a.sockets) throw this.fail('socket in an archive without sockets'); break
      default: throw this.fail(`mode 0o${mode.toString(8)} has no valid file type`)
    }
    if (this.pendingName == null && kind !== S_IFDIR) throw this.fail('the root of an archive must be a directory')
    if (kind === S_IFLNK) {
      if (perms !== 0o777) throw this.fail(`symlink with mode 0o${perms.toString(8)}`)
    } else if (!a.permissions) {
      const ok = a.readOnly
        ? (kind === S_IFDIR ? perms === 0o777 || perms === 0o555 : perms === 0o666 || perms === 0o444)
        : perms === (kind === S_IFDIR ? 0o777 : 0o666)
      if (!ok) throw this.fail(`permission bits 0o${perms.toString(8)} do not match the archive's feature flags`)
    }
    if (entryFlags !== 0n && ((kind !== S_IFDIR && kind !== S_IFREG) || (entryFlags & ~a.entryFlags) !== 0n)) {
      throw this.fail(`ENTRY flags 0x${entryFlags.toString(16)} not allowed here`)
    }
    if (!a.uids) {
      if (uid !== 0 || gid !== 0) throw this.fail('uid/gid set in an archive without uids')
    } else if (a.uids32) {
      if (uid === 0xffff || gid === 0xffff || uid > 0xfffffffe || gid > 0xfffffffe) throw this.fail(`invalid uid/gid ${uid}/${gid}`)
    } else if (uid >= 0xffff || gid >= 0xffff) throw this.fail(`uid/gid ${uid}/${gid} do not fit 16 bits`)
    const g = a.granularity // undefined: nanoseconds, any mtime
    if (g != null && (g === 0n ? mtime !== 0n : mtime % g !== 0n)) throw this.fail(`mtime ${mtime} does not match the archive's time granularity`)
    const node: ArchiveNode = { mode, flags: entryFlags, uid, gid, mtime }
    if (this.pendingName != null) node.name = this.pendingName
    this.pending = { node, kind, entryStart: this.offset, rank: R_ENTRY }
    this.phase = 'meta'
  }

  private acl (rec: Uint8Array, what: string): AclEntry {
    const v = new DataView(rec.buffer, rec.byteOffset, rec.byteLength)
    const id = this.u64(v, 16, `${what} id`)
    const permissions = this.u64(v, 24, `${what} permissions`)
    if (permissions > 7) throw this.fail(`${what} permissions ${permissions} invalid`)
    const e: AclEntry = { id, permissions }
    if (rec.byteLength > 32) {
      if ((this.featureFlags! & WITH_USER_NAMES) === 0n) throw this.fail(`${what} with a name in an archive without user-names`)
      e.name = this.userName(rec.subarray(16), what)
    }
    return e
  }

  private pushAcl (list: AclEntry[] | undefined, e: AclEntry, what: string): AclEntry[] {
    const l = list ?? []
    const last = l[l.length - 1]
    if (last != null && compareAcl(last, e) > 0) throw this.fail(`${what} entries out of order`)
    l.push(e)
    return l
  }

  private meta (kind: number, rec: Uint8Array): void {
    const p = this.pending!
    const node = p.node
    const f = this.featureFlags!
    const multi = kind === R_XATTR || kind === R_ACL_USER || kind === R_ACL_GROUP || kind === R_ACL_DEFAULT_USER || kind === R_ACL_DEFAULT_GROUP
    if (kind >= R_USER && kind <= R_QUOTA_PROJID) {
      if (kind < p.rank || (kind === p.rank && !multi)) throw this.fail(`${RECORD_NAMES[kind]!} out of order`)
      p.rank = kind
    }
    const v = new DataView(rec.buffer, rec.byteOffset, rec.byteLength)
    switch (kind) {
      case R_USER:
        if ((f & WITH_USER_NAMES) === 0n) throw this.fail('USER in an archive without user-names')
        node.user = this.userName(rec, 'USER'); return
      case R_GROUP:
        if ((f & WITH_USER_NAMES) === 0n) throw this.fail('GROUP in an archive without user-names')
        node.group = this.userName(rec, 'GROUP'); return
      case R_XATTR: {
        if ((f & WITH_XATTRS) === 0n) throw this.fail('XATTR in an archive without xattrs')
        const body = rec.subarray(CA_HEADER_SIZE)
        const nul = body.indexOf(0)
        if (nul < 1 || nul > CA_XATTR_NAME_MAX) throw this.fail('XATTR name missing or too long')
        const x = { name: copy(body, 0, nul), value: copy(body, nul + 1) }
        const last = node.xattrs?.[node.xattrs.length - 1]
        if (last != null && compareBytes(last.name, x.name) >= 0) throw this.fail('XATTR records out of order')
        ;(node.xattrs ??= []).push(x)
        return
      }
      case R_ACL_USER: case R_ACL_GROUP: case R_ACL_GROUP_OBJ: case R_ACL_DEFAULT: case R_ACL_DEFAULT_USER: case R_ACL_DEFAULT_GROUP:
        if ((f & WITH_ACL) === 0n) throw this.fail(`${RECORD_NAMES[kind]!} in an archive without acl`)
        if (kind >= R_ACL_DEFAULT && p.kind !== S_IFDIR) throw this.fail('default ACL on a non-directory')
        if (kind === R_ACL_USER) node.aclUser = this.pushAcl(node.aclUser, this.acl(rec, 'ACL_USER'), 'ACL_USER')
        else if (kind === R_ACL_GROUP) node.aclGroup = this.pushAcl(node.aclGroup, this.acl(rec, 'ACL_GROUP'), 'ACL_GROUP')
        else if (kind === R_ACL_DEFAULT_USER) node.aclDefaultUser = this.pushAcl(node.aclDefaultUser, this.acl(rec, 'ACL_DEFAULT_USER'), 'ACL_DEFAULT_USER')
        else if (kind === R_ACL_DEFAULT_GROUP) node.aclDefaultGroup = this.pushAcl(node.aclDefaultGroup, this.acl(rec, 'ACL_DEFAULT_GROUP'), 'ACL_DEFAULT_GROUP')
        else if (kind === R_ACL_GROUP_OBJ) {
          const perm = this.u64(v, 16, 'ACL_GROUP_OBJ')
          if (perm > 7) throw this.fail('ACL_GROUP_OBJ permissions invalid')
          node.aclGroupObj = perm
        } else {
          node.aclDefault = { userObj: v.getBigUint64(16, true), groupObj: v.getBigUint64(24, true), other: v.getBigUint64(32, true), mask: v.getBigUint64(40, true) }
        }
        return
      case R_SELINUX:
        if ((f & WITH_SELINUX) === 0n) throw this.fail('SELINUX in an archive without selinux')
        node.selinux = utf8.decode(this.cstring(rec, 'SELINUX')); return
      case R_FCAPS:
        if ((f & WITH_FCAPS) === 0n || p.kind !== S_IFREG) throw this.fail('FCAPS not allowed here')
        node.fcaps = copy(rec, CA_HEADER_SIZE); return
      case R_QUOTA_PROJID:
        if ((f & WITH_QUOTA_PROJID) === 0n || (p.kind !== S_IFREG && p.kind !== S_IFDIR)) throw this.fail('QUOTA_PROJID not allowed here')
        node.quotaProjId = v.getBigUint64(16, true); return
    }
    // a terminal record: the node is complete
    if (((node.aclUser != null || node.aclGroup != null) && node.aclGroupObj == null) ||
        ((node.aclDefaultUser != null || node.aclDefaultGroup != null) && (node.aclDefault == null || node.aclDefault.mask === 0xffffffffffffffffn))) {
      throw this.fail('named ACL entries without a mask')
    }
    switch (p.kind) {
      case S_IFLNK: {
        if (kind !== R_SYMLINK) throw this.fail(`expected SYMLINK, found ${RECORD_NAMES[kind]!}`)
        const target = this.cstring(rec, 'SYMLINK')
        if (target.byteLength === 0) throw this.fail('empty symlink target')
        node.target = copy(target)
        this.openNode()
        this.closeNode(rec.byteLength)
        return
      }
      case S_IFBLK: case S_IFCHR: {
        if (kind !== R_DEVICE) throw this.fail(`expected DEVICE, found ${RECORD_NAMES[kind]!}`)
        const major = this.u64(v, 16, 'device major')
        const minor = this.u64(v, 24, 'device minor')
        if (major >= CA_DEVICE_MAJOR_LIMIT || minor >= CA_DEVICE_MINOR_LIMIT) throw this.fail(`device ${major}:${minor} out of range`)
        node.major = major
        node.minor = minor
        this.openNode()
        this.closeNode(rec.byteLength)
        return
      }
      case S_IFDIR:
        if (kind !== R_FILENAME && kind !== R_GOODBYE) throw this.fail(`expected FILENAME or GOODBYE, found ${RECORD_NAMES[kind]!}`)
        this.openNode()
        this.record(kind, rec)
        return
      case S_IFIFO: case S_IFSOCK:
        if (kind !== R_FILENAME && kind !== R_GOODBYE) throw this.fail(`unexpected ${RECORD_NAMES[kind]!} after a FIFO or socket`)
        this.openNode()
        this.closeNode()
        this.record(kind, rec)
        return
      default: // S_IFREG: PAYLOAD is handled in payloadRecord()
        throw this.fail(`expected PAYLOAD, found ${RECORD_NAMES[kind]!}`)
    }
  }

  private payloadRecord (size: number): void {
    if (this.phase !== 'meta' || this.pending!.kind !== S_IFREG) throw this.fail('unexpected PAYLOAD')
    const node = this.pending!.node
    if (node.aclUser != null || node.aclGroup != null) {
      if (node.aclGroupObj == null) throw this.fail('named ACL entries without a mask')
    }
    node.size = size - CA_HEADER_SIZE
    this.openNode()
    this.remaining = node.size
    if (this.remaining === 0) {
      this.closeNode(CA_HEADER_SIZE)
    } else {
      this.phase = 'payload'
    }
  }

  /** emits the pending node and pushes its frame */
  private openNode (): void {
    const p = this.pending!
    this.pending = undefined
    const parent = this.stack[this.stack.length - 1]
    const path = parent == null ? [] : [...parent.path, p.node.name!]
    this.events.push({ type: 'node', node: p.node, offset: p.entryStart, path })
    this.stack.push({ node: p.node, kind: p.kind, entryStart: p.entryStart, start: this.pendingName != null ? this.pendingStart : p.entryStart, path, children: [] })
    this.pendingName = undefined
    this.phase = p.kind === S_IFDIR ? 'children' : 'meta'
  }

  /** the node on top of the stack is complete at the current offset (plus `extra` bytes) */
  private closeNode (extra = 0): void {
    const top = this.stack.pop()!
    const endOffset = this.offset + extra
    this.events.push({ type: 'end', offset: endOffset })
    const parent = this.stack[this.stack.length - 1]
    if (parent == null) { this.phase = 'done'; return }
    parent.children.push({ start: top.start, size: endOffset - top.start, hash: siphash24(top.node.name!) })
    this.phase = 'children'
  }

  private filename (rec: Uint8Array): void {
    const name = this.cstring(rec, 'FILENAME')
    if (name.byteLength === 0) throw this.fail('empty file name')
    if (name.includes(0x2f)) throw this.fail(`file name "${Buffer.from(name).toString()}" contains "/"`)
    if (name[0] === 0x2e && (name.byteLength === 1 || (name.byteLength === 2 && name[1] === 0x2e))) throw this.fail('file name "." or ".."')
    const parent = this.stack[this.stack.length - 1]!
    if (parent.lastName != null && compareBytes(parent.lastName, name) >= 0) {
      throw this.fail(`file name "${Buffer.from(name).toString()}" is not after "${Buffer.from(parent.lastName).toString()}" (duplicate or unsorted)`)
    }
    parent.lastName = copy(name)
    this.pendingName = parent.lastName
    this.pendingStart = this.offset
    this.phase = 'entry'
  }

  private goodbye (rec: Uint8Array): void {
    const top = this.stack[this.stack.length - 1]!
    const expected = goodbyeSize(top.children.length)
    if (rec.byteLength !== expected) throw this.fail(`GOODBYE of ${rec.byteLength} bytes for ${top.children.length} entries (expected ${expected})`)
    const want = encodeGoodbye(top.children, top.entryStart, this.offset)
    for (let i = 0; i < want.byteLength; i++) {
      if (want[i] !== rec[i]) throw this.fail('GOODBYE table does not match the directory\'s entries')
    }
    this.closeNode(rec.byteLength)
  }
}

/** Decodes an archive stream into events; throws InvalidFormatError on anything malformed. */
export async function * decodeArchive (source: AsyncIterable<Uint8Array> | Iterable<Uint8Array>): AsyncGenerator<ArchiveEvent> {
  const decoder = new ArchiveDecoder()
  for await (const data of source) {
    yield * decoder.push(data)
  }
  decoder.end()
}
