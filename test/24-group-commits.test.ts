// The daemon's writes are committed in groups (docs/SEMANTICS.md, "Metadata
// durability"): another connection sees a write once its group commits, at the latest
// GROUP_MS after the group's first write; a save's commit, a durable write and sync
// commit at once; a write that fails leaves the rest of its group; near a full disk
// each write commits on its own; a group that cannot commit is lost whole and the
// store takes no more writes.
import t from 'tap'
import type {} from 'tap' // the global tap.Test type
import path from 'node:path'
import Database from 'better-sqlite3'
import { GROUP_WRITES } from '../src/meta/catalog'
import { tempStore, until } from './helpers/store'

/** A second connection, as the CLI's: what it reads is what has been committed. */
function committedBuckets (t: tap.Test, dir: string): () => string[] {
  const db = new Database(path.join(dir, 'meta.db'), { readonly: true })
  t.teardown(() => { db.close() })
  const st = db.prepare('SELECT name FROM buckets ORDER BY name').pluck()
  return () => st.all() as string[]
}

t.test('a group is seen by other connections once it commits, by its own connection at once', async t => {
  const { dir, store } = tempStore(t, { groupCommits: true, groupRoom: 0 })
  const committed = committedBuckets(t, dir)
  store.createBucket('bk-a')
  store.createBucket('bk-b')
  t.same(store.listBuckets().map(b => b.name), ['bk-a', 'bk-b'], 'its own connection sees both writes')
  t.same(committed(), [], 'another sees neither before the group commits')
  t.ok(await until(() => committed().length === 2, 5000, 1), 'the group commits on its own, soon')
  t.same(committed(), ['bk-a', 'bk-b'], 'both writes, in one commit')
})

t.test('writeCommitted, writeDurably and sync commit the group before they return', async t => {
  const { dir, store } = tempStore(t, { groupCommits: true, groupRoom: 0 })
  const committed = committedBuckets(t, dir)
  const insert = (name: string): void => {
    store.catalog.db.prepare("INSERT INTO buckets (name, region, created_ms, mode, uid, gid, mtime_ms) VALUES (?, 'us-east-1', 0, 493, 0, 0, 0)").run(name)
  }
  store.createBucket('bk-a')
  store.catalog.writeCommitted(() => { insert('bk-b') })
  t.same(committed(), ['bk-a', 'bk-b'], 'writeCommitted: the group it joined, with it')
  store.createBucket('bk-c')
  store.catalog.writeDurably(() => { insert('bk-d') })
  t.same(committed(), ['bk-a', 'bk-b', 'bk-c', 'bk-d'], 'writeDurably: the group before it, and itself')
  store.createBucket('bk-e')
  store.catalog.sync()
  t.same(committed(), ['bk-a', 'bk-b', 'bk-c', 'bk-d', 'bk-e'], 'sync')
  store.catalog.sync()
  t.pass('sync with nothing to commit')
})

t.test('a write that fails is undone alone; the group keeps the others', async t => {
  const { dir, store } = tempStore(t, { groupCommits: true, groupRoom: 0 })
  const committed = committedBuckets(t, dir)
  store.createBucket('bk-a')
  t.throws(() => store.catalog.write(() => {
    store.catalog.db.prepare("INSERT INTO buckets (name, region, created_ms, mode, uid, gid, mtime_ms) VALUES ('undone', 'us-east-1', 0, 493, 0, 0, 0)").run()
    throw new Error('failed halfway')
  }), /failed halfway/)
  store.createBucket('bk-b')
  store.catalog.commit()
  t.same(committed(), ['bk-a', 'bk-b'], 'the failed write left nothing; the others are committed')
})

t.test(`a group commits once it holds ${GROUP_WRITES} writes`, async t => {
  const { dir, store } = tempStore(t, { groupCommits: true, groupRoom: 0 })
  const committed = committedBuckets(t, dir)
  for (let i = 0; i < GROUP_WRITES; i++) store.createBucket(`b-${String(i).padStart(4, '0')}`)
  t.equal(committed().length, GROUP_WRITES, 'committed at the last write of the group, without waiting')
  store.createBucket('after')
  t.equal(committed().length, GROUP_WRITES, 'the next write starts a new group')
})

t.test('without room for a group on the disk, each write commits on its own', async t => {
  const { dir, store } = tempStore(t, { groupCommits: true, groupRoom: Number.MAX_SAFE_INTEGER })
  const committed = committedBuckets(t, dir)
  store.createBucket('bk-a')
  t.same(committed(), ['bk-a'], 'committed before the write returned')
})

t.test('a group that cannot commit is lost whole, said on stderr, and the store takes no more writes', async t => {
  const { dir, store } = tempStore(t, { groupCommits: true, groupRoom: 0 })
  const committed = committedBuckets(t, dir)
  store.createBucket('kept')
  store.catalog.commit()
  // A deferred foreign key fails at COMMIT, as a full disk or an I/O error would.
  const db = store.catalog.db
  db.pragma('foreign_keys = ON')
  db.exec('CREATE TABLE parent (id INTEGER PRIMARY KEY); CREATE TABLE child (p INTEGER REFERENCES parent(id) DEFERRABLE INITIALLY DEFERRED)')
  store.createBucket('lost')
  store.catalog.write(() => { db.prepare('INSERT INTO child (p) VALUES (42)').run() })
  const said: string[] = []
  const write = process.stderr.write.bind(process.stderr)
  process.stderr.write = ((chunk: string | Uint8Array): boolean => { said.push(String(chunk)); return true }) as typeof process.stderr.write
  try {
    t.throws(() => { store.catalog.commit() }, { code: 'ReadOnly' }, 'the commit that fails throws')
  } finally {
    process.stderr.write = write
  }
  t.match(said.join(''), /failed to commit 2 answered write\(s\), which are lost: FOREIGN KEY constraint failed/, 'said on stderr')
  t.same(committed(), ['kept'], 'nothing of the group is stored')
  t.notOk(db.inTransaction, 'rolled back')
  t.throws(() => store.createBucket('later'), { code: 'ReadOnly' }, 'a later write is refused')
  t.throws(() => store.catalog.writeDurably(() => {}), { code: 'ReadOnly' }, 'a durable one too')
  t.same(store.listBuckets().map(b => b.name), ['kept'], 'reads go on')
})
