// The in-memory form of catar nodes and the event stream shared by the encoder and decoder.
//
// A tree is a pre-order stream of events: `node` opens a node, `payload` carries a regular
// file's bytes (in any number of pieces), `end` closes the node most recently opened. A
// directory's children come between its `node` and its `end`. decodeArchive() yields exactly
// what encodeArchive() consumes, so decode → encode reproduces an archive byte for byte.

export type NodeKind = 'dir' | 'file' | 'symlink' | 'block' | 'char' | 'fifo' | 'socket'

export interface AclEntry {
  /** numeric uid/gid (0 when the archive has no uid bits) */
  id: number
  /** rwx as 4/2/1 */
  permissions: number
  /** user/group name when the archive has user-names and it resolved */
  name?: string
}

export interface AclDefault {
  userObj: bigint
  groupObj: bigint
  other: bigint
  mask: bigint
}

export interface Xattr {
  /** raw name bytes (no NUL) */
  name: Uint8Array
  value: Uint8Array
}

/** One catar node: its ENTRY fields and the records that follow it (spec §4.1, §4.2). */
export interface ArchiveNode {
  /** raw FILENAME bytes without the NUL; absent for the root */
  name?: Uint8Array
  /** st_mode as stored (type bits | permission bits, already reduced per the feature flags) */
  mode: number
  /** ENTRY.flags (chattr/FAT/subvolume bits in feature-flag encoding) */
  flags: bigint
  uid: number
  gid: number
  /** nanoseconds since the epoch, already rounded to the archive's granularity */
  mtime: bigint
  user?: string
  group?: string
  xattrs?: Xattr[]
  aclUser?: AclEntry[]
  aclGroup?: AclEntry[]
  aclGroupObj?: number
  aclDefault?: AclDefault
  aclDefaultUser?: AclEntry[]
  aclDefaultGroup?: AclEntry[]
  selinux?: string
  fcaps?: Uint8Array
  quotaProjId?: bigint
  /** symlink target bytes */
  target?: Uint8Array
  /** block/char device numbers */
  major?: number
  minor?: number
  /** regular files: the PAYLOAD length */
  size?: number
}

export type ArchiveEvent =
  | { type: 'node', node: ArchiveNode, /** archive offset of the ENTRY (decoder only) */ offset?: number, /** names from the root down (decoder only) */ path?: Uint8Array[] }
  | { type: 'payload', data: Uint8Array }
  | { type: 'end', /** archive offset just past the node (decoder only) */ offset?: number }

export function nodeKind (mode: number): NodeKind {
  switch (mode & 0o170000) {
    case 0o040000: return 'dir'
    case 0o100000: return 'file'
    case 0o120000: return 'symlink'
    case 0o060000: return 'block'
    case 0o020000: return 'char'
    case 0o010000: return 'fifo'
    case 0o140000: return 'socket'
    default: throw new RangeError(`mode 0o${mode.toString(8)} has no known file type`)
  }
}
