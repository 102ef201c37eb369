// Page-cache hints Node has no API for. willNeed() asks the kernel to start reading files
// (posix_fadvise WILLNEED) without waiting for them, so a store on disk is read with many
// requests in flight while the workers verify and write the chunks already in memory
// (casync reads one chunk file at a time). dontNeed() drops a file's clean cached pages; the
// benchmark uses it to measure extraction from a store that is on disk, not in the page cache.
// writeBehind() starts writing a range of an output to disk without waiting (sync_file_range),
// so the fsync before the output is renamed into place has little left to do. writeOut() writes
// an output range, its whole 4 KiB blocks through a second descriptor opened with O_DIRECT.
// lineOffset() tells where in its 64-byte cache line a buffer starts (JavaScript cannot see
// addresses): the kernel's copy from the page cache is up to 6x slower on this project's AMD
// machines when the destination sits 1-31 bytes further into its line than the source.
#define _GNU_SOURCE
#include <node_api.h>
#include "throw-errno.h"
#include <pthread.h>
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
// copied into an aligned buffer and written with O_DIRECT by a thread of the calling thread's own,
// so the caller goes on decompressing and verifying while the device writes (up to DIO_BUFFERS
// writes queued); the partial blocks at either end go through the page cache (fd) at once, so no
// block is ever written both ways. flushOut() waits for the queue and reports the first error.

#define DIO_ALIGN 4096u
#define DIO_BUFFER (2u << 20)
#define DIO_BUFFERS 4
/** below this many whole blocks, the page cache is as quick */
#define DIO_MIN (64u << 10)

struct dio_job { int fd, dfd; uint64_t at; size_t len; unsigned char *buf; };

struct io_state {
  pthread_t thread;
  int started, stopping;
  pthread_mutex_t lock;
  pthread_cond_t work, done;
  unsigned char *free_bufs[DIO_BUFFERS];
  int nfree;
  struct dio_job queue[DIO_BUFFERS];
  int qhead, qlen, busy;
  int err;               /* first write error (errno) not yet reported */
};

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

/** one queued write: with O_DIRECT, or through the page cache where the direct one is refused or short */
static int dio_write (struct dio_job *j) {
  ssize_t k;
  do k = pwrite(j->dfd, j->buf, j->len, (off_t)j->at); while (k < 0 && errno == EINTR);
  if (k < 0 && errno != EINVAL) return errno;
  size_t done = k > 0 ? (size_t)k : 0;
  return done < j->len ? pwrite_all(j->fd, j->buf + done, j->len - done, j->at + done) : 0;
}

static void *dio_run (void *arg) {
  struct io_state *st = arg;
  pthread_mutex_lock(&st->lock);
  for (;;) {
    while (st->qlen == 0 && !st->stopping) pthread_cond_wait(&st->work, &st->lock);
    if (st->qlen == 0 && st->stopping) break;
    struct dio_job j = st->queue[st->qhead];
    st->qhead = (st->qhead + 1) % DIO_BUFFERS;
    st->qlen--;
    st->busy = 1;
    pthread_mutex_unlock(&st->lock);
    int err = dio_write(&j);
    pthread_mutex_lock(&st->lock);
    if (err && !st->err) st->err = err;
    st->free_bufs[st->nfree++] = j.buf;
    st->busy = 0;
    pthread_cond_broadcast(&st->done);
  }
  pthread_mutex_unlock(&st->lock);
  return NULL;
}

static void io_state_free (napi_env env, void *data, void *hint) {
  struct io_state *st = data;
  if (st == NULL) return;
  if (st->started) {
    pthread_mutex_lock(&st->lock);
    st->stopping = 1;
    pthread_cond_signal(&st->work);
    pthread_mutex_unlock(&st->lock);
    pthread_join(st->thread, NULL);
  }
  for (int i = 0; i < st->nfree; i++) free(st->free_bufs[i]);
  pthread_mutex_destroy(&st->lock);
  pthread_cond_destroy(&st->work);
  pthread_cond_destroy(&st->done);
  free(st);
}

/** this thread's (this environment's) writer, started at first use; NULL if that failed */
static struct io_state *io_state (napi_env env) {
  struct io_state *st = NULL;
  if (napi_get_instance_data(env, (void **)&st) != napi_ok) return NULL;
  if (st != NULL) return st->started ? st : NULL;
  st = calloc(1, sizeof *st);
  if (st == NULL) return NULL;
  pthread_mutex_init(&st->lock, NULL);
  pthread_cond_init(&st->work, NULL);
  pthread_cond_init(&st->done, NULL);
  if (napi_set_instance_data(env, st, io_state_free, NULL) != napi_ok) { io_state_free(env, st, NULL); return NULL; }
  for (int i = 0; i < DIO_BUFFERS; i++) {
    unsigned char *b = NULL;
    if (posix_memalign((void **)&b, DIO_ALIGN, DIO_BUFFER) != 0) break;
    st->free_bufs[st->nfree++] = b;
  }
  if (st->nfree == 0 || pthread_create(&st->thread, NULL, dio_run, st) != 0) return NULL;
  st->started = 1;
  return st;
}

/** the first error of a queued write, taken (0 if none); with `wait`, after the queue is empty */
static int take_error (struct io_state *st, int wait) {
  pthread_mutex_lock(&st->lock);
  if (wait) while (st->qlen > 0 || st->busy) pthread_cond_wait(&st->done, &st->lock);
  int err = st->err;
  st->err = 0;
  pthread_mutex_unlock(&st->lock);
  return err;
}

/* writeOut(fd, directFd, bytes, offset): writes bytes at offset. Whole blocks are queued for this
   thread's writer (directFd, O_DIRECT); the rest is written through fd now. directFd < 0: fd only.
   Throws an error of an earlier queued write, if one failed. */
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
  struct io_state *st = dfd >= 0 && b > a && b - a >= DIO_MIN ? io_state(env) : NULL;
  int err = 0;
  if (st == NULL) {
    err = pwrite_all(fd, p, length, start);
  } else {
    err = take_error(st, 0);
    if (!err) err = pwrite_all(fd, p, (size_t)(a - start), start);
    if (!err) err = pwrite_all(fd, p + (b - start), (size_t)(end - b), b);
    for (uint64_t at = a; !err && at < b;) {
      size_t n = b - at < DIO_BUFFER ? (size_t)(b - at) : DIO_BUFFER;
      pthread_mutex_lock(&st->lock);
      while (st->nfree == 0) pthread_cond_wait(&st->done, &st->lock);
      unsigned char *buf = st->free_bufs[--st->nfree];
      pthread_mutex_unlock(&st->lock);
      memcpy(buf, p + (at - start), n);
      pthread_mutex_lock(&st->lock);
      st->queue[(st->qhead + st->qlen) % DIO_BUFFERS] = (struct dio_job){ .fd = fd, .dfd = dfd, .at = at, .len = n, .buf = buf };
      st->qlen++;
      pthread_cond_signal(&st->work);
      pthread_mutex_unlock(&st->lock);
      at += n;
    }
  }
  if (err) { throw_errno(env, err, "write", NULL); return NULL; }
  return NULL;
}

/* flushOut(): waits until this thread's queued writes are done; throws the first error of one */
static napi_value flush_out (napi_env env, napi_callback_info info) {
  struct io_state *st = NULL;
  if (napi_get_instance_data(env, (void **)&st) != napi_ok || st == NULL || !st->started) return NULL;
  int err = take_error(st, 1);
  if (err) throw_errno(env, err, "write", NULL);
  return NULL;
}

/* lineOffset(view): the view's first byte's address modulo 64. */
static napi_value line_offset (napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  napi_typedarray_type type;
  size_t length = 0, byte_offset = 0;
  void *data = NULL;
  napi_value ab, out;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 1 ||
      napi_get_typedarray_info(env, argv[0], &type, &length, &data, &ab, &byte_offset) != napi_ok || type != napi_uint8_array) {
    napi_throw_type_error(env, NULL, "lineOffset(view: Uint8Array)");
    return NULL;
  }
  napi_create_uint32(env, (uint32_t)((uintptr_t)data & 63), &out);
  return out;
}

static napi_value init (napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
    { "writeBehind", NULL, write_behind, NULL, NULL, NULL, napi_default, NULL },
    { "willNeed", NULL, will_need, NULL, NULL, NULL, napi_default, NULL },
    { "dontNeed", NULL, dont_need, NULL, NULL, NULL, napi_default, NULL },
    { "writeOut", NULL, write_out, NULL, NULL, NULL, napi_default, NULL },
    { "flushOut", NULL, flush_out, NULL, NULL, NULL, napi_default, NULL },
    { "lineOffset", NULL, line_offset, NULL, NULL, NULL, napi_default, NULL },
  };
  napi_define_properties(env, exports, sizeof(props) / sizeof(props[0]), props);
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
