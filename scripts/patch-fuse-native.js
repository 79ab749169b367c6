#!/usr/bin/env node
// Postinstall: fixes fuse-native 2.2.6's C where it keeps bucketfs from being a
// correct filesystem, then rebuilds the addon from source with node-gyp against
// the local Node headers (node-gyp-build prefers build/Release over the shipped
// prebuild). Idempotent: the edits are applied to the original source, and the
// rebuild only runs when the patched source is newer than the build.
//  1. utimens passed the access time in place of the modification time.
//  2. UTIME_NOW and UTIME_OMIT reached JavaScript as ~1073 ms after 1970 (the
//     nanosecond markers cut to ms): now "now" is the current time and "omit" is
//     2^52 ms, and flag_utime_omit_ok lets libfuse call utimens when only one
//     time is set (touch -m, tar x).
//  3. flag_nullpath_ok + NULL-safe paths, so the mount can use hard_remove: an
//     unlinked open file is really unlinked, not renamed to .fuse_hiddenNNN (which
//     made a rename over an open file non-atomic).
//  4. Names that are not UTF-8 reached JavaScript with U+FFFD in place of the bad
//     bytes, so different names became one key: such a path or xattr name is now
//     refused with EILSEQ before it reaches JavaScript.
//  5. The caller of each op (fuse_get_context: pid, uid, gid) was not passed on:
//     `binding.fuse_native_caller()` answers [pid, uid, gid] of the op JavaScript
//     is being called for (the FUSE pid is the calling thread's id).
//  6. open could not choose whether the kernel keeps the file's cached pages: bit 30
//     of the handle it answers now clears keep_cache (which is set otherwise) and is
//     not kept in the handle.
//  7. Every op went to JavaScript, even where the answer was known: the getattr (the
//     kernel's lookup) or opendir of a name a readdir listed, or one a lookup (or a
//     rename of it) found missing, or any name not made since in a directory the
//     mount's mkdir has just made (or a small one a miss has just listed), and every
//     releasedir, is
//     answered on the FUSE thread from an attribute cache, which ops clear of what they
//     change before they are answered; the close (flush) of a file opened read-only
//     (bit 33 of its fh, set at the open);
//     the kernel's getxattr(security.capability) before each write; and reads of data
//     JavaScript put ahead of a sequential reader (scripts/fuse-native/fast-path.c);
//     and the getattr libfuse asks right after a setattr, create, mkdir or symlink,
//     from the attributes JavaScript answered that op with (a close or release of a
//     file answers them too, for the lookup that often follows); and a readdir of a
//     directory JavaScript listed ahead of a program walking a tree.
//  8. Each op woke the main thread from its sleep and was answered by waking the FUSE
//     thread: for 1 ms after an op (5 ms after a readdir) the event loop polls instead
//     of sleeping, so the next op of a busy program is picked up without a wake-up; the FUSE thread
//     polls for the answer 300 µs, yielding its core between polls, before it sleeps
//     ($BUCKETFS_SPIN_US) (fast-path.c).
//  9. readdir took one Uint32Array per entry: it also takes a listing's stats packed
//     in one (src/mount/fuse.ts putStatFields).
// 10. After its loop the FUSE thread took the mount's channel out of the session after
//     fuse_unmount had freed it (a read and write of freed memory): now before.
'use strict'
const fs = require('node:fs')
const path = require('node:path')
const { rebuild, stale } = require('./node-gyp')

const dir = path.dirname(require.resolve('fuse-native/package.json'))
const file = path.join(dir, 'fuse-native.c')
const built = path.join(dir, 'build', 'Release', 'fuse.node')
// The CRC-32 our own addon uses too (native/crc32.h), ahead of the fast path that checks windows with it.
const fastPath = fs.readFileSync(path.join(__dirname, '..', 'native', 'crc32.h'), 'utf8') + '\n' +
  fs.readFileSync(path.join(__dirname, 'fuse-native', 'fast-path.c'), 'utf8')

const edits = [
  ['utimens mtime', 'FUSE_UINT64_TO_INTS_ARGV(l->atime, 5)', 'FUSE_UINT64_TO_INTS_ARGV(l->mtime, 5)'],
  ['utimens markers',
    '  l->atime = timespec_to_uint64(&tv[0]);\n  l->mtime = timespec_to_uint64(&tv[1]);',
    '  l->atime = bucketfs_utime(&tv[0]);\n  l->mtime = bucketfs_utime(&tv[1]);'],
  ['utimens helper', 'static void populate_stat (',
    '// bucketfs: UTIME_NOW is the current time; UTIME_OMIT is 2^52 ms ("leave it").\n' +
    'static uint64_t bucketfs_utime (const struct timespec* ts) {\n' +
    '  if (ts->tv_nsec == UTIME_OMIT) return 4503599627370496ULL;\n' +
    '  if (ts->tv_nsec == UTIME_NOW) { struct timespec now; clock_gettime(CLOCK_REALTIME, &now); return timespec_to_uint64(&now); }\n' +
    '  return timespec_to_uint64(ts);\n' +
    '}\n\nstatic void populate_stat ('],
  ['gnu source', '#define FUSE_USE_VERSION 29\n', '#define _GNU_SOURCE // O_DIRECT\n#define FUSE_USE_VERSION 29\n'],
  ['includes', '#include <assert.h>\n', '#include <assert.h>\n#include <time.h>\n#include <sys/stat.h>\n'],
  ['ops flags', '  struct fuse_operations ops = { };\n',
    '  struct fuse_operations ops = { };\n  ops.flag_utime_omit_ok = 1;\n  ops.flag_nullpath_ok = 1;\n'],
  ['null paths', /napi_create_string_utf8\(env, l->path, /g, 'napi_create_string_utf8(env, l->path ? l->path : "", '],
  ['errno include', '#include <pthread.h>\n', '#include <pthread.h>\n#include <errno.h>\n'],
  ['caller fields', '  size_t mtime;\n  int32_t res;\n', '  size_t mtime;\n  int32_t res;\n  pid_t bucketfs_pid;\n  uid_t bucketfs_uid;\n  gid_t bucketfs_gid;\n' +
    '  uint64_t bucketfs_seq;\n  uint64_t bucketfs_done_seq;\n  uint64_t bucketfs_then_seq;\n  uint64_t bucketfs_then_epoch;\n  uint64_t bucketfs_then_expires_ms;\n  char *bucketfs_then_path;\n  uint32_t bucketfs_then_ints[18];\n'],
  ['utf-8 check and caller', 'static pthread_key_t thread_locals_key;\n',
    'static pthread_key_t thread_locals_key;\n\n' +
    '// bucketfs: strict UTF-8 (no overlong forms, surrogates or code points past U+10FFFF).\n' +
    'static int bucketfs_valid_utf8 (const char *s) {\n' +
    '  const unsigned char *p = (const unsigned char *) s;\n' +
    '  if (p == NULL) return 1;\n' +
    '  while (*p) {\n' +
    '    unsigned char c = *p;\n' +
    '    int n; unsigned int cp;\n' +
    '    if (c < 0x80) { p++; continue; }\n' +
    '    else if (c >= 0xc2 && c <= 0xdf) { n = 1; cp = c & 0x1f; }\n' +
    '    else if (c >= 0xe0 && c <= 0xef) { n = 2; cp = c & 0x0f; }\n' +
    '    else if (c >= 0xf0 && c <= 0xf4) { n = 3; cp = c & 0x07; }\n' +
    '    else return 0;\n' +
    '    for (int i = 1; i <= n; i++) { if ((p[i] & 0xc0) != 0x80) return 0; cp = (cp << 6) | (p[i] & 0x3f); }\n' +
    '    if ((n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return 0;\n' +
    '    p += n + 1;\n' +
    '  }\n' +
    '  return 1;\n' +
    '}\n\n' +
    '// bucketfs: the caller of the op JavaScript is being called for (set on the JS thread).\n' +
    'static pid_t bucketfs_caller_pid = 0;\n' +
    'static uid_t bucketfs_caller_uid = 0;\n' +
    'static gid_t bucketfs_caller_gid = 0;\n' +
    'static fuse_thread_locals_t *bucketfs_caller_locals = NULL;\n\n' +
    'NAPI_METHOD(fuse_native_caller) {\n' +
    '  napi_value out, v;\n' +
    '  napi_create_array_with_length(env, 3, &out);\n' +
    '  napi_create_int32(env, (int32_t) bucketfs_caller_pid, &v); napi_set_element(env, out, 0, v);\n' +
    '  napi_create_uint32(env, (uint32_t) bucketfs_caller_uid, &v); napi_set_element(env, out, 1, v);\n' +
    '  napi_create_uint32(env, (uint32_t) bucketfs_caller_gid, &v); napi_set_element(env, out, 2, v);\n' +
    '  return out;\n' +
    '}\n\n' +
    '// bucketfs: (in the handler macro, whose parameter `name` hides l->name)\n' +
    'static void bucketfs_clear (fuse_thread_locals_t *l) { l->path = NULL; l->dest = NULL; l->name = NULL; }\n' +
    'static int bucketfs_check (fuse_thread_locals_t *l) {\n' +
    '  if (!bucketfs_valid_utf8(l->path) || !bucketfs_valid_utf8(l->dest) || !bucketfs_valid_utf8(l->name)) return 0;\n' +
    '  struct fuse_context *ctx = fuse_get_context();\n' +
    '  l->bucketfs_pid = ctx->pid; l->bucketfs_uid = ctx->uid; l->bucketfs_gid = ctx->gid;\n' +
    '  return 1;\n' +
    '}\n'],
  ['handler checks',
    '  l->op_fn = fuse_native_dispatch_##name;\\\n  blk\\\n  uv_async_send(&(l->async));\\\n',
    '  l->op_fn = fuse_native_dispatch_##name;\\\n  bucketfs_clear(l);\\\n  blk\\\n' +
    '  if (!bucketfs_check(l)) return -EILSEQ;\\\n' +
    '  uv_async_send(&(l->async));\\\n'],
  ['dispatch caller',
    '      callbackBlk\\\n      NAPI_MAKE_CALLBACK(env, NULL, ctx, callback, callbackArgs + 2, argv, NULL)\\\n',
    '      callbackBlk\\\n      bucketfs_caller_pid = l->bucketfs_pid; bucketfs_caller_uid = l->bucketfs_uid; bucketfs_caller_gid = l->bucketfs_gid; bucketfs_caller_locals = l;\\\n' +
    '      NAPI_MAKE_CALLBACK(env, NULL, ctx, callback, callbackArgs + 2, argv, NULL)\\\n      bucketfs_caller_locals = NULL;\\\n'],
  ['open keep_cache',
    '    napi_create_uint32(env, 0, &(argv[3]));\n  }\n}, {\n  NAPI_ARGV_INT32(fd, 2)\n  if (fd != 0) {\n    l->info->fh = fd;\n  }\n})',
    '    napi_create_uint32(env, 0, &(argv[3]));\n  }\n}, {\n  NAPI_ARGV_INT32(fd, 2)\n' +
    '  // bucketfs: bit 30 of the handle asks the kernel to drop the cached pages of the file\n' +
    '  l->info->keep_cache = (fd & 0x40000000) ? 0 : 1;\n  fd &= ~0x40000000;\n' +
    '  // bucketfs: bit 29, that its writes may be staged on the FUSE thread (bit 32 of fh)\n' +
    '  uint64_t bucketfs_stage = (fd & 0x20000000) ? BUCKETFS_STAGE_BIT : 0;\n  fd &= ~0x20000000;\n' +
    '  // bucketfs: opened read-only (bit 33 of fh): its close is answered on the FUSE thread\n' +
    '  if (bucketfs_reads_only(l->info->flags)) bucketfs_stage |= BUCKETFS_QUIET_BIT;\n' +
    '  if (fd != 0) {\n    l->info->fh = (uint64_t) fd | bucketfs_stage;\n  }\n})'],
  ['create stage bit',
    '  napi_create_uint32(env, l->mode, &(argv[3]));\n}, {\n  NAPI_ARGV_INT32(fd, 2)\n  if (fd != 0) {\n    l->info->fh = fd;\n  }\n',
    '  napi_create_uint32(env, l->mode, &(argv[3]));\n}, {\n  NAPI_ARGV_INT32(fd, 2)\n' +
    '  // bucketfs: bit 29, that its writes may be staged on the FUSE thread (bit 32 of fh)\n' +
    '  uint64_t bucketfs_stage = (fd & 0x20000000) ? BUCKETFS_STAGE_BIT : 0;\n  fd &= ~0x20000000;\n' +
    '  if (fd != 0) {\n    l->info->fh = (uint64_t) fd | bucketfs_stage;\n  }\n'],
  ['readdir packed stats',
    '  napi_value raw_names = argv[2];\n  napi_value raw_stats = argv[3];\n\n  if (names_length != stats_length) {\n',
    '  napi_value raw_names = argv[2];\n  napi_value raw_stats = argv[3];\n\n' +
    '  // bucketfs: the stats may come packed, 18 uint32s per name in one Uint32Array\n' +
    '  bool bucketfs_packed = false;\n' +
    '  napi_is_typedarray(env, raw_stats, &bucketfs_packed);\n' +
    '  if (bucketfs_packed) {\n' +
    '    napi_typedarray_type bucketfs_type;\n' +
    '    size_t bucketfs_len = 0;\n' +
    '    void *bucketfs_data = NULL;\n' +
    '    napi_get_typedarray_info(env, raw_stats, &bucketfs_type, &bucketfs_len, &bucketfs_data, NULL, NULL);\n' +
    '    uint32_t *bucketfs_ints = bucketfs_type == napi_uint32_array && bucketfs_len == (size_t) names_length * 18 ? (uint32_t *) bucketfs_data : NULL;\n' +
    '    NAPI_FOR_EACH(raw_names, raw_name) {\n' +
    '      NAPI_UTF8(name, 1024, raw_name)\n' +
    '      struct stat st;\n' +
    '      if (bucketfs_ints != NULL) populate_stat(bucketfs_ints + (size_t) i * 18, &st);\n' +
    '      if (l->readdir_filler((char *) l->buf, name, bucketfs_ints != NULL ? &st : NULL, 0) == 1) break;\n' +
    '    }\n' +
    '  } else if (names_length != stats_length) {\n'],
  ['export caller', '  NAPI_EXPORT_FUNCTION(fuse_native_mount)\n', '  NAPI_EXPORT_FUNCTION(fuse_native_mount)\n  NAPI_EXPORT_FUNCTION(fuse_native_caller)\n'],
  ['fcntl include', '#include <errno.h>\n', '#include <errno.h>\n#include <fcntl.h>\n'],
  ['fast path', '// Methods\n', fastPath + '// Methods\n'],
  ['channel freed once', '  fuse_unmount(ft->mnt, ft->ch);\n  fuse_session_remove_chan(ft->ch);\n',
    '  fuse_session_remove_chan(ft->ch); // (fuse_unmount frees it)\n  fuse_unmount(ft->mnt, ft->ch);\n'],
  ['big requests', '  struct fuse_chan *ch = fuse_mount(mnt, &args);\n', '  struct fuse_chan *ch = bucketfs_big_chan(fuse_mount(mnt, &args));\n'],
  ['fast path hooks',
    '  if (!bucketfs_check(l)) return -EILSEQ;\\\n  uv_async_send(&(l->async));\\\n  uv_sem_wait(&(l->sem));\\\n  return l->res;\n',
    '  if (!bucketfs_check(l)) return -EILSEQ;\\\n' +
    '  int bucketfs_res;\\\n  if (bucketfs_answer(l, &bucketfs_res)) return bucketfs_res;\\\n' +
    '  uv_async_send(&(l->async));\\\n  bucketfs_wait_answer(l);\\\n' +
    '  bucketfs_attr_after(l->op, l->fuse, l->path, l->dest, l->info, l);\\\n  bucketfs_then_after(l);\\\n  return l->res;\n'],
  ['poll after dispatch',
    '  void (*fn)(uv_async_t *, fuse_thread_locals_t *, fuse_thread_t *) = l->op_fn;\n\n  fn(handle, l, ft);\n',
    // (Again once JavaScript returns, from the op read before: a readdir of a large directory
    // answered 50 ms later still gets its window; the FUSE thread may reuse l once answered.)
    '  void (*fn)(uv_async_t *, fuse_thread_locals_t *, fuse_thread_t *) = l->op_fn;\n\n' +
    '  uint32_t bucketfs_op = l->op;\n  bucketfs_poll_after(bucketfs_op);\n  fn(handle, l, ft);\n  bucketfs_poll_after(bucketfs_op);\n'],
  ['export fast path', '  NAPI_EXPORT_FUNCTION(fuse_native_caller)\n',
    '  NAPI_EXPORT_FUNCTION(fuse_native_caller)\n  NAPI_EXPORT_FUNCTION(bucketfs_attr_epoch)\n' +
    '  NAPI_EXPORT_FUNCTION(bucketfs_attr_put)\n  NAPI_EXPORT_FUNCTION(bucketfs_full_put)\n  NAPI_EXPORT_FUNCTION(bucketfs_attr_forget_all)\n  NAPI_EXPORT_FUNCTION(bucketfs_fast_stats)\n' +
    '  NAPI_EXPORT_FUNCTION(bucketfs_read_feeder)\n  NAPI_EXPORT_FUNCTION(bucketfs_read_end)\n  NAPI_EXPORT_FUNCTION(bucketfs_read_put)\n  NAPI_EXPORT_FUNCTION(bucketfs_read_load)\n' +
    '  NAPI_EXPORT_FUNCTION(bucketfs_op_token)\n  NAPI_EXPORT_FUNCTION(bucketfs_then_attrs)\n  NAPI_EXPORT_FUNCTION(bucketfs_aligned_buffer)\n' +
    '  NAPI_EXPORT_FUNCTION(bucketfs_list_put)\n  NAPI_EXPORT_FUNCTION(bucketfs_list_reader)\n  NAPI_EXPORT_FUNCTION(bucketfs_list_end)\n' +
    '  NAPI_EXPORT_FUNCTION(bucketfs_staged_take)\n  NAPI_EXPORT_FUNCTION(bucketfs_staged_done)\n  NAPI_EXPORT_FUNCTION(bucketfs_stage_writes)\n  NAPI_EXPORT_FUNCTION(bucketfs_stage_stop)\n  NAPI_EXPORT_FUNCTION(bucketfs_stage_end)\n']
]

// The edits always apply to fuse-native's own source, kept beside it as fuse-native.c.orig
// the first time: later edits rewrite text earlier ones added, so a patched file cannot
// be patched again.
const original = file + '.orig'
if (!fs.existsSync(original)) {
  const current = fs.readFileSync(file, 'utf8')
  if (current.includes('bucketfs')) {
    console.error('bucketfs: fuse-native.c was patched by an older bucketfs and its original is gone; reinstall it: rm -rf node_modules/fuse-native && npm install')
    process.exit(1)
  }
  fs.writeFileSync(original, current)
}
let source = fs.readFileSync(original, 'utf8')
for (const [name, before, after] of edits) {
  const found = typeof before === 'string' ? source.includes(before) : before.test(source)
  if (!found) {
    console.error(`bucketfs: fuse-native.c is not the version this patch knows (${name}); not patched`)
    process.exit(1)
  }
  source = source.replace(before, after)
}
if (source !== fs.readFileSync(file, 'utf8')) {
  fs.writeFileSync(file, source)
  console.log(`bucketfs: patched fuse-native (${edits.map(e => e[0]).join(', ')})`)
}
if (!stale(built, [file])) process.exit(0)

console.log('bucketfs: rebuilding fuse-native')
rebuild(dir)
