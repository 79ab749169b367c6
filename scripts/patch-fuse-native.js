#!/usr/bin/env node
// Postinstall: fixes fuse-native 2.2.6's C where it keeps bucketfs from being a
// correct filesystem, then rebuilds the addon from source with node-gyp against
// the local Node headers (node-gyp-build prefers build/Release over the shipped
// prebuild). Idempotent: each edit is applied once, and the rebuild only runs
// when the source is newer than the build.
//  1. utimens passed the access time in place of the modification time.
//  2. UTIME_NOW and UTIME_OMIT reached JavaScript as ~1073 ms after 1970 (the
//     nanosecond markers cut to ms): now "now" is the current time and "omit" is
//     2^52 ms, and flag_utime_omit_ok lets libfuse call utimens when only one
//     time is set (touch -m, tar x).
//  3. flag_nullpath_ok + NULL-safe paths, so the mount can use hard_remove: an
//     unlinked open file is really unlinked, not renamed to .fuse_hiddenNNN (which
//     made a rename over an open file non-atomic).
'use strict'
const fs = require('node:fs')
const path = require('node:path')
const { execFileSync } = require('node:child_process')

const dir = path.dirname(require.resolve('fuse-native/package.json'))
const file = path.join(dir, 'fuse-native.c')
const built = path.join(dir, 'build', 'Release', 'fuse.node')

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
  ['includes', '#include <assert.h>\n', '#include <assert.h>\n#include <time.h>\n#include <sys/stat.h>\n'],
  ['ops flags', '  struct fuse_operations ops = { };\n',
    '  struct fuse_operations ops = { };\n  ops.flag_utime_omit_ok = 1;\n  ops.flag_nullpath_ok = 1;\n'],
  ['null paths', /napi_create_string_utf8\(env, l->path, /g, 'napi_create_string_utf8(env, l->path ? l->path : "", ']
]

let source = fs.readFileSync(file, 'utf8')
let changed = false
for (const [name, before, after] of edits) {
  if (source.includes(after)) continue
  const found = typeof before === 'string' ? source.includes(before) : before.test(source)
  if (!found) {
    console.error(`bucketfs: fuse-native.c is not the version this patch knows (${name}); not patched`)
    process.exit(1)
  }
  source = source.replace(before, after)
  changed = true
  console.log(`bucketfs: patched fuse-native: ${name}`)
}
if (changed) fs.writeFileSync(file, source)
if (fs.existsSync(built) && fs.statSync(built).mtimeMs >= fs.statSync(file).mtimeMs) process.exit(0)

// npm tells lifecycle scripts where its bundled node-gyp is.
const gyp = process.env.npm_config_node_gyp ||
  require.resolve('node-gyp/bin/node-gyp.js', { paths: [path.join(path.dirname(process.execPath), '..', 'lib', 'node_modules', 'npm')] })
// Build against the installed Node's headers (no download: this machine may have no network).
const args = [gyp, 'rebuild']
const nodedir = process.env.npm_config_nodedir || (fs.existsSync('/usr/include/node/node_api.h') ? '/usr' : '')
if (nodedir !== '') args.push(`--nodedir=${nodedir}`)
console.log('bucketfs: rebuilding fuse-native')
execFileSync(process.execPath, args, { cwd: dir, stdio: 'inherit' })
