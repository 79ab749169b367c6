// WAL checkpoints of the daemon's store run on a worker thread, not inside commits:
// the WAL still starts over (stays bounded), what was committed is all there after a
// reopen, and a failed worker hands checkpoints back to SQLite's own.
import t from 'tap'
import type {} from 'tap' // the global tap.Test type
import fs from 'node:fs'
import path from 'node:path'
import { Store } from '../src/store'
import { NUDGE_COMMITS } from '../src/meta/checkpointer'
import { AUTOCHECKPOINT_PAGES } from '../src/meta/db'
import { tempStore, until } from './helpers/store'

/** The WAL header's checkpoint sequence number: it grows each time the WAL starts over. */
function walRestarts (dir: string): number {
  const fd = fs.openSync(path.join(dir, 'meta.db-wal'), 'r')
  try {
    const header = Buffer.alloc(16)
    fs.readSync(fd, header, 0, 16, 0)
    return header.readUInt32BE(12)
  } finally {
    fs.closeSync(fd)
  }
}

const autocheckpoint = (store: Store): number => store.catalog.db.pragma('wal_autocheckpoint', { simple: true }) as number

t.test('a store opened without it checkpoints inside commits, as SQLite does', async t => {
  const { store } = tempStore(t)
  t.equal(store.catalog.checkpointer, null)
  t.equal(autocheckpoint(store), AUTOCHECKPOINT_PAGES)
})

t.test('the daemon\'s store: checkpoints on a worker, the WAL starts over under steady writes, nothing is lost', async t => {
  const ts = tempStore(t, { backgroundCheckpoints: true })
  const { dir, store } = ts
  const cp = store.catalog.checkpointer
  if (cp === null) throw new Error('no checkpointer')
  t.equal(autocheckpoint(store), 0, 'the connection does not checkpoint in its commits')
  store.createBucket('ckpt')
  const wal = path.join(dir, 'meta.db-wal')
  const restartsBefore = walRestarts(dir)
  // Steady writes, yielding to the event loop between them as the daemon does between
  // FUSE ops, never idle long enough for a worker's checkpoint alone to catch up.
  const commits = 20 * NUDGE_COMMITS
  let longest = 0
  for (let i = 0; i < commits; i++) {
    if (i % 4 === 3) store.deleteObject('ckpt', `k/${i - 1}`)
    else await store.putObject('ckpt', `k/${i}`, Buffer.from(`value ${i}`))
    if (i % 64 === 0) longest = Math.max(longest, fs.statSync(wal).size)
    await new Promise(resolve => setImmediate(resolve))
  }
  const restarts = walRestarts(dir) - restartsBefore
  const stats = cp.stats()
  t.ok(stats.checkpoints >= 10, `the worker checkpointed (${stats.checkpoints} times)`)
  t.ok(stats.catchUps >= 10, `and the main thread caught up after it (${stats.catchUps} times, ${stats.catchUpMs.toFixed(1)} ms in all)`)
  t.ok(restarts >= 10, `the WAL started over during the writes (${restarts} times)`)
  // Each commit writes at least 3 pages (a version row and two index entries), so a
  // WAL that never started over would hold over 60,000 frames. The file keeps its
  // longest size, so one checkpoint the worker ran late (a loaded CI machine: 21,281
  // frames once) sets it: half the never-restarted size is the bound.
  const frames = (longest - 32) / (4096 + 24)
  t.ok(frames < 30000, `the WAL stayed short: ${Math.round(frames)} frames at its longest, after ${commits} commits`)

  const reopened = ts.reopen()
  let listed = 0
  let token: string | undefined
  do {
    const page = reopened.listObjects('ckpt', { prefix: 'k/', continuationToken: token })
    listed += page.contents.length
    token = page.nextContinuationToken
  } while (token !== undefined)
  t.equal(listed, commits / 2, 'every object committed is there after a reopen')
  t.equal(reopened.headObject('ckpt', 'k/0').size, 'value 0'.length)
})

t.test('a worker that fails hands checkpoints back to the connection', async t => {
  const { store } = tempStore(t, { backgroundCheckpoints: true })
  const cp = store.catalog.checkpointer
  if (cp === null) throw new Error('no checkpointer')
  await cp.thread?.terminate()
  t.ok(await until(() => autocheckpoint(store) === AUTOCHECKPOINT_PAGES), 'SQLite checkpoints in commits again')
  store.createBucket('after')
  cp.committed(1)
  cp.nudge()
  t.ok(store.headBucket('after') !== undefined, 'writes go on')
})

t.test('close ends the worker', async t => {
  const ts = tempStore(t, { backgroundCheckpoints: true })
  const cp = ts.store.catalog.checkpointer
  if (cp === null) throw new Error('no checkpointer')
  const worker = cp.thread
  if (worker === null) throw new Error('no worker')
  const exited = new Promise<number>(resolve => { worker.once('exit', resolve) })
  ts.store.createBucket('closing')
  ts.close()
  t.equal(await exited, 0, 'the worker thread ended by itself')
  t.notOk(fs.existsSync(path.join(ts.dir, 'meta.db-wal')), 'the last connection closed checkpointed and removed the WAL')
})
