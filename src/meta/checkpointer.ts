// WAL checkpoints off the event loop. A checkpoint copies committed pages from the
// WAL into the database file and fsyncs both; run by SQLite's autocheckpoint inside
// whichever commit crosses the threshold, it cost the daemon's main thread 16 µs a
// commit on average (5,000 deletes, one commit each: 63 µs a delete, 47 with no
// checkpoints at all). The daemon's connection turns autocheckpoint off and a worker
// thread, with a connection of its own, runs PASSIVE checkpoints (which never hold
// the writer up) after every NUDGE_COMMITS commits, and IDLE_MS after the first of
// fewer. A checkpoint is safe to cut short at any point (SQLite redoes it), so the
// worker does not keep the process alive while it runs one. If the worker dies, the
// connection checkpoints itself again.
import { Worker } from 'node:worker_threads'
import createDebug from 'debug'
import type { Db } from './db'
import { AUTOCHECKPOINT_PAGES } from './db'
import { messageOf } from '../errors'

const log = createDebug('bucketfs:meta')

/** Commits between checkpoints: about 9 WAL pages each in rm -rf, so some 20 MB of WAL. */
export const NUDGE_COMMITS = 512
/** Commits fewer than NUDGE_COMMITS are checkpointed this long after the first of them. */
const IDLE_MS = 1000

/** A checkpoint pass that copied more frames than this is followed by another. */
const AGAIN_FRAMES = 256

// Source text, so the same worker runs from dist/ and under tap's TypeScript loader.
// A failed checkpoint (a full disk, say) is answered, not thrown: the next may pass.
const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads')
const Database = require(workerData.sqlite)
const db = new Database(workerData.file, { timeout: 5000 })
db.pragma('wal_autocheckpoint = 0')
parentPort.on('message', m => {
  if (m === 'close') { db.close(); parentPort.close(); return }
  try {
    // Again while the last pass had much to copy: what the writer committed meanwhile.
    let r, before = 0
    for (let pass = 0; pass < 4; pass++) {
      [r] = db.pragma('wal_checkpoint(PASSIVE)')
      if (r.busy !== 0 || r.log < before || r.log - before <= workerData.again) break
      before = r.log
    }
    parentPort.postMessage({ busy: r.busy, log: r.log, checkpointed: r.checkpointed })
  } catch (err) {
    parentPort.postMessage({ error: String(err && err.message || err) })
  }
})
`

interface Answer { busy?: number, log?: number, checkpointed?: number, error?: string }

export interface CheckpointStats {
  /** Checkpoints the worker finished. */
  checkpoints: number
  /** Of them, those the main thread then caught up (the next commit starts the WAL over). */
  catchUps: number
  /** Main-thread time those catch-ups took. */
  catchUpMs: number
  failures: number
}

export class Checkpointer {
  private worker: Worker | null
  private commits = 0
  private timer: NodeJS.Timeout | null = null
  /** A checkpoint was asked for and not answered yet; another is wanted after it. */
  private inFlight = false
  private again = false
  private readonly counts: CheckpointStats = { checkpoints: 0, catchUps: 0, catchUpMs: 0, failures: 0 }

  /** `settle` commits what the connection holds uncommitted (a catch-up cannot run inside a transaction). */
  constructor (private readonly db: Db, file: string, private readonly settle: () => void = () => {}) {
    const w = new Worker(WORKER_SOURCE, { eval: true, workerData: { file, sqlite: require.resolve('better-sqlite3'), again: AGAIN_FRAMES } })
    w.on('message', (a: Answer) => { this.answered(a) })
    w.on('error', err => { this.fail(w, err) })
    w.on('exit', code => { this.fail(w, new Error(`the checkpoint worker exited with ${code}`)) })
    w.unref()
    this.worker = w
    db.pragma('wal_autocheckpoint = 0')
  }

  stats (): Readonly<CheckpointStats> { return { ...this.counts } }

  /** The worker while it runs (tests end it to see the fallback). */
  get thread (): Worker | null { return this.worker }

  /** A commit of `writes` write transactions (several, for a group). */
  committed (writes: number): void {
    if (this.worker === null) return
    this.commits += writes
    if (this.commits >= NUDGE_COMMITS) {
      this.nudge()
    } else if (this.timer === null) {
      this.timer = setTimeout(() => { this.timer = null; this.nudge() }, IDLE_MS)
      this.timer.unref()
    }
  }

  /** Asks the worker for a checkpoint of what has been committed (after the one it runs, if any). */
  nudge (): void {
    this.clearTimer()
    if (this.worker === null || this.commits === 0) return
    this.commits = 0
    if (this.inFlight) this.again = true
    else this.post()
  }

  private post (): void {
    this.inFlight = true
    this.worker?.postMessage('checkpoint')
  }

  /**
   * The worker closes its connection and ends; the process waits for that. Called after
   * the caller's connection closed, so the worker's is the last, which checkpoints and
   * removes the WAL.
   */
  close (): void {
    this.clearTimer()
    const w = this.worker
    if (w === null) return
    this.worker = null // (its exit is no failure now)
    w.ref()
    w.postMessage('close')
  }

  private answered (a: Answer): void {
    // A catch-up cannot run inside a transaction: the connection's open one is committed
    // first, while this pass still counts as in flight (so the commit's nudge waits for it).
    const catchUp = a.error === undefined && a.busy === 0 && a.checkpointed === a.log && this.db.open
    if (catchUp) {
      try { this.settle() } catch {} // (a failed commit is reported by its connection)
    }
    this.inFlight = false
    if (a.error !== undefined) {
      this.counts.failures++
      log('checkpoint failed: %s', a.error)
    } else {
      this.counts.checkpoints++
      log('checkpoint: %d of %d WAL frames in the database file%s', a.checkpointed, a.log, a.busy !== 0 ? ' (busy)' : '')
      // The writer starts the WAL over only if a checkpoint has copied every frame when
      // its transaction begins, which a busy writer's frames always outrun. Copying the
      // frames committed since (and two fsyncs) here makes the next commit start it
      // over, so it stays near NUDGE_COMMITS commits long.
      if (catchUp) this.catchUp()
    }
    if (this.again) { this.again = false; this.post() }
  }

  private catchUp (): void {
    const started = performance.now()
    try {
      this.db.pragma('wal_checkpoint(PASSIVE)')
      this.counts.catchUps++
    } catch (err) {
      // As SQLite's own autocheckpoint does, a failed checkpoint fails nothing else.
      this.counts.failures++
      log('catch-up checkpoint failed: %s', messageOf(err))
    }
    this.counts.catchUpMs += performance.now() - started
  }

  private fail (w: Worker, err: Error): void {
    if (this.worker !== w) return
    log('checkpoint worker failed, checkpointing on the main thread again: %s', err.message)
    this.worker = null
    this.clearTimer()
    if (this.db.open) this.db.pragma(`wal_autocheckpoint = ${AUTOCHECKPOINT_PAGES}`)
  }

  private clearTimer (): void {
    if (this.timer !== null) { clearTimeout(this.timer); this.timer = null }
  }
}
