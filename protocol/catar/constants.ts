// catar record types and limits, casync src/caformat.h (shared/spec/casync-format.md §4.1).
// 64-bit magic numbers, so bigint; the decoder compares them as two 32-bit halves for speed.

export const CA_FORMAT_ENTRY = 0x1396fabcea5bbb51n
export const CA_FORMAT_USER = 0xf453131aaeeaccb3n
export const CA_FORMAT_GROUP = 0x25eb6ac969396a52n
export const CA_FORMAT_XATTR = 0xb8157091f80bc486n
export const CA_FORMAT_ACL_USER = 0x297dc88b2ef12fafn
export const CA_FORMAT_ACL_GROUP = 0x36f2acb56cb3dd0bn
export const CA_FORMAT_ACL_GROUP_OBJ = 0x23047110441f38f3n
export const CA_FORMAT_ACL_DEFAULT = 0xfe3eeda6823c8cd0n
export const CA_FORMAT_ACL_DEFAULT_USER = 0xbdf03df9bd010a91n
export const CA_FORMAT_ACL_DEFAULT_GROUP = 0xa0cb1168782d1f51n
export const CA_FORMAT_FCAPS = 0xf7267db0afed0629n
export const CA_FORMAT_QUOTA_PROJID = 0x161baf2d8772a72bn
export const CA_FORMAT_SELINUX = 0x46faf0602fd26c59n
export const CA_FORMAT_SYMLINK = 0x664a6fb6830e0d6cn
export const CA_FORMAT_DEVICE = 0xac3dace369dfe643n
export const CA_FORMAT_PAYLOAD = 0x8b9e1d93d6dcffc9n
export const CA_FORMAT_FILENAME = 0x6dbb6ebcb3161f0bn
export const CA_FORMAT_GOODBYE = 0xdfd35c5e8327c403n
export const CA_FORMAT_GOODBYE_TAIL_MARKER = 0x57446fa533702943n

/** Record header: u64 size (whole record), u64 type */
export const CA_HEADER_SIZE = 16
/** ENTRY is always exactly 64 bytes (spec §4.1) */
export const CA_ENTRY_SIZE = 64
export const CA_GOODBYE_ITEM_SIZE = 24
export const CA_GOODBYE_TAIL_SIZE = 24

// Reader limits, casync src/cadecoder.c (spec §4.1), all counting the terminating NUL
export const CA_NAME_MAX = 256
export const CA_USER_NAME_MAX = 256
export const CA_SELINUX_MAX = 4096
export const CA_SYMLINK_MAX = 4096
export const CA_XATTR_NAME_MAX = 255
export const CA_XATTR_VALUE_MAX = 65536
export const CA_FCAPS_MAX = 65536
/** DEVICE limits (spec §4.4.7) */
export const CA_DEVICE_MAJOR_LIMIT = 1 << 12
export const CA_DEVICE_MINOR_LIMIT = 1 << 20

/** SipHash-2-4 key for GOODBYE item hashes (spec §4.6), as bytes */
export const CA_GOODBYE_HASH_KEY = Uint8Array.of(0xb3, 0x84, 0x1d, 0x0f, 0x2b, 0x44, 0x74, 0x85, 0xc1, 0x2e, 0xc2, 0xd1, 0x30, 0xed, 0x36, 0x27)

// Linux st_mode bits
export const S_IFMT = 0o170000
export const S_IFSOCK = 0o140000
export const S_IFLNK = 0o120000
export const S_IFREG = 0o100000
export const S_IFBLK = 0o060000
export const S_IFDIR = 0o040000
export const S_IFCHR = 0o020000
export const S_IFIFO = 0o010000
