// Typed queries over the metadata database. Callers group calls into one
// transaction with `write(fn)`; nothing here commits on its own.
import type { Db, Statement } from './db'
import { openDatabase, writeTransaction, durableWriteTransaction, runner } from './db'
import { Checkpointer } from './checkpointer'
import type { BucketRow, VersionRow, NewVersion, Extent, ReadableExtent, UploadRow, UploadPartRow, VersionPartRow, ChunkRow, DirEntryRow, LiveStatRow, FirstLiveRow } from './rows'

export * from './rows'

/** How stale a cache keyed on externalGeneration may be about other processes' commits. */
const EXTERNAL_CHECK_MS = 20

/** How long unpinSoon's pins may wait for another transaction to take them along. */
const UNPIN_DELAY_MS = 100

export interface CatalogOptions {
  /** Checkpoint the WAL on a worker thread rather than inside commits (the daemon). */
  backgroundCheckpoints?: boolean
}

export class Catalog {
  readonly db: Db
  private readonly cache = new Map<string, Statement>()
  private lastDataVersion = -1

  /** Runs WAL checkpoints on a worker thread (the daemon's); else SQLite runs them in commits. */
  readonly checkpointer: Checkpointer | null

  constructor (file: string, opts: CatalogOptions = {}) {
    this.db = openDatabase(file)
    this.checkpointer = opts.backgroundCheckpoints === true ? new Checkpointer(this.db, file) : null
  }

  close (): void {
    try {
      this.flushUnpins()
    } catch {
      // Left pinned (a full disk, say): pins name this process, whose leftovers are dropped later.
    } finally {
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

  write<T> (fn: () => T): T {
    const owners = this.unpins.splice(0)
    try {
      const r = writeTransaction(this.db, owners.length === 0 ? fn : () => {
        for (const owner of owners) this.unpin(owner)
        return fn()
      })
      this.checkpointer?.committed()
      return r
    } catch (err) {
      if (owners.length > 0) {
        this.unpins.unshift(...owners) // rolled back with it
        this.scheduleUnpins()
      }
      throw err
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
  writeDurably<T> (fn: () => T): T {
    const r = durableWriteTransaction(this.db, fn)
    this.checkpointer?.committed()
    return r
  }
  read<T> (fn: () => T): T { return runner(this.db).deferred(fn) as T }

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

  get inTransaction (): boolean { return this.db.inTransaction }

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
  deleteBucket (id: number): void { this.s('DELETE FROM buckets WHERE id = ?').run(id) }
  setVersioning (id: number, state: string): void {
    this.s('UPDATE buckets SET versioning = ? WHERE id = ?').run(state, id)
  }
  setBucketAttrs (id: number, a: { mode: number, uid: number, gid: number, mtime_ms: number }): void {
    this.s('UPDATE buckets SET mode = @mode, uid = @uid, gid = @gid, mtime_ms = @mtime_ms WHERE id = @id').run({ ...a, id })
  }
  bucketHasContent (id: number): boolean {
    return this.s('SELECT 1 FROM versions WHERE bucket_id = ? LIMIT 1').get(id) !== undefined ||
      this.s('SELECT 1 FROM uploads WHERE bucket_id = ? LIMIT 1').get(id) !== undefined
  }

  // ---- versions
  latestVersion (bucketId: number, key: string): VersionRow | undefined {
    return this.s('SELECT * FROM versions WHERE bucket_id = ? AND key = ? ORDER BY seq DESC LIMIT 1').get(bucketId, key) as VersionRow | undefined
  }
  liveVersion (bucketId: number, key: string): VersionRow | undefined {
    return this.s('SELECT v.* FROM live l JOIN versions v ON v.seq = l.seq WHERE l.bucket_id = ? AND l.key = ?').get(bucketId, key) as VersionRow | undefined
  }
  /** What a lookup needs of a key's live version: [size, stored, mode, uid, gid, mtime_ms, ctime_ms]. */
  liveStat (bucketId: number, key: string): LiveStatRow | undefined {
    return this.s('SELECT v.size, v.stored, v.mode, v.uid, v.gid, v.mtime_ms, v.ctime_ms FROM live l JOIN versions v ON v.seq = l.seq WHERE l.bucket_id = ? AND l.key = ?')
      .raw(true).get(bucketId, key) as LiveStatRow | undefined
  }
  /** The first live key in [from, until) with its POSIX fields: [key, mode, uid, gid, mtime_ms, ctime_ms]. */
  firstLiveIn (bucketId: number, from: string, until: string): FirstLiveRow | undefined {
    return this.s('SELECT l.key, v.mode, v.uid, v.gid, v.mtime_ms, v.ctime_ms FROM live l JOIN versions v ON v.seq = l.seq WHERE l.bucket_id = ? AND l.key >= ? AND l.key < ? ORDER BY l.key LIMIT 1')
      .raw(true).get(bucketId, from, until) as FirstLiveRow | undefined
  }
  versionById (bucketId: number, key: string, versionId: string): VersionRow | undefined {
    return this.s('SELECT * FROM versions WHERE bucket_id = ? AND key = ? AND version_id = ?').get(bucketId, key, versionId) as VersionRow | undefined
  }
  versionBySeq (seq: number): VersionRow | undefined {
    return this.s('SELECT * FROM versions WHERE seq = ?').get(seq) as VersionRow | undefined
  }
  versionsOfKey (bucketId: number, key: string): VersionRow[] {
    return this.s('SELECT * FROM versions WHERE bucket_id = ? AND key = ? ORDER BY seq DESC').all(bucketId, key) as VersionRow[]
  }
  insertVersion (v: NewVersion): number {
    return Number(this.s(`INSERT INTO versions (bucket_id, key, version_id, delete_marker, size, etag, last_modified_ms,
      content_type, headers, user_meta, mode, uid, gid, mtime_ms, ctime_ms, stored)
      VALUES (@bucket_id, @key, @version_id, @delete_marker, @size, @etag, @last_modified_ms,
      @content_type, @headers, @user_meta, @mode, @uid, @gid, @mtime_ms, @ctime_ms, @stored)`).run(v).lastInsertRowid)
  }
  deleteVersion (seq: number): void { this.s('DELETE FROM versions WHERE seq = ?').run(seq) }
  /** A version row moves to another key, as made now (a rename where neither bucket keeps history). */
  moveVersion (seq: number, bucketId: number, key: string, lastModifiedMs: number, ctimeMs: number): void {
    this.s('UPDATE versions SET bucket_id = ?, key = ?, last_modified_ms = ?, ctime_ms = ? WHERE seq = ?').run(bucketId, key, lastModifiedMs, ctimeMs, seq)
  }
  /** Whether [from, until) of a bucket holds a version row of a key other than `except`. */
  hasKeysIn (bucketId: number, from: string, until: string, except: string): boolean {
    return this.s('SELECT 1 FROM versions WHERE bucket_id = ? AND key >= ? AND key < ? AND key != ? LIMIT 1')
      .pluck().get(bucketId, from, until, except) !== undefined
  }
  /**
   * In one scan of [from, until) of a bucket: its longest key in UTF-8 bytes (0 when
   * none), and whether any row is other than a key's one live 'null' version (history,
   * a delete marker).
   */
  rangeShape (bucketId: number, from: string, until: string): { longestKeyBytes: number, history: boolean } {
    const [longest, history] = this.s(`SELECT max(length(CAST(key AS BLOB))), max(version_id != 'null' OR delete_marker = 1)
      FROM versions WHERE bucket_id = ? AND key >= ? AND key < ?`).raw(true).get(bucketId, from, until) as [number | null, number | null]
    return { longestKeyBytes: longest ?? 0, history: history === 1 }
  }
  /**
   * Every key in [prefix, until) moves to toPrefix + its rest, with its versions (as made
   * now), live row and write sessions, in three statements. Only where nothing lies under
   * toPrefix. Answers how many live keys moved.
   */
  moveRange (bucketId: number, prefix: string, until: string, toBucketId: number, toPrefix: string, nowMs: number): number {
    // substr counts characters (code points) from 1.
    const rest = [...prefix].length + 1
    this.s(`UPDATE versions SET bucket_id = ?, key = ? || substr(key, ?), last_modified_ms = ?, ctime_ms = ?
      WHERE bucket_id = ? AND key >= ? AND key < ?`).run(toBucketId, toPrefix, rest, nowMs, nowMs, bucketId, prefix, until)
    const moved = this.s('UPDATE live SET bucket_id = ?, key = ? || substr(key, ?) WHERE bucket_id = ? AND key >= ? AND key < ?')
      .run(toBucketId, toPrefix, rest, bucketId, prefix, until).changes
    this.s(`UPDATE uploads SET bucket_id = ?, key = ? || substr(key, ?) WHERE bucket_id = ? AND key >= ? AND key < ? AND kind = 'session'`)
      .run(toBucketId, toPrefix, rest, bucketId, prefix, until)
    return moved
  }
  /** Metadata changes that do not make a new version (chmod, utimens, xattrs). */
  updateVersionAttrs (seq: number, a: Pick<VersionRow, 'mode' | 'uid' | 'gid' | 'mtime_ms' | 'ctime_ms' | 'content_type' | 'user_meta' | 'headers'>): void {
    this.s(`UPDATE versions SET mode = @mode, uid = @uid, gid = @gid, mtime_ms = @mtime_ms, ctime_ms = @ctime_ms,
      content_type = @content_type, user_meta = @user_meta, headers = @headers WHERE seq = @seq`).run({ ...a, seq })
  }
  /** Points live at the key's latest version, or removes it when that is a marker or there is none. */
  refreshLive (bucketId: number, key: string): void {
    const latest = this.latestVersion(bucketId, key)
    this.setLive(bucketId, key, latest === undefined || latest.delete_marker === 1 ? null : latest.seq)
  }
  /**
   * Sets what a key's live row names, where the caller knows its latest version
   * without asking (seq; null: none, or a delete marker). refreshLive asks.
   */
  setLive (bucketId: number, key: string, seq: number | null): void {
    if (seq === null) {
      this.s('DELETE FROM live WHERE bucket_id = ? AND key = ?').run(bucketId, key)
    } else {
      this.s('INSERT INTO live (bucket_id, key, seq) VALUES (?, ?, ?) ON CONFLICT (bucket_id, key) DO UPDATE SET seq = excluded.seq').run(bucketId, key, seq)
    }
  }
  /**
   * Live keys from `from` (exclusive unless `inclusive`), below `until` if given, in key
   * order, each with its version row (one range scan joined to versions: a listing does
   * not look every version up on its own).
   */
  liveKeysFrom (bucketId: number, from: string, inclusive: boolean, until: string | null): IterableIterator<VersionRow> {
    const op = inclusive ? '>=' : '>'
    const base = `SELECT v.* FROM live l JOIN versions v ON v.seq = l.seq WHERE l.bucket_id = ? AND l.key ${op} ?`
    if (until === null) return this.s(`${base} ORDER BY l.key`).iterate(bucketId, from) as IterableIterator<VersionRow>
    return this.s(`${base} AND l.key < ? ORDER BY l.key`).iterate(bucketId, from, until) as IterableIterator<VersionRow>
  }
  /**
   * Live keys from `from` (inclusive) below `until`, with only what a directory listing
   * shows, as arrays: [key, size, mode, uid, gid, mtime_ms, ctime_ms, stored]. A third of the
   * cost of whole rows for a 10,000-entry directory.
   */
  liveEntriesFrom (bucketId: number, from: string, until: string | null): IterableIterator<DirEntryRow> {
    const base = 'SELECT l.key, v.size, v.mode, v.uid, v.gid, v.mtime_ms, v.ctime_ms, v.stored FROM live l JOIN versions v ON v.seq = l.seq WHERE l.bucket_id = ? AND l.key >= ?'
    if (until === null) return this.s(`${base} ORDER BY l.key`).raw(true).iterate(bucketId, from) as IterableIterator<DirEntryRow>
    return this.s(`${base} AND l.key < ? ORDER BY l.key`).raw(true).iterate(bucketId, from, until) as IterableIterator<DirEntryRow>
  }

  /** Distinct keys having any version, in key order (for version listings). */
  versionKeysFrom (bucketId: number, from: string, inclusive: boolean, until: string | null): IterableIterator<{ key: string }> {
    const op = inclusive ? '>=' : '>'
    if (until === null) {
      return this.s(`SELECT DISTINCT key FROM versions WHERE bucket_id = ? AND key ${op} ? ORDER BY key`).iterate(bucketId, from) as IterableIterator<{ key: string }>
    }
    return this.s(`SELECT DISTINCT key FROM versions WHERE bucket_id = ? AND key ${op} ? AND key < ? ORDER BY key`).iterate(bucketId, from, until) as IterableIterator<{ key: string }>
  }
  /** Renames every version and live entry of a key (no data moves). */
  moveKey (bucketId: number, key: string, toBucketId: number, toKey: string): void {
    this.s('UPDATE versions SET bucket_id = ?, key = ? WHERE bucket_id = ? AND key = ?').run(toBucketId, toKey, bucketId, key)
    this.s('UPDATE live SET bucket_id = ?, key = ? WHERE bucket_id = ? AND key = ?').run(toBucketId, toKey, bucketId, key)
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
    const v = this.s(`SELECT b.name || '/' || v.key || ' (version ' || v.version_id || ')' AS h FROM extents e
      JOIN versions v ON v.seq = e.seq JOIN buckets b ON b.id = v.bucket_id WHERE e.chunk = ?`).all(id) as Array<{ h: string }>
    const u = this.s(`SELECT b.name || '/' || u.key || ' (upload ' || u.upload_id || ')' AS h FROM part_extents p
      JOIN uploads u ON u.id = p.upload JOIN buckets b ON b.id = u.bucket_id WHERE p.chunk = ?`).all(id) as Array<{ h: string }>
    return [...new Set([...v, ...u].map(r => r.h))]
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
