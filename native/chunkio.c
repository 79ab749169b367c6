// chunkio: a written chunk's hashing and its file, on libuv's threadpool, in place.
//
// Through the JavaScript path every whole chunk a sequential writer fills was copied
// twice (once to the SHA-256 worker, once to the MD5 worker: a worker only gets what is
// moved or copied to it), and its file took four promise round trips (open, write,
// close, rename). On this 2-core VM that main-thread work and the copies were what a
// 1 GiB `dd` waited on. Here a pool thread reads the caller's own buffer: the caller
// leaves it untouched until the answer (the write session keeps a stored chunk's buffer
// until its store is over), and each job holds a reference so the collector keeps it.
//
// SHA-256 comes from the OpenSSL that Node itself exports to addons (the code
// node:crypto runs), CRC-32 from native/crc32.h, and MD5 from native/md5lanes.c, which
// hashes several streams (a writer's parts) side by side.
#define _GNU_SOURCE // O_DIRECT
#define NAPI_VERSION 8 // type tags
#include <node_api.h>
#include <openssl/evp.h>
#include <zlib.h>
#include "crc32.h"
#include "md5lanes.h"
#include <uv.h>
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define CHECK(call) do { if ((call) != napi_ok) { napi_throw_error(env, NULL, "chunkio: " #call " failed"); return NULL; } } while (0)

/**
 * An MD5 fed in order: JavaScript starts a stream's next update only once the last one
 * answered; `busy` refuses an update or a digest while one runs all the same.
 */
typedef struct { md5s_t s; int busy; } md5_t;

/** Marks our MD5 streams among externals (another addon's external is refused, never read as one). */
static const napi_type_tag MD5_TAG = { 0x6275636b6574f5a1ULL, 0x6d6435737472656dULL };

enum { JOB_SHA, JOB_MD5, JOB_ZEROS, JOB_WRITE, JOB_LANES };

typedef struct {
  napi_async_work work;
  napi_deferred deferred;
  napi_ref buf_ref;   /* the data: kept alive while a pool thread reads it */
  napi_ref md5_ref;   /* the MD5 stream's external: kept alive while it is fed */
  int kind;
  const unsigned char *data;
  size_t len;
  md5_t *md5;
  uint64_t zeros;
  int want_crc;
  unsigned char hash[32];
  unsigned long crc;
  char *path;
  char *dest;
  int direct;
  int used_direct;
  int err;
  const char *syscall;
  /* JOB_LANES: each stream (kept alive by its reference) and its pieces (likewise) */
  size_t nlanes;
  md5_lane_t *lanes;
  md5_t **lane_md5;
  napi_ref *lane_refs;
  size_t npieces;
  md5_piece_t *pieces;
  napi_ref *piece_refs;
} job_t;

static const unsigned char ZEROS[1 << 20];

/** Writes len bytes at offset 0 of a new file; answers errno (0: written). */
static int write_all (int fd, const unsigned char *data, size_t len) {
  size_t done = 0;
  while (done < len) {
    ssize_t n = pwrite(fd, data + done, len - done, (off_t) done);
    if (n < 0) { if (errno == EINTR) continue; return errno; }
    if (n == 0) return EIO;
    done += (size_t) n;
  }
  return 0;
}

/**
 * The chunk file: written to `path` (with O_DIRECT when asked and the filesystem takes
 * it), closed, then renamed to `dest` when there is one. On failure nothing is left at
 * `path`.
 */
static void run_write (job_t *j) {
  int flags = O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC;
  int fd = -1;
  j->used_direct = 0;
  if (j->direct) {
    fd = open(j->path, flags | O_DIRECT, 0600);
    if (fd >= 0) {
      int e = write_all(fd, j->data, j->len);
      if (e == 0) { j->used_direct = 1; goto written; }
      close(fd);
      fd = -1;
      // EINVAL: this filesystem (or this memory) takes no O_DIRECT; written again below.
      if (e != EINVAL) { unlink(j->path); j->err = e; j->syscall = "write"; return; }
    } else if (errno != EINVAL) {
      j->err = errno; j->syscall = "open"; return;
    }
  }
  fd = open(j->path, flags, 0600);
  if (fd < 0) { j->err = errno; j->syscall = "open"; if (j->direct) unlink(j->path); return; }
  {
    int e = write_all(fd, j->data, j->len);
    if (e != 0) { close(fd); unlink(j->path); j->err = e; j->syscall = "write"; return; }
  }
written:
  if (close(fd) != 0 && errno != EINTR) { j->err = errno; j->syscall = "close"; unlink(j->path); return; }
  if (j->dest != NULL && rename(j->path, j->dest) != 0) { j->err = errno; j->syscall = "rename"; unlink(j->path); return; }
}

static void execute (napi_env env, void *data) {
  (void) env;
  job_t *j = (job_t *) data;
  switch (j->kind) {
    case JOB_SHA: {
      unsigned int n = 0;
      if (EVP_Digest(j->data, j->len, j->hash, &n, EVP_sha256(), NULL) != 1 || n != 32) { j->err = EIO; j->syscall = "sha256"; return; }
      if (j->want_crc) j->crc = bucketfs_crc32(0, j->data, j->len);
      return;
    }
    case JOB_MD5:
      md5s_update(&j->md5->s, j->data, j->len);
      return;
    case JOB_ZEROS:
      for (uint64_t left = j->zeros; left > 0;) {
        size_t n = left >= sizeof ZEROS ? sizeof ZEROS : (size_t) left;
        md5s_update(&j->md5->s, ZEROS, n);
        left -= n;
      }
      return;
    case JOB_LANES:
      md5_lanes(j->lanes, j->nlanes);
      return;
    case JOB_WRITE:
      run_write(j);
      return;
  }
}

/** An Error like node:fs's: message, code (ENOSPC…), errno (negative), syscall, path. */
static napi_value system_error (napi_env env, job_t *j) {
  char msg[512];
  const char *name = uv_err_name(-j->err);
  snprintf(msg, sizeof msg, "%s: %s, %s%s%s", name, strerror(j->err), j->syscall, j->path != NULL ? " " : "", j->path != NULL ? j->path : "");
  napi_value m, code, out, v;
  napi_create_string_utf8(env, msg, NAPI_AUTO_LENGTH, &m);
  napi_create_string_utf8(env, name, NAPI_AUTO_LENGTH, &code);
  napi_create_error(env, code, m, &out);
  napi_create_int32(env, -j->err, &v);
  napi_set_named_property(env, out, "errno", v);
  napi_create_string_utf8(env, j->syscall, NAPI_AUTO_LENGTH, &v);
  napi_set_named_property(env, out, "syscall", v);
  if (j->path != NULL) {
    napi_create_string_utf8(env, j->path, NAPI_AUTO_LENGTH, &v);
    napi_set_named_property(env, out, "path", v);
  }
  return out;
}

/** Frees j and what it holds: its references, and its streams are free for the next job. */
static void drop_job (napi_env env, job_t *j) {
  if (j->md5 != NULL) j->md5->busy = 0;
  if (j->buf_ref != NULL) napi_delete_reference(env, j->buf_ref);
  if (j->md5_ref != NULL) napi_delete_reference(env, j->md5_ref);
  for (size_t i = 0; i < j->nlanes; i++) {
    if (j->lane_md5 != NULL && j->lane_md5[i] != NULL) j->lane_md5[i]->busy = 0;
    if (j->lane_refs != NULL && j->lane_refs[i] != NULL) napi_delete_reference(env, j->lane_refs[i]);
  }
  for (size_t i = 0; i < j->npieces; i++) if (j->piece_refs != NULL && j->piece_refs[i] != NULL) napi_delete_reference(env, j->piece_refs[i]);
  free(j->lanes);
  free(j->lane_md5);
  free(j->lane_refs);
  free(j->pieces);
  free(j->piece_refs);
  free(j->path);
  free(j->dest);
  free(j);
}

static void complete (napi_env env, napi_status status, void *data) {
  job_t *j = (job_t *) data;
  napi_value answer = NULL;
  if (status != napi_ok && j->err == 0) { j->err = EIO; j->syscall = "job"; }
  if (j->err != 0) {
    napi_reject_deferred(env, j->deferred, system_error(env, j));
  } else {
    switch (j->kind) {
      case JOB_SHA: {
        napi_value hash, crc;
        void *out = NULL;
        napi_create_buffer_copy(env, 32, j->hash, &out, &hash);
        if (j->want_crc) napi_create_uint32(env, (uint32_t) j->crc, &crc);
        else napi_get_null(env, &crc);
        napi_create_array_with_length(env, 2, &answer);
        napi_set_element(env, answer, 0, hash);
        napi_set_element(env, answer, 1, crc);
        break;
      }
      case JOB_WRITE:
        napi_get_boolean(env, j->used_direct, &answer);
        break;
      default:
        napi_get_undefined(env, &answer);
    }
    napi_resolve_deferred(env, j->deferred, answer);
  }
  napi_delete_async_work(env, j->work);
  drop_job(env, j);
}

/** Queues j; answers its promise. A job that cannot be queued is freed (and throws). */
static napi_value queue (napi_env env, job_t *j) {
  napi_value promise, name;
  if (napi_create_string_utf8(env, "bucketfs:chunkio", NAPI_AUTO_LENGTH, &name) != napi_ok ||
      napi_create_async_work(env, NULL, name, execute, complete, j, &j->work) != napi_ok) {
    drop_job(env, j);
    napi_throw_error(env, NULL, "chunkio: cannot make the job");
    return NULL;
  }
  if (napi_create_promise(env, &j->deferred, &promise) != napi_ok || napi_queue_async_work(env, j->work) != napi_ok) {
    // (A promise made but never settled is only garbage.)
    napi_delete_async_work(env, j->work);
    drop_job(env, j);
    napi_throw_error(env, NULL, "chunkio: cannot queue the job");
    return NULL;
  }
  if (j->md5 != NULL) j->md5->busy = 1;
  for (size_t i = 0; i < j->nlanes; i++) j->lane_md5[i]->busy = 1;
  return promise;
}

/** The bytes of a Buffer/Uint8Array argument, with a reference that keeps it alive. */
static int take_bytes (napi_env env, napi_value v, job_t *j) {
  bool is = false;
  void *data = NULL;
  size_t len = 0;
  if (napi_is_typedarray(env, v, &is) != napi_ok || !is) return 0;
  napi_typedarray_type type;
  napi_value ab;
  size_t off = 0;
  if (napi_get_typedarray_info(env, v, &type, &len, &data, &ab, &off) != napi_ok || type != napi_uint8_array) return 0;
  if (napi_create_reference(env, v, 1, &j->buf_ref) != napi_ok) return 0;
  j->data = (const unsigned char *) data;
  j->len = len;
  return 1;
}

static char *take_string (napi_env env, napi_value v) {
  size_t n = 0;
  if (napi_get_value_string_utf8(env, v, NULL, 0, &n) != napi_ok) return NULL;
  char *s = malloc(n + 1);
  if (s == NULL) return NULL;
  if (napi_get_value_string_utf8(env, v, s, n + 1, &n) != napi_ok) { free(s); return NULL; }
  return s;
}

static job_t *new_job (int kind) {
  job_t *j = calloc(1, sizeof *j);
  if (j != NULL) j->kind = kind;
  return j;
}

#define ARGS(n) size_t argc = n; napi_value argv[n]; CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL))

/** sha256Crc(data, withCrc): Promise<[hash: Buffer, crc: number | null]>. */
static napi_value sha256_crc (napi_env env, napi_callback_info info) {
  ARGS(2);
  job_t *j = new_job(JOB_SHA);
  if (j == NULL) { napi_throw_error(env, "ENOMEM", "chunkio: out of memory"); return NULL; }
  bool crc = false;
  if (argc < 2 || !take_bytes(env, argv[0], j) || napi_get_value_bool(env, argv[1], &crc) != napi_ok) {
    drop_job(env, j);
    napi_throw_type_error(env, NULL, "sha256Crc(data: Uint8Array, withCrc: boolean)");
    return NULL;
  }
  j->want_crc = crc;
  return queue(env, j);
}

static void md5_free (napi_env env, void *data, void *hint) {
  (void) env; (void) hint;
  free(data);
}

/** md5New(): an MD5 stream (freed with its object). */
static napi_value md5_new (napi_env env, napi_callback_info info) {
  (void) info;
  md5_t *m = calloc(1, sizeof *m);
  if (m == NULL) { napi_throw_error(env, "ENOMEM", "chunkio: out of memory"); return NULL; }
  md5s_init(&m->s);
  napi_value out;
  if (napi_create_external(env, m, md5_free, NULL, &out) != napi_ok) { md5_free(env, m, NULL); napi_throw_error(env, NULL, "chunkio: no external"); return NULL; }
  CHECK(napi_type_tag_object(env, out, &MD5_TAG));
  return out;
}

/** The MD5 stream v is, or NULL (not one of ours, or an update of it runs). */
static md5_t *md5_of (napi_env env, napi_value v) {
  napi_valuetype t;
  bool ours = false;
  void *m = NULL;
  if (napi_typeof(env, v, &t) != napi_ok || t != napi_external || napi_check_object_type_tag(env, v, &MD5_TAG, &ours) != napi_ok || !ours ||
      napi_get_value_external(env, v, &m) != napi_ok || ((md5_t *) m)->busy) return NULL;
  return (md5_t *) m;
}

/** md5Update(stream, data): Promise<void>. One update of a stream at a time (the caller orders them). */
static napi_value md5_update (napi_env env, napi_callback_info info) {
  ARGS(2);
  job_t *j = new_job(JOB_MD5);
  if (j == NULL) { napi_throw_error(env, "ENOMEM", "chunkio: out of memory"); return NULL; }
  if (argc < 2 || (j->md5 = md5_of(env, argv[0])) == NULL || !take_bytes(env, argv[1], j) || napi_create_reference(env, argv[0], 1, &j->md5_ref) != napi_ok) {
    drop_job(env, j);
    napi_throw_type_error(env, NULL, "md5Update(stream, data: Uint8Array)");
    return NULL;
  }
  return queue(env, j);
}

/** md5Zeros(stream, len): Promise<void>, len zero bytes fed. */
static napi_value md5_zeros (napi_env env, napi_callback_info info) {
  ARGS(2);
  job_t *j = new_job(JOB_ZEROS);
  if (j == NULL) { napi_throw_error(env, "ENOMEM", "chunkio: out of memory"); return NULL; }
  double len = -1;
  if (argc < 2 || (j->md5 = md5_of(env, argv[0])) == NULL || napi_get_value_double(env, argv[1], &len) != napi_ok ||
      !(len >= 0 && len <= 9007199254740991.0 && floor(len) == len) || napi_create_reference(env, argv[0], 1, &j->md5_ref) != napi_ok) {
    drop_job(env, j);
    napi_throw_type_error(env, NULL, "md5Zeros(stream, len: a whole number of bytes)");
    return NULL;
  }
  j->zeros = (uint64_t) len;
  return queue(env, j);
}

/** md5Digest(stream): the hex MD5 of what was fed so far (the stream goes on). Not while an update runs. */
static napi_value md5_digest (napi_env env, napi_callback_info info) {
  ARGS(1);
  md5_t *m = argc < 1 ? NULL : md5_of(env, argv[0]);
  if (m == NULL) { napi_throw_type_error(env, NULL, "md5Digest(stream)"); return NULL; }
  unsigned char md[16];
  md5s_digest(&m->s, md);
  char hex[33];
  for (int i = 0; i < 16; i++) snprintf(hex + 2 * i, 3, "%02x", md[i]);
  napi_value out;
  CHECK(napi_create_string_utf8(env, hex, 32, &out));
  return out;
}

/** Whether v is an array; its length in *n. */
static int array_of (napi_env env, napi_value v, uint32_t *n) {
  bool is = false;
  return napi_is_array(env, v, &is) == napi_ok && is && napi_get_array_length(env, v, n) == napi_ok;
}

/** Fills j's lanes from md5Lanes's arguments; 0 when they are not what it takes. */
static int take_lanes (napi_env env, napi_value streams, napi_value lists, job_t *j) {
  uint32_t ns = 0, nl = 0;
  if (!array_of(env, streams, &ns) || !array_of(env, lists, &nl) || ns == 0 || ns != nl) return 0;
  size_t total = 0;
  for (uint32_t i = 0; i < nl; i++) {
    napi_value list;
    uint32_t n = 0;
    if (napi_get_element(env, lists, i, &list) != napi_ok || !array_of(env, list, &n)) return 0;
    total += n;
  }
  j->lanes = calloc(ns, sizeof *j->lanes);
  j->lane_md5 = calloc(ns, sizeof *j->lane_md5);
  j->lane_refs = calloc(ns, sizeof *j->lane_refs);
  j->pieces = calloc(total > 0 ? total : 1, sizeof *j->pieces);
  j->piece_refs = calloc(total > 0 ? total : 1, sizeof *j->piece_refs);
  if (j->lanes == NULL || j->lane_md5 == NULL || j->lane_refs == NULL || j->pieces == NULL || j->piece_refs == NULL) return 0;
  for (uint32_t i = 0; i < ns; i++) {
    napi_value s, list;
    uint32_t n = 0;
    j->nlanes = i + 1; // what drop_job undoes
    // md5_of refuses a stream already taken (busy): one stream twice in a call too.
    if (napi_get_element(env, streams, i, &s) != napi_ok || (j->lane_md5[i] = md5_of(env, s)) == NULL) { j->lane_md5[i] = NULL; return 0; }
    j->lane_md5[i]->busy = 1;
    if (napi_create_reference(env, s, 1, &j->lane_refs[i]) != napi_ok) return 0;
    // (A list that grew since it was counted, through a getter, is refused.)
    if (napi_get_element(env, lists, i, &list) != napi_ok || !array_of(env, list, &n) || n > total - j->npieces) return 0;
    j->lanes[i] = (md5_lane_t) { &j->lane_md5[i]->s, j->pieces + j->npieces, n };
    for (uint32_t k = 0; k < n; k++) {
      napi_value v;
      bool is = false;
      napi_typedarray_type type;
      napi_value ab;
      size_t len = 0, off = 0;
      void *data = NULL;
      if (napi_get_element(env, list, k, &v) != napi_ok || napi_is_typedarray(env, v, &is) != napi_ok || !is ||
          napi_get_typedarray_info(env, v, &type, &len, &data, &ab, &off) != napi_ok || type != napi_uint8_array ||
          napi_create_reference(env, v, 1, &j->piece_refs[j->npieces]) != napi_ok) return 0;
      j->pieces[j->npieces++] = (md5_piece_t) { (const uint8_t *) data, len };
    }
  }
  return 1;
}

/**
 * md5Lanes(streams, pieces): Promise<void>: streams[i] fed pieces[i] (Uint8Arrays, in
 * order), the streams hashed side by side. The pieces stay untouched until the answer;
 * a stream may be in one job at a time.
 */
static napi_value md5_lanes_js (napi_env env, napi_callback_info info) {
  ARGS(2);
  job_t *j = new_job(JOB_LANES);
  if (j == NULL) { napi_throw_error(env, "ENOMEM", "chunkio: out of memory"); return NULL; }
  if (argc < 2 || !take_lanes(env, argv[0], argv[1], j)) {
    drop_job(env, j);
    napi_throw_type_error(env, NULL, "md5Lanes(streams: MD5 stream[], pieces: Uint8Array[][]), each stream once and not being fed");
    return NULL;
  }
  return queue(env, j);
}

static const char *const KERNELS[] = { "scalar", "avx2", "avx512" };

/** md5Kernel(name?): the MD5 kernel md5Lanes uses, after choosing `name` if this CPU runs it. */
static napi_value md5_kernel (napi_env env, napi_callback_info info) {
  ARGS(1);
  int want = -1;
  napi_valuetype t = napi_undefined;
  if (argc >= 1) napi_typeof(env, argv[0], &t);
  if (t == napi_string) {
    char name[16];
    size_t n = 0;
    CHECK(napi_get_value_string_utf8(env, argv[0], name, sizeof name, &n));
    for (int k = 0; k < 3; k++) if (strcmp(name, KERNELS[k]) == 0) want = k;
    if (want < 0) { napi_throw_type_error(env, NULL, "md5Kernel(name?: 'scalar' | 'avx2' | 'avx512')"); return NULL; }
  } else if (t != napi_undefined) {
    napi_throw_type_error(env, NULL, "md5Kernel(name?: 'scalar' | 'avx2' | 'avx512')");
    return NULL;
  }
  napi_value out;
  CHECK(napi_create_string_utf8(env, KERNELS[md5_use_kernel(want)], NAPI_AUTO_LENGTH, &out));
  return out;
}

/**
 * writeFile(path, data, direct, dest): Promise<boolean>: data written as the new file
 * path (O_DIRECT when `direct` and the filesystem takes it), closed and, when dest is a
 * string, renamed to dest. Answers whether O_DIRECT was used; rejects like node:fs
 * (code, errno, syscall), with nothing left at path.
 */
static napi_value write_file (napi_env env, napi_callback_info info) {
  ARGS(4);
  job_t *j = new_job(JOB_WRITE);
  if (j == NULL) { napi_throw_error(env, "ENOMEM", "chunkio: out of memory"); return NULL; }
  bool direct = false;
  napi_valuetype dt = napi_undefined;
  if (argc >= 4) napi_typeof(env, argv[3], &dt);
  if (argc < 4 || (j->path = take_string(env, argv[0])) == NULL || !take_bytes(env, argv[1], j) || napi_get_value_bool(env, argv[2], &direct) != napi_ok ||
      (dt == napi_string && (j->dest = take_string(env, argv[3])) == NULL) || (dt != napi_string && dt != napi_null && dt != napi_undefined)) {
    drop_job(env, j);
    napi_throw_type_error(env, NULL, "writeFile(path: string, data: Uint8Array, direct: boolean, dest: string | null)");
    return NULL;
  }
  j->direct = direct;
  return queue(env, j);
}

static napi_value init (napi_env env, napi_value exports) {
  md5_use_kernel(-1); // chosen here, on the main thread: jobs only read it

  napi_property_descriptor props[] = {
    { "sha256Crc", NULL, sha256_crc, NULL, NULL, NULL, napi_default, NULL },
    { "md5New", NULL, md5_new, NULL, NULL, NULL, napi_default, NULL },
    { "md5Update", NULL, md5_update, NULL, NULL, NULL, napi_default, NULL },
    { "md5Zeros", NULL, md5_zeros, NULL, NULL, NULL, napi_default, NULL },
    { "md5Digest", NULL, md5_digest, NULL, NULL, NULL, napi_default, NULL },
    { "md5Lanes", NULL, md5_lanes_js, NULL, NULL, NULL, napi_default, NULL },
    { "md5Kernel", NULL, md5_kernel, NULL, NULL, NULL, napi_default, NULL },
    { "writeFile", NULL, write_file, NULL, NULL, NULL, napi_default, NULL }
  };
  CHECK(napi_define_properties(env, exports, sizeof props / sizeof props[0], props));
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
