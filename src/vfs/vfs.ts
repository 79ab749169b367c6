// Filesystem semantics over the S3 store, with no FUSE in it: the namespace
// (buckets, keys, implied directories), open files and their shared write
// sessions, renames, attributes and the .versions tree.
import createDebug from 'debug'
import { LRUCache } from 'lru-cache'
import type { Store } from '../store/store'
import type { ObjectVersion } from '../store/types'
import type { ReadableExtent } from '../meta/catalog'
import type { ChunkSlice } from '../store/content'
import { renameObject, renamePrefix } from '../store/rename'
import { recoverSessions } from '../store/sessions'
import { parsePath, keyLocation, parentKey, showableName, VERSIONS_DIR } from './paths'
import { fileAttr, listedFileAttr, dirAttr, bucketAttr, versionAttr, isDirMode, isLinkMode, S_IFDIR, S_IFREG, S_IFLNK, S_IFMT } from './attr'
import type { Attr, Listing } from './attr'
import { POOLED, pooledBuffer, recycle } from '../blob/pool'
import { WriteSession, writeTookBytes } from './session'
import { MemoryBudget } from './budget'
import { VersionsTree } from './versions-tree'
import { Metadata } from './metadata'
import { Leftovers } from './leftovers'
import { FileNode } from './node'
import type { Handle, FileHandle } from './node'
import {
  NOT_FOUND, EXISTS, STALE, NOT_DIRECTORY, IS_DIRECTORY, DIRECTORY_NOT_EMPTY, READ_ONLY, NOT_PERMITTED, BAD_HANDLE,
  INVALID_ARGUMENT, isBucketfsError, KEY_TOO_LONG, TOO_MANY_FILES, messageOf
} from '../errors'
import { MAX_KEY_BYTES, MAX_NAME_BYTES } from '../store/limits'

const log = createDebug('bucketfs:vfs')

export interface VfsOptions { writeBudgetBytes?: number, showVersions?: boolean, uid?: number, gid?: number, readWindows?: ReadWindows }

/**
 * Where a sequential reader's next bytes can be put, for the mount to answer its reads
 * without calling read (the patched addon's windows). A put is refused (false) when
 * anything changed since `epoch()` was read; the sink copies the data.
 */
export interface ReadWindows {
  epoch: () => number
  put: (epoch: number, fh: number, path: string, off: number, data: Buffer, eof: boolean) => boolean
  /**
   * Drops every window (and refuses puts begun before): for a change to a file the
   * mount cannot tie to the windows' path (one written through its .fuse_hidden name).
   */
  dropAll: () => void
  /**
   * put, with bytes [from.off, from.off + len) of the chunk file `from.file` (from.size
   * bytes, CRC-32 from.crc), read and checked off the main thread: 1 put, 0 refused, -1
   * the file is not the chunk (size or CRC-32), or -errno (unreadable).
   */
  load?: (epoch: number, fh: number, path: string, off: number, len: number, eof: boolean, from: ChunkSlice) => Promise<number>
}

/** Who makes a call, when the mount knows (its process, and the uid and gid new files and directories get). */
export interface Caller { pid?: number, uid?: number, gid?: number }

export interface StatFs { bsize: number, frsize: number, blocks: number, bfree: number, bavail: number, files: number, ffree: number, favail: number, namemax: number }

const O_ACCMODE = 3
const O_RDONLY = 0
const O_TRUNC = 0o1000
const O_APPEND = 0o2000

/**
 * Handle numbers stay below this: the mount hands them to fuse-native as int32 with
 * bits 29 and 30 as flags (src/mount/adapter.ts). 0 means no handle.
 */
export const HANDLE_LIMIT = 2 ** 29

/** A cachedSeq entry saying the kernel's pages of the key must be dropped (seqs start at 1). */
const PAGES_UNKNOWN = -1

/** How far past a sequential read chunks are loaded ahead (kept in the verified-chunk cache). */
const READ_AHEAD = 4 * 1024 * 1024
/**
 * How far past a sequential read its windows are put (ReadWindows), in windows of WINDOW
 * bytes; the mount asks for more when a reader is within half of it (BUCKETFS_LOW in
 * fast-path.c). Loads run this far ahead too: with 8 MiB and 8 loads, a cold `dd` caught
 * up with the loads and 21–68 of 1,024 reads came here (4 ms each); with 16 MiB and 16
 * loads, 2–6 (before loads read into huge pages).
 */
const FEED_AHEAD = 16 * 1024 * 1024
/**
 * Windows a feed has loading on the threadpool at once (ReadWindows.load). Since loads
 * read into huge pages (one disk request each, fast-path.c), the disk takes them all at
 * once, and this VM's disk gives less at a depth of 16 than of 4-8: a cold 1 GiB `dd`
 * read 1.5-1.6 GB/s with 16, 1.6-2.0 with 4, 6 or 8.
 */
const LOADS_IN_FLIGHT = 8
const WINDOW = POOLED

/** How soon after a hide a rename onto the name counts as the replace that caused it. */
const MARKER_TAKEBACK_MS = 1000

/** libfuse's name for a file it hides (an open file being unlinked or replaced). */
function isFuseHidden (key: string): boolean {
  return /(^|\/)\.fuse_hidden[0-9a-f]+$/.test(key)
}

export class Vfs {
  private readonly nodes = new Map<string, FileNode>()
  /**
   * libfuse 2 (without hard_remove, which breaks opening an inode that a rename has just
   * replaced) unlinks an open file, or one a rename is about to replace, by renaming it
   * to .fuse_hiddenNNN first. That rename is the unlink: the key is deleted at once (so
   * it holds after a crash), `hidden` keeps the open file by its hidden id, and
   * `markers` the delete marker it made, which a rename onto the name soon after (the
   * replace case) takes back so the history reads v1, v2 and not v1, deleted, v2.
   */
  private readonly hidden = new Map<string, FileNode>()
  private readonly markers = new Map<string, { versionId: string, atMs: number }>()
  private readonly handles = new Map<number, Handle>()
  /** The number the next handle gets, or the first free one after it (newHandle). */
  private nextFh = 1
  /** Set when shutdown begins: writes, truncates and opens for writing are refused (notClosing). */
  private closing = false
  /**
   * Sessions missing a write the kernel was told was done (a staged write that failed):
   * the first such failure. Such a session is never completed: its save is dropped.
   */
  private readonly gaps = new WeakMap<WriteSession, unknown>()
  private readonly budget: MemoryBudget
  private readonly versions: VersionsTree
  private readonly metadata: Metadata
  private readonly uid: number
  private readonly gid: number
  private readonly started = Date.now()
  /** Store cleanups that failed (a full disk), retried until they succeed. */
  private readonly leftovers = new Leftovers()
  /**
   * Per key, the version whose bytes the kernel's page cache may hold (the one last
   * opened, or last saved through this mount: writes pass the page cache). An open
   * keeps the cache only when the key's version is still that one.
   */
  private readonly cachedSeq = new LRUCache<string, number>({ max: 100_000 })
  /**
   * cachedSeq's keys carry this number: a directory rename moves it on, which forgets
   * every entry at once (lru-cache's clear() fills its 100,000 slots: 0.2 ms a rename).
   */
  private pagesEpoch = 0
  private pagesKey (bucket: string, key: string): string { return `${this.pagesEpoch}:${this.id(bucket, key)}` }

  constructor (readonly store: Store, readonly opts: VfsOptions = {}) {
    this.budget = new MemoryBudget(opts.writeBudgetBytes ?? 256 * 1024 * 1024)
    this.versions = new VersionsTree(store)
    this.metadata = new Metadata({
      store,
      versions: this.versions,
      keyAttr: (bucket, key) => this.keyAttr(bucket, key),
      openNode: (bucket, key) => this.nodes.get(this.id(bucket, key)),
      fromStore: (bucket, key) => !this.hidden.has(this.id(bucket, key)) && this.nodes.get(this.id(bucket, key))?.session == null
    })
    this.uid = opts.uid ?? process.getuid?.() ?? 0
    this.gid = opts.gid ?? process.getgid?.() ?? 0
  }

  // ------------------------------------------------------------ lifecycle

  /** Completes the uploads of files that were fsynced but never closed before a crash. */
  async recover (): Promise<ObjectVersion[]> {
    const { completed, dropped } = await recoverSessions(this.store)
    if (completed.length + dropped > 0) log('recovered %d closed or fsynced files; dropped %d half-written ones', completed.length, dropped)
    return completed
  }

  /** Flushes and completes every open write (unmount, SIGTERM). */
  async shutdown (): Promise<void> {
    // From here on nothing new is written: it would be answered done and never completed.
    this.closing = true
    this.leftovers.retry()
    for (const node of [...this.nodes.values()]) {
      if (node.session === null) continue
      // (As a close: a save missing a write the kernel was told was done is dropped.)
      try { await this.completeNode(node) } catch (err) { log('completing %s/%s at shutdown failed: %s', node.bucket, node.key, (err as Error).stack) }
    }
  }

  /** EROFS once shutdown has begun (the mount is being unmounted): for an op that would write. */
  private notClosing (): void {
    if (this.closing) throw READ_ONLY('the mount is being unmounted')
  }

  /** The owner of what a caller creates: the caller, else the daemon's user. */
  private owner (caller?: Caller): { uid: number, gid: number } {
    return { uid: caller?.uid ?? this.uid, gid: caller?.gid ?? this.gid }
  }

  // ------------------------------------------------------------ lookups

  private id (bucket: string, key: string): string { return `${bucket}/${key}` }

  /** `live`: the key's live version when the caller has just found it (null: it has none). */
  private nodeFor (bucket: string, key: string, live?: ObjectVersion | null): FileNode {
    const id = this.id(bucket, key)
    let node = this.nodes.get(id)
    if (node === undefined) {
      node = new FileNode(bucket, key, live !== undefined ? live : this.store.liveVersion(bucket, key) ?? null)
      this.nodes.set(id, node)
    }
    return node
  }

  private dropIfIdle (node: FileNode): void {
    if (node.opens === 0 && node.session === null && this.nodes.get(this.id(node.bucket, node.key)) === node) {
      this.nodes.delete(this.id(node.bucket, node.key))
    }
  }

  /** Open write sessions whose key is under prefix (so new files show before they complete). */
  /**
   * The names right in directory `prefix` that a lookup answers from an open file, not
   * the store: files being written, or hidden by libfuse, there or under them.
   */
  private openNamesUnder (bucket: string, prefix: string): Set<string> {
    const out = new Set<string>()
    const under = this.id(bucket, prefix)
    const add = (id: string): void => { if (id.startsWith(under)) out.add(id.slice(under.length).split('/')[0]) }
    for (const [id, n] of this.nodes) if (n.session !== null) add(id)
    for (const id of this.hidden.keys()) add(id)
    return out
  }

  private sessionsUnder (bucket: string, prefix: string): FileNode[] {
    const out: FileNode[] = []
    for (const n of this.nodes.values()) if (n.session !== null && n.bucket === bucket && n.key.startsWith(prefix)) out.push(n)
    return out
  }

  private bucketDirAttr (bucket: string): Attr {
    return bucketAttr(this.store.headBucket(bucket))
  }

  /**
   * What a key path is, without throwing: an open or stored file (or symlink), a
   * directory (its marker, or implied by keys under it), or undefined. A file hides
   * a directory of the same name (only the CLI can make both).
   */
  private lookupAttr (bucket: string, key: string): Attr | undefined {
    const id = this.id(bucket, key)
    const gone = this.hidden.get(id)
    if (gone !== undefined) {
      if (gone.session !== null) return fileAttr(gone.session.size, gone.session.fields.posix, gone.session.storedBytes)
      return gone.version === null ? undefined : versionAttr(gone.version)
    }
    const node = this.nodes.get(id)
    if (node?.session != null) return fileAttr(node.session.size, node.session.fields.posix, node.session.storedBytes)
    const v = this.store.liveStat(bucket, key)
    if (v !== undefined) return fileAttr(v.size, v.posix, v.storedBytes)
    return this.dirAttrOf(bucket, key)
  }

  private keyAttr (bucket: string, key: string): Attr {
    const a = this.lookupAttr(bucket, key)
    if (a !== undefined) return a
    this.store.headBucket(bucket) // NoSuchBucket when the bucket is gone
    throw NOT_FOUND(`no such file or directory: ${bucket}/${key}`)
  }

  private nodeVersion (node: FileNode): ObjectVersion {
    if (node.version === null) throw NOT_FOUND(`no such file: ${node.bucket}/${node.key}`)
    return node.version
  }

  private dirAttrOf (bucket: string, key: string): Attr | undefined {
    const d = this.store.dirStat(bucket, key)
    if (d !== undefined && d !== 'implied') return dirAttr(d.marker)
    if (d === 'implied' || this.sessionsUnder(bucket, key + '/').length > 0) {
      const b = this.store.headBucket(bucket)
      return dirAttr({ mode: 0o755, uid: b.uid, gid: b.gid, mtimeMs: b.mtimeMs })
    }
    return undefined
  }

  /** Answers at once (a lookup has nothing to wait for): the adapter answers without a promise round. */
  getattr (path: string): Attr {
    const loc = parsePath(path)
    switch (loc.kind) {
      case 'root': return dirAttr({ mode: 0o755, uid: this.uid, gid: this.gid, mtimeMs: this.started })
      case 'bucket': return this.bucketDirAttr(loc.bucket)
      case 'versions': return this.versions.getattr(loc.bucket, loc.rest)
      case 'key': return this.keyAttr(loc.bucket, loc.key)
    }
  }

  /**
   * Whether a lookup of path that found nothing may be answered so again until an op
   * of the mount makes something there: for a key path, yes (only the mount's own ops and
   * other processes make keys); under .versions, no (each save adds a version there).
   * The same rule says whose attributes a close or release may leave to the mount's
   * cache (src/mount/adapter.ts).
   */
  missCacheable (path: string): boolean {
    try {
      return parsePath(path).kind === 'key'
    } catch {
      return false
    }
  }

  /**
   * For a key directory (whose names only the mount's own ops and other processes make,
   * as missCacheable says): the longest name (UTF-8 bytes) in it whose lookup finding
   * nothing may be answered so until an op of the mount makes it; undefined for any other
   * path. Longer names are refused (ENAMETOOLONG), which only the vfs answers.
   */
  keyNameRoom (path: string): number | undefined {
    try {
      const loc = parsePath(path)
      if (loc.kind !== 'key') return undefined
      const room = MAX_KEY_BYTES - Buffer.byteLength(loc.key + '/', 'utf8')
      return room > 0 ? Math.min(MAX_NAME_BYTES, room) : undefined
    } catch {
      return undefined
    }
  }

  /**
   * Every name a lookup finds in key directory `path`, when there are at most `limit`:
   * its stored keys and directories, the files being written in it, and those libfuse
   * hid there (names too long to show included); undefined for a larger directory, a
   * missing one, or any other path.
   */
  dirNames (path: string, limit: number): string[] | undefined {
    try {
      const loc = parsePath(path)
      if (loc.kind !== 'key' || !isDirMode(this.keyAttr(loc.bucket, loc.key).mode)) return undefined
      const prefix = loc.key + '/'
      if (this.store.holdsMore(loc.bucket, prefix, limit + 1)) return undefined // (+1: its own marker) not read
      const listing = this.store.listDirectory(loc.bucket, prefix)
      const names = this.openNamesUnder(loc.bucket, prefix)
      for (const name of listing.dirs) names.add(name)
      for (const name of listing.files.names) if (name !== '') names.add(name)
      return names.size > limit ? undefined : [...names]
    } catch {
      return undefined
    }
  }

  /**
   * readdir of key directory `path` where it holds at most `limit` keys and directories
   * (counted up to limit + 1, not read); undefined for a larger one or any other path.
   */
  readdirOfKeyDir (path: string, limit: number): Listing | undefined {
    const loc = parsePath(path)
    if (loc.kind !== 'key') return undefined
    if (this.store.holdsMore(loc.bucket, loc.key + '/', limit + 1)) return undefined // (+1: its own marker)
    return this.readdir(path)
  }

  async fgetattr (path: string, fh: number): Promise<Attr> {
    const h = this.handles.get(fh)
    if (h?.kind === 'file') {
      const n = h.node
      if (n.session !== null) return fileAttr(n.session.size, n.session.fields.posix, n.session.storedBytes)
      if (n.unlinked && n.version !== null) return versionAttr(n.version)
    }
    return this.getattr(path)
  }

  access (path: string, _mode: number): void { this.getattr(path) }

  /** The parent of a key must be a directory. */
  private requireParentDir (bucket: string, key: string): void {
    const parent = parentKey(key)
    if (parent === '') { this.store.headBucket(bucket); return }
    const a = this.keyAttr(bucket, parent)
    if (!isDirMode(a.mode)) throw NOT_DIRECTORY(`${bucket}/${parent} is not a directory`)
  }

  private tryAttr (bucket: string, key: string): Attr | undefined {
    const a = this.lookupAttr(bucket, key)
    if (a === undefined) this.store.headBucket(bucket)
    return a
  }

  // ------------------------------------------------------------ directories

  readdir (path: string): Listing {
    const loc = parsePath(path)
    if (loc.kind === 'root') {
      const buckets = this.store.listBuckets()
      return { names: buckets.map(b => b.name), attrs: buckets.map(bucketAttr) }
    }
    if (loc.kind === 'versions') return this.versions.readdir(loc.bucket, loc.rest)
    const bucket = loc.bucket
    let prefix = ''
    if (loc.kind === 'key') {
      const a = this.keyAttr(bucket, loc.key)
      if (!isDirMode(a.mode)) throw NOT_DIRECTORY(`${path} is not a directory`)
      prefix = loc.key + '/'
    } else {
      this.store.headBucket(bucket)
    }
    const names: string[] = []
    const attrs: Attr[] = []
    const exact: number[] = []
    const b = this.store.headBucket(bucket)
    const implied = dirAttr({ mode: 0o755, uid: b.uid, gid: b.gid, mtimeMs: b.mtimeMs })
    const listing = this.store.listDirectory(bucket, prefix)
    // Whether what is listed for a name is what lookupAttr answers: not when a session or a
    // hidden node answers first, nor for the bucket's .versions (which a key of that name
    // cannot show). The open nodes under the directory are gathered once, not looked up per name.
    const unsettled = this.openNamesUnder(bucket, prefix)
    if (prefix === '') unsettled.add(VERSIONS_DIR)
    // Each stored name is listed once (live's key is the directory and the name); a file
    // hides a directory of its name, as lookupAttr does.
    const dirs = new Map<string, number>()
    for (const [i, name] of listing.dirs.entries()) {
      if (!showableName(name) || dirs.has(name)) continue
      dirs.set(name, names.length)
      // What dirAttrOf answers for it: its marker's, or the implied ones (a stored file of
      // its name replaces them below, with the same exactness).
      const marker = listing.dirMarkers[i]
      if (!unsettled.has(name)) exact.push(names.length)
      names.push(name)
      attrs.push(marker === null ? implied : dirAttr({ mode: marker[0], uid: marker[1], gid: marker[2], mtimeMs: marker[3], ctimeMs: marker[4] }))
    }
    // (An indexed loop: this one runs for every entry of a large directory, at first in
    // V8's interpreter, where an iterator and destructuring cost several times more.)
    const f = listing.files
    for (let i = 0; i < f.names.length; i++) {
      const name = f.names[i]
      if (name === '' || !showableName(name)) continue // '': the directory's own marker
      const size = f.sizes[i]
      const attr = listedFileAttr(size, f.modes[i], f.uids[i], f.gids[i], f.mtimes[i], f.ctimes[i], f.stored[i] ?? size)
      const d = dirs.get(name)
      if (d !== undefined) {
        attrs[d] = attr // (put as exact above when settled)
        continue
      }
      if (!unsettled.has(name)) exact.push(names.length)
      names.push(name)
      attrs.push(attr)
    }
    // The files being written that are not stored yet (few): only now a set of every name.
    const sessions = this.sessionsUnder(bucket, prefix)
    const seen = new Set<string>(sessions.length > 0 ? names : [])
    for (const n of sessions) {
      const rest = n.key.slice(prefix.length)
      const name = rest.split('/')[0]
      if (!showableName(name) || seen.has(name)) continue
      seen.add(name)
      names.push(name)
      attrs.push(rest.includes('/') || n.session === null ? implied : fileAttr(n.session.size, n.session.fields.posix, n.session.storedBytes))
    }
    if (loc.kind === 'bucket' && this.opts.showVersions === true && !names.includes(VERSIONS_DIR)) {
      names.push(VERSIONS_DIR)
      attrs.push(this.versions.getattr(bucket, ''))
    }
    return { names, attrs, exact }
  }

  opendir (path: string): number {
    const a = this.getattr(path)
    if (!isDirMode(a.mode)) throw NOT_DIRECTORY(`${path} is not a directory`)
    return 0
  }

  releasedir (_path: string, _fh: number): void {}

  async mkdir (path: string, mode: number, caller?: Caller): Promise<void> {
    const loc = parsePath(path)
    if (loc.kind === 'root') throw EXISTS('/ exists')
    if (loc.kind === 'versions') throw READ_ONLY('.versions is read-only')
    if (loc.kind === 'bucket') {
      if (loc.bucket === VERSIONS_DIR) throw INVALID_ARGUMENT('.versions is not a bucket name')
      const b = this.store.createBucket(loc.bucket)
      this.store.setBucketAttrs(b.name, { mode: S_IFDIR | (mode & 0o7777), ...this.owner(caller), mtimeMs: Date.now() })
      return
    }
    const { bucket, key } = loc
    if (Buffer.byteLength(key + '/') > MAX_KEY_BYTES) throw KEY_TOO_LONG(`the directory's key would be over ${MAX_KEY_BYTES} bytes`)
    this.requireParentDir(bucket, key)
    if (this.tryAttr(bucket, key) !== undefined) throw EXISTS(`${path} exists`)
    await this.store.putObject(bucket, key + '/', Buffer.alloc(0), {
      contentType: 'application/x-directory',
      posix: { mode: S_IFDIR | (mode & 0o7777), ...this.owner(caller) }
    })
  }

  rmdir (path: string): void {
    const loc = parsePath(path)
    if (loc.kind === 'root') throw NOT_PERMITTED('cannot remove /')
    if (loc.kind === 'versions') throw READ_ONLY('.versions is read-only')
    if (loc.kind === 'bucket') {
      try { this.store.deleteBucket(loc.bucket) } catch (err) {
        if (isBucketfsError(err, 'BucketNotEmpty')) throw DIRECTORY_NOT_EMPTY(err.message)
        throw err
      }
      return
    }
    const { bucket, key } = loc
    const a = this.keyAttr(bucket, key)
    if (!isDirMode(a.mode)) throw NOT_DIRECTORY(`${path} is not a directory`)
    const prefix = key + '/'
    if (this.store.holdsKeys(bucket, prefix) || this.sessionsUnder(bucket, prefix).length > 0) throw DIRECTORY_NOT_EMPTY(`${path} is not empty`)
    this.store.deleteObject(bucket, prefix)
  }

  // ------------------------------------------------------------ files

  /**
   * open(O_CREAT) of a name the kernel's lookup found missing: a new, empty file. If the
   * name is there after all (another process made it after that lookup, or within the
   * second a miss is kept: missCacheable), Stale: the kernel (ESTALE) looks the name up
   * again and opens what is there as open(2) says, with its own permission checks
   * (O_EXCL, O_TRUNC, a symlink followed), where a create here would have emptied it.
   */
  async create (path: string, mode: number, _flags = 0, caller?: Caller): Promise<number> {
    const { bucket, key } = keyLocation(path)
    this.notClosing()
    this.markers.delete(this.id(bucket, key))
    this.requireParentDir(bucket, key)
    if (this.tryAttr(bucket, key) !== undefined) throw STALE(`${path} exists: look it up again`)
    // Nothing is there (tryAttr asked the store a moment ago): no live version to read.
    const node = this.nodeFor(bucket, key, null)
    if (node.session === null) {
      const fields = this.store.fieldsFor(key, { posix: { mode: S_IFREG | (mode & 0o7777), ...this.owner(caller) } })
      node.session = new WriteSession(this.store, this.budget, bucket, key, node.version, fields, true)
      node.session.changed = true
    } else {
      await node.session.truncate(0)
    }
    return this.openHandle(node, 0o2, caller?.pid) // read-write
  }

  async mknod (path: string, mode: number, _dev: number, caller?: Caller): Promise<void> {
    const { bucket, key } = keyLocation(path) // EROFS under .versions, EPERM at the root, before the type is looked at
    if ((mode & S_IFMT) !== S_IFREG && (mode & S_IFMT) !== 0) throw NOT_PERMITTED('device nodes, FIFOs and sockets cannot be stored')
    if (this.tryAttr(bucket, key) !== undefined) throw EXISTS(`${path} exists`)
    const fh = await this.create(path, mode, 0, caller)
    await this.release(path, fh)
  }

  /**
   * A handle number below HANDLE_LIMIT that no open handle has. Numbers go up and wrap
   * around, so one is given again only after HANDLE_LIMIT - 1 opens or more (a released
   * handle's windows and staged writes on the FUSE thread are long gone by then), and
   * a mount open for months never runs out of them.
   */
  private newHandle (): number {
    if (this.handles.size >= HANDLE_LIMIT - 1) throw TOO_MANY_FILES(`${this.handles.size} files are open`)
    for (;;) {
      const fh = this.nextFh
      this.nextFh = fh + 1 >= HANDLE_LIMIT ? 1 : fh + 1
      if (!this.handles.has(fh)) return fh
    }
  }

  private openHandle (node: FileNode, flags: number, opener?: number): number {
    const fh = this.newHandle()
    node.opens++
    this.handles.set(fh, { kind: 'file', node, flags, wrote: false, opener })
    return fh
  }

  private writable (flags: number): boolean { return (flags & O_ACCMODE) !== O_RDONLY }
  /** Opened to read only: no write access and no O_TRUNC (which empties the file). */
  private readsOnly (flags: number): boolean { return !this.writable(flags) && (flags & O_TRUNC) === 0 }

  async open (path: string, flags: number, caller?: Caller): Promise<number> {
    const loc = parsePath(path)
    if (loc.kind === 'versions') {
      if (this.writable(flags) || (flags & O_TRUNC) !== 0) throw READ_ONLY('.versions is read-only')
      const v = this.versions.versionAt(loc.bucket, loc.rest)
      if (v === undefined) {
        this.versions.getattr(loc.bucket, loc.rest)
        throw IS_DIRECTORY(`${path} is a directory`)
      }
      const fh = this.newHandle()
      this.handles.set(fh, { kind: 'version', version: v })
      return fh
    }
    if (loc.kind !== 'key') {
      if (this.writable(flags)) throw IS_DIRECTORY(`${path} is a directory`)
      return 0
    }
    const id = this.id(loc.bucket, loc.key)
    const hiddenNode = this.hidden.get(id)
    // A stored file no handle holds (the usual open): one query for its node and its pages.
    const live = hiddenNode === undefined && !this.nodes.has(id) ? this.store.liveVersion(loc.bucket, loc.key) : undefined
    if (isDirMode(live !== undefined ? live.posix.mode : this.keyAttr(loc.bucket, loc.key).mode)) {
      if (this.writable(flags)) throw IS_DIRECTORY(`${path} is a directory`)
      return 0
    }
    const node = hiddenNode ?? this.nodeFor(loc.bucket, loc.key, live)
    const keepCache = hiddenNode !== undefined || this.keepsPages(node, live?.seq)
    // The extents are taken now, so the handle keeps reading these bytes if the key is
    // then deleted or replaced (POSIX: an open file outlives its name).
    if (node.session === null && node.version !== null) node.extents ??= this.store.extentsOf(node.version.seq)
    const trunc = (flags & O_TRUNC) !== 0
    if (!this.readsOnly(flags)) {
      this.notClosing()
      if (node.session === null) {
        node.version = this.store.liveVersion(loc.bucket, loc.key) ?? node.version
        this.sessionOf(node, trunc)
      } else if (trunc) {
        await node.session.truncate(0)
      }
    }
    const fh = this.openHandle(node, flags, caller?.pid)
    ;(this.handles.get(fh) as FileHandle).keepCache = keepCache
    return fh
  }

  /**
   * Whether the kernel may keep the pages it cached for the file (else an open drops
   * them): only while nothing but this mount's completed saves changed the file since
   * they were cached. A save that failed, or a change by the CLI (a new version), drops them.
   */
  private keepsPages (node: FileNode, liveSeq?: number): boolean {
    const id = this.pagesKey(node.bucket, node.key)
    const cached = this.cachedSeq.get(id)
    if (node.session !== null) return cached !== undefined && cached !== PAGES_UNKNOWN
    const seq = liveSeq ?? this.store.liveVersion(node.bucket, node.key)?.seq ?? 0
    this.cachedSeq.set(id, seq)
    return cached === seq
  }

  /**
   * What the kernel holds of the key is not known: its next open drops its pages. (Noted
   * rather than deleted: lru-cache clears all its slots when its last entry is deleted,
   * which cost 235 µs per rename in `rsync`.)
   */
  private forgetPages (bucket: string, key: string): void {
    const id = this.pagesKey(bucket, key)
    if (this.cachedSeq.has(id)) this.cachedSeq.set(id, PAGES_UNKNOWN)
  }

  /** Whether an open handle may use the kernel's cached pages of its file (see keepsPages). */
  keepsCache (fh: number): boolean {
    const h = this.handles.get(fh)
    return h === undefined || h.kind !== 'file' || h.keepCache !== false
  }

  /** Whether the FUSE thread may answer the handle's writes and leave them to writeBehind: a file open for writing, without O_APPEND. */
  stagesWrites (fh: number): boolean {
    const h = this.handles.get(fh)
    return h !== undefined && h.kind === 'file' && this.writable(h.flags) && (h.flags & O_APPEND) === 0
  }

  /**
   * A write the kernel was already told was done (staged on the FUSE thread), applied in
   * its turn. Never throws: a failure is the handle's, reported at its next fsync or close.
   */
  writeBehind (fh: number, data: Buffer, offset: number): Promise<void> | undefined {
    /** `taken`: the session has the write's bytes (a store behind them failed). */
    const fail = (err: unknown, taken: boolean): void => {
      const h = this.handles.get(fh)
      log('a staged write to handle %d at %d failed: %s', fh, offset, messageOf(err))
      if (h?.kind !== 'file') return
      h.lost ??= err
      // Its bytes are missing from the session: saved, the file would have a gap.
      const s = h.node.session
      if (!taken && s !== null && !this.gaps.has(s)) this.gaps.set(s, err)
    }
    try {
      const later = this.write(fh, data, data.length, offset, true)
      return typeof later === 'number' ? undefined : later.then(() => undefined, err => { fail(err, writeTookBytes(err)) })
    } catch (err) {
      fail(err, false)
      return undefined
    }
  }

  private fileHandle (fh: number): FileHandle {
    const h = this.handles.get(fh)
    if (h === undefined || h.kind !== 'file') throw BAD_HANDLE(`bad file handle ${fh}`)
    return h
  }

  /** Answers at once, without a promise, when the bytes are in verified chunks in memory. */
  read (fh: number, buf: Buffer, len: number, offset: number): Promise<number> | number {
    const h = this.handles.get(fh)
    if (h === undefined) throw BAD_HANDLE(`bad file handle ${fh}`)
    if (h.kind === 'file' && h.node.session === null && h.node.version !== null) {
      // Straight into libfuse's buffer; a reader going forward gets the next chunks loaded ahead.
      const v = h.node.version
      h.node.extents ??= this.store.extentsOf(v.seq)
      // Near where the last read here ended, or inside what was put for it (those reads
      // never came here).
      const sequential = h.nextRead !== undefined && offset >= h.nextRead - READ_AHEAD &&
        offset <= Math.max(h.nextRead, h.fedUntil ?? 0) + READ_AHEAD
      // A read inside what was put reached us: those windows are gone (dropped by a change).
      if (h.fedUntil !== undefined && offset < h.fedUntil) { h.fedUntil = offset; h.fedResets = (h.fedResets ?? 0) + 1 }
      h.nextRead = offset + len
      const out = buf.subarray(0, len)
      if (sequential) this.feed(fh, h, offset + len)
      // A feed under way loads what is ahead itself.
      const ahead = sequential && h.feeding !== true ? READ_AHEAD : 0
      return this.store.content.readIntoCached(h.node.extents, v.size, offset, out, ahead) ??
        this.store.content.readInto(h.node.extents, v.size, offset, out, ahead)
    }
    return this.readSlow(h, buf, len, offset)
  }

  /** The mount says a reader nears the end of what was put for its handle. */
  feedReads (fh: number, from: number): void {
    const h = this.handles.get(fh)
    if (h?.kind === 'file') this.feed(fh, h, from)
  }

  /**
   * Puts the verified bytes of the next FEED_AHEAD past `from` of a handle's file into
   * the mount's read windows, a window at a time, while nothing changes: the handle
   * stays open on the same version with no write session, and no op changed anything
   * (the sink's epoch).
   */
  private feed (fh: number, h: FileHandle, from: number): void {
    const sink = this.opts.readWindows
    const v = h.node.version
    if (sink === undefined || v === null || h.node.session !== null) return
    const until = Math.min(v.size, from + FEED_AHEAD)
    // A running feed goes on to the new end (a reader nearing the end of what it put asks).
    if (h.feeding === true) { h.feedTo = Math.max(h.feedTo ?? 0, until); return }
    let off = Math.max(from, h.fedUntil ?? 0)
    off -= off % WINDOW
    if (off >= until) return
    h.feeding = true
    h.feedTo = until
    const epoch = sink.epoch()
    const path = `/${h.node.bucket}/${h.node.key}`
    const resets = h.fedResets ?? 0
    const still = (): boolean => this.handles.get(fh) === h && h.node.session === null && h.node.version === v
    const end = (): number => Math.min(v.size, h.feedTo ?? 0)
    // The chunks past a window put from here are loaded ahead only when the sink does not load windows itself.
    const load = sink.load
    const ahead = load === undefined ? READ_AHEAD : 0
    // Windows loading on the threadpool, in order; what is fed grows as each is put (unless
    // a read found windows gone meanwhile: then what is fed stays where that read put it).
    const loading: Array<{ end: number, put: Promise<boolean> }> = []
    const settle = async (): Promise<boolean> => {
      const next = loading.shift()
      if (next === undefined || !(await next.put) || !still()) return false
      if ((h.fedResets ?? 0) === resets) h.fedUntil = next.end
      return true
    }
    void (async () => {
      for (;;) {
        for (; off < end(); off += WINDOW) {
          const n = Math.min(WINDOW, v.size - off)
          const extents = h.node.extents ??= this.store.extentsOf(v.seq)
          const slice = load === undefined ? undefined : this.store.content.sliceAt(extents, off, n)
          if (slice !== undefined && load !== undefined) {
            h.node.windowed = true
            loading.push({ end: off + n, put: load(epoch, fh, path, off, n, off + n >= v.size, slice).then(r => r === 1, () => false) })
            if (loading.length >= LOADS_IN_FLIGHT && !(await settle())) return
            continue
          }
          while (loading.length > 0) if (!(await settle())) return
          // Straight from the verified chunk when one holds the whole window (the sink copies
          // it before anything else runs); else assembled in a buffer of our own.
          let own: Buffer | undefined
          try {
            let data = await this.store.content.viewAt(extents, off, n)
            if (data === undefined) {
              own = n === WINDOW ? pooledBuffer() : Buffer.allocUnsafeSlow(n)
              await this.store.content.readInto(extents, v.size, off, own, ahead)
              data = own
            } else if (ahead > 0) {
              this.store.content.prefetchFrom(extents, off + n, off + n + ahead)
            }
            if (!still() || !sink.put(epoch, fh, path, off, data, off + n >= v.size)) return
            h.node.windowed = true
          } finally {
            if (own !== undefined) recycle(own.buffer) // the sink copied it
          }
          if ((h.fedResets ?? 0) === resets) h.fedUntil = off + n
        }
        // One load settled at a time: a reader that asked for more meanwhile (feedTo
        // moved on) has its next loads started at once, not after all these finished.
        if (loading.length === 0) break
        if (!(await settle())) return
      }
    })().catch(() => {
      // A damaged chunk: the read that needs it reports it.
    }).finally(() => { h.feeding = false })
  }

  private async readSlow (h: Handle, buf: Buffer, len: number, offset: number): Promise<number> {
    let data: Buffer
    if (h.kind === 'version') {
      data = await this.store.readVersion(h.version.seq, h.version.size, offset, len)
    } else if (h.node.session !== null) {
      data = await h.node.session.read(offset, len)
    } else {
      return 0
    }
    data.copy(buf, 0, 0, Math.min(len, data.length))
    return Math.min(len, data.length)
  }

  /**
   * Answers without a promise when the session took the bytes in at once (WriteSession.write).
   * `given`: buf is the caller's to give away (nothing else holds or changes it).
   */
  write (fh: number, buf: Buffer, len: number, offset: number, given = false): number | Promise<number> {
    const h = this.fileHandle(fh)
    if (!this.writable(h.flags)) throw BAD_HANDLE('file not open for writing')
    this.notClosing()
    const s = this.sessionOf(h.node)
    h.wrote = true
    const later = s.write(buf.subarray(0, len), offset, (h.flags & O_APPEND) !== 0, given)
    return later === undefined ? len : later.then(() => len)
  }

  /** The node's write session, started from its current version when there is none. */
  private sessionOf (node: FileNode, truncate = false): WriteSession {
    if (node.session === null) {
      // Its readers' windows hold the bytes this session will change.
      if (node.windowed) { this.opts.readWindows?.dropAll(); node.windowed = false }
      const base = node.version
      const fields = base === null
        ? this.store.fieldsFor(node.key, { posix: { uid: this.uid, gid: this.gid } })
        : { contentType: base.contentType, headers: JSON.stringify(base.headers), userMeta: JSON.stringify(base.userMeta), posix: { ...base.posix } }
      node.session = new WriteSession(this.store, this.budget, node.bucket, node.key, base, fields, truncate, node.extents ?? undefined)
    }
    return node.session
  }

  async truncate (path: string, size: number): Promise<void> {
    const loc = parsePath(path)
    if (loc.kind === 'versions') throw READ_ONLY('.versions is read-only')
    if (loc.kind !== 'key') throw IS_DIRECTORY(`${path} is a directory`)
    const a = this.keyAttr(loc.bucket, loc.key)
    if (isDirMode(a.mode)) throw IS_DIRECTORY(`${path} is a directory`)
    this.notClosing()
    const node = this.nodeFor(loc.bucket, loc.key)
    node.version = node.session === null ? (this.store.liveVersion(loc.bucket, loc.key) ?? node.version) : node.version
    const s = this.sessionOf(node)
    await s.truncate(size)
    if (node.opens === 0) await this.finish(node)
  }

  async ftruncate (fh: number, size: number): Promise<void> {
    const h = this.fileHandle(fh)
    this.notClosing()
    h.wrote = true
    await this.sessionOf(h.node).truncate(size)
  }

  /** The node's other open handles, for deciding when a save is over. */
  private otherHandles (node: FileNode, fh: number): FileHandle[] {
    const out: FileHandle[] = []
    for (const [n, h] of this.handles) if (n !== fh && h.kind === 'file' && h.node === node) out.push(h)
    return out
  }

  /**
   * close(): a save is over when this handle changed the file and no other handle is
   * in the middle of changing it: the version is made before close returns. Otherwise
   * (a descriptor closed before any write, as a shell's open/dup2/close does, or other
   * writers still at work) what was written is uploaded and sealed, so a daemon killed
   * right after still has it (recovery completes sealed uploads), and the version is
   * made when the last writer closes.
   * A close by another process than the opener (`caller.pid`) is a child's copy of the
   * descriptor, which fork gave it and exec or exit closes: it neither ends the save
   * nor seals it, so a file half-written when its writer starts a program never
   * becomes a version; the opener's close does that, or else the last release.
   * Answers whether the file then holds nothing unsaved: its attributes stand until the
   * next change (the release after this close changes nothing).
   */
  async flush (fh: number, caller?: Caller): Promise<boolean> {
    const h = this.handles.get(fh)
    if (h === undefined || h.kind !== 'file') return false
    // Opened read-only: nothing of the file's is this handle's to save or report (the
    // mount answers its close on the FUSE thread, scripts/fuse-native/fast-path.c).
    if (this.readsOnly(h.flags)) return false
    if (caller?.pid !== undefined && h.opener !== undefined && caller.pid !== h.opener) return false
    this.throwLost(h)
    if (h.node.unlinked) return false
    if (h.node.session === null || !h.node.session.changed) return true
    const wrote = h.wrote
    h.wrote = false
    if (wrote && !this.otherHandles(h.node, fh).some(o => o.wrote)) await this.completeNode(h.node)
    else await h.node.session.flush(false, true)
    return h.node.session === null || !h.node.session.changed
  }

  /**
   * What the file holds, its attributes and every change before them, on the disk
   * (power-loss safe): its unsaved writes as upload parts, in a durable commit; or,
   * with nothing of its own to write, the commits before it synced.
   */
  async fsync (fh: number, _datasync: boolean): Promise<void> {
    const h = this.handles.get(fh)
    if (h?.kind === 'file') {
      this.throwLost(h)
      const s = h.node.session
      // (A close may have saved the file meanwhile: then only the sync is left.)
      if (s !== null && !h.node.unlinked && s.changed && await s.flush(true, true)) return
    }
    this.store.catalog.sync()
  }

  /** Every change so far committed and on the disk (fsync of a directory). */
  fsyncdir (): void { this.store.catalog.sync() }

  async release (_path: string, fh: number): Promise<void> {
    const h = this.handles.get(fh)
    if (h === undefined) return
    this.handles.delete(fh)
    if (h.kind !== 'file') return
    h.node.opens--
    if (h.node.opens === 0) await this.finish(h.node)
    else if (!this.otherHandles(h.node, fh).some(o => this.writable(o.flags)) && !h.node.unlinked) await this.completeNode(h.node)
  }

  private async completeNode (node: FileNode): Promise<void> {
    const s = node.session
    if (s === null) return
    if (this.gaps.has(s)) {
      const err = this.gaps.get(s)
      await this.dropFailedSave(node, s, err)
      throw err
    }
    let v: ObjectVersion | null
    try {
      v = await s.complete()
    } catch (err) {
      await this.dropFailedSave(node, s, err)
      throw err
    }
    if (v !== null) {
      node.version = v
      node.extents = null
      this.cachedSeq.set(this.pagesKey(node.bucket, node.key), v.seq)
    }
  }

  /**
   * A save could not be completed (the disk is full): like a failed save in an editor,
   * the file stays as it was. What was written is dropped, so it can neither hold memory
   * nor become the file later; other handles that wrote to it hear of it at their close.
   */
  private async dropFailedSave (node: FileNode, s: WriteSession, err: unknown): Promise<void> {
    log('save of %s/%s failed, dropping it: %s', node.bucket, node.key, (err as Error).message)
    if (node.session === s) node.session = null
    this.forgetPages(node.bucket, node.key) // its pages hold what was not saved
    for (const h of this.handles.values()) {
      if (h.kind === 'file' && h.node === node && h.wrote) { h.wrote = false; h.lost = err }
    }
    await this.abortSession(s)
  }

  private throwLost (h: FileHandle): void {
    const err = h.lost
    if (err === undefined) return
    h.lost = undefined
    throw err
  }

  private async abortSession (s: WriteSession): Promise<void> {
    const left = await s.abort()
    if (left !== null) this.leftovers.later(left)
  }

  /** The last handle is gone: complete (or drop, if unlinked) and forget the node. */
  private async finish (node: FileNode): Promise<void> {
    try {
      if (node.session !== null) {
        if (node.unlinked) await this.abortSession(node.session)
        else await this.completeNode(node)
      }
    } finally {
      // Opened again while completing: the (rebased) session stays for the new handles.
      if (node.opens === 0) {
        const s = node.session
        node.session = null
        if (s !== null) this.leftovers.tidy(() => { s.releasePins() })
        const pin = node.pin
        node.pin = null
        if (pin !== null) this.leftovers.tidy(() => { this.store.content.unpin(pin) })
      }
      this.dropIfIdle(node)
    }
  }

  unlink (path: string): void {
    const { bucket, key } = keyLocation(path)
    const gone = this.hidden.get(this.id(bucket, key))
    if (gone !== undefined) {
      this.hidden.delete(this.id(bucket, key))
      return
    }
    const node = this.nodes.get(this.id(bucket, key))
    // A stored file no handle has open (a lookup's first answer: a file hides a directory
    // of its name): deleted at once, with no lookup before.
    if (node === undefined && this.store.deleteLive(bucket, key)) return
    // Without a write session, the attributes below come from the key's live version.
    const writing = node?.session != null
    const a = this.keyAttr(bucket, key)
    if (isDirMode(a.mode)) throw IS_DIRECTORY(`${path} is a directory`)
    // The drop of the file's upload and the key's delete are one write: a group commit
    // never takes one without the other.
    this.store.catalog.write(() => {
      if (node !== undefined) this.detach(node)
      // (A key being written may have no live version yet: a versioned bucket gets no marker for it.)
      if (!writing || this.store.liveStat(bucket, key) !== undefined) this.store.deleteObject(bucket, key)
    })
  }

  /** The node's name is gone (unlink, or replaced by a rename): open handles keep their data. */
  private detach (node: FileNode): void {
    node.unlinked = true
    // Its version is about to be deleted: open readers keep its chunks from gc.
    if (node.opens > 0 && node.pin === null && node.version !== null) {
      node.extents ??= this.store.extentsOf(node.version.seq)
      node.pin = this.store.content.pinExtents(node.extents)
    }
    if (this.nodes.get(this.id(node.bucket, node.key)) === node) this.nodes.delete(this.id(node.bucket, node.key))
    // Its uploaded parts must not come back at the next mount: drop them now; the open
    // handles keep what they wrote in memory.
    node.session?.detach()
    if (node.opens === 0 && node.session !== null) void this.abortSession(node.session)
  }

  /**
   * Answers whether src is now a missing name that may be answered so (as missCacheable
   * allows): not after a rename onto itself, nor after libfuse hid an open file (that
   * name is libfuse's to unlink).
   */
  rename (src: string, dst: string): boolean {
    const s = keyLocation(src)
    const d = keyLocation(dst)
    if (s.bucket === d.bucket && s.key === d.key) return false
    if (isFuseHidden(d.key)) { this.hide(s.bucket, s.key, d.bucket, d.key); return false }
    const sa = this.keyAttr(s.bucket, s.key)
    // Within one directory (most renames: an editor's save, rsync's last step) the source
    // was just found in it, so it is a directory.
    if (s.bucket !== d.bucket || parentKey(s.key) !== parentKey(d.key)) this.requireParentDir(d.bucket, d.key)
    const da = this.tryAttr(d.bucket, d.key)
    if (isDirMode(sa.mode)) {
      if (s.bucket === d.bucket && (d.key + '/').startsWith(s.key + '/')) throw INVALID_ARGUMENT('cannot move a directory into itself')
      if (da !== undefined) {
        if (!isDirMode(da.mode)) throw NOT_DIRECTORY(`${dst} is not a directory`)
        this.requireEmptyDir(d.bucket, d.key)
      }
      renamePrefix(this.store, s.bucket, s.key + '/', d.bucket, d.key + '/')
      // A moved version keeps its seq: what was noted under either name no longer says
      // what the kernel holds (see keepsPages). Directory renames are rare: forget it all.
      this.pagesEpoch++
      for (const n of [...this.nodes.values()]) {
        if (n.bucket === s.bucket && n.key.startsWith(s.key + '/')) this.moveNode(n, d.bucket, d.key + n.key.slice(s.key.length))
      }
      // An open file libfuse hid in the directory moves with it: libfuse unlinks it at its
      // last close by its path under the new name.
      const from = this.id(s.bucket, s.key) + '/'
      for (const [id, hid] of [...this.hidden]) {
        if (!id.startsWith(from)) continue
        this.hidden.delete(id)
        this.hidden.set(this.id(d.bucket, d.key) + '/' + id.slice(from.length), hid)
      }
      return true
    }
    if (da !== undefined && isDirMode(da.mode)) throw IS_DIRECTORY(`${dst} is a directory`)
    const node = this.nodes.get(this.id(s.bucket, s.key))
    const replaced = this.nodes.get(this.id(d.bucket, d.key))
    renameObject(this.store, s.bucket, s.key, d.bucket, d.key, node?.session != null)
    this.forgetPages(s.bucket, s.key) // a moved version keeps its seq (see keepsPages)
    this.forgetPages(d.bucket, d.key)
    this.takeBackMarker(d.bucket, d.key)
    if (replaced !== undefined) this.detach(replaced)
    if (node !== undefined) this.moveNode(node, d.bucket, d.key)
    return true
  }

  /** libfuse hides an open file it unlinks or a rename replaces (see `hidden`). */
  private hide (bucket: string, key: string, hiddenBucket: string, hiddenKey: string): void {
    const a = this.keyAttr(bucket, key)
    if (isDirMode(a.mode)) throw IS_DIRECTORY(`${bucket}/${key} is a directory`)
    const id = this.id(bucket, key)
    const node = this.nodes.get(id) ?? new FileNode(bucket, key, this.store.liveVersion(bucket, key) ?? null)
    this.detach(node)
    this.hidden.set(this.id(hiddenBucket, hiddenKey), node)
    if (this.store.liveVersion(bucket, key) !== undefined) {
      const r = this.store.deleteObject(bucket, key)
      if (r.deleteMarker) this.markers.set(id, { versionId: r.versionId, atMs: Date.now() })
    }
  }

  /** A rename right after libfuse hid the file it replaces: drop the marker the hide made. */
  private takeBackMarker (bucket: string, key: string): void {
    const id = this.id(bucket, key)
    const m = this.markers.get(id)
    if (m === undefined) return
    this.markers.delete(id)
    if (Date.now() - m.atMs < MARKER_TAKEBACK_MS) this.store.deleteObject(bucket, key, { versionId: m.versionId })
  }

  private moveNode (node: FileNode, bucket: string, key: string): void {
    this.nodes.delete(this.id(node.bucket, node.key))
    node.bucket = bucket
    node.key = key
    if (node.session !== null) { node.session.bucket = bucket; node.session.key = key }
    node.version = this.store.liveVersion(bucket, key) ?? node.version
    this.nodes.set(this.id(bucket, key), node)
  }

  private requireEmptyDir (bucket: string, key: string): void {
    const prefix = key + '/'
    if (this.store.holdsKeys(bucket, prefix) || this.sessionsUnder(bucket, prefix).length > 0) {
      throw DIRECTORY_NOT_EMPTY(`${bucket}/${key} is not empty`)
    }
  }

  async link (_src: string, _dst: string): Promise<void> { throw NOT_PERMITTED('hard links are not supported: an object has one key') }

  async symlink (target: string, path: string, caller?: Caller): Promise<void> {
    const { bucket, key } = keyLocation(path)
    this.requireParentDir(bucket, key)
    if (this.tryAttr(bucket, key) !== undefined) throw EXISTS(`${path} exists`)
    await this.store.putObject(bucket, key, Buffer.from(target, 'utf8'), {
      contentType: 'application/x-symlink', posix: { mode: S_IFLNK | 0o777, ...this.owner(caller) }
    })
  }

  async readlink (path: string): Promise<string> {
    const loc = parsePath(path)
    if (loc.kind !== 'key' && loc.kind !== 'versions') throw INVALID_ARGUMENT(`${path} is not a symbolic link`)
    const v = loc.kind === 'key' ? this.store.liveVersion(loc.bucket, loc.key) : this.versions.versionAt(loc.bucket, loc.rest)
    if (v === undefined) throw NOT_FOUND(`no such file: ${path}`)
    if (!isLinkMode(v.posix.mode)) throw INVALID_ARGUMENT(`${path} is not a symbolic link`)
    return (await this.store.readVersion(v.seq, v.size, 0, v.size)).toString('utf8')
  }

  // ------------------------------------------------------------ attributes and xattrs (src/vfs/metadata.ts)

  // At once, unless a directory's marker object must be made first (then a promise).
  /** chmod, chown and utimens answer the attributes after the change when they know them (a stored file's). */
  chmod (path: string, mode: number): Attr | undefined | Promise<undefined> { return this.metadata.chmod(path, mode) }
  chown (path: string, uid: number, gid: number): Attr | undefined | Promise<undefined> { return this.metadata.chown(path, uid, gid) }
  utimens (path: string, atimeMs: number, mtimeMs: number): Attr | undefined | Promise<undefined> { return this.metadata.utimens(path, atimeMs, mtimeMs) }
  async getxattr (path: string, name: string): Promise<Buffer> { return await this.metadata.getxattr(path, name) }
  async listxattr (path: string): Promise<string[]> { return await this.metadata.listxattr(path) }
  async setxattr (path: string, name: string, value: Buffer, flags: number): Promise<void> { await this.metadata.setxattr(path, name, value, flags) }
  async removexattr (path: string, name: string): Promise<void> { await this.metadata.removexattr(path, name) }

  // ------------------------------------------------------------ statfs

  /** The store's disk, less the free-space reserve kept for metadata (src/blob/space.ts). */
  async statfs (_path: string): Promise<StatFs> {
    const s = await this.store.content.space.statfs()
    return {
      bsize: s.bsize, frsize: s.bsize, blocks: s.blocks, bfree: s.bfree, bavail: s.bavail,
      files: s.files, ffree: s.ffree, favail: s.ffree, namemax: 255
    }
  }
}

