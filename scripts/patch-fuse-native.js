#!/usr/bin/env node
// fuse-native 2.2.6 hands utimens() the access time twice (fuse-native.c passes
// l->atime where l->mtime belongs), so `cp -a`, `rsync -a` and `tar x` could not
// keep modification times. This postinstall step fixes that one line and
// rebuilds the addon from source with node-gyp (node-gyp-build then prefers
// build/Release over the shipped prebuild). It is idempotent.
'use strict'
const fs = require('node:fs')
const path = require('node:path')
const { execFileSync } = require('node:child_process')

const dir = path.dirname(require.resolve('fuse-native/package.json'))
const file = path.join(dir, 'fuse-native.c')
const bad = 'FUSE_UINT64_TO_INTS_ARGV(l->atime, 3)\n  FUSE_UINT64_TO_INTS_ARGV(l->atime, 5)'
const good = 'FUSE_UINT64_TO_INTS_ARGV(l->atime, 3)\n  FUSE_UINT64_TO_INTS_ARGV(l->mtime, 5)'
const built = path.join(dir, 'build', 'Release', 'fuse.node')

let source = fs.readFileSync(file, 'utf8')
if (source.includes(bad)) {
  source = source.replace(bad, good)
  fs.writeFileSync(file, source)
  console.log('bucketfs: patched fuse-native utimens (mtime was passed as atime)')
} else if (!source.includes(good)) {
  console.error('bucketfs: fuse-native.c is not the version this patch knows; utimens left as is')
  process.exit(1)
}
if (fs.existsSync(built) && fs.statSync(built).mtimeMs >= fs.statSync(file).mtimeMs) process.exit(0)

// npm tells lifecycle scripts where its bundled node-gyp is.
const gyp = process.env.npm_config_node_gyp ||
  require.resolve('node-gyp/bin/node-gyp.js', { paths: [path.join(path.dirname(process.execPath), '..', 'lib', 'node_modules', 'npm')] })
console.log('bucketfs: rebuilding fuse-native')
// Build against the installed Node's headers (no download: this machine may have no network).
const args = [gyp, 'rebuild']
const nodedir = process.env.npm_config_nodedir || (fs.existsSync('/usr/include/node/node_api.h') ? '/usr' : '')
if (nodedir !== '') args.push(`--nodedir=${nodedir}`)
execFileSync(process.execPath, args, { cwd: dir, stdio: 'inherit' })
