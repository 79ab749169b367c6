// The filesystem semantics (SPEC §2) driven directly through the vfs, no FUSE:
// one subtest per operation, each checking real results and the BucketfsError
// code of every refusal (src/mount/errno.ts turns those codes into errnos).
import t from 'tap'
import path from 'node:path'
import crypto from 'node:crypto'
import fs, { constants as C } from 'node:fs'
import os from 'node:os'
import { Store } from '../src/store'
import { Vfs, HANDLE_LIMIT } from '../src/vfs'
import { WriteSession } from '../src/vfs/session'
import { MemoryBudget } from '../src/vfs/budget'
import type { VfsOptions } from '../src/vfs'
import { failsWith, md5hex, multipartEtag, MiB, KiB } from './helpers/store'

const S_IFMT = 0o170000
const S_IFDIR = 0o040000
const S_IFREG = 0o100000
const S_IFLNK = 0o120000
const XATTR_CREATE = 1
const XATTR_REPLACE = 2
const PART = 8 * MiB

interface Env { dir: string, store: Store, vfs: Vfs }

/** A store in a fresh temp data dir with a vfs over it, and bucket `bkt` made through the vfs. */
async function setup (t: tap.Test, opts?: VfsOptions): Promise<Env> {
  // A private temp dir, not t.testdir(): that path is shared by every run of this file.
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'bucketfs-vfs-'))
  const dir = path.join(root, 'data')
  const env: Env = { dir, store: Store.open(dir), vfs: undefined as unknown as Vfs }
  env.vfs = new Vfs(env.store, opts)
  t.teardown(() => {
    try { env.store.close() } catch {}
    fs.rmSync(root, { recursive: true, force: true })
  })
  await env.vfs.mkdir('/bkt', 0o755)
  return env
}

/** Reopens the data dir as a new Store and Vfs (what a remount sees). */
function reopen (env: Env, opts?: VfsOptions): void {
  env.store.close()
  env.store = Store.open(env.dir)
  env.vfs = new Vfs(env.store, opts)
}

async function enableVersioning (vfs: Vfs, bucket: string): Promise<void> {
  await vfs.setxattr(`/${bucket}`, 'user.s3.versioning', Buffer.from('Enabled'), 0)
}

/** Writes data through one handle in pieces of `step` (the kernel sends at most 128 KiB). */
async function writeAll (vfs: Vfs, fh: number, data: Buffer, at = 0, step = 128 * KiB): Promise<void> {
  for (let off = 0; off < data.length; off += step) {
    const piece = data.subarray(off, Math.min(data.length, off + step))
    const n = await vfs.write(fh, piece, piece.length, at + off)
    if (n !== piece.length) throw new Error(`short write: ${n} of ${piece.length}`)
  }
}

/** create + write + release: a whole file as `cp` makes it. */
/** As the kernel does for open(O_CREAT|O_TRUNC): a create, or where the name is there (Stale), an open that truncates. */
async function putFile (vfs: Vfs, p: string, data: Buffer | string, mode = 0o644): Promise<void> {
  const fh = await Promise.resolve(vfs.create(p, mode, C.O_WRONLY | C.O_CREAT)).catch(async (err: { code?: string }) => {
    if (err.code !== 'Stale') throw err
    return await vfs.open(p, C.O_WRONLY | C.O_TRUNC)
  })
  await writeAll(vfs, fh, Buffer.from(data))
  await vfs.flush(fh)
  await vfs.release(p, fh)
}

/** Reads `len` bytes at `off` through a handle. */
async function readAt (vfs: Vfs, fh: number, off: number, len: number): Promise<Buffer> {
  const buf = Buffer.alloc(len)
  const n = await vfs.read(fh, buf, len, off)
  return buf.subarray(0, n)
}

/** Everything a handle reads, in pieces of at most 4 MiB, up to EOF. */
async function readThrough (vfs: Vfs, fh: number): Promise<Buffer> {
  const out: Buffer[] = []
  for (let off = 0; ;) {
    const b = await readAt(vfs, fh, off, 4 * MiB)
    if (b.length === 0) break
    out.push(b)
    off += b.length
  }
  return Buffer.concat(out)
}

/** open O_RDONLY, read to EOF, release. */
async function getFile (vfs: Vfs, p: string): Promise<Buffer> {
  const fh = await vfs.open(p, C.O_RDONLY)
  try { return await readThrough(vfs, fh) } finally { await vfs.release(p, fh) }
}

/** A deterministic pseudo-random buffer (incompressible, distinct chunks). */
function noise (size: number, seed: string): Buffer {
  const out = Buffer.alloc(size)
  let block = crypto.createHash('sha256').update(seed).digest()
  for (let off = 0; off < size; off += block.length) {
    block.copy(out, off)
    block = crypto.createHash('sha256').update(block).digest()
  }
  return out
}

/** The ETag S3 gives data uploaded in 8 MiB parts: the MD5 for one part. */
function expectedEtag (data: Buffer): string {
  if (data.length <= PART) return md5hex(data)
  const parts: Buffer[] = []
  for (let off = 0; off < data.length; off += PART) parts.push(data.subarray(off, off + PART))
  return multipartEtag(parts)
}

/** Counts the calls of obj[method] from now on (the method still runs). */
function countCalls<T extends object, K extends keyof T> (obj: T, method: K): () => number {
  const fn = obj[method] as unknown as (...args: unknown[]) => unknown
  let n = 0
  obj[method] = ((...args: unknown[]) => { n++; return fn.apply(obj, args) }) as T[K]
  return () => n
}

function keysOf (store: Store, bucket: string, prefix = ''): string[] {
  return store.listObjects(bucket, { prefix, maxKeys: 1000 }).contents.map(v => v.key)
}

// ---------------------------------------------------------------- the root: buckets

t.test('mkdir and rmdir at the root create and delete buckets', async t => {
  const { vfs, store } = await setup(t)
  const a = await vfs.getattr('/bkt')
  t.equal(a.mode & S_IFMT, S_IFDIR, 'a bucket is a directory')
  t.same(store.listBuckets().map(b => b.name), ['bkt'], 'mkdir /bkt created the bucket')
  await vfs.mkdir('/other.bucket-2', 0o700)
  t.equal((await vfs.getattr('/other.bucket-2')).mode & 0o777, 0o700, 'the mode given to mkdir is kept')
  t.same((await vfs.readdir('/')).names.sort(), ['bkt', 'other.bucket-2'], 'readdir / lists buckets')

  for (const bad of ['Upper', 'ab', 'a_b', '-abc', 'abc-', 'a..b', '192.168.1.1', 'xn--abc', 'abc-s3alias']) {
    await failsWith(t, () => vfs.mkdir('/' + bad, 0o755), 'InvalidBucketName', `mkdir /${bad}`)
  }
  await failsWith(t, () => vfs.mkdir('/bkt', 0o755), 'BucketAlreadyExists', 'mkdir of a taken name')

  await putFile(vfs, '/bkt/f.txt', 'x')
  await failsWith(t, () => vfs.rmdir('/bkt'), 'DirectoryNotEmpty', 'rmdir of a bucket holding a key')
  await vfs.unlink('/bkt/f.txt')
  await vfs.rmdir('/bkt')
  t.same(store.listBuckets().map(b => b.name), ['other.bucket-2'], 'rmdir of the emptied bucket deleted it')
  await failsWith(t, () => vfs.getattr('/bkt'), 'NoSuchBucket', 'the bucket is gone')
  await failsWith(t, () => vfs.rmdir('/bkt'), 'NoSuchBucket', 'rmdir of a missing bucket')

  // A versioned bucket is not empty while any version remains.
  await vfs.mkdir('/vers', 0o755)
  await enableVersioning(vfs, 'vers')
  await putFile(vfs, '/vers/f.txt', 'x')
  await vfs.unlink('/vers/f.txt')
  t.same((await vfs.readdir('/vers')).names, [], 'the deleted key is not listed')
  await failsWith(t, () => vfs.rmdir('/vers'), 'DirectoryNotEmpty', 'rmdir while old versions remain')
})

t.test('files at the root are refused', async t => {
  const { vfs, store } = await setup(t)
  await failsWith(t, () => vfs.create('/file.txt', 0o644), 'NotPermitted', 'create /file.txt')
  await failsWith(t, () => vfs.mknod('/fifo', S_IFREG | 0o644, 0), 'NotPermitted', 'mknod of a file at the root')
  await failsWith(t, () => vfs.symlink('bkt', '/link'), 'NotPermitted', 'symlink at the root')
  await putFile(vfs, '/bkt/f', 'data')
  await failsWith(t, () => vfs.rename('/bkt/f', '/f'), 'NotPermitted', 'rename of a key to the root')
  t.same(keysOf(store, 'bkt'), ['f'], 'the refused rename left the key in place')
  t.same((await vfs.readdir('/')).names, ['bkt'])
})

// ---------------------------------------------------------------- files

t.test('create, write at offsets, read at offsets', async t => {
  const { vfs, store } = await setup(t)
  const fh = await vfs.create('/bkt/a.txt', 0o640, C.O_RDWR | C.O_CREAT)
  t.equal((await vfs.getattr('/bkt/a.txt')).size, 0, 'a created file exists at once, empty')
  t.equal((await vfs.getattr('/bkt/a.txt')).mode, S_IFREG | 0o640, 'with the mode given')
  await vfs.write(fh, Buffer.from('hello'), 5, 0)
  await vfs.write(fh, Buffer.from('world!!'), 5, 10) // len counts, not the buffer's length
  t.equal((await vfs.fgetattr('/bkt/a.txt', fh)).size, 15, 'size includes the hole')
  t.same(await readAt(vfs, fh, 0, 100), Buffer.from('hello\0\0\0\0\0world'), 'the hole reads as zeros')
  t.same(await readAt(vfs, fh, 3, 4), Buffer.from('lo\0\0'), 'a read inside')
  t.equal((await readAt(vfs, fh, 15, 10)).length, 0, 'a read at EOF returns 0 bytes')
  t.equal((await readAt(vfs, fh, 1000, 10)).length, 0, 'a read past EOF returns 0 bytes')
  await vfs.write(fh, Buffer.from('HE'), 2, 0)
  t.same(await readAt(vfs, fh, 0, 5), Buffer.from('HEllo'), 'an overwrite in place')
  await vfs.release('/bkt/a.txt', fh)
  t.same(await getFile(vfs, '/bkt/a.txt'), Buffer.from('HEllo\0\0\0\0\0world'), 'the stored file after release')
  const v = store.headObject('bkt', 'a.txt')
  t.equal(v.size, 15)
  t.equal(v.contentType, 'text/plain', 'content type guessed from the extension')

  // Reopen read-write without O_TRUNC: writes land on the existing content.
  const fh2 = await vfs.open('/bkt/a.txt', C.O_RDWR)
  await vfs.write(fh2, Buffer.from('_'), 1, 5)
  await vfs.write(fh2, Buffer.from('!'), 1, 15)
  await vfs.release('/bkt/a.txt', fh2)
  t.same(await getFile(vfs, '/bkt/a.txt'), Buffer.from('HEllo_\0\0\0\0world!'))

  // A read-only handle cannot write; a bad handle is EBADF.
  const ro = await vfs.open('/bkt/a.txt', C.O_RDONLY)
  await failsWith(t, () => vfs.write(ro, Buffer.from('x'), 1, 0), 'BadHandle', 'write through a read-only handle')
  await vfs.release('/bkt/a.txt', ro)
  await failsWith(t, () => vfs.read(9999, Buffer.alloc(1), 1, 0), 'BadHandle', 'read of an unknown handle')
  await failsWith(t, () => vfs.open('/bkt/missing', C.O_RDONLY), 'NotFound', 'open of a missing file')
  await failsWith(t, () => vfs.getattr('/bkt/missing'), 'NotFound', 'getattr of a missing file')
  await failsWith(t, () => vfs.create('/nobucket/x', 0o644), 'NoSuchBucket', 'create in a missing bucket')
  await vfs.mkdir('/bkt/d', 0o755)
  await failsWith(t, () => vfs.create('/bkt/d', 0o644), 'Stale', 'create over a directory: the kernel looks again')
  await failsWith(t, () => vfs.open('/bkt/d', C.O_WRONLY), 'IsDirectory', 'open of a directory for writing')
})

t.test('a write whose chunks are in memory is taken in at once; one that must read the file first waits its turn', async t => {
  const { vfs } = await setup(t)
  const data = noise(3 * MiB + 5000, 'at once')
  const fh = await vfs.create('/bkt/f', 0o644, C.O_RDWR | C.O_CREAT)
  let answeredNow = 0
  for (let off = 0; off < data.length; off += 128 * KiB) {
    const piece = data.subarray(off, Math.min(data.length, off + 128 * KiB))
    const r = vfs.write(fh, piece, piece.length, off)
    if (typeof r === 'number') {
      answeredNow++
      // Taken in: readers see the bytes and the size before anything else runs.
      t.equal(r, piece.length)
      t.equal((await vfs.fgetattr('/bkt/f', fh)).size, off + piece.length, `size at once after the write at ${off}`)
    } else {
      t.equal(await r, piece.length)
    }
  }
  t.ok(answeredNow >= 20, `a sequential writer's writes are answered without a promise (${answeredNow} of 25)`)
  t.ok(data.equals(await readThrough(vfs, fh)), 'and every byte reads back')
  await vfs.release('/bkt/f', fh)
  t.ok(data.equals(await getFile(vfs, '/bkt/f')), 'the saved file')

  // Reopened without O_TRUNC, the first write into a stored chunk reads it first: a promise.
  const fh2 = await vfs.open('/bkt/f', C.O_RDWR)
  const r = vfs.write(fh2, Buffer.from('XY'), 2, MiB + 10)
  t.type(r, Promise, 'a write into a chunk not in memory waits for its bytes')
  t.equal(await r, 2)
  t.equal(vfs.write(fh2, Buffer.from('Z'), 1, MiB + 12), 1, 'the next write into that chunk is taken in at once')
  // Writes given while one waits keep their order.
  const first = vfs.write(fh2, Buffer.from('aaaa'), 4, 2 * MiB + 7) // reads chunk 2 first
  const second = vfs.write(fh2, Buffer.from('bb'), 2, 2 * MiB + 8) // must not land before it
  t.type(first, Promise)
  t.type(second, Promise, 'a write given while another waits waits too')
  await Promise.all([first, second])
  const expect = Buffer.from(data)
  Buffer.from('XYZ').copy(expect, MiB + 10)
  Buffer.from('abba').copy(expect, 2 * MiB + 7)
  t.ok(expect.equals(await readThrough(vfs, fh2)), 'every write landed, in the order given')
  await vfs.release('/bkt/f', fh2)
  t.ok(expect.equals(await getFile(vfs, '/bkt/f')), 'and was saved')
})

t.test('create of a name that exists after all (another process made it) leaves it alone: Stale', async t => {
  const { vfs, store } = await setup(t)
  await store.putObject('bkt', 'there.txt', Buffer.from('stored'))
  const before = store.headObject('bkt', 'there.txt').versionId
  await failsWith(t, () => vfs.create('/bkt/there.txt', 0o600), 'Stale', 'a file: the kernel looks it up again and opens it as open(2) says')
  t.same(await getFile(vfs, '/bkt/there.txt'), Buffer.from('stored'), 'its content is untouched')
  t.equal(store.headObject('bkt', 'there.txt').versionId, before, 'and no version was made')
  await vfs.symlink('there.txt', '/bkt/link')
  await failsWith(t, () => vfs.create('/bkt/link', 0o644), 'Stale', 'a symlink (the kernel follows it)')
  t.equal(await vfs.readlink('/bkt/link'), 'there.txt')
  await failsWith(t, () => vfs.mknod('/bkt/there.txt', S_IFREG | 0o644, 0), 'Exists', 'mknod of an existing name: EEXIST')
})

t.test('a miss may be kept for a key path, not under .versions (a save adds names there)', async t => {
  const { vfs } = await setup(t)
  t.ok(vfs.missCacheable('/bkt/a/b.txt'))
  t.notOk(vfs.missCacheable('/bkt/.versions/b.txt'))
  t.notOk(vfs.missCacheable('/bkt'), 'nor a bucket (the CLI makes those)')
  t.notOk(vfs.missCacheable('/'))
})

t.test('a write given away becomes a chunk\'s buffer only as a whole new chunk at its start', async t => {
  const { vfs } = await setup(t)
  const fh = await vfs.create('/bkt/given.bin', 0o644, C.O_WRONLY | C.O_CREAT)
  const first = noise(MiB, 'given-1')
  await vfs.write(fh, Buffer.from(first), MiB, 0, true) // a whole new chunk at its start: taken as it is
  // Chunk 1 is dirty (200 bytes): a whole MiB over it is copied in, not taken.
  await vfs.write(fh, Buffer.alloc(200, 7), 200, MiB)
  const second = noise(MiB, 'given-2')
  const over = Buffer.from(second)
  await vfs.write(fh, over, MiB, MiB, true)
  over.fill(0) // the caller reuses its buffer: nothing of it was kept
  // A whole MiB at an offset that is not a chunk's start spans two chunks: copied.
  const third = noise(MiB, 'given-3')
  const shifted = Buffer.from(third)
  await vfs.write(fh, shifted, MiB, 2 * MiB + 100, true)
  shifted.fill(0)
  await vfs.flush(fh)
  await vfs.release('/bkt/given.bin', fh)
  const got = await getFile(vfs, '/bkt/given.bin')
  t.equal(got.length, 3 * MiB + 100, 'the size')
  t.ok(got.subarray(0, MiB).equals(first), 'the chunk taken whole')
  t.ok(got.subarray(MiB, 2 * MiB).equals(second), 'the MiB written over a dirty chunk: its bytes, copied')
  t.ok(got.subarray(2 * MiB, 2 * MiB + 100).every(b => b === 0), 'the hole before the shifted MiB')
  t.ok(got.subarray(2 * MiB + 100).equals(third), 'the shifted MiB: its bytes, copied')
})

t.test('append: O_APPEND writes go to the end whatever the offset', async t => {
  const { vfs } = await setup(t)
  await putFile(vfs, '/bkt/log.txt', 'one\n')
  const fh = await vfs.open('/bkt/log.txt', C.O_WRONLY | C.O_APPEND)
  t.equal(C.O_APPEND, 0o2000)
  await vfs.write(fh, Buffer.from('two\n'), 4, 0)
  await vfs.write(fh, Buffer.from('three\n'), 6, 1)
  await vfs.release('/bkt/log.txt', fh)
  t.same((await getFile(vfs, '/bkt/log.txt')).toString(), 'one\ntwo\nthree\n')
  // Two appenders share the session, so neither overwrites the other.
  const a = await vfs.open('/bkt/log.txt', C.O_WRONLY | C.O_APPEND)
  const b = await vfs.open('/bkt/log.txt', C.O_WRONLY | C.O_APPEND)
  await vfs.write(a, Buffer.from('A\n'), 2, 0)
  await vfs.write(b, Buffer.from('B\n'), 2, 0)
  await vfs.release('/bkt/log.txt', a)
  await vfs.release('/bkt/log.txt', b)
  t.same((await getFile(vfs, '/bkt/log.txt')).toString(), 'one\ntwo\nthree\nA\nB\n')
  // Appends given while the session is busy (an fsync holds it) wait their turn, and
  // each goes to the end as it is when its turn comes, not when it was given.
  const c = await vfs.open('/bkt/log.txt', C.O_WRONLY | C.O_APPEND)
  const d = await vfs.open('/bkt/log.txt', C.O_WRONLY | C.O_APPEND)
  await vfs.write(c, Buffer.from('C\n'), 2, 0)
  const synced = vfs.fsync(c, false)
  const queued = [vfs.write(c, Buffer.from('queued 1\n'), 9, 0), vfs.write(d, Buffer.from('queued 2\n'), 9, 0)]
  t.ok(queued.every(w => w instanceof Promise), 'the appends wait behind the fsync')
  t.same(await Promise.all([synced, ...queued]), [undefined, 9, 9])
  await vfs.release('/bkt/log.txt', c)
  await vfs.release('/bkt/log.txt', d)
  t.same((await getFile(vfs, '/bkt/log.txt')).toString(), 'one\ntwo\nthree\nA\nB\nC\nqueued 1\nqueued 2\n')
})

t.test('truncate: shrink, grow (zeros beyond), O_TRUNC, across chunks', async t => {
  const { vfs, store } = await setup(t)
  await putFile(vfs, '/bkt/t.txt', 'abcdefghij')
  await vfs.truncate('/bkt/t.txt', 4)
  t.same(await getFile(vfs, '/bkt/t.txt'), Buffer.from('abcd'), 'shrunk')
  t.equal(store.headObject('bkt', 't.txt').size, 4, 'truncate of a closed file is stored at once')
  await vfs.truncate('/bkt/t.txt', 10)
  t.same(await getFile(vfs, '/bkt/t.txt'), Buffer.from('abcd\0\0\0\0\0\0'), 'grown again: the cut bytes are zeros')
  await vfs.truncate('/bkt/t.txt', 0)
  t.equal((await vfs.getattr('/bkt/t.txt')).size, 0)
  t.equal(store.headObject('bkt', 't.txt').etag, md5hex(Buffer.alloc(0)), 'an empty file has the MD5 of nothing')

  // Over several chunks, with a part boundary in between.
  const big = noise(9 * MiB + 333, 'trunc')
  await putFile(vfs, '/bkt/big.bin', big)
  await vfs.truncate('/bkt/big.bin', MiB + MiB / 2 + 7)
  await vfs.truncate('/bkt/big.bin', big.length)
  const want = Buffer.concat([big.subarray(0, MiB + MiB / 2 + 7), Buffer.alloc(big.length - (MiB + MiB / 2 + 7))])
  const got = await getFile(vfs, '/bkt/big.bin')
  t.ok(got.equals(want), 'shrink then grow of a big file: zeros past the cut')
  t.equal(store.headObject('bkt', 'big.bin').etag, expectedEtag(want), 'and its ETag matches')

  // A sparse file made by truncate alone.
  await putFile(vfs, '/bkt/sparse', '')
  await vfs.truncate('/bkt/sparse', PART + 10)
  t.ok((await getFile(vfs, '/bkt/sparse')).equals(Buffer.alloc(PART + 10)), 'a file grown by truncate reads as zeros')
  t.equal(store.headObject('bkt', 'sparse').etag, expectedEtag(Buffer.alloc(PART + 10)))

  // open with O_TRUNC empties the file.
  const fh = await vfs.open('/bkt/big.bin', C.O_WRONLY | C.O_TRUNC)
  t.equal((await vfs.fgetattr('/bkt/big.bin', fh)).size, 0, 'O_TRUNC: size 0 at once')
  await vfs.write(fh, Buffer.from('new'), 3, 0)
  await vfs.release('/bkt/big.bin', fh)
  t.same(await getFile(vfs, '/bkt/big.bin'), Buffer.from('new'))

  await vfs.mkdir('/bkt/d', 0o755)
  await failsWith(t, () => vfs.truncate('/bkt/d', 0), 'IsDirectory', 'truncate of a directory')
  await failsWith(t, () => vfs.truncate('/bkt/missing', 0), 'NotFound', 'truncate of a missing file')
})

t.test('ftruncate through an open handle, in one session', async t => {
  const { vfs, store } = await setup(t)
  const data = noise(3 * MiB, 'ftrunc')
  await putFile(vfs, '/bkt/f.bin', data)
  const fh = await vfs.open('/bkt/f.bin', C.O_RDWR)
  await vfs.ftruncate(fh, 3)
  t.equal((await vfs.fgetattr('/bkt/f.bin', fh)).size, 3, 'the handle sees the new size')
  t.equal((await vfs.getattr('/bkt/f.bin')).size, 3, 'so does a lookup')
  t.same(await readAt(vfs, fh, 0, 10), data.subarray(0, 3))
  await vfs.ftruncate(fh, 2 * MiB)
  const grown = await readThrough(vfs, fh)
  t.ok(grown.equals(Buffer.concat([data.subarray(0, 3), Buffer.alloc(2 * MiB - 3)])), 'grown in the same session: zeros past the cut')
  // Dirty buffers are cut too: write, shrink into the write, grow again.
  await vfs.write(fh, Buffer.from('XYZXYZ'), 6, MiB - 3)
  await vfs.fsync(fh, false)
  await vfs.write(fh, Buffer.from('abcdef'), 6, MiB + 10)
  await vfs.ftruncate(fh, MiB)
  await vfs.ftruncate(fh, MiB + 20)
  const want = Buffer.concat([data.subarray(0, 3), Buffer.alloc(MiB - 6), Buffer.from('XYZ'), Buffer.alloc(20)])
  t.ok((await readThrough(vfs, fh)).equals(want), 'flushed and dirty bytes past a cut read as zeros after a regrow')
  await vfs.release('/bkt/f.bin', fh)
  const stored = await getFile(vfs, '/bkt/f.bin')
  t.ok(stored.equals(want), 'and that is what is stored')
  t.equal(store.headObject('bkt', 'f.bin').etag, md5hex(want))
  await failsWith(t, () => vfs.ftruncate(4242, 0), 'BadHandle', 'ftruncate of an unknown handle')
})

t.test('handle numbers wrap around below HANDLE_LIMIT and skip the ones still open', async t => {
  const { vfs } = await setup(t)
  await putFile(vfs, '/bkt/f', 'data')
  const kept = await vfs.open('/bkt/f', C.O_RDONLY)
  t.equal(kept, 2, 'numbers start low (1 went to putFile\'s handle)')
  // As after half a billion opens: the next numbers are the last ones below the limit.
  ;(vfs as unknown as { nextFh: number }).nextFh = HANDLE_LIMIT - 2
  const got: number[] = []
  for (let i = 0; i < 4; i++) got.push(await vfs.open('/bkt/f', C.O_RDONLY))
  t.same(got, [HANDLE_LIMIT - 2, HANDLE_LIMIT - 1, 1, 3], 'up to the limit, then from 1 again, past 2 (still open)')
  for (const fh of got) {
    t.equal((await readAt(vfs, fh, 0, 10)).toString(), 'data', `handle ${fh} reads the file`)
    await vfs.release('/bkt/f', fh)
  }
  t.equal((await readAt(vfs, kept, 0, 10)).toString(), 'data', 'and the handle kept open still does')
  await vfs.release('/bkt/f', kept)
  t.equal(await vfs.open('/bkt/f', C.O_RDONLY), 4, 'released numbers come back only in their turn')
})

t.test('unlink', async t => {
  const { vfs, store } = await setup(t)
  await putFile(vfs, '/bkt/f', 'x')
  await vfs.unlink('/bkt/f')
  await failsWith(t, () => vfs.getattr('/bkt/f'), 'NotFound', 'the file is gone')
  t.same(keysOf(store, 'bkt'), [], 'and its key')
  await failsWith(t, () => vfs.unlink('/bkt/f'), 'NotFound', 'unlink of a missing file')
  await vfs.mkdir('/bkt/d', 0o755)
  await failsWith(t, () => vfs.unlink('/bkt/d'), 'IsDirectory', 'unlink of a directory')
  t.same(keysOf(store, 'bkt'), ['d/'], 'which stays')
})

t.test('unlink of a stored file: one transaction and no lookup; in a versioned bucket, one delete marker', async t => {
  const { vfs, store } = await setup(t)
  await putFile(vfs, '/bkt/f', 'x')
  await store.putObject('bkt', 'd/g', 'y')
  const looked = countCalls(store.catalog, 'liveStat')
  const writes = countCalls(store.catalog, 'write')
  vfs.unlink('/bkt/f')
  t.same([looked(), writes()], [0, 1], 'no lookup, one write transaction')
  t.same(store.versionsOf('bkt', 'f'), [], 'its version is gone (no bucket history)')
  await failsWith(t, () => vfs.unlink('/bkt/d'), 'IsDirectory', 'a directory (implied by a key under it) is refused')
  t.same(keysOf(store, 'bkt'), ['d/g'], 'and keeps its keys')

  await enableVersioning(vfs, 'bkt')
  await putFile(vfs, '/bkt/v', 'one')
  await putFile(vfs, '/bkt/v', 'two')
  vfs.unlink('/bkt/v')
  const kept = store.versionsOf('bkt', 'v')
  t.same(kept.map(v => v.isDeleteMarker), [true, false, false], 'a versioned bucket keeps both versions under a delete marker')
  await failsWith(t, () => vfs.unlink('/bkt/v'), 'NotFound', 'a key under a delete marker is missing')
  await failsWith(t, () => vfs.unlink('/bkt/never'), 'NotFound', 'as is one never written')
  t.equal(store.versionsOf('bkt', 'v').length, 3, 'and neither unlink added a marker')
  t.same(store.versionsOf('bkt', 'never'), [])
})

// ---------------------------------------------------------------- directories

t.test('mkdir and rmdir inside a bucket', async t => {
  const { vfs, store } = await setup(t)
  await vfs.mkdir('/bkt/a', 0o750)
  t.equal((await vfs.getattr('/bkt/a')).mode, S_IFDIR | 0o750, 'mkdir makes a directory with the mode given')
  t.same(keysOf(store, 'bkt'), ['a/'], 'stored as a directory marker')
  await vfs.mkdir('/bkt/a/b', 0o755)
  t.same((await vfs.readdir('/bkt/a')).names, ['b'])
  await failsWith(t, () => vfs.mkdir('/bkt/a', 0o755), 'Exists', 'mkdir of an existing directory')
  await failsWith(t, () => vfs.mkdir('/bkt/x/y', 0o755), 'NotFound', 'mkdir with a missing parent')
  await putFile(vfs, '/bkt/file', 'x')
  await failsWith(t, () => vfs.mkdir('/bkt/file', 0o755), 'Exists', 'mkdir over a file')
  await failsWith(t, () => vfs.mkdir('/bkt/file/sub', 0o755), 'NotDirectory', 'mkdir whose parent is a file')
  await failsWith(t, () => vfs.create('/bkt/file/sub', 0o644), 'NotDirectory', 'create whose parent is a file')
  await failsWith(t, () => vfs.readdir('/bkt/file'), 'NotDirectory', 'readdir of a file')

  await failsWith(t, () => vfs.rmdir('/bkt/a'), 'DirectoryNotEmpty', 'rmdir of a directory with a subdirectory')
  await putFile(vfs, '/bkt/a/b/f', 'x')
  await failsWith(t, () => vfs.rmdir('/bkt/a/b'), 'DirectoryNotEmpty', 'rmdir of a directory with a file')
  await failsWith(t, () => vfs.rmdir('/bkt/file'), 'NotDirectory', 'rmdir of a file')
  await failsWith(t, () => vfs.rmdir('/bkt/none'), 'NotFound', 'rmdir of a missing directory')
  // A directory being written into is not empty either.
  await vfs.mkdir('/bkt/c', 0o755)
  const fh = await vfs.create('/bkt/c/new', 0o644)
  await failsWith(t, () => vfs.rmdir('/bkt/c'), 'DirectoryNotEmpty', 'rmdir of a directory with a file still open')
  await vfs.release('/bkt/c/new', fh)

  await vfs.unlink('/bkt/a/b/f')
  await vfs.rmdir('/bkt/a/b')
  await vfs.rmdir('/bkt/a')
  await failsWith(t, () => vfs.getattr('/bkt/a'), 'NotFound', 'removed')
  t.same(keysOf(store, 'bkt'), ['c/', 'c/new', 'file'])

  // Directories implied by keys (put through S3, no marker) behave as directories.
  await store.putObject('bkt', 'imp/deep/k.txt', 'x')
  t.equal((await vfs.getattr('/bkt/imp')).mode & S_IFMT, S_IFDIR, 'an implied directory')
  t.same((await vfs.readdir('/bkt/imp/deep')).names, ['k.txt'])
  await failsWith(t, () => vfs.rmdir('/bkt/imp'), 'DirectoryNotEmpty')
  const names = (await vfs.readdir('/bkt')).names.sort()
  t.same(names, ['c', 'file', 'imp'], 'readdir of the bucket: dirs and files, no .versions')
})

t.test('readdir shows files being written and hides .versions unless asked', async t => {
  const { vfs, store } = await setup(t)
  const fh = await vfs.create('/bkt/pending.txt', 0o644)
  await vfs.write(fh, Buffer.from('12345'), 5, 0)
  const r = await vfs.readdir('/bkt')
  t.same(r.names, ['pending.txt'], 'a file being written is listed before it is stored')
  t.equal(r.attrs[0].size, 5, 'with its current size')
  await vfs.release('/bkt/pending.txt', fh)
  t.same((await vfs.readdir('/bkt')).names, ['pending.txt'])
  t.ok((await vfs.readdir('/bkt/.versions')).names.includes('pending.txt'), '.versions is reachable by path')
  const shown = new Vfs(store, { showVersions: true })
  t.same((await shown.readdir('/bkt')).names, ['pending.txt', '.versions'], 'showVersions lists .versions')
})

// ---------------------------------------------------------------- renames

t.test('rename of a file, over an existing file', async t => {
  const { vfs, store } = await setup(t)
  await putFile(vfs, '/bkt/src.txt', 'source content')
  await putFile(vfs, '/bkt/dst.txt', 'old destination content, longer')
  await vfs.rename('/bkt/src.txt', '/bkt/dst.txt')
  t.same((await getFile(vfs, '/bkt/dst.txt')).toString(), 'source content', 'the destination has the source content')
  t.equal((await vfs.getattr('/bkt/dst.txt')).size, 14)
  await failsWith(t, () => vfs.getattr('/bkt/src.txt'), 'NotFound', 'the source is gone')
  t.same(keysOf(store, 'bkt'), ['dst.txt'])
  t.equal(store.headObject('bkt', 'dst.txt').etag, md5hex(Buffer.from('source content')), 'the ETag moved with the data')

  // Into a directory, to a new name, across buckets.
  await vfs.mkdir('/bkt/d', 0o755)
  await vfs.rename('/bkt/dst.txt', '/bkt/d/moved.txt')
  t.same((await getFile(vfs, '/bkt/d/moved.txt')).toString(), 'source content')
  await vfs.mkdir('/other', 0o755)
  await vfs.rename('/bkt/d/moved.txt', '/other/x.txt')
  t.same((await getFile(vfs, '/other/x.txt')).toString(), 'source content', 'across buckets')
  t.same(keysOf(store, 'bkt'), ['d/'])

  await vfs.rename('/other/x.txt', '/other/x.txt') // onto itself: nothing happens
  t.same(keysOf(store, 'other'), ['x.txt'])
  await failsWith(t, () => vfs.rename('/bkt/missing', '/bkt/y'), 'NotFound', 'rename of a missing file')
  await failsWith(t, () => vfs.rename('/other/x.txt', '/bkt/nodir/y'), 'NotFound', 'rename into a missing directory')
  await failsWith(t, () => vfs.rename('/other/x.txt', '/bkt/d'), 'IsDirectory', 'rename of a file onto a directory')
  await putFile(vfs, '/bkt/f', 'f')
  await failsWith(t, () => vfs.rename('/other/x.txt', '/bkt/f/y'), 'NotDirectory', 'rename below a file')
})

t.test('rename over a file where no bucket keeps history: the old data is freed, nothing else changes', async t => {
  const { vfs, store } = await setup(t)
  const a = noise(2 * MiB + 7, 'a')
  const b = noise(MiB + 3, 'b')
  await putFile(vfs, '/bkt/a.bin', a)
  await putFile(vfs, '/bkt/b.bin', b)
  await vfs.chmod('/bkt/a.bin', 0o600)
  const before = store.headObject('bkt', 'a.bin')
  await new Promise(resolve => setTimeout(resolve, 5))
  await vfs.rename('/bkt/a.bin', '/bkt/b.bin')
  const after = store.headObject('bkt', 'b.bin')
  t.match(after, { etag: before.etag, size: a.length, versionId: 'null', contentType: before.contentType }, 'the destination is the source')
  t.equal((await vfs.getattr('/bkt/b.bin')).mode & 0o777, 0o600, 'with its mode')
  t.ok(after.lastModifiedMs > before.lastModifiedMs, 'made now, as a copy would be')
  t.same(store.listObjectVersions('bkt', {}).versions.map(v => v.key), ['b.bin'], 'one version of one key is left')
  t.ok((await getFile(vfs, '/bkt/b.bin')).equals(a))
  t.match(store.gc({}), { chunksRemoved: 2 }, 'the replaced file\'s chunks are freed')
  t.equal((await store.fsck({ deep: true })).clean, true, 'reference counts are right')
  t.ok((await getFile(vfs, '/bkt/b.bin')).equals(a), 'and the moved data is intact')

  // Across buckets, into one that keeps history: a new version there, the source gone.
  await vfs.mkdir('/ver', 0o755)
  store.putBucketVersioning('ver', 'Enabled')
  await vfs.rename('/bkt/b.bin', '/ver/b.bin')
  t.not(store.headObject('ver', 'b.bin').versionId, 'null', 'a versioned bucket gives it a version ID')
  t.same(keysOf(store, 'bkt'), [])
  t.equal((await store.fsck({ deep: true })).clean, true)
})

t.test('pages the kernel cached do not survive a failed save moved away and back by renames', async t => {
  const { vfs } = await setup(t)
  await putFile(vfs, '/bkt/a.bin', 'first')
  const opened = async (p: string): Promise<boolean> => {
    const fh = await vfs.open(p, C.O_RDONLY)
    const keeps = vfs.keepsCache(fh)
    await vfs.release(p, fh)
    return keeps
  }
  const failedSave = async (p: string): Promise<void> => {
    await opened(p)
    const fh = await vfs.open(p, C.O_WRONLY)
    await vfs.write(fh, Buffer.from('SECOND'), 6, 0)
    const complete = WriteSession.prototype.complete
    WriteSession.prototype.complete = async function () { throw Object.assign(new Error('disk full (test)'), { code: 'ENOSPC' }) }
    try {
      await t.rejects(vfs.release(p, fh), 'the save fails')
    } finally {
      WriteSession.prototype.complete = complete
    }
  }
  await opened('/bkt/a.bin')
  t.equal(await opened('/bkt/a.bin'), true, 'unchanged since it was cached: the pages are kept')
  // In a bucket without history the rename moves the version itself, seq and all.
  await vfs.rename('/bkt/a.bin', '/bkt/c.bin')
  await failedSave('/bkt/c.bin')
  await vfs.rename('/bkt/c.bin', '/bkt/a.bin')
  t.equal(await opened('/bkt/a.bin'), false, 'back under its first name, the pages of the failed save are dropped')
  t.equal((await getFile(vfs, '/bkt/a.bin')).toString(), 'first', 'and the file is what was saved')

  await vfs.mkdir('/bkt/d', 0o755)
  await vfs.rename('/bkt/a.bin', '/bkt/d/a.bin')
  await opened('/bkt/d/a.bin')
  t.equal(await opened('/bkt/d/a.bin'), true)
  await vfs.rename('/bkt/d', '/bkt/e')
  await failedSave('/bkt/e/a.bin')
  await vfs.rename('/bkt/e', '/bkt/d')
  t.equal(await opened('/bkt/d/a.bin'), false, 'the same through renames of its directory')
  t.equal((await getFile(vfs, '/bkt/d/a.bin')).toString(), 'first')
})

t.test('a small file goes in with its version in one transaction; a completion that failed keeps its bytes', async t => {
  const { vfs, store } = await setup(t)
  const write = store.catalog.write.bind(store.catalog)
  let transactions = 0
  store.catalog.write = (fn => { transactions++; return write(fn) }) as typeof store.catalog.write
  t.teardown(() => { store.catalog.write = write })
  const text = 'a small file, stored inline\n'
  const fh = await vfs.create('/bkt/small.txt', 0o644)
  await vfs.write(fh, Buffer.from(text), text.length, 0)
  transactions = 0
  await vfs.release('/bkt/small.txt', fh)
  t.equal(transactions, 1, 'its close commits once: chunk and version together')
  t.equal((await getFile(vfs, '/bkt/small.txt')).toString(), text)
  t.equal(store.headObject('bkt', 'small.txt').etag, md5hex(Buffer.from(text)), 'with the MD5 streamed as it was written')

  // The completion fails (a full disk, say) after the chunk was taken from the buffers.
  const session = new WriteSession(store, new MemoryBudget(64 * MiB), 'bkt', 'again.txt', null, store.fieldsFor('again.txt', {}), false)
  await session.write(Buffer.from(text), 0)
  const commitVersion = store.commitVersion.bind(store)
  store.commitVersion = () => { throw Object.assign(new Error('disk full (test)'), { code: 'ENOSPC' }) }
  try {
    await t.rejects(session.complete(), 'the completion fails')
  } finally {
    store.commitVersion = commitVersion
  }
  t.equal((await session.read(0, 100)).toString(), text, 'the session still reads what was written')
  const prepare = store.content.prepareInline.bind(store.content)
  store.content.prepareInline = async () => { throw Object.assign(new Error('the reserve is reached (test)'), { code: 'NoSpace' }) }
  try {
    await t.rejects(session.complete(), 'a completion that fails while hashing its small chunks')
  } finally {
    store.content.prepareInline = prepare
  }
  t.equal((await session.read(0, 100)).toString(), text, 'keeps them too')
  const v = await session.complete()
  t.equal(v?.size, text.length, 'and a later completion stores it')
  t.equal((await getFile(vfs, '/bkt/again.txt')).toString(), text)
  t.equal(store.headObject('bkt', 'again.txt').etag, md5hex(Buffer.from(text)), 'with the right MD5')
  t.equal((await store.fsck({ deep: true })).clean, true, 'reference counts are right')
})

t.test('rename of a file that is being written', async t => {
  const { vfs, store } = await setup(t)
  const fh = await vfs.create('/bkt/tmp.part', 0o644)
  await vfs.write(fh, Buffer.from('downloaded'), 10, 0)
  await vfs.rename('/bkt/tmp.part', '/bkt/final.bin')
  await vfs.write(fh, Buffer.from('!'), 1, 10)
  t.equal((await vfs.getattr('/bkt/final.bin')).size, 11, 'the new name shows the open file')
  await failsWith(t, () => vfs.getattr('/bkt/tmp.part'), 'NotFound')
  await vfs.release('/bkt/final.bin', fh)
  t.same(keysOf(store, 'bkt'), ['final.bin'], 'the release stored it under the new name only')
  t.same((await getFile(vfs, '/bkt/final.bin')).toString(), 'downloaded!')
})

t.test('rename of a directory moves every key, copies no data', async t => {
  const { vfs, store } = await setup(t)
  await vfs.mkdir('/bkt/d', 0o755)
  await vfs.mkdir('/bkt/d/sub', 0o700)
  await vfs.mkdir('/bkt/d/sub/empty', 0o755)
  const x = noise(2 * MiB + 5, 'x')
  const y = noise(300 * KiB, 'y')
  await putFile(vfs, '/bkt/d/x.bin', x)
  await putFile(vfs, '/bkt/d/sub/y.bin', y)
  await putFile(vfs, '/bkt/d/sub/small', 'small')
  await putFile(vfs, '/bkt/dx', 'not under d/') // a sibling sharing the prefix 'd'
  const before = store.stats()
  await vfs.rename('/bkt/d', '/bkt/e')
  const after = store.stats()
  t.equal(after.storedBytes, before.storedBytes, 'no byte written')
  t.equal(after.chunks, before.chunks, 'no chunk written')
  t.same(keysOf(store, 'bkt'), ['dx', 'e/', 'e/sub/', 'e/sub/empty/', 'e/sub/small', 'e/sub/y.bin', 'e/x.bin'], 'every key moved, the sibling stayed')
  t.ok((await getFile(vfs, '/bkt/e/x.bin')).equals(x))
  t.ok((await getFile(vfs, '/bkt/e/sub/y.bin')).equals(y))
  t.equal((await vfs.getattr('/bkt/e/sub')).mode, S_IFDIR | 0o700, 'directory modes moved with their markers')
  await failsWith(t, () => vfs.getattr('/bkt/d'), 'NotFound', 'the old directory is gone')

  await failsWith(t, () => vfs.rename('/bkt/e', '/bkt/e/sub/e2'), 'InvalidArgument', 'rename of a directory into itself')
  await failsWith(t, () => vfs.rename('/bkt/e/sub', '/bkt/e/sub/empty/s'), 'InvalidArgument', 'rename of a directory into its child')
  await vfs.mkdir('/bkt/full', 0o755)
  await putFile(vfs, '/bkt/full/f', 'f')
  await failsWith(t, () => vfs.rename('/bkt/e', '/bkt/full'), 'DirectoryNotEmpty', 'rename of a directory onto a non-empty directory')
  await failsWith(t, () => vfs.rename('/bkt/e', '/bkt/dx'), 'NotDirectory', 'rename of a directory onto a file')
  await vfs.mkdir('/bkt/empty', 0o755)
  await vfs.rename('/bkt/e', '/bkt/empty')
  t.ok((await getFile(vfs, '/bkt/empty/x.bin')).equals(x), 'rename of a directory onto an empty directory replaces it')
  t.equal((await vfs.getattr('/bkt/empty')).mode, S_IFDIR | 0o755)

  // Across buckets, with a file open for writing inside.
  await vfs.mkdir('/two', 0o755)
  const fh = await vfs.create('/bkt/empty/open.txt', 0o644)
  await vfs.write(fh, Buffer.from('open'), 4, 0)
  await vfs.fsync(fh, false)
  const beforeCross = store.stats()
  await vfs.rename('/bkt/empty', '/two/moved')
  t.equal(store.stats().storedBytes, beforeCross.storedBytes, 'no data copied across buckets')
  t.equal(store.stats().chunks, beforeCross.chunks)
  await vfs.release('/two/moved/open.txt', fh)
  t.same(keysOf(store, 'two'), ['moved/', 'moved/open.txt', 'moved/sub/', 'moved/sub/empty/', 'moved/sub/small', 'moved/sub/y.bin', 'moved/x.bin'])
  t.same((await getFile(vfs, '/two/moved/open.txt')).toString(), 'open', 'the open file completed at its new place')
  t.same(keysOf(store, 'bkt'), ['dx', 'full/', 'full/f'])
  t.equal(store.stats().storedBytes, beforeCross.storedBytes, 'completing the moved open file stored nothing new')
})

t.test('a directory moves by the rows of its directories where no bucket keeps history, with the same outcome', async t => {
  const { vfs, store } = await setup(t)
  // Names past ASCII: the new keys are cut by characters, not bytes or UTF-16 units.
  await vfs.mkdir('/bkt/dïr😀', 0o710)
  await putFile(vfs, '/bkt/dïr😀/ä.txt', 'a')
  await vfs.mkdir('/bkt/dïr😀/ß', 0o755)
  await putFile(vfs, '/bkt/dïr😀/ß/🎉', 'party')
  await putFile(vfs, '/bkt/dïr😀x', 'beside') // shares the prefix, not under it
  // Counts the moves made in one set of statements (the outcome is the same either way).
  let inOne = 0
  const moveDir = store.catalog.moveDir.bind(store.catalog)
  store.catalog.moveDir = (...args: Parameters<typeof moveDir>) => { inOne++; moveDir(...args) }
  const fileCtime = (await vfs.getattr('/bkt/dïr😀/ä.txt')).ctimeMs
  await new Promise(resolve => setTimeout(resolve, 5))
  const renamedAt = Date.now()
  await vfs.rename('/bkt/dïr😀', '/bkt/ñew')
  t.equal(inOne, 1, 'moved by the rows of its directories')
  t.ok((await vfs.getattr('/bkt/ñew')).ctimeMs >= renamedAt, 'the renamed directory\'s ctime is the rename\'s')
  t.equal((await vfs.getattr('/bkt/ñew/ä.txt')).ctimeMs, fileCtime, 'a file in it keeps its ctime')
  t.same(keysOf(store, 'bkt'), ['dïr😀x', 'ñew/', 'ñew/ß/', 'ñew/ß/🎉', 'ñew/ä.txt'])
  t.equal((await getFile(vfs, '/bkt/ñew/ß/🎉')).toString(), 'party')
  t.equal((await vfs.getattr('/bkt/ñew')).mode, S_IFDIR | 0o710, 'the marker moved with its mode')
  t.equal(store.headObject('bkt', 'ñew/ä.txt').size, 1)
  t.same(store.listObjects('bkt', { prefix: 'ñew/', delimiter: '/' }).contents.map(v => v.key), ['ñew/', 'ñew/ä.txt'], 'listed at the new place')
  t.equal((await store.fsck({ deep: true })).clean, true, 'reference counts are right')

  // A directory implied by its keys (put by the CLI) onto an empty one made on the mount:
  // as a key-by-key move, the target keeps its marker, since nothing replaces it.
  await store.putObject('bkt', 'implied/k', Buffer.from('k'))
  await vfs.mkdir('/bkt/target', 0o700)
  await vfs.rename('/bkt/implied', '/bkt/target')
  t.equal(inOne, 2, 'so is this one')
  t.same(keysOf(store, 'bkt', 'target'), ['target/', 'target/k'])
  t.equal((await vfs.getattr('/bkt/target')).mode, S_IFDIR | 0o700)
  t.same(keysOf(store, 'bkt', 'implied'), [])

  // A key that would grow past 1,024 bytes: refused, nothing moved.
  const long = 'l'.repeat(1000)
  await store.putObject('bkt', `s/${long}`, Buffer.from('x'))
  await failsWith(t, () => vfs.rename('/bkt/s', '/bkt/' + 'n'.repeat(40)), 'KeyTooLong')
  t.same(keysOf(store, 'bkt', 's/'), [`s/${long}`], 'every key stayed')
  t.equal(inOne, 2, 'left to the key-by-key move, which names the key')

  // Where a bucket keeps history, each key gets a new version and a delete marker.
  await vfs.mkdir('/hist', 0o755)
  await enableVersioning(vfs, 'hist')
  await vfs.mkdir('/hist/a', 0o755)
  await putFile(vfs, '/hist/a/f', 'one')
  await vfs.rename('/hist/a', '/hist/b')
  t.equal(inOne, 2, 'key by key')
  t.same(keysOf(store, 'hist'), ['b/', 'b/f'])
  t.equal(store.listObjectVersions('hist', { prefix: 'a/f' }).versions.length, 2, 'the old key keeps its version behind a delete marker')
  t.equal((await store.fsck({ deep: true })).clean, true)
})

t.test('an open file libfuse hid in a directory moves with the directory', async t => {
  const { vfs, store } = await setup(t)
  await vfs.mkdir('/bkt/D', 0o755)
  await putFile(vfs, '/bkt/D/f', 'kept open')
  const fh = await vfs.open('/bkt/D/f', C.O_RDONLY)
  // libfuse hides a file an unlink would take from an open handle under this name.
  const hidden = '.fuse_hidden0000000a00000001'
  await vfs.rename('/bkt/D/f', `/bkt/D/${hidden}`)
  await vfs.rename('/bkt/D', '/bkt/E')
  t.equal((await vfs.getattr(`/bkt/E/${hidden}`)).size, 9, 'its hidden name moved with the directory')
  t.same(await readAt(vfs, fh, 0, 100), Buffer.from('kept open'), 'the handle reads on')
  // At the last close libfuse unlinks the hidden name by its path under the new name.
  await vfs.unlink(`/bkt/E/${hidden}`)
  await failsWith(t, () => vfs.getattr(`/bkt/E/${hidden}`), 'NotFound')
  await vfs.release(`/bkt/E/${hidden}`, fh)
  t.same(keysOf(store, 'bkt'), ['E/'], 'nothing of it is stored')
})

// ---------------------------------------------------------------- links, nodes

t.test('symlink and readlink; hard links and device nodes are refused', async t => {
  const { vfs, store } = await setup(t)
  await vfs.symlink('../target/file.txt', '/bkt/ln')
  const a = await vfs.getattr('/bkt/ln')
  t.equal(a.mode & S_IFMT, S_IFLNK, 'a symlink')
  t.equal(a.size, Buffer.byteLength('../target/file.txt'))
  t.equal(await vfs.readlink('/bkt/ln'), '../target/file.txt')
  t.same((await vfs.readdir('/bkt')).names, ['ln'])
  await failsWith(t, () => vfs.symlink('x', '/bkt/ln'), 'Exists', 'symlink over an existing name')
  await putFile(vfs, '/bkt/f', 'x')
  await failsWith(t, () => vfs.readlink('/bkt/f'), 'InvalidArgument', 'readlink of a regular file')
  await failsWith(t, () => vfs.readlink('/bkt/none'), 'NotFound', 'readlink of a missing name')

  await failsWith(t, () => vfs.link('/bkt/f', '/bkt/hard'), 'NotPermitted', 'link')
  await failsWith(t, () => vfs.mknod('/bkt/fifo', 0o010644, 0), 'NotPermitted', 'mknod of a FIFO')
  await failsWith(t, () => vfs.mknod('/bkt/chr', 0o020644, 0x0103), 'NotPermitted', 'mknod of a character device')
  await failsWith(t, () => vfs.mknod('/bkt/sock', 0o140644, 0), 'NotPermitted', 'mknod of a socket')
  t.same(keysOf(store, 'bkt'), ['f', 'ln'], 'nothing was stored for the refusals')
  await vfs.mknod('/bkt/plain', S_IFREG | 0o600, 0)
  const p = await vfs.getattr('/bkt/plain')
  t.equal(p.mode, S_IFREG | 0o600, 'mknod of a regular file creates an empty file')
  t.equal(p.size, 0)
})

// ---------------------------------------------------------------- attributes

t.test('chmod, chown, utimens are persisted and make no version', async t => {
  const env = await setup(t)
  await enableVersioning(env.vfs, 'bkt')
  t.equal(env.store.getBucketVersioning('bkt'), 'Enabled', 'setxattr user.s3.versioning enabled versioning')
  t.equal((await env.vfs.getxattr('/bkt', 'user.s3.versioning')).toString(), 'Enabled')
  await putFile(env.vfs, '/bkt/f.txt', 'content')
  await env.vfs.mkdir('/bkt/d', 0o755)
  const count = (): number => env.store.versionsOf('bkt', 'f.txt').length
  t.equal(count(), 1)

  await env.vfs.chmod('/bkt/f.txt', 0o600)
  t.equal((await env.vfs.getattr('/bkt/f.txt')).mode, S_IFREG | 0o600, 'chmod')
  await env.vfs.chown('/bkt/f.txt', 1234, 5678)
  t.match(await env.vfs.getattr('/bkt/f.txt'), { uid: 1234, gid: 5678 }, 'chown')
  await env.vfs.chown('/bkt/f.txt', 0xffffffff, 4321)
  t.match(await env.vfs.getattr('/bkt/f.txt'), { uid: 1234, gid: 4321 }, 'chown with uid -1 keeps the uid')
  const mtime = Date.UTC(2001, 2, 3, 4, 5, 6)
  await env.vfs.utimens('/bkt/f.txt', mtime, mtime)
  t.equal((await env.vfs.getattr('/bkt/f.txt')).mtimeMs, mtime, 'utimens')
  t.equal(count(), 1, 'no new version')
  await env.vfs.chmod('/bkt/d', 0o700)
  t.equal((await env.vfs.getattr('/bkt/d')).mode, S_IFDIR | 0o700, 'chmod of a directory')
  await env.vfs.chmod('/bkt', 0o711)
  t.equal((await env.vfs.getattr('/bkt')).mode, S_IFDIR | 0o711, 'chmod of a bucket')

  reopen(env)
  const a = await env.vfs.getattr('/bkt/f.txt')
  t.match(a, { mode: S_IFREG | 0o600, uid: 1234, gid: 4321, mtimeMs: mtime, size: 7 }, 'all of it persisted')
  t.equal((await env.vfs.getattr('/bkt/d')).mode, S_IFDIR | 0o700)
  t.equal((await env.vfs.getattr('/bkt')).mode, S_IFDIR | 0o711)
  t.equal(env.store.versionsOf('bkt', 'f.txt').length, 1, 'still one version')
  t.same(await getFile(env.vfs, '/bkt/f.txt'), Buffer.from('content'))

  // Attributes set while the file is open for writing survive its release.
  const fh = await env.vfs.open('/bkt/f.txt', C.O_WRONLY)
  await env.vfs.write(fh, Buffer.from('C'), 1, 0)
  await env.vfs.chmod('/bkt/f.txt', 0o640)
  await env.vfs.release('/bkt/f.txt', fh)
  t.equal((await env.vfs.getattr('/bkt/f.txt')).mode, S_IFREG | 0o640, 'chmod during a write session')
  t.equal(env.store.versionsOf('bkt', 'f.txt').length, 2, 'the write made one version')
  // cp -a order: write, close, then utimens.
  await putFile(env.vfs, '/bkt/g.txt', 'g')
  await env.vfs.utimens('/bkt/g.txt', mtime, mtime)
  t.equal((await env.vfs.getattr('/bkt/g.txt')).mtimeMs, mtime, 'utimens after close sticks')

  await failsWith(t, () => env.vfs.chmod('/bkt/none', 0o600), 'NotFound', 'chmod of a missing file')
  await failsWith(t, () => env.vfs.chmod('/', 0o700), 'NotPermitted', 'chmod of the root')
})

t.test('chmod, chown and utimens of a stored file answer its attributes after, with one lookup of it', async t => {
  const env = await setup(t)
  await putFile(env.vfs, '/bkt/f.txt', 'content')
  await env.vfs.mkdir('/bkt/d', 0o755)
  const looked = countCalls(env.store.catalog, 'liveStat')
  const mtime = Date.UTC(2002, 3, 4, 5, 6, 7)
  for (const [what, call] of [
    ['chmod', () => env.vfs.chmod('/bkt/f.txt', 0o640)],
    ['chown', () => env.vfs.chown('/bkt/f.txt', 77, 88)],
    ['utimens', () => env.vfs.utimens('/bkt/f.txt', mtime, mtime)]
  ] as const) {
    const before = looked()
    const answered = call()
    t.notOk(answered instanceof Promise, `${what} answers at once`)
    const lookups = looked() - before
    t.equal(lookups, 1, `${what} looked the key's live version up once`)
    t.same(answered, await env.vfs.getattr('/bkt/f.txt'), `${what} answers what getattr finds after it`)
  }
  t.match(await env.vfs.getattr('/bkt/f.txt'), { mode: S_IFREG | 0o640, uid: 77, gid: 88, mtimeMs: mtime, size: 7 }, 'all three changes hold')
  t.equal(await env.vfs.chmod('/bkt/d', 0o700), undefined, 'a directory\'s are not answered')
  const fh = await env.vfs.open('/bkt/f.txt', C.O_WRONLY)
  await env.vfs.write(fh, Buffer.from('CONTENT!'), 8, 0)
  t.equal(env.vfs.chmod('/bkt/f.txt', 0o600), undefined, 'nor those of a file being written (its session answers)')
  t.match(await env.vfs.getattr('/bkt/f.txt'), { mode: S_IFREG | 0o600, size: 8 })
  await env.vfs.release('/bkt/f.txt', fh)
  t.match(await env.vfs.getattr('/bkt/f.txt'), { mode: S_IFREG | 0o600, size: 8 }, 'and the version its close makes has the mode')
})

t.test('attributes set on a file open for reading, and on a new file before its close', async t => {
  const env = await setup(t)
  await putFile(env.vfs, '/bkt/r.txt', 'read me')
  // rsync's order: its reader opens the written file and fchmods it. The handle's
  // version gets the change too: after an unlink it is all the handle has.
  const fh = await env.vfs.open('/bkt/r.txt', C.O_RDONLY)
  await env.vfs.chmod('/bkt/r.txt', 0o604)
  t.equal((await env.vfs.fgetattr('/bkt/r.txt', fh)).mode, S_IFREG | 0o604, 'seen through the handle')
  env.vfs.unlink('/bkt/r.txt')
  t.equal((await env.vfs.fgetattr('/bkt/r.txt', fh)).mode, S_IFREG | 0o604, 'and through it after an unlink')
  await env.vfs.release('/bkt/r.txt', fh)
  // A file made by create has no version until its close: that version has the mode.
  const nf = await env.vfs.create('/bkt/new.txt', 0o600)
  await env.vfs.chmod('/bkt/new.txt', 0o640)
  t.equal(env.store.liveVersion('bkt', 'new.txt'), undefined, 'no version before the close')
  await env.vfs.write(nf, Buffer.from('n'), 1, 0)
  await env.vfs.release('/bkt/new.txt', nf)
  t.equal(env.store.headObject('bkt', 'new.txt').posix.mode, S_IFREG | 0o640, 'the close made it with the mode')
  t.equal(env.store.versionsOf('bkt', 'new.txt').length, 1, 'one version')
})

t.test('lookups see another process\'s changes, and the mount\'s own, at once', async t => {
  const env = await setup(t)
  const cli = Store.open(env.dir) // another process's connection
  t.teardown(() => { cli.close() })
  await failsWith(t, () => env.vfs.getattr('/bkt/k.txt'), 'NotFound', 'missing at first')
  await putFile(env.vfs, '/bkt/own.txt', 'own')
  t.equal((await env.vfs.getattr('/bkt/own.txt')).size, 3, 'the mount\'s own save shows at once')
  await failsWith(t, () => env.vfs.getattr('/bkt/k.txt'), 'NotFound', 'missing still')
  await cli.putObject('bkt', 'k.txt', Buffer.from('from the cli'))
  await failsWith(t, () => env.vfs.create('/bkt/k.txt', 0o644), 'Stale', 'a create there now is refused, never empties it')
  t.equal((await env.vfs.getattr('/bkt/k.txt')).size, 12, 'a lookup sees it')
  await cli.putObject('bkt', 'k.txt', Buffer.from('longer, from the cli'))
  t.equal((await cli.getObject('bkt', 'k.txt')).body.toString(), 'longer, from the cli')
  t.equal((await env.store.getObject('bkt', 'k.txt')).body.length, 20, 'the S3 API reads the new version')
  t.equal((await env.vfs.getattr('/bkt/k.txt')).size, 20, 'and so does the mount')
  await env.vfs.chmod('/bkt/k.txt', 0o600)
  t.equal((await env.vfs.getattr('/bkt/k.txt')).mode, S_IFREG | 0o600, 'the mount\'s own chmod shows at once')
})

t.test('xattrs: user metadata and the user.s3.* system attributes', async t => {
  const env = await setup(t)
  const { vfs, store } = env
  await enableVersioning(vfs, 'bkt')
  await putFile(vfs, '/bkt/f.txt', 'hello')
  await vfs.setxattr('/bkt/f.txt', 'user.color', Buffer.from('blue'), 0)
  t.equal((await vfs.getxattr('/bkt/f.txt', 'user.color')).toString(), 'blue', 'user.* round trip')
  t.same(store.headObject('bkt', 'f.txt').userMeta, { color: 'blue' }, 'it is the object\'s user metadata')
  const names = await vfs.listxattr('/bkt/f.txt')
  for (const n of ['user.color', 'user.s3.etag', 'user.s3.version_id', 'user.s3.content_type', 'user.s3.last_modified']) {
    t.ok(names.includes(n), `listxattr has ${n}`)
  }
  t.equal((await vfs.getxattr('/bkt/f.txt', 'user.s3.etag')).toString(), md5hex(Buffer.from('hello')), 'user.s3.etag')
  t.equal((await vfs.getxattr('/bkt/f.txt', 'user.s3.version_id')).toString(), store.headObject('bkt', 'f.txt').versionId)
  t.equal((await vfs.getxattr('/bkt/f.txt', 'user.s3.content_type')).toString(), 'text/plain')

  await failsWith(t, () => vfs.setxattr('/bkt/f.txt', 'user.color', Buffer.from('red'), XATTR_CREATE), 'Exists', 'XATTR_CREATE of an existing name')
  await failsWith(t, () => vfs.setxattr('/bkt/f.txt', 'user.size', Buffer.from('1'), XATTR_REPLACE), 'NoAttribute', 'XATTR_REPLACE of a missing name')
  await vfs.setxattr('/bkt/f.txt', 'user.color', Buffer.from('red'), XATTR_REPLACE)
  t.equal((await vfs.getxattr('/bkt/f.txt', 'user.color')).toString(), 'red')
  await failsWith(t, () => vfs.setxattr('/bkt/f.txt', 'user.s3.etag', Buffer.from('x'), 0), 'NotPermitted', 'user.s3.etag is read-only')
  await failsWith(t, () => vfs.setxattr('/bkt/f.txt', 'user.s3.version_id', Buffer.from('x'), 0), 'NotPermitted', 'user.s3.version_id is read-only')
  await failsWith(t, () => vfs.getxattr('/bkt/f.txt', 'security.selinux'), 'NotSupported', 'security.* get')
  await failsWith(t, () => vfs.setxattr('/bkt/f.txt', 'security.capability', Buffer.from('x'), 0), 'NotSupported', 'security.* set')
  await failsWith(t, () => vfs.setxattr('/bkt/f.txt', 'trusted.x', Buffer.from('x'), 0), 'NotSupported', 'trusted.* set')
  await failsWith(t, () => vfs.getxattr('/bkt/f.txt', 'user.none'), 'NoAttribute', 'a missing user attribute')
  await failsWith(t, () => vfs.setxattr('/bkt/f.txt', 'user.big', Buffer.alloc(2048, 'v'), 0), 'MetadataTooLarge', 'user metadata over 2048 bytes')
  await vfs.setxattr('/bkt/f.txt', 'user.fill', Buffer.alloc(2048 - 'color'.length - 'red'.length - 'fill'.length, 'v'), 0)
  t.pass('user metadata of exactly 2048 bytes is accepted')
  await vfs.removexattr('/bkt/f.txt', 'user.fill')

  await vfs.setxattr('/bkt/f.txt', 'user.s3.content_type', Buffer.from('application/x-custom'), 0)
  t.equal((await vfs.getxattr('/bkt/f.txt', 'user.s3.content_type')).toString(), 'application/x-custom', 'user.s3.content_type is settable')
  t.equal(store.headObject('bkt', 'f.txt').contentType, 'application/x-custom')

  await vfs.removexattr('/bkt/f.txt', 'user.color')
  await failsWith(t, () => vfs.getxattr('/bkt/f.txt', 'user.color'), 'NoAttribute', 'removed')
  await failsWith(t, () => vfs.removexattr('/bkt/f.txt', 'user.color'), 'NoAttribute', 'removexattr of a missing name')
  await failsWith(t, () => vfs.removexattr('/bkt/f.txt', 'user.s3.etag'), 'NotPermitted', 'removexattr of a system attribute')
  t.equal(store.versionsOf('bkt', 'f.txt').length, 1, 'xattr changes make no version')

  // On a directory, and set while a file is open for writing.
  await vfs.mkdir('/bkt/d', 0o755)
  await vfs.setxattr('/bkt/d', 'user.tag', Buffer.from('dir'), 0)
  t.equal((await vfs.getxattr('/bkt/d', 'user.tag')).toString(), 'dir', 'a directory has user metadata too')
  const fh = await vfs.create('/bkt/new.bin', 0o644)
  await vfs.setxattr('/bkt/new.bin', 'user.origin', Buffer.from('test'), 0)
  t.equal((await vfs.getxattr('/bkt/new.bin', 'user.origin')).toString(), 'test', 'xattr on a file being written')
  await vfs.release('/bkt/new.bin', fh)
  t.same(store.headObject('bkt', 'new.bin').userMeta, { origin: 'test' }, 'stored with the file')

  reopen(env)
  t.equal((await env.vfs.getxattr('/bkt/f.txt', 'user.s3.content_type')).toString(), 'application/x-custom', 'persisted')
  t.equal((await env.vfs.getxattr('/bkt/d', 'user.tag')).toString(), 'dir')
  await failsWith(t, () => env.vfs.setxattr('/bkt', 'user.s3.versioning', Buffer.from('Unversioned'), 0), 'IllegalVersioningConfiguration', 'versioning never goes back to Unversioned')
  await env.vfs.setxattr('/bkt', 'user.s3.versioning', Buffer.from('Suspended'), 0)
  t.equal(env.store.getBucketVersioning('bkt'), 'Suspended')
})

t.test('statfs reports the store disk', async t => {
  const { vfs } = await setup(t)
  const s = await vfs.statfs('/')
  for (const k of ['bsize', 'frsize', 'blocks', 'bfree', 'bavail', 'files', 'namemax'] as const) {
    t.ok(Number.isFinite(s[k]) && s[k] > 0, `${k} is positive (${s[k]})`)
  }
  t.ok(s.bavail <= s.blocks && s.bfree <= s.blocks, 'free blocks are within the total')
  t.equal(s.namemax, 255)
  const other = await vfs.statfs('/bkt/any')
  // Free space moves with whatever else writes to the disk; the disk itself does not.
  t.same([other.bsize, other.blocks, other.namemax], [s.bsize, s.blocks, s.namemax], 'the same disk for any path')
})

t.test('name and key length limits', async t => {
  const { vfs, store } = await setup(t)
  const n255 = 'n'.repeat(255)
  await putFile(vfs, '/bkt/' + n255, 'x')
  t.same(keysOf(store, 'bkt'), [n255], 'a 255-byte name is fine')
  await failsWith(t, () => vfs.create('/bkt/' + 'n'.repeat(256), 0o644), 'NameTooLong', 'a 256-byte name')
  await failsWith(t, () => vfs.mkdir('/bkt/' + 'é'.repeat(128), 0o755), 'NameTooLong', 'a 256-byte name in 2-byte characters')
  await failsWith(t, () => vfs.getattr('/bkt/' + 'n'.repeat(256)), 'NameTooLong', 'a lookup of a 256-byte name')

  // Keys: four 200-byte directories, then names up to 1024 bytes in all.
  let dir = '/bkt'
  for (const c of 'abcd') {
    dir += '/' + c.repeat(200)
    await vfs.mkdir(dir, 0o755)
  }
  const base = dir.slice('/bkt/'.length) // 803 bytes
  t.equal(Buffer.byteLength(base), 803)
  await putFile(vfs, `${dir}/${'k'.repeat(1024 - 804)}`, 'x')
  t.ok(keysOf(store, 'bkt').includes(`${base}/${'k'.repeat(220)}`), 'a key of exactly 1024 bytes is fine')
  await failsWith(t, () => vfs.create(`${dir}/${'k'.repeat(221)}`, 0o644), 'KeyTooLong', 'a key of 1025 bytes')
  await failsWith(t, () => vfs.mkdir(`${dir}/${'k'.repeat(220)}x`, 0o755), 'KeyTooLong', 'mkdir of a key over 1024 bytes')
  await failsWith(t, () => vfs.mkdir(`${dir}/${'m'.repeat(220)}`, 0o755), 'KeyTooLong', 'mkdir whose marker key would be 1025 bytes')
  await putFile(vfs, '/bkt/short', 'x')
  await failsWith(t, () => vfs.rename('/bkt/short', `${dir}/${'k'.repeat(221)}`), 'KeyTooLong', 'rename to a key over 1024 bytes')
  await vfs.mkdir('/bkt/p', 0o755)
  await vfs.mkdir('/bkt/p/' + 'q'.repeat(250), 0o755)
  await putFile(vfs, `/bkt/p/${'q'.repeat(250)}/f`, 'x')
  await failsWith(t, () => vfs.rename('/bkt/p', `${dir}/${'r'.repeat(200)}`), 'KeyTooLong', 'rename of a directory whose keys would grow past 1024 bytes')
  t.ok(keysOf(store, 'bkt').includes(`p/${'q'.repeat(250)}/f`), 'the refused directory rename moved nothing')
})

t.test('the .versions tree is read-only (EROFS)', async t => {
  const { vfs, store } = await setup(t)
  await enableVersioning(vfs, 'bkt')
  await putFile(vfs, '/bkt/doc.txt', 'v1')
  await putFile(vfs, '/bkt/doc.txt', 'v2')
  const list = await vfs.readdir('/bkt/.versions/doc.txt')
  t.equal(list.names.length, 2, 'two versions listed')
  t.ok(list.names.every(n => n.endsWith('.txt')), 'they keep the extension')
  const first = `/bkt/.versions/doc.txt/${list.names[0]}`
  t.same(await getFile(vfs, first), Buffer.from('v1'), 'the oldest version first, readable')
  const vdir = '/bkt/.versions/doc.txt'

  await failsWith(t, () => vfs.create(`${vdir}/new.txt`, 0o644), 'ReadOnly', 'create under .versions')
  await failsWith(t, () => vfs.create('/bkt/.versions/new.txt', 0o644), 'ReadOnly', 'create in .versions')
  await failsWith(t, () => vfs.mknod(`${vdir}/n`, S_IFREG | 0o644, 0), 'ReadOnly', 'mknod under .versions')
  await failsWith(t, () => vfs.mkdir(`${vdir}/d`, 0o755), 'ReadOnly', 'mkdir under .versions')
  await failsWith(t, () => vfs.mkdir('/bkt/.versions', 0o755), 'ReadOnly', 'mkdir of .versions')
  await failsWith(t, () => vfs.open(first, C.O_WRONLY), 'ReadOnly', 'open of a version for writing')
  await failsWith(t, () => vfs.open(first, C.O_RDONLY | C.O_TRUNC), 'ReadOnly', 'open of a version with O_TRUNC')
  await failsWith(t, () => vfs.truncate(first, 0), 'ReadOnly', 'truncate of a version')
  await failsWith(t, () => vfs.unlink(first), 'ReadOnly', 'unlink of a version')
  await failsWith(t, () => vfs.rmdir(vdir), 'ReadOnly', 'rmdir under .versions')
  await failsWith(t, () => vfs.rename(first, '/bkt/restored.txt'), 'ReadOnly', 'rename out of .versions')
  await failsWith(t, () => vfs.rename('/bkt/doc.txt', `${vdir}/x.txt`), 'ReadOnly', 'rename into .versions')
  await failsWith(t, () => vfs.symlink('x', `${vdir}/ln`), 'ReadOnly', 'symlink under .versions')
  await failsWith(t, () => vfs.chmod(first, 0o777), 'ReadOnly', 'chmod of a version')
  await failsWith(t, () => vfs.utimens(first, 0, 0), 'ReadOnly', 'utimens of a version')
  await failsWith(t, () => vfs.setxattr(first, 'user.x', Buffer.from('x'), 0), 'ReadOnly', 'setxattr of a version')
  await failsWith(t, () => vfs.removexattr(first, 'user.x'), 'ReadOnly', 'removexattr of a version')
  t.equal(store.versionsOf('bkt', 'doc.txt').length, 2, 'history unchanged')
  t.same(keysOf(store, 'bkt'), ['doc.txt'], 'nothing stored')
})

// ---------------------------------------------------------------- write sessions

t.test('two handles of one file share one session', async t => {
  const { vfs, store } = await setup(t)
  const a = await vfs.create('/bkt/shared.txt', 0o644)
  const b = await vfs.open('/bkt/shared.txt', C.O_RDWR)
  await vfs.write(a, Buffer.from('abc'), 3, 0)
  t.same(await readAt(vfs, b, 0, 10), Buffer.from('abc'), 'b reads what a wrote')
  t.equal((await vfs.fgetattr('/bkt/shared.txt', b)).size, 3, 'b sees the size')
  await vfs.write(b, Buffer.from('def'), 3, 3)
  t.same(await readAt(vfs, a, 0, 10), Buffer.from('abcdef'), 'a reads what b wrote')
  t.equal(store.liveVersion('bkt', 'shared.txt'), undefined, 'nothing is stored before the last close')
  await vfs.flush(a)
  await vfs.release('/bkt/shared.txt', a)
  await vfs.write(b, Buffer.from('g'), 1, 6)
  await vfs.flush(b)
  await vfs.release('/bkt/shared.txt', b)
  t.same(await getFile(vfs, '/bkt/shared.txt'), Buffer.from('abcdefg'), 'the last release stored all of it')
})

t.test('a reader opened before the writer sees the new data', async t => {
  const { vfs, store } = await setup(t)
  await putFile(vfs, '/bkt/f.txt', 'old content')
  const r = await vfs.open('/bkt/f.txt', C.O_RDONLY)
  t.same(await readAt(vfs, r, 0, 100), Buffer.from('old content'))
  const w = await vfs.open('/bkt/f.txt', C.O_WRONLY)
  await vfs.write(w, Buffer.from('NEW'), 3, 0)
  await vfs.write(w, Buffer.from(' and more'), 9, 11)
  t.same(await readAt(vfs, r, 0, 100), Buffer.from('NEW content and more'), 'the reader sees the writes and the size')
  await vfs.flush(w)
  await vfs.release('/bkt/f.txt', w)
  t.same(await readAt(vfs, r, 0, 100), Buffer.from('NEW content and more'), 'and still after the writer closed')
  await vfs.release('/bkt/f.txt', r)
  t.same(store.headObject('bkt', 'f.txt').size, 20)
  t.same(await getFile(vfs, '/bkt/f.txt'), Buffer.from('NEW content and more'))
})

t.test('a save makes exactly one version; nothing written makes none', async t => {
  const { vfs, store } = await setup(t)
  await enableVersioning(vfs, 'bkt')
  const count = (): number => store.versionsOf('bkt', 'f.bin').length
  await putFile(vfs, '/bkt/f.bin', noise(3 * MiB, 'v1'))
  t.equal(count(), 1, 'create + write + close: one version')

  let fh = await vfs.open('/bkt/f.bin', C.O_RDWR)
  await vfs.write(fh, Buffer.from('x'), 1, 10)
  await vfs.write(fh, Buffer.from('y'), 1, 2 * MiB)
  await vfs.fsync(fh, false)
  await vfs.write(fh, Buffer.from('z'), 1, 20)
  await vfs.flush(fh)
  await vfs.release('/bkt/f.bin', fh)
  t.equal(count(), 2, 'open + writes + fsync + close: one more version')

  fh = await vfs.open('/bkt/f.bin', C.O_RDWR)
  await vfs.flush(fh)
  await vfs.release('/bkt/f.bin', fh)
  fh = await vfs.open('/bkt/f.bin', C.O_WRONLY)
  await vfs.fsync(fh, true)
  await vfs.release('/bkt/f.bin', fh)
  t.equal(count(), 2, 'open for writing without writing: no version')
  t.equal(store.listMultipartUploads('bkt').length, 0, 'and no upload left behind')

  // Two writers with unsaved changes: the first close only seals; the last writer's close saves.
  const a = await vfs.open('/bkt/f.bin', C.O_WRONLY)
  const b = await vfs.open('/bkt/f.bin', C.O_WRONLY)
  await vfs.write(a, Buffer.from('1'), 1, 0)
  await vfs.write(b, Buffer.from('2'), 1, 1)
  await vfs.flush(a)
  await vfs.release('/bkt/f.bin', a)
  t.equal(count(), 2, 'a close while another writer has unsaved changes makes no version')
  await vfs.flush(b)
  t.equal(count(), 3, 'the last writer\'s close makes one version, before close returns')
  await vfs.release('/bkt/f.bin', b)
  t.equal(count(), 3, 'and the release no other')
  const data = await getFile(vfs, '/bkt/f.bin')
  t.same(data.subarray(0, 2), Buffer.from('12'))

  // A shell's open, dup2, close: the descriptor closed before any write makes no version.
  const sh = await vfs.open('/bkt/f.bin', C.O_WRONLY | C.O_TRUNC)
  await vfs.flush(sh)
  t.equal(count(), 3, 'a close before any write (dup2) makes no version, not even an empty one')
  await vfs.write(sh, Buffer.from('echo\n'), 5, 0)
  await vfs.flush(sh)
  t.equal(count(), 4, 'the close that ends the save makes exactly one')
  await vfs.release('/bkt/f.bin', sh)
  t.equal(count(), 4, 'and the release no other')
  t.same((await getFile(vfs, '/bkt/f.bin')).toString(), 'echo\n')

  await putFile(vfs, '/bkt/empty', '')
  t.equal(store.versionsOf('bkt', 'empty').length, 1, 'creating an empty file makes its one version')
  t.equal(store.headObject('bkt', 'empty').size, 0)
})

t.test('unlink while open: the handle keeps its data, nothing is stored', async t => {
  const { vfs, store } = await setup(t)
  // A file being written, unlinked before its release.
  const fh = await vfs.create('/bkt/tmp.bin', 0o600)
  const data = noise(2 * MiB + 100, 'tmp')
  await writeAll(vfs, fh, data)
  await vfs.fsync(fh, false)
  await vfs.unlink('/bkt/tmp.bin')
  await failsWith(t, () => vfs.getattr('/bkt/tmp.bin'), 'NotFound', 'the name is gone at once')
  t.same((await vfs.readdir('/bkt')).names, [], 'and not listed')
  t.ok((await readThrough(vfs, fh)).equals(data), 'reads through the open handle still work')
  t.equal((await vfs.fgetattr('/bkt/tmp.bin', fh)).size, data.length, 'fgetattr too')
  await vfs.write(fh, Buffer.from('more'), 4, data.length)
  await vfs.release('/bkt/tmp.bin', fh)
  t.equal(store.liveVersion('bkt', 'tmp.bin'), undefined, 'nothing stored after the release')
  t.equal(store.versionsOf('bkt', 'tmp.bin').length, 0, 'no version at all')
  t.equal(store.listMultipartUploads().length, 0, 'the fsynced upload is gone')

  // A stored file open for reading, unlinked, then read.
  const stored = noise(300 * KiB, 'stored')
  await putFile(vfs, '/bkt/kept.bin', stored)
  const r = await vfs.open('/bkt/kept.bin', C.O_RDONLY)
  await vfs.unlink('/bkt/kept.bin')
  t.ok((await readThrough(vfs, r)).equals(stored), 'a reader of an unlinked stored file still reads its bytes')
  await vfs.release('/bkt/kept.bin', r)
  t.equal(store.liveVersion('bkt', 'kept.bin'), undefined)

  // The same when the name is replaced by a rename (the editor's save pattern).
  await putFile(vfs, '/bkt/doc.txt', stored)
  const r2 = await vfs.open('/bkt/doc.txt', C.O_RDONLY)
  await putFile(vfs, '/bkt/doc.txt.tmp', 'new version')
  await vfs.rename('/bkt/doc.txt.tmp', '/bkt/doc.txt')
  t.ok((await readThrough(vfs, r2)).equals(stored), 'a reader of a file replaced by rename still reads the old bytes')
  await vfs.release('/bkt/doc.txt', r2)
  t.same((await getFile(vfs, '/bkt/doc.txt')).toString(), 'new version')

  // libfuse 2 unlinks an open file by renaming it to .fuse_hidden<id>, and unlinks that at release.
  await putFile(vfs, '/bkt/lib.bin', stored)
  const r3 = await vfs.open('/bkt/lib.bin', C.O_RDONLY)
  const hidden = '/bkt/.fuse_hidden0000000300000001'
  await vfs.rename('/bkt/lib.bin', hidden)
  await failsWith(t, () => vfs.getattr('/bkt/lib.bin'), 'NotFound', 'libfuse\'s hiding rename: the name is gone')
  t.same((await vfs.readdir('/bkt')).names, ['doc.txt'], 'and the hidden name is not listed')
  await new Promise(resolve => setTimeout(resolve, 400)) // the reader reads a while after the rm
  t.ok((await readThrough(vfs, r3)).equals(stored), 'a reader of a file unlinked through libfuse still reads its bytes later')
  await vfs.release(hidden, r3)
  await vfs.unlink(hidden)
  t.same(keysOf(store, 'bkt'), ['doc.txt'], 'nothing of it is stored')

  // A writer whose file is unlinked keeps reading and writing; nothing is stored.
  const w = await vfs.create('/bkt/gone.bin', 0o644)
  await writeAll(vfs, w, stored)
  await vfs.flush(w) // a duplicate descriptor closed: the upload is sealed
  await vfs.unlink('/bkt/gone.bin')
  await vfs.write(w, Buffer.from('tail'), 4, stored.length)
  t.ok((await readThrough(vfs, w)).equals(Buffer.concat([stored, Buffer.from('tail')])), 'a writer of an unlinked file keeps reading and writing')
  await vfs.release('/bkt/gone.bin', w)
  t.same(keysOf(store, 'bkt'), ['doc.txt'], 'nothing of it is stored')
  t.equal(store.listMultipartUploads().length, 0, 'and no upload is left')
})

t.test('garbage collection spares the chunks of an unlinked file that is still open', async t => {
  const { vfs, store } = await setup(t)
  const data = noise(3 * MiB + 5, 'gc-open') // file chunks and an inline tail
  await putFile(vfs, '/bkt/held.bin', data)
  const r = await vfs.open('/bkt/held.bin', C.O_RDONLY)
  await vfs.unlink('/bkt/held.bin')
  const report = store.gc() // `bucketfs gc` from another terminal, say
  t.ok(report.chunksRemoved >= 0)
  t.ok((await readThrough(vfs, r)).equals(data), 'the open handle still reads every byte after a gc')
  await vfs.release('/bkt/held.bin', r)
  t.ok(store.gc().chunksRemoved >= 4, 'after the release the chunks are garbage')
})

/** close() as the kernel does it: flush, then release even if the flush failed; 'ok' or the first error's code. */
async function closeCode (vfs: Vfs, p: string, fh: number): Promise<string> {
  let code = 'ok'
  const note = (err: unknown): void => { if (code === 'ok') code = (err as { code?: string }).code ?? String(err) }
  await vfs.flush(fh).catch(note)
  await vfs.release(p, fh).catch(note)
  return code
}

t.test('garbage collection spares the base chunks of a file being edited when another process replaces it', async t => {
  const { vfs, store } = await setup(t)
  // Edited in its second part only: the first part's chunks and MD5 come from the base version.
  const data = noise(PART + MiB, 'gc-edit')
  await putFile(vfs, '/bkt/doc.bin', data)
  const w = await vfs.open('/bkt/doc.bin', C.O_RDWR)
  await vfs.write(w, Buffer.from('edit'), 4, PART + 10)
  await store.putObject('bkt', 'doc.bin', 'replaced by `bucketfs put`') // the base version is gone (unversioned)
  store.gc() // `bucketfs gc` from another terminal
  const want = Buffer.from(data)
  Buffer.from('edit').copy(want, PART + 10)
  t.equal(await closeCode(vfs, '/bkt/doc.bin', w), 'ok', 'close succeeds (no EIO)')
  const report = await store.fsck({ deep: true })
  t.same(report.missingChunks, [], 'no stored version names a chunk that is gone')
  const got = await getFile(vfs, '/bkt/doc.bin').catch((err: { code?: string }) => err.code ?? 'error')
  // Which write wins is a choice (S3: the last to complete; POSIX: an editor writing to a replaced
  // file loses); either is whole, and the close must say so rather than fail.
  t.ok(Buffer.isBuffer(got) && (got.equals(want) || got.toString() === 'replaced by `bucketfs put`'), 'the file reads back whole, one writer\'s content', { got: Buffer.isBuffer(got) ? `${got.length} bytes` : got })

  // Edited in a chunk whose neighbours must be read for the part's MD5.
  await putFile(vfs, '/bkt/two.bin', data)
  const w2 = await vfs.open('/bkt/two.bin', C.O_RDWR)
  await vfs.write(w2, Buffer.from('edit'), 4, 10)
  await store.putObject('bkt', 'two.bin', 'replaced')
  store.gc()
  t.equal(await closeCode(vfs, '/bkt/two.bin', w2), 'ok', 'close succeeds when the part MD5 needs the base chunks too (no EIO)')
})

t.test('an fsynced file whose daemon died is recovered whole', async t => {
  const env = await setup(t)
  await putFile(env.vfs, '/bkt/edited.bin', noise(10 * MiB, 'base'))
  const created = noise(9 * MiB + 12345, 'crash')
  const fh = await env.vfs.create('/bkt/crash.bin', 0o600)
  await writeAll(env.vfs, fh, created)
  await env.vfs.fsync(fh, false)
  // An existing file changed copy-on-write, then fsynced.
  const edited = Buffer.from(noise(10 * MiB, 'base'))
  const fh2 = await env.vfs.open('/bkt/edited.bin', C.O_RDWR)
  const patch = Buffer.from('patched!')
  await env.vfs.write(fh2, patch, patch.length, 8 * MiB + 3)
  patch.copy(edited, 8 * MiB + 3)
  await env.vfs.ftruncate(fh2, 9 * MiB)
  await env.vfs.fsync(fh2, true)
  await env.vfs.write(fh, Buffer.from('not fsynced'), 11, created.length) // lost with the daemon
  t.equal(env.store.liveVersion('bkt', 'crash.bin'), undefined, 'not stored as a version before the crash')
  t.equal(env.store.listMultipartUploads('bkt').length, 2, 'both are uploads in progress')

  reopen(env) // the daemon died: no release, no shutdown
  const done = await env.vfs.recover()
  t.same(done.map(v => v.key).sort(), ['crash.bin', 'edited.bin'], 'recover completed both uploads')
  t.ok((await getFile(env.vfs, '/bkt/crash.bin')).equals(created), 'the fsynced file came back whole')
  t.ok((await getFile(env.vfs, '/bkt/edited.bin')).equals(edited.subarray(0, 9 * MiB)), 'the fsynced edit came back whole')
  t.equal(env.store.headObject('bkt', 'crash.bin').etag, expectedEtag(created), 'with the right ETag')
  t.equal(env.store.headObject('bkt', 'edited.bin').etag, expectedEtag(edited.subarray(0, 9 * MiB)))
  t.equal((await env.vfs.getattr('/bkt/crash.bin')).mode, S_IFREG | 0o600, 'and its mode')
  t.equal(env.store.listMultipartUploads().length, 0, 'no upload left')
  t.same(await env.vfs.recover(), [], 'a second recover has nothing to do')
  const report = await env.store.fsck({ deep: true })
  t.ok(report.clean, 'fsck --deep is clean after recovery')
})

t.test('after a crash, recovery honours the renames and unlinks that followed an fsync', async t => {
  const env = await setup(t)
  // Renamed after its fsync: it comes back under the new name only.
  const moved = noise(MiB + 7, 'moved')
  const a = await env.vfs.create('/bkt/download.part', 0o644)
  await writeAll(env.vfs, a, moved)
  await env.vfs.fsync(a, false)
  await env.vfs.rename('/bkt/download.part', '/bkt/download.bin')
  // Unlinked after its fsync: it must stay deleted.
  const b = await env.vfs.create('/bkt/scratch.tmp', 0o644)
  await writeAll(env.vfs, b, noise(MiB, 'scratch'))
  await env.vfs.fsync(b, false)
  await env.vfs.unlink('/bkt/scratch.tmp')
  // Replaced by a rename after its fsync: the rename's content must stay.
  await putFile(env.vfs, '/bkt/doc.txt', 'original')
  const c = await env.vfs.open('/bkt/doc.txt', C.O_RDWR)
  await env.vfs.write(c, Buffer.from('EDITED'), 6, 0)
  await env.vfs.fsync(c, false)
  await putFile(env.vfs, '/bkt/doc.txt.new', 'saved by the editor')
  await env.vfs.rename('/bkt/doc.txt.new', '/bkt/doc.txt')

  // Closed once (a duplicate descriptor: the upload is sealed), then unlinked while still open.
  const d = await env.vfs.create('/bkt/sealed-victim', 0o644)
  await writeAll(env.vfs, d, noise(MiB, 'sealed'))
  await env.vfs.flush(d)
  await env.vfs.unlink('/bkt/sealed-victim')

  // Unlinked through libfuse's hiding rename (the file is open for reading): the rm returned.
  await putFile(env.vfs, '/bkt/removed.txt', 'rm returned')
  await env.vfs.open('/bkt/removed.txt', C.O_RDONLY)
  await env.vfs.rename('/bkt/removed.txt', '/bkt/.fuse_hidden0000000700000001')
  await failsWith(t, () => env.vfs.getattr('/bkt/removed.txt'), 'NotFound', 'the rm took effect')

  reopen(env) // SIGKILL: none of the handles was released
  await env.vfs.recover()
  await failsWith(t, () => env.vfs.getattr('/bkt/removed.txt'), 'NotFound', 'an unlink through libfuse\'s hiding rename holds after a crash right after it')
  await failsWith(t, () => env.vfs.getattr('/bkt/sealed-victim'), 'NotFound', 'a sealed file unlinked while open does not come back')
  t.ok((await getFile(env.vfs, '/bkt/download.bin')).equals(moved), 'the renamed file is whole under its new name')
  await failsWith(t, () => env.vfs.getattr('/bkt/download.part'), 'NotFound', 'and not under the old one')
  await failsWith(t, () => env.vfs.getattr('/bkt/scratch.tmp'), 'NotFound', 'an unlinked file does not come back')
  t.same((await getFile(env.vfs, '/bkt/doc.txt')).toString(), 'saved by the editor', 'a file replaced by rename keeps the new content')
  t.same(env.store.listMultipartUploads(), [], 'no upload left')
})

t.test('a file being written when the daemon died, never closed or fsynced, is dropped', async t => {
  const env = await setup(t, { writeBudgetBytes: MiB })
  await putFile(env.vfs, '/bkt/old.bin', 'the old content')
  const fh = await env.vfs.create('/bkt/half.bin', 0o644)
  await writeAll(env.vfs, fh, noise(4 * MiB, 'half'))
  const fh2 = await env.vfs.open('/bkt/old.bin', C.O_RDWR)
  await writeAll(env.vfs, fh2, noise(4 * MiB, 'half-old'))
  t.ok(env.store.listMultipartUploads('bkt').length >= 1, 'the budget made parts of an upload')
  reopen(env)
  t.same(await env.vfs.recover(), [], 'nothing to complete')
  await failsWith(t, () => env.vfs.getattr('/bkt/half.bin'), 'NotFound', 'no half-written object appears')
  t.same((await getFile(env.vfs, '/bkt/old.bin')).toString(), 'the old content', 'an edited file keeps its last closed content')
  t.equal(env.store.listMultipartUploads().length, 0, 'the half-written uploads are gone')
})

t.test('copy-on-write: changing one byte of a 20 MiB file stores about one chunk', async t => {
  const { vfs, store } = await setup(t)
  const data = noise(20 * MiB, 'cow')
  await putFile(vfs, '/bkt/big.bin', data)
  const before = store.stats()
  const fh = await vfs.open('/bkt/big.bin', C.O_RDWR)
  await vfs.write(fh, Buffer.from([data[10 * MiB + 5] ^ 0xff]), 1, 10 * MiB + 5)
  await vfs.flush(fh)
  await vfs.release('/bkt/big.bin', fh)
  const after = store.stats()
  const grew = after.storedBytes - before.storedBytes
  t.ok(grew > 0 && grew <= MiB, `stored bytes grew by ${grew}, at most one chunk (not 20 MiB)`)
  t.equal(after.chunks - before.chunks, 1, 'one new chunk')
  const want = Buffer.from(data)
  want[10 * MiB + 5] ^= 0xff
  t.ok((await getFile(vfs, '/bkt/big.bin')).equals(want), 'the content has the one change')
  t.equal(store.headObject('bkt', 'big.bin').etag, expectedEtag(want), 'and the right ETag')
})

t.test('ETag: the MD5 up to 8 MiB, md5(part MD5s)-N in 8 MiB parts above', async t => {
  const { vfs, store } = await setup(t)
  const sizes = [0, 1, 64 * KiB + 1, MiB, 3 * MiB + 17, PART - 1, PART, PART + 1, 2 * PART, 2 * PART + 5 * MiB]
  for (const size of sizes) {
    const data = noise(size, `etag-${size}`)
    await putFile(vfs, `/bkt/f${size}`, data)
    const v = store.headObject('bkt', `f${size}`)
    t.equal(v.etag, expectedEtag(data), `${size} bytes written in order`)
    t.equal((await vfs.getxattr(`/bkt/f${size}`, 'user.s3.etag')).toString(), expectedEtag(data), 'user.s3.etag agrees')
  }
  // Written backwards, in uneven pieces (no streamed MD5 possible).
  const data = noise(PART + 3 * MiB + 1, 'backwards')
  const fh = await vfs.create('/bkt/back', 0o644)
  const step = 300 * KiB + 3
  for (let end = data.length; end > 0; end -= step) {
    const start = Math.max(0, end - step)
    await vfs.write(fh, data.subarray(start, end), end - start, start)
  }
  await vfs.release('/bkt/back', fh)
  t.equal(store.headObject('bkt', 'back').etag, expectedEtag(data), 'written backwards')
  t.ok((await getFile(vfs, '/bkt/back')).equals(data))
  // Eleven parts written from the end (none streamed): more than the eight read and
  // hashed at once. Part 4 holds a hole, part 7 is all hole.
  const many = noise(10 * PART + 5 * MiB, 'many parts')
  const ranges = [[0, 3 * PART + 100], [3 * PART + 3 * MiB, 6 * PART], [7 * PART, many.length]]
  many.fill(0, 3 * PART + 100, 3 * PART + 3 * MiB)
  many.fill(0, 6 * PART, 7 * PART)
  const fm = await vfs.create('/bkt/many', 0o644)
  for (const [from, to] of ranges.reverse()) {
    for (let end = to; end > from; end -= MiB + 3) {
      const start = Math.max(from, end - MiB - 3)
      await vfs.write(fm, many.subarray(start, end), end - start, start)
    }
  }
  await vfs.release('/bkt/many', fm)
  t.equal(store.headObject('bkt', 'many').etag, expectedEtag(many), 'eleven parts, with holes, none streamed')
  // An existing multipart file changed in its second part only.
  const big = noise(2 * PART + 100, 'edit')
  await putFile(vfs, '/bkt/edit', big)
  const w = await vfs.open('/bkt/edit', C.O_WRONLY)
  await vfs.write(w, Buffer.from('EDIT'), 4, PART + 1000)
  await vfs.release('/bkt/edit', w)
  Buffer.from('EDIT').copy(big, PART + 1000)
  t.equal(store.headObject('bkt', 'edit').etag, expectedEtag(big), 'after a copy-on-write edit')
  const a = await vfs.open('/bkt/edit', C.O_WRONLY | C.O_APPEND)
  await vfs.write(a, Buffer.from('tail'), 4, 0)
  await vfs.release('/bkt/edit', a)
  const appended = Buffer.concat([big, Buffer.from('tail')])
  t.equal(store.headObject('bkt', 'edit').etag, expectedEtag(appended), 'after an append to the last part')
})

t.test('a write budget flushes buffers as parts before close', async t => {
  const budget = 8 * MiB
  const { vfs, store } = await setup(t, { writeBudgetBytes: budget })
  const used = (): number => (vfs as unknown as { budget: MemoryBudget }).budget.used
  const total = 64 * MiB
  const fh = await vfs.create('/bkt/stream.bin', 0o644)
  const content = Buffer.alloc(total)
  let sawUpload = -1
  const piece = 128 * KiB
  // Each chunk's second half first: no chunk is filled from its start, so none is stored
  // behind the writer; only the budget moves them out of memory.
  for (let chunk = 0; chunk < total; chunk += MiB) {
    for (const half of [MiB / 2, 0]) {
      for (let off = chunk + half; off < chunk + half + MiB / 2; off += piece) {
        const data = noise(piece, `stream-${off}`)
        data.copy(content, off)
        await vfs.write(fh, data, piece, off)
      }
    }
    if (sawUpload < 0 && store.listMultipartUploads('bkt').some(u => u.key === 'stream.bin' && u.kind === 'session')) sawUpload = chunk + MiB
  }
  t.ok(sawUpload > 0, `the session's upload appeared after ${sawUpload} bytes, before close`)
  t.ok(sawUpload <= 2 * budget, 'once the budget was spent')
  const uploads = store.listMultipartUploads('bkt')
  t.equal(uploads.length, 1, 'one session upload')
  const parts = store.listParts(uploads[0].uploadId)
  t.ok(parts.length >= 6, `flushed buffers became parts (${parts.length}) while writing`)
  t.equal(store.liveVersion('bkt', 'stream.bin'), undefined, 'no version yet')
  await vfs.release('/bkt/stream.bin', fh)
  const v = store.headObject('bkt', 'stream.bin')
  t.equal(v.size, total)
  t.equal(v.etag, expectedEtag(content), 'the ETag of eight 8 MiB parts')
  t.equal(store.listMultipartUploads().length, 0, 'the upload was completed')
  t.ok((await getFile(vfs, '/bkt/stream.bin')).equals(content), 'the content reads back')

  // In order, chunks are stored behind the writer, and held until their part's MD5 is
  // hashed (parts are hashed eight at a time): a spent budget hashes them at once.
  const seq = await vfs.create('/bkt/seq.bin', 0o644)
  // (A flush persists the session's parts: one transaction, after waiting for every store.)
  const proto = WriteSession.prototype as unknown as { flushLocked: (...a: unknown[]) => Promise<boolean> }
  const flushLocked = proto.flushLocked
  let flushes = 0
  proto.flushLocked = async function (this: unknown, ...a: unknown[]) { flushes++; return await flushLocked.apply(this, a) }
  t.teardown(() => { proto.flushLocked = flushLocked })
  let most = 0
  for (let off = 0; off < total; off += piece) {
    await vfs.write(seq, content.subarray(off, off + piece), piece, off)
    most = Math.max(most, used())
  }
  proto.flushLocked = flushLocked
  t.ok(most <= 2 * budget + 16 * MiB, `in order, what the writer holds stays near the budget (at most ${most / MiB} MiB after a write)`)
  t.ok(flushes <= 8, `and its writes did not each flush the session (${flushes} flushes in ${total / piece} writes)`)
  await vfs.release('/bkt/seq.bin', seq)
  t.equal(store.headObject('bkt', 'seq.bin').etag, expectedEtag(content), 'and its ETag is right')
  t.equal(used(), 0, 'nothing is held after the close')
})

t.test('shutdown completes every open write', async t => {
  const env = await setup(t)
  const fh = await env.vfs.create('/bkt/open-at-unmount', 0o644)
  await env.vfs.write(fh, Buffer.from('unsaved'), 7, 0)
  await env.vfs.shutdown()
  reopen(env)
  t.same(await getFile(env.vfs, '/bkt/open-at-unmount'), Buffer.from('unsaved'), 'the open file was stored at shutdown')
  t.equal(env.store.listMultipartUploads().length, 0)
})

t.test('once shutdown begins, writes are refused (EROFS), not taken and lost', async t => {
  const env = await setup(t)
  const { vfs } = env
  await putFile(vfs, '/bkt/stored', 'kept')
  const fh = await vfs.create('/bkt/open', 0o644)
  await vfs.write(fh, Buffer.from('before'), 6, 0)
  const reader = await vfs.open('/bkt/stored', C.O_RDONLY)
  const writer = await vfs.open('/bkt/stored', C.O_WRONLY)
  await vfs.shutdown()
  await failsWith(t, () => vfs.write(fh, Buffer.from('after'), 5, 6), 'ReadOnly', 'a write to a file open since before')
  await failsWith(t, () => vfs.write(writer, Buffer.from('x'), 1, 0), 'ReadOnly', 'a write through a handle that had not written')
  await failsWith(t, () => vfs.create('/bkt/new', 0o644), 'ReadOnly', 'a create')
  await failsWith(t, () => vfs.open('/bkt/stored', C.O_WRONLY), 'ReadOnly', 'an open for writing')
  await failsWith(t, () => vfs.open('/bkt/stored', C.O_RDONLY | C.O_TRUNC), 'ReadOnly', 'an open that truncates')
  await failsWith(t, () => vfs.truncate('/bkt/stored', 0), 'ReadOnly', 'a truncate')
  await failsWith(t, () => vfs.ftruncate(writer, 0), 'ReadOnly', 'an ftruncate')
  t.equal((await readAt(vfs, reader, 0, 10)).toString(), 'kept', 'reads go on')
  reopen(env)
  t.same(await getFile(env.vfs, '/bkt/open'), Buffer.from('before'), 'the open file holds what was written before shutdown')
  t.same(await getFile(env.vfs, '/bkt/stored'), Buffer.from('kept'), 'and the other file is as it was')
})

t.test('dirNames: every name a lookup finds in a small key directory, and a large one untold without reading it', async t => {
  const { vfs, store } = await setup(t)
  await vfs.mkdir('/bkt/d', 0o755)
  await putFile(vfs, '/bkt/d/stored', 'x')
  await store.putObject('bkt', 'd/implied/inner', 'y')
  const fh = await vfs.create('/bkt/d/open', 0o644, C.O_WRONLY | C.O_CREAT)
  await vfs.write(fh, Buffer.from('being written'), 13, 0)
  t.same(vfs.dirNames('/bkt/d', 10)?.sort(), ['implied', 'open', 'stored'], 'stored, implied and being written')
  t.equal(vfs.dirNames('/bkt/d', 2), undefined, 'more names than the limit')
  await vfs.release('/bkt/d/open', fh)
  t.equal(vfs.dirNames('/bkt', 10), undefined, 'not a bucket (its .versions is found too)')
  t.equal(vfs.dirNames('/bkt/d/stored', 10), undefined, 'not a file')
  t.equal(vfs.dirNames('/bkt/missing', 10), undefined, 'not a missing directory')

  for (let i = 0; i < 300; i++) await store.putObject('bkt', `big/k${i}`, '')
  for (let i = 0; i < 300; i++) await store.putObject('bkt', `wide/d${i}/x`, '')
  let listed = 0
  const list = store.listDirectory.bind(store)
  store.listDirectory = (bucket, prefix) => { listed++; return list(bucket, prefix) }
  t.equal(vfs.dirNames('/bkt/big', 256), undefined, '300 keys')
  t.equal(vfs.dirNames('/bkt/wide', 256), undefined, '300 directories')
  t.equal(listed, 0, 'neither was listed')
  t.equal(vfs.dirNames('/bkt/big', 300)?.length, 300, 'a limit they fit in lists them')
})
