// caswarm_tree: the few Linux calls Node has no API for, used by node/tree/ to read and write
// directory trees like casync does: extended attributes (which also carry POSIX ACLs and file
// capabilities), the chattr/FAT/project-id ioctls, statfs, mknod, utimensat with nanoseconds on
// symlinks, and the passwd/group databases (NSS). Plain N-API (C), no dependencies.
//
// Paths are Buffers (raw bytes, so any file name works) or strings. Errors are thrown as Error
// objects with `code` (e.g. 'ENOENT'), `errno`, `syscall` and `path`, like Node's fs errors.
#define _GNU_SOURCE
#include <node_api.h>

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
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

static napi_value throw_errno (napi_env env, int err, const char *syscall, const char *path) {
  const char *name = strerrorname_np(err);
  char msg[PATH_MAX + 256];
  snprintf(msg, sizeof msg, "%s: %s, %s '%s'", name ? name : "E?", strerror(err), syscall, path ? path : "");
  napi_value code, message, error, num, sc, p;
  napi_create_string_utf8(env, name ? name : "EUNKNOWN", NAPI_AUTO_LENGTH, &code);
  napi_create_string_utf8(env, msg, NAPI_AUTO_LENGTH, &message);
  napi_create_error(env, code, message, &error);
  napi_create_int32(env, -err, &num);
  napi_set_named_property(env, error, "errno", num);
  napi_create_string_utf8(env, syscall, NAPI_AUTO_LENGTH, &sc);
  napi_set_named_property(env, error, "syscall", sc);
  if (path) {
    napi_create_string_utf8(env, path, NAPI_AUTO_LENGTH, &p);
    napi_set_named_property(env, error, "path", p);
  }
  napi_throw(env, error);
  return NULL;
}

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
  };
  if (napi_define_properties(env, exports, sizeof props / sizeof props[0], props) != napi_ok) return NULL;
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
