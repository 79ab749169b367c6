// WAL checkpoints off the event loop. A checkpoint copies committed pages from the
// WAL into the database file and fsyncs both; run by SQLite's autocheckpoint inside
// whichever commit crosses the threshold, it cost the daemon's main thread 16 µs a
// commit on average (5,000 deletes, one commit each: 63 µs a delete, 47 with no
// checkpoints at all). The daemon's connection turns autocheckpoint off and a worker
// thread, with a connection of its own, runs PASSIVE checkpoints (which never hold
// the writer up) after every NUDGE_COMMITS commits and IDLE_MS after the last one.
// A checkpoint is safe to cut short at any point (SQLite redoes it), so the worker
// never keeps the process alive. If the worker fails, the connection checkpoints
// itself again.
import { Worker } from 'node:worker_threads'
import createDebug from 'debug'
import type { Db } from './db'
import { AUTOCHECKPOINT_PAGES } from './db'

const log = createDebug('bucketfs:meta')

/** About 9 WAL pages a commit: a checkpoint every 20 MB or so of WAL. */
export const NUDGE_COMMITS = 512
/** Commits fewer than NUDGE_COMMITS are checkpointed this long after the first of them. */
const IDLE_MS = 1000

/** A checkpoint pass that copied more frames than this is followed by another. */
const AGAIN_FRAMES = 256

// Source text, so the same worker runs from dist/ and under tap's TypeScript loader.
const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads')
const Database = require(workerData.sqlite)
const db = new Database(workerData.file, { timeout: 5000 })
db.pragma('wal_autocheckpoint = 0')
parentPort.on('message', m => {
  if (m === 'close') { db.close(); parentPort.close(); return }
  // Again while the last pass had much to copy: what the writer committed meanwhile.
  let r, before = 0
  for (let pass = 0; pass < 4; pass++) {
    [r] = db.pragma('wal_checkpoint(PASSIVE)')
    if (r.busy !== 0 || r.log < before || r.log - before <= workerData.again) break
    before = r.log
  }
  parentPort.postMessage({ busy: r.busy, log: r.log, checkpointed: r.checkpointed })
})
`

export interface CheckpointResult { busy: number, log: number, checkpointed: number }

export class Checkpointer {
  private worker: Worker | null
  private commits = 0
  private timer: NodeJS.Timeout | null = null
  /** Checkpoints the worker has finished (for tests and logs). */
  done = 0
  /** Called with each finished checkpoint's result (tests). */
  onCheckpoint: ((r: CheckpointResult) => void) | null = null

  constructor (private readonly db: Db, file: string) {
    const w = new Worker(WORKER_SOURCE, { eval: true, workerData: { file, sqlite: require.resolve('better-sqlite3'), again: AGAIN_FRAMES } })
    w.on('message', (r: CheckpointResult) => {
      this.done++
      log('checkpoint: %d of %d WAL frames in the database file%s', r.checkpointed, r.log, r.busy !== 0 ? ' (busy)' : '')
      // The writer starts the WAL over only when a checkpoint has copied every frame
      // when its transaction begins, which a busy writer's frames always outrun: copying
      // the few frames committed since (and two fsyncs, about 1 ms) here makes the next
      // commit start the WAL over, so it stays near NUDGE_COMMITS commits long.
      if (r.busy === 0 && r.checkpointed === r.log && this.db.open) this.db.pragma('wal_checkpoint(PASSIVE)')
      this.onCheckpoint?.(r)
    })
    w.on('error', err => { this.fail(w, err) })
    w.on('exit', code => { this.fail(w, new Error(`the checkpoint worker exited with ${code}`)) })
    w.unref()
    this.worker = w
    db.pragma('wal_autocheckpoint = 0')
  }

  /** A write transaction committed. */
  committed (): void {
    if (this.worker === null) return
    if (++this.commits >= NUDGE_COMMITS) {
      this.nudge()
    } else if (this.timer === null) {
      this.timer = setTimeout(() => { this.timer = null; this.nudge() }, IDLE_MS)
      this.timer.unref()
    }
  }

  /** Asks the worker for a checkpoint of what has been committed. */
  nudge (): void {
    if (this.timer !== null) { clearTimeout(this.timer); this.timer = null }
    if (this.worker === null || this.commits === 0) return
    this.commits = 0
    this.worker.postMessage('checkpoint')
  }

  /**
   * The worker closes its connection and ends. The process waits for it: closed after
   * the caller's, its connection is the last, which checkpoints and removes the WAL.
   */
  close (): void {
    if (this.timer !== null) { clearTimeout(this.timer); this.timer = null }
    const w = this.worker
    if (w === null) return
    this.worker = null // (its exit is no failure now)
    w.ref()
    w.postMessage('close')
  }

  private fail (w: Worker, err: Error): void {
    if (this.worker !== w) return
    log('checkpoint worker failed, checkpointing on the main thread again: %s', err.message)
    this.worker = null
    if (this.timer !== null) { clearTimeout(this.timer); this.timer = null }
    if (this.db.open) this.db.pragma(`wal_autocheckpoint = ${AUTOCHECKPOINT_PAGES}`)
  }
}
