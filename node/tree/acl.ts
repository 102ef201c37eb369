// POSIX ACLs as Linux stores them in the system.posix_acl_access / _default xattrs
// (include/uapi/linux/posix_acl_xattr.h): u32 version 2, then entries of u16 tag, u16 perm,
// u32 id. Parsing the xattr directly spares a libacl dependency.
import type { AclDefault, AclEntry, ArchiveNode } from '../../protocol/catar/types.ts'

export const ACL_ACCESS_XATTR = 'system.posix_acl_access'
export const ACL_DEFAULT_XATTR = 'system.posix_acl_default'
const ACL_USER_OBJ = 0x01
const ACL_USER = 0x02
const ACL_GROUP_OBJ = 0x04
const ACL_GROUP = 0x08
const ACL_MASK = 0x10
const ACL_OTHER = 0x20
const UNDEFINED_ID = 0xffffffff
const MISSING = 0xffffffffffffffffn

export interface RawAcl {
  userObj?: number
  groupObj?: number
  mask?: number
  other?: number
  users: Array<{ id: number, permissions: number }>
  groups: Array<{ id: number, permissions: number }>
}

export function parseAclXattr (value: Uint8Array): RawAcl | undefined {
  if (value.byteLength < 4 || (value.byteLength - 4) % 8 !== 0) return undefined
  const v = new DataView(value.buffer, value.byteOffset, value.byteLength)
  if (v.getUint32(0, true) !== 2) return undefined
  const acl: RawAcl = { users: [], groups: [] }
  for (let o = 4; o < value.byteLength; o += 8) {
    const tag = v.getUint16(o, true)
    const permissions = v.getUint16(o + 2, true) & 7
    const id = v.getUint32(o + 4, true)
    switch (tag) {
      case ACL_USER_OBJ: acl.userObj = permissions; break
      case ACL_USER: acl.users.push({ id, permissions }); break
      case ACL_GROUP_OBJ: acl.groupObj = permissions; break
      case ACL_GROUP: acl.groups.push({ id, permissions }); break
      case ACL_MASK: acl.mask = permissions; break
      case ACL_OTHER: acl.other = permissions; break
    }
  }
  return acl
}

function encodeEntries (entries: Array<[number, number, number]>): Buffer {
  entries.sort((a, b) => a[0] - b[0] || a[2] - b[2])
  const out = Buffer.alloc(4 + 8 * entries.length)
  out.writeUInt32LE(2, 0)
  entries.forEach(([tag, perm, id], i) => {
    out.writeUInt16LE(tag, 4 + 8 * i)
    out.writeUInt16LE(perm, 6 + 8 * i)
    out.writeUInt32LE(id, 8 + 8 * i)
  })
  return out
}

type Resolve = (e: AclEntry, kind: 'user' | 'group') => number

/** The access ACL xattr for a node that has named entries (mode supplies owner/mask/other). */
export function accessAclXattr (node: ArchiveNode, resolve: Resolve): Buffer | undefined {
  if (node.aclUser == null && node.aclGroup == null && node.aclGroupObj == null) return undefined
  const entries: Array<[number, number, number]> = [
    [ACL_USER_OBJ, (node.mode >> 6) & 7, UNDEFINED_ID],
    [ACL_GROUP_OBJ, node.aclGroupObj ?? ((node.mode >> 3) & 7), UNDEFINED_ID],
    [ACL_MASK, (node.mode >> 3) & 7, UNDEFINED_ID],
    [ACL_OTHER, node.mode & 7, UNDEFINED_ID]
  ]
  for (const e of node.aclUser ?? []) entries.push([ACL_USER, e.permissions, resolve(e, 'user')])
  for (const e of node.aclGroup ?? []) entries.push([ACL_GROUP, e.permissions, resolve(e, 'group')])
  return encodeEntries(entries)
}

export function defaultAclXattr (node: ArchiveNode, resolve: Resolve): Buffer | undefined {
  const d = node.aclDefault
  if (d == null) return undefined
  const entries: Array<[number, number, number]> = []
  const add = (tag: number, v: bigint): void => { if (v !== MISSING) entries.push([tag, Number(v & 7n), UNDEFINED_ID]) }
  add(ACL_USER_OBJ, d.userObj)
  add(ACL_GROUP_OBJ, d.groupObj)
  add(ACL_OTHER, d.other)
  add(ACL_MASK, d.mask)
  for (const e of node.aclDefaultUser ?? []) entries.push([ACL_USER, e.permissions, resolve(e, 'user')])
  for (const e of node.aclDefaultGroup ?? []) entries.push([ACL_GROUP, e.permissions, resolve(e, 'group')])
  return encodeEntries(entries)
}

export function aclDefaultFields (acl: RawAcl): AclDefault {
  const f = (v: number | undefined): bigint => v == null ? MISSING : BigInt(v)
  return { userObj: f(acl.userObj), groupObj: f(acl.groupObj), other: f(acl.other), mask: f(acl.mask) }
}
