// The one file that loads fuse-native (2.2.6, the high-level libfuse 2.9 API):
// its types as we use them, and the two corrections its JavaScript layer needs.
//
// How fuse-native calls us (read from its index.js and fuse-native.c):
// - ops run on libfuse's worker threads (fuse_loop_mt): many ops are in flight at once;
// - each op answers through a callback; `read`/`write` answer cb(bytes) or cb(-errno);
//   the others cb(0, value) or cb(-errno), with negative errnos;
// - the buffers of read, write and setxattr point into libfuse's request memory and are
//   only valid until we answer (they are detached then);
// - times are milliseconds; stat fields are 32-bit except size, blocks and times;
// - every op gets a timeout (15 s by default) after which fuse-native answers ETIMEDOUT
//   while our op keeps running;
// - the whole option string is copied into a 1024-byte buffer, silently cut beyond it;
// - `create` is not given the open flags; `opendir` gets the (still empty) fh as `flags`.
import os from 'node:os'
import path from 'node:path'
import { bucketfsMountedAt } from './mounts'
import { fuseAddon } from '../addon'
import type { ChunkSlice } from '../store/content'
import { markAligned } from '../blob/aligned'

export interface FuseStat {
  mode: number, uid: number, gid: number, size: number, nlink: number, ino: number
  blocks: number, blksize: number, dev?: number, rdev?: number
  atime: Date, mtime: Date, ctime: Date
}

export interface FuseStatfs {
  bsize: number, frsize: number, blocks: number, bfree: number, bavail: number
  files: number, ffree: number, favail: number, fsid?: number, flag?: number, namemax: number
}

/** Answer of an op: 0 or a negative errno first, then the op's value. */
type Cb<T = never> = [T] extends [never] ? (code: number) => void : (code: number, value?: T) => void
/** Answer of an op that changes a path: with the path's attributes after it, when known. */
export type Then = (code: number, attrs?: FuseStat) => void

export interface FuseOps {
  init?: (cb: Cb) => void
  access: (path: string, mode: number, cb: Cb) => void
  statfs: (path: string, cb: Cb<FuseStatfs>) => void
  getattr: (path: string, cb: Cb<FuseStat>) => void
  fgetattr: (path: string, fh: number, cb: Cb<FuseStat>) => void
  flush: (path: string, fh: number, cb: Then) => void
  fsync: (path: string, datasync: number, fh: number, cb: Cb) => void
  fsyncdir: (path: string, datasync: number, fh: number, cb: Cb) => void
  /** `stats`: one per name, as FuseStats or packed (STAT_INTS each: putStatFields). */
  readdir: (path: string, cb: (code: number, names?: string[], stats?: FuseStat[] | Uint32Array) => void) => void
  // Ops after which libfuse asks getattr of the path at once may answer its attributes too (see Then).
  truncate: (path: string, size: number, cb: Then) => void
  ftruncate: (path: string, fh: number, size: number, cb: Then) => void
  utimens: (path: string, atimeMs: number, mtimeMs: number, cb: Then) => void
  readlink: (path: string, cb: Cb<string>) => void
  chown: (path: string, uid: number, gid: number, cb: Then) => void
  chmod: (path: string, mode: number, cb: Then) => void
  mknod: (path: string, mode: number, dev: number, cb: Cb) => void
  setxattr: (path: string, name: string, value: Buffer, position: number, flags: number, cb: Cb) => void
  getxattr: (path: string, name: string, position: number, cb: Cb<Buffer>) => void
  listxattr: (path: string, cb: Cb<string[]>) => void
  removexattr: (path: string, name: string, cb: Cb) => void
  open: (path: string, flags: number, cb: Cb<number>) => void
  opendir: (path: string, flags: number, cb: Cb<number>) => void
  /** Answers cb(bytesRead) or cb(-errno). */
  read: (path: string, fh: number, buf: Buffer, len: number, offset: number, cb: (result: number) => void) => void
  /** Answers cb(bytesWritten) or cb(-errno); `buf` is only valid until then. */
  write: (path: string, fh: number, buf: Buffer, len: number, offset: number, cb: (result: number) => void) => void
  release: (path: string, fh: number, cb: Then) => void
  releasedir: (path: string, fh: number, cb: Cb) => void
  create: (path: string, mode: number, cb: (code: number, fh?: number, attrs?: FuseStat) => void) => void
  unlink: (path: string, cb: Cb) => void
  /** `srcGone`: src is known missing now, so the kernel's next lookup of it need not reach the vfs. */
  rename: (src: string, dest: string, cb: (code: number, srcGone?: boolean) => void) => void
  link: (src: string, dest: string, cb: Cb) => void
  symlink: (target: string, path: string, cb: Then) => void
  mkdir: (path: string, mode: number, cb: Then) => void
  rmdir: (path: string, cb: Cb) => void
}

export type OpName = Exclude<keyof FuseOps, 'init'>

/** fuse-native's constructor options that we use. */
export interface FuseOptions {
  /** ms per op, or per op name with `default`; false for none. */
  timeout?: number | false | Partial<Record<OpName | 'default', number | false>>
  fsname?: string
  subtype?: string
  attrTimeout?: number
  entryTimeout?: number
  maxRead?: number
  allowOther?: boolean
  defaultPermissions?: boolean
  debug?: boolean
}

export interface Fuse {
  readonly mnt: string
  mount: (cb: (err: Error | null) => void) => void
  unmount: (cb: (err: Error | null) => void) => void
  /** The `-o…` string libfuse will get. */
  _fuseOptions (): string
}

type Signal = (code: number, ...values: unknown[]) => void

const { EIO, ENODATA, ERANGE } = os.constants.errno

interface FuseInternals {
  ops: FuseOps
  opts: FuseOptions
}

interface FuseClass {
  new (mnt: string, ops: Partial<FuseOps>, opts: FuseOptions): Fuse
  unmount: (mnt: string, cb: (err: Error | null) => void) => void
  prototype: object
}

const NativeFuse = require('fuse-native') as FuseClass

/** The addon fuse-native loaded (node-gyp-build caches it); its patched `fuse_native_caller` (scripts/patch-fuse-native.js). */
const binding = fuseAddon()
const nativeCaller = binding.fuse_native_caller as (() => [number, number, number]) | undefined
const nativeToken = binding.bucketfs_op_token as (() => [Buffer, number, number] | undefined) | undefined
const nativeThen = binding.bucketfs_then_attrs as ((locals: Buffer, seq: number, epoch: number, path: string, ints: Uint32Array) => void) | undefined
let thenGiven = 0

/**
 * An op run after staged writes were applied (CorrectedFuse): who called it and its
 * token, as read when the op arrived (the addon knows them only then).
 */
let deferred: { caller: [number, number, number] | undefined, token: [Buffer, number, number] | undefined } | null = null

/**
 * libfuse asks getattr of a path right after creating or changing it, on the same
 * thread, to fill its reply. The answer to such an op can carry the attributes; the
 * addon answers that getattr from them (scripts/fuse-native/fast-path.c). Read the
 * token synchronously at the op's start; `then` is called before the op is answered.
 */
function opToken (): ((path: string, attrs: FuseStat | typeof GONE | undefined) => void) {
  const token = deferred !== null ? deferred.token : nativeToken?.()
  return (path, attrs) => {
    if (token === undefined || attrs === undefined || nativeThen === undefined) return
    try {
      nativeThen(token[0], token[1], token[2], path, attrs === GONE ? MISSING : statArray(attrs))
      thenGiven++
    } catch {
      // Not given: the getattr that follows goes to the vfs as any other.
    }
  }
}

/**
 * The patched addon's fast path for one mount (scripts/fuse-native/fast-path.c), which
 * answers on the FUSE thread:
 * - lookups of the names a readdir put the exact attributes of (putAttrs);
 * - reads inside the windows of verified bytes put ahead of a sequential reader (put).
 * - lookups of names missing from a directory the mount's mkdir just made (putFull);
 * - one readdir of a directory listed ahead (putListing).
 * Every op that may change something forgets its paths before it is answered; a put is
 * refused when a forget since `epoch()` was read touched what it puts, so read it
 * before computing what is put.
 */
export interface FastPath {
  epoch: () => number
  /** Puts dir/names[i] → stats[i] (or packed: putStatFields) for ttlMs; answers how many were put (0 when refused or not mounted). */
  putAttrs: (epoch: number, dir: string, names: string[], stats: FuseStat[] | Uint32Array, ttlMs: number) => number
  /** Puts "path is missing" for ttlMs (its lookups are answered ENOENT); false when refused or not mounted. */
  putMissing: (epoch: number, path: string, ttlMs: number) => boolean
  /**
   * Puts "directory dir holds these names and no other" for ttlMs: lookups of any other
   * name of up to maxName bytes in it are answered ENOENT, until an op names it (which
   * adds it); false when refused or not mounted.
   */
  putFull: (epoch: number, dir: string, names: string[], ttlMs: number, maxName: number) => boolean
  /**
   * Puts what the next readdir of dir answers (names, '.' and '..' first, and their stats
   * packed), for one readdir within ttlMs; false when refused or not mounted.
   */
  putListing: (epoch: number, dir: string, names: string[], stats: Uint32Array, ttlMs: number) => boolean
  /** Once mounted: fn(dir) when a readdir was answered from the listing put for dir. */
  lister: (fn: (dir: string) => void) => boolean
  /** Puts bytes [off, off+data.length) of `path` as read by handle fh (copied); false when refused. */
  put: (epoch: number, fh: number, path: string, off: number, data: Buffer, eof: boolean) => boolean
  /** Forgets every attribute and window (every mount's) and moves the epoch on. */
  dropAll: () => void
  /** put, with the bytes read from a chunk file and checked on the threadpool (ReadWindows.load). */
  load: (epoch: number, fh: number, path: string, off: number, len: number, eof: boolean, from: ChunkSlice) => Promise<number>
  /** Once mounted: fn(fh, from) when a reader nears the end of what was put for fh. */
  feeder: (fn: (fh: number, from: number) => void) => boolean
  /**
   * Once mounted: writes through handles whose open answered STAGE_WRITES are answered on
   * the FUSE thread and applied here later, in order, by apply (which never throws: a
   * failure is its handle's). Every op of the mount applies them first.
   */
  stageWrites: (apply: (fh: number, data: Buffer, offset: number, path: string) => Promise<void> | undefined, maxEnd: number) => boolean
  /** Applies what is staged: undefined when nothing is (or is still being applied). */
  drainStaged: () => Promise<void> | undefined
  /** At unmount, before the last drainStaged: writes are no longer staged (they reach the vfs). */
  stopStaging: () => void
  /** At unmount: the mount's windows, listings, feeder, lister and staging go. */
  end: () => void
}

interface NativeFastPath {
  bucketfs_attr_epoch: () => number
  bucketfs_attr_put: (thread: Buffer, epoch: number, dir: string, names: string[], ints: Uint32Array, ttlMs: number) => number
  bucketfs_attr_forget_all: () => void
  bucketfs_full_put: (thread: Buffer, epoch: number, dir: string, names: string[], ttlMs: number, maxName: number) => boolean
  bucketfs_read_feeder: (thread: Buffer, fn: (fh: number, from: number) => void) => boolean
  bucketfs_read_end: (thread: Buffer) => void
  bucketfs_read_put: (thread: Buffer, epoch: number, fh: number, path: string, off: number, data: Buffer, eof: boolean) => boolean
  bucketfs_read_load: (thread: Buffer, epoch: number, fh: number, path: string, off: number, len: number, eof: boolean, file: string, csize: number, coff: number, crc: number) => Promise<number>
  bucketfs_list_put: (thread: Buffer, epoch: number, dir: string, names: string[], ints: Uint32Array, ttlMs: number) => boolean
  bucketfs_list_reader: (thread: Buffer, fn: (dir: string) => void) => boolean
  bucketfs_list_end: (thread: Buffer) => void
  bucketfs_fast_stats: () => number[]
  bucketfs_stage_writes: (thread: Buffer, fn: () => void, maxEnd: number) => boolean
  bucketfs_staged_take: (thread: Buffer) => Array<number | Buffer | string | boolean> | null
  bucketfs_staged_done: (thread: Buffer, paths: string[], bytes: number) => void
  bucketfs_stage_stop: (thread: Buffer) => void
  bucketfs_stage_end: (thread: Buffer) => void
}

/**
 * The writes the FUSE thread staged for one mount (fast-path.c, "writes staged on the
 * FUSE thread"), applied in order: at once while apply answers at once, else one after
 * another (`chain`). The addon is told each is done only once applied.
 */
class StagedWrites {
  private chain: Promise<void> | null = null
  constructor (private readonly n: NativeFastPath, private readonly thread: () => Buffer | undefined,
    private readonly apply: (fh: number, data: Buffer, offset: number, path: string) => Promise<void> | undefined) {}

  drain (): Promise<void> | undefined {
    const thread = this.thread()
    const taken = thread === undefined ? null : this.n.bucketfs_staged_take(thread)
    if (thread === undefined || taken === null) return this.chain ?? undefined
    const run = (): Promise<void> | undefined => this.applyFrom(thread, taken, 0)
    const later = this.chain === null ? run() : this.chain.then(run, run)
    if (later === undefined) return undefined
    const p: Promise<void> = later.finally(() => { if (this.chain === p) this.chain = null })
    this.chain = p
    return p
  }

  /** taken: [fh, offset, data, path, aligned] per write. */
  private applyFrom (thread: Buffer, taken: Array<number | Buffer | string | boolean>, from: number): Promise<void> | undefined {
    const paths: string[] = []
    let bytes = 0
    for (let i = from; i < taken.length; i += 5) {
      const data = taken[i + 2] as Buffer
      const path = taken[i + 3] as string
      if (taken[i + 4] === true) markAligned(data.buffer)
      const applied = this.apply(taken[i] as number, data, taken[i + 1] as number, path)
      paths.push(path)
      bytes += data.length
      if (applied !== undefined) {
        // (apply does not fail; were it to, the write would still count as done, or
        // nothing would be put again in this process.)
        const next = (): Promise<void> | undefined => {
          this.n.bucketfs_staged_done(thread, paths, bytes)
          return this.applyFrom(thread, taken, i + 5)
        }
        return applied.then(next, next)
      }
    }
    this.n.bucketfs_staged_done(thread, paths, bytes)
    return undefined
  }
}
/** The staged writes of each mount (FastPath.stageWrites), which its ops apply first. */
const staging = new WeakMap<Fuse, StagedWrites>()
const nativeFast = typeof binding.bucketfs_fast_stats === 'function' ? binding as unknown as NativeFastPath : undefined

/** fuse-native's fuse_thread_t, allocated by mount(): what the FUSE thread knows its mount by. */
function threadOf (fuse: Fuse | undefined): Buffer | undefined {
  return (fuse as unknown as { _thread?: Buffer | null } | undefined)?._thread ?? undefined
}

/** The fast path of the mount `fuse()` (its entries and windows are its own), if the addon has one. */
export function fastPathOf (fuse: () => Fuse | undefined): FastPath | undefined {
  const n = nativeFast
  if (n === undefined) return undefined
  return {
    epoch: () => n.bucketfs_attr_epoch(),
    putAttrs: (epoch, dir, names, list, ttlMs) => {
      const thread = threadOf(fuse())
      if (thread === undefined || names.length === 0) return 0
      if (list instanceof Uint32Array) return n.bucketfs_attr_put(thread, epoch, dir, names, list, ttlMs)
      const ints = new Uint32Array(STAT_INTS * list.length)
      list.forEach((st, i) => { putStat(ints, i * STAT_INTS, st) })
      return n.bucketfs_attr_put(thread, epoch, dir, names, ints, ttlMs)
    },
    putMissing: (epoch, path, ttlMs) => {
      const thread = threadOf(fuse())
      const slash = path.lastIndexOf('/')
      if (thread === undefined || slash < 0 || slash === path.length - 1) return false
      // An entry of mode 0 is a missing name (fast-path.c).
      return n.bucketfs_attr_put(thread, epoch, path.slice(0, slash), [path.slice(slash + 1)], MISSING, ttlMs) === 1
    },
    putFull: (epoch, dir, names, ttlMs, maxName) => {
      const thread = threadOf(fuse())
      return thread !== undefined && n.bucketfs_full_put(thread, epoch, dir, names, ttlMs, maxName)
    },
    putListing: (epoch, dir, names, stats, ttlMs) => {
      const thread = threadOf(fuse())
      return thread !== undefined && n.bucketfs_list_put(thread, epoch, dir, names, stats, ttlMs)
    },
    lister: fn => {
      const thread = threadOf(fuse())
      return thread !== undefined && n.bucketfs_list_reader(thread, fn)
    },
    put: (epoch, fh, path, off, data, eof) => {
      const thread = threadOf(fuse())
      return thread !== undefined && n.bucketfs_read_put(thread, epoch, fh, path, off, data, eof)
    },
    dropAll: () => { n.bucketfs_attr_forget_all() },
    load: async (epoch, fh, path, off, len, eof, from) => {
      const thread = threadOf(fuse())
      if (thread === undefined) return 0
      return await n.bucketfs_read_load(thread, epoch, fh, path, off, len, eof, from.file, from.size, from.off, from.crc)
    },
    feeder: fn => {
      const thread = threadOf(fuse())
      return thread !== undefined && n.bucketfs_read_feeder(thread, fn)
    },
    stageWrites: (apply, maxEnd) => {
      const f = fuse()
      const thread = threadOf(f)
      if (f === undefined || thread === undefined) return false
      const stage = new StagedWrites(n, () => threadOf(fuse()), apply)
      staging.set(f, stage)
      if (n.bucketfs_stage_writes(thread, () => { stage.drain()?.catch(() => {}) }, maxEnd)) return true
      staging.delete(f)
      return false
    },
    drainStaged: () => {
      const f = fuse()
      return f === undefined ? undefined : staging.get(f)?.drain()
    },
    stopStaging: () => {
      const thread = threadOf(fuse())
      if (thread !== undefined) n.bucketfs_stage_stop(thread)
    },
    end: () => {
      const thread = threadOf(fuse())
      if (thread === undefined) return
      n.bucketfs_read_end(thread)
      n.bucketfs_list_end(thread)
      n.bucketfs_stage_end(thread)
    }
  }
}

/** What the addon's fast path holds and answered since it was loaded. */
export function fastPathStats (): { attrEntries: number, attrHits: number, windowBytes: number, windowHits: number, thenGiven: number, thenHits: number, fullDirs: number, fullHits: number, listings: number, listingHits: number, stagedWrites: number, stagedPending: number, stagedBytes: number, windowLoads: number, bigPages: number, bigOffered: number, initsAnswered: number, quietFlushes: number } | undefined {
  if (nativeFast === undefined) return undefined
  const [attrEntries, attrHits, windowBytes, windowHits, thenHits, fullDirs, fullHits, listings, listingHits, stagedWrites, stagedPending, stagedBytes, windowLoads, bigPages, bigOffered, initsAnswered, quietFlushes] = nativeFast.bucketfs_fast_stats()
  return { attrEntries, attrHits, windowBytes, windowHits, thenGiven, thenHits, fullDirs, fullHits, listings, listingHits, stagedWrites, stagedPending, stagedBytes, windowLoads, bigPages, bigOffered, initsAnswered, quietFlushes }
}

/** The thread id, uid and gid of the caller of the op being run; only valid synchronously inside an op. */
export interface Caller { tid: number, uid: number, gid: number }
export function fuseCaller (): Caller | undefined {
  const called = deferred !== null ? deferred.caller : nativeCaller?.()
  if (called === undefined) return undefined
  const [tid, uid, gid] = called
  return { tid, uid, gid }
}

/**
 * fuse-native with its JavaScript layer corrected where it loses information:
 * - fgetattr: it calls ops.getattr(path) and drops the file handle, so fstat of an
 *   open file (whose write session knows the size) or of an unlinked one goes by path;
 * - getxattr/listxattr: when the caller's buffer is too small it copies a truncated
 *   value and returns the full length, where POSIX wants ERANGE;
 * - `debug`: see _fuseOptions;
 * - readdir: a listing's stats may come packed in one array (patched C);
 * - ops after which libfuse asks getattr at once hand the attributes they answer with to the addon (opToken).
 * Signals are given exactly the arguments fuse-native's own handlers give.
 */
class CorrectedFuse extends (NativeFuse as unknown as new (mnt: string, ops: Partial<FuseOps>, opts: FuseOptions) => Fuse & FuseInternals) {
  /**
   * Every op first applies the writes staged on the FUSE thread (FastPath.stageWrites), so
   * it sees each write the kernel was told was done. When they must be waited for, the op
   * runs after them with its caller and token as read when it arrived.
   */
  _makeHandlerArray (): Array<((...args: unknown[]) => unknown) | undefined> {
    const handlers = (NativeFuse.prototype as unknown as { _makeHandlerArray: () => Array<((...args: unknown[]) => unknown) | undefined> })._makeHandlerArray.call(this)
    return handlers.map(handler => handler === undefined
      ? handler
      : (...args: unknown[]): unknown => {
          const applying = staging.get(this)?.drain()
          if (applying === undefined) return handler(...args)
          const at = { caller: nativeCaller?.(), token: nativeToken?.() }
          const run = (): void => {
            deferred = at
            try { handler(...args) } finally { deferred = null }
          }
          // (apply never fails: a staged write's failure is its handle's.)
          applying.then(run, run)
          return undefined
        })
  }

  /** fuse-native turns on libfuse's own debug output whenever $DEBUG holds a '*' (DEBUG=bucketfs:*): only when asked. */
  override _fuseOptions (): string {
    const options = super._fuseOptions()
    return this.opts.debug === true ? options : options.replace(/^-odebug(,|$)/, '-o')
  }

  _op_fgetattr (signal: Signal, path: string, fh: number): void {
    this.ops.fgetattr(path, fh, (code, stat) => {
      if (code !== 0 || stat === undefined) return signal(code !== 0 ? code : -EIO)
      return signal(0, statArray(stat))
    })
  }

  /** Packed stats go to the addon as they are (patched to take them): no Uint32Array per entry. */
  _op_readdir (signal: Signal, path: string): void {
    this.ops.readdir(path, (code, names, stats) => {
      if (code !== 0) return signal(code)
      return signal(0, names, stats instanceof Uint32Array ? stats : (stats ?? []).map(statArray))
    })
  }

  _op_chmod (signal: Signal, path: string, mode: number): void {
    const then = opToken()
    this.ops.chmod(path, mode, (code, attrs) => { if (code === 0) then(path, attrs); signal(code) })
  }

  _op_chown (signal: Signal, path: string, uid: number, gid: number): void {
    const then = opToken()
    this.ops.chown(path, uid, gid, (code, attrs) => { if (code === 0) then(path, attrs); signal(code) })
  }

  _op_utimens (signal: Signal, path: string, atimeLow: number, atimeHigh: number, mtimeLow: number, mtimeHigh: number): void {
    const then = opToken()
    this.ops.utimens(path, doubleArg(atimeLow, atimeHigh), doubleArg(mtimeLow, mtimeHigh), (code, attrs) => { if (code === 0) then(path, attrs); signal(code) })
  }

  _op_truncate (signal: Signal, path: string, sizeLow: number, sizeHigh: number): void {
    const then = opToken()
    this.ops.truncate(path, doubleArg(sizeLow, sizeHigh), (code, attrs) => { if (code === 0) then(path, attrs); signal(code) })
  }

  _op_ftruncate (signal: Signal, path: string, fh: number, sizeLow: number, sizeHigh: number): void {
    const then = opToken()
    this.ops.ftruncate(path, fh, doubleArg(sizeLow, sizeHigh), (code, attrs) => { if (code === 0) then(path, attrs); signal(code) })
  }

  _op_create (signal: Signal, path: string, mode: number): void {
    const then = opToken()
    this.ops.create(path, mode, (code, fh, attrs) => { if (code === 0) then(path, attrs); signal(code, fh) })
  }

  _op_flush (signal: Signal, path: string, fh: number): void {
    const then = opToken()
    this.ops.flush(path, fh, (code, attrs) => { if (code === 0) then(path, attrs); signal(code) })
  }

  _op_release (signal: Signal, path: string, fh: number): void {
    const then = opToken()
    this.ops.release(path, fh, (code, attrs) => { if (code === 0) then(path, attrs); signal(code) })
  }

  _op_mkdir (signal: Signal, path: string, mode: number): void {
    const then = opToken()
    this.ops.mkdir(path, mode, (code, attrs) => { if (code === 0) then(path, attrs); signal(code) })
  }

  /** A rename's source is missing after it: the addon answers the kernel's next lookup of it. */
  _op_rename (signal: Signal, src: string, dest: string): void {
    const then = opToken()
    this.ops.rename(src, dest, (code, srcGone) => { if (code === 0 && srcGone === true) then(src, GONE); signal(code) })
  }

  _op_symlink (signal: Signal, target: string, path: string): void {
    const then = opToken()
    this.ops.symlink(target, path, (code, attrs) => { if (code === 0) then(path, attrs); signal(code) })
  }

  _op_getxattr (signal: Signal, path: string, name: string, valueBuf: Buffer, position: number): void {
    this.ops.getxattr(path, name, position, (code, value) => {
      if (code !== 0) return signal(code, valueBuf.buffer)
      if (value === undefined) return signal(-ENODATA, valueBuf.buffer)
      if (valueBuf.length === 0) return signal(value.length, valueBuf.buffer) // a size query
      if (value.length > valueBuf.length) return signal(-ERANGE, valueBuf.buffer)
      value.copy(valueBuf)
      return signal(value.length, valueBuf.buffer)
    })
  }

  _op_listxattr (signal: Signal, path: string, listBuf: Buffer): void {
    this.ops.listxattr(path, (code, names) => {
      if (code !== 0 || names === undefined) return signal(code !== 0 ? code : -EIO, listBuf.buffer)
      const list = Buffer.concat(names.map(n => Buffer.from(n + '\0')))
      if (listBuf.length === 0) return signal(list.length, listBuf.buffer) // a size query
      if (list.length > listBuf.length) return signal(-ERANGE, listBuf.buffer)
      list.copy(listBuf)
      return signal(list.length, listBuf.buffer)
    })
  }
}

/** The stat wire format of fuse-native 2.2.6 (its private getStatArray): 18 uint32s. */
export const STAT_INTS = 18
/** The stat of a missing name in the fast path's entries: mode 0. */
const MISSING = new Uint32Array(STAT_INTS)
/** What opToken's `then` is given for a path an op removed. */
const GONE = 'gone'

function statArray (st: FuseStat): Uint32Array {
  const a = new Uint32Array(STAT_INTS)
  putStat(a, 0, st)
  return a
}

/** fuse-native's 64-bit arguments come as two uint32s (its getDoubleArg). */
function doubleArg (low: number, high: number): number {
  return high * 4294967296 + low
}

function putStat (a: Uint32Array, at: number, st: FuseStat): void {
  putStatFields(a, at, st.mode, st.uid, st.gid, st.size, st.nlink || 1, st.ino, st.blksize, st.blocks, st.atime.getTime(), st.mtime.getTime(), st.ctime.getTime())
  a[at + 5] = st.dev ?? 0
  a[at + 8] = st.rdev ?? 0
}

/**
 * Puts one stat at `at` of an array of stats as fuse-native's C reads them (STAT_INTS
 * uint32s each): a whole listing's in one array, with no FuseStat or Date per entry.
 */
export function putStatFields (a: Uint32Array, at: number, mode: number, uid: number, gid: number, size: number, nlink: number,
  ino: number, blksize: number, blocks: number, atimeMs: number, mtimeMs: number, ctimeMs: number): void {
  a[at] = mode
  a[at + 1] = uid
  a[at + 2] = gid
  a[at + 3] = size % 4294967296
  a[at + 4] = Math.floor(size / 4294967296)
  a[at + 6] = nlink
  a[at + 7] = ino
  a[at + 9] = blksize
  a[at + 10] = blocks % 4294967296
  a[at + 11] = Math.floor(blocks / 4294967296)
  a[at + 12] = atimeMs % 4294967296
  a[at + 13] = Math.floor(atimeMs / 4294967296)
  a[at + 14] = mtimeMs % 4294967296
  a[at + 15] = Math.floor(mtimeMs / 4294967296)
  a[at + 16] = ctimeMs % 4294967296
  a[at + 17] = Math.floor(ctimeMs / 4294967296)
}

// The corrections above replace private methods: fail loudly if fuse-native changes under them.
for (const m of ['_makeHandlerArray', '_op_fgetattr', '_op_readdir', '_op_getxattr', '_op_listxattr', '_op_chmod', '_op_chown', '_op_utimens', '_op_truncate',
  '_op_ftruncate', '_op_create', '_op_mkdir', '_op_symlink', '_op_rename', '_fuseOptions', '_close']) {
  if (typeof (NativeFuse.prototype as unknown as Record<string, unknown>)[m] !== 'function') {
    throw new Error(`fuse-native changed: ${m} is gone; review src/mount/fuse.ts`)
  }
}

// fuse.unmount() runs `fusermount -uz` and, only if that succeeds, releases the native
// handle that keeps Node's event loop alive. After an unmount from outside (`fusermount -u`,
// `umount`) fusermount fails, the handle would stay and the daemon would never exit:
// count "it is not mounted any more" as success.
const fusermount = NativeFuse.unmount
NativeFuse.unmount = (mnt, cb) => {
  fusermount(mnt, err => { cb(err !== null && bucketfsMountedAt(mnt) ? err : null) })
}

/**
 * What fuse-native's unmount does after fusermount succeeds (fuse_native_unmount: it
 * unrefs the handle that keeps the event loop alive), for when fusermount failed and the
 * mount was detached otherwise.
 */
export function releaseFuse (fuse: Fuse): void {
  const thread = threadOf(fuse)
  const unmount = binding.fuse_native_unmount as ((mnt: string, thread: Buffer) => void) | undefined
  if (thread !== undefined && unmount !== undefined) unmount(fuse.mnt, thread)
}

export function createFuse (mountpoint: string, ops: FuseOps, opts: FuseOptions): Fuse {
  return new CorrectedFuse(path.resolve(mountpoint), ops, opts)
}
