// Page-cache hints Node has no API for. willNeed() asks the kernel to start reading files
// (posix_fadvise WILLNEED) without waiting for them, so a store on disk is read with many
// requests in flight while the workers verify and write the chunks already in memory
// (casync reads one chunk file at a time). dontNeed() drops a file's clean cached pages; the
// benchmark uses it to measure extraction from a store that is on disk, not in the page cache.
// writeBehind() starts writing a range of an output to disk without waiting (sync_file_range),
// so the fsync before the output is renamed into place has little left to do. writeOut() writes
// an output range, its whole 4 KiB blocks through a second descriptor opened with O_DIRECT.
#define _GNU_SOURCE
#include <node_api.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAX_PATH 4096

static int path_arg (napi_env env, napi_value v, char *buf) {
  size_t len = 0;
  if (napi_get_value_string_utf8(env, v, buf, MAX_PATH, &len) != napi_ok) return 0;
  return len > 0 && len < MAX_PATH - 1;
}

/* advise(paths, advice): opens each file, applies the advice to all of it, closes it.
   Files that cannot be opened are skipped. Returns how many were advised. */
static napi_value advise (napi_env env, napi_callback_info info, int advice) {
  size_t argc = 1;
  napi_value argv[1];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  bool is_array = false;
  if (argc < 1 || napi_is_array(env, argv[0], &is_array) != napi_ok || !is_array) {
    napi_throw_type_error(env, NULL, "expected an array of paths");
    return NULL;
  }
  uint32_t n = 0;
  napi_get_array_length(env, argv[0], &n);
  char path[MAX_PATH];
  uint32_t done = 0;
  for (uint32_t i = 0; i < n; i++) {
    napi_value item;
    if (napi_get_element(env, argv[0], i, &item) != napi_ok || !path_arg(env, item, path)) continue;
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
    if (fd < 0) continue;
    if (posix_fadvise(fd, 0, 0, advice) == 0) done++;
    close(fd);
  }
  napi_value result;
  napi_create_uint32(env, done, &result);
  return result;
}

static napi_value will_need (napi_env env, napi_callback_info info) { return advise(env, info, POSIX_FADV_WILLNEED); }
static napi_value dont_need (napi_env env, napi_callback_info info) { return advise(env, info, POSIX_FADV_DONTNEED); }

/* writeBehind(fd, offset, length): starts writeback of the range's dirty pages; returns 0 or errno
   (errors are not fatal: the final fsync reports any that matter). */
static napi_value write_behind (napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  int32_t fd = -1;
  int64_t offset = 0, length = 0;
  if (argc < 3 || napi_get_value_int32(env, argv[0], &fd) != napi_ok || napi_get_value_int64(env, argv[1], &offset) != napi_ok ||
      napi_get_value_int64(env, argv[2], &length) != napi_ok || fd < 0 || offset < 0 || length < 0) {
    napi_throw_type_error(env, NULL, "writeBehind(fd, offset, length)");
    return NULL;
  }
  int rc = sync_file_range(fd, offset, length, SYNC_FILE_RANGE_WRITE) == 0 ? 0 : errno;
  napi_value result;
  napi_create_int32(env, rc, &result);
  return result;
}

// ---- writeOut: large output writes around the page cache ----
// On these VMs a buffered write of fresh data runs at 280-430 MB/s (the kernel takes new page-cache
// pages, which the host has to back), an O_DIRECT write at 1.3-2.4 GB/s; and the two workers'
// buffered writes to one file take turns on its lock. The bytes of whole aligned blocks are
// copied into an aligned buffer of this thread's and written with O_DIRECT; the partial blocks at
// either end go through the page cache (fd), so no block is ever written both ways.

#define DIO_ALIGN 4096u
#define DIO_BOUNCE (2u << 20)
/** below this many whole blocks, the page cache is as quick */
#define DIO_MIN (64u << 10)

struct io_state { unsigned char *bounce; };

static void io_state_free (napi_env env, void *data, void *hint) {
  struct io_state *st = data;
  if (st) free(st->bounce);
  free(st);
}

/** this thread's (this environment's) aligned buffer, allocated at first use; NULL if out of memory */
static unsigned char *bounce_buffer (napi_env env) {
  struct io_state *st = NULL;
  if (napi_get_instance_data(env, (void **)&st) != napi_ok) return NULL;
  if (st == NULL) {
    st = calloc(1, sizeof *st);
    if (st == NULL) return NULL;
    if (napi_set_instance_data(env, st, io_state_free, NULL) != napi_ok) { free(st); return NULL; }
  }
  if (st->bounce == NULL && posix_memalign((void **)&st->bounce, DIO_ALIGN, DIO_BOUNCE) != 0) st->bounce = NULL;
  return st->bounce;
}

/** pwrite until done; 0 or errno */
static int pwrite_all (int fd, const unsigned char *p, size_t n, uint64_t at) {
  while (n > 0) {
    ssize_t k = pwrite(fd, p, n, (off_t)at);
    if (k < 0) { if (errno == EINTR) continue; return errno; }
    if (k == 0) return EIO;
    p += k; n -= (size_t)k; at += (uint64_t)k;
  }
  return 0;
}

static void throw_errno (napi_env env, int err, const char *syscall) {
  napi_value code, msg, error, sc;
  const char *name = err == ENOSPC ? "ENOSPC" : err == EIO ? "EIO" : err == EBADF ? "EBADF" : err == EFBIG ? "EFBIG" : err == EDQUOT ? "EDQUOT" : err == EROFS ? "EROFS" : err == EINVAL ? "EINVAL" : "EIO";
  char text[160];
  snprintf(text, sizeof text, "%s: %s, %s", name, strerror(err), syscall);
  napi_create_string_utf8(env, name, NAPI_AUTO_LENGTH, &code);
  napi_create_string_utf8(env, text, NAPI_AUTO_LENGTH, &msg);
  napi_create_error(env, code, msg, &error);
  napi_create_string_utf8(env, syscall, NAPI_AUTO_LENGTH, &sc);
  napi_set_named_property(env, error, "syscall", sc);
  napi_value num;
  napi_create_int32(env, -err, &num);
  napi_set_named_property(env, error, "errno", num);
  napi_throw(env, error);
}

/* writeOut(fd, directFd, bytes, offset) → bytes written with O_DIRECT (0: all through fd; -1: the
   direct descriptor refused the write (EINVAL: a file system without O_DIRECT), so all went
   through fd and directFd is not worth trying again). directFd < 0: fd only. */
static napi_value write_out (napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  int32_t fd = -1, dfd = -1;
  int64_t offset = -1;
  napi_typedarray_type type;
  size_t length = 0, byte_offset = 0;
  void *data = NULL;
  napi_value ab;
  bool is_ta = false;
  if (argc < 4 || napi_get_value_int32(env, argv[0], &fd) != napi_ok || napi_get_value_int32(env, argv[1], &dfd) != napi_ok ||
      napi_is_typedarray(env, argv[2], &is_ta) != napi_ok || !is_ta ||
      napi_get_typedarray_info(env, argv[2], &type, &length, &data, &ab, &byte_offset) != napi_ok || type != napi_uint8_array ||
      napi_get_value_int64(env, argv[3], &offset) != napi_ok || fd < 0 || offset < 0) {
    napi_throw_type_error(env, NULL, "writeOut(fd, directFd, bytes: Uint8Array, offset)");
    return NULL;
  }
  const unsigned char *p = data;
  uint64_t start = (uint64_t)offset, end = start + length;
  uint64_t a = (start + DIO_ALIGN - 1) / DIO_ALIGN * DIO_ALIGN, b = end / DIO_ALIGN * DIO_ALIGN;
  unsigned char *bounce = dfd >= 0 && b > a && b - a >= DIO_MIN ? bounce_buffer(env) : NULL;
  int64_t direct = 0;
  int err = 0;
  if (bounce == NULL) {
    err = pwrite_all(fd, p, length, start);
  } else {
    err = pwrite_all(fd, p, (size_t)(a - start), start);
    uint64_t at = a;
    while (!err && at < b) {
      size_t n = b - at < DIO_BOUNCE ? (size_t)(b - at) : DIO_BOUNCE;
      memcpy(bounce, p + (at - start), n);
      ssize_t k;
      do k = pwrite(dfd, bounce, n, (off_t)at); while (k < 0 && errno == EINTR);
      if (k < 0 && errno == EINVAL && direct == 0) { direct = -1; break; }
      if (k < 0) { err = errno; break; }
      // a short direct write (the device is full): the rest goes through the page cache, which
      // reports the error if there is one
      if ((size_t)k < n) { err = pwrite_all(fd, p + (at - start) + k, (size_t)(b - at) - (size_t)k, at + (uint64_t)k); direct += k; at = b; break; }
      direct += k;
      at += n;
    }
    if (!err && at < b) err = pwrite_all(fd, p + (at - start), (size_t)(b - at), at);
    if (!err) err = pwrite_all(fd, p + (b - start), (size_t)(end - b), b);
  }
  if (err) { throw_errno(env, err, "write"); return NULL; }
  napi_value result;
  napi_create_int64(env, direct, &result);
  return result;
}

static napi_value init (napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
    { "writeBehind", NULL, write_behind, NULL, NULL, NULL, napi_default, NULL },
    { "willNeed", NULL, will_need, NULL, NULL, NULL, napi_default, NULL },
    { "dontNeed", NULL, dont_need, NULL, NULL, NULL, napi_default, NULL },
    { "writeOut", NULL, write_out, NULL, NULL, NULL, napi_default, NULL },
  };
  napi_define_properties(env, exports, sizeof(props) / sizeof(props[0]), props);
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
