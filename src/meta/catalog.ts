// Typed queries over the metadata database. Callers group calls into one
// transaction with `write(fn)`; nothing here commits on its own.
import type { Db, Statement } from './db'
import fs from 'node:fs'
import { dirname } from 'node:path'
import { openDatabase, writeTransaction, durableWriteTransaction, savepoint, runner } from './db'
import { READ_ONLY, fromSystemError, messageOf } from '../errors'
import { Checkpointer } from './checkpointer'
import { dirPathOf, parentPathOf } from './migrations'
import type { BucketRow, VersionRow, NewVersion, Extent, ReadableExtent, UploadRow, UploadPartRow, VersionPartRow, ChunkRow, DirFiles, LiveStatRow, MarkerRow } from './rows'

export * from './rows'

/** A version row's columns but its seq, bucket and key. */
const VCOLS_REST = `v.version_id, v.delete_marker, v.size, v.etag, v.last_modified_ms, v.content_type,
  v.headers, v.user_meta, v.mode, v.uid, v.gid, v.mtime_ms, v.ctime_ms, v.stored`
/** A VersionRow, from versions v joined to its directory d. */
const VCOLS = `v.seq, d.bucket_id, d.path || v.name AS key, ${VCOLS_REST}`

/**
 * Rows a listing reads from one directory at a time: a few at first (an rmdir asks for
 * two keys, and a walk passes through each directory above the one it lists), then
 * more each time, up to PAGE. Written into the SQL (one statement per size): a bound
 * LIMIT made SQLite prepare the statement again at each run (5 µs).
 */
const FIRST_PAGE = 4
const PAGE = 256
const nextPage = (n: number): number => Math.min(PAGE, n * 4)

/** A key's directory path and its name there ('a/b/c' -> ['a/b/', 'c'], 'a/' -> ['a/', '']). */
function splitKey (key: string): [string, string] {
  const path = dirPathOf(key)
  return [path, key.slice(path.length)]
}

/** The first path after every path under directory `path` (which ends in '/'). */
function subtreeEnd (path: string): string { return path.slice(0, -1) + '0' } // '0' follows '/'

/**
 * Orders keys as S3 does, by their UTF-8 bytes. JavaScript's < compares UTF-16 units,
 * which agrees but where a surrogate (a character past U+FFFF) meets U+E000..U+FFFF.
 */
export function compareKeys (a: string, b: string): number {
  const n = Math.min(a.length, b.length)
  for (let i = 0; i < n; i++) {
    const x = a.charCodeAt(i)
    const y = b.charCodeAt(i)
    if (x === y) continue
    const xs = x >= 0xd800 && x <= 0xdfff
    const ys = y >= 0xd800 && y <= 0xdfff
    return xs === ys ? x - y : (xs ? 1 : -1)
  }
  return a.length - b.length
}

/** How stale a cache keyed on externalGeneration may be about other processes' commits. */
const EXTERNAL_CHECK_MS = 20

/** How long unpinSoon's pins may wait for another transaction to take them along. */
const UNPIN_DELAY_MS = 100

/** A group of writes (CatalogOptions.groupCommits) is committed this long after its first write at the latest, */
export const GROUP_MS = 5
/** or once it holds this many. */
export const GROUP_WRITES = 256
/**
 * A group is opened only while the disk has this much free: its writes are answered
 * before it commits, so its commit must not meet a full disk (a disk filled from
 * elsewhere); nearer to full, each write commits on its own and can fail alone.
 */
export const GROUP_ROOM = 256 * 1024 * 1024
/** How long an answer about GROUP_ROOM holds. */
const ROOM_CHECK_MS = 10

export interface CatalogOptions {
  /** Checkpoint the WAL on a worker thread rather than inside commits (the daemon). */
  backgroundCheckpoints?: boolean
  /** Commit writes in groups (the daemon): see Catalog.write. */
  groupCommits?: boolean
  /** Free bytes a group needs on the disk (GROUP_ROOM; tests change it). */
  groupRoom?: number
}

/** Writes run in one transaction that is not committed yet: how many, and the timer that commits them. */
interface Group { writes: number, timer: NodeJS.Timeout }

/**
 * The grouping catalog of each database file in this process. Another connection of the
 * process that writes the same file commits that group first: its busy wait would hold
 * the thread that commits the group (a test, or a program, that mounts a store and
 * writes to it with the API).
 */
const groupers = new Map<string, Catalog>()

/** What a listing shows of each live key of a directory (`?`), in name order. */
const DIR_FILES = 'SELECT l.name, v.size, v.mode, v.uid, v.gid, v.mtime_ms, v.ctime_ms, v.stored FROM live l JOIN versions v ON v.seq = l.seq WHERE l.dir = ? ORDER BY l.name'
/** Up to this many keys, a directory's are read as rows (Catalog.files). */
const FEW_FILES = 64

/** A directory listing's files when it has none. */
function noFiles (): DirFiles {
  return { names: [], sizes: [], modes: [], uids: [], gids: [], mtimes: [], ctimes: [], stored: [] }
}

export class Catalog {
  readonly db: Db
  private readonly cache = new Map<string, Statement>()
  private lastDataVersion = -1

  /** Runs WAL checkpoints on a worker thread (the daemon's); else SQLite runs them in commits. */
  readonly checkpointer: Checkpointer | null

  private readonly file: string
  private readonly grouping: boolean
  private readonly groupRoom: number
  /** Writes running (a write inside another is a savepoint of it). */
  private depth = 0
  private group: Group | null = null
  /** Why a group failed to commit, once one has: writes are refused from then on. */
  private lost: unknown = null

  constructor (file: string, opts: CatalogOptions = {}) {
    this.file = file
    this.db = openDatabase(file)
    this.grouping = opts.groupCommits === true
    this.groupRoom = opts.groupRoom ?? GROUP_ROOM
    if (this.grouping) groupers.set(file, this)
    this.checkpointer = opts.backgroundCheckpoints === true ? new Checkpointer(this.db, file, () => { this.commit() }) : null
  }

  close (): void {
    try {
      try {
        this.flushUnpins()
      } catch {
        // Left pinned (a full disk, say): pins name this process, whose leftovers are dropped later.
      }
      this.commit()
    } catch {
      // (A group that failed to commit was reported by commit.)
    } finally {
      if (groupers.get(this.file) === this) groupers.delete(this.file)
      this.db.close()
      this.checkpointer?.close() // after: its connection is the last to close
    }
  }

  private s (sql: string): Statement {
    let st = this.cache.get(sql)
    if (st === undefined) {
      st = this.db.prepare(sql)
      this.cache.set(sql, st)
    }
    return st
  }

  /**
   * Runs fn in a write transaction: all of it or none of it is stored. With groupCommits
   * (the daemon), fn is a savepoint of a transaction that groups the writes of up to
   * GROUP_MS: one commit for many ops, as a journaling filesystem commits its journal.
   * What it wrote is seen by this connection at once, by others once the group commits;
   * a crash loses at most the group (never part of a write, never a write without those
   * before it). `commit` ends the group now.
   */
  write<T> (fn: () => T): T {
    if (this.grouping && this.depth === 0 && (this.group !== null || this.roomForGroup())) return this.grouped(fn)
    return this.outermost(writeTransaction, fn, true)
  }

  private roomCheckedAt = -Infinity
  private room = false

  /**
   * Whether the disk has GROUP_ROOM free, asked again ROOM_CHECK_MS after the last time
   * (a statfs cost 7 µs a file in `tar x`, whose every close commits); filling 256 MiB
   * within that would take a writer of 25 GB/s.
   */
  private roomForGroup (): boolean {
    const now = performance.now()
    if (now - this.roomCheckedAt < ROOM_CHECK_MS) return this.room
    this.roomCheckedAt = now
    try {
      const st = fs.statfsSync(dirname(this.file))
      this.room = st.bavail * st.bsize >= this.groupRoom
    } catch {
      this.room = false
    }
    return this.room
  }

  /** write, committed (with the group it joined) before this returns. */
  writeCommitted<T> (fn: () => T): T {
    const r = this.write(fn)
    this.commit()
    return r
  }

  /** A write whose commit reaches the disk before this returns (power-loss safe), with every write before it. */
  writeDurably<T> (fn: () => T): T {
    this.commit()
    return this.outermost(durableWriteTransaction, fn, false)
  }

  /**
   * Everything written so far, committed and on the disk (power-loss safe): an fsync with
   * nothing of its own to write, or of a directory. The WAL holds every commit not yet
   * checkpointed, and a checkpoint syncs what it copies.
   */
  sync (): void {
    if (this.lost !== null) throw this.refusal()
    this.commit()
    if (!this.unsynced) return
    let fd: number
    try {
      fd = fs.openSync(this.file + '-wal', 'r')
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return // nothing committed is outside the database file
      throw err
    }
    try { fs.fsyncSync(fd) } finally { fs.closeSync(fd) }
    this.unsynced = false
  }

  /** A commit since sync last synced the WAL may not be on the disk. */
  private unsynced = true

  /**
   * Commits the open group, if any, unless a write is running (its outermost write's
   * caller commits). Throws if the commit fails: the group's writes are lost, and the
   * catalog takes no more (as ext4 turns read-only when its journal fails).
   */
  commit (): void {
    const g = this.group
    if (g === null || this.depth > 0) return
    this.group = null
    clearTimeout(g.timer)
    try {
      this.s('COMMIT').run()
    } catch (err) {
      this.abandon(g, err)
      throw this.refusal()
    }
    this.unsynced = true
    this.checkpointer?.committed(g.writes)
  }

  private grouped<T> (fn: () => T): T {
    if (this.lost !== null) throw this.refusal()
    if (this.group === null) {
      try {
        this.s('BEGIN IMMEDIATE').run()
      } catch (err) {
        throw fromSystemError(err)
      }
      const timer = setTimeout(() => {
        try { this.commit() } catch {} // (reported by commit)
      }, GROUP_MS)
      this.group = { writes: 0, timer }
    }
    const g = this.group
    let r: T
    try {
      r = this.outermost(savepoint, fn, true)
    } catch (err) {
      // SQLite rolls a whole transaction back on some failures (SQLITE_FULL, an I/O error).
      if (!this.db.inTransaction) this.abandon(g, err)
      throw err
    }
    if (++g.writes >= GROUP_WRITES) this.commit()
    return r
  }

  /** A group failed: it is rolled back, said on stderr, and every write is refused from now on. */
  private abandon (g: Group, err: unknown): void {
    if (this.group === g) this.group = null
    clearTimeout(g.timer)
    if (this.db.inTransaction) {
      try { this.db.exec('ROLLBACK') } catch {}
    }
    this.lost = err
    process.stderr.write(`bucketfs: the metadata database failed to commit ${g.writes} answered write(s), which are lost: ${messageOf(err)}; ` +
      'the store takes no more writes until it is opened again\n')
  }

  private refusal (): Error {
    return READ_ONLY(`the metadata database failed to commit (${messageOf(this.lost)}): open the store again`, this.lost)
  }

  /**
   * Runs fn in a write transaction by `run`. A write inside another is a savepoint of it:
   * only the outermost prunes emptied directories (at its end) and, for write, takes the
   * pins left to unpinSoon along.
   */
  private outermost<T> (run: <R>(db: Db, fn: () => R) => R, fn: () => T, takeUnpins: boolean): T {
    if (this.depth > 0) return run(this.db, fn)
    if (this.lost !== null) throw this.refusal()
    const grouper = groupers.get(this.file)
    if (grouper !== undefined && grouper !== this) {
      try { grouper.commit() } catch {} // (its failure is its own, reported by it)
    }
    const owners = takeUnpins ? this.unpins.splice(0) : []
    this.depth++
    try {
      const r = run(this.db, () => {
        for (const owner of owners) this.unpin(owner)
        const out = fn()
        if (this.prunable.size > 0) this.prunePending()
        return out
      })
      if (this.group === null) {
        this.unsynced = true
        this.checkpointer?.committed(1)
      }
      return r
    } catch (err) {
      this.prunable.clear() // rolled back with it
      if (owners.length > 0) {
        this.unpins.unshift(...owners) // rolled back with it
        this.scheduleUnpins()
      }
      throw err
    } finally {
      this.depth--
    }
  }

  private readonly unpins: number[] = []
  private unpinTimer: NodeJS.Timeout | null = null

  /**
   * Drops an owner's pins in the next write transaction, or within UNPIN_DELAY_MS on
   * their own: a pin only keeps gc off a chunk, so dropping it a little late is safe,
   * and it saves a commit (an open file's base pins go at its last close; the next
   * file's first store takes them along).
   */
  unpinSoon (owner: number): void {
    this.unpins.push(owner)
    this.scheduleUnpins()
  }

  private scheduleUnpins (): void {
    if (this.unpinTimer !== null) return
    this.unpinTimer = setTimeout(() => {
      this.unpinTimer = null
      try { this.flushUnpins() } catch {} // (rescheduled by write: a full disk, say)
    }, UNPIN_DELAY_MS)
    this.unpinTimer.unref()
  }

  /** Drops every pin left to unpinSoon now. */
  flushUnpins (): void {
    if (this.unpinTimer !== null) { clearTimeout(this.unpinTimer); this.unpinTimer = null }
    if (this.unpins.length > 0 && this.db.open) this.write(() => {})
  }
  /** Runs fn in one read transaction (in the open one, if any: a savepoint would only cost). */
  read<T> (fn: () => T): T { return this.db.inTransaction ? fn() : runner(this.db).deferred(fn) as T }

  private externalGen = 0
  private genCheckedAt = -Infinity

  /**
   * A number that grows whenever another connection (the CLI, another process) has
   * committed since it was last asked (PRAGMA data_version): caches keyed on it notice
   * changes made elsewhere. Our own commits do not change it. Asked at most once per
   * EXTERNAL_CHECK_MS: once per op cost 6 µs a lookup (414 ms of a 5,000-file rsync),
   * and what the CLI changes takes a second to show through the kernel anyway.
   */
  externalGeneration (): number {
    const now = performance.now()
    if (now - this.genCheckedAt < EXTERNAL_CHECK_MS) return this.externalGen
    const v = this.s('PRAGMA data_version').pluck().get() as number
    if (v !== this.lastDataVersion) {
      if (this.lastDataVersion !== -1) this.externalGen++
      this.lastDataVersion = v
    }
    this.genCheckedAt = now
    return this.externalGen
  }

  /** PRAGMA data_version now: it differs from an earlier answer iff another connection committed in between. */
  dataVersion (): number { return this.s('PRAGMA data_version').pluck().get() as number }

  /** Whether a write is running (not merely a group open: see write). */
  get inTransaction (): boolean { return this.depth > 0 }

  // ---- buckets
  bucketByName (name: string): BucketRow | undefined {
    return this.s('SELECT * FROM buckets WHERE name = ?').get(name) as BucketRow | undefined
  }
  bucketById (id: number): BucketRow | undefined {
    return this.s('SELECT * FROM buckets WHERE id = ?').get(id) as BucketRow | undefined
  }
  listBuckets (): BucketRow[] {
    return this.s('SELECT * FROM buckets ORDER BY name').all() as BucketRow[]
  }
  insertBucket (b: Omit<BucketRow, 'id'>): number {
    return Number(this.s(`INSERT INTO buckets (name, region, created_ms, versioning, mode, uid, gid, mtime_ms)
      VALUES (@name, @region, @created_ms, @versioning, @mode, @uid, @gid, @mtime_ms)`).run(b).lastInsertRowid)
  }
  deleteBucket (id: number): void {
    this.s('DELETE FROM dirs WHERE bucket_id = ?').run(id) // (empty: the caller checked)
    this.s('DELETE FROM buckets WHERE id = ?').run(id)
  }
  setVersioning (id: number, state: string): void {
    this.s('UPDATE buckets SET versioning = ? WHERE id = ?').run(state, id)
  }
  setBucketAttrs (id: number, a: { mode: number, uid: number, gid: number, mtime_ms: number }): void {
    this.s('UPDATE buckets SET mode = @mode, uid = @uid, gid = @gid, mtime_ms = @mtime_ms WHERE id = @id').run({ ...a, id })
  }
  bucketHasContent (id: number): boolean {
    return this.s('SELECT 1 FROM dirs d JOIN versions v ON v.dir = d.id WHERE d.bucket_id = ? LIMIT 1').get(id) !== undefined ||
      this.s('SELECT 1 FROM uploads WHERE bucket_id = ? LIMIT 1').get(id) !== undefined
  }

  // ---- versions
  // A key is stored as its directory (a dirs row: bucket and path, up to its last '/')
  // and its name there, so renaming a directory changes only the rows of the directories
  // in it. Lookups by key join dirs on its unique (bucket_id, path) index.

  latestVersion (bucketId: number, key: string): VersionRow | undefined {
    const [path, name] = splitKey(key)
    return this.s(`SELECT ${VCOLS} FROM dirs d JOIN versions v ON v.dir = d.id WHERE d.bucket_id = ? AND d.path = ? AND v.name = ? ORDER BY v.seq DESC LIMIT 1`)
      .get(bucketId, path, name) as VersionRow | undefined
  }
  liveVersion (bucketId: number, key: string): VersionRow | undefined {
    const [path, name] = splitKey(key)
    return this.s(`SELECT ${VCOLS} FROM dirs d JOIN live l ON l.dir = d.id JOIN versions v ON v.seq = l.seq WHERE d.bucket_id = ? AND d.path = ? AND l.name = ?`)
      .get(bucketId, path, name) as VersionRow | undefined
  }
  /** What a lookup (and updatePosix) needs of a key's live version: [size, stored, mode, uid, gid, mtime_ms, ctime_ms, seq]. */
  liveStat (bucketId: number, key: string): LiveStatRow | undefined {
    const [path, name] = splitKey(key)
    return this.s('SELECT v.size, v.stored, v.mode, v.uid, v.gid, v.mtime_ms, v.ctime_ms, v.seq FROM dirs d JOIN live l ON l.dir = d.id JOIN versions v ON v.seq = l.seq WHERE d.bucket_id = ? AND d.path = ? AND l.name = ?')
      .raw(true).get(bucketId, path, name) as LiveStatRow | undefined
  }
  /**
   * Directory `path` (ending in '/') as stored: [mode, uid, gid, mtime_ms, ctime_ms] of its
   * live marker, 'implied' when only live keys below it make it, or undefined.
   */
  dirStat (bucketId: number, path: string): MarkerRow | 'implied' | undefined {
    // The first live key under it, in key order: its marker, if it has one.
    const first = this.s(`SELECT l.name, d.path, v.mode, v.uid, v.gid, v.mtime_ms, v.ctime_ms FROM dirs d JOIN live l ON l.dir = d.id
      JOIN versions v ON v.seq = l.seq WHERE d.bucket_id = ? AND d.path >= ? AND d.path < ? ORDER BY d.path, l.name LIMIT 1`)
      .raw(true).get(bucketId, path, subtreeEnd(path)) as [string, string, ...MarkerRow] | undefined
    if (first === undefined) return undefined
    return first[0] === '' && first[1] === path ? first.slice(2) as MarkerRow : 'implied'
  }

  /** Whether a live key other than its own marker lies under directory `path` (ending in '/'), at any depth. */
  holdsLiveKeys (bucketId: number, path: string): boolean {
    return this.s(`SELECT 1 FROM dirs d JOIN live l ON l.dir = d.id WHERE d.bucket_id = ? AND d.path >= ? AND d.path < ?
      AND (d.path != ? OR l.name != '') LIMIT 1`).pluck().get(bucketId, path, subtreeEnd(path), path) !== undefined
  }
  versionById (bucketId: number, key: string, versionId: string): VersionRow | undefined {
    const [path, name] = splitKey(key)
    return this.s(`SELECT ${VCOLS} FROM dirs d JOIN versions v ON v.dir = d.id WHERE d.bucket_id = ? AND d.path = ? AND v.name = ? AND v.version_id = ?`)
      .get(bucketId, path, name, versionId) as VersionRow | undefined
  }
  /** versionById's seq alone: no row decoded (a delete, or a put over the 'null' version, needs no more). */
  versionSeq (bucketId: number, key: string, versionId: string): number | undefined {
    const [path, name] = splitKey(key)
    return this.s('SELECT v.seq FROM dirs d JOIN versions v ON v.dir = d.id WHERE d.bucket_id = ? AND d.path = ? AND v.name = ? AND v.version_id = ?')
      .pluck().get(bucketId, path, name, versionId) as number | undefined
  }
  versionBySeq (seq: number): VersionRow | undefined {
    return this.s(`SELECT ${VCOLS} FROM versions v JOIN dirs d ON d.id = v.dir WHERE v.seq = ?`).get(seq) as VersionRow | undefined
  }
  versionsOfKey (bucketId: number, key: string): VersionRow[] {
    const [path, name] = splitKey(key)
    return this.s(`SELECT ${VCOLS} FROM dirs d JOIN versions v ON v.dir = d.id WHERE d.bucket_id = ? AND d.path = ? AND v.name = ? ORDER BY v.seq DESC`)
      .all(bucketId, path, name) as VersionRow[]
  }
  insertVersion (v: NewVersion): number {
    const [path, name] = splitKey(v.key)
    return Number(this.s(`INSERT INTO versions (dir, name, version_id, delete_marker, size, etag, last_modified_ms,
      content_type, headers, user_meta, mode, uid, gid, mtime_ms, ctime_ms, stored) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`)
      .run(this.ensureDir(v.bucket_id, path, name), name, v.version_id, v.delete_marker, v.size, v.etag, v.last_modified_ms,
        v.content_type, v.headers, v.user_meta, v.mode, v.uid, v.gid, v.mtime_ms, v.ctime_ms, v.stored).lastInsertRowid)
  }
  deleteVersion (seq: number): void {
    const dir = this.s('DELETE FROM versions WHERE seq = ? RETURNING dir').pluck().get(seq) as number | undefined
    if (dir !== undefined) this.prune(dir)
  }
  /** A version row moves to another key, as made now (a rename where neither bucket keeps history). */
  moveVersion (seq: number, bucketId: number, key: string, lastModifiedMs: number, ctimeMs: number): void {
    const [path, name] = splitKey(key)
    const from = this.s('SELECT dir FROM versions WHERE seq = ?').pluck().get(seq) as number | undefined
    this.s('UPDATE versions SET dir = ?, name = ?, last_modified_ms = ?, ctime_ms = ? WHERE seq = ?').run(this.ensureDir(bucketId, path, name), name, lastModifiedMs, ctimeMs, seq)
    if (from !== undefined) this.prune(from)
  }

  /**
   * The id of directory `path` of a bucket, made (with the directories above it) if
   * missing, which will hold name `name` (its `longest` is kept up).
   */
  private ensureDir (bucketId: number, path: string, name = ''): number {
    const bytes = name.length === 0 ? 0 : Buffer.byteLength(name)
    const row = this.s('SELECT id, longest FROM dirs WHERE bucket_id = ? AND path = ?').raw(true).get(bucketId, path) as [number, number] | undefined
    if (row !== undefined) {
      if (row[1] < bytes) this.s('UPDATE dirs SET longest = ? WHERE id = ?').run(bytes, row[0])
      return row[0]
    }
    const parent = path === '' ? null : this.ensureDir(bucketId, parentPathOf(path))
    return Number(this.s('INSERT INTO dirs (bucket_id, parent, path, longest) VALUES (?, ?, ?, ?)').run(bucketId, parent, path, bytes).lastInsertRowid)
  }
  /**
   * Directories that may hold nothing any more, pruned at the end of the write
   * transaction: a delete and the live row's removal that follows it (or a replace
   * that puts a version back) ask once, not at each step.
   */
  private readonly prunable = new Set<number>()
  private prune (dir: number): void {
    if (this.depth === 0) throw new Error('bucketfs: a directory was emptied outside a write transaction')
    this.prunable.add(dir)
  }

  private prunePending (): void {
    for (const dir of this.prunable) this.pruneNow(dir)
    this.prunable.clear()
  }

  /** Removes a directory that holds nothing any more (no version, live row or directory), and so up. */
  private pruneNow (dir: number): void {
    for (let id: number | null = dir; id !== null;) {
      if (this.s('SELECT 1 FROM versions WHERE dir = ? LIMIT 1').pluck().get(id) !== undefined) return
      if (this.s('SELECT 1 FROM live WHERE dir = ? LIMIT 1').pluck().get(id) !== undefined) return
      if (this.s('SELECT 1 FROM dirs WHERE parent = ? LIMIT 1').pluck().get(id) !== undefined) return
      id = (this.s('DELETE FROM dirs WHERE id = ? AND parent IS NOT NULL RETURNING parent').pluck().get(id) as number | undefined) ?? null
    }
  }

  /** The id of directory `path` ('' or ending in '/') of a bucket, if it has a row. */
  dirId (bucketId: number, path: string): number | undefined {
    return this.s('SELECT id FROM dirs WHERE bucket_id = ? AND path = ?').pluck().get(bucketId, path) as number | undefined
  }
  /**
   * Whether a directory holds nothing but its own marker: no other key with any
   * version, no directory (the target a directory rename may replace).
   */
  holdsOnlyMarker (dir: number): boolean {
    return this.s("SELECT 1 FROM versions WHERE dir = ? AND name != '' LIMIT 1").pluck().get(dir) === undefined &&
      this.s('SELECT 1 FROM dirs WHERE parent = ? LIMIT 1').pluck().get(dir) === undefined
  }
  /**
   * A bound on the longest key under directory `path`, in UTF-8 bytes, were the
   * directory's path `toPath`: from each directory's longest name (which deletes do
   * not lower), so it may be above the truth, never below.
   */
  longestKeyIfMoved (bucketId: number, path: string, toPath: string): number {
    const r = this.s('SELECT max(length(CAST(path AS BLOB)) + longest) FROM dirs WHERE bucket_id = ? AND path >= ? AND path < ?')
      .pluck().get(bucketId, path, subtreeEnd(path)) as number | null
    return r === null ? 0 : r - Buffer.byteLength(path) + Buffer.byteLength(toPath)
  }
  /**
   * Directory `path` of a bucket moves, with everything under it, to `toPath` of
   * `toBucketId`, by changing its directories' rows: the keys under it keep their
   * versions, Last-Modified and ctime (nothing is written to them); its marker's ctime
   * becomes `nowMs`. Only where nothing but the target's marker lies under toPath
   * (holdsOnlyMarker; `target` is that directory's id, if it has a row); that marker, if
   * any, is kept only where the source has none. Neither path may lie under the other.
   */
  moveDir (bucketId: number, path: string, toBucketId: number, toPath: string, target: number | undefined, nowMs: number): void {
    const from = [...path].length + 1 // substr counts characters (code points) from 1
    // Write sessions under it move whether or not it holds a key yet.
    this.s(`UPDATE uploads SET bucket_id = ?, key = ? || substr(key, ?) WHERE bucket_id = ? AND key >= ? AND key < ? AND kind = 'session'`)
      .run(toBucketId, toPath, from, bucketId, path, subtreeEnd(path))
    const row = this.s('SELECT id, parent FROM dirs WHERE bucket_id = ? AND path = ?').raw(true).get(bucketId, path) as [number, number | null] | undefined
    if (row === undefined) return
    const [id, oldParent] = row
    if (target !== undefined) {
      // Only its marker is there (with its live row): it joins the moving directory.
      this.s('UPDATE versions SET dir = ? WHERE dir = ?').run(id, target)
      this.s('UPDATE live SET dir = ? WHERE dir = ?').run(id, target)
      this.s('DELETE FROM dirs WHERE id = ?').run(target)
    }
    this.s('UPDATE dirs SET bucket_id = ?, path = ? || substr(path, ?) WHERE bucket_id = ? AND path >= ? AND path < ?')
      .run(toBucketId, toPath, from, bucketId, path, subtreeEnd(path))
    if (toBucketId !== bucketId || parentPathOf(toPath) !== parentPathOf(path)) {
      this.s('UPDATE dirs SET parent = ? WHERE id = ?').run(this.ensureDir(toBucketId, parentPathOf(toPath)), id)
      if (oldParent !== null) this.prune(oldParent)
    }
    // The directory itself was renamed: its marker's ctime is now, as on a disk.
    this.s("UPDATE versions SET ctime_ms = ? WHERE dir = ? AND name = ''").run(nowMs, id)
  }
  /** Metadata changes that do not make a new version (chmod, utimens, xattrs). */
  updateVersionAttrs (seq: number, a: Pick<VersionRow, 'mode' | 'uid' | 'gid' | 'mtime_ms' | 'ctime_ms' | 'content_type' | 'user_meta' | 'headers'>): void {
    this.s(`UPDATE versions SET mode = @mode, uid = @uid, gid = @gid, mtime_ms = @mtime_ms, ctime_ms = @ctime_ms,
      content_type = @content_type, user_meta = @user_meta, headers = @headers WHERE seq = @seq`).run({ ...a, seq })
  }
  updatePosix (seq: number, mode: number, uid: number, gid: number, mtimeMs: number, ctimeMs: number): void {
    this.s('UPDATE versions SET mode = ?, uid = ?, gid = ?, mtime_ms = ?, ctime_ms = ? WHERE seq = ?').run(mode, uid, gid, mtimeMs, ctimeMs, seq)
  }
  /** Points live at the key's latest version, or removes it when that is a marker or there is none. */
  refreshLive (bucketId: number, key: string): void {
    const latest = this.latestVersion(bucketId, key)
    this.setLive(bucketId, key, latest === undefined || latest.delete_marker === 1 ? null : latest.seq)
  }
  /** Removes the key's live row and answers the version it named (undefined when it had none); that version stays. */
  takeLive (bucketId: number, key: string): number | undefined {
    const [path, name] = splitKey(key)
    const row = this.s('DELETE FROM live WHERE dir = (SELECT id FROM dirs WHERE bucket_id = ? AND path = ?) AND name = ? RETURNING dir, seq')
      .raw(true).get(bucketId, path, name) as [number, number] | undefined
    if (row === undefined) return undefined
    this.prune(row[0])
    return row[1]
  }
  /**
   * Sets what a key's live row names, where the caller knows its latest version
   * without asking (seq, a version of that key; null: none, or a delete marker). refreshLive asks.
   */
  setLive (bucketId: number, key: string, seq: number | null): void {
    if (seq === null) this.takeLive(bucketId, key)
    else this.s('INSERT INTO live (dir, name, seq) SELECT dir, name, seq FROM versions WHERE seq = ? ON CONFLICT (dir, name) DO UPDATE SET seq = excluded.seq').run(seq)
  }

  /**
   * Every directory row under `path` (ending in '/', or '' for the whole bucket) of a
   * bucket, and the rows of what lies right in it, merged in key order (UTF-8 bytes, as
   * S3 lists): the rows of keys in [from, until) (from itself only if `inclusive`).
   * `page(dir, path, after, inclusive, limit)` answers up to `limit` rows of one directory, in
   * name order, from name `after`; their keys come from `keyOf`. Lazy: a listing that
   * stops early reads no further.
   */
  private * walk<R> (bucketId: number, from: string, inclusive: boolean, until: string | null,
    page: (dir: number, path: string, after: string, inclusive: boolean, limit: number) => R[], keyOf: (r: R) => string): Generator<R, void> {
    const top = this.dirId(bucketId, '')
    if (top !== undefined) yield * this.walkDir(top, '', from, inclusive, until, page, keyOf)
  }

  /** walk, in one directory; answers true once `until` is reached. */
  private * walkDir<R> (dir: number, path: string, from: string, inclusive: boolean, until: string | null,
    page: (dir: number, path: string, after: string, inclusive: boolean, limit: number) => R[], keyOf: (r: R) => string): Generator<R, boolean> {
    const within = from.startsWith(path)
    const rest = within ? from.slice(path.length) : ''
    // Directories in it holding keys at or after `from`: ones after it, or the one it lies
    // in; read a page at a time, as names are (a listing that stops early reads no further).
    const slash = rest.indexOf('/')
    const kidsFrom = (after: string | null, limit: number): Array<[number, string]> => (after === null
      ? this.s(`SELECT id, path FROM dirs WHERE parent = ? AND path >= ? ORDER BY path LIMIT ${limit}`).raw(true)
        .all(dir, path + (slash < 0 ? rest : rest.slice(0, slash)))
      : this.s(`SELECT id, path FROM dirs WHERE parent = ? AND path > ? ORDER BY path LIMIT ${limit}`).raw(true)
        .all(dir, after)) as Array<[number, string]>
    let kidsLimit = FIRST_PAGE
    let kids = kidsFrom(null, kidsLimit)
    let moreKids = kids.length === kidsLimit
    let k = 0
    let limit = FIRST_PAGE
    let rows = page(dir, path, within ? rest : '', within ? inclusive : true, limit)
    let more = rows.length === limit
    let r = 0
    for (;;) {
      if (r === rows.length && more) {
        limit = nextPage(limit)
        rows = page(dir, path, keyOf(rows[r - 1]).slice(path.length), false, limit)
        more = rows.length === limit
        r = 0
      }
      if (k === kids.length && moreKids) {
        kidsLimit = nextPage(kidsLimit)
        kids = kidsFrom(kids[k - 1][1], kidsLimit)
        moreKids = kids.length === kidsLimit
        k = 0
      }
      const row = r < rows.length ? rows[r] : undefined
      const kid = k < kids.length ? kids[k] : undefined
      if (kid !== undefined && !from.startsWith(kid[1]) && compareKeys(kid[1], from) <= 0) { k++; continue } // wholly before `from`
      if (row === undefined && kid === undefined) return false
      if (kid === undefined || (row !== undefined && compareKeys(keyOf(row), kid[1]) < 0)) {
        if (until !== null && compareKeys(keyOf(row as R), until) >= 0) return true
        yield row as R
        r++
      } else {
        if (until !== null && compareKeys(kid[1], until) >= 0) return true
        if (yield * this.walkDir(kid[0], kid[1], from, inclusive, until, page, keyOf)) return true
        k++
      }
    }
  }

  /**
   * Live keys from `from` (exclusive unless `inclusive`), below `until` if given, in key
   * order, each with its version row (a listing does not look every version up on its own).
   */
  liveKeysFrom (bucketId: number, from: string, inclusive: boolean, until: string | null): IterableIterator<VersionRow> {
    return this.walk(bucketId, from, inclusive, until, (dir, path, after, inc, limit) =>
      this.s(`SELECT v.seq, ? AS bucket_id, ? || v.name AS key, ${VCOLS_REST} FROM live l JOIN versions v ON v.seq = l.seq
        WHERE l.dir = ? AND l.name ${inc ? '>=' : '>'} ? ORDER BY l.name LIMIT ${limit}`).all(bucketId, path, dir, after) as VersionRow[],
    row => row.key)
  }

  /** Distinct keys having any version, in key order (for version listings). */
  versionKeysFrom (bucketId: number, from: string, inclusive: boolean, until: string | null): IterableIterator<{ key: string }> {
    return this.walk(bucketId, from, inclusive, until, (dir, path, after, inc, limit) =>
      this.s(`SELECT ? || name AS key FROM versions WHERE dir = ? AND name ${inc ? '>=' : '>'} ? GROUP BY name ORDER BY name LIMIT ${limit}`)
        .all(path, dir, after) as Array<{ key: string }>,
    row => row.key)
  }

  /**
   * The live keys of directory `id`, column by column. A few come as rows; more come as
   * one JSON array per column, which V8 parses natively: better-sqlite3 makes a JS value
   * per column of each row (~1 µs each), which for a 10,000-key directory took twice as
   * long (scripts/bench million), where for 20 keys the aggregates cost 25 µs more than
   * the rows. Every aggregate steps over the same rows in the same order, so the columns
   * stay aligned.
   */
  private files (id: number): DirFiles {
    type Row = [string, number, number, number, number, number, number, number | null]
    const columns = (rows: Row[]): DirFiles => {
      const f = noFiles()
      for (const r of rows) {
        f.names.push(r[0]); f.sizes.push(r[1]); f.modes.push(r[2]); f.uids.push(r[3]); f.gids.push(r[4]); f.mtimes.push(r[5]); f.ctimes.push(r[6]); f.stored.push(r[7])
      }
      return f
    }
    const few = this.s(`${DIR_FILES} LIMIT ${FEW_FILES}`).raw(true).all(id) as Row[]
    if (few.length < FEW_FILES) return columns(few)
    let json: string[]
    try {
      json = this.s(`SELECT json_group_array(name), json_group_array(size),
        json_group_array(mode), json_group_array(uid), json_group_array(gid), json_group_array(mtime_ms), json_group_array(ctime_ms),
        json_group_array(stored) FROM (${DIR_FILES})`).raw(true).get(id) as string[]
    } catch (err) {
      // A column's JSON past the longest string SQLite may hand over (~512 MB: millions
      // of long names): as rows, which have no such bound.
      if ((err as { code?: string }).code !== 'SQLITE_TOOBIG') throw err
      return columns(this.s(DIR_FILES).raw(true).all(id) as Row[])
    }
    const [names, sizes, modes, uids, gids, mtimes, ctimes, stored] = json.map(c => JSON.parse(c) as unknown[])
    return { names, sizes, modes, uids, gids, mtimes, ctimes, stored } as DirFiles
  }

  /**
   * Everything right in directory `path` ('' or ending in '/') of a bucket: the names of
   * the directories in it that hold a live key (at any depth), each with its live
   * marker's [mode, uid, gid, mtime_ms, ctime_ms] (what dirStat answers for it) or null
   * (an implied directory), and its live keys with what a directory listing shows, column
   * by column (DirFiles).
   */
  directory (bucketId: number, path: string): { dirs: string[], dirMarkers: Array<MarkerRow | null>, files: DirFiles } {
    const id = this.dirId(bucketId, path)
    if (id === undefined) return { dirs: [], dirMarkers: [], files: noFiles() }
    const files = this.files(id)
    const rows = this.s(`SELECT c.path, v.mode, v.uid, v.gid, v.mtime_ms, v.ctime_ms FROM dirs c
        LEFT JOIN live m ON m.dir = c.id AND m.name = '' LEFT JOIN versions v ON v.seq = m.seq
        WHERE c.parent = ? AND EXISTS (SELECT 1 FROM dirs d JOIN live l ON l.dir = d.id
        WHERE d.bucket_id = c.bucket_id AND d.path >= c.path AND d.path < substr(c.path, 1, length(c.path) - 1) || '0') ORDER BY c.path`)
      .raw(true).all(id) as Array<[string, number | null, number, number, number, number]>
    return {
      dirs: rows.map(r => r[0].slice(path.length, -1)),
      dirMarkers: rows.map(([, mode, uid, gid, mtime, ctime]) => mode === null ? null : [mode, uid, gid, mtime, ctime]),
      files
    }
  }



  /**
   * Whether directory `path` ('' or ending in '/') of a bucket holds more than `limit` live
   * keys, or more than `limit` directories: each counted only up to limit + 1, so a large
   * directory is told without reading it.
   */
  holdsMore (bucketId: number, path: string, limit: number): boolean {
    const id = this.dirId(bucketId, path)
    if (id === undefined) return false
    const n = Math.floor(limit) + 1
    const keys = this.s(`SELECT count(*) FROM (SELECT 1 FROM live WHERE dir = ? LIMIT ${n})`).pluck().get(id) as number
    return keys >= n || (this.s(`SELECT count(*) FROM (SELECT 1 FROM dirs WHERE parent = ? LIMIT ${n})`).pluck().get(id) as number) >= n
  }

  // ---- extents and parts of versions
  extentsOf (seq: number): ReadableExtent[] {
    return this.s(`SELECT e.off, e.len, e.chunk, e.coff, c.hash, c.crc, c.data IS NOT NULL AS inline, c.size AS csize
      FROM extents e LEFT JOIN chunks c ON c.id = e.chunk WHERE e.seq = ? ORDER BY e.off`).all(seq) as ReadableExtent[]
  }
  insertExtents (seq: number, extents: Extent[]): void {
    const st = this.s('INSERT INTO extents (seq, off, len, chunk, coff) VALUES (?, ?, ?, ?, ?)')
    for (const e of extents) if (e.len > 0) st.run(seq, e.off, e.len, e.chunk, e.coff)
  }
  versionParts (seq: number): VersionPartRow[] {
    return this.s('SELECT * FROM version_parts WHERE seq = ? ORDER BY part').all(seq) as VersionPartRow[]
  }
  insertVersionParts (seq: number, parts: Array<Omit<VersionPartRow, 'seq'>>): void {
    const st = this.s('INSERT INTO version_parts (seq, part, off, size, md5) VALUES (?, ?, ?, ?, ?)')
    for (const p of parts) st.run(seq, p.part, p.off, p.size, p.md5)
  }

  // ---- chunks
  chunkIdByHash (hash: Buffer): number | undefined {
    return (this.s('SELECT id FROM chunks WHERE hash = ?').get(hash) as { id: number } | undefined)?.id
  }
  /**
   * The chunk's id, creating its row if needed (data for inline chunks, null for files).
   * `crc`: the CRC-32 of its bytes, also given to a row made before there were CRCs.
   */
  ensureChunk (hash: Buffer, size: number, data: Buffer | null, crc: number | null = null): number {
    const id = this.chunkIdByHash(hash)
    if (id !== undefined) {
      if (data !== null) this.s('UPDATE chunks SET data = ? WHERE id = ? AND data IS NULL AND size = ?').run(data, id, size)
      if (crc !== null) this.s('UPDATE chunks SET crc = ? WHERE id = ? AND crc IS NULL AND size = ?').run(crc, id, size)
      return id
    }
    return Number(this.s('INSERT INTO chunks (hash, size, refs, data, crc) VALUES (?, ?, 0, ?, ?)').run(hash, size, data, crc).lastInsertRowid)
  }
  chunkById (id: number): ChunkRow | undefined {
    return this.s('SELECT id, hash, size, refs, data IS NOT NULL AS inline FROM chunks WHERE id = ?').get(id) as ChunkRow | undefined
  }
  inlineData (id: number): Buffer | undefined {
    return (this.s('SELECT data FROM chunks WHERE id = ?').get(id) as { data: Buffer | null } | undefined)?.data ?? undefined
  }
  pin (chunk: number, owner: number, pid: number): void {
    this.s('INSERT OR IGNORE INTO pins (chunk, owner, pid) VALUES (?, ?, ?)').run(chunk, owner, pid)
  }
  unpin (owner: number): void { this.s('DELETE FROM pins WHERE owner = ?').run(owner) }
  unpinPid (pid: number): void { this.s('DELETE FROM pins WHERE pid = ?').run(pid) }
  pinnedPids (): number[] {
    return (this.s('SELECT DISTINCT pid FROM pins').all() as Array<{ pid: number }>).map(r => r.pid)
  }
  unreferencedChunks (): ChunkRow[] {
    return this.s(`SELECT id, hash, size, refs, data IS NOT NULL AS inline FROM chunks
      WHERE refs <= 0 AND id NOT IN (SELECT chunk FROM pins)`).all() as ChunkRow[]
  }
  deleteChunk (id: number): void { this.s('DELETE FROM chunks WHERE id = ?').run(id) }
  allChunks (): IterableIterator<ChunkRow> {
    return this.s('SELECT id, hash, size, refs, data IS NOT NULL AS inline FROM chunks ORDER BY id').iterate() as IterableIterator<ChunkRow>
  }
  actualRefs (): Map<number, number> {
    const rows = this.s(`SELECT chunk, SUM(n) AS n FROM (
        SELECT chunk, COUNT(*) AS n FROM extents WHERE chunk IS NOT NULL GROUP BY chunk
        UNION ALL SELECT chunk, COUNT(*) AS n FROM part_extents WHERE chunk IS NOT NULL GROUP BY chunk
      ) GROUP BY chunk`).all() as Array<{ chunk: number, n: number }>
    return new Map(rows.map(r => [r.chunk, r.n]))
  }
  setRefs (id: number, refs: number): void { this.s('UPDATE chunks SET refs = ? WHERE id = ?').run(refs, id) }
  /** Versions (and uploads) that name a chunk, for reports. */
  holdersOfChunk (id: number): string[] {
    const v = this.s(`SELECT b.name || '/' || d.path || v.name || ' (version ' || v.version_id || ')' AS h FROM extents e
      JOIN versions v ON v.seq = e.seq JOIN dirs d ON d.id = v.dir JOIN buckets b ON b.id = d.bucket_id WHERE e.chunk = ?`).all(id) as Array<{ h: string }>
    const u = this.s(`SELECT b.name || '/' || u.key || ' (upload ' || u.upload_id || ')' AS h FROM part_extents p
      JOIN uploads u ON u.id = p.upload JOIN buckets b ON b.id = u.bucket_id WHERE p.chunk = ?`).all(id) as Array<{ h: string }>
    return [...new Set([...v, ...u].map(r => r.h))]
  }
  /**
   * What the key index holds that names nothing, or the wrong thing, one line each:
   * versions or live rows of a missing directory, live rows naming no version (or a
   * marker, or another key's), keys whose live row is not their latest version (or
   * missing, or there over a marker), directories of a missing bucket or parent, or
   * whose path does not follow their parent's. Streams every row once or twice: fsck's.
   */
  keyIndexProblems (): string[] {
    const out: string[] = []
    for (const [seq, dir] of this.s('SELECT v.seq, v.dir FROM versions v WHERE NOT EXISTS (SELECT 1 FROM dirs d WHERE d.id = v.dir)').raw(true).iterate() as IterableIterator<[number, number]>) {
      out.push(`version ${seq} is in directory ${dir}, which does not exist`)
    }
    for (const [dir, name, seq, hasDir, vdir, vname, marker] of this.s(`SELECT l.dir, l.name, l.seq, d.id IS NOT NULL, v.dir, v.name, v.delete_marker
        FROM live l LEFT JOIN dirs d ON d.id = l.dir LEFT JOIN versions v ON v.seq = l.seq
        WHERE d.id IS NULL OR v.seq IS NULL OR v.dir != l.dir OR v.name != l.name OR v.delete_marker = 1`).raw(true)
      .iterate() as IterableIterator<[number, string, number, number, number | null, string | null, number | null]>) {
      if (hasDir === 0) out.push(`the live row of name ${JSON.stringify(name)} is in directory ${dir}, which does not exist`)
      if (vdir === null || vdir !== dir || vname !== name || marker === 1) {
        const what = vdir === null ? 'which does not exist' : marker === 1 ? 'a delete marker' : `of directory ${vdir} name ${JSON.stringify(vname)}`
        out.push(`the live row of directory ${dir} name ${JSON.stringify(name)} names version ${seq}, ${what}`)
      }
    }
    // Each key's live row names its latest version, unless that is a marker (then none).
    for (const [dir, name, top, live] of this.s(`SELECT k.dir, k.name, k.top, l.seq FROM
        (SELECT dir, name, max(seq) AS top FROM versions GROUP BY dir, name) k
        JOIN versions v ON v.seq = k.top LEFT JOIN live l ON l.dir = k.dir AND l.name = k.name
        WHERE (v.delete_marker = 0 AND (l.seq IS NULL OR l.seq != k.top)) OR (v.delete_marker = 1 AND l.seq IS NOT NULL)`).raw(true)
      .iterate() as IterableIterator<[number, string, number, number | null]>) {
      out.push(`the key of directory ${dir} name ${JSON.stringify(name)} has latest version ${top}, but its live row names ${live ?? 'none'}`)
    }
    for (const [id, path, parent, hasBucket, ppath, pbucket, bucket] of this.s(`SELECT c.id, c.path, c.parent, b.id IS NOT NULL, p.path, p.bucket_id, c.bucket_id
        FROM dirs c LEFT JOIN buckets b ON b.id = c.bucket_id LEFT JOIN dirs p ON p.id = c.parent`).raw(true)
      .iterate() as IterableIterator<[number, string, number | null, number, string | null, number | null, number]>) {
      const name = `directory ${id} (${JSON.stringify(path)})`
      if (hasBucket === 0) out.push(`${name} is in bucket ${bucket}, which does not exist`)
      if (parent === null) {
        if (path !== '') out.push(`${name} has no parent`)
      } else if (ppath === null) {
        out.push(`${name} has parent ${parent}, which does not exist`)
      } else if (pbucket !== bucket || ppath !== parentPathOf(path)) {
        out.push(`${name} has parent ${parent} (${JSON.stringify(ppath)}), which is not the directory above it`)
      }
    }
    return out
  }
  danglingExtents (): number[] {
    return (this.s(`SELECT DISTINCT chunk FROM (SELECT chunk FROM extents UNION ALL SELECT chunk FROM part_extents)
      WHERE chunk IS NOT NULL AND chunk NOT IN (SELECT id FROM chunks)`).all() as Array<{ chunk: number }>).map(r => r.chunk)
  }

  // ---- uploads
  insertUpload (u: Omit<UploadRow, 'id' | 'sealed'>): number {
    return Number(this.s(`INSERT INTO uploads (upload_id, bucket_id, key, kind, initiated_ms, attrs, base_seq, base_limit, size)
      VALUES (@upload_id, @bucket_id, @key, @kind, @initiated_ms, @attrs, @base_seq, @base_limit, @size)`).run(u).lastInsertRowid)
  }
  uploadById (uploadId: string): UploadRow | undefined {
    return this.s('SELECT * FROM uploads WHERE upload_id = ?').get(uploadId) as UploadRow | undefined
  }
  uploadByRowId (id: number): UploadRow | undefined {
    return this.s('SELECT * FROM uploads WHERE id = ?').get(id) as UploadRow | undefined
  }
  listUploads (bucketId: number | null): UploadRow[] {
    if (bucketId === null) return this.s('SELECT * FROM uploads ORDER BY key, initiated_ms').all() as UploadRow[]
    return this.s('SELECT * FROM uploads WHERE bucket_id = ? ORDER BY key, initiated_ms').all(bucketId) as UploadRow[]
  }
  updateUploadSession (id: number, u: { key: string, bucket_id: number, attrs: string, base_limit: number, size: number }): void {
    this.s('UPDATE uploads SET key = @key, bucket_id = @bucket_id, attrs = @attrs, base_limit = @base_limit, size = @size WHERE id = @id').run({ ...u, id })
  }
  /** Write sessions follow their file when it is renamed. */
  moveSessionUploads (bucketId: number, key: string, toBucketId: number, toKey: string): void {
    this.s("UPDATE uploads SET bucket_id = ?, key = ? WHERE bucket_id = ? AND key = ? AND kind = 'session'").run(toBucketId, toKey, bucketId, key)
  }
  sessionUploadKeysUnder (bucketId: number, prefix: string, until: string | null): string[] {
    const rows = until === null
      ? this.s("SELECT key FROM uploads WHERE bucket_id = ? AND key >= ? AND kind = 'session'").all(bucketId, prefix)
      : this.s("SELECT key FROM uploads WHERE bucket_id = ? AND key >= ? AND key < ? AND kind = 'session'").all(bucketId, prefix, until)
    return (rows as Array<{ key: string }>).map(r => r.key)
  }
  sealUpload (id: number): void { this.s('UPDATE uploads SET sealed = 1 WHERE id = ?').run(id) }
  deleteUpload (id: number): void { this.s('DELETE FROM uploads WHERE id = ?').run(id) }
  uploadParts (upload: number): UploadPartRow[] {
    return this.s('SELECT * FROM upload_parts WHERE upload = ? ORDER BY part').all(upload) as UploadPartRow[]
  }
  replacePart (upload: number, part: number, size: number, md5: string, extents: Extent[]): void {
    this.s('DELETE FROM upload_parts WHERE upload = ? AND part = ?').run(upload, part)
    this.s('INSERT INTO upload_parts (upload, part, size, md5, modified_ms) VALUES (?, ?, ?, ?, ?)').run(upload, part, size, md5, Date.now())
    const st = this.s('INSERT INTO part_extents (upload, part, off, len, chunk, coff) VALUES (?, ?, ?, ?, ?, ?)')
    for (const e of extents) if (e.len > 0) st.run(upload, part, e.off, e.len, e.chunk, e.coff)
  }
  deletePartsFrom (upload: number, firstPart: number): void {
    this.s('DELETE FROM upload_parts WHERE upload = ? AND part >= ?').run(upload, firstPart)
  }
  partExtents (upload: number, part: number): ReadableExtent[] {
    return this.s(`SELECT p.off, p.len, p.chunk, p.coff, c.hash, c.crc, c.data IS NOT NULL AS inline, c.size AS csize
      FROM part_extents p LEFT JOIN chunks c ON c.id = p.chunk WHERE p.upload = ? AND p.part = ? ORDER BY p.off`).all(upload, part) as ReadableExtent[]
  }

  // ---- stats
  counts (): { buckets: number, objects: number, versions: number, markers: number, uploads: number, logical: number, partBytes: number, stored: number, chunks: number, inlineChunks: number } {
    const one = (sql: string): number => Number((this.s(sql).get() as { n: number | null }).n ?? 0)
    return {
      buckets: one('SELECT COUNT(*) AS n FROM buckets'),
      objects: one('SELECT COUNT(*) AS n FROM live'),
      versions: one('SELECT COUNT(*) AS n FROM versions WHERE delete_marker = 0'),
      markers: one('SELECT COUNT(*) AS n FROM versions WHERE delete_marker = 1'),
      uploads: one('SELECT COUNT(*) AS n FROM uploads'),
      logical: one('SELECT SUM(size) AS n FROM versions WHERE delete_marker = 0'),
      partBytes: one('SELECT SUM(size) AS n FROM upload_parts'),
      stored: one('SELECT SUM(size) AS n FROM chunks'),
      chunks: one('SELECT COUNT(*) AS n FROM chunks'),
      inlineChunks: one('SELECT COUNT(*) AS n FROM chunks WHERE data IS NOT NULL')
    }
  }
}
