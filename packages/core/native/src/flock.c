/*
 * The lock the Codex CLI takes on auth.json.lock, from Node: flock(2) on Linux,
 * LockFileEx on Windows. Two functions, both on an open file descriptor:
 *
 *   lock(fd)   -> true when the exclusive lock is now held, false when another
 *                 open file holds it (never blocks: the caller polls within its bound)
 *   unlock(fd) -> undefined
 *
 * Any other failure throws an Error whose `code` is the errno name (EBADF…) or,
 * on Windows, "WIN32_<number>".
 *
 * Built by scripts/build-native.mjs against node-api-headers; only Node-API
 * version 1 functions are used, so one binary serves every Node version.
 */
#define NAPI_VERSION 1
#include <node_api.h>
#include <stdio.h>
#include <string.h>

#ifdef _WIN32
#define WIN32_LEAN_AND_MEAN
#include <windows.h>
#else
#include <errno.h>
#include <sys/file.h>
#endif

static napi_value throw_code(napi_env env, const char* code, const char* message) {
  napi_throw_error(env, code, message);
  return NULL;
}

static int fd_argument(napi_env env, napi_callback_info info, int32_t* fd) {
  size_t argc = 1;
  napi_value argv[1];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 1) return 0;
  return napi_get_value_int32(env, argv[0], fd) == napi_ok && *fd >= 0;
}

#ifdef _WIN32
/* Node's descriptors are libuv's; libuv (exported by the host executable) maps one to its HANDLE. */
typedef HANDLE(__cdecl* uv_get_osfhandle_t)(int);

static HANDLE handle_of(int fd) {
  static uv_get_osfhandle_t get = NULL;
  if (get == NULL) get = (uv_get_osfhandle_t)(void*)GetProcAddress(GetModuleHandleW(NULL), "uv_get_osfhandle");
  return get == NULL ? INVALID_HANDLE_VALUE : get(fd);
}

static napi_value throw_win32(napi_env env, const char* what, DWORD error) {
  char code[32], message[64];
  snprintf(code, sizeof code, "WIN32_%lu", (unsigned long)error);
  snprintf(message, sizeof message, "%s failed (Windows error %lu)", what, (unsigned long)error);
  return throw_code(env, code, message);
}
#endif

static napi_value lock(napi_env env, napi_callback_info info) {
  int32_t fd;
  napi_value result;
  if (!fd_argument(env, info, &fd)) return throw_code(env, "EINVAL", "lock(fd): fd must be a non-negative integer");
#ifdef _WIN32
  HANDLE handle = handle_of(fd);
  if (handle == INVALID_HANDLE_VALUE) return throw_code(env, "EBADF", "lock(fd): no handle for this descriptor");
  OVERLAPPED at;
  memset(&at, 0, sizeof at);
  /* The whole file, as Rust's File::try_lock (Codex) locks it. */
  if (!LockFileEx(handle, LOCKFILE_EXCLUSIVE_LOCK | LOCKFILE_FAIL_IMMEDIATELY, 0, MAXDWORD, MAXDWORD, &at)) {
    DWORD error = GetLastError();
    if (error == ERROR_LOCK_VIOLATION || error == ERROR_IO_PENDING) {
      napi_get_boolean(env, false, &result);
      return result;
    }
    return throw_win32(env, "LockFileEx", error);
  }
#else
  int rc;
  do rc = flock(fd, LOCK_EX | LOCK_NB);
  while (rc != 0 && errno == EINTR);
  if (rc != 0) {
    if (errno == EWOULDBLOCK || errno == EAGAIN) {
      napi_get_boolean(env, false, &result);
      return result;
    }
    char message[96];
    int error = errno;
    snprintf(message, sizeof message, "flock: %s", strerror(error));
    return throw_code(env, error == EBADF ? "EBADF" : error == ENOLCK ? "ENOLCK" : error == EINVAL ? "EINVAL" : "EIO", message);
  }
#endif
  napi_get_boolean(env, true, &result);
  return result;
}

static napi_value unlock(napi_env env, napi_callback_info info) {
  int32_t fd;
  napi_value result;
  if (!fd_argument(env, info, &fd)) return throw_code(env, "EINVAL", "unlock(fd): fd must be a non-negative integer");
#ifdef _WIN32
  HANDLE handle = handle_of(fd);
  if (handle == INVALID_HANDLE_VALUE) return throw_code(env, "EBADF", "unlock(fd): no handle for this descriptor");
  OVERLAPPED at;
  memset(&at, 0, sizeof at);
  if (!UnlockFileEx(handle, 0, MAXDWORD, MAXDWORD, &at)) return throw_win32(env, "UnlockFileEx", GetLastError());
#else
  int rc;
  do rc = flock(fd, LOCK_UN);
  while (rc != 0 && errno == EINTR);
  if (rc != 0) return throw_code(env, errno == EBADF ? "EBADF" : "EIO", "flock(LOCK_UN) failed");
#endif
  napi_get_undefined(env, &result);
  return result;
}

static int define(napi_env env, napi_value exports, const char* name, napi_callback callback) {
  napi_value fn;
  return napi_create_function(env, name, NAPI_AUTO_LENGTH, callback, NULL, &fn) == napi_ok &&
    napi_set_named_property(env, exports, name, fn) == napi_ok;
}

NAPI_MODULE_INIT() {
  if (!define(env, exports, "lock", lock) || !define(env, exports, "unlock", unlock)) return NULL;
  return exports;
}
