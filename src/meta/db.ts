// Where SQLite is opened (but for the daemon's checkpoint worker, checkpointer.ts,
// whose connection only checkpoints). WAL, one writer connection per process, a busy
// timeout so another process's writes wait instead of failing, and numbered migrations.
import Database from 'better-sqlite3'
import fs from 'node:fs'
import path from 'node:path'
import createDebug from 'debug'
import { MIGRATIONS, REBUILDS } from './migrations'
import { fromSystemError, messageOf, STORE_LOCKED } from '../errors'
import { readLock, holderAlive } from '../mount/lock'
import { walbufExtension } from '../addon'

const log = createDebug('bucketfs:meta')

export type Db = Database.Database
export type Statement = Database.Statement

/** SQLite's own checkpoints, where no Checkpointer runs them: every 4,000 WAL pages. */
export const AUTOCHECKPOINT_PAGES = 4000

export interface OpenOptions { readonly?: boolean, busyTimeoutMs?: number }

let walBuffering: boolean | undefined

/**
 * Whether the process's SQLite writes each WAL commit in one call (the extension is
 * loaded once, before the first database opens, and serves every connection after).
 * Without it (not built, or refused), SQLite writes frame by frame as it always does.
 */
export function walBuffered (): boolean {
  if (walBuffering === undefined) {
    walBuffering = false
    const walbuf = walbufExtension()
    if (walbuf !== undefined) {
      const loader = new Database(':memory:')
      try {
        loader.loadExtension(walbuf) // entry point sqlite3_walbuf_init, from the file's name
        walBuffering = true
      } catch (err) {
        log('WAL writes stay frame by frame: %s', messageOf(err))
      } finally {
        loader.close()
      }
    } else {
      log('WAL writes stay frame by frame: native/ is not built')
    }
  }
  return walBuffering
}

export function openDatabase (file: string, opts: OpenOptions = {}): Db {
  walBuffered()
  const existed = fs.existsSync(file)
  const db = new Database(file, { readonly: opts.readonly === true, timeout: opts.busyTimeoutMs ?? 30000 })
  if (!existed) fs.chmodSync(file, 0o600)
  db.pragma('journal_mode = WAL')
  db.pragma('synchronous = NORMAL')
  db.pragma('foreign_keys = OFF')
  db.pragma('cache_size = -65536') // 64 MiB page cache
  db.pragma('temp_store = MEMORY')
  db.pragma(`wal_autocheckpoint = ${AUTOCHECKPOINT_PAGES}`)
  if (opts.readonly !== true) {
    try {
      migrate(db, path.dirname(file))
    } catch (err) {
      db.close()
      throw err
    }
  }
  for (const suffix of ['-wal', '-shm']) {
    try { fs.chmodSync(file + suffix, 0o600) } catch {}
  }
  return db
}

function migrate (db: Db, dataDir: string): void {
  const current = db.pragma('user_version', { simple: true }) as number
  if (current > MIGRATIONS.length) {
    throw new Error(`the store's schema (version ${current}) is newer than this bucketfs (${MIGRATIONS.length}); upgrade bucketfs`)
  }
  // A mount of an earlier bucketfs would fail on every statement once its tables are rebuilt.
  const rebuild = [...REBUILDS].find(v => v > current && v <= MIGRATIONS.length)
  const holder = rebuild === undefined ? undefined : readLock(dataDir)
  if (holder !== undefined && holder.pid !== process.pid && holderAlive(holder)) {
    throw STORE_LOCKED(`the store needs schema migration ${rebuild ?? ''}, which rebuilds its tables, and is mounted at ${holder.mountpoint} by pid ${holder.pid}: unmount it first`)
  }
  for (let v = current; v < MIGRATIONS.length; v++) {
    db.transaction(() => {
      const m = MIGRATIONS[v]
      if (typeof m === 'string') db.exec(m)
      else m(db)
      db.pragma(`user_version = ${v + 1}`)
    }).immediate()
    log('migrated schema to version %d', v + 1)
  }
}

/**
 * One transaction function per connection that runs what it is given: better-sqlite3
 * builds four wrappers for each db.transaction(fn), which cost 1.6 % of an rsync when
 * made per call.
 */
const runners = new WeakMap<Db, Database.Transaction<(fn: () => unknown) => unknown>>()
export function runner (db: Db): Database.Transaction<(fn: () => unknown) => unknown> {
  let r = runners.get(db)
  if (r === undefined) {
    r = db.transaction((fn: () => unknown) => fn())
    runners.set(db, r)
  }
  return r
}

/** Runs fn in one IMMEDIATE transaction (the write lock is taken up front, so no upgrade deadlocks). */
export function writeTransaction<T> (db: Db, fn: () => T): T {
  try {
    return runner(db).immediate(fn) as T
  } catch (err) {
    throw fromSystemError(err)
  }
}

/** Runs fn as a savepoint of the transaction the connection has open. */
export function savepoint<T> (db: Db, fn: () => T): T {
  try {
    return runner(db)(fn) as T
  } catch (err) {
    throw fromSystemError(err)
  }
}

/** Like writeTransaction, but the commit reaches the disk before it returns (power-loss safe). */
export function durableWriteTransaction<T> (db: Db, fn: () => T): T {
  db.pragma('synchronous = FULL')
  try {
    return writeTransaction(db, fn)
  } finally {
    db.pragma('synchronous = NORMAL')
  }
}
