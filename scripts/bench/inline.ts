// Chunks inline in SQLite or as files, for small objects: put and get rates side by
// side (issue 2: "small data inline in SQLite if that is faster (measure)").
// Run: npm run build && node dist/scripts/bench/inline.js [count]
import crypto from 'node:crypto'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import * as limits from '../../src/store/limits'
import { Store } from '../../src/store'

async function rates (inlineMax: number, n: number, size: number): Promise<{ put: number, get: number }> {
  // limits are plain CommonJS exports: the store reads INLINE_MAX at each chunk.
  (limits as { INLINE_MAX: number }).INLINE_MAX = inlineMax
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bucketfs-inline-'))
  const store = Store.open(dir)
  try {
    store.createBucket('bench')
    const bodies = Array.from({ length: n }, () => crypto.randomBytes(size))
    let t = process.hrtime.bigint()
    for (let i = 0; i < n; i++) await store.putObject('bench', `k${i}`, bodies[i])
    const put = n / (Number(process.hrtime.bigint() - t) / 1e9)
    t = process.hrtime.bigint()
    for (let i = 0; i < n; i++) await store.getObject('bench', `k${i}`)
    const get = n / (Number(process.hrtime.bigint() - t) / 1e9)
    return { put, get }
  } finally {
    store.close()
    fs.rmSync(dir, { recursive: true, force: true })
  }
}

async function main (): Promise<void> {
  const n = Number(process.argv[2] ?? 1000)
  const original = limits.INLINE_MAX
  console.log('object size   inline put/s   file put/s   inline get/s   file get/s')
  for (const size of [1024, 16 * 1024, 64 * 1024]) {
    const inline = await rates(original, n, size)
    const files = await rates(0, n, size)
    console.log([String(size).padStart(11), ...[inline.put, files.put, inline.get, files.get].map(v => v.toFixed(0).padStart(13))].join('  '))
  }
}

main().catch(err => { console.error(err); process.exit(1) })
