#!/usr/bin/env node
'use strict'
// Postinstall: builds native/ (our own C) with node-gyp, when a source is newer than
// its build: the SQLite extension that writes each WAL commit in one call
// (native/walbuf.c), and the addon that hashes and writes chunks on libuv's threadpool
// without copying them (native/chunkio.c). Without them the store still works: SQLite
// writes the WAL frame by frame, and chunks are hashed on worker threads.
const path = require('node:path')
const { rebuild, stale } = require('./node-gyp')

const dir = path.join(__dirname, '..', 'native')
const outputs = ['walbuf', 'chunkio'].map(name => path.join(dir, 'build', 'Release', `${name}.node`))
const sources = ['walbuf.c', 'chunkio.c', 'md5lanes.c', 'md5lanes.h', 'crc32.h', 'binding.gyp'].map(f => path.join(dir, f))
if (!outputs.some(built => stale(built, sources))) process.exit(0)
console.log('bucketfs: building native/')
try {
  rebuild(dir)
} catch (err) {
  // Not fatal: see above.
  console.warn(`bucketfs: native/ did not build (${err.message}); the store works without it, a little slower`)
}
