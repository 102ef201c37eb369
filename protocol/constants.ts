// Magic numbers from casync src/caformat.h (shared/spec/casync-format.md §3, §4); 64-bit, so bigint.
export const CA_FORMAT_INDEX = 0x96824d9c7b129ff9n
export const CA_FORMAT_TABLE = 0xe75b9e112f17417dn
export const CA_FORMAT_TABLE_TAIL_MARKER = 0x4b4f050e5549ecd1n

// Feature-flag bits that concern blobs and digests (casync src/caformat.h)
export const CA_FORMAT_EXCLUDE_SUBMOUNTS = 0x4000000000000000n
export const CA_FORMAT_SHA512_256 = 0x2000000000000000n
export const CA_FORMAT_EXCLUDE_NODUMP = 0x8000000000000000n
export const CA_FORMAT_EXCLUDE_FILE = 0x1000000000000000n
export const CA_FORMAT_WITH_MASK = 0x00000001ffffffffn
/** casync src/caformat.h CA_FORMAT_FEATURE_FLAGS_MAX: every bit a reader accepts */
export const CA_FORMAT_FEATURE_FLAGS_MAX = 0xf0000001ffffffffn
/** What `casync make x.caibx` writes by default (EXCLUDE_NODUMP | SHA512_256 | EXCLUDE_FILE); spec §3 */
export const CA_FORMAT_DEFAULT_BLOB_FLAGS = 0xb000000000000000n

// casync/desync defaults: min = avg / 4, max = avg * 4 (spec §1.1)
export const DEFAULT_CHUNK_SIZE_AVG = 64 * 1024
export const DEFAULT_CHUNK_SIZE_MIN = DEFAULT_CHUNK_SIZE_AVG / 4
export const DEFAULT_CHUNK_SIZE_MAX = DEFAULT_CHUNK_SIZE_AVG * 4
/** casync src/cachunker.h CHUNK_SIZE_LIMIT_MIN / _MAX */
export const CHUNK_SIZE_LIMIT_MIN = 1
export const CHUNK_SIZE_LIMIT_MAX = 128 * 1024 * 1024
/** buzhash window, casync src/cachunker.h CHUNKER_WINDOW_SIZE */
export const CHUNKER_WINDOW_SIZE = 48

// Index file layout (spec §3)
export const INDEX_HEADER_SIZE = 48
export const TABLE_HEADER_SIZE = 16
export const TABLE_ITEM_SIZE = 40
export const TABLE_TAIL_SIZE = 40
export const CHUNK_ID_SIZE = 32

/** Chunk file suffix (casync src/cachunk.c; env CASYNC_COMPRESSED_CHUNK_SUFFIX overrides it in casync) */
export const CHUNK_SUFFIX = '.cacnk'
export const DEFAULT_STORE_NAME = 'default.castr'

// Chunk compression magics (spec §2.3)
export const ZSTD_MAGIC = Uint8Array.of(0x28, 0xb5, 0x2f, 0xfd)
export const XZ_MAGIC = Uint8Array.of(0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00)
export const GZIP_MAGIC = Uint8Array.of(0x1f, 0x8b)
/** casync compresses zstd at level 3 and xz at preset 6 (spec §2.3) */
export const ZSTD_LEVEL = 3
export const XZ_PRESET = 6
/** Decompressed chunk size must be 1 … 128 MiB - 1 (spec §2.3) */
export const MAX_CHUNK_DECOMPRESSED = CHUNK_SIZE_LIMIT_MAX - 1
