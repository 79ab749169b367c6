// The S3 store: buckets, versioned objects and multipart uploads over the
// metadata catalog and the chunk files. No FUSE here.
import fs from 'node:fs'
import path from 'node:path'
import createDebug from 'debug'
import { Catalog, compareKeys } from '../meta/catalog'
import type { BucketRow, Extent, ReadableExtent, VersionRow, NewVersion, VersionPartRow, CatalogOptions } from '../meta/catalog'
import { ChunkFiles } from '../blob/chunks'
import { Content } from './content'
import type { Source, Ingested } from './content'
import { validateBucketName, validateKey, normalizeUserMeta } from './naming'
import { newVersionId, newUploadId } from './versionid'
import { MAX_OBJECT_SIZE, MAX_PART_SIZE, MAX_PARTS, MIN_PART_SIZE } from './limits'
import { multipartEtag } from './layout'
import { toBucket, toVersion, guessContentType, cleanHeaders } from './convert'
import { walkKeys, clampMaxKeys, encodeToken, decodeToken } from './listing'
import type { Directory } from './listing'
import { fsck, gc } from './maintenance'
import {
  BUCKET_ALREADY_EXISTS, NO_SUCH_BUCKET, BUCKET_NOT_EMPTY, NO_SUCH_KEY, NO_SUCH_VERSION, INVALID_ARGUMENT,
  INVALID_RANGE, METHOD_NOT_ALLOWED, ILLEGAL_VERSIONING, NO_SUCH_UPLOAD, INVALID_PART, INVALID_PART_ORDER,
  ENTITY_TOO_SMALL, ENTITY_TOO_LARGE
} from '../errors'
import type {
  Bucket, VersioningState, ObjectVersion, PutOptions, ListObjectsOptions, ListObjectsResult, ListVersionsOptions,
  ListVersionsResult, DeleteResult, MultipartUpload, Part, CompletedPart, StoreStats, FsckReport, GcReport, PosixAttrs
} from './types'

const log = createDebug('bucketfs:store')

/** How a store is opened: the daemon checkpoints its metadata on a worker thread. */
export type StoreOptions = CatalogOptions

export interface Range { start: number, end: number }
/** A live version as a lookup sees it. */
export interface LiveStat { size: number, storedBytes: number, posix: PosixAttrs }
/** A live version's POSIX attributes as updatePosix set them. */
export interface PosixUpdate extends LiveStat { seq: number }
export interface GetOptions { versionId?: string, range?: Range }
export interface CopyOptions extends PutOptions { versionId?: string, metadataDirective?: 'COPY' | 'REPLACE' }
/** Everything but the data of a version to be written. */
export interface VersionFields {
  contentType: string
  headers: string
  userMeta: string
  posix: PosixAttrs
}

export class Store {
  readonly dataDir: string
  readonly catalog: Catalog
  readonly files: ChunkFiles
  readonly content: Content

  private constructor (dataDir: string, opts: StoreOptions) {
    this.dataDir = dataDir
    this.catalog = new Catalog(path.join(dataDir, 'meta.db'), opts)
    this.files = new ChunkFiles(dataDir)
    this.content = new Content(this.catalog, this.files)
  }

  static open (dataDir: string, opts: StoreOptions = {}): Store {
    const dir = path.resolve(dataDir)
    fs.mkdirSync(dir, { recursive: true, mode: 0o700 })
    if ((fs.statSync(dir).mode & 0o077) !== 0) fs.chmodSync(dir, 0o700)
    return new Store(dir, opts)
  }

  close (): void { this.catalog.close() }

  // ---------------------------------------------------------------- buckets

  createBucket (name: string, opts: { region?: string } = {}): Bucket {
    validateBucketName(name)
    const region = opts.region ?? 'local'
    if (!/^[a-z0-9-]{1,64}$/.test(region)) throw INVALID_ARGUMENT(`invalid region ${JSON.stringify(region)}`)
    const now = Date.now()
    return this.catalog.write(() => {
      if (this.catalog.bucketByName(name) !== undefined) throw BUCKET_ALREADY_EXISTS(`bucket ${name} already exists`)
      const row = { name, region, created_ms: now, versioning: 'Unversioned', mode: 0o40755, uid: uid(), gid: gid(), mtime_ms: now }
      const id = this.catalog.insertBucket(row)
      this.bucketsChanged()
      log('created bucket %s', name)
      return toBucket({ id, ...row })
    })
  }

  deleteBucket (name: string): void {
    this.catalog.write(() => {
      const b = this.bucketRow(name)
      if (this.catalog.bucketHasContent(b.id)) throw BUCKET_NOT_EMPTY(`bucket ${name} is not empty: it still holds object versions or uploads`)
      this.catalog.deleteBucket(b.id)
      this.bucketsChanged()
    })
  }

  listBuckets (): Bucket[] { return this.catalog.listBuckets().map(toBucket) }
  headBucket (name: string): Bucket { return toBucket(this.bucketRow(name)) }
  getBucketVersioning (name: string): VersioningState { return this.headBucket(name).versioning }

  putBucketVersioning (name: string, state: VersioningState): void {
    if (state !== 'Enabled' && state !== 'Suspended') {
      throw ILLEGAL_VERSIONING(`versioning can be set to Enabled or Suspended, not ${JSON.stringify(state)}`)
    }
    this.catalog.write(() => {
      this.catalog.setVersioning(this.bucketRow(name).id, state)
      this.bucketsChanged()
    })
  }

  setBucketAttrs (name: string, a: { mode: number, uid: number, gid: number, mtimeMs: number }): void {
    this.catalog.write(() => {
      this.catalog.setBucketAttrs(this.bucketRow(name).id, { mode: a.mode, uid: a.uid, gid: a.gid, mtime_ms: a.mtimeMs })
      this.bucketsChanged()
    })
  }

  /**
   * A bucket's row. Outside transactions it comes from a cache that is dropped when
   * this store changes a bucket or another process commits anything. Inside a write
   * transaction a cached row serves only if no other connection has committed since
   * the cache began (PRAGMA data_version, asked then and there), else it is read fresh,
   * so writes never act on a stale row. (Read fresh, it cost a file's save 9 µs.)
   */
  bucketRow (name: string): BucketRow {
    const b = this.findBucket(name)
    if (b === undefined) throw NO_SUCH_BUCKET(`bucket ${JSON.stringify(name)} does not exist`)
    return b
  }

  private readonly bucketCache = new Map<string, BucketRow>()
  private bucketCacheGen = -1
  /** data_version when the cache's first row was read: no other commit since, no row changed. */
  private bucketCacheVersion: number | undefined

  private findBucket (name: string): BucketRow | undefined {
    if (this.catalog.inTransaction) {
      const cached = this.bucketCache.get(name)
      if (cached !== undefined && this.catalog.dataVersion() === this.bucketCacheVersion) return cached
      return this.catalog.bucketByName(name) // (not cached: the transaction may yet roll back)
    }
    const gen = this.catalog.externalGeneration()
    if (gen !== this.bucketCacheGen) { this.bucketsChanged(); this.bucketCacheGen = gen }
    let b = this.bucketCache.get(name)
    if (b === undefined) {
      // Asked before the row is read: a commit in between makes the cache look stale, never fresh.
      this.bucketCacheVersion ??= this.catalog.dataVersion()
      b = this.catalog.bucketByName(name)
      if (b !== undefined) this.bucketCache.set(name, b)
    }
    return b
  }

  /** Called inside the transaction that changes a bucket's row, before it reads any again. */
  private bucketsChanged (): void {
    this.bucketCache.clear()
    this.bucketCacheVersion = undefined
  }

  // ---------------------------------------------------------------- objects

  async putObject (bucket: string, key: string, data: Source, opts: PutOptions = {}): Promise<ObjectVersion> {
    validateKey(key)
    this.bucketRow(bucket)
    const fields = this.fieldsFor(key, opts)
    const got = await this.content.ingest(data, MAX_OBJECT_SIZE)
    return this.commitIngested(bucket, key, fields, got, [{ part: 1, off: 0, size: got.size, md5: got.md5 }], got.md5)
  }

  /** Commits ingested chunks as a new version, releasing their pins in the same transaction. */
  private commitIngested (bucket: string, key: string, fields: VersionFields, got: Ingested, parts: Array<Omit<VersionPartRow, 'seq'>>, etag: string): ObjectVersion {
    try {
      const row = this.catalog.write(() => {
        const b = this.bucketRow(bucket)
        const r = this.commitVersion(b, key, fields, { size: got.size, etag, extents: got.extents, parts })
        this.content.release(got.owner)
        return r
      })
      return toVersion(bucket, row, true)
    } catch (err) {
      this.catalog.write(() => this.content.release(got.owner))
      throw err
    }
  }

  /** Inserts a version (or delete marker) by the bucket's versioning rules. Call inside a write transaction. */
  commitVersion (b: BucketRow, key: string, fields: VersionFields | null,
    data: { size: number, etag: string, extents: Extent[], parts: Array<Omit<VersionPartRow, 'seq'>> } | null): VersionRow {
    const now = Date.now()
    let versionId = 'null'
    if (b.versioning === 'Enabled') {
      versionId = newVersionId(now)
    } else {
      const old = this.catalog.versionSeq(b.id, key, 'null')
      if (old !== undefined) this.catalog.deleteVersion(old)
    }
    const posix = fields?.posix ?? { mode: 0o100644, uid: uid(), gid: gid(), mtimeMs: now, ctimeMs: now }
    const row: NewVersion = {
      bucket_id: b.id,
      key,
      version_id: versionId,
      delete_marker: data === null ? 1 : 0,
      size: data?.size ?? 0,
      etag: data?.etag ?? '',
      last_modified_ms: now,
      content_type: fields?.contentType ?? '',
      headers: fields?.headers ?? '{}',
      user_meta: fields?.userMeta ?? '{}',
      mode: posix.mode, uid: posix.uid, gid: posix.gid, mtime_ms: posix.mtimeMs, ctime_ms: posix.ctimeMs,
      stored: data === null ? 0 : data.extents.reduce((n, e) => e.chunk === null ? n : n + e.len, 0)
    }
    const seq = this.catalog.insertVersion(row)
    if (data !== null) {
      this.catalog.insertExtents(seq, data.extents)
      this.catalog.insertVersionParts(seq, data.parts)
    }
    // The row just inserted has the key's highest seq: it is the latest version.
    this.catalog.setLive(b.id, key, data === null ? null : seq)
    return { seq, ...row }
  }

  fieldsFor (key: string, opts: PutOptions): VersionFields {
    const now = Date.now()
    const userMeta = normalizeUserMeta(opts.userMeta)
    const p = opts.posix ?? {}
    return {
      contentType: opts.contentType ?? guessContentType(key),
      headers: JSON.stringify(cleanHeaders(opts.headers)),
      userMeta: JSON.stringify(userMeta),
      posix: {
        mode: p.mode ?? (key.endsWith('/') ? 0o40755 : 0o100644),
        uid: p.uid ?? uid(),
        gid: p.gid ?? gid(),
        mtimeMs: p.mtimeMs ?? now,
        ctimeMs: p.ctimeMs ?? now
      }
    }
  }

  /** The version a read names: the latest (NoSuchKey if it is a marker) or a given version id. */
  versionRow (bucket: string, key: string, versionId?: string): VersionRow {
    const b = this.bucketRow(bucket)
    if (versionId === undefined) {
      const v = this.catalog.liveVersion(b.id, key)
      if (v === undefined) throw NO_SUCH_KEY(`no such key: ${bucket}/${key}`)
      return v
    }
    const v = this.catalog.versionById(b.id, key, versionId)
    if (v === undefined) throw NO_SUCH_VERSION(`no version ${versionId} of ${bucket}/${key}`)
    if (v.delete_marker === 1) throw METHOD_NOT_ALLOWED(`version ${versionId} of ${bucket}/${key} is a delete marker`)
    return v
  }

  private isLatest (v: VersionRow): boolean {
    return this.catalog.latestVersion(v.bucket_id, v.key)?.seq === v.seq
  }

  headObject (bucket: string, key: string, opts: { versionId?: string } = {}): ObjectVersion {
    const v = this.versionRow(bucket, key, opts.versionId)
    return toVersion(bucket, v, this.isLatest(v))
  }

  /** The latest live version of a key, or undefined (no error): for the mount's lookups. */
  liveVersion (bucket: string, key: string): ObjectVersion | undefined {
    const b = this.findBucket(bucket)
    if (b === undefined) return undefined
    const v = this.catalog.liveVersion(b.id, key)
    return v === undefined ? undefined : toVersion(bucket, v, true)
  }

  async getObject (bucket: string, key: string, opts: GetOptions = {}): Promise<{ version: ObjectVersion, body: Buffer }> {
    const v = this.versionRow(bucket, key, opts.versionId)
    let start = 0
    let end = v.size - 1
    if (opts.range !== undefined) {
      if (!Number.isInteger(opts.range.start) || opts.range.start < 0 || opts.range.start >= v.size) {
        throw INVALID_RANGE(`range start ${opts.range.start} is not within the object's ${v.size} bytes`)
      }
      start = opts.range.start
      end = Math.min(opts.range.end, v.size - 1)
      if (end < start) throw INVALID_RANGE(`range end ${opts.range.end} is before its start ${start}`)
    }
    const body = await this.readVersion(v.seq, v.size, start, end - start + 1)
    return { version: toVersion(bucket, v, this.isLatest(v)), body }
  }

  readObject (bucket: string, key: string, opts: { versionId?: string } = {}): { version: ObjectVersion, stream: AsyncIterable<Buffer> } {
    const v = this.versionRow(bucket, key, opts.versionId)
    const extents = this.catalog.extentsOf(v.seq)
    const content = this.content
    async function * stream (): AsyncGenerator<Buffer> {
      const step = 4 * 1024 * 1024
      for (let off = 0; off < v.size; off += step) yield await content.read(extents, v.size, off, step)
    }
    return { version: toVersion(bucket, v, this.isLatest(v)), stream: stream() }
  }

  extentsOf (seq: number): ReadableExtent[] { return this.catalog.extentsOf(seq) }

  async readVersion (seq: number, size: number, off: number, len: number): Promise<Buffer> {
    return await this.content.read(this.catalog.extentsOf(seq), size, off, len)
  }

  async copyObject (srcBucket: string, srcKey: string, dstBucket: string, dstKey: string, opts: CopyOptions = {}): Promise<ObjectVersion> {
    validateKey(dstKey)
    const replace = opts.metadataDirective === 'REPLACE'
    const row = this.catalog.write(() => {
      const src = this.versionRow(srcBucket, srcKey, opts.versionId)
      const b = this.bucketRow(dstBucket)
      const fields: VersionFields = replace
        ? this.fieldsFor(dstKey, opts)
        : { contentType: src.content_type, headers: src.headers, userMeta: src.user_meta, posix: { mode: src.mode, uid: src.uid, gid: src.gid, mtimeMs: src.mtime_ms, ctimeMs: Date.now() } }
      return this.commitVersion(b, dstKey, fields, this.sharedData(src))
    })
    return toVersion(dstBucket, row, true)
  }

  /** A version's data as the same chunks, for a new version that copies no bytes. */
  sharedData (src: VersionRow): { size: number, etag: string, extents: Extent[], parts: Array<Omit<VersionPartRow, 'seq'>> } {
    return {
      size: src.size,
      etag: src.etag,
      extents: this.catalog.extentsOf(src.seq).map(e => ({ off: e.off, len: e.len, chunk: e.chunk, coff: e.coff })),
      parts: this.catalog.versionParts(src.seq).map(p => ({ part: p.part, off: p.off, size: p.size, md5: p.md5 }))
    }
  }

  async restoreObject (bucket: string, key: string, versionId: string): Promise<ObjectVersion> {
    return await this.copyObject(bucket, key, bucket, key, { versionId })
  }

  deleteObject (bucket: string, key: string, opts: { versionId?: string } = {}): DeleteResult {
    validateKey(key)
    return this.catalog.write(() => {
      const b = this.bucketRow(bucket)
      return this.deleteInTransaction(b, key, opts.versionId)
    })
  }

  /**
   * DeleteObject of a key that has a live version (an unlink of a stored file): false,
   * with nothing changed, when it has none. One transaction, with no lookup before it.
   */
  deleteLive (bucket: string, key: string): boolean {
    return this.catalog.write(() => {
      const b = this.bucketRow(bucket)
      if (b.versioning === 'Unversioned') {
        // Its one version at most is the live one (deleteInTransaction).
        const seq = this.catalog.takeLive(b.id, key)
        if (seq === undefined) return false
        this.catalog.deleteVersion(seq)
        return true
      }
      if (this.catalog.liveStat(b.id, key) === undefined) return false
      this.deleteInTransaction(b, key)
      return true
    })
  }

  /** DeleteObject's rules, inside a write transaction. */
  deleteInTransaction (b: BucketRow, key: string, versionId?: string): DeleteResult {
    if (versionId !== undefined) {
      const v = this.catalog.versionById(b.id, key, versionId)
      if (v !== undefined) {
        this.catalog.deleteVersion(v.seq)
        this.catalog.refreshLive(b.id, key)
      }
      return { versionId, deleteMarker: v?.delete_marker === 1 }
    }
    if (b.versioning === 'Unversioned') {
      // A bucket never versioned holds one version per key at most: the 'null' one.
      const v = this.catalog.versionSeq(b.id, key, 'null')
      if (v !== undefined) this.catalog.deleteVersion(v)
      this.catalog.setLive(b.id, key, null)
      return { versionId: 'null', deleteMarker: false }
    }
    const marker = this.commitVersion(b, key, null, null)
    return { versionId: marker.version_id, deleteMarker: true }
  }

  /** Changes a live object's metadata in place (no new version): chmod, chown, utimens, xattrs. */
  updateObjectMetadata (bucket: string, key: string, change: (v: ObjectVersion) => { posix?: Partial<PosixAttrs>, userMeta?: Record<string, string>, contentType?: string }): ObjectVersion {
    return this.catalog.write(() => {
      const b = this.bucketRow(bucket)
      const row = this.catalog.liveVersion(b.id, key)
      if (row === undefined) throw NO_SUCH_KEY(`no such key: ${bucket}/${key}`)
      const cur = toVersion(bucket, row, true)
      const c = change(cur)
      const posix = { ...cur.posix, ...c.posix }
      const userMeta = c.userMeta === undefined ? row.user_meta : JSON.stringify(normalizeUserMeta(c.userMeta))
      const next = {
        mode: posix.mode, uid: posix.uid, gid: posix.gid, mtime_ms: posix.mtimeMs, ctime_ms: posix.ctimeMs,
        content_type: c.contentType ?? row.content_type, user_meta: userMeta, headers: row.headers
      }
      this.catalog.updateVersionAttrs(row.seq, next)
      return toVersion(bucket, { ...row, ...next }, true)
    })
  }

  /**
   * updateObjectMetadata for the POSIX attributes alone (chmod, chown, utimens): one
   * read and one update, no version decoded. Answers the version's seq, the attributes
   * set and its size, or undefined (nothing changed) when the key has no live version.
   */
  updatePosix (bucket: string, key: string, change: (p: PosixAttrs) => void): PosixUpdate | undefined {
    return this.catalog.write(() => {
      const r = this.catalog.liveStat(this.bucketRow(bucket).id, key)
      if (r === undefined) return undefined
      const [size, stored, mode, uid, gid, mtimeMs, ctimeMs, seq] = r
      const p: PosixAttrs = { mode, uid, gid, mtimeMs, ctimeMs }
      change(p)
      this.catalog.updatePosix(seq, p.mode, p.uid, p.gid, p.mtimeMs, p.ctimeMs)
      return { seq, posix: p, size, storedBytes: stored ?? size }
    })
  }

  // ---------------------------------------------------------------- listings

  listObjects (bucket: string, opts: ListObjectsOptions = {}): ListObjectsResult {
    const max = clampMaxKeys(opts.maxKeys)
    const prefix = opts.prefix ?? ''
    const delimiter = opts.delimiter ?? ''
    return this.catalog.read(() => {
      const b = this.bucketRow(bucket)
      let after: string | null = opts.startAfter ?? null
      if (opts.continuationToken !== undefined) after = decodeToken(opts.continuationToken)
      const walk = walkKeys(this.catalog, b.id, 'live', prefix, delimiter, after, max)
      const contents: ObjectVersion[] = []
      for (const k of walk.keys) {
        const v = k.row ?? this.catalog.versionBySeq(k.seq)
        if (v !== undefined) contents.push(toVersion(bucket, v, true))
      }
      return {
        contents,
        commonPrefixes: walk.prefixes,
        isTruncated: walk.truncated,
        nextContinuationToken: walk.truncated && walk.last !== null ? encodeToken(walk.last) : undefined,
        keyCount: contents.length + walk.prefixes.length
      }
    })
  }

  /** Every sub-prefix and key right under `prefix` (a directory on the mount), in one pass. */
  listDirectory (bucket: string, prefix: string): Directory {
    return this.catalog.read(() => this.catalog.directory(this.bucketRow(bucket).id, prefix))
  }

  /** Whether directory `prefix` holds more than `limit` live keys or directories (Catalog.holdsMore), without listing it. */
  holdsMore (bucket: string, prefix: string, limit: number): boolean {
    return this.catalog.read(() => this.catalog.holdsMore(this.bucketRow(bucket).id, prefix, limit))
  }

  /** What the mount's lookups need of a live key (no error when there is none, or no bucket). */
  liveStat (bucket: string, key: string): LiveStat | undefined {
    const b = this.findBucket(bucket)
    const r = b === undefined ? undefined : this.catalog.liveStat(b.id, key)
    if (r === undefined) return undefined
    const [size, stored, mode, uid, gid, mtimeMs, ctimeMs] = r
    return { size, storedBytes: stored ?? size, posix: { mode, uid, gid, mtimeMs, ctimeMs } }
  }

  /** Whether a live key other than the directory's own marker lies under `prefix` (ending in '/'): not an empty directory. */
  holdsKeys (bucket: string, prefix: string): boolean {
    return this.catalog.holdsLiveKeys(this.bucketRow(bucket).id, prefix)
  }

  /**
   * The directory `dir/` as stored: its marker's POSIX fields, `implied` when only keys
   * under it exist, or undefined (one query for both: the first live key under it).
   */
  dirStat (bucket: string, dir: string): { marker: PosixAttrs } | 'implied' | undefined {
    const b = this.findBucket(bucket)
    const r = b === undefined ? undefined : this.catalog.dirStat(b.id, dir + '/')
    if (r === undefined || r === 'implied') return r
    const [mode, uid, gid, mtimeMs, ctimeMs] = r
    return { marker: { mode, uid, gid, mtimeMs, ctimeMs } }
  }

  listObjectVersions (bucket: string, opts: ListVersionsOptions = {}): ListVersionsResult {
    const max = clampMaxKeys(opts.maxKeys)
    const prefix = opts.prefix ?? ''
    const delimiter = opts.delimiter ?? ''
    return this.catalog.read(() => {
      const b = this.bucketRow(bucket)
      const versions: ObjectVersion[] = []
      const full = (): boolean => versions.length >= max
      const add = (rows: VersionRow[], from: number): boolean => {
        for (let j = from; j < rows.length; j++) {
          if (full()) return false
          versions.push(toVersion(bucket, rows[j], j === 0))
        }
        return true
      }
      const markers = (): Pick<ListVersionsResult, 'nextKeyMarker' | 'nextVersionIdMarker'> => {
        const last = versions[versions.length - 1]
        return last === undefined ? {} : { nextKeyMarker: last.key, nextVersionIdMarker: last.versionId }
      }
      const keyMarker = opts.keyMarker ?? null
      if (keyMarker !== null && opts.versionIdMarker !== undefined && opts.versionIdMarker !== '') {
        // Resume inside the marker's key, after versionIdMarker.
        const rows = this.catalog.versionsOfKey(b.id, keyMarker)
        const i = rows.findIndex(r => r.version_id === opts.versionIdMarker)
        if (i < 0) throw INVALID_ARGUMENT(`version-id-marker ${opts.versionIdMarker} is not a version of ${keyMarker}`)
        if (!add(rows, i + 1)) return { versions, commonPrefixes: [], isTruncated: true, ...markers() }
      }
      if (max === 0) return { versions, commonPrefixes: [], isTruncated: false }
      // Versions and common prefixes both count against max-keys, in key order.
      const walk = walkKeys(this.catalog, b.id, 'versions', prefix, delimiter, keyMarker, max - versions.length)
      const prefixes: string[] = []
      for (const entry of walk.entries) {
        if (entry.kind === 'prefix') {
          if (versions.length + prefixes.length >= max) return { versions, commonPrefixes: prefixes, isTruncated: true, ...markers() }
          prefixes.push(entry.name)
          continue
        }
        const rows = this.catalog.versionsOfKey(b.id, entry.name)
        for (let j = 0; j < rows.length; j++) {
          if (versions.length + prefixes.length >= max) {
            const last = prefixes.length > 0 && (versions.length === 0 || compareKeys(prefixes[prefixes.length - 1], versions[versions.length - 1].key) > 0)
            return { versions, commonPrefixes: prefixes, isTruncated: true, ...(last ? { nextKeyMarker: prefixes[prefixes.length - 1] } : markers()) }
          }
          versions.push(toVersion(bucket, rows[j], j === 0))
        }
      }
      if (!walk.truncated) return { versions, commonPrefixes: prefixes, isTruncated: false }
      const lastIsPrefix = walk.last !== null && prefixes[prefixes.length - 1] === walk.last
      return { versions, commonPrefixes: prefixes, isTruncated: true, ...(lastIsPrefix ? { nextKeyMarker: walk.last ?? undefined } : markers()) }
    })
  }

  /** Keys with any version (delete markers too) and common prefixes under prefix: the .versions tree. */
  listVersionKeys (bucket: string, prefix: string, delimiter: string, after: string | null, max: number): { keys: string[], prefixes: string[], truncated: boolean, last: string | null } {
    const b = this.bucketRow(bucket)
    const w = walkKeys(this.catalog, b.id, 'versions', prefix, delimiter, after, max)
    return { keys: w.keys.map(k => k.key), prefixes: w.prefixes, truncated: w.truncated, last: w.last }
  }

  /** Every version of a key, newest first (delete markers included). */
  versionsOf (bucket: string, key: string): ObjectVersion[] {
    const b = this.bucketRow(bucket)
    return this.catalog.versionsOfKey(b.id, key).map((r, i) => toVersion(bucket, r, i === 0))
  }

  // ---------------------------------------------------------------- multipart

  createMultipartUpload (bucket: string, key: string, opts: PutOptions = {}): MultipartUpload {
    validateKey(key)
    const fields = this.fieldsFor(key, opts)
    return this.catalog.write(() => {
      const b = this.bucketRow(bucket)
      const u = { upload_id: newUploadId(), bucket_id: b.id, key, kind: 'client', initiated_ms: Date.now(), attrs: JSON.stringify(fields), base_seq: null, base_limit: 0, size: 0 }
      this.catalog.insertUpload(u)
      return { uploadId: u.upload_id, bucket, key, initiatedMs: u.initiated_ms, kind: 'client' as const }
    })
  }

  async uploadPart (uploadId: string, partNumber: number, data: Source): Promise<Part> {
    if (!Number.isInteger(partNumber) || partNumber < 1 || partNumber > MAX_PARTS) {
      throw INVALID_ARGUMENT(`part number must be an integer from 1 to ${MAX_PARTS}, not ${partNumber}`)
    }
    this.uploadRow(uploadId)
    const got = await this.content.ingest(data, MAX_PART_SIZE)
    try {
      const modified = this.catalog.write(() => {
        const u = this.uploadRow(uploadId)
        this.catalog.replacePart(u.id, partNumber, got.size, got.md5, got.extents)
        this.content.release(got.owner)
        return Date.now()
      })
      return { partNumber, size: got.size, etag: got.md5, lastModifiedMs: modified }
    } catch (err) {
      this.catalog.write(() => this.content.release(got.owner))
      throw err
    }
  }

  uploadRow (uploadId: string): import('../meta/catalog').UploadRow {
    const u = this.catalog.uploadById(uploadId)
    if (u === undefined) throw NO_SUCH_UPLOAD(`no such upload: ${uploadId}`)
    return u
  }

  listParts (uploadId: string): Part[] {
    const u = this.uploadRow(uploadId)
    return this.catalog.uploadParts(u.id).map(p => ({ partNumber: p.part, size: p.size, etag: p.md5, lastModifiedMs: p.modified_ms }))
  }

  listMultipartUploads (bucket?: string): MultipartUpload[] {
    const id = bucket === undefined ? null : this.bucketRow(bucket).id
    return this.catalog.listUploads(id).map(u => ({
      uploadId: u.upload_id, bucket: this.catalog.bucketById(u.bucket_id)?.name ?? '?', key: u.key, initiatedMs: u.initiated_ms, kind: u.kind as 'client' | 'session'
    }))
  }

  async completeMultipartUpload (uploadId: string, parts: CompletedPart[]): Promise<ObjectVersion> {
    if (!Array.isArray(parts) || parts.length === 0) throw INVALID_ARGUMENT('complete needs at least one part')
    const { row, bucket } = this.catalog.write(() => {
      const u = this.uploadRow(uploadId)
      const stored = new Map(this.catalog.uploadParts(u.id).map(p => [p.part, p]))
      const extents: Extent[] = []
      const vparts: Array<Omit<VersionPartRow, 'seq'>> = []
      let off = 0
      let prev = 0
      parts.forEach((p, i) => {
        if (p.partNumber <= prev) throw INVALID_PART_ORDER('parts must be listed in ascending order of part number')
        prev = p.partNumber
        const s = stored.get(p.partNumber)
        if (s === undefined) throw INVALID_PART(`part ${p.partNumber} was not uploaded`)
        if (p.etag !== undefined && p.etag.replace(/"/g, '') !== s.md5) throw INVALID_PART(`part ${p.partNumber}'s ETag does not match`)
        if (i < parts.length - 1 && s.size < MIN_PART_SIZE) throw ENTITY_TOO_SMALL(`part ${p.partNumber} is ${s.size} bytes; all parts but the last must be at least ${MIN_PART_SIZE}`)
        for (const e of this.catalog.partExtents(u.id, p.partNumber)) extents.push({ off: off + e.off, len: e.len, chunk: e.chunk, coff: e.coff })
        vparts.push({ part: p.partNumber, off, size: s.size, md5: s.md5 })
        off += s.size
      })
      if (off > MAX_OBJECT_SIZE) throw ENTITY_TOO_LARGE(`the object would be ${off} bytes; the limit is ${MAX_OBJECT_SIZE}`)
      const b = this.catalog.bucketById(u.bucket_id)
      if (b === undefined) throw NO_SUCH_BUCKET('the upload\'s bucket no longer exists')
      const f = JSON.parse(u.attrs) as VersionFields
      const etag = multipartEtag(vparts.map(p => p.md5))
      const row = this.commitVersion(b, u.key, f, { size: off, etag, extents, parts: vparts })
      this.catalog.deleteUpload(u.id)
      return { row, bucket: b.name }
    })
    return toVersion(bucket, row, true)
  }

  abortMultipartUpload (uploadId: string): void {
    this.catalog.write(() => this.catalog.deleteUpload(this.uploadRow(uploadId).id))
  }

  // ---------------------------------------------------------------- maintenance

  async fsck (opts: { deep?: boolean, repair?: boolean, onProgress?: (done: number, total: number) => void } = {}): Promise<FsckReport> {
    return await fsck(this, opts)
  }

  gc (opts: { onProgress?: (done: number, total: number) => void } = {}): GcReport { return gc(this, opts) }

  stats (): StoreStats {
    const c = this.catalog.read(() => this.catalog.counts())
    const logical = c.logical + c.partBytes
    return {
      buckets: c.buckets, objects: c.objects, versions: c.versions, deleteMarkers: c.markers, uploads: c.uploads,
      logicalBytes: logical, storedBytes: c.stored, chunks: c.chunks, inlineChunks: c.inlineChunks,
      dedupRatio: c.stored === 0 ? 1 : logical / c.stored
    }
  }
}

function uid (): number { return process.getuid?.() ?? 0 }
function gid (): number { return process.getgid?.() ?? 0 }
