// WAL checkpoints of the daemon's store run on a worker thread, not inside commits:
// the WAL still starts over (stays bounded), what was committed is all there after a
// reopen, and a failed worker hands checkpoints back to SQLite's own.
import t from 'tap'
import type {} from 'tap' // the global tap.Test type
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import type { Worker } from 'node:worker_threads'
import { Store } from '../src/store'
import { NUDGE_COMMITS } from '../src/meta/checkpointer'
import { AUTOCHECKPOINT_PAGES } from '../src/meta/db'

function tempDir (t: tap.Test): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bucketfs-ckpt-'))
  t.teardown(() => { fs.rmSync(dir, { recursive: true, force: true }) })
  return dir
}

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

async function until (cond: () => boolean, ms = 20000): Promise<boolean> {
  const end = Date.now() + ms
  while (!cond()) {
    if (Date.now() > end) return false
    await new Promise(resolve => setTimeout(resolve, 10))
  }
  return true
}

const autocheckpoint = (store: Store): number => store.catalog.db.pragma('wal_autocheckpoint', { simple: true }) as number

t.test('a store opened without it checkpoints inside commits, as SQLite does', async t => {
  const store = Store.open(tempDir(t))
  t.teardown(() => { store.close() })
  t.equal(store.catalog.checkpointer, null)
  t.equal(autocheckpoint(store), AUTOCHECKPOINT_PAGES)
})

t.test('the daemon\'s store: checkpoints on a worker, the WAL starts over, nothing is lost', async t => {
  const dir = tempDir(t)
  let store = Store.open(dir, { backgroundCheckpoints: true })
  t.teardown(() => { store.close() })
  const cp = store.catalog.checkpointer
  if (cp === null) throw new Error('no checkpointer')
  t.equal(autocheckpoint(store), 0, 'the connection does not checkpoint in its commits')
  store.createBucket('ckpt')
  const restartsBefore = walRestarts(dir)
  const keys = 3 * NUDGE_COMMITS
  for (let i = 0; i < keys; i++) {
    await store.putObject('ckpt', `k/${i}`, Buffer.from(`value ${i}`))
    if (i % 3 === 0) store.deleteObject('ckpt', `k/${i}`)
    await new Promise(resolve => setImmediate(resolve)) // as between FUSE ops
  }
  t.ok(await until(() => cp.done >= 2), `the worker checkpointed (${cp.done} times)`)
  // The WAL starts over at the first commit after a checkpoint that caught up.
  await until(() => { store.createBucket(`b${Date.now()}`); return walRestarts(dir) >= restartsBefore + 2 }, 5000)
  t.ok(walRestarts(dir) >= restartsBefore + 2, `the WAL started over (${walRestarts(dir) - restartsBefore} times)`)
  // The file keeps its longest length: it was never much longer than NUDGE_COMMITS commits.
  const walFrames = (fs.statSync(path.join(dir, 'meta.db-wal')).size - 32) / (4096 + 24)
  const framesPerCommit = walFrames / NUDGE_COMMITS
  t.ok(framesPerCommit < 40, `the WAL stays short: ${Math.round(walFrames)} frames at most, after ${keys * 4 / 3} commits`)

  store.close()
  store = Store.open(dir)
  let listed = 0
  let token: string | undefined
  do {
    const page = store.listObjects('ckpt', { prefix: 'k/', continuationToken: token })
    listed += page.contents.length
    token = page.nextContinuationToken
  } while (token !== undefined)
  t.equal(listed, keys - Math.ceil(keys / 3), 'every object committed is there after a reopen')
  t.equal(store.headObject('ckpt', 'k/1').size, 'value 1'.length)
})

t.test('a worker that fails hands checkpoints back to the connection', async t => {
  const store = Store.open(tempDir(t), { backgroundCheckpoints: true })
  t.teardown(() => { store.close() })
  const cp = store.catalog.checkpointer
  if (cp === null) throw new Error('no checkpointer')
  const worker = cp['worker'] as Worker
  await worker.terminate()
  t.ok(await until(() => autocheckpoint(store) === AUTOCHECKPOINT_PAGES), 'SQLite checkpoints in commits again')
  store.createBucket('after')
  cp.committed()
  cp.nudge()
  t.ok(store.headBucket('after') !== undefined, 'writes go on')
})

t.test('close ends the worker', async t => {
  const dir = tempDir(t)
  const store = Store.open(dir, { backgroundCheckpoints: true })
  const cp = store.catalog.checkpointer
  if (cp === null) throw new Error('no checkpointer')
  const worker = cp['worker'] as Worker
  const exited = new Promise<number>(resolve => { worker.once('exit', resolve) })
  store.createBucket('closing')
  store.close()
  t.equal(await exited, 0, 'the worker thread ended by itself')
  t.notOk(fs.existsSync(path.join(dir, 'meta.db-wal')), 'the last connection closed checkpointed and removed the WAL')
})
