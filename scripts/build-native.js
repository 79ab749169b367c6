#!/usr/bin/env node
'use strict'
// Postinstall: builds native/ (our own C: the SQLite extension that writes each WAL
// commit in one call, native/walbuf.c) with node-gyp, when its source is newer than
// the build. Without it the store still works, one write per WAL frame as SQLite does.
const path = require('node:path')
const { rebuild, stale } = require('./node-gyp')

const dir = path.join(__dirname, '..', 'native')
const built = path.join(dir, 'build', 'Release', 'walbuf.node')
if (!stale(built, ['walbuf.c', 'binding.gyp'].map(f => path.join(dir, f)))) process.exit(0)
console.log('bucketfs: building native/')
try {
  rebuild(dir)
} catch (err) {
  // Not fatal: SQLite then writes the WAL frame by frame, as it does on its own.
  console.warn(`bucketfs: native/ did not build (${err.message}); the store works without it, a little slower`)
}
