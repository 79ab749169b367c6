// Schema migration 5 on a store made before it: keys stored whole become a
// directory row and a name, and everything stored reads, lists and moves as before.
import t from 'tap'
import fs from 'node:fs'
import path from 'node:path'
import crypto from 'node:crypto'
import Database from 'better-sqlite3'
import { MIGRATIONS } from '../src/meta/migrations'
import { Store } from '../src/store'
import { renamePrefix } from '../src/store/rename'

const sha256 = (b: Buffer): Buffer => crypto.createHash('sha256').update(b).digest()
const md5hex = (b: Buffer): string => crypto.createHash('md5').update(b).digest('hex')

/** A data dir whose meta.db is at schema version 4, holding what `fill` puts there with that schema's SQL. */
function storeAtVersion4 (dir: string, fill: (db: Database.Database) => void): void {
  fs.mkdirSync(dir, { mode: 0o700 })
  const db = new Database(path.join(dir, 'meta.db'))
  db.pragma('journal_mode = WAL')
  for (const m of MIGRATIONS.slice(0, 4)) db.exec(m as string)
  db.pragma('user_version = 4')
  fill(db)
  db.close()
}

t.test('a store made at schema version 4 is migrated whole', async t => {
  const dir = path.join(t.testdir(), 'data')
  const now = Date.now()
  const bodies = new Map<string, Buffer>()
  storeAtVersion4(dir, db => {
    db.prepare("INSERT INTO buckets (id, name, region, created_ms, versioning, mode, uid, gid, mtime_ms) VALUES (1, 'plain', 'local', ?, 'Unversioned', 493, 0, 0, ?)").run(now, now)
    db.prepare("INSERT INTO buckets (id, name, region, created_ms, versioning, mode, uid, gid, mtime_ms) VALUES (2, 'kept', 'local', ?, 'Enabled', 493, 0, 0, ?)").run(now, now)
    const chunk = db.prepare('INSERT INTO chunks (hash, size, refs, data) VALUES (?, ?, 0, ?)') // (the extent's trigger counts it)
    const version = db.prepare(`INSERT INTO versions (seq, bucket_id, key, version_id, delete_marker, size, etag, last_modified_ms, mode, uid, gid, mtime_ms, ctime_ms, stored)
      VALUES (?, ?, ?, ?, ?, ?, ?, ?, 33188, 0, 0, ?, ?, ?)`)
    const extent = db.prepare('INSERT INTO extents (seq, off, len, chunk, coff) VALUES (?, 0, ?, ?, 0)')
    const live = db.prepare('INSERT INTO live (bucket_id, key, seq) VALUES (?, ?, ?)')
    let seq = 0
    const put = (bucket: number, key: string, text: string | null, versionId = 'null', isLive = true): void => {
      seq += 3 // gaps, as deletes leave
      const body = Buffer.from(text ?? '')
      version.run(seq, bucket, key, versionId, text === null ? 1 : 0, body.length, text === null ? '' : md5hex(body), now - seq, now, now, body.length)
      if (body.length > 0) extent.run(seq, body.length, Number(chunk.run(sha256(body), body.length, body).lastInsertRowid))
      if (isLive) { live.run(bucket, key, seq); bodies.set(`${bucket}/${key}`, body) }
    }
    put(1, 'top.txt', 'top')
    put(1, 'a/', '') // a directory's marker
    put(1, 'a/one', 'one')
    put(1, 'a/b/two', 'two')
    put(1, 'a/b/c/three', 'three')
    put(1, 'a-side', 'beside a/')
    put(1, 'ü/😀.txt', 'past ascii')
    put(2, 'doc', 'first', 'v1', false)
    put(2, 'doc', 'second', 'v2')
    put(2, 'gone/x', 'was here', 'v3', false)
    put(2, 'gone/x', null, 'v4', false) // a delete marker on top
    // A deleted version's seq was handed out last: it is not handed out again.
    db.prepare("UPDATE sqlite_sequence SET seq = 1000 WHERE name = 'versions'").run()
  })

  const store = Store.open(dir)
  t.teardown(() => store.close())
  t.same(store.listObjects('plain').contents.map(v => v.key),
    ['a-side', 'a/', 'a/b/c/three', 'a/b/two', 'a/one', 'top.txt', 'ü/😀.txt'], 'every key lists, in UTF-8 byte order')
  t.same(store.listObjects('plain', { prefix: 'a/', delimiter: '/' }).commonPrefixes, ['a/b/'])
  for (const [id, body] of bodies) {
    const [bucket, key] = id.startsWith('1/') ? ['plain', id.slice(2)] : ['kept', id.slice(2)]
    t.same((await store.getObject(bucket, key, {})).body, body, `${bucket}/${key} reads back`)
  }
  t.same(store.listObjects('kept').contents.map(v => v.key), ['doc'], 'a key behind a delete marker is not listed')
  t.same(store.listObjectVersions('kept').versions.map(v => `${v.key} ${v.versionId}${v.isDeleteMarker ? ' marker' : ''}`),
    ['doc v2', 'doc v1', 'gone/x v4 marker', 'gone/x v3'], 'history and markers kept')
  t.same(store.listDirectory('plain', 'a/').dirs, ['b'])
  t.same(store.listDirectory('plain', 'a/').files.names, ['', 'one'])
  t.equal(store.dirStat('kept', 'gone'), undefined, 'a directory of deleted keys is not one')

  const v = await store.putObject('plain', 'a/b/new', Buffer.from('new'))
  t.ok(v.seq > 1000, 'seqs go on past every one handed out before')
  renamePrefix(store, 'plain', 'a/', 'plain', 'moved/')
  t.same(store.listObjects('plain').contents.map(v => v.key),
    ['a-side', 'moved/', 'moved/b/c/three', 'moved/b/new', 'moved/b/two', 'moved/one', 'top.txt', 'ü/😀.txt'], 'a migrated directory renames')
  t.same((await store.getObject('plain', 'moved/b/c/three', {})).body.toString(), 'three')
  const report = await store.fsck({ deep: true })
  t.equal(report.clean, true, 'fsck finds the migrated store clean', { report })
})

t.test('migration 5 waits while another process holds the mount lock', async t => {
  const dir = path.join(t.testdir(), 'data')
  storeAtVersion4(dir, db => {
    db.prepare("INSERT INTO buckets (id, name, region, created_ms, versioning, mode, uid, gid, mtime_ms) VALUES (1, 'plain', 'local', 0, 'Unversioned', 493, 0, 0, 0)").run()
  })
  // A live process (the test runner) holds the lock, as a mount of an earlier bucketfs would.
  fs.writeFileSync(path.join(dir, 'daemon.lock'), JSON.stringify({ pid: process.ppid, mountpoint: '/mnt/old' }))
  t.throws(() => Store.open(dir), { code: 'StoreLocked', message: /migration 5.*\/mnt\/old.*unmount it first/ }, 'refused, naming the mount')
  const db = new Database(path.join(dir, 'meta.db'), { readonly: true })
  t.equal(db.pragma('user_version', { simple: true }), 4, 'the schema is left as it was')
  db.close()
  fs.rmSync(path.join(dir, 'daemon.lock'))
  const store = Store.open(dir)
  t.same(store.listBuckets().map(b => b.name), ['plain'], 'migrated once the mount is gone')
  store.close()
})

t.test('listings page through directories with hundreds of subdirectories, in key order', async t => {
  const dir = path.join(t.testdir(), 'data')
  const store = Store.open(dir)
  t.teardown(() => store.close())
  store.createBucket('many', {})
  const keys: string[] = []
  for (let i = 0; i < 600; i++) {
    const n = String(i).padStart(3, '0')
    keys.push(`p/d${n}/k`, `p/d${n}-file`)
    if (i % 100 === 0) keys.push(`p/d${n}/sub/deep`, `p/d${n}.x`)
  }
  for (const k of keys) await store.putObject('many', k, Buffer.from(k))
  const sorted = [...keys].sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)))
  const all: string[] = []
  let token: string | undefined
  do {
    const page = store.listObjects('many', { maxKeys: 77, continuationToken: token })
    all.push(...page.contents.map(v => v.key))
    token = page.nextContinuationToken
  } while (token !== undefined)
  t.same(all, sorted, 'every key, in UTF-8 byte order, across pages')
  const prefixes: string[] = []
  token = undefined
  do {
    const page = store.listObjects('many', { prefix: 'p/', delimiter: '/', maxKeys: 250, continuationToken: token })
    prefixes.push(...page.commonPrefixes)
    token = page.nextContinuationToken
  } while (token !== undefined)
  t.equal(prefixes.length, 600, 'each subdirectory once')
  t.same(store.listObjects('many', { prefix: 'p/d2', startAfter: 'p/d250/k', maxKeys: 3 }).contents.map(v => v.key),
    ['p/d251-file', 'p/d251/k', 'p/d252-file'], 'from the middle of a directory ("-" sorts before "/")')
  t.equal(store.listDirectory('many', 'p/').dirs.length, 600)
})

t.test('a directory rename moves a write session under it that has no key yet', async t => {
  const dir = path.join(t.testdir(), 'data')
  const store = Store.open(dir)
  t.teardown(() => store.close())
  store.createBucket('plain', {})
  const bucketId = store.catalog.bucketByName('plain')?.id ?? 0
  store.catalog.write(() => store.catalog.insertUpload({
    upload_id: 'session-1', bucket_id: bucketId, key: 'd/f', kind: 'session', initiated_ms: Date.now(), attrs: '{}', base_seq: null, base_limit: 0, size: 0
  }))
  renamePrefix(store, 'plain', 'd/', 'plain', 'e/')
  t.equal(store.catalog.uploadById('session-1')?.key, 'e/f', 'the session follows its directory')
})

t.test('fsck reports what the key index cannot place', async t => {
  const dir = path.join(t.testdir(), 'data')
  const store = Store.open(dir)
  t.teardown(() => store.close())
  store.createBucket('plain', {})
  for (const k of ['a/b/c', 'a/x', 'top']) await store.putObject('plain', k, Buffer.from(k))
  t.same((await store.fsck({})).keyIndexProblems, [], 'none in a sound store')
  const { db } = store.catalog
  db.prepare("DELETE FROM dirs WHERE path = 'a/b/'").run() // its version and live row are left
  db.prepare("UPDATE live SET seq = 999999 WHERE name = 'top'").run()
  db.prepare("INSERT INTO dirs (bucket_id, parent, path) VALUES (1, 424242, 'lost/')").run()
  const report = await store.fsck({})
  t.equal(report.clean, false, 'not clean')
  t.match(report.keyIndexProblems, [
    /^version \d+ is in directory \d+, which does not exist$/,
    /^the live row of directory \d+ name "top" names version 999999, which does not exist$/,
    /^the live row of name "c" is in directory \d+, which does not exist$/,
    /^the key of directory \d+ name "top" has latest version \d+, but its live row names 999999$/,
    /^directory \d+ \("lost\/"\) has parent 424242, which does not exist$/
  ], 'each named')
  t.equal(report.keyIndexProblems.length, 5)
  // A key whose live row is gone though its latest version is no marker: hidden.
  db.prepare("DELETE FROM live WHERE name = 'x'").run()
  const hidden = /^the key of directory \d+ name "x" has latest version \d+, but its live row names none$/
  t.ok((await store.fsck({})).keyIndexProblems.some(l => hidden.test(l)), 'a hidden key is named')
})

t.test('a directory moved to another parent leaves no empty directory rows behind', async t => {
  const dir = path.join(t.testdir(), 'data')
  const store = Store.open(dir)
  t.teardown(() => store.close())
  store.createBucket('plain', {})
  await store.putObject('plain', 'x/y/k', Buffer.from('k'))
  await store.putObject('plain', 'x/y/sub/deep', Buffer.from('d'))
  const bucketId = store.catalog.bucketByName('plain')?.id ?? 0
  renamePrefix(store, 'plain', 'x/y/', 'plain', 'z/w/')
  t.same(store.listObjects('plain').contents.map(v => v.key), ['z/w/k', 'z/w/sub/deep'])
  t.equal(store.catalog.dirId(bucketId, 'x/'), undefined, 'the emptied parent is pruned')
  t.ok(store.catalog.dirId(bucketId, 'z/') !== undefined, 'the new parent is made')
  t.same(store.listDirectory('plain', '').dirs, ['z'])
  t.same((await store.fsck({})).keyIndexProblems, [], 'every directory names the one above it')
})
