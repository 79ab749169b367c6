// The FUSE adapter without FUSE: the errno table, the stat/statfs shapes fuse-native
// wants, and each op's answer convention (cb(0, value), cb(bytes) for read/write,
// negative errnos), driven with a stand-in Vfs.
import t from 'tap'
import os from 'node:os'
import * as errors from '../src/errors'
import { BucketfsError, type ErrorCode } from '../src/errors'
import type { Vfs, Attr } from '../src/vfs'
import { fuseOps, toStat, toStatfs } from '../src/mount/adapter'
import { ListAhead, type ListedAttrs } from '../src/mount/listing'
import { errnoOf } from '../src/mount/errno'
import { STAT_INTS, type FuseStat } from '../src/mount/fuse'

const E = os.constants.errno

t.test('every BucketfsError code has a negative errno; the contract\'s rows hold', async t => {
  const expected: Partial<Record<ErrorCode, number>> = {
    NotFound: E.ENOENT, NoSuchKey: E.ENOENT, NoSuchBucket: E.ENOENT, NoSuchVersion: E.ENOENT, MethodNotAllowed: E.ENOENT,
    Exists: E.EEXIST, BucketAlreadyExists: E.EEXIST, NotDirectory: E.ENOTDIR, IsDirectory: E.EISDIR,
    DirectoryNotEmpty: E.ENOTEMPTY, BucketNotEmpty: E.ENOTEMPTY, ReadOnly: E.EROFS, NotPermitted: E.EPERM,
    AccessDenied: E.EACCES, InvalidBucketName: E.EINVAL, InvalidArgument: E.EINVAL, InvalidKey: E.EINVAL,
    InvalidRange: E.EINVAL, KeyTooLong: E.ENAMETOOLONG, NameTooLong: E.ENAMETOOLONG, MetadataTooLarge: E.E2BIG,
    EntityTooLarge: E.EFBIG, NoSpace: E.ENOSPC, CorruptChunk: E.EIO, BadHandle: E.EBADF, NoAttribute: E.ENODATA,
    Range: E.ERANGE, NotSupported: E.ENOTSUP
  }
  for (const [code, errno] of Object.entries(expected)) {
    t.equal(errnoOf(new BucketfsError(code as ErrorCode, 'x')), -errno, `${code} → -${errno}`)
  }
  const quiet = process.stderr.write
  process.stderr.write = () => true // the EIO cases below log their stacks
  try {
    t.equal(errnoOf(new Error('boom')), -E.EIO, 'anything else → EIO')
    t.equal(errnoOf(Object.assign(new Error('disk'), { code: 'ENOSPC' })), -E.ENOSPC, 'a raw ENOSPC from fs → ENOSPC')
    t.equal(errnoOf(errors.CORRUPT_CHUNK('bad')), -E.EIO)
  } finally {
    process.stderr.write = quiet
  }
})

const attr: Attr = { mode: 0o100644, uid: 1, gid: 2, size: 5_000_000_000, atimeMs: 1000, mtimeMs: 2000, ctimeMs: 3000, nlink: 1, ino: 0, blocks: 9765625 }

/** A FuseStat as fuse-native's own getStatArray lays it out (its index.js), to compare packed stats with. */
function statInts (st: FuseStat): Uint32Array {
  const a = new Uint32Array(STAT_INTS)
  const put64 = (i: number, n: number): void => { a[i] = n % 4294967296; a[i + 1] = (n - a[i]) / 4294967296 }
  a[0] = st.mode; a[1] = st.uid; a[2] = st.gid; put64(3, st.size); a[6] = st.nlink; a[7] = st.ino; a[9] = st.blksize
  put64(10, st.blocks); put64(12, st.atime.getTime()); put64(14, st.mtime.getTime()); put64(16, st.ctime.getTime())
  return a
}

t.test('stat and statfs shapes', async t => {
  const st = toStat(attr)
  t.same([st.mode, st.uid, st.gid, st.size, st.blksize, st.blocks], [0o100644, 1, 2, 5_000_000_000, 4096, 9765625])
  t.same([st.atime.getTime(), st.mtime.getTime(), st.ctime.getTime()], [1000, 2000, 3000], 'times as Dates, in ms')
  const big = toStatfs({ bsize: 4096, frsize: 4096, blocks: 2 ** 33, bfree: 2 ** 32, bavail: 2 ** 31, files: 2 ** 40, ffree: 5, favail: 5, namemax: 255 })
  t.ok(big.blocks <= 0xffffffff, 'block counts fit fuse-native\'s 32 bits')
  t.equal(big.frsize * big.blocks, 4096 * 2 ** 33, 'by counting in larger fragments: the same size')
  t.equal(big.frsize * big.bavail, 4096 * 2 ** 31)
  t.equal(big.files, 0xffffffff, 'file counts are clamped')
})

/** Calls an op and resolves with what it answered. */
async function answer (call: (cb: (...args: unknown[]) => void) => void): Promise<unknown[]> {
  return await new Promise(resolve => { call((...args: unknown[]) => { resolve(args) }) })
}

t.test('ops answer as fuse-native expects', async t => {
  const calls: unknown[][] = []
  const vfs = {
    // As the vfs: answered at once, or refused at once.
    getattr: (p: string) => { if (p === '/missing') throw errors.NOT_FOUND('no'); return attr },
    fgetattr: async (p: string, fh: number) => { calls.push(['fgetattr', p, fh]); return { ...attr, size: 7 } },
    // fh 8 answers at once (bytes in memory), the others through a promise.
    read: (fh: number, buf: Buffer, len: number) => {
      if (fh === 8) { buf.write('sync!'); return Math.min(5, len) }
      return (async () => { buf.write('hello'); return Math.min(5, len) })()
    },
    write: async (_fh: number, buf: Buffer, len: number) => { calls.push(['write', Buffer.from(buf.subarray(0, len)).toString()]); return len },
    readdir: async () => ({ names: ['a', 'b'], attrs: [attr, attr] }),
    open: async (p: string) => p === '/changed' ? 4 : p === '/written' ? 5 : 3,
    keepsCache: (fh: number) => fh !== 4,
    stagesWrites: (fh: number) => fh === 5,
    getxattr: async () => { throw errors.NO_ATTRIBUTE('none') },
    listxattr: async () => ['user.a', 'user.s3.etag'],
    setxattr: async (_p: string, _n: string, value: Buffer) => { calls.push(['setxattr', value]) },
    release: async (p: string, fh: number) => { calls.push(['release', p, fh]) },
    // fh 3 leaves the file saved; fh 6 leaves another writer's changes unsaved.
    flush: async (fh: number) => { calls.push(['flush', fh]); return fh === 3 },
    missCacheable: (p: string) => !p.includes('/.versions/'),
    fsync: async (fh: number, datasync: boolean) => { calls.push(['fsync', fh, datasync]) },
    fsyncdir: () => { calls.push(['fsyncdir']) },
    unlink: async () => { throw new Error('unexpected') }
  } as unknown as Vfs
  const ops = fuseOps(vfs)

  const [code, st] = await answer(cb => { ops.getattr('/f', cb) })
  t.equal(code, 0)
  t.equal((st as { size: number }).size, 5_000_000_000)
  t.same(await answer(cb => { ops.getattr('/missing', cb) }), [-E.ENOENT], 'an error answers its negative errno alone')
  {
    const answered: unknown[][] = []
    ops.getattr('/f', (...a: unknown[]) => { answered.push(a) })
    ops.getattr('/missing', (...a: unknown[]) => { answered.push(a) })
    t.same(answered.map(a => a[0]), [0, -E.ENOENT], 'a lookup the vfs answers or refuses at once is answered before ops.getattr returns')
  }
  const [, fst] = await answer(cb => { ops.fgetattr('/f', 9, cb) })
  t.equal((fst as { size: number }).size, 7, 'fgetattr goes to vfs.fgetattr with the handle')
  t.same(calls.pop(), ['fgetattr', '/f', 9])

  const buf = Buffer.alloc(16)
  t.same(await answer(cb => { ops.read('/f', 3, buf, 16, 0, cb) }), [5], 'read answers the byte count')
  t.equal(buf.subarray(0, 5).toString(), 'hello')
  {
    let answered: number[] | undefined
    ops.read('/f', 8, buf, 16, 0, (n: number) => { answered = [n] })
    t.same(answered, [5], 'a read the vfs answers without a promise is answered before ops.read returns')
    t.equal(buf.subarray(0, 5).toString(), 'sync!')
  }
  t.same(await answer(cb => { ops.write('/f', 3, Buffer.from('data!'), 5, 0, cb) }), [5], 'write answers the byte count')
  t.same(calls.pop(), ['write', 'data!'])

  const [rc, names, stats] = await answer(cb => { ops.readdir('/', cb) })
  t.equal(rc, 0)
  t.same(names, ['.', '..', 'a', 'b'], 'readdir adds . and ..')
  const packed = stats as Uint32Array
  t.ok(packed instanceof Uint32Array, 'with the stats packed in one array')
  t.equal(packed.length, 4 * STAT_INTS, 'a stat for each name')
  t.same([0, 1, 2, 3].map(i => packed[i * STAT_INTS]), [0o40755, 0o40755, attr.mode, attr.mode], 'each name\'s type')
  t.same([...packed.subarray(2 * STAT_INTS, 3 * STAT_INTS)], [...statInts(toStat(attr))], 'an entry\'s stat as fuse-native packs a FuseStat')

  t.same(await answer(cb => { ops.open('/f', 0, cb) }), [0, 3], 'open answers the handle')
  t.same(await answer(cb => { ops.open('/changed', 0, cb) }), [0, 4 | 0x40000000], 'with bit 30 set when the kernel must drop its cached pages')
  t.same(await answer(cb => { ops.open('/written', 0, cb) }), [0, 5 | 0x20000000], 'with bit 29 set when the FUSE thread may stage its writes')
  t.same(await answer(cb => { ops.getxattr('/f', 'user.x', 0, cb) }), [-E.ENODATA], 'a missing xattr is ENODATA')
  t.same(await answer(cb => { ops.listxattr('/f', cb) }), [0, ['user.a', 'user.s3.etag']])

  const value = Buffer.from('blue')
  t.same(await answer(cb => { ops.setxattr('/f', 'user.color', value, 0, 0, cb) }), [0])
  const passed = calls.pop()?.[1] as Buffer
  value.write('gray') // libfuse reuses its buffer once answered
  t.equal(passed.toString(), 'blue', 'setxattr hands the vfs a copy of libfuse\'s buffer')

  // A close and a release answer the file's attributes after them (for the lookup that
  // often follows), the close only once the file holds nothing unsaved.
  {
    const [code, st] = await answer(cb => { ops.flush('/f', 3, cb) })
    t.same([code, (st as { size: number }).size], [0, 5_000_000_000], 'a close that left the file saved answers its attributes')
    t.same(calls.pop(), ['flush', 3])
    t.same((await answer(cb => { ops.flush('/f', 6, cb) })).slice(0, 2), [0, undefined], 'one that left changes unsaved answers none')
    t.same(calls.pop(), ['flush', 6])
    t.same((await answer(cb => { ops.flush('/missing', 3, cb) })).slice(0, 2), [0, undefined], 'a saved file whose attributes cannot be read answers none, and no error')
    t.same(calls.pop(), ['flush', 3])
  }
  {
    const [code, st] = await answer(cb => { ops.release('/f', 3, cb) })
    t.same([code, (st as { size: number }).size], [0, 5_000_000_000], 'a release answers the attributes after it')
    t.same(calls.pop(), ['release', '/f', 3])
    t.same((await answer(cb => { ops.release('/missing', 3, cb) })).slice(0, 2), [0, undefined], 'none for a path that is gone')
    t.same((await answer(cb => { ops.release('', 3, cb) })).slice(0, 2), [0, undefined], 'nor for an unlinked file (no path)')
    t.same((await answer(cb => { ops.release('/b/.versions/f/v1', 3, cb) })).slice(0, 2), [0, undefined], 'nor for a file under .versions, which is never kept')
    calls.splice(-3)
  }
  t.same(await answer(cb => { ops.fsync('/f', 1, 3, cb) }), [0])
  t.same(calls.pop(), ['fsync', 3, true], 'fsync: (path, datasync, fh) → vfs.fsync(fh, datasync)')
  t.same(await answer(cb => { ops.fsyncdir('/', 0, 0, cb) }), [0])
  t.same(calls.pop(), ['fsyncdir'], 'fsyncdir commits and syncs through the vfs')

  const quiet = process.stderr.write
  process.stderr.write = () => true
  try {
    t.same(await answer(cb => { ops.unlink('/f', cb) }), [-E.EIO], 'an unexpected error is EIO')
  } finally {
    process.stderr.write = quiet
  }
})

/**
 * The FUSE thread's cache as the adapter sees it, recording what is put: attributes as
 * [epoch, dir, names, stats (copied), ttl], misses as [epoch, path, ttl], full directories
 * as [epoch, dir, names, ttl, maxName], listings as [epoch, dir, names, stats (copied), ttl].
 */
function recordingCache (epoch: () => number): { listed: ListedAttrs, attrs: unknown[][], missing: unknown[][], full: unknown[][], lists: unknown[][] } {
  const attrs: unknown[][] = []
  const missing: unknown[][] = []
  const full: unknown[][] = []
  const lists: unknown[][] = []
  const cache = {
    epoch,
    putAttrs: (e: number, dir: string, names: string[], stats: FuseStat[] | Uint32Array, ttl: number) => {
      attrs.push([e, dir, [...names], stats instanceof Uint32Array ? [...stats] : stats.map(st => [...statInts(st)]), ttl])
      return names.length
    },
    putMissing: (e: number, p: string, ttl: number) => { missing.push([e, p, ttl]); return true },
    putFull: (e: number, dir: string, names: string[], ttl: number, maxName: number) => { full.push([e, dir, names, ttl, maxName]); return true },
    putListing: (e: number, dir: string, names: string[], stats: Uint32Array, ttl: number) => { lists.push([e, dir, [...names], [...stats], ttl]); return true }
  }
  return { listed: { cache, ttlMs: 1000 }, attrs, missing, full, lists }
}

t.test('readdir puts the attributes of the names it lists exactly, with the epoch read before', async t => {
  let epoch = 11
  const { listed, attrs: put } = recordingCache(() => epoch)
  const other: Attr = { ...attr, mode: 0o40700, size: 4096, blocks: 8, nlink: 2 }
  let exact = [0, 1, 2]
  const vfs = {
    readdir: () => { epoch++; return { names: ['a', 'b', 'c'], attrs: [attr, other, attr], exact } }
  } as unknown as Vfs
  const ops = fuseOps(vfs, () => undefined, listed)
  await answer(cb => { ops.readdir('/b/d', cb) })
  const ints = (st: Attr): number[] => [...statInts(toStat(st))]
  t.same(put, [[11, '/b/d', ['a', 'b', 'c'], [...ints(attr), ...ints(other), ...ints(attr)], 1000]], 'all of them')
  put.length = 0
  exact = [1]
  await answer(cb => { ops.readdir('/b/d', cb) })
  t.same(put, [[12, '/b/d', ['b'], ints(other), 1000]], 'only the exact ones, each with its own stat')
  put.length = 0
  exact = []
  await answer(cb => { ops.readdir('/b/d', cb) })
  t.same(put, [], 'none when none is exact')
})

t.test('a readdir lists the directories in it ahead, one level at a time, each as its readdir answers', async t => {
  let epoch = 5
  const { listed, attrs: putAttrs, lists } = recordingCache(() => epoch)
  const dirAttr: Attr = { ...attr, mode: 0o40755, size: 4096, blocks: 8, nlink: 2 }
  // /b/top holds a, b (directories), f (a file) and .versions-like v (not a key directory);
  // /b/top/a holds deep (a directory) and g; /b/top/b is too large to be listed ahead.
  const tree: Record<string, { names: string[], attrs: Attr[], exact?: number[] }> = {
    '/b/top': { names: ['a', 'f', 'b', 'v'], attrs: [dirAttr, attr, dirAttr, dirAttr], exact: [0, 1, 2, 3] },
    '/b/top/a': { names: ['deep', 'g'], attrs: [dirAttr, { ...attr, size: 3 }], exact: [1] },
    '/b/top/a/deep': { names: ['h'], attrs: [attr], exact: [0] }
  }
  const listedAhead: string[] = []
  const vfs = {
    readdir: (p: string) => tree[p],
    keyNameRoom: (p: string) => p.endsWith('/v') ? undefined : 255,
    readdirOfKeyDir: (p: string) => {
      listedAhead.push(p)
      epoch++ // an op answered meanwhile moves the epoch: the puts carry the one read before
      if (p === '/b/top/b') return undefined
      return tree[p]
    }
  } as unknown as Vfs
  const ahead = new ListAhead(vfs, listed)
  const ops = fuseOps(vfs, () => undefined, { ...listed, ahead })
  const settle = async (): Promise<void> => { for (let i = 0; i < 10; i++) await new Promise(resolve => setImmediate(resolve)) }

  const [, names, stats] = await answer(cb => { ops.readdir('/b/top', cb) })
  t.same([names, (stats as Uint32Array).length], [['.', '..', 'a', 'f', 'b', 'v'], 6 * STAT_INTS], 'the readdir itself answers as before')
  await settle()
  t.same(listedAhead, ['/b/top/a', '/b/top/b'], 'the key directories in it, in its order; not the file, nor what is not a key directory')
  t.equal(lists.length, 1, 'a directory too large is not put')
  const [e, dir, aheadNames, aheadStats, ttl] = lists[0] as [number, string, string[], number[], number]
  t.same([e, dir, ttl], [5, '/b/top/a', 1000], 'put with the epoch read before it was listed')
  t.same(putAttrs.find(a => a[1] === '/b/top/a')?.slice(0, 3), [5, '/b/top/a', ['g']], 'with the attributes of its exact names')
  const plain = fuseOps(vfs, () => undefined, listed)
  const [, nowNames, nowStats] = await answer(cb => { plain.readdir('/b/top/a', cb) })
  t.same([aheadNames, aheadStats], [nowNames, [...(nowStats as Uint32Array)]], 'what its readdir answers, \'.\' and \'..\' included')
  t.equal(ahead.made, 1)

  // The level below waits until the FUSE thread answers a readdir from what was put.
  await settle()
  t.same(listedAhead, ['/b/top/a', '/b/top/b'], 'nothing deeper before /b/top/a is read')
  ahead.read('/b/top/a')
  await settle()
  t.same(listedAhead.slice(2), ['/b/top/a/deep'], 'once read, the directories in it are listed ahead')
  ahead.read('/b/top/a')
  await settle()
  t.same(listedAhead.slice(2), ['/b/top/a/deep'], 'a listing is read once: a second answer lists nothing more')

  // A directory the program lists itself before its turn comes is not listed ahead again.
  listedAhead.length = 0
  const other = new ListAhead(vfs, listed)
  const opsOther = fuseOps(vfs, () => undefined, { ...listed, ahead: other })
  await answer(cb => { opsOther.readdir('/b/top', cb) })
  await answer(cb => { opsOther.readdir('/b/top/a', cb) })
  await settle()
  t.same(listedAhead, ['/b/top/a/deep', '/b/top/b'], '/b/top/a was answered by its readdir; what is in it is listed ahead, first')
})

t.test('listing ahead yields to other work, is bounded, and survives a failing listing', async t => {
  const { listed, lists } = recordingCache(() => 1)
  const dirAttr: Attr = { ...attr, mode: 0o40755 }
  const many = Array.from({ length: 100 }, (_, i) => `d${i}`)
  let failing = true
  const order: string[] = []
  const vfs = {
    readdir: () => ({ names: many, attrs: many.map(() => dirAttr) }),
    keyNameRoom: () => 255,
    readdirOfKeyDir: (p: string) => {
      order.push(p)
      if (p === '/b/top/d0' && failing) { failing = false; throw errors.NOT_FOUND('gone meanwhile') }
      return { names: ['x'], attrs: [attr], exact: [0] }
    }
  } as unknown as Vfs
  const ahead = new ListAhead(vfs, listed)
  ahead.answered('/b/top', { names: many, attrs: many.map(() => dirAttr) })
  t.same(order, [], 'nothing is listed before the op that asked for it is over')
  await new Promise(resolve => setImmediate(resolve))
  t.equal(order.length, 1, 'one directory per turn of the event loop')
  for (let i = 0; i < 200 && order.length < 64; i++) await new Promise(resolve => setImmediate(resolve))
  await new Promise(resolve => setTimeout(resolve, 20))
  t.equal(order.length, 64, 'at most 64 directories of one listing')
  t.equal(lists.length, 63, 'the one whose listing failed is skipped; the others are put')
})

t.test('chmod, chown and utimens answer the attributes after the change: those the vfs answered, else a lookup\'s', async t => {
  const looked: string[] = []
  const changed: Attr = { ...attr, mode: 0o100600 }
  const vfs = {
    chmod: (p: string) => p === '/b/stored' ? changed : undefined,
    chown: async () => undefined,
    utimens: () => { throw errors.NOT_FOUND('no') },
    getattr: (p: string) => { looked.push(p); return attr }
  } as unknown as Vfs
  const ops = fuseOps(vfs)
  t.same(await answer(cb => { ops.chmod('/b/stored', 0o600, cb) }), [0, toStat(changed)], 'the vfs\'s answer')
  t.same(looked, [], 'with no lookup')
  t.same(await answer(cb => { ops.chmod('/b/other', 0o600, cb) }), [0, toStat(attr)], 'else a lookup\'s')
  t.same(await answer(cb => { ops.chown('/b/later', 1, 2, cb) }), [0, toStat(attr)], 'also after a promise')
  t.same(looked, ['/b/other', '/b/later'])
  t.same((await answer(cb => { ops.utimens('/b/none', 0, 0, cb) })).slice(0, 2), [-E.ENOENT, undefined], 'a failure answers its errno and no attributes')
})

t.test('a lookup the vfs finds missing is put for the FUSE thread to answer, where the vfs allows', async t => {
  let epoch = 7
  const { listed, missing: put } = recordingCache(() => epoch)
  const vfs = {
    getattr: (p: string) => {
      epoch++ // as if a change were answered meanwhile: the put must carry the epoch read before
      if (p === '/b/denied') throw errors.ACCESS_DENIED('no')
      throw errors.NOT_FOUND('no')
    },
    missCacheable: (p: string) => !p.includes('.versions')
  } as unknown as Vfs
  const ops = fuseOps(vfs, () => undefined, listed)
  t.same(await answer(cb => { ops.getattr('/b/missing', cb) }), [-E.ENOENT])
  t.same(put, [[7, '/b/missing', 1000]], 'put with the epoch read before the lookup, for the entries\' time')
  t.same(await answer(cb => { ops.getattr('/b/.versions/k', cb) }), [-E.ENOENT])
  t.same(await answer(cb => { ops.getattr('/b/denied', cb) }), [-E.EACCES])
  t.equal(put.length, 1, 'not where the vfs says a miss may not hold, nor for other refusals')
})

t.test('a directory mkdir made is put as holding no names, with the epoch read before, where the vfs allows', async t => {
  let epoch = 3
  const { listed, full } = recordingCache(() => epoch)
  const made: string[] = []
  const vfs = {
    mkdir: async (p: string) => {
      epoch++ // as if a change were answered meanwhile
      if (p.endsWith('/exists')) throw errors.EXISTS('there')
      made.push(p)
    },
    getattr: () => ({ ...attr, mode: 0o40755 }),
    keyNameRoom: (p: string) => p.startsWith('/b/') ? 200 : undefined
  } as unknown as Vfs
  const ops = fuseOps(vfs, () => undefined, listed)
  const [code] = await answer(cb => { ops.mkdir('/b/d', 0o755, cb) })
  t.equal(code, 0)
  t.same(full, [[3, '/b/d', [], 1000, 200]], 'put empty, with the epoch read before the mkdir and the vfs\'s longest name')
  t.equal((await answer(cb => { ops.mkdir('/b/exists', 0o755, cb) }))[0], -E.EEXIST)
  await answer(cb => { ops.mkdir('/nb', 0o755, cb) })
  t.same(made, ['/b/d', '/nb'])
  t.equal(full.length, 1, 'not for a failed mkdir, nor where the vfs gives no longest name')
})

t.test('a miss in a small key directory puts all its names, and a large one is not listed again for a while', async t => {
  let listings = 0
  const { listed, full } = recordingCache(() => 5)
  const vfs = {
    getattr: () => { throw errors.NOT_FOUND('no') },
    missCacheable: () => true,
    keyNameRoom: (p: string) => p === '/b' ? undefined : 100,
    dirNames: (p: string) => { listings++; return p === '/b/big' ? undefined : ['x', 'y'] }
  } as unknown as Vfs
  const ops = fuseOps(vfs, () => undefined, listed)
  t.same(await answer(cb => { ops.getattr('/b/small/missing', cb) }), [-E.ENOENT])
  t.same(full, [[5, '/b/small', ['x', 'y'], 1000, 100]], 'its names, with the epoch read before the lookup')
  await answer(cb => { ops.getattr('/b/big/missing', cb) })
  await answer(cb => { ops.getattr('/b/big/other', cb) })
  t.equal(listings, 2, 'a directory too large to put is listed once, not at every miss')
  await answer(cb => { ops.getattr('/b/top', cb) })
  t.equal(full.length, 1, 'nothing is put for a bucket or a large directory')
})
