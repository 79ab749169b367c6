// Metadata changes that make no version: chmod, chown and utimens (POSIX
// attributes kept with each version) and xattrs (S3 user metadata, the system
// attributes under user.s3., bucket versioning). A file being written keeps the
// change in its session too, so the version its close makes has it.
import type { Store } from '../store/store'
import type { PosixAttrs } from '../store/types'
import type { PosixUpdate } from '../store/store'
import { parsePath } from './paths'
import type { Location } from './paths'
import { fileAttr, isDirMode, S_IFDIR, S_IFMT } from './attr'
import type { Attr } from './attr'
import type { VersionsTree } from './versions-tree'
import type { FileNode } from './node'
import * as xattr from './xattr'
import { READ_ONLY, NOT_PERMITTED } from '../errors'

/** utimensat's UTIME_OMIT, as patched fuse-native passes it (scripts/patch-fuse-native.js); UTIME_NOW arrives as the time. */
const UTIME_OMIT_MS = 2 ** 52
const NO_ID = 0xffffffff

/** What metadata changes need of the vfs. */
export interface MetadataContext {
  store: Store
  versions: VersionsTree
  keyAttr: (bucket: string, key: string) => Attr
  /** The open file at a key, if any. */
  openNode: (bucket: string, key: string) => FileNode | undefined
  /** Whether a lookup of the key answers from its stored live version, when it has one (no write session or hidden file answers first). */
  fromStore: (bucket: string, key: string) => boolean
}

export class Metadata {
  constructor (private readonly ctx: MetadataContext) {}


  /**
   * Applies a metadata change to whatever the path is; none of these creates a version.
   * Done at once (a promise only when a directory's marker object must be made first).
   * Answers the attributes a lookup now finds where it knows them without another
   * query: those of a stored file.
   */
  private changeAttrs (path: string, change: (p: PosixAttrs) => void): Attr | undefined | Promise<undefined> {
    const loc = parsePath(path)
    if (loc.kind === 'root') throw NOT_PERMITTED('the root\'s attributes are fixed')
    if (loc.kind === 'versions') throw READ_ONLY('.versions is read-only')
    const now = Date.now()
    if (loc.kind === 'bucket') {
      const b = this.ctx.store.headBucket(loc.bucket)
      const p = { mode: b.mode, uid: b.uid, gid: b.gid, mtimeMs: b.mtimeMs, ctimeMs: now }
      change(p)
      this.ctx.store.setBucketAttrs(b.name, { ...p, mode: S_IFDIR | (p.mode & 0o7777) })
      return undefined
    }
    const { bucket, key } = loc
    const node = this.ctx.openNode(bucket, key)
    const update = (k: string): PosixUpdate | undefined => this.ctx.store.updatePosix(bucket, k, p => { p.ctimeMs = now; change(p) })
    /** An open file's node keeps the version it reads as: it gets the changed one. */
    const followed = (done: PosixUpdate): void => {
      if (node === undefined || node.session !== null) return
      node.version = node.version?.seq === done.seq ? { ...node.version, posix: done.posix } : this.ctx.store.liveVersion(bucket, key) ?? null
    }
    // A stored file (a lookup's first answer, and a file hides a directory of its name):
    // changed at once, with no lookup before nor after.
    const stored = this.ctx.fromStore(bucket, key)
    if (stored) {
      const done = update(key)
      if (done !== undefined) {
        followed(done)
        return fileAttr(done.size, done.posix, done.storedBytes)
      }
    }
    const a = this.ctx.keyAttr(bucket, key)
    if (isDirMode(a.mode)) {
      const markerKey = key + '/'
      if (update(markerKey) !== undefined) return undefined
      return this.ctx.store.putObject(bucket, markerKey, Buffer.alloc(0), { contentType: 'application/x-directory', posix: { mode: a.mode, uid: a.uid, gid: a.gid, mtimeMs: a.mtimeMs } })
        .then(() => { update(markerKey); return undefined })
    }
    if (node?.session != null) {
      const p = node.session.fields.posix
      change(p)
      p.ctimeMs = now
      // A new file (no version yet): its close makes the first, with these attributes.
      if (node.version === null) return undefined
    }
    if (stored) return undefined // (tried above: no live version)
    const done = update(key)
    if (done !== undefined) followed(done)
    return undefined
  }

  chmod (path: string, mode: number): Attr | undefined | Promise<undefined> {
    return this.changeAttrs(path, p => { p.mode = (p.mode & S_IFMT) | (mode & 0o7777) })
  }

  chown (path: string, uid: number, gid: number): Attr | undefined | Promise<undefined> {
    return this.changeAttrs(path, p => {
      if (uid !== NO_ID && uid !== -1) p.uid = uid
      if (gid !== NO_ID && gid !== -1) p.gid = gid
    })
  }

  /** atime is not stored (it reads as the mtime); an omitted mtime is left as it is. */
  utimens (path: string, _atimeMs: number, mtimeMs: number): Attr | undefined | Promise<undefined> {
    return this.changeAttrs(path, p => { if (mtimeMs !== UTIME_OMIT_MS) p.mtimeMs = mtimeMs })
  }


  private xattrTarget (path: string): { system: Record<string, string>, meta: Record<string, string>, loc: Location, markerKey?: string } {
    const loc = parsePath(path)
    if (loc.kind === 'root') return { system: {}, meta: {}, loc }
    if (loc.kind === 'bucket') return { system: xattr.bucketSystemAttrs(this.ctx.store.headBucket(loc.bucket)), meta: {}, loc }
    if (loc.kind === 'versions') {
      const v = this.ctx.versions.versionAt(loc.bucket, loc.rest)
      if (v === undefined) { this.ctx.versions.getattr(loc.bucket, loc.rest); return { system: {}, meta: {}, loc } }
      return { system: xattr.systemAttrsOf(v), meta: v.userMeta, loc }
    }
    const a = this.ctx.keyAttr(loc.bucket, loc.key)
    const key = isDirMode(a.mode) ? loc.key + '/' : loc.key
    const node = this.ctx.openNode(loc.bucket, loc.key)
    const v = this.ctx.store.liveVersion(loc.bucket, key)
    if (node?.session != null && !isDirMode(a.mode)) {
      const meta = JSON.parse(node.session.fields.userMeta) as Record<string, string>
      const system = v === undefined ? { content_type: node.session.fields.contentType } : { ...xattr.systemAttrsOf(v), content_type: node.session.fields.contentType }
      return { system, meta, loc }
    }
    if (v === undefined) return { system: {}, meta: {}, loc, markerKey: isDirMode(a.mode) ? key : undefined }
    return { system: xattr.systemAttrsOf(v), meta: v.userMeta, loc, markerKey: isDirMode(a.mode) ? key : undefined }
  }

  async getxattr (path: string, name: string): Promise<Buffer> {
    xattr.classify(name) // security.* (asked by the kernel before every write) fails here, before any lookup
    const t = this.xattrTarget(path)
    return xattr.lookup(name, t.system, t.meta)
  }

  async listxattr (path: string): Promise<string[]> {
    const t = this.xattrTarget(path)
    return xattr.names(t.system, t.meta)
  }

  async setxattr (path: string, name: string, value: Buffer, flags: number): Promise<void> {
    const loc = parsePath(path)
    if (loc.kind === 'versions') throw READ_ONLY('.versions is read-only')
    const c = xattr.classify(name)
    if (loc.kind === 'bucket') {
      if (c.kind === 'system' && c.attr === 'versioning') { this.ctx.store.putBucketVersioning(loc.bucket, xattr.parseVersioning(value)); return }
      throw NOT_PERMITTED(`a bucket has no settable attribute ${name}`)
    }
    if (loc.kind === 'root') throw NOT_PERMITTED('the root has no attributes')
    if (c.kind === 'system' && c.attr !== 'content_type') throw NOT_PERMITTED(`${name} is read-only`)
    await this.changeMeta(loc.bucket, loc.key, (meta, contentType) => c.kind === 'system'
      ? { meta, contentType: xattr.utf8Value(name, value) }
      : { meta: xattr.withUserMeta(meta, name, value, flags), contentType })
  }

  async removexattr (path: string, name: string): Promise<void> {
    const loc = parsePath(path)
    if (loc.kind === 'versions') throw READ_ONLY('.versions is read-only')
    if (loc.kind !== 'key') throw NOT_PERMITTED(`${name} cannot be removed here`)
    await this.changeMeta(loc.bucket, loc.key, (meta, contentType) => ({ meta: xattr.withoutUserMeta(meta, name), contentType }))
  }

  private async changeMeta (bucket: string, key: string,
    change: (meta: Record<string, string>, contentType: string) => { meta: Record<string, string>, contentType: string }): Promise<void> {
    const a = this.ctx.keyAttr(bucket, key)
    const node = this.ctx.openNode(bucket, key)
    if (!isDirMode(a.mode) && node?.session != null) {
      const f = node.session.fields
      const next = change(JSON.parse(f.userMeta) as Record<string, string>, f.contentType)
      const checked = this.ctx.store.fieldsFor(key, { userMeta: next.meta, contentType: next.contentType })
      f.userMeta = checked.userMeta
      f.contentType = checked.contentType
      f.posix.ctimeMs = Date.now()
      node.session.changed = node.session.changed || this.ctx.store.liveVersion(bucket, key) === undefined
    }
    const target = isDirMode(a.mode) ? key + '/' : key
    if (isDirMode(a.mode) && this.ctx.store.liveVersion(bucket, target) === undefined) {
      await this.ctx.store.putObject(bucket, target, Buffer.alloc(0), { contentType: 'application/x-directory', posix: { mode: a.mode, uid: a.uid, gid: a.gid, mtimeMs: a.mtimeMs } })
    }
    if (this.ctx.store.liveVersion(bucket, target) !== undefined) {
      this.ctx.store.updateObjectMetadata(bucket, target, v => {
        const next = change(v.userMeta, v.contentType)
        return { userMeta: next.meta, contentType: next.contentType, posix: { ctimeMs: Date.now() } }
      })
    }
  }
}
