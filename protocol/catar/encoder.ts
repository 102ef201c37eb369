// The catar encoder (casync's caencoder without the file system): ArchiveEvents in, archive
// bytes out (spec §4.2). Small records are packed into large output buffers; big payload pieces
// pass through without a copy, so callers must not reuse a buffer they handed to payload().
import {
  CA_ENTRY_SIZE, CA_FORMAT_ACL_DEFAULT, CA_FORMAT_ACL_DEFAULT_GROUP, CA_FORMAT_ACL_DEFAULT_USER,
  CA_FORMAT_ACL_GROUP, CA_FORMAT_ACL_GROUP_OBJ, CA_FORMAT_ACL_USER, CA_FORMAT_DEVICE, CA_FORMAT_ENTRY,
  CA_FORMAT_FCAPS, CA_FORMAT_FILENAME, CA_FORMAT_GROUP, CA_FORMAT_PAYLOAD, CA_FORMAT_QUOTA_PROJID,
  CA_FORMAT_SELINUX, CA_FORMAT_SYMLINK, CA_FORMAT_USER, CA_FORMAT_XATTR, CA_HEADER_SIZE, CA_NAME_MAX,
  S_IFDIR, S_IFLNK, S_IFMT, S_IFREG, S_IFBLK, S_IFCHR
} from './constants.ts'
import { encodeGoodbye, goodbyeSize, type GoodbyeChild } from './goodbye.ts'
import { siphash24 } from './siphash.ts'
import type { AclEntry, ArchiveEvent, ArchiveNode } from './types.ts'
import { InvalidArgumentError } from '../errors.ts'

const utf8 = new TextEncoder()
/** payload pieces at least this big are passed through instead of copied */
const PASS_THROUGH = 32 * 1024
/** payloadSpace() starts a new buffer rather than hand out less than this */
const MIN_SPACE = 4096

export interface ArchiveEncoderInit {
  /** the feature flags written into every ENTRY */
  featureFlags: bigint
  /** @default 1 MiB */
  bufferSize?: number
}

interface Frame {
  kind: number
  entryStart: number
  /** offset of this node's FILENAME, or its ENTRY for the root */
  start: number
  name?: Uint8Array
  children: GoodbyeChild[]
  lastName?: Uint8Array
  remaining: number
}

export function compareBytes (a: Uint8Array, b: Uint8Array): number {
  const n = Math.min(a.byteLength, b.byteLength)
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return a[i]! - b[i]!
  return a.byteLength - b.byteLength
}

function compareStrings (a: string | undefined, b: string | undefined): number {
  if (a === b) return 0
  if (a == null) return -1
  if (b == null) return 1
  return compareBytes(utf8.encode(a), utf8.encode(b))
}

/** casync's ACL entry order (spec §4.4.6): id, unnamed before named, name, permissions. */
export function compareAcl (a: AclEntry, b: AclEntry): number {
  return a.id - b.id || compareStrings(a.name, b.name) || a.permissions - b.permissions
}

/** Throws unless `name` is a valid FILENAME: non-empty, no '/', no NUL, not '.' or '..'. */
export function checkName (name: Uint8Array): void {
  if (name.byteLength === 0) throw new InvalidArgumentError('empty file name')
  if (name.byteLength + 1 > CA_NAME_MAX) throw new InvalidArgumentError(`file name of ${name.byteLength} bytes is too long`)
  if (name[0] === 0x2e && (name.byteLength === 1 || (name.byteLength === 2 && name[1] === 0x2e))) throw new InvalidArgumentError('file name "." or ".."')
  for (const b of name) if (b === 0x2f || b === 0) throw new InvalidArgumentError(`file name ${JSON.stringify(Buffer.from(name).toString())} contains "/" or NUL`)
}

/** The synchronous core: call node()/payload()/end() and take() the bytes produced so far. */
export class ArchiveEncoder {
  readonly featureFlags: bigint
  private readonly bufferSize: number
  private buf: Uint8Array
  private view: DataView
  /** start of the bytes of `buf` not yet handed to `out` */
  private start = 0
  private pos = 0
  private out: Uint8Array[] = []
  private pending = 0
  private flushed = 0
  private readonly stack: Frame[] = []
  private done = false
  private readonly flagsLo: number
  private readonly flagsHi: number

  constructor (init: ArchiveEncoderInit) {
    this.featureFlags = init.featureFlags
    this.bufferSize = init.bufferSize ?? 1 << 20
    this.buf = new Uint8Array(this.bufferSize)
    this.view = new DataView(this.buf.buffer)
    this.flagsLo = Number(init.featureFlags & 0xffffffffn)
    this.flagsHi = Number(init.featureFlags >> 32n)
  }

  /** bytes produced so far (the archive offset of the next record) */
  get offset (): number { return this.flushed + this.pos - this.start }
  /** bytes waiting in take() */
  get pendingBytes (): number { return this.pending + this.pos - this.start }
  get finished (): boolean { return this.done }
  get depth (): number { return this.stack.length }

  /** The output produced so far, in order; the encoder keeps no reference to it. */
  take (): Uint8Array[] {
    this.flush()
    const out = this.out
    this.out = []
    this.pending = 0
    return out
  }

  push (event: ArchiveEvent): void {
    if (event.type === 'node') this.node(event.node)
    else if (event.type === 'payload') this.payload(event.data)
    else this.end()
  }

  /**
   * Declares that the caller is done with everything take() returned (it copied or wrote it), so
   * the encoder may write over it: the next records go to the start of the current buffer. Saves
   * allocating (and faulting in) fresh buffers when the output is consumed synchronously.
   */
  recycle (): void {
    if (this.pos !== this.start || this.out.length > 0) throw new InvalidArgumentError('recycle() with output not yet taken')
    this.start = this.pos = 0
  }

  /** moves the bytes written since the last flush to `out`; the buffer's tail stays in use */
  private flush (): void {
    const n = this.pos - this.start
    if (n === 0) return
    this.out.push(this.buf.subarray(this.start, this.pos))
    this.pending += n
    this.flushed += n
    this.start = this.pos
  }

  /** makes room for `n` contiguous bytes at `pos` */
  private reserve (n: number): void {
    if (this.pos + n <= this.buf.byteLength) return
    this.flush()
    this.buf = new Uint8Array(Math.max(n, this.bufferSize))
    this.view = new DataView(this.buf.buffer)
    this.start = this.pos = 0
  }

  private u64 (value: number | bigint): void {
    if (typeof value === 'bigint') {
      this.view.setBigUint64(this.pos, value, true)
    } else {
      this.view.setUint32(this.pos, value >>> 0, true)
      this.view.setUint32(this.pos + 4, Math.floor(value / 0x100000000) >>> 0, true)
    }
    this.pos += 8
  }

  private header (size: number, type: bigint): void {
    this.reserve(size < 65536 ? size : CA_HEADER_SIZE)
    this.u64(size)
    this.u64(type)
  }

  private bytes (data: Uint8Array): void {
    this.buf.set(data, this.pos)
    this.pos += data.byteLength
  }

  private stringRecord (type: bigint, data: Uint8Array): void {
    this.header(CA_HEADER_SIZE + data.byteLength + 1, type)
    this.bytes(data)
    this.buf[this.pos++] = 0
  }

  private aclRecords (type: bigint, entries: AclEntry[] | undefined): void {
    if (entries == null) return
    for (const e of entries.slice().sort(compareAcl)) {
      const name = e.name != null ? utf8.encode(e.name) : undefined
      this.header(32 + (name != null ? name.byteLength + 1 : 0), type)
      this.u64(e.id)
      this.u64(e.permissions)
      if (name != null) { this.bytes(name); this.buf[this.pos++] = 0 }
    }
  }

  node (node: ArchiveNode): void {
    if (this.done) throw new InvalidArgumentError('the archive is already complete')
    const parent = this.stack[this.stack.length - 1]
    const kind = node.mode & S_IFMT
    let start: number
    if (parent == null) {
      if (kind !== S_IFDIR) throw new InvalidArgumentError('the root of an archive must be a directory')
      start = this.offset
    } else {
      if (parent.kind !== S_IFDIR) throw new InvalidArgumentError('only directories have children')
      const name = node.name
      if (name == null) throw new InvalidArgumentError('a child node needs a name')
      checkName(name)
      if (parent.lastName != null && compareBytes(parent.lastName, name) >= 0) {
        throw new InvalidArgumentError(`children must come in strictly increasing name order (${Buffer.from(name).toString()} after ${Buffer.from(parent.lastName).toString()})`)
      }
      parent.lastName = name
      start = this.offset
      this.stringRecord(CA_FORMAT_FILENAME, name)
    }
    const entryStart = this.offset
    const remaining = this.records(node)
    this.stack.push({ kind, entryStart, start, name: node.name, children: [], remaining })
  }

  /**
   * Writes a node's own records (ENTRY, metadata, then PAYLOAD header / SYMLINK / DEVICE) with no
   * FILENAME and no tree bookkeeping; returns the payload length still to come. Used by node()
   * and by encodeNodeRecords().
   */
  records (node: ArchiveNode): number {
    const kind = node.mode & S_IFMT
    this.header(CA_ENTRY_SIZE, CA_FORMAT_ENTRY)
    this.view.setUint32(this.pos, this.flagsLo, true)
    this.view.setUint32(this.pos + 4, this.flagsHi, true)
    this.pos += 8
    this.u64(node.mode)
    this.u64(node.flags)
    this.u64(node.uid)
    this.u64(node.gid)
    this.u64(node.mtime)
    if (node.user != null) this.stringRecord(CA_FORMAT_USER, utf8.encode(node.user))
    if (node.group != null) this.stringRecord(CA_FORMAT_GROUP, utf8.encode(node.group))
    if (node.xattrs != null) {
      for (const x of node.xattrs.slice().sort((a, b) => compareBytes(a.name, b.name))) {
        this.header(CA_HEADER_SIZE + x.name.byteLength + 1 + x.value.byteLength, CA_FORMAT_XATTR)
        this.reserve(x.name.byteLength + 1 + x.value.byteLength)
        this.bytes(x.name)
        this.buf[this.pos++] = 0
        this.bytes(x.value)
      }
    }
    this.aclRecords(CA_FORMAT_ACL_USER, node.aclUser)
    this.aclRecords(CA_FORMAT_ACL_GROUP, node.aclGroup)
    if (node.aclGroupObj != null) { this.header(24, CA_FORMAT_ACL_GROUP_OBJ); this.u64(node.aclGroupObj) }
    if (node.aclDefault != null) {
      const d = node.aclDefault
      this.header(48, CA_FORMAT_ACL_DEFAULT)
      this.u64(d.userObj); this.u64(d.groupObj); this.u64(d.other); this.u64(d.mask)
    }
    this.aclRecords(CA_FORMAT_ACL_DEFAULT_USER, node.aclDefaultUser)
    this.aclRecords(CA_FORMAT_ACL_DEFAULT_GROUP, node.aclDefaultGroup)
    if (node.selinux != null) this.stringRecord(CA_FORMAT_SELINUX, utf8.encode(node.selinux))
    if (node.fcaps != null) {
      this.header(CA_HEADER_SIZE + node.fcaps.byteLength, CA_FORMAT_FCAPS)
      this.reserve(node.fcaps.byteLength)
      this.bytes(node.fcaps)
    }
    if (node.quotaProjId != null) { this.header(24, CA_FORMAT_QUOTA_PROJID); this.u64(node.quotaProjId) }
    let remaining = 0
    if (kind === S_IFREG) {
      remaining = node.size ?? 0
      this.header(CA_HEADER_SIZE + remaining, CA_FORMAT_PAYLOAD)
    } else if (kind === S_IFLNK) {
      if (node.target == null) throw new InvalidArgumentError('a symlink node needs a target')
      this.stringRecord(CA_FORMAT_SYMLINK, node.target)
    } else if (kind === S_IFBLK || kind === S_IFCHR) {
      this.header(32, CA_FORMAT_DEVICE)
      this.u64(node.major ?? 0)
      this.u64(node.minor ?? 0)
    }
    return remaining
  }

  private openFile (length: number): Frame {
    const top = this.stack[this.stack.length - 1]
    if (top == null || top.kind !== S_IFREG) throw new InvalidArgumentError('payload outside a regular file')
    if (length > top.remaining) throw new InvalidArgumentError(`payload longer than the file's size (${length} > ${top.remaining} bytes left)`)
    return top
  }

  /**
   * Output space for the next bytes of the open file's payload, to be filled by the caller (a
   * read from the file) and then committed with commitPayload(): a view of at most `max` bytes,
   * and of at least min(max, 4 KiB). This spares the copy payload() makes of small pieces.
   */
  payloadSpace (max: number): Uint8Array {
    const top = this.openFile(max)
    const want = Math.min(max, top.remaining)
    if (this.buf.byteLength - this.pos < Math.min(want, MIN_SPACE)) this.reserve(Math.min(want, this.bufferSize))
    return this.buf.subarray(this.pos, this.pos + Math.min(want, this.buf.byteLength - this.pos))
  }

  /** Adds the first `n` bytes of the view payloadSpace() returned to the archive. */
  commitPayload (n: number): void {
    const top = this.openFile(n)
    if (this.pos + n > this.buf.byteLength) throw new InvalidArgumentError('commitPayload() beyond the space given out')
    top.remaining -= n
    this.pos += n
  }

  payload (data: Uint8Array): void {
    const top = this.openFile(data.byteLength)
    top.remaining -= data.byteLength
    if (data.byteLength >= PASS_THROUGH) {
      this.flush()
      this.out.push(data)
      this.pending += data.byteLength
      this.flushed += data.byteLength
    } else {
      this.reserve(data.byteLength)
      this.bytes(data)
    }
  }

  end (): void {
    const top = this.stack.pop()
    if (top == null) throw new InvalidArgumentError('end() without an open node')
    if (top.kind === S_IFREG && top.remaining !== 0) throw new InvalidArgumentError(`file ended ${top.remaining} bytes short of its size`)
    if (top.kind === S_IFDIR) {
      const size = goodbyeSize(top.children.length)
      const goodbyeStart = this.offset
      this.reserve(size)
      encodeGoodbye(top.children, top.entryStart, goodbyeStart, this.buf, this.pos)
      this.pos += size
    }
    const parent = this.stack[this.stack.length - 1]
    if (parent == null) { this.done = true; return }
    parent.children.push({ start: top.start, size: this.offset - top.start, hash: siphash24(top.name!) })
  }
}

export interface EncodeArchiveOptions extends ArchiveEncoderInit {
  /** yield once this many bytes are pending. @default 256 KiB */
  yieldBytes?: number
}

/** Archive bytes for a stream of events (one complete tree). */
export async function * encodeArchive (events: AsyncIterable<ArchiveEvent> | Iterable<ArchiveEvent>, options: EncodeArchiveOptions): AsyncGenerator<Uint8Array> {
  const encoder = new ArchiveEncoder(options)
  const threshold = options.yieldBytes ?? 256 * 1024
  for await (const event of events) {
    encoder.push(event)
    if (encoder.pendingBytes >= threshold) yield * encoder.take()
  }
  if (!encoder.finished) throw new InvalidArgumentError('the event stream ended before the root directory was closed')
  yield * encoder.take()
}

/** A node's ENTRY…PAYLOAD-header/SYMLINK/DEVICE bytes, as casync's stat hashes them (HLDigest). */
export function encodeNodeRecords (node: ArchiveNode, featureFlags: bigint): Uint8Array {
  const encoder = new ArchiveEncoder({ featureFlags, bufferSize: 4096 })
  encoder.records(node)
  const parts = encoder.take()
  return parts.length === 1 ? parts[0]! : Buffer.concat(parts)
}
