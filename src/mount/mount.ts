// Mounting a store: lock the data dir, clear a stale mount, open store and vfs,
// recover, mount with fuse-native; and the reverse, always complete, at unmount.
import fs from 'node:fs'
import path from 'node:path'
import debug from 'debug'
import { EXISTS, INVALID_ARGUMENT } from '../errors'
import { Store } from '../store'
import { Vfs } from '../vfs'
import { MAX_OBJECT_SIZE } from '../store/limits'
import { fuseOps, stagedWriter } from './adapter'
import { ListAhead } from './listing'
import { createFuse, fastPathOf, fastPathStats, fuseCaller, releaseFuse, type FastPath, type Fuse, type FuseOptions } from './fuse'
import { acquireLock, type DaemonLock } from './lock'
import { bucketfsMountedAt, canonicalMountpoint, deviceAt, fusermountLazy, isFuse, isStale, mountAt, waitFor } from './mounts'

const log = debug('bucketfs:mount')

export interface MountOptions {
  mountpoint: string
  dataDir: string
  /** Let other users in (allow_other, with the kernel checking permissions: default_permissions). */
  allowOther?: boolean
  /** List `.versions` in each bucket's readdir. */
  showVersions?: boolean
  /** Memory all open files may hold in unflushed writes together. */
  writeBudgetBytes?: number
  /** libfuse's own request log on stderr. */
  debugFuse?: boolean
}

export interface MountHandle {
  readonly mountpoint: string
  readonly dataDir: string
  /** Flushes and completes every open write, unmounts, closes the store, releases the lock. Idempotent. */
  unmount: () => Promise<void>
  /** Settles once everything is released, after unmount() or an unmount from outside (`fusermount -u`). */
  readonly ended: Promise<void>
}

/**
 * fuse-native answers ETIMEDOUT for an op still running after its timeout, while the op
 * goes on: a write or a close would be reported failed though it may still succeed, and a
 * timed-out write's buffer is taken back. So the timeouts are only a last resort against a
 * hung op. Ops that may wait for data to reach the disk (back-pressure on writes, flushing
 * parts, completing an upload, reading big chunks, renaming or removing a directory of many
 * keys in one transaction, truncating or opening a file whose session is flushing) get 10
 * minutes; metadata ops 30 s, which is still far beyond any normal answer.
 */
const SLOW_OP_MS = 10 * 60 * 1000
const OP_MS = 30 * 1000
const TIMEOUTS: FuseOptions['timeout'] = {
  default: OP_MS,
  read: SLOW_OP_MS,
  write: SLOW_OP_MS,
  flush: SLOW_OP_MS,
  fsync: SLOW_OP_MS,
  release: SLOW_OP_MS,
  create: SLOW_OP_MS,
  open: SLOW_OP_MS,
  truncate: SLOW_OP_MS,
  ftruncate: SLOW_OP_MS,
  unlink: SLOW_OP_MS,
  rename: SLOW_OP_MS,
  rmdir: SLOW_OP_MS
}

/**
 * Seconds the kernel may trust a name or attributes before asking again: long enough to
 * spare most lookups, short enough that changes made with the CLI show up soon. Attributes
 * a readdir listed are answered on the FUSE thread for as long again (fastPathOf).
 */
const ATTR_TIMEOUT_S = 1

/**
 * Options for libfuse that fuse-native has no setting for ride along in the fsname value:
 * its option string goes to libfuse as is.
 * - big_writes: the kernel sends writes of more than one 4 KiB page (up to 1 MiB with
 *   the channel in scripts/fuse-native/fast-path.c, 128 KiB with libfuse 2's own).
 * - atomic_o_trunc: open(O_TRUNC) arrives as one open, not a truncate and an open, so
 *   `echo x > f` in a versioned bucket makes one version.
 * - no hard_remove: with it libfuse forgets the path of a file a rename replaces at once,
 *   so a reader that had just looked the name up gets ENOENT from open (measured: 96 of
 *   300 `cat`s during renames over a held-open file). Without it libfuse renames such a
 *   file to .fuse_hiddenNNN, which the vfs treats as the unlink it is (src/vfs/vfs.ts).
 * - no kernel_cache: each open tells the kernel whether to keep the file's cached pages
 *   (Vfs.keepsCache: kept unless the file changed other than through this mount's saves).
 *   Dropping them at every open (libfuse's default) lets a reader racing an appender keep
 *   a page the kernel zero-filled past a short read (NUL bytes seen by `cat`).
 * - no negative_timeout: with a name remembered as missing, the kernel sends a create for
 *   it without looking it up, and a create starts the file empty (fuse-native does not
 *   pass its flags): `touch f` within the timeout of a miss would empty an object the CLI
 *   had just put there.
 * No use_ino (the vfs has no inode numbers; libfuse's node ids are unique per mount).
 */
const EXTRA_OPTIONS = ['big_writes', 'atomic_o_trunc']

/** `bucketfs:<data dir>` in /proc/mounts and df, when the path survives option parsing. */
function fsname (dataDir: string): string {
  const name = /^[^,\\\s]+$/.test(dataDir) ? `bucketfs:${dataDir}` : 'bucketfs'
  return [name, ...EXTRA_OPTIONS].join(',')
}

/** fuse-native copies the mountpoint and the option string into 1024-byte buffers and cuts them silently. */
const NATIVE_STRING_MAX = 1023
/** The kernel's read-ahead on the mount (readAhead): one request of the largest size. */
const READ_AHEAD_KB = 1024
/** How long readAhead waits for the kernel to take the mount's INIT answer. */
const INIT_WAIT_MS = 2000
/** An unmount still under way after this long says on stderr what it waits for, and again as long again after. */
const SLOW_STOP_MS = 10000

export async function mountFilesystem (opts: MountOptions): Promise<MountHandle> {
  const mountpoint = canonicalMountpoint(opts.mountpoint)
  const dataDir = path.resolve(opts.dataDir)
  if (Buffer.byteLength(mountpoint) > NATIVE_STRING_MAX) throw INVALID_ARGUMENT(`mountpoint path is too long: ${mountpoint}`)
  const inside = path.relative(mountpoint, dataDir)
  if (inside === '' || (!inside.startsWith('..') && !path.isAbsolute(inside))) {
    throw INVALID_ARGUMENT(`the data directory ${dataDir} cannot be inside the mountpoint ${mountpoint}`)
  }

  fs.mkdirSync(dataDir, { recursive: true, mode: 0o700 })
  const lock = acquireLock(dataDir, mountpoint)
  let store: Store | undefined
  let fuse: Fuse | undefined
  try {
    await clearStaleMount(mountpoint, fsname(dataDir).split(',')[0])
    fs.mkdirSync(mountpoint, { recursive: true })

    store = Store.open(dataDir, { backgroundCheckpoints: true, groupCommits: true })
    const fast = fastPathOf(() => fuse)
    // $BUCKETFS_READ_LOADS=0: windows are read and put from JavaScript only (for measuring).
    const readWindows = fast !== undefined && process.env.BUCKETFS_READ_LOADS === '0' ? { ...fast, load: undefined } : fast
    const vfs = new Vfs(store, { writeBudgetBytes: opts.writeBudgetBytes, showVersions: opts.showVersions, readWindows })
    log('recovering uploads that were fsynced but never closed')
    await vfs.recover()

    const cached = fast === undefined ? undefined : { cache: fast, ttlMs: ATTR_TIMEOUT_S * 1000 }
    // $BUCKETFS_LIST_AHEAD=0 turns listing ahead off (for measuring; src/mount/listing.ts).
    const ahead = cached === undefined || process.env.BUCKETFS_LIST_AHEAD === '0' ? undefined : new ListAhead(vfs, cached)
    const listed = cached === undefined ? undefined : { ...cached, ahead }
    fuse = createFuse(mountpoint, fuseOps(vfs, fuseCaller, listed), {
      fsname: fsname(dataDir),
      subtype: 'bucketfs',
      attrTimeout: ATTR_TIMEOUT_S,
      entryTimeout: ATTR_TIMEOUT_S,
      allowOther: opts.allowOther === true,
      defaultPermissions: opts.allowOther === true,
      debug: opts.debugFuse === true,
      timeout: TIMEOUTS
    })
    const options = fuse._fuseOptions()
    if (options.length > NATIVE_STRING_MAX) throw INVALID_ARGUMENT(`the FUSE option string is over ${NATIVE_STRING_MAX} bytes: ${options}`)
    log('mounting %s at %s with %s', dataDir, mountpoint, options)
    const inits = fastPathStats()?.initsAnswered
    await new Promise<void>((resolve, reject) => { fuse?.mount(err => { err === null ? resolve() : reject(err) }) })
    log('mounted %s', mountpoint)
    await readAhead(mountpoint, inits)
    fast?.feeder((fh, from) => { vfs.feedReads(fh, from) })
    // $BUCKETFS_STAGE_WRITES=0 keeps every write in JavaScript (for measuring; fast-path.c).
    if (process.env.BUCKETFS_STAGE_WRITES !== '0') fast?.stageWrites(stagedWriter(vfs), MAX_OBJECT_SIZE)
    if (ahead !== undefined) fast?.lister(dir => { ahead.read(dir) })
    return running(mountpoint, dataDir, lock, store, vfs, fuse, fast)
  } catch (err) {
    // Leave nothing behind: no half mount, no open store, no lock.
    if (fuse !== undefined && bucketfsMountedAt(mountpoint)) await fusermountLazy(mountpoint).catch(() => {})
    store?.close()
    lock.release()
    throw err
  }
}

/**
 * The kernel reads ahead of a sequential reader of a FUSE mount 128 KiB at a time; with
 * requests of up to 1 MiB (scripts/fuse-native/fast-path.c) it may read ahead 1 MiB, in one
 * request. Set on the mount's own device when the daemon may (root); else left as it is.
 * $BUCKETFS_READ_AHEAD_KB chooses the size (0: leave it). Set once the kernel has the
 * mount's INIT answer (our channel counts them, `inits` before the mount), which would
 * lower it again; never by an op on the mount: the daemon must not wait on its own mount
 * (killed meanwhile, it could never exit).
 */
async function readAhead (mountpoint: string, inits: number | undefined): Promise<void> {
  const kb = Number(process.env.BUCKETFS_READ_AHEAD_KB ?? READ_AHEAD_KB)
  const dev = deviceAt(mountpoint)
  // (Without our channel, BUCKETFS_BIG_REQUESTS=0, nothing counts INIT answers: left as it is.)
  if (inits === undefined || process.env.BUCKETFS_BIG_REQUESTS === '0' || !Number.isSafeInteger(kb) || kb <= 0 || dev === undefined) return
  for (let waited = 0; (fastPathStats()?.initsAnswered ?? 0) <= inits; waited += 5) {
    if (waited >= INIT_WAIT_MS) { log('read-ahead of %s left as it is: no INIT answer seen', mountpoint); return }
    await new Promise(resolve => setTimeout(resolve, 5))
  }
  try {
    fs.writeFileSync(`/sys/class/bdi/${dev}/read_ahead_kb`, `${kb}\n`)
    log('read-ahead of %s: %d KiB', mountpoint, kb)
  } catch (err) {
    log('read-ahead of %s left as it is: %s', mountpoint, (err as Error).message)
  }
}

/**
 * A FUSE mount left by a dead daemon answers ENOTCONN to everything: unmount it. So is a
 * mount of this very store, since we hold its lock (its daemon is gone). Any other live
 * FUSE filesystem at the same place belongs to someone: refuse.
 */
async function clearStaleMount (mountpoint: string, source: string): Promise<void> {
  const existing = mountAt(mountpoint)
  const ours = existing !== undefined && isFuse(existing) && existing.source === source
  if (!ours && !isStale(mountpoint)) {
    if (existing !== undefined && isFuse(existing)) {
      throw EXISTS(`${mountpoint} is already mounted (${existing.type} from ${existing.source})`)
    }
    return
  }
  log('clearing the stale mount at %s', mountpoint)
  await fusermountLazy(mountpoint)
  const cleared = await waitFor(() => { const m = mountAt(mountpoint); return m === undefined || !isFuse(m) }, 5000)
  if (!cleared) throw new Error(`could not clear the stale mount at ${mountpoint}`)
}

function running (mountpoint: string, dataDir: string, lock: DaemonLock, store: Store, vfs: Vfs, fuse: Fuse,
  fast: FastPath | undefined): MountHandle {
  let resolveEnded!: () => void
  let rejectEnded!: (err: unknown) => void
  const ended = new Promise<void>((resolve, reject) => { resolveEnded = resolve; rejectEnded = reject })
  let stopping: Promise<void> | undefined

  const stop = async (why: string): Promise<void> => {
    clearInterval(watch)
    log('unmounting %s (%s)', mountpoint, why)
    const started = Date.now()
    let phase = 'applying the writes staged on the FUSE thread'
    // Completing a large open write may take a while; an unmount that never ends is a bug
    // to find: either way the daemon says what it is waiting for.
    const slow = setInterval(() => {
      process.stderr.write(`bucketfs: unmounting ${mountpoint}: ${phase}, ${Math.round((Date.now() - started) / 1000)} s so far\n`)
    }, SLOW_STOP_MS)
    slow.unref()
    let failure: unknown
    try {
      try {
        // A write staged after the last drain would be answered done, then dropped: from
        // here writes reach the vfs, which takes them until its shutdown begins, then refuses them.
        fast?.stopStaging()
        await fast?.drainStaged()
        phase = 'completing open writes'
        await vfs.shutdown()
        log('every open write is complete')
      } catch (err) {
        failure = err
        log('shutdown failed: %s', err instanceof Error ? err.stack : String(err))
      }
      phase = 'running fusermount -uz'
      let unmounted = false
      await new Promise<void>(resolve => {
        fuse.unmount(err => {
          if (err !== null) {
            failure ??= err
            log('fuse unmount failed: %s', err.message)
          } else {
            unmounted = true
          }
          resolve()
        })
      })
      phase = 'releasing the mount'
      // Still there (fusermount failed): detach it anyway. (No isStale() here: a sync call
      // on a mount we may still serve would deadlock.)
      if (bucketfsMountedAt(mountpoint)) await fusermountLazy(mountpoint).catch(() => {})
      // fuse-native releases its hold on the event loop only when its own unmount succeeds:
      // without this the daemon would never exit after a failed one.
      if (!unmounted) releaseFuse(fuse)
      // Their entries are keyed by fuse-native's memory for this mount, which may be reused.
      fast?.dropAll()
      fast?.end()
      try {
        store.close()
      } finally {
        lock.release()
      }
    } finally {
      clearInterval(slow)
    }
    log('unmounted %s', mountpoint)
    if (failure !== undefined) throw failure
  }

  const unmount = async (why = 'asked'): Promise<void> => {
    stopping ??= stop(why).then(resolveEnded, (err: unknown) => { rejectEnded(err); throw err })
    return await stopping
  }

  // Someone ran `fusermount -u` or `umount` on us: finish the same way.
  const watch = setInterval(() => {
    if (stopping === undefined && !bucketfsMountedAt(mountpoint)) unmount('unmounted from outside').catch(() => {})
  }, 1000)
  watch.unref()

  // A caller that only awaits unmount() must not see an unhandled rejection of `ended`.
  ended.catch(() => {})
  return { mountpoint, dataDir, unmount: async () => await unmount(), ended }
}
