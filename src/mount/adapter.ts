// fuse-native ops over a Vfs: each op decodes its arguments, makes one vfs call and
// answers. No filesystem semantics live here (they are in src/vfs); this file only
// converts between fuse-native's shapes and the Vfs API, and errors to errnos.
import debug from 'debug'
import type { Vfs, Attr, StatFs, Caller as VfsCaller } from '../vfs'
import { errnoOf, isMissing } from './errno'
import type { FuseOps, FuseStat, FuseStatfs, Caller, Then } from './fuse'
import { answerOf, BLKSIZE, putExact, type ListedAttrs } from './listing'
import { processOf } from './caller'

/** Every op with its arguments, result and duration: DEBUG=bucketfs:fuse. */
const trace = debug('bucketfs:fuse')

const U32 = 0xffffffff

export function toStat (a: Attr): FuseStat {
  return {
    mode: a.mode,
    uid: a.uid,
    gid: a.gid,
    size: a.size,
    nlink: a.nlink,
    ino: a.ino,
    blocks: a.blocks,
    blksize: BLKSIZE,
    atime: new Date(a.atimeMs),
    mtime: new Date(a.mtimeMs),
    ctime: new Date(a.ctimeMs)
  }
}

/**
 * fuse-native carries statfs counts as 32-bit numbers: a disk with more blocks than
 * that is reported in larger fragments (f_frsize is the unit of the block counts).
 */
export function toStatfs (s: StatFs): FuseStatfs {
  let frsize = s.frsize > 0 ? s.frsize : s.bsize
  let { blocks, bfree, bavail } = s
  while (blocks > U32) {
    frsize *= 2
    blocks = Math.floor(blocks / 2)
    bfree = Math.floor(bfree / 2)
    bavail = Math.floor(bavail / 2)
  }
  const clamp = (n: number): number => Math.min(n, U32)
  return {
    bsize: s.bsize,
    frsize,
    blocks,
    bfree,
    bavail,
    files: clamp(s.files),
    ffree: clamp(s.ffree),
    favail: clamp(s.favail),
    namemax: s.namemax
  }
}

/** fuse-native hands file handles back and forth as int32 (0 = none); bit 30 is DROP_CACHE, bit 29 STAGE_WRITES. */
function checkHandle (fh: number): number {
  if (!Number.isInteger(fh) || fh < 0 || fh >= STAGE_WRITES) throw new RangeError(`file handle ${fh} does not fit fuse-native's int32 below bit 29`)
  return fh
}

/**
 * Set in the handle open answers: the kernel drops the pages it cached of the file
 * (patched fuse-native clears keep_cache for it and keeps the handle without the bit).
 */
const DROP_CACHE = 0x40000000

/**
 * Set in the handle open or create answers: the FUSE thread may answer its writes and
 * leave them to vfs.writeBehind (patched fuse-native keeps the handle without the bit;
 * FastPath.stageWrites).
 */
const STAGE_WRITES = 0x20000000

/**
 * What applies a write the FUSE thread staged and answered (FastPath.stageWrites), traced
 * as the write op is.
 */
export function stagedWriter (vfs: Vfs): (fh: number, data: Buffer, offset: number, path: string) => Promise<void> | undefined {
  return (fh, data, offset, path) => {
    if (!trace.enabled) return vfs.writeBehind(fh, data, offset)
    const started = process.hrtime.bigint()
    const done = (): void => { trace('staged write(%s, %d, %d, %d) → %d, %s ms', path, fh, data.length, offset, data.length, Number(process.hrtime.bigint() - started) / 1e6) }
    const later = vfs.writeBehind(fh, data, offset)
    if (later === undefined) done()
    return later?.then(done)
  }
}

/**
 * Runs one vfs call and answers: done(0, value) or done(-errno), at once when the call
 * answers or throws without a promise. A promised answer goes through .then(ok, fail),
 * so an answer that throws is never answered twice.
 */
function run<T> (op: string, args: () => string, call: () => Promise<T> | T, done: (code: number, value?: T) => void): void {
  const started = trace.enabled ? process.hrtime.bigint() : 0n
  const took = (): string => `${Number(process.hrtime.bigint() - started) / 1e6} ms`
  const failed = (err: unknown): void => {
    const code = errnoOf(err, op)
    if (trace.enabled) trace('%s(%s) → %d (%s), %s', op, args(), code, (err as { code?: string }).code ?? String(err), took())
    done(code)
  }
  let result: Promise<T> | T
  try {
    result = call()
  } catch (err) {
    // Refused at once (a lookup of a missing name): no promise round either.
    failed(err)
    return
  }
  if (!(result instanceof Promise)) {
    // Answered without waiting (a lookup, a read from verified chunks in memory): no promise round.
    if (trace.enabled) trace('%s(%s) → %s, %s', op, args(), show(result), took())
    done(0, result)
    return
  }
  result.then(value => {
    if (trace.enabled) trace('%s(%s) → %s, %s', op, args(), show(value), took())
    done(0, value)
  }, failed)
}

/** f of a value, now if it is there, else once it is (a vfs call may answer either way). */
function nowOrLater<T, U> (v: T | Promise<T>, f: (t: T) => U): U | Promise<U> {
  return v instanceof Promise ? v.then(f) : f(v)
}

function isAttr (v: unknown): v is Attr {
  return typeof v === 'object' && v !== null && typeof (v as Attr).mode === 'number' && typeof (v as Attr).mtimeMs === 'number'
}

function show (v: unknown): string {
  if (v === undefined) return 'ok'
  if (Buffer.isBuffer(v)) return `<${v.length} bytes>`
  if (Array.isArray(v)) return `[${v.length}]`
  if (typeof v === 'object' && v !== null) return 'attrs'
  return String(v)
}

/** The most names a directory's misses list it for (a larger one is not listed again for ttlMs). */
const FULL_NAMES = 256

/**
 * `caller`: who made the op being run (fuse-native's patched binding); read
 * synchronously at the op's start, before anything else runs.
 */
export function fuseOps (vfs: Vfs, caller: () => Caller | undefined = () => undefined, listed?: ListedAttrs): FuseOps {
  /** The op's caller as the vfs takes it; `withPid`: also its process (a /proc read on a cache miss). */
  const who = (withPid = false): VfsCaller | undefined => {
    const c = caller()
    if (c === undefined) return undefined
    return { pid: withPid && c.tid > 0 ? processOf(c.tid) : undefined, uid: c.uid, gid: c.gid }
  }

  /**
   * Whether what a close or release answers of path may be kept on the FUSE thread: a
   * key's path (the files under .versions change with every save and are never kept).
   */
  const cacheable = (path: string): boolean => path !== '' && vfs.missCacheable(path)

  /** For ops answering only a code. */
  const op = (name: string, args: () => string, call: () => Promise<unknown> | unknown, cb: (code: number) => void): void => {
    run(name, args, call, code => { cb(code) })
  }

  /**
   * For ops after which libfuse asks the path's attributes at once, and for a close or
   * release, after which programs often do: they are answered too (src/mount/fuse.ts
   * opToken), when the vfs can give them.
   */
  const change = (name: string, args: () => string, call: () => Promise<unknown> | unknown, attrs: (() => Attr | undefined | Promise<Attr>) | undefined, cb: Then): void => {
    // The attributes after the change: those the call answered, else attrs(), or none
    // when the vfs cannot give them (at once when it can). Failing to give them never
    // fails the change.
    const after = (answered: unknown): FuseStat | undefined | Promise<FuseStat | undefined> => {
      if (isAttr(answered)) return toStat(answered)
      if (attrs === undefined) return undefined
      try {
        const a = attrs()
        return a instanceof Promise ? a.then(toStat, () => undefined) : a === undefined ? undefined : toStat(a)
      } catch {
        return undefined
      }
    }
    run(name, args, () => {
      const done = call()
      return done instanceof Promise ? done.then(after) : after(done)
    }, (code, st) => { cb(code, st) })
  }

  /**
   * Puts key directory dir as holding names() and no other, for the FUSE thread to answer
   * misses there (putFull); false where dir is not a key directory or names() gives none.
   */
  const keepFull = (listed: ListedAttrs, epoch: number, dir: string, names: () => string[] | undefined): boolean => {
    try {
      const room = vfs.keyNameRoom(dir)
      const all = room === undefined ? undefined : names()
      if (room === undefined || all === undefined) return false
      listed.cache.putFull(epoch, dir, all, listed.ttlMs, room)
    } catch (err) {
      trace('keeping the names of %s failed: %s', dir, (err as Error).message) // the op is answered all the same
    }
    return true
  }
  /** Directories a miss was in that were not listed (too large, or not a key directory): dir → until when (ms) not to try again. */
  const unlisted = new Map<string, number>()
  /**
   * A lookup in dir found nothing: the names of a small one go to the FUSE thread, which
   * then answers the next misses there for ttlMs (rsync looks each file's name and its
   * temp name up before it makes them, long after it made the directory).
   */
  const knowAll = (listed: ListedAttrs, epoch: number, dir: string): void => {
    const now = Date.now()
    if ((unlisted.get(dir) ?? 0) > now) return
    if (keepFull(listed, epoch, dir, () => vfs.dirNames(dir, FULL_NAMES))) return
    if (unlisted.size >= 1024) unlisted.clear()
    unlisted.set(dir, now + listed.ttlMs)
  }

  return {
    getattr: (path, cb) => {
      // Read before the lookup is made: a change answered meanwhile makes the put a no-op.
      const epoch = listed?.cache.epoch()
      run('getattr', () => path, () => nowOrLater(vfs.getattr(path), toStat), (code, st) => {
        // The kernel keeps no missing names (negative_timeout would let a create skip
        // its lookup): the fast path answers the next lookups of this one instead.
        if (code === 0) return cb(0, st)
        if (isMissing(code) && listed !== undefined && epoch !== undefined && vfs.missCacheable(path)) {
          listed.cache.putMissing(epoch, path, listed.ttlMs)
          knowAll(listed, epoch, path.slice(0, path.lastIndexOf('/')))
        }
        cb(code)
      })
    },
    fgetattr: (path, fh, cb) => { run('fgetattr', () => `${path}, ${fh}`, async () => toStat(await vfs.fgetattr(path, fh)), cb) },
    access: (path, mode, cb) => { op('access', () => `${path}, ${mode}`, () => vfs.access(path, mode), cb) },
    statfs: (path, cb) => { run('statfs', () => path, async () => toStatfs(await vfs.statfs(path)), cb) },

    readdir: (path, cb) => {
      // Read before the listing is made: a change answered meanwhile makes the put a no-op.
      const epoch = listed?.cache.epoch()
      run('readdir', () => path, () => vfs.readdir(path), (code, listing) => {
        if (code !== 0 || listing === undefined) return cb(code)
        const answer = answerOf(listing)
        if (listed !== undefined && epoch !== undefined) putExact(listed, epoch, path, listing, answer)
        cb(0, answer.names, answer.stats)
        // The program may be walking the tree: the directories in this one are listed ahead.
        listed?.ahead?.answered(path, listing)
      })
    },
    opendir: (path, _fh, cb) => {
      run('opendir', () => path, () => checkHandle(vfs.opendir(path)), cb)
    },
    releasedir: (path, fh, cb) => { op('releasedir', () => `${path}, ${fh}`, () => vfs.releasedir(path, fh), cb) },
    // Namespace changes are committed in groups (Catalog.write): this commits the open
    // group and puts every commit on the disk.
    fsyncdir: (path, _datasync, _fh, cb) => { op('fsyncdir', () => path, () => { vfs.fsyncdir() }, cb) },

    open: (path, flags, cb) => {
      const by = who(true)
      run('open', () => `${path}, 0${flags.toString(8)}`, async () => {
        const fh = checkHandle(await vfs.open(path, flags, by))
        return (vfs.keepsCache(fh) ? fh : fh | DROP_CACHE) | (vfs.stagesWrites(fh) ? STAGE_WRITES : 0)
      }, cb)
    },
    // fuse-native does not pass create's open flags on: the kernel sends a create only
    // for a name its lookup found missing, and applies O_EXCL, O_TRUNC and O_APPEND
    // offsets itself (a name made meanwhile by another process: vfs.create).
    create: (path, mode, cb) => {
      const by = who(true)
      run('create', () => `${path}, 0${mode.toString(8)}`, async () => {
        const fh = checkHandle(await vfs.create(path, mode, 0, by))
        return { fh: vfs.stagesWrites(fh) ? fh | STAGE_WRITES : fh, attrs: await vfs.fgetattr(path, fh).then(toStat, () => undefined) }
      }, (code, made) => { cb(code, made?.fh, made?.attrs) })
    },
    read: (path, fh, buf, len, offset, cb) => {
      run('read', () => `${path}, ${fh}, ${len}, ${offset}`, () => vfs.read(fh, buf, len, offset),
        (code, n) => { cb(code !== 0 ? code : (n ?? 0)) })
    },
    // `buf` is libfuse's memory, valid until we answer: vfs.write copies it before returning.
    write: (path, fh, buf, len, offset, cb) => {
      run('write', () => `${path}, ${fh}, ${len}, ${offset}`, () => vfs.write(fh, buf, len, offset),
        (code, n) => { cb(code !== 0 ? code : (n ?? 0)) })
    },
    // Answered with the file's attributes once it holds nothing unsaved: a program that
    // closes a file it wrote often looks it up next (rsync, to set its times), which the
    // fast path then answers.
    flush: (path, fh, cb) => {
      const by = who(true)
      let settled = false
      change('flush', () => `${path}, ${fh}, pid ${by?.pid}`, async () => { settled = await vfs.flush(fh, by) }, () => settled && cacheable(path) ? vfs.getattr(path) : undefined, cb)
    },
    fsync: (path, datasync, fh, cb) => {
      op('fsync', () => `${path}, ${datasync}, ${fh}`, async () => await vfs.fsync(fh, datasync !== 0), cb)
    },
    // Answered with the file's attributes after it, as the close before it (the release
    // comes after the close has returned, and forgets what the fast path knew of the path).
    release: (path, fh, cb) => {
      change('release', () => `${path}, ${fh}`, async () => { await vfs.release(path, fh) }, cacheable(path) ? () => vfs.getattr(path) : undefined, cb)
    },
    truncate: (path, size, cb) => {
      change('truncate', () => `${path}, ${size}`, async () => await vfs.truncate(path, size), async () => await vfs.getattr(path), cb)
    },
    ftruncate: (path, fh, size, cb) => {
      change('ftruncate', () => `${path}, ${fh}, ${size}`, async () => await vfs.ftruncate(fh, size), async () => await vfs.fgetattr(path, fh), cb)
    },

    unlink: (path, cb) => { op('unlink', () => path, () => vfs.unlink(path), cb) },
    mkdir: (path, mode, cb) => {
      const by = who()
      // Read before the directory is made: a change in it answered meanwhile makes the put a no-op.
      const epoch = listed?.cache.epoch()
      change('mkdir', () => `${path}, 0${mode.toString(8)}`, async () => await vfs.mkdir(path, mode, by), async () => await vfs.getattr(path), (code, st) => {
        // It is empty: the kernel's lookups of the names tar and rsync are about to make in it
        // are answered missing on the FUSE thread, until an op of the mount names each.
        if (code === 0 && listed !== undefined && epoch !== undefined) keepFull(listed, epoch, path, () => [])
        cb(code, st)
      })
    },
    rmdir: (path, cb) => { op('rmdir', () => path, () => vfs.rmdir(path), cb) },
    rename: (src, dest, cb) => {
      run('rename', () => `${src}, ${dest}`, () => vfs.rename(src, dest) && vfs.missCacheable(src), (code, gone) => { cb(code, gone === true) })
    },
    symlink: (target, path, cb) => {
      const by = who()
      change('symlink', () => `${target}, ${path}`, async () => await vfs.symlink(target, path, by), async () => await vfs.getattr(path), cb)
    },
    readlink: (path, cb) => { run('readlink', () => path, async () => await vfs.readlink(path), cb) },
    link: (src, dest, cb) => { op('link', () => `${src}, ${dest}`, async () => await vfs.link(src, dest), cb) },
    mknod: (path, mode, dev, cb) => {
      const by = who()
      op('mknod', () => `${path}, 0${mode.toString(8)}, ${dev}`, async () => await vfs.mknod(path, mode, dev, by), cb)
    },

    chmod: (path, mode, cb) => {
      change('chmod', () => `${path}, 0${mode.toString(8)}`, () => vfs.chmod(path, mode), () => vfs.getattr(path), cb)
    },
    chown: (path, uid, gid, cb) => {
      change('chown', () => `${path}, ${uid}, ${gid}`, () => vfs.chown(path, uid, gid), () => vfs.getattr(path), cb)
    },
    utimens: (path, atimeMs, mtimeMs, cb) => {
      change('utimens', () => `${path}, ${atimeMs}, ${mtimeMs}`, () => vfs.utimens(path, atimeMs, mtimeMs), () => vfs.getattr(path), cb)
    },

    // The value is libfuse's memory, valid until we answer: the vfs gets its own copy.
    setxattr: (path, name, value, _position, flags, cb) => {
      op('setxattr', () => `${path}, ${name}, <${value.length} bytes>, ${flags}`,
        async () => await vfs.setxattr(path, name, Buffer.from(value), flags), cb)
    },
    getxattr: (path, name, _position, cb) => { run('getxattr', () => `${path}, ${name}`, async () => await vfs.getxattr(path, name), cb) },
    listxattr: (path, cb) => { run('listxattr', () => path, async () => await vfs.listxattr(path), cb) },
    removexattr: (path, name, cb) => { op('removexattr', () => `${path}, ${name}`, async () => await vfs.removexattr(path, name), cb) }
  }
}
