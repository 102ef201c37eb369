// caswarm_tree: the few Linux calls Node has no API for, used by node/tree/ to read and write
// directory trees like casync does: extended attributes (which also carry POSIX ACLs and file
// capabilities), the chattr/FAT/project-id ioctls, statfs, mknod, utimensat with nanoseconds on
// symlinks, and the passwd/group databases (NSS); plus what makes tree archiving fast: one call
// per directory for every entry's metadata, reads into a given buffer, and a hashing writer on
// its own thread. Plain N-API (C); the digests use the OpenSSL that Node exports.
//
// Paths are Buffers (raw bytes, so any file name works) or strings. Errors are thrown as Error
// objects with `code` (e.g. 'ENOENT'), `errno`, `syscall` and `path`, like Node's fs errors.
#define _GNU_SOURCE
#include <node_api.h>
#include "throw-errno.h"

#include <errno.h>
#include <fcntl.h>
#include <dirent.h>
#include <grp.h>
#include <limits.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <linux/fs.h>
#include <linux/msdos_fs.h>
#include <pwd.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/sysmacros.h>
#include <sys/types.h>
#include <sys/xattr.h>
#include <unistd.h>

#ifndef BTRFS_IOC_SUBVOL_GETFLAGS
#define BTRFS_IOC_SUBVOL_GETFLAGS _IOR(0x94, 25, uint64_t)
#endif
#ifndef BTRFS_SUBVOL_RDONLY
#define BTRFS_SUBVOL_RDONLY (1ULL << 1)
#endif

#define CHECK(call) do { if ((call) != napi_ok) { napi_throw_error(env, NULL, "N-API call failed: " #call); return NULL; } } while (0)

/** copies a Buffer/string path argument into out (NUL-terminated); false after throwing */
static int get_path (napi_env env, napi_value v, char *out, size_t size) {
  bool is_buffer = false;
  napi_is_buffer(env, v, &is_buffer);
  if (is_buffer) {
    void *data; size_t len;
    if (napi_get_buffer_info(env, v, &data, &len) != napi_ok) return 0;
    if (len >= size || memchr(data, 0, len) != NULL) { napi_throw_type_error(env, "ERR_INVALID_ARG_VALUE", "path too long or contains NUL"); return 0; }
    memcpy(out, data, len);
    out[len] = 0;
    return 1;
  }
  size_t len;
  if (napi_get_value_string_utf8(env, v, out, size, &len) != napi_ok) { napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", "path must be a Buffer or string"); return 0; }
  if (len >= size - 1 || strlen(out) != len) { napi_throw_type_error(env, "ERR_INVALID_ARG_VALUE", "path too long or contains NUL"); return 0; }
  return 1;
}

// Writes all of buf (retrying short writes and EINTR): 0, or the errno of the write that failed
// (errno is left set); *done, when given, gets the bytes written either way.
static int write_all (int fd, const void *buf, size_t len, size_t *done) {
  size_t off = 0;
  int err = 0;
  while (off < len) {
    ssize_t k = write(fd, (const char *)buf + off, len - off);
    if (k < 0) { if (errno == EINTR) continue; err = errno; break; }
    off += (size_t)k;
  }
  if (done != NULL) *done = off;
  return err;
}

static int get_bytes (napi_env env, napi_value v, void **data, size_t *len) {
  bool ok = false;
  napi_is_buffer(env, v, &ok);
  if (!ok) {
    napi_is_typedarray(env, v, &ok);
    if (!ok) { napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", "expected a Buffer"); return 0; }
    napi_typedarray_type t; napi_value ab; size_t off;
    return napi_get_typedarray_info(env, v, &t, len, data, &ab, &off) == napi_ok;
  }
  return napi_get_buffer_info(env, v, data, len) == napi_ok;
}

static napi_value make_buffer (napi_env env, const void *data, size_t len) {
  napi_value out; void *dst;
  if (napi_create_buffer_copy(env, len, data, &dst, &out) != napi_ok) return NULL;
  return out;
}

// lxattrs(path) → [name: Buffer, value: Buffer][] ; [] where the file system has none
static napi_value lxattrs (napi_env env, napi_callback_info info) {
  size_t argc = 1; napi_value argv[1];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  char path[PATH_MAX];
  if (!get_path(env, argv[0], path, sizeof path)) return NULL;
  napi_value result;
  CHECK(napi_create_array(env, &result));
  char *names = NULL; ssize_t n;
  for (;;) {
    n = llistxattr(path, NULL, 0);
    if (n < 0) {
      if (errno == ENOTSUP || errno == ENODATA) return result;
      return throw_errno(env, errno, "llistxattr", path);
    }
    if (n == 0) return result;
    names = malloc(n);
    if (!names) return throw_errno(env, ENOMEM, "llistxattr", path);
    ssize_t m = llistxattr(path, names, n);
    if (m >= 0) { n = m; break; }
    int e = errno;
    free(names);
    if (e != ERANGE) return throw_errno(env, e, "llistxattr", path);
  }
  uint32_t idx = 0;
  char *value = NULL;
  for (ssize_t i = 0; i < n; i += strlen(names + i) + 1) {
    const char *name = names + i;
    ssize_t vl = -1;
    for (int attempt = 0; attempt < 8; attempt++) {
      ssize_t need = lgetxattr(path, name, NULL, 0);
      if (need < 0) break;
      value = realloc(value, need + 1);
      vl = lgetxattr(path, name, value, need + 1);
      if (vl >= 0 || errno != ERANGE) break;
    }
    if (vl < 0) {
      if (errno == ENODATA || errno == ENOTSUP) continue; /* removed meanwhile, or not readable here */
      int e = errno; free(names); free(value);
      return throw_errno(env, e, "lgetxattr", path);
    }
    napi_value pair, nv, vv;
    napi_create_array_with_length(env, 2, &pair);
    nv = make_buffer(env, name, strlen(name));
    vv = make_buffer(env, value, vl);
    napi_set_element(env, pair, 0, nv);
    napi_set_element(env, pair, 1, vv);
    napi_set_element(env, result, idx++, pair);
  }
  free(names); free(value);
  return result;
}

// lsetxattr(path, name: string, value: Buffer)
static napi_value lsetxattr_js (napi_env env, napi_callback_info info) {
  size_t argc = 3; napi_value argv[3];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  char path[PATH_MAX], name[512];
  if (!get_path(env, argv[0], path, sizeof path)) return NULL;
  if (!get_path(env, argv[1], name, sizeof name)) return NULL;
  void *data; size_t len;
  if (!get_bytes(env, argv[2], &data, &len)) return NULL;
  if (lsetxattr(path, name, data, len, 0) < 0) return throw_errno(env, errno, "lsetxattr", path);
  return NULL;
}

// lremovexattr(path, name)
static napi_value lremovexattr_js (napi_env env, napi_callback_info info) {
  size_t argc = 2; napi_value argv[2];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  char path[PATH_MAX], name[512];
  if (!get_path(env, argv[0], path, sizeof path)) return NULL;
  if (!get_path(env, argv[1], name, sizeof name)) return NULL;
  if (lremovexattr(path, name) < 0 && errno != ENODATA) return throw_errno(env, errno, "lremovexattr", path);
  return NULL;
}

static int open_nofollow (const char *path) {
  return open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC | O_NOCTTY | O_NOATIME)
    ;
}

static int open_nofollow_retry (const char *path) {
  int fd = open_nofollow(path);
  if (fd < 0 && errno == EPERM) fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
  return fd;
}

// inodeFlags(path, fat: bool, subvolume: bool) → [chattr, fatAttrs, projid, subvolRo]
// (regular files and directories only; values -1 where not available)
static napi_value inode_flags (napi_env env, napi_callback_info info) {
  size_t argc = 3; napi_value argv[3];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  char path[PATH_MAX];
  if (!get_path(env, argv[0], path, sizeof path)) return NULL;
  bool want_fat = false, want_subvol = false;
  if (argc > 1) napi_get_value_bool(env, argv[1], &want_fat);
  if (argc > 2) napi_get_value_bool(env, argv[2], &want_subvol);
  int fd = open_nofollow_retry(path);
  if (fd < 0) return throw_errno(env, errno, "open", path);
  double vals[4] = { -1, -1, -1, -1 };
  int attr = 0;
  if (ioctl(fd, FS_IOC_GETFLAGS, &attr) == 0) vals[0] = (double)(unsigned)attr;
  if (want_fat) {
    uint32_t fat = 0;
    if (ioctl(fd, FAT_IOCTL_GET_ATTRIBUTES, &fat) == 0) vals[1] = fat;
  }
  struct fsxattr fsx;
  if (ioctl(fd, FS_IOC_FSGETXATTR, &fsx) == 0) vals[2] = fsx.fsx_projid;
  if (want_subvol) {
    uint64_t f = 0;
    if (ioctl(fd, BTRFS_IOC_SUBVOL_GETFLAGS, &f) == 0) vals[3] = (f & BTRFS_SUBVOL_RDONLY) ? 1 : 0;
  }
  close(fd);
  napi_value result;
  CHECK(napi_create_array_with_length(env, 4, &result));
  for (uint32_t i = 0; i < 4; i++) {
    napi_value v; napi_create_double(env, vals[i], &v); napi_set_element(env, result, i, v);
  }
  return result;
}

// ---- directory scans: what the reader needs of every entry of a directory, in one call ----

#define SCAN_FLAGS 1      /* FS_IOC_GETFLAGS and FS_IOC_FSGETXATTR on regular files and directories */
#define SCAN_XATTRS 2     /* every extended attribute of every entry but symlinks */
#define SCAN_FAT 4        /* FAT_IOCTL_GET_ATTRIBUTES */
#define SCAN_SUBVOLUME 8  /* BTRFS_IOC_SUBVOL_GETFLAGS on directories with inode 256 */
#define SCAN_FIELDS 18    /* numbers per entry, see scan_dir */

struct scan_xattr { char *names; size_t names_len; char **values; ssize_t *value_lens; size_t count; };

static void free_xattrs (struct scan_xattr *x) {
  for (size_t i = 0; i < x->count; i++) free(x->values[i]);
  free(x->values); free(x->value_lens); free(x->names);
  memset(x, 0, sizeof *x);
}

/* reads every xattr through fd (>= 0) or path; 0 or an errno (ENOTSUP/ENODATA count as none) */
static int read_xattrs (int fd, const char *path, struct scan_xattr *out) {
  memset(out, 0, sizeof *out);
  ssize_t n;
  char *names = NULL;
  for (;;) {
    n = fd >= 0 ? flistxattr(fd, NULL, 0) : llistxattr(path, NULL, 0);
    if (n < 0) return (errno == ENOTSUP || errno == ENODATA) ? 0 : errno;
    if (n == 0) return 0;
    names = malloc(n);
    if (!names) return ENOMEM;
    ssize_t m = fd >= 0 ? flistxattr(fd, names, n) : llistxattr(path, names, n);
    if (m >= 0) { n = m; break; }
    int e = errno; free(names);
    if (e != ERANGE) return e;
  }
  size_t count = 0;
  for (ssize_t i = 0; i < n; i += strlen(names + i) + 1) count++;
  out->names = names; out->names_len = n;
  out->values = calloc(count ? count : 1, sizeof(char *));
  out->value_lens = calloc(count ? count : 1, sizeof(ssize_t));
  if (!out->values || !out->value_lens) { free_xattrs(out); return ENOMEM; }
  out->count = count;
  size_t k = 0;
  for (ssize_t i = 0; i < n; i += strlen(names + i) + 1, k++) {
    const char *name = names + i;
    ssize_t vl = -1; char *value = NULL;
    for (int attempt = 0; attempt < 8; attempt++) {
      ssize_t need = fd >= 0 ? fgetxattr(fd, name, NULL, 0) : lgetxattr(path, name, NULL, 0);
      if (need < 0) break;
      char *grown = realloc(value, need + 1);
      if (!grown) { free(value); free_xattrs(out); return ENOMEM; }
      value = grown;
      vl = fd >= 0 ? fgetxattr(fd, name, value, need + 1) : lgetxattr(path, name, value, need + 1);
      if (vl >= 0 || errno != ERANGE) break;
    }
    if (vl < 0) {
      int e = errno; free(value);
      if (e == ENODATA || e == ENOTSUP) { out->value_lens[k] = -1; continue; } /* removed meanwhile, or not readable here */
      free_xattrs(out);
      return e;
    }
    out->values[k] = value; out->value_lens[k] = vl;
  }
  return 0;
}

static napi_value xattr_pairs (napi_env env, const struct scan_xattr *x) {
  napi_value result;
  napi_create_array(env, &result);
  uint32_t idx = 0; size_t k = 0;
  for (size_t i = 0; i < x->names_len; i += strlen(x->names + i) + 1, k++) {
    if (x->value_lens[k] < 0) continue;
    napi_value pair;
    napi_create_array_with_length(env, 2, &pair);
    napi_set_element(env, pair, 0, make_buffer(env, x->names + i, strlen(x->names + i)));
    napi_set_element(env, pair, 1, make_buffer(env, x->values[k], x->value_lens[k]));
    napi_set_element(env, result, idx++, pair);
  }
  return result;
}

static int compare_names (const void *a, const void *b, void *names) {
  /* strcmp compares as unsigned char: the byte order of Buffer.compare for names without NUL */
  return strcmp((const char *)names + *(const size_t *)a, (const char *)names + *(const size_t *)b);
}

// scanDir(path, options) → [names: Buffer, fields: Float64Array, xattrs: Array, targets: Array]
// The entries of a directory, sorted by name (bytewise), each with lstat fields and, as `options`
// (SCAN_* bits) asks, inode flags and extended attributes, read through one O_NOFOLLOW descriptor
// per regular file or directory like casync does. fields has SCAN_FIELDS numbers per entry:
//  0 name offset in names, 1 name length, 2 mode, 3 uid, 4 gid, 5 size, 6 mtime s, 7 mtime ns,
//  8 dev, 9 ino, 10 rdev major, 11 rdev minor, 12 chattr, 13 FAT attributes, 14 project id,
//  15 subvolume read-only (12-15: -1 where not read or not available), 16 lstat errno (0 = ok),
//  17 errno of reading flags/xattrs (0 = ok; otherwise the caller reads them itself).
// xattrs[i] is [name, value][] for entries that have any; targets[i] is a symlink's target.
static napi_value scan_dir (napi_env env, napi_callback_info info) {
  size_t argc = 2; napi_value argv[2];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  char path[PATH_MAX];
  if (!get_path(env, argv[0], path, sizeof path)) return NULL;
  uint32_t options = 0;
  if (argc > 1) napi_get_value_uint32(env, argv[1], &options);
  int dfd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOCTTY);
  if (dfd < 0) return throw_errno(env, errno, "scandir", path);
  DIR *d = fdopendir(dfd);
  if (!d) { int e = errno; close(dfd); return throw_errno(env, e, "scandir", path); }
  char *names = NULL; size_t names_len = 0, names_cap = 0;
  size_t *offsets = NULL; size_t count = 0, cap = 0;
  struct dirent *de;
  int err = 0;
  for (;;) {
    errno = 0;
    de = readdir(d);
    if (!de) { err = errno; break; }
    const char *n = de->d_name;
    if (n[0] == '.' && (n[1] == 0 || (n[1] == '.' && n[2] == 0))) continue;
    size_t len = strlen(n) + 1;
    if (names_len + len > names_cap) {
      size_t nc = names_cap ? names_cap * 2 : 4096;
      while (nc < names_len + len) nc *= 2;
      char *g = realloc(names, nc);
      if (!g) { err = ENOMEM; break; }
      names = g; names_cap = nc;
    }
    if (count == cap) {
      size_t nc = cap ? cap * 2 : 64;
      size_t *g = realloc(offsets, nc * sizeof *offsets);
      if (!g) { err = ENOMEM; break; }
      offsets = g; cap = nc;
    }
    memcpy(names + names_len, n, len);
    offsets[count++] = names_len;
    names_len += len;
  }
  if (err) { closedir(d); free(names); free(offsets); return throw_errno(env, err, "scandir", path); }
  if (count > 1) qsort_r(offsets, count, sizeof *offsets, compare_names, names);

  napi_value names_buf, ab, fields, xattrs, targets, result;
  void *nb_data;
  if (napi_create_buffer_copy(env, names_len, names_len ? names : "", &nb_data, &names_buf) != napi_ok) { closedir(d); free(names); free(offsets); return NULL; }
  double *f;
  if (napi_create_arraybuffer(env, (count ? count : 1) * SCAN_FIELDS * sizeof(double), (void **)&f, &ab) != napi_ok) { closedir(d); free(names); free(offsets); return NULL; }
  napi_create_typedarray(env, napi_float64_array, count * SCAN_FIELDS, ab, 0, &fields);
  napi_create_array_with_length(env, count, &xattrs);
  napi_create_array_with_length(env, count, &targets);

  size_t plen = strlen(path);
  char full[PATH_MAX];
  for (size_t i = 0; i < count; i++) {
    const char *name = names + offsets[i];
    double *e = f + i * SCAN_FIELDS;
    e[0] = (double)offsets[i]; e[1] = (double)strlen(name);
    for (int k = 2; k < SCAN_FIELDS; k++) e[k] = k >= 12 && k <= 15 ? -1 : 0;
    struct stat st;
    if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0) { e[16] = errno; continue; }
    e[2] = st.st_mode; e[3] = st.st_uid; e[4] = st.st_gid; e[5] = (double)st.st_size;
    e[6] = (double)st.st_mtim.tv_sec; e[7] = (double)st.st_mtim.tv_nsec;
    e[8] = (double)st.st_dev; e[9] = (double)st.st_ino;
    e[10] = major(st.st_rdev); e[11] = minor(st.st_rdev);
    int type = st.st_mode & S_IFMT;
    if (type == S_IFLNK) {
      char target[PATH_MAX];
      ssize_t tl = readlinkat(dfd, name, target, sizeof target);
      if (tl >= 0 && tl < (ssize_t)sizeof target) napi_set_element(env, targets, i, make_buffer(env, target, tl));
      continue;
    }
    if ((options & (SCAN_FLAGS | SCAN_XATTRS | SCAN_FAT | SCAN_SUBVOLUME)) == 0) continue;
    int fd = -1;
    if (type == S_IFREG || type == S_IFDIR) {
      int oflags = O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC | O_NOCTTY;
      fd = openat(dfd, name, oflags | O_NOATIME);
      if (fd < 0 && errno == EPERM) fd = openat(dfd, name, oflags);
      if (fd < 0) { e[17] = errno; continue; }
      if (options & (SCAN_FLAGS | SCAN_FAT | SCAN_SUBVOLUME)) {
        int attr = 0;
        if (ioctl(fd, FS_IOC_GETFLAGS, &attr) == 0) e[12] = (double)(unsigned)attr;
        if (options & SCAN_FAT) {
          uint32_t fat = 0;
          if (ioctl(fd, FAT_IOCTL_GET_ATTRIBUTES, &fat) == 0) e[13] = fat;
        }
        struct fsxattr fsx;
        if (ioctl(fd, FS_IOC_FSGETXATTR, &fsx) == 0) e[14] = fsx.fsx_projid;
        if ((options & SCAN_SUBVOLUME) && type == S_IFDIR && st.st_ino == 256) {
          uint64_t sf = 0;
          if (ioctl(fd, BTRFS_IOC_SUBVOL_GETFLAGS, &sf) == 0) e[15] = (sf & BTRFS_SUBVOL_RDONLY) ? 1 : 0;
        }
      }
    } else if (options & SCAN_XATTRS) {
      if (plen + 1 + strlen(name) + 1 > sizeof full) { e[17] = ENAMETOOLONG; continue; }
      memcpy(full, path, plen); full[plen] = '/'; strcpy(full + plen + 1, name);
    }
    if (options & SCAN_XATTRS) {
      struct scan_xattr x;
      int xe = read_xattrs(fd, full, &x);
      if (xe) e[17] = xe;
      else if (x.count > 0) napi_set_element(env, xattrs, i, xattr_pairs(env, &x));
      free_xattrs(&x);
    }
    if (fd >= 0) close(fd);
  }
  closedir(d);
  free(names); free(offsets);
  napi_create_array_with_length(env, 4, &result);
  napi_set_element(env, result, 0, names_buf);
  napi_set_element(env, result, 1, fields);
  napi_set_element(env, result, 2, xattrs);
  napi_set_element(env, result, 3, targets);
  return result;
}

// readAt(path, buffer, position) → bytes read: fills `buffer` from `position` of the regular file
// at path (opened O_NOFOLLOW, O_NOATIME where allowed), fewer bytes only at the end of the file
static napi_value read_at (napi_env env, napi_callback_info info) {
  size_t argc = 3; napi_value argv[3];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  char path[PATH_MAX];
  if (!get_path(env, argv[0], path, sizeof path)) return NULL;
  void *data; size_t len;
  if (!get_bytes(env, argv[1], &data, &len)) return NULL;
  double position = 0;
  if (argc > 2) napi_get_value_double(env, argv[2], &position);
  int oflags = O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY;
  int fd = open(path, oflags | O_NOATIME);
  if (fd < 0 && errno == EPERM) fd = open(path, oflags);
  if (fd < 0) return throw_errno(env, errno, "open", path);
  size_t got = 0;
  while (got < len) {
    ssize_t n = pread(fd, (char *)data + got, len - got, (off_t)position + got);
    if (n < 0) {
      if (errno == EINTR) continue;
      int e = errno; close(fd);
      return throw_errno(env, e, "read", path);
    }
    if (n == 0) break;
    got += n;
  }
  close(fd);
  napi_value v;
  napi_create_double(env, (double)got, &v);
  return v;
}

// ---- a hashing writer: SHA-256 (or SHA-512/256) and write() of a byte stream on a thread ----
// The tree reader fills the main thread; this thread digests the archive and writes it, so make
// .catar uses both cores where casync uses one. Bytes are copied into a ring; write blocks while
// it is full. Whole 4 KiB blocks go out through a second descriptor opened with O_DIRECT when the
// output starts at a block boundary (a buffered write of fresh data runs at 280-430 MB/s on these
// VMs, O_DIRECT at 1.3-2.4 GB/s); the last partial block, and everything on a file system without
// O_DIRECT, goes through fd, whose dirty pages are handed to the kernel's writeback as they go
// (sync_file_range), so the caller's final fsync has little left to wait for. With fd -1 the
// thread only digests. The digest is OpenSSL's, from Node.

#define HW_RING (8u << 20)
#define HW_PIECE (1u << 20)
#define HW_WRITEBACK (8u << 20)
#define HW_BLOCK 4096u

struct hashing_writer {
  int fd;
  int dfd;               /* O_DIRECT descriptor on the same file, or -1 */
  uint64_t start;        /* fd's position when the writer was made */
  EVP_MD_CTX *md;
  pthread_t thread;
  pthread_mutex_t lock;
  pthread_cond_t readable, writable;
  unsigned char *ring;
  uint64_t head, tail;   /* bytes put in / taken out of the ring */
  int finishing, stopped, joined;
  int err;               /* first write error (errno), 0 if none */
  uint64_t written, flushed;
};

static void *hw_run (void *arg) {
  struct hashing_writer *w = arg;
  pthread_mutex_lock(&w->lock);
  for (;;) {
    // with O_DIRECT, wait for a whole block (or the end)
    while ((w->head == w->tail || (w->dfd >= 0 && w->head - w->tail < HW_BLOCK)) && !w->finishing && !w->stopped) pthread_cond_wait(&w->readable, &w->lock);
    if (w->stopped || (w->head == w->tail && w->finishing)) break;
    uint64_t avail = w->head - w->tail;
    size_t at = (size_t)(w->tail % HW_RING);
    size_t n = avail < HW_RING - at ? (size_t)avail : HW_RING - at;
    if (n > HW_PIECE) n = HW_PIECE;
    // the ring and the output start block-aligned, so whole blocks of the ring are whole blocks of the file
    size_t whole = w->dfd >= 0 ? n / HW_BLOCK * HW_BLOCK : 0;
    if (whole > 0) n = whole;
    int failed = w->err != 0;
    pthread_mutex_unlock(&w->lock);
    int err = 0;
    if (!failed) {
      EVP_DigestUpdate(w->md, w->ring + at, n);
      size_t off = 0;
      if (w->fd < 0) {
        off = n;
      } else if (whole > 0) {
        ssize_t k;
        do k = pwrite(w->dfd, w->ring + at, n, (off_t)(w->start + w->written)); while (k < 0 && errno == EINTR);
        if (k < 0 && errno == EINVAL) { close(w->dfd); w->dfd = -1; k = 0; } // no O_DIRECT after all
        if (k < 0) err = errno;
        else off = (size_t)k;
        // a short or refused direct write: the rest through fd
        if (!err && off < n) {
          size_t more = 0;
          if (lseek(w->fd, (off_t)(w->start + w->written + off), SEEK_SET) < 0) err = errno;
          else err = write_all(w->fd, w->ring + at + off, n - off, &more);
          off += more;
        }
      } else {
        if (w->dfd >= 0 && lseek(w->fd, (off_t)(w->start + w->written), SEEK_SET) < 0) err = errno;
        else err = write_all(w->fd, w->ring + at, n, &off);
      }
      w->written += off;
      if (!err && w->fd >= 0 && w->dfd < 0 && w->written - w->flushed >= HW_WRITEBACK) {
        sync_file_range(w->fd, (off_t)(w->start + w->flushed), (off_t)(w->written - w->flushed), SYNC_FILE_RANGE_WRITE);
        w->flushed = w->written;
      }
    }
    pthread_mutex_lock(&w->lock);
    if (err && !w->err) w->err = err;
    w->tail += n;
    pthread_cond_signal(&w->writable);
  }
  pthread_mutex_unlock(&w->lock);
  // fd's position after what was written, as if every byte had gone through it
  if (w->fd >= 0 && w->dfd >= 0 && !w->err) lseek(w->fd, (off_t)(w->start + w->written), SEEK_SET);
  return NULL;
}

static void hw_stop (struct hashing_writer *w) {
  if (w->joined) return;
  pthread_mutex_lock(&w->lock);
  w->stopped = 1;
  pthread_cond_signal(&w->readable);
  pthread_mutex_unlock(&w->lock);
  pthread_join(w->thread, NULL);
  w->joined = 1;
}

static void hw_free (struct hashing_writer *w) {
  hw_stop(w);
  pthread_mutex_destroy(&w->lock);
  pthread_cond_destroy(&w->readable);
  pthread_cond_destroy(&w->writable);
  if (w->md) EVP_MD_CTX_free(w->md);
  if (w->dfd >= 0) close(w->dfd);
  free(w->ring);
  free(w);
}

static void hw_finalize (napi_env env, void *data, void *hint) {
  hw_free(data);
}

static struct hashing_writer *hw_arg (napi_env env, napi_value v) {
  struct hashing_writer *w = NULL;
  if (napi_get_value_external(env, v, (void **)&w) != napi_ok || w == NULL) { napi_throw_type_error(env, NULL, "expected a hashing writer"); return NULL; }
  if (w->joined) { napi_throw_error(env, "ERR_INVALID_STATE", "the hashing writer is closed"); return NULL; }
  return w;
}

// hashingWriter(fd, algorithm: 'sha256' | 'sha512-256') → handle; writes go to fd from its
// position (fd -1: nothing is written, the bytes are only digested)
static napi_value hashing_writer (napi_env env, napi_callback_info info) {
  size_t argc = 2; napi_value argv[2];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  int32_t fd = -1;
  napi_get_value_int32(env, argv[0], &fd);
  char name[32] = "sha256";
  if (argc > 1 && !get_path(env, argv[1], name, sizeof name)) return NULL;
  const EVP_MD *md = strcmp(name, "sha256") == 0 ? EVP_sha256() : strcmp(name, "sha512-256") == 0 ? EVP_sha512_256() : NULL;
  if (md == NULL) { napi_throw_type_error(env, "ERR_INVALID_ARG_VALUE", "algorithm must be sha256 or sha512-256"); return NULL; }
  struct hashing_writer *w = calloc(1, sizeof *w);
  if (!w) return throw_errno(env, ENOMEM, "hashingWriter", NULL);
  w->fd = fd;
  w->dfd = -1;
  if (fd >= 0) {
    off_t pos = lseek(fd, 0, SEEK_CUR);
    struct stat st;
    // a regular file written from a block boundary: a second descriptor for O_DIRECT writes
    const char *off = getenv("CASWARM_DIRECT_IO");
    int fl = fcntl(fd, F_GETFL);
    // only for a descriptor open for writing (not appending): the second one must not write where fd could not
    int writable = fl >= 0 && (fl & O_ACCMODE) != O_RDONLY && (fl & O_APPEND) == 0;
    if ((off == NULL || strcmp(off, "0") != 0) && writable && pos >= 0 && pos % HW_BLOCK == 0 && fstat(fd, &st) == 0 && S_ISREG(st.st_mode)) {
      char self[64];
      snprintf(self, sizeof self, "/proc/self/fd/%d", fd);
      w->dfd = open(self, O_WRONLY | O_DIRECT | O_CLOEXEC);
      w->start = (uint64_t)pos;
    }
  }
  if (posix_memalign((void **)&w->ring, HW_BLOCK, HW_RING) != 0) w->ring = NULL;
  w->md = EVP_MD_CTX_new();
  if (!w->ring || !w->md || EVP_DigestInit_ex(w->md, md, NULL) != 1) {
    if (w->md) EVP_MD_CTX_free(w->md);
    if (w->dfd >= 0) close(w->dfd);
    free(w->ring); free(w);
    return throw_errno(env, ENOMEM, "hashingWriter", NULL);
  }
  pthread_mutex_init(&w->lock, NULL);
  pthread_cond_init(&w->readable, NULL);
  pthread_cond_init(&w->writable, NULL);
  int e = pthread_create(&w->thread, NULL, hw_run, w);
  if (e) {
    w->joined = 1;
    hw_free(w);
    return throw_errno(env, e, "pthread_create", NULL);
  }
  napi_value handle;
  if (napi_create_external(env, w, hw_finalize, NULL, &handle) != napi_ok) { hw_free(w); return NULL; }
  return handle;
}

// hashingWriterWrite(handle, bytes): copies bytes into the ring, waiting while it is full; throws
// the first write error
static napi_value hashing_writer_write (napi_env env, napi_callback_info info) {
  size_t argc = 2; napi_value argv[2];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  struct hashing_writer *w = hw_arg(env, argv[0]);
  if (!w) return NULL;
  void *data; size_t len;
  if (!get_bytes(env, argv[1], &data, &len)) return NULL;
  size_t off = 0;
  pthread_mutex_lock(&w->lock);
  while (off < len && !w->err) {
    while (w->head - w->tail == HW_RING && !w->err) pthread_cond_wait(&w->writable, &w->lock);
    if (w->err) break;
    uint64_t space = HW_RING - (w->head - w->tail);
    size_t at = (size_t)(w->head % HW_RING);
    size_t n = len - off;
    if (n > space) n = (size_t)space;
    if (n > HW_RING - at) n = HW_RING - at;
    pthread_mutex_unlock(&w->lock);
    memcpy(w->ring + at, (const char *)data + off, n);
    pthread_mutex_lock(&w->lock);
    w->head += n;
    off += n;
    pthread_cond_signal(&w->readable);
  }
  int err = w->err;
  pthread_mutex_unlock(&w->lock);
  if (err) return throw_errno(env, err, "write", NULL);
  return NULL;
}

// hashingWriterFinish(handle) → [hex digest, bytes]: waits for everything to be written
static napi_value hashing_writer_finish (napi_env env, napi_callback_info info) {
  size_t argc = 1; napi_value argv[1];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  struct hashing_writer *w = hw_arg(env, argv[0]);
  if (!w) return NULL;
  pthread_mutex_lock(&w->lock);
  w->finishing = 1;
  pthread_cond_signal(&w->readable);
  pthread_mutex_unlock(&w->lock);
  pthread_join(w->thread, NULL);
  w->joined = 1;
  if (w->err) return throw_errno(env, w->err, "write", NULL);
  unsigned char digest[EVP_MAX_MD_SIZE]; unsigned int dl = 0;
  EVP_DigestFinal_ex(w->md, digest, &dl);
  char hex[2 * EVP_MAX_MD_SIZE + 1];
  for (unsigned int i = 0; i < dl; i++) snprintf(hex + 2 * i, 3, "%02x", digest[i]);
  napi_value result, h, n;
  napi_create_array_with_length(env, 2, &result);
  napi_create_string_latin1(env, hex, 2 * dl, &h);
  napi_create_double(env, (double)w->written, &n);
  napi_set_element(env, result, 0, h);
  napi_set_element(env, result, 1, n);
  return result;
}

// hashingWriterAbort(handle): stops the thread; what is still in the ring is not written
static napi_value hashing_writer_abort (napi_env env, napi_callback_info info) {
  size_t argc = 1; napi_value argv[1];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  struct hashing_writer *w = NULL;
  if (napi_get_value_external(env, argv[0], (void **)&w) == napi_ok && w != NULL) hw_stop(w);
  return NULL;
}

/** owner, mode and time of a file just written, then close; NULL or the call that failed (errno set) */
static const char *finish_file (int fd, uint32_t mode, int64_t uid, int64_t gid, int64_t sec, int64_t nsec) {
  const char *f = NULL;
  if (uid >= 0 && fchown(fd, (uid_t)uid, (gid_t)gid) < 0) f = "fchown";
  if (!f && fchmod(fd, mode & 07777) < 0) f = "fchmod";
  if (!f && sec >= 0) {
    struct timespec ts[2] = { { .tv_sec = sec, .tv_nsec = nsec }, { .tv_sec = sec, .tv_nsec = nsec } };
    if (futimens(fd, ts) < 0) f = "futimens";
  }
  if (f) { int e = errno; close(fd); errno = e; return f; }
  return close(fd) < 0 ? "close" : NULL;
}

static int open_new_file (const char *path) {
  return open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_NOCTTY | O_CLOEXEC, 0600);
}

/** creates path (O_EXCL) with the bytes, owner, mode and time; 0 or errno, *failed = the call that failed */
static int create_file_at (const char *path, const unsigned char *data, size_t len, uint32_t mode, int64_t uid, int64_t gid, int64_t sec, int64_t nsec, const char **failed) {
  int fd = open_new_file(path);
  if (fd < 0) { *failed = "open"; return errno; }
  int err = write_all(fd, data, len, NULL);
  if (err) { close(fd); *failed = "write"; return err; }
  *failed = finish_file(fd, mode, uid, gid, sec, nsec);
  return *failed ? errno : 0;
}

/** createFile's arguments (path, pieces, mode, uid, gid, sec, nsec); 0 after throwing */
struct file_args { char path[PATH_MAX]; uint32_t count, mode; int64_t uid, gid, sec, nsec; };

static int get_file_args (napi_env env, napi_value *argv, struct file_args *a) {
  if (!get_path(env, argv[0], a->path, sizeof a->path)) return 0;
  a->count = 0; a->mode = 0; a->uid = -1; a->gid = -1; a->sec = -1; a->nsec = 0;
  if (napi_get_array_length(env, argv[1], &a->count) != napi_ok) { napi_throw_type_error(env, NULL, "pieces must be an array"); return 0; }
  napi_get_value_uint32(env, argv[2], &a->mode);
  napi_get_value_int64(env, argv[3], &a->uid);
  napi_get_value_int64(env, argv[4], &a->gid);
  napi_get_value_int64(env, argv[5], &a->sec);
  napi_get_value_int64(env, argv[6], &a->nsec);
  return 1;
}

// createFile(path, pieces: Uint8Array[], mode, uid, gid, sec, nsec): creates a regular file that
// must not exist (O_CREAT|O_EXCL|O_NOFOLLOW), writes the pieces, then fchown (uid >= 0), fchmod
// and futimens (sec >= 0) and closes it: what the tree writer does for a plain file, in one call.
// On failure after the create the file is left as it is; the caller removes the whole tree.
static napi_value create_file (napi_env env, napi_callback_info info) {
  size_t argc = 7; napi_value argv[7];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  struct file_args a;
  if (!get_file_args(env, argv, &a)) return NULL;
  int fd = open_new_file(a.path);
  if (fd < 0) return throw_errno(env, errno, "open", a.path);
  for (uint32_t i = 0; i < a.count; i++) {
    napi_value item; void *data; size_t len;
    if (napi_get_element(env, argv[1], i, &item) != napi_ok || !get_bytes(env, item, &data, &len)) { close(fd); return NULL; }
    int err = write_all(fd, data, len, NULL);
    if (err) { close(fd); return throw_errno(env, err, "write", a.path); }
  }
  const char *failed = finish_file(fd, a.mode, a.uid, a.gid, a.sec, a.nsec);
  if (failed) return throw_errno(env, errno, failed, a.path);
  return NULL;
}

// ---- file creators: plain files, directories and symlinks made on threads of their own ----
// An extraction into a fresh directory hands each entry (a plain file with its bytes copied) to
// one of CREATOR_LANES threads, which opens, writes, chowns, chmods, times and closes it while the
// caller decodes on (casync does both in one thread). A lane runs its jobs in order, so a
// subtree given to one lane has its directories made before what they hold. At most CREATOR_MAX
// bytes wait per lane; the first failure is kept, with its path, and thrown by the next call or
// by createFilesDrain().

#define CREATOR_MAX (32u << 20)

enum { JOB_FILE, JOB_DIR, JOB_SYMLINK };

struct create_job {
  struct create_job *next;
  int kind;              /* JOB_FILE, JOB_DIR (mode 0700; its metadata comes later) or JOB_SYMLINK (data: the target, NUL-terminated) */
  char *path;
  unsigned char *data;
  size_t len;
  uint32_t mode;
  int64_t uid, gid, sec, nsec;
};

struct creator {
  pthread_t thread;
  pthread_mutex_t lock;
  pthread_cond_t work, done;
  struct create_job *head, *tail;
  size_t queued;         /* bytes waiting or being written */
  int busy, stopping, started;
  int err;
  const char *err_call;
  char err_path[PATH_MAX];
};

static void job_free (struct create_job *j) {
  free(j->path);
  free(j->data);
  free(j);
}

static void *creator_run (void *arg) {
  struct creator *c = arg;
  pthread_mutex_lock(&c->lock);
  for (;;) {
    while (c->head == NULL && !c->stopping) pthread_cond_wait(&c->work, &c->lock);
    if (c->head == NULL) break;
    struct create_job *j = c->head;
    c->head = j->next;
    if (c->head == NULL) c->tail = NULL;
    c->busy = 1;
    int failed_before = c->err != 0;
    pthread_mutex_unlock(&c->lock);
    const char *call = NULL;
    int err = 0;
    if (!failed_before && j->kind == JOB_SYMLINK) {
      call = "symlink";
      if (symlink((const char *)j->data, j->path) < 0) err = errno;
      if (err == EEXIST && unlink(j->path) == 0) err = symlink((const char *)j->data, j->path) < 0 ? errno : 0;
    } else if (!failed_before && j->kind == JOB_DIR) {
      call = "mkdir";
      struct stat st;
      if (mkdir(j->path, 0700) < 0) err = errno;
      // a name taken (a file system that folds case): a directory is used as it is, anything else replaced
      if (err == EEXIST && lstat(j->path, &st) == 0 && S_ISDIR(st.st_mode)) err = 0;
      else if (err == EEXIST && unlink(j->path) == 0) err = mkdir(j->path, 0700) < 0 ? errno : 0;
    } else if (!failed_before) {
      err = create_file_at(j->path, j->data, j->len, j->mode, j->uid, j->gid, j->sec, j->nsec, &call);
      // a name taken (a file system that folds case): replaced, as the writer does for any file
      if (err == EEXIST && unlink(j->path) == 0) err = create_file_at(j->path, j->data, j->len, j->mode, j->uid, j->gid, j->sec, j->nsec, &call);
    }
    pthread_mutex_lock(&c->lock);
    if (err && !c->err) {
      c->err = err;
      c->err_call = call;
      snprintf(c->err_path, sizeof c->err_path, "%s", j->path);
    }
    c->queued -= j->len;
    c->busy = 0;
    pthread_cond_broadcast(&c->done);
    job_free(j);
  }
  pthread_mutex_unlock(&c->lock);
  return NULL;
}

/** the creator threads ("lanes"): a subtree is given to one lane whole, so its directories are
    made before what they hold; different subtrees are made side by side */
#define CREATOR_LANES 2

struct creators { struct creator lane[CREATOR_LANES]; };

static struct creators *creators_of (napi_env env) {
  struct creators *cs = NULL;
  if (napi_get_instance_data(env, (void **)&cs) != napi_ok) return NULL;
  return cs;
}

static void creators_free (napi_env env, void *data, void *hint) {
  struct creators *cs = data;
  if (cs == NULL) return;
  for (int i = 0; i < CREATOR_LANES; i++) {
    struct creator *c = &cs->lane[i];
    if (c->started) {
      pthread_mutex_lock(&c->lock);
      c->stopping = 1;
      pthread_cond_signal(&c->work);
      pthread_mutex_unlock(&c->lock);
      pthread_join(c->thread, NULL);
    }
    pthread_mutex_destroy(&c->lock);
    pthread_cond_destroy(&c->work);
    pthread_cond_destroy(&c->done);
  }
  free(cs);
}

/** the kept failure, thrown and cleared; NULL if there was none (c locked by the caller) */
static int creator_take_error (napi_env env, struct creator *c) {
  if (!c->err) return 0;
  int err = c->err;
  char path[PATH_MAX];
  snprintf(path, sizeof path, "%s", c->err_path);
  const char *call = c->err_call ? c->err_call : "create";
  c->err = 0;
  pthread_mutex_unlock(&c->lock);
  throw_errno(env, err, call, path);
  pthread_mutex_lock(&c->lock);
  return err;
}

/** queues j on lane `lane` of this environment's creators (started at first use); takes j in every case */
static napi_value creator_enqueue (napi_env env, struct create_job *j, uint32_t lane) {
  struct creators *cs = creators_of(env);
  if (cs == NULL) {
    cs = calloc(1, sizeof *cs);
    if (cs == NULL) { job_free(j); return throw_errno(env, ENOMEM, "createFileQueued", NULL); }
    for (int i = 0; i < CREATOR_LANES; i++) {
      pthread_mutex_init(&cs->lane[i].lock, NULL);
      pthread_cond_init(&cs->lane[i].work, NULL);
      pthread_cond_init(&cs->lane[i].done, NULL);
    }
    napi_set_instance_data(env, cs, creators_free, NULL);
  }
  struct creator *c = &cs->lane[lane % CREATOR_LANES];
  if (!c->started) {
    int e = pthread_create(&c->thread, NULL, creator_run, c);
    if (e) { job_free(j); return throw_errno(env, e, "pthread_create", NULL); }
    c->started = 1;
  }
  pthread_mutex_lock(&c->lock);
  while (c->queued > 0 && c->queued + j->len > CREATOR_MAX && !c->err) pthread_cond_wait(&c->done, &c->lock);
  if (creator_take_error(env, c)) { pthread_mutex_unlock(&c->lock); job_free(j); return NULL; }
  c->queued += j->len;
  if (c->tail) c->tail->next = j; else c->head = j;
  c->tail = j;
  pthread_cond_signal(&c->work);
  pthread_mutex_unlock(&c->lock);
  return NULL;
}

// createFileQueued(path, pieces: Uint8Array[], mode, uid, gid, sec, nsec, lane): createFile() on
// a creator thread (started at first use); throws a failure of an earlier queued file
static napi_value create_file_queued (napi_env env, napi_callback_info info) {
  size_t argc = 8; napi_value argv[8];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  struct file_args a;
  if (!get_file_args(env, argv, &a)) return NULL;
  struct create_job *j = calloc(1, sizeof *j);
  if (!j) return throw_errno(env, ENOMEM, "createFileQueued", a.path);
  j->mode = a.mode; j->uid = a.uid; j->gid = a.gid; j->sec = a.sec; j->nsec = a.nsec;
  size_t total = 0;
  for (uint32_t i = 0; i < a.count; i++) {
    napi_value item; void *data; size_t len;
    if (napi_get_element(env, argv[1], i, &item) != napi_ok || !get_bytes(env, item, &data, &len)) { job_free(j); return NULL; }
    total += len;
  }
  j->path = strdup(a.path);
  j->data = malloc(total > 0 ? total : 1);
  if (!j->path || !j->data) { job_free(j); return throw_errno(env, ENOMEM, "createFileQueued", a.path); }
  for (uint32_t i = 0; i < a.count; i++) {
    napi_value item; void *data; size_t len;
    napi_get_element(env, argv[1], i, &item);
    get_bytes(env, item, &data, &len);
    memcpy(j->data + j->len, data, len);
    j->len += len;
  }
  uint32_t lane = 0;
  napi_get_value_uint32(env, argv[7], &lane);
  return creator_enqueue(env, j, lane);
}

// makeDirQueued(path, lane): mkdir(path, 0700) on a creator thread, in turn with the files queued
static napi_value make_dir_queued (napi_env env, napi_callback_info info) {
  size_t argc = 2; napi_value argv[2];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  char path[PATH_MAX];
  if (!get_path(env, argv[0], path, sizeof path)) return NULL;
  struct create_job *j = calloc(1, sizeof *j);
  if (j) { j->kind = JOB_DIR; j->path = strdup(path); }
  if (!j || !j->path) { if (j) job_free(j); return throw_errno(env, ENOMEM, "makeDirQueued", path); }
  uint32_t lane = 0;
  napi_get_value_uint32(env, argv[1], &lane);
  return creator_enqueue(env, j, lane);
}


// makeSymlinkQueued(target: Buffer, path, lane): symlink(target, path) on a creator thread
static napi_value make_symlink_queued (napi_env env, napi_callback_info info) {
  size_t argc = 3; napi_value argv[3];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  char target[PATH_MAX], path[PATH_MAX];
  if (!get_path(env, argv[0], target, sizeof target) || !get_path(env, argv[1], path, sizeof path)) return NULL;
  struct create_job *j = calloc(1, sizeof *j);
  if (j) { j->kind = JOB_SYMLINK; j->path = strdup(path); j->data = (unsigned char *)strdup(target); }
  if (!j || !j->path || !j->data) { if (j) job_free(j); return throw_errno(env, ENOMEM, "makeSymlinkQueued", path); }
  uint32_t lane = 0;
  napi_get_value_uint32(env, argv[2], &lane);
  return creator_enqueue(env, j, lane);
}

// createFilesDrain(): waits until every queued file of every lane is made; throws the first failure
static napi_value create_files_drain (napi_env env, napi_callback_info info) {
  struct creators *cs = creators_of(env);
  if (cs == NULL) return NULL;
  int thrown = 0;
  for (int i = 0; i < CREATOR_LANES; i++) {
    struct creator *c = &cs->lane[i];
    if (!c->started) continue;
    pthread_mutex_lock(&c->lock);
    while (c->head != NULL || c->busy) pthread_cond_wait(&c->done, &c->lock);
    if (!thrown) thrown = creator_take_error(env, c);
    pthread_mutex_unlock(&c->lock);
  }
  return NULL;
}

// setInodeFlags(path, chattr, chattrMask, fatAttrs (-1 = leave), projid (-1 = leave)):
// sets the bits in chattrMask to the values in chattr, keeping the others
static napi_value set_inode_flags (napi_env env, napi_callback_info info) {
  size_t argc = 5; napi_value argv[5];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  char path[PATH_MAX];
  if (!get_path(env, argv[0], path, sizeof path)) return NULL;
  uint32_t want = 0, mask = 0; int32_t fat = -1; double projid = -1;
  napi_get_value_uint32(env, argv[1], &want);
  napi_get_value_uint32(env, argv[2], &mask);
  if (argc > 3) napi_get_value_int32(env, argv[3], &fat);
  if (argc > 4) napi_get_value_double(env, argv[4], &projid);
  int fd = open_nofollow_retry(path);
  if (fd < 0) return throw_errno(env, errno, "open", path);
  if (mask != 0) {
    int attr = 0;
    if (ioctl(fd, FS_IOC_GETFLAGS, &attr) < 0) {
      int e = errno; close(fd);
      if (want == 0 && (e == ENOTTY || e == ENOTSUP || e == EINVAL)) return NULL;
      return throw_errno(env, e, "ioctl(FS_IOC_GETFLAGS)", path);
    }
    int next = (int)(((unsigned)attr & ~mask) | (want & mask));
    if (next != attr && ioctl(fd, FS_IOC_SETFLAGS, &next) < 0) {
      int e = errno; close(fd);
      return throw_errno(env, e, "ioctl(FS_IOC_SETFLAGS)", path);
    }
  }
  if (fat >= 0) {
    uint32_t f = (uint32_t)fat;
    if (ioctl(fd, FAT_IOCTL_SET_ATTRIBUTES, &f) < 0 && f != 0) {
      int e = errno; close(fd);
      return throw_errno(env, e, "ioctl(FAT_IOCTL_SET_ATTRIBUTES)", path);
    }
  }
  if (projid >= 0) {
    struct fsxattr fsx;
    if (ioctl(fd, FS_IOC_FSGETXATTR, &fsx) == 0) {
      fsx.fsx_projid = (uint32_t)projid;
      if (ioctl(fd, FS_IOC_FSSETXATTR, &fsx) < 0) {
        int e = errno; close(fd);
        return throw_errno(env, e, "ioctl(FS_IOC_FSSETXATTR)", path);
      }
    } else if (projid != 0) {
      int e = errno; close(fd);
      return throw_errno(env, e, "ioctl(FS_IOC_FSGETXATTR)", path);
    }
  }
  close(fd);
  return NULL;
}

// statfsType(path) → f_type (number)
static napi_value statfs_type (napi_env env, napi_callback_info info) {
  size_t argc = 1; napi_value argv[1];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  char path[PATH_MAX];
  if (!get_path(env, argv[0], path, sizeof path)) return NULL;
  struct statfs sfs;
  if (statfs(path, &sfs) < 0) return throw_errno(env, errno, "statfs", path);
  napi_value v;
  napi_create_double(env, (double)(unsigned long)sfs.f_type, &v);
  return v;
}

// mknod(path, mode, major, minor) — devices, FIFOs and sockets
static napi_value mknod_js (napi_env env, napi_callback_info info) {
  size_t argc = 4; napi_value argv[4];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  char path[PATH_MAX];
  if (!get_path(env, argv[0], path, sizeof path)) return NULL;
  uint32_t mode = 0, maj = 0, min = 0;
  napi_get_value_uint32(env, argv[1], &mode);
  napi_get_value_uint32(env, argv[2], &maj);
  napi_get_value_uint32(env, argv[3], &min);
  if (mknod(path, mode, makedev(maj, min)) < 0) return throw_errno(env, errno, "mknod", path);
  return NULL;
}

// lutimens(path, sec, nsec) — sets atime and mtime, never following a symlink
static napi_value lutimens (napi_env env, napi_callback_info info) {
  size_t argc = 3; napi_value argv[3];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  char path[PATH_MAX];
  if (!get_path(env, argv[0], path, sizeof path)) return NULL;
  int64_t sec = 0; int64_t nsec = 0;
  napi_get_value_int64(env, argv[1], &sec);
  napi_get_value_int64(env, argv[2], &nsec);
  struct timespec ts[2] = { { .tv_sec = sec, .tv_nsec = nsec }, { .tv_sec = sec, .tv_nsec = nsec } };
  if (utimensat(AT_FDCWD, path, ts, AT_SYMLINK_NOFOLLOW) < 0) return throw_errno(env, errno, "utimensat", path);
  return NULL;
}

// futimens(fd, sec, nsec)
static napi_value futimens_js (napi_env env, napi_callback_info info) {
  size_t argc = 3; napi_value argv[3];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  int32_t fd = -1; int64_t sec = 0; int64_t nsec = 0;
  napi_get_value_int32(env, argv[0], &fd);
  napi_get_value_int64(env, argv[1], &sec);
  napi_get_value_int64(env, argv[2], &nsec);
  struct timespec ts[2] = { { .tv_sec = sec, .tv_nsec = nsec }, { .tv_sec = sec, .tv_nsec = nsec } };
  if (futimens(fd, ts) < 0) return throw_errno(env, errno, "futimens", NULL);
  return NULL;
}

static napi_value string_or_null (napi_env env, const char *s) {
  napi_value v;
  if (s == NULL) { napi_get_null(env, &v); return v; }
  napi_create_string_utf8(env, s, NAPI_AUTO_LENGTH, &v);
  return v;
}

static napi_value number_or_null (napi_env env, int found, double n) {
  napi_value v;
  if (!found) { napi_get_null(env, &v); return v; }
  napi_create_double(env, n, &v);
  return v;
}

#define NSS_BUF 16384

// userName(uid) / groupName(gid) → string | null
static napi_value user_name (napi_env env, napi_callback_info info) {
  size_t argc = 1; napi_value argv[1]; uint32_t id = 0;
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  napi_get_value_uint32(env, argv[0], &id);
  struct passwd pw, *res = NULL; char buf[NSS_BUF];
  if (getpwuid_r(id, &pw, buf, sizeof buf, &res) != 0 || res == NULL) return string_or_null(env, NULL);
  return string_or_null(env, res->pw_name);
}

static napi_value group_name (napi_env env, napi_callback_info info) {
  size_t argc = 1; napi_value argv[1]; uint32_t id = 0;
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  napi_get_value_uint32(env, argv[0], &id);
  struct group gr, *res = NULL; char buf[NSS_BUF];
  if (getgrgid_r(id, &gr, buf, sizeof buf, &res) != 0 || res == NULL) return string_or_null(env, NULL);
  return string_or_null(env, res->gr_name);
}

// userId(name) / groupId(name) → number | null
static napi_value user_id (napi_env env, napi_callback_info info) {
  size_t argc = 1; napi_value argv[1]; char name[512];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (!get_path(env, argv[0], name, sizeof name)) return NULL;
  struct passwd pw, *res = NULL; char buf[NSS_BUF];
  int found = getpwnam_r(name, &pw, buf, sizeof buf, &res) == 0 && res != NULL;
  return number_or_null(env, found, found ? res->pw_uid : 0);
}

static napi_value group_id (napi_env env, napi_callback_info info) {
  size_t argc = 1; napi_value argv[1]; char name[512];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (!get_path(env, argv[0], name, sizeof name)) return NULL;
  struct group gr, *res = NULL; char buf[NSS_BUF];
  int found = getgrnam_r(name, &gr, buf, sizeof buf, &res) == 0 && res != NULL;
  return number_or_null(env, found, found ? res->gr_gid : 0);
}

static napi_value init (napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
    { "lxattrs", NULL, lxattrs, NULL, NULL, NULL, napi_default, NULL },
    { "lsetxattr", NULL, lsetxattr_js, NULL, NULL, NULL, napi_default, NULL },
    { "lremovexattr", NULL, lremovexattr_js, NULL, NULL, NULL, napi_default, NULL },
    { "inodeFlags", NULL, inode_flags, NULL, NULL, NULL, napi_default, NULL },
    { "setInodeFlags", NULL, set_inode_flags, NULL, NULL, NULL, napi_default, NULL },
    { "statfsType", NULL, statfs_type, NULL, NULL, NULL, napi_default, NULL },
    { "mknod", NULL, mknod_js, NULL, NULL, NULL, napi_default, NULL },
    { "lutimens", NULL, lutimens, NULL, NULL, NULL, napi_default, NULL },
    { "futimens", NULL, futimens_js, NULL, NULL, NULL, napi_default, NULL },
    { "userName", NULL, user_name, NULL, NULL, NULL, napi_default, NULL },
    { "groupName", NULL, group_name, NULL, NULL, NULL, napi_default, NULL },
    { "userId", NULL, user_id, NULL, NULL, NULL, napi_default, NULL },
    { "groupId", NULL, group_id, NULL, NULL, NULL, napi_default, NULL },
    { "scanDir", NULL, scan_dir, NULL, NULL, NULL, napi_default, NULL },
    { "readAt", NULL, read_at, NULL, NULL, NULL, napi_default, NULL },
    { "createFile", NULL, create_file, NULL, NULL, NULL, napi_default, NULL },
    { "createFileQueued", NULL, create_file_queued, NULL, NULL, NULL, napi_default, NULL },
    { "createFilesDrain", NULL, create_files_drain, NULL, NULL, NULL, napi_default, NULL },
    { "makeDirQueued", NULL, make_dir_queued, NULL, NULL, NULL, napi_default, NULL },
    { "makeSymlinkQueued", NULL, make_symlink_queued, NULL, NULL, NULL, napi_default, NULL },
    { "hashingWriter", NULL, hashing_writer, NULL, NULL, NULL, napi_default, NULL },
    { "hashingWriterWrite", NULL, hashing_writer_write, NULL, NULL, NULL, napi_default, NULL },
    { "hashingWriterFinish", NULL, hashing_writer_finish, NULL, NULL, NULL, napi_default, NULL },
    { "hashingWriterAbort", NULL, hashing_writer_abort, NULL, NULL, NULL, napi_default, NULL },
  };
  if (napi_define_properties(env, exports, sizeof props / sizeof props[0], props) != napi_ok) return NULL;
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
