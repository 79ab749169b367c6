// native/walbuf.c: SQLite's WAL frames of a commit are written in one call. A commit is
// one write whatever its size (the largest ones in several, each under the default
// VFS's 128 KiB limit), another connection sees each commit at once, and a process
// killed with SIGKILL between commits leaves a database whose every reported commit
// is there and whose integrity check passes.
import t from 'tap'
import type {} from 'tap' // the global tap.Test type
import fs from 'node:fs'
import path from 'node:path'
import { spawn } from 'node:child_process'
import { openDatabase, walBuffered } from '../src/meta/db'
import type { Db } from '../src/meta/db'

const ROOT = path.resolve(__dirname, '..')
const BUILT_DB = path.join(ROOT, 'dist', 'src', 'meta', 'db.js')

interface Counts { writes: number, flushes: number, through: number }
function counts (db: Db): Counts {
  const [writes, flushes, , through] = (db.prepare('SELECT bucketfs_walbuf() AS s').get() as { s: string }).s.split(' ').map(Number)
  return { writes, flushes, through }
}

/** integrity_check and fn's answer from a connection of its own, which reads the files (not a writer's page cache). */
function fromFile<T> (file: string, fn: (db: Db) => T): { integrity: unknown, answer: T } {
  const db = openDatabase(file)
  try {
    return { integrity: db.pragma('integrity_check', { simple: true }), answer: fn(db) }
  } finally {
    db.close()
  }
}

/** How many rows of kv hold v (and tag, if given). */
function holding (db: Db, v: Buffer, tag?: string): number {
  const where = tag === undefined ? 'v = ?' : 'v = ? AND tag = ?'
  return (db.prepare(`SELECT count(*) AS n FROM kv WHERE ${where}`).get(...(tag === undefined ? [v] : [v, tag])) as { n: number }).n
}

/** A database in the test's own directory (t.testdir() makes it afresh: call it once). */
function tempDb (t: tap.Test, file = path.join(t.testdir(), 'w.db')): Db {
  const db = openDatabase(file)
  t.teardown(() => { if (db.open) db.close() })
  db.exec('CREATE TABLE IF NOT EXISTS kv (k INTEGER PRIMARY KEY, v BLOB NOT NULL, tag TEXT NOT NULL)')
  db.exec('CREATE INDEX IF NOT EXISTS kv_by_tag ON kv(tag)')
  return db
}

/** The children run the built db.js: a test that needs one fails when dist/ is missing. */
function built (t: tap.Test): boolean {
  if (fs.existsSync(BUILT_DB)) return true
  t.fail('dist/ is missing: run `npm run build` before this test')
  return false
}

interface Child {
  kill: () => void
  exited: Promise<{ code: number | null, signal: NodeJS.Signals | null }>
  /** Answers once the child printed a whole line (or ended). */
  firstLine: Promise<void>
  /** Answers once the child printed a line that `re` matches (or ended). */
  printed: (re: RegExp) => Promise<void>
  out: () => string
  err: () => string
}

/** `node -e source` with the built db.js and args after it, its output collected. */
function runChild (source: string, ...args: string[]): Child {
  const child = spawn(process.execPath, ['-e', source, BUILT_DB, ...args], { stdio: ['ignore', 'pipe', 'pipe'] })
  let out = ''
  let err = ''
  const exited = new Promise<{ code: number | null, signal: NodeJS.Signals | null }>(resolve => { child.once('exit', (code, signal) => { resolve({ code, signal }) }) })
  const waiting: Array<{ re: RegExp, resolve: () => void }> = []
  const check = (): void => {
    for (const w of waiting.splice(0)) {
      if (w.re.test(out)) w.resolve()
      else waiting.push(w)
    }
  }
  child.stdout.on('data', (b: Buffer) => { out += b.toString(); check() })
  let ended = false
  void exited.then(() => { ended = true; for (const w of waiting.splice(0)) w.resolve() })
  const printed = async (re: RegExp): Promise<void> => {
    if (ended) return
    await new Promise<void>(resolve => { waiting.push({ re, resolve }); check() })
  }
  child.stderr.on('data', (b: Buffer) => { err += b.toString() })
  return { kill: () => { child.kill('SIGKILL') }, exited, firstLine: printed(/\n/), printed, out: () => out, err: () => err }
}

t.test('the extension is built and loaded', async t => {
  t.ok(walBuffered(), 'native/build/Release/walbuf.node loads (npm install builds it)')
})

t.test('a commit of several pages is one write', async t => {
  const file = path.join(t.testdir(), 'w.db')
  const db = tempDb(t, file)
  const insert = db.prepare('INSERT INTO kv (k, v, tag) VALUES (?, ?, ?)')
  for (let i = 0; i < 200; i++) insert.run(i, Buffer.alloc(500, i), `tag ${i}`) // several pages to change later
  const before = counts(db)
  db.transaction(() => {
    for (const k of [3, 70, 140, 199]) db.prepare('UPDATE kv SET v = ?, tag = ? WHERE k = ?').run(Buffer.alloc(500, 0xee), `new ${k}`, k)
  })()
  const after = counts(db)
  const frameWrites = after.writes - before.writes
  t.ok(frameWrites >= 6, `SQLite wrote ${frameWrites} pieces (a header and a page per frame)`)
  t.equal(after.flushes - before.flushes, 1, 'in one write to the file')
  const seen = fromFile(file, other => other.prepare('SELECT tag FROM kv WHERE k = 140').get() as { tag: string })
  t.equal(seen.integrity, 'ok', 'another connection finds the database whole')
  t.equal(seen.answer.tag, 'new 140', 'and the commit in it')
})

t.test('a commit larger than one write goes in several, and reads back whole', async t => {
  const file = path.join(t.testdir(), 'w.db')
  const db = tempDb(t, file)
  const before = counts(db)
  const blob = (i: number): Buffer => Buffer.alloc(3000, i & 0xff)
  db.transaction(() => {
    const insert = db.prepare('INSERT INTO kv (k, v, tag) VALUES (?, ?, ?)')
    for (let i = 0; i < 1000; i++) insert.run(i, blob(i), `t${i % 7}`) // about 3 MB: some 800 frames
  })()
  const after = counts(db)
  t.ok(after.flushes - before.flushes >= 20, `${after.flushes - before.flushes} writes, each under 128 KiB`)
  const seen = fromFile(file, other => other.prepare('SELECT k, v FROM kv ORDER BY k').all() as Array<{ k: number, v: Buffer }>)
  t.equal(seen.integrity, 'ok', 'another connection finds the database whole')
  t.equal(seen.answer.length, 1000)
  t.ok(seen.answer.every(r => r.v.equals(blob(r.k))), 'every row reads back as written')
})

// The child makes one transaction that spills (a cache of 20 pages makes SQLite write
// pages of the open transaction to the WAL) and changes the spilled pages again (which
// rewrites their frames in place; the commit then rewrites the frame headers with new
// checksums: writes below the WAL's end, which go straight through). Another connection
// copies the WAL into the database file, then the child is killed: recovery, which reads
// the WAL from the file alone, must find that commit.
const SPILL_CHILD = `
const { openDatabase, walBuffered } = require(process.argv[1])
const db = openDatabase(process.argv[2])
db.pragma('cache_size = 20')
db.transaction(() => {
  const insert = db.prepare('INSERT INTO kv (k, v, tag) VALUES (?, ?, ?)')
  for (let i = 0; i < 1500; i++) insert.run(i, Buffer.alloc(600, 1), 'a')
})()
const before = db.prepare('SELECT bucketfs_walbuf() AS s').get().s.split(' ')[3]
db.transaction(() => {
  db.prepare('UPDATE kv SET v = ?, tag = ?').run(Buffer.alloc(600, 2), 'b')
  db.prepare('UPDATE kv SET v = ?, tag = ?').run(Buffer.alloc(600, 3), 'c')
})()
const after = db.prepare('SELECT bucketfs_walbuf() AS s').get().s.split(' ')[3]
const other = openDatabase(process.argv[2])
other.pragma('wal_checkpoint(PASSIVE)')
process.stdout.write('walbuf ' + walBuffered() + ' through ' + (after - before) + '\\n')
setInterval(() => {}, 1000)
`

t.test('a transaction that spills and rewrites its pages, then a crash: recovery finds its commit', async t => {
  if (!built(t)) return
  const file = path.join(t.testdir(), 'spill.db')
  tempDb(t, file).close() // the table
  const child = runChild(SPILL_CHILD, file)
  await child.firstLine
  child.kill()
  await child.exited
  const m = /^walbuf true through (\d+)\n/.exec(child.out())
  t.ok(m !== null, 'the child wrote through the extension', { out: child.out(), err: child.err() })
  t.ok(Number(m?.[1] ?? 0) > 0, `rewrites went straight through (${m?.[1] ?? 0})`)
  const seen = fromFile(file, c => holding(c, Buffer.alloc(600, 3), 'c'))
  t.equal(seen.integrity, 'ok')
  t.equal(seen.answer, 1500, 'every row has its last value')
})

// What a transaction spilled and then rolled back is written (if still gathered) before
// the write lock goes, never later over frames another connection committed. (SQLite's
// rollback usually reads the WAL, which writes them too: this passed before the lock
// release wrote them as well.)
t.test('a transaction that spilled and rolled back leaves nothing to be written later', async t => {
  const file = path.join(t.testdir(), 'w.db')
  const a = tempDb(t, file)
  a.pragma('cache_size = 20')
  a.transaction(() => {
    const insert = a.prepare('INSERT INTO kv (k, v, tag) VALUES (?, ?, ?)')
    for (let i = 0; i < 1500; i++) insert.run(i, Buffer.alloc(600, 1), 'a')
  })()
  const b = openDatabase(file)
  t.teardown(() => { if (b.open) b.close() })
  // a spills frames of a change it then rolls back...
  a.exec('BEGIN IMMEDIATE')
  a.prepare('UPDATE kv SET v = ?').run(Buffer.alloc(600, 0xaa))
  a.exec('ROLLBACK')
  // ...b commits frames where they lay...
  b.prepare('UPDATE kv SET v = ?').run(Buffer.alloc(600, 0xbb))
  // ...and a touches the WAL again: nothing of its rolled-back frames may land now.
  t.equal(holding(a, Buffer.alloc(600, 0xbb)), 1500)
  const seen = fromFile(file, c => holding(c, Buffer.alloc(600, 0xbb)))
  t.equal(seen.integrity, 'ok')
  t.equal(seen.answer, 1500, "b's commit is whole")
})

t.test('another connection sees each commit at once', async t => {
  const file = path.join(t.testdir(), 'w.db')
  const db = tempDb(t, file)
  const reader = openDatabase(file)
  t.teardown(() => { reader.close() })
  const count = reader.prepare('SELECT count(*) AS n FROM kv')
  let seen = 0
  for (let i = 0; i < 100; i++) {
    db.prepare('INSERT INTO kv (k, v, tag) VALUES (?, ?, ?)').run(i, Buffer.alloc(100, i), 'x')
    if ((count.get() as { n: number }).n === i + 1) seen++
  }
  t.equal(seen, 100, 'the reader saw all 100 commits as they were made')
})

// The child commits numbered rows, one per transaction, and prints each number once
// its commit returned; it is killed at a random moment.
const CHILD = `
const { openDatabase, walBuffered } = require(process.argv[1])
const db = openDatabase(process.argv[2])
process.stdout.write('walbuf ' + walBuffered() + '\\n')
const insert = db.prepare('INSERT INTO kv (k, v, tag) VALUES (?, ?, ?)')
let k = 0
setInterval(() => {
  for (let j = 0; j < 20; j++) {
    k++
    db.transaction(() => { insert.run(k, Buffer.alloc(1500 + (k % 7) * 900, k & 0xff), 'tag ' + (k % 13)) })()
    process.stdout.write(k + '\\n')
  }
}, 1)
`

t.test('killed with SIGKILL between commits: every reported commit is there', async t => {
  if (!built(t)) return
  const dir = t.testdir()
  for (const killAfterMs of [20, 150, 500]) {
    const file = path.join(dir, `crash-${killAfterMs}.db`)
    tempDb(t, file).close() // the table
    const child = runChild(CHILD, file)
    // Killed that long after its first commit was reported (a loaded machine may take a
    // while to make it after the child's first line).
    await child.printed(/^\d+$/m)
    await Promise.race([new Promise(resolve => setTimeout(resolve, killAfterMs)), child.exited])
    child.kill()
    const { signal } = await child.exited
    t.equal(signal, 'SIGKILL', `the child was killed ${killAfterMs} ms after its first commit`, { stderr: child.err() })
    t.match(child.out(), /^walbuf true\n/, 'the child wrote through the extension')
    const reported = child.out().split('\n').filter(l => /^\d+$/.test(l)).map(Number)
    const last = reported.length === 0 ? 0 : reported[reported.length - 1]
    const seen = fromFile(file, db => ({
      ...(db.prepare('SELECT count(*) AS n, max(k) AS top FROM kv').get() as { n: number, top: number | null }),
      torn: (db.prepare('SELECT count(*) AS c FROM kv WHERE length(v) != 1500 + (k % 7) * 900').get() as { c: number }).c
    }))
    t.equal(seen.integrity, 'ok', 'the database is whole')
    t.ok(last > 0 && seen.answer.n >= last, `${seen.answer.n} rows; the child reported ${last} commits`)
    t.equal(seen.answer.n, seen.answer.top ?? 0, 'the rows are 1..n, none missing')
    t.equal(seen.answer.torn, 0, 'every row is whole')
  }
})

// Processes writing the same database at once (the daemon and the CLI do): each commits
// its own rows, one or a few per transaction, through the extension; SQLite's own
// checkpoints restart the WAL under them. Every row of every writer is there after.
const WRITER = `
const { openDatabase, walBuffered } = require(process.argv[1])
const db = openDatabase(process.argv[2])
const me = Number(process.argv[3])
const insert = db.prepare('INSERT INTO kv (k, v, tag) VALUES (?, ?, ?)')
for (let i = 0; i < 1500; i++) {
  const k = me * 100000 + i
  db.transaction(() => {
    insert.run(k, Buffer.alloc(700 + (i % 5) * 500, me), 'w' + me)
    if (i % 10 === 0) db.prepare('UPDATE kv SET tag = tag WHERE k = ?').run(me * 100000)
  })()
}
process.stdout.write('walbuf ' + walBuffered() + '\\n')
`

t.test('processes writing at once: every commit of each is there', async t => {
  if (!built(t)) return
  const file = path.join(t.testdir(), 'shared.db')
  tempDb(t, file).close() // the table, made before the writers start
  const writers = [1, 2, 3].map(me => runChild(WRITER, file, String(me)))
  for (const [i, w] of writers.entries()) {
    t.equal((await w.exited).code, 0, `writer ${i + 1} finished`, { stderr: w.err() })
    t.equal(w.out(), 'walbuf true\n', `writer ${i + 1} wrote through the extension`)
  }
  const seen = fromFile(file, db => db.prepare('SELECT tag, count(*) AS n, sum(length(v)) AS bytes FROM kv GROUP BY tag ORDER BY tag').all() as Array<{ tag: string, n: number, bytes: number }>)
  t.equal(seen.integrity, 'ok', 'the database is whole')
  const bytes = Array.from({ length: 1500 }, (_, i) => 700 + (i % 5) * 500).reduce((a, b) => a + b, 0)
  t.same(seen.answer, [1, 2, 3].map(me => ({ tag: `w${me}`, n: 1500, bytes })), 'every row of every writer, whole')
})
