// The error both addons throw for a failed system call: code from the errno's name (ENOENT, ...),
// errno (negative, as Node's own), syscall, and path when there is one. Included by io.c and
// tree.c, which are built as separate addons. Needs _GNU_SOURCE (strerrorname_np).
#ifndef CASWARM_THROW_ERRNO_H
#define CASWARM_THROW_ERRNO_H
#include <limits.h>
#include <node_api.h>
#include <stdio.h>
#include <string.h>

static napi_value throw_errno (napi_env env, int err, const char *syscall, const char *path) {
  const char *name = strerrorname_np(err);
  char msg[PATH_MAX + 256];
  if (path) snprintf(msg, sizeof msg, "%s: %s, %s '%s'", name ? name : "E?", strerror(err), syscall, path);
  else snprintf(msg, sizeof msg, "%s: %s, %s", name ? name : "E?", strerror(err), syscall);
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

#endif
