// Page-cache hints Node has no API for. willNeed() asks the kernel to start reading files
// (posix_fadvise WILLNEED) without waiting for them, so a store on disk is read with many
// requests in flight while the workers verify and write the chunks already in memory
// (casync reads one chunk file at a time). dontNeed() drops a file's clean cached pages; the
// benchmark uses it to measure extraction from a store that is on disk, not in the page cache.
// writeBehind() starts writing a range of an output to disk without waiting (sync_file_range),
// so the fsync before the output is renamed into place has little left to do.
#define _GNU_SOURCE
#include <node_api.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
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

static napi_value init (napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
    { "writeBehind", NULL, write_behind, NULL, NULL, NULL, napi_default, NULL },
    { "willNeed", NULL, will_need, NULL, NULL, NULL, napi_default, NULL },
    { "dontNeed", NULL, dont_need, NULL, NULL, NULL, napi_default, NULL },
  };
  napi_define_properties(env, exports, sizeof(props) / sizeof(props[0]), props);
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
