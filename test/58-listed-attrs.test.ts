// The attribute cache on the FUSE thread (scripts/fuse-native/fast-path.c): after a
// readdir, the kernel's lookups of the listed files are answered without JavaScript,
// with exactly the attributes getattr gives; no op through the mount can leave a
// stale entry behind; changes made with the CLI show within two attribute timeouts;
// one mount's entries never answer for another's; and xattrs outside user.* get
// the same ENOTSUP from the FUSE thread as from the vfs. A lookup that found nothing is
// answered so on the FUSE thread until an op of the mount makes the name (or a second
// passes), and so is any name in a directory the mount's mkdir has just made; a create
// that finds the name there after all (the CLI put it) opens it as POSIX says.
//
// The mounts run in this process (so the test can read the cache's counters): every
// access to them must be asynchronous, or the one thread that serves them would wait
// on itself. To make the kernel ask again, its dentries are dropped
// (/proc/sys/vm/drop_caches, root only).
process.env.UV_THREADPOOL_SIZE = '16'
/* eslint-disable import/first */
import t from 'tap'
import crypto from 'node:crypto'
import fs from 'node:fs'
import fsp from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import { fastPathStats } from '../src/mount/fuse'
import { Store } from '../src/store'
import { BIN } from './helpers/mount'
import { mountInProcess, type InProcessMount } from './helpers/in-process'
import { runAsync, sleep } from './helpers/e2e'

const root = process.getuid?.() === 0

/** What a program sees of a file's attributes. */
function seen (st: fs.Stats): Record<string, number> {
  return {
    mode: st.mode, uid: st.uid, gid: st.gid, size: st.size, blocks: st.blocks, nlink: st.nlink,
    atimeMs: st.atimeMs, mtimeMs: st.mtimeMs, ctimeMs: st.ctimeMs
  }
}

/** Lookups answered on the FUSE thread: from an entry, or missing from a directory whose every name is known. */
/** Lookups answered on the FUSE thread: from the entries, or from the attributes the op before on the thread answered with. */
const hits = (): number => (fastPathStats()?.attrHits ?? 0) + (fastPathStats()?.fullHits ?? 0) + (fastPathStats()?.thenHits ?? 0)
const fullHits = (): number => fastPathStats()?.fullHits ?? 0

/** The kernel forgets its dentries and inodes: its next lookups reach the mount. */
async function forgetKernelNames (): Promise<void> {
  await fsp.writeFile('/proc/sys/vm/drop_caches', '2\n')
}

async function lstatAll (dir: string, names: string[]): Promise<Record<string, Record<string, number>>> {
  const out: Record<string, Record<string, number>> = {}
  for (const n of names) out[n] = seen(await fsp.lstat(path.join(dir, n)))
  return out
}

/** A store mounted in this process under bucketfs-58-<name>-*, unmounted at the test's end. */
const mountTemp = async (t: tap.Test, name: string): Promise<InProcessMount> => await mountInProcess(t, `58-${name}`)

t.test('listed attributes', { skip: fastPathStats() === undefined ? 'the fuse-native addon has no attribute cache' : false }, async t => {
  const { mnt, data } = await mountTemp(t, 'one')
  const dir = path.join(mnt, 'listed-58', 'd')
  await fsp.mkdir(dir, { recursive: true })
  const names = Array.from({ length: 40 }, (_, i) => `f${i}`)
  for (const [i, n] of names.entries()) await fsp.writeFile(path.join(dir, n), Buffer.alloc(i * 100, i))
  await fsp.symlink('f1', path.join(dir, 'link'))
  await fsp.chmod(path.join(dir, 'f2'), 0o600)
  // Directories: one made through the mount (its marker has its mode and times) and one
  // implied by a key another process put (no marker: it has the bucket's owner).
  await fsp.mkdir(path.join(dir, 'sub'), 0o750)
  await fsp.writeFile(path.join(dir, 'sub', 'inner'), 'x')
  await fsp.utimes(path.join(dir, 'sub'), new Date(1_200_000_000_000), new Date(1_300_000_000_000))
  const other = Store.open(data)
  try { await other.putObject('listed-58', 'd/implied/inner', 'y') } finally { other.close() }
  await sleep(1100) // the kernel's own entries (entry_timeout 1 s) are gone

  await t.test('lookups after a readdir are answered from it, with what getattr answers', async t => {
    const listed = await fsp.readdir(dir)
    t.same(listed.sort(), [...names, 'implied', 'link', 'sub'].sort())
    const before = hits()
    const fromCache = await lstatAll(dir, listed)
    t.ok(hits() - before >= listed.length, `the ${listed.length} lookups were answered on the FUSE thread (${hits() - before})`)
    await sleep(2100) // the cache's entries and the kernel's are gone
    const again = hits()
    const fromVfs = await lstatAll(dir, listed)
    t.equal(hits(), again, 'past their time, lookups go to the vfs')
    t.same(fromCache, fromVfs, 'every attribute is the same either way')
    t.equal(fromCache.f2.mode & 0o777, 0o600)
    t.ok((fromCache.link.mode & fs.constants.S_IFMT) === fs.constants.S_IFLNK, 'a symlink is listed as one')
    t.same([fromCache.sub.mode, fromCache.sub.mtimeMs], [fs.constants.S_IFDIR | 0o750, 1_300_000_000_000], 'a directory with its marker\'s mode and times')
    t.equal(fromCache.implied.mode, fs.constants.S_IFDIR | 0o755, 'an implied directory')
    // An opendir of a listed directory is answered there too (the vfs answers it from getattr).
    await fsp.readdir(dir)
    const beforeOpen = hits()
    t.same(await fsp.readdir(path.join(dir, 'sub')), ['inner'], 'a listed directory lists')
    t.ok(hits() > beforeOpen, 'its opendir was answered on the FUSE thread')
  })

  await t.test('an op through the mount leaves no stale entry', { skip: root ? false : 'dropping the kernel\'s dentries needs root' }, async t => {
    await fsp.readdir(dir)
    const p = (n: string): string => path.join(dir, n)
    await fsp.chmod(p('f3'), 0o640)
    await fsp.truncate(p('f4'), 7)
    await fsp.appendFile(p('f5'), 'more')
    await fsp.utimes(p('f6'), new Date(1_000_000_000_000), new Date(1_100_000_000_000))
    await fsp.unlink(p('f7'))
    await fsp.rename(p('f8'), p('f8-moved'))
    await fsp.writeFile(p('f9'), 'rewritten') // open(O_TRUNC), write, close
    const fh = await fsp.open(p('f10'), 'r+') // written through an open descriptor
    await fh.write(Buffer.alloc(5000, 1), 0, 5000, 0)
    await fh.close()
    await forgetKernelNames()
    const now = await lstatAll(dir, ['f3', 'f4', 'f5', 'f6', 'f8-moved', 'f9', 'f10'])
    t.equal(now.f3.mode & 0o777, 0o640, 'chmod')
    t.equal(now.f4.size, 7, 'truncate')
    t.equal(now.f5.size, 500 + 4, 'append')
    t.equal(now.f6.mtimeMs, 1_100_000_000_000, 'utimes')
    t.equal(now.f9.size, 9, 'a rewrite')
    t.equal(now.f10.size, 5000, 'a write through a descriptor')
    await t.rejects(fsp.lstat(p('f7')), { code: 'ENOENT' }, 'unlink')
    await t.rejects(fsp.lstat(p('f8')), { code: 'ENOENT' }, 'the old name of a rename')
    t.equal(now['f8-moved'].size, 800, 'the new name of a rename')
    await sleep(2100)
    t.same(await lstatAll(dir, ['f3', 'f4', 'f5', 'f6', 'f8-moved', 'f9', 'f10']), now, 'what the vfs answers later is the same')
  })

  await t.test('a directory renamed or removed after its listing', { skip: root ? false : 'dropping the kernel\'s dentries needs root' }, async t => {
    const sub = path.join(mnt, 'listed-58', 'sub')
    await fsp.mkdir(sub)
    await fsp.writeFile(path.join(sub, 'x'), 'xx')
    await fsp.readdir(sub)
    await fsp.rename(sub, sub + '-2')
    await forgetKernelNames()
    await t.rejects(fsp.lstat(path.join(sub, 'x')), { code: 'ENOENT' }, 'the old path is gone')
    t.equal((await fsp.lstat(path.join(sub + '-2', 'x'))).size, 2, 'the new path is there')
    await fsp.readdir(sub + '-2')
    await fsp.unlink(path.join(sub + '-2', 'x'))
    await fsp.rmdir(sub + '-2')
    await forgetKernelNames()
    await t.rejects(fsp.lstat(path.join(sub + '-2', 'x')), { code: 'ENOENT' })
    await t.rejects(fsp.lstat(sub + '-2'), { code: 'ENOENT' }, 'an implied directory whose last file went is gone')
  })

  await t.test('a rename or rmdir forgets what lay under its paths, and only that', { skip: root ? false : 'dropping the kernel\'s dentries needs root' }, async t => {
    const base = path.join(mnt, 'listed-58', 'narrow')
    await fsp.mkdir(path.join(base, 'keep'), { recursive: true })
    await fsp.mkdir(path.join(base, 'from'))
    await fsp.mkdir(path.join(base, 'onto'))
    await fsp.mkdir(path.join(base, 'gone'))
    for (const n of ['a', 'b', 'c']) await fsp.writeFile(path.join(base, 'keep', n), n)
    await fsp.writeFile(path.join(base, 'from', 'x'), 'xyz')
    // The kernel sends a release after close has returned: one answered during a listing
    // refuses its put (forgets move the epoch on), so let them land first.
    await sleep(200)
    await fsp.readdir(path.join(base, 'keep'))
    await fsp.readdir(path.join(base, 'from'))
    // The empty target's names are looked up (and found missing, and kept) before the rename.
    let kept = false
    for (let i = 0; i < 3 && !kept; i++) {
      const before = hits()
      await t.rejects(fsp.lstat(path.join(base, 'onto', 'x')), { code: 'ENOENT' })
      kept = hits() > before
    }
    t.ok(kept, 'the miss under the target is kept')
    await fsp.rename(path.join(base, 'keep', 'a'), path.join(base, 'keep', 'a2'))
    await fsp.rmdir(path.join(base, 'gone'))
    await fsp.rename(path.join(base, 'from'), path.join(base, 'onto'))
    await forgetKernelNames()
    const before = hits()
    t.equal((await fsp.lstat(path.join(base, 'keep', 'b'))).size, 1, 'a name beside a renamed file')
    t.ok(hits() > before, 'is still answered from the listing')
    t.equal((await fsp.lstat(path.join(base, 'onto', 'x'))).size, 3, 'a directory renamed over an empty one shows its file')
    await t.rejects(fsp.lstat(path.join(base, 'from', 'x')), { code: 'ENOENT' }, 'under its old name it is gone')
    await t.rejects(fsp.lstat(path.join(base, 'gone')), { code: 'ENOENT' }, 'a removed directory is gone')
  })

  await t.test('a name found missing is answered so on the FUSE thread until the mount makes it', async t => {
    const sub = path.join(mnt, 'listed-58', 'missing')
    await fsp.mkdir(sub)
    await sleep(1100) // past the time its mkdir knew every name in it: misses are kept one by one
    const p = (n: string): string => path.join(sub, n)
    await fsp.writeFile(p('src'), 'moved')
    const makers: Array<[string, () => Promise<unknown>, number]> = [
      ['create', async () => { await fsp.writeFile(p('created'), 'new') }, fs.constants.S_IFREG],
      ['mkdir', async () => { await fsp.mkdir(p('madedir')) }, fs.constants.S_IFDIR],
      ['symlink', async () => { await fsp.symlink('created', p('link')) }, fs.constants.S_IFLNK],
      ['rename', async () => { await fsp.rename(p('src'), p('renamed')) }, fs.constants.S_IFREG]
    ]
    for (const [name, make, type] of makers) {
      const target = p(name === 'create' ? 'created' : name === 'mkdir' ? 'madedir' : name === 'symlink' ? 'link' : 'renamed')
      await t.rejects(fsp.lstat(target), { code: 'ENOENT' }, `${name}: missing before`)
      // A miss is put only if nothing was forgotten meanwhile (a late release of an
      // earlier file may be): each miss the vfs answers puts it again.
      let answered = false
      for (let i = 0; i < 3 && !answered; i++) {
        const before = hits()
        await t.rejects(fsp.lstat(target), { code: 'ENOENT' }, `${name}: still missing`)
        answered = hits() > before
      }
      t.ok(answered, `${name}: a later lookup was answered on the FUSE thread`)
      await make()
      // The kernel would answer from the entry the op's reply gave it: make it ask.
      if (root) await forgetKernelNames()
      t.equal((await fsp.lstat(target)).mode & fs.constants.S_IFMT, type, `${name}: there at once after it is made`)
    }
    // Under .versions a save adds names without an op on them: misses there are not kept.
    const versions = path.join(mnt, 'listed-58', '.versions', 'missing', 'later')
    await t.rejects(fsp.lstat(versions), { code: 'ENOENT' })
    await t.rejects(fsp.lstat(versions), { code: 'ENOENT' })
    await fsp.writeFile(p('later'), 'v1')
    t.ok((await fsp.lstat(versions)).isDirectory(), 'the versions of a key just written are there at once')
  })

  await t.test('a rename\'s source is answered missing on the FUSE thread until the mount makes it again', async t => {
    const sub = path.join(mnt, 'listed-58', 'renamed-away')
    const p = (n: string): string => path.join(sub, n)
    await fsp.mkdir(sub)
    await fsp.writeFile(p('a'), 'first')
    await fsp.mkdir(p('dir-a'))
    await fsp.writeFile(p('dir-a/x'), 'inside')
    const answered = hits
    for (const [from, to, again, type] of [
      ['a', 'b', async () => { await fsp.writeFile(p('a'), 'second') }, fs.constants.S_IFREG],
      ['dir-a', 'dir-b', async () => { await fsp.mkdir(p('dir-a')) }, fs.constants.S_IFDIR]
    ] as Array<[string, string, () => Promise<void>, number]>) {
      // The source is kept missing only if nothing else was forgotten while the rename ran
      // (a late release of a file written just before may be): rename back and again.
      let kept = false
      for (let i = 0; i < 3 && !kept; i++) {
        if (i > 0) await fsp.rename(p(to), p(from))
        await fsp.rename(p(from), p(to))
        const before = answered()
        await t.rejects(fsp.lstat(p(from)), { code: 'ENOENT' }, `${from}: gone after its rename`)
        kept = answered() > before
      }
      t.ok(kept, `${from}: the lookup after its rename was answered on the FUSE thread`)
      t.equal((await fsp.lstat(p(to))).mode & fs.constants.S_IFMT, type, `${to}: there`)
      await again()
      if (root) await forgetKernelNames()
      t.equal((await fsp.lstat(p(from))).mode & fs.constants.S_IFMT, type, `${from}: there at once when made again`)
    }
    t.equal(await fsp.readFile(p('a'), 'utf8'), 'second')
    t.equal(await fsp.readFile(p('b'), 'utf8'), 'first')
    t.equal(await fsp.readFile(p('dir-b/x'), 'utf8'), 'inside')
    t.same(await fsp.readdir(p('dir-a')), [], 'the directory made again is empty')
    // A rename onto itself leaves it where it was.
    await fsp.rename(p('a'), p('a'))
    t.equal(await fsp.readFile(p('a'), 'utf8'), 'second', 'a rename onto itself keeps the file')
    // A failed rename answers nothing about its source.
    await t.rejects(fsp.rename(p('nope'), p('c')), { code: 'ENOENT' })
    await fsp.writeFile(p('nope'), 'made')
    t.equal(await fsp.readFile(p('nope'), 'utf8'), 'made', 'a name a failed rename named is made as any')
  })

  await t.test('xattrs outside user.* are refused on the FUSE thread as by the vfs', async t => {
    const f = path.join(dir, 'f13')
    for (const name of ['security.capability', 'security.selinux', 'trusted.x']) {
      const r = await runAsync('getfattr', ['--absolute-names', '-n', name, f])
      t.not(r.status, 0, `getfattr ${name} fails`)
      t.match(r.stderr, /Operation not supported/, `with ENOTSUP (${name})`)
    }
    t.equal((await runAsync('setfattr', ['-n', 'user.colour', '-v', 'red', f])).status, 0, 'user.* is set')
    t.equal((await runAsync('getfattr', ['--absolute-names', '--only-values', '-n', 'user.colour', f])).stdout, 'red', 'and read back')
  })

  await t.test('ops that change a path answer libfuse\'s getattr after them with what getattr gives', async t => {
    const then = (): number => fastPathStats()?.thenHits ?? 0
    const sub = path.join(mnt, 'listed-58', 'then')
    const f = path.join(sub, 'file')
    const g = path.join(sub, 'other')
    // Each change, then what the kernel was told right after it (its attribute cache,
    // filled from the op's answer), then what the vfs answers once that has expired.
    const changes: Array<[string, () => Promise<unknown>, string]> = [
      ['mkdir', async () => await fsp.mkdir(sub), sub],
      ['create', async () => { const h = await fsp.open(f, 'wx', 0o640); await h.write('hello'); await h.close() }, f],
      ['chmod', async () => { await fsp.chmod(f, 0o604) }, f],
      ['chown', async () => { await fsp.chown(f, 1234, 5678) }, f],
      ['utimes', async () => { await fsp.utimes(f, new Date(1500000000000), new Date(1600000000000)) }, f],
      ['truncate', async () => { await fsp.truncate(f, 3) }, f],
      ['ftruncate', async () => { const h = await fsp.open(f, 'r+'); await h.truncate(70000); await h.close() }, f],
      ['symlink', async () => { await fsp.symlink('file', g) }, g]
    ]
    for (const [name, change, p] of changes) {
      if (name === 'chown' && !root) continue
      const before = then()
      await change()
      const told = seen(await fsp.lstat(p))
      t.ok(then() > before, `${name}: libfuse's getattr after it was answered from its answer`)
      await sleep(1100) // the kernel's attributes of it have expired
      const asked = seen(await fsp.lstat(p))
      if (name === 'create' || name === 'ftruncate') {
        // The close after them changed the times the kernel was told; the rest holds.
        for (const k of ['mtimeMs', 'ctimeMs', 'atimeMs']) { delete told[k]; delete asked[k] }
      }
      t.same(told, asked, `${name}: the kernel was told what getattr answers`)
    }
    t.equal((await fsp.stat(f)).mode & 0o777, 0o604)
    t.equal((await fsp.stat(f)).size, 70000)

    if (root) {
      // They also stay in the cache for the kernel's next lookup, until a change forgets them.
      await fsp.chmod(f, 0o640)
      await forgetKernelNames()
      const before = hits()
      t.equal((await fsp.lstat(f)).mode & 0o777, 0o640, 'the lookup after a chmod sees it')
      t.ok(hits() > before, 'answered from the cache')
      await fsp.appendFile(f, 'more')
      await forgetKernelNames()
      t.equal((await fsp.lstat(f)).size, 70004, 'a write forgets it')
    }
  })

  await t.test('the close of a saved file leaves its attributes for the next lookup', { skip: root ? false : 'dropping the kernel\'s dentries needs root' }, async t => {
    const sub = path.join(mnt, 'listed-58', 'closed')
    await fsp.mkdir(sub)
    const f = path.join(sub, 'saved')
    await fsp.writeFile(f, 'hello, world')
    await forgetKernelNames()
    const before = hits()
    const told = seen(await fsp.lstat(f))
    t.ok(hits() > before, 'the lookup after the close was answered on the FUSE thread')
    t.equal(told.size, 12)
    await sleep(1100) // the cached attributes have expired: the vfs answers
    t.same(told, seen(await fsp.lstat(f)), 'with what getattr answers')

    // A close that leaves another writer's changes unsaved gives nothing to keep.
    const g = path.join(sub, 'shared')
    const a = await fsp.open(g, 'w')
    const b = await fsp.open(g, 'r+')
    try {
      await a.write('aaaa', 0)
      await b.write('bbbbbbbb', 0)
      await a.close()
      await forgetKernelNames()
      t.equal((await fsp.lstat(g)).size, 8)
      await b.write('cccc', 8)
      await forgetKernelNames()
      t.equal((await fsp.lstat(g)).size, 12, 'a later write by the other handle shows')
    } finally {
      await b.close()
    }
    await forgetKernelNames()
    t.equal((await fsp.lstat(g)).size, 12)
    t.equal(await fsp.readFile(g, 'utf8'), 'bbbbbbbbcccc')

    // What a close left answers for a second, no longer: a change made outside the mount
    // since (the CLI's) is in no forget log, and a FUSE thread's next op may come late.
    const late = path.join(sub, 'late')
    await fsp.writeFile(late, 'short')
    const src = path.join(os.tmpdir(), `bucketfs-58-late-${process.pid}.txt`)
    fs.writeFileSync(src, 'y'.repeat(4321))
    t.teardown(() => { fs.rmSync(src, { force: true }) })
    await sleep(1100)
    const put = await runAsync(process.execPath, [BIN, 'put', src, 'listed-58/closed/late', '--data', data])
    t.equal(put.status, 0, put.stderr)
    await sleep(1100) // the kernel's own attributes of it have expired too
    const sizes = new Set<number>()
    for (let i = 0; i < 24; i++) {
      await forgetKernelNames()
      sizes.add((await fsp.lstat(late)).size)
    }
    t.same([...sizes], [4321], 'every lookup sees the CLI\'s change')

    // Files under .versions change with every save: a close of one leaves nothing.
    const versions = path.join(mnt, 'listed-58', '.versions', 'closed', 'saved')
    const [name] = await fsp.readdir(versions)
    await fsp.readFile(path.join(versions, name))
    await forgetKernelNames()
    await fsp.lstat(versions) // (its parents are looked up now, not below)
    const before2 = hits()
    await fsp.lstat(path.join(versions, name))
    t.equal(hits(), before2, 'the lookup of a version after its close goes to the vfs')
  })

  await t.test('a change made with the CLI shows within two attribute timeouts', async t => {
    const src = path.join(os.tmpdir(), `bucketfs-58-${process.pid}.txt`)
    fs.writeFileSync(src, 'x'.repeat(12345))
    t.teardown(() => { fs.rmSync(src, { force: true }) })
    await fsp.readdir(dir)
    const put = await runAsync(process.execPath, [BIN, 'put', src, 'listed-58/d/f12', '--data', data])
    t.equal(put.status, 0, put.stderr)
    await sleep(2100)
    t.equal((await fsp.lstat(path.join(dir, 'f12'))).size, 12345)
  })
})

t.test('one mount\'s entries do not answer for another', { skip: fastPathStats() === undefined || !root ? 'needs the attribute cache and root' : false }, async t => {
  const a = await mountTemp(t, 'a')
  const b = await mountTemp(t, 'b')
  for (const [m, size] of [[a, 10], [b, 20]] as const) {
    await fsp.mkdir(path.join(m.mnt, 'same-58'))
    await fsp.writeFile(path.join(m.mnt, 'same-58', 'f'), Buffer.alloc(size))
  }
  await sleep(1100)
  await fsp.readdir(path.join(a.mnt, 'same-58'))
  await forgetKernelNames()
  t.equal((await fsp.lstat(path.join(b.mnt, 'same-58', 'f'))).size, 20, 'b answers its own size')
  t.equal((await fsp.lstat(path.join(a.mnt, 'same-58', 'f'))).size, 10, 'a answers its own')
})

t.test('a directory renamed leaves no entry under its old name, however many forgets follow', { skip: fastPathStats() === undefined ? 'the fuse-native addon has no attribute cache' : false }, async t => {
  // A rename of a directory forgets what lies under its paths lazily: each entry is
  // checked when it would answer, against the tree forgets since it was put. Here the
  // old name is made again at once, so the kernel looks the file up in it (no dentry
  // to drop): the lookup must not be answered from the entry put under the old name.
  const { mnt } = await mountTemp(t, 'tree')
  const base = path.join(mnt, 'tree-58')
  let n = 0
  /** Fresh directories d/x, each holding file f of 3 bytes, listed, and f looked up from the listing. */
  const listed = async (count: number): Promise<string[]> => {
    const ds = Array.from({ length: count }, () => path.join(base, `d${n++}`))
    for (const d of ds) {
      await fsp.mkdir(path.join(d, 'x'), { recursive: true })
      await fsp.writeFile(path.join(d, 'x', 'f'), 'fff')
    }
    await sleep(300) // the kernel's late releases forget what they touch: let them land first
    for (const d of ds) {
      await fsp.readdir(path.join(d, 'x'))
      const before = hits()
      t.equal((await fsp.lstat(path.join(d, 'x', 'f'))).size, 3)
      t.ok(hits() > before, 'f is answered from the listing')
    }
    return ds
  }
  const meanwhile: Array<[string, () => Promise<unknown>]> = [
    ['nothing', async () => {}],
    ['65 other listed directories renamed', async () => {
      for (const d of await listed(65)) await fsp.rename(path.join(d, 'x'), path.join(d, 'y'))
    }],
    ['300 other changes', async () => {
      await fsp.mkdir(path.join(base, 'many'), { recursive: true })
      for (let i = 0; i < 150; i++) {
        await fsp.writeFile(path.join(base, 'many', `m${i}`), 'm')
        await fsp.unlink(path.join(base, 'many', `m${i}`))
      }
    }]
  ]
  for (const [what, between] of meanwhile) {
    const [d] = await listed(1)
    await fsp.rename(path.join(d, 'x'), path.join(d, 'y'))
    await between()
    await fsp.mkdir(path.join(d, 'x'))
    await t.rejects(fsp.lstat(path.join(d, 'x', 'f')), { code: 'ENOENT' }, `${what} after the rename: the old name holds no f`)
    t.equal((await fsp.lstat(path.join(d, 'y', 'f'))).size, 3, `${what} after the rename: the new name holds it`)

    const [above] = await listed(1)
    await fsp.rename(above, above + '-old')
    await between()
    await fsp.mkdir(path.join(above, 'x'), { recursive: true })
    await t.rejects(fsp.lstat(path.join(above, 'x', 'f')), { code: 'ENOENT' }, `${what} after a rename of the directory above: the old name holds no f`)
  }
})

t.test('writes are answered on the FUSE thread, and every later op sees them', { skip: fastPathStats() === undefined ? 'the fuse-native addon has no fast path' : false }, async t => {
  const { mnt } = await mountTemp(t, 'staged')
  const dir = path.join(mnt, 'staged-58')
  await fsp.mkdir(dir)
  const file = path.join(dir, 'f')
  await fsp.writeFile(file, 'x'.repeat(100))
  await sleep(300) // the kernel's late release
  await fsp.readdir(dir) // puts f's attributes (100 bytes) on the FUSE thread
  const data = crypto.randomBytes(4 * 1024 * 1024)
  const src = path.join(path.dirname(mnt), 'src.bin')
  await fsp.writeFile(src, data)
  const before = fastPathStats()?.stagedWrites ?? 0
  // Another process writes (this one serves the mount): 4 MiB in 512 KiB writes.
  const dd = await runAsync('dd', [`if=${src}`, `of=${file}`, 'bs=512k', 'conv=notrunc'])
  t.equal(dd.status, 0, 'dd', { stderr: dd.stderr })
  // The kernel's requests are 128 KiB, or up to 1 MiB when it took max_pages (fast-path.c).
  const request = Math.min(512 * 1024, (fastPathStats()?.bigPages ?? 0) * 4096 || 128 * 1024)
  t.equal((fastPathStats()?.stagedWrites ?? 0) - before, data.length / request, `its ${request / 1024} KiB writes were answered on the FUSE thread`)
  if (root) await forgetKernelNames() // so the next lookup reaches the mount
  const fh = await fsp.open(file, 'r+')
  t.teardown(async () => { await fh.close().catch(() => {}) })
  const [st, content] = await Promise.all([fsp.stat(file), fsp.readFile(file)])
  t.equal(st.size, data.length, 'a lookup after them sees their size')
  t.ok(content.equals(data), 'a read after them sees their bytes')
  // Writes through this process's own handle, each followed at once by an op on the file.
  const more = crypto.randomBytes(128 * 1024)
  const staged = fastPathStats()?.stagedWrites ?? 0
  await fh.write(more, 0, more.length, data.length)
  const [fst, again] = await Promise.all([fh.stat(), fsp.readFile(file)])
  t.equal(fastPathStats()?.stagedWrites ?? 0, staged + 1, 'a write through this process is staged too')
  t.equal(fst.size, data.length + more.length, 'an fstat right after sees it')
  t.ok(again.subarray(data.length).equals(more), 'a read right after sees it')
  t.same([fastPathStats()?.stagedPending, fastPathStats()?.stagedBytes], [0, 0], 'nothing is left to apply')
  await fh.close()

  const appended = path.join(dir, 'log')
  await fsp.writeFile(appended, 'one\n')
  const before2 = fastPathStats()?.stagedWrites ?? 0
  const fa = await fsp.open(appended, 'a')
  await fa.write('two\n')
  await fa.close()
  t.equal(fastPathStats()?.stagedWrites ?? 0, before2, 'an O_APPEND handle\'s writes are not staged')
  t.equal(await fsp.readFile(appended, 'utf8'), 'one\ntwo\n')
})

t.test('a 1 MiB write reaches the mount as one request, and its chunk is stored as written', { skip: fastPathStats() === undefined ? 'the fuse-native addon has no fast path' : false }, async t => {
  const { mnt, data: dataDir } = await mountTemp(t, 'big')
  const dir = path.join(mnt, 'big-58')
  await fsp.mkdir(dir)
  const data = crypto.randomBytes(4 * 1024 * 1024 + 4096)
  const src = path.join(path.dirname(mnt), 'big-src.bin')
  await fsp.writeFile(src, data)
  const before = fastPathStats()?.stagedWrites ?? 0
  // Another process writes (this one serves the mount): 1 MiB per write.
  const dd = await runAsync('dd', [`if=${src}`, `of=${path.join(dir, 'f')}`, 'bs=1M', 'conv=fsync'])
  t.equal(dd.status, 0, 'dd', { stderr: dd.stderr })
  // (The kernel's INIT was answered before the mkdir: by now the mount says what it gave.)
  // Linux 4.20 and later offer FUSE_MAX_PAGES (an older kernel may have it backported).
  const [major, minor] = os.release().split('.').map(Number)
  if (process.env.BUCKETFS_BIG_REQUESTS !== '0' && (major * 1000 + minor >= 4020 || fastPathStats()?.bigOffered === 1)) {
    t.equal(fastPathStats()?.bigOffered, 1, 'this kernel (Linux 4.20 or later) offered FUSE_MAX_PAGES')
    t.equal(fastPathStats()?.bigPages, 256, 'and was answered 256 pages')
    t.equal((fastPathStats()?.stagedWrites ?? 0) - before, 5, 'each 1 MiB write (and the last 4 KiB) came as one request, answered on the FUSE thread')
  } else {
    t.comment('before Linux 4.20 (or turned off) requests stay 128 KiB')
    t.equal((fastPathStats()?.stagedWrites ?? 0) - before, 33, 'each 128 KiB (and the last 4 KiB) came as one request, answered on the FUSE thread')
  }
  t.ok((await fsp.readFile(path.join(dir, 'f'))).equals(data), 'the file reads back exactly')
  // A whole MiB staged is the chunk's buffer as it is (test/70 checks when it is not): its chunk file holds exactly those bytes.
  const second = data.subarray(1024 * 1024, 2 * 1024 * 1024)
  const hex = crypto.createHash('sha256').update(second).digest('hex')
  t.ok(fs.readFileSync(path.join(dataDir, 'chunks', hex.slice(0, 2), hex)).equals(second), 'the second MiB\'s chunk file holds its bytes')
})

t.test('a name found missing and then put by the CLI is not emptied by a create through the mount', { skip: fastPathStats() === undefined ? 'the fuse-native addon has no attribute cache' : false }, async t => {
  const { mnt, data } = await mountTemp(t, 'neg')
  const dir = path.join(mnt, 'missing-58')
  await fsp.mkdir(dir)
  const f = path.join(dir, 'later')
  t.equal(await fsp.lstat(f).then(() => 'there', (e: NodeJS.ErrnoException) => e.code), 'ENOENT')
  const src = path.join(os.tmpdir(), `bucketfs-58-neg-${process.pid}.txt`)
  fs.writeFileSync(src, 'from the CLI')
  t.teardown(() => { fs.rmSync(src, { force: true }) })
  const put = await runAsync(process.execPath, [BIN, 'put', src, 'missing-58/later', '--data', data])
  t.equal(put.status, 0, put.stderr)
  // touch: open(O_CREAT|O_WRONLY) without O_TRUNC, well within a second of the miss.
  const fd = await fsp.open(f, fs.constants.O_CREAT | fs.constants.O_WRONLY, 0o644)
  await fd.close()
  t.equal(await fsp.readFile(f, 'utf8'), 'from the CLI', 'the object the CLI put keeps its content')

  // The kernel sends a create for a name the FUSE thread still answers missing: the vfs
  // answers ESTALE, and the kernel looks it up again and opens it as open(2) says. The
  // objects are put in this process (no CLI start-up), well within the miss's second.
  const store = Store.open(data)
  t.teardown(() => { store.close() })
  const cases: Array<[string, number, (p: string) => Promise<void>]> = [
    ['O_EXCL', fs.constants.O_CREAT | fs.constants.O_EXCL | fs.constants.O_WRONLY, async p => {
      t.equal(await fsp.readFile(p, 'utf8'), 'stored', 'O_EXCL: the object is untouched')
    }],
    ['O_TRUNC', fs.constants.O_CREAT | fs.constants.O_TRUNC | fs.constants.O_WRONLY, async p => {
      t.equal(await fsp.readFile(p, 'utf8'), 'mine', 'O_TRUNC: emptied and written, as asked')
      const st = await fsp.stat(p)
      t.equal(st.mode & 0o777, 0o640, 'its mode is kept (the create\'s 0644 is not applied)')
      t.equal((await runAsync('getfattr', ['--absolute-names', '--only-values', '-n', 'user.colour', p])).stdout, 'red', 'and its user metadata')
    }],
    ['touch', fs.constants.O_CREAT | fs.constants.O_WRONLY, async p => {
      t.equal(await fsp.readFile(p, 'utf8'), 'stored', 'without O_TRUNC: the content is kept')
    }]
  ]
  for (const [name, flags, check] of cases) {
    const p = path.join(dir, `stale-${name}`)
    // Looked up until the miss is kept (a put refused by a concurrent forget is put again).
    let kept = false
    for (let i = 0; i < 3 && !kept; i++) {
      const before = hits()
      await t.rejects(fsp.lstat(p), { code: 'ENOENT' })
      kept = hits() > before
    }
    await store.putObject('missing-58', `stale-${name}`, Buffer.from('stored'), { userMeta: { colour: 'red' }, posix: { mode: 0o100640 } })
    const before = hits()
    const opened = await fsp.open(p, flags, 0o644).then(async h => {
      if (name === 'O_TRUNC') await h.write('mine')
      await h.close()
      return 'opened'
    }, (e: NodeJS.ErrnoException) => e.code)
    t.ok(kept, `${name}: the miss is kept`)
    t.ok(hits() > before, `${name}: the kernel's lookup was answered missing on the FUSE thread`)
    t.equal(opened, name === 'O_EXCL' ? 'EEXIST' : 'opened', `${name}: open(2)'s answer`)
    await check(p)
  }
})

t.test('in a directory the mount has just made, every name not made since is answered missing on the FUSE thread', { skip: fastPathStats() === undefined ? 'the fuse-native addon has no attribute cache' : false }, async t => {
  const { mnt, data } = await mountTemp(t, 'full')
  const base = path.join(mnt, 'full-58')
  await fsp.mkdir(base)
  const d = path.join(base, 'd')
  await fsp.mkdir(d)
  const p = (n: string): string => path.join(d, n)
  await fsp.writeFile(path.join(base, 'src'), 'moved in')

  const before = fullHits()
  for (let i = 0; i < 20; i++) await t.rejects(fsp.lstat(p(`n${i}`)), { code: 'ENOENT' })
  t.equal(fullHits() - before, 20, 'each lookup was answered missing there, none by the daemon')

  const makers: Array<[string, () => Promise<unknown>, number]> = [
    ['created', async () => { await fsp.writeFile(p('created'), 'new') }, fs.constants.S_IFREG],
    ['madedir', async () => { await fsp.mkdir(p('madedir')) }, fs.constants.S_IFDIR],
    ['link', async () => { await fsp.symlink('created', p('link')) }, fs.constants.S_IFLNK],
    ['renamed', async () => { await fsp.rename(path.join(base, 'src'), p('renamed')) }, fs.constants.S_IFREG]
  ]
  for (const [name, make, type] of makers) {
    await t.rejects(fsp.lstat(p(name)), { code: 'ENOENT' }, `${name}: missing before`)
    await make()
    if (root) await forgetKernelNames()
    t.equal((await fsp.lstat(p(name))).mode & fs.constants.S_IFMT, type, `${name}: there at once after it is made`)
  }
  t.same((await fsp.readdir(d)).sort(), ['created', 'link', 'madedir', 'renamed'])
  // A directory made inside is known empty as well, and a name made in it shows.
  const inner = p('madedir')
  const mid = fullHits()
  await t.rejects(fsp.lstat(path.join(inner, 'x')), { code: 'ENOENT' })
  t.equal(fullHits(), mid + 1, 'a lookup in the directory made inside it was answered missing there')
  await fsp.writeFile(path.join(inner, 'x'), 'inside')
  t.equal(await fsp.readFile(path.join(inner, 'x'), 'utf8'), 'inside')

  // A name too long for a key there is the daemon's to refuse, not answered missing.
  const deep = path.join(base, ...Array.from({ length: 5 }, (_, i) => `${i}`.repeat(180))) // a key of 904 bytes
  await fsp.mkdir(deep, { recursive: true })
  const deepBefore = fullHits()
  await t.rejects(fsp.lstat(path.join(deep, 'y'.repeat(200))), { code: 'ENAMETOOLONG' }, 'a key over 1,024 bytes')
  await t.rejects(fsp.lstat(path.join(deep, 'y'.repeat(300))), { code: 'ENAMETOOLONG' }, 'a name over 255 bytes')
  t.equal(fullHits(), deepBefore, 'neither was answered on the FUSE thread')
  await t.rejects(fsp.lstat(path.join(deep, 'y'.repeat(100))), { code: 'ENOENT' })
  t.equal(fullHits(), deepBefore + 1, 'a name that fits was')

  // A directory renamed onto the empty one brings its names along.
  const onto = path.join(base, 'onto')
  const from = path.join(base, 'from')
  await fsp.mkdir(onto)
  await fsp.mkdir(from)
  await fsp.writeFile(path.join(from, 'carried'), 'along')
  await t.rejects(fsp.lstat(path.join(onto, 'carried')), { code: 'ENOENT' })
  await fsp.rename(from, onto)
  if (root) await forgetKernelNames()
  t.equal(await fsp.readFile(path.join(onto, 'carried'), 'utf8'), 'along', 'the renamed directory\'s file is found under the name it took')

  // A directory with no marker has its bucket's owner and time: a change of the bucket's
  // reaches it at once, also where a listing had put it.
  if (root) {
    const other = Store.open(data)
    try { await other.putObject('full-58', 'implied/inner', 'x') } finally { other.close() }
    await sleep(1100) // the kernel's entries from the mkdirs above are gone
    await fsp.readdir(base)
    await fsp.utimes(base, new Date(1_000_000_000_000), new Date(1_100_000_000_000))
    await forgetKernelNames()
    t.equal((await fsp.lstat(path.join(base, 'implied'))).mtimeMs, 1_100_000_000_000, 'an implied directory shows its bucket\'s new time')
  }

  // Past that second, a miss in a small directory puts every name in it again: what it
  // holds, what is being written there and what another process put are all found.
  const old = path.join(base, 'old')
  await fsp.mkdir(old)
  await fsp.writeFile(path.join(old, 'a'), 'stored')
  await fsp.mkdir(path.join(old, 'sub'))
  const open = await fsp.open(path.join(old, 'b'), 'w')
  await open.write('being written')
  const cli = Store.open(data)
  try { await cli.putObject('full-58', 'old/fromcli', 'put elsewhere') } finally { cli.close() }
  await sleep(1100)
  await t.rejects(fsp.lstat(path.join(old, 'first-miss')), { code: 'ENOENT' }, 'a miss the daemon answers')
  const listedBefore = fullHits()
  for (let i = 0; i < 10; i++) await t.rejects(fsp.lstat(path.join(old, `miss${i}`)), { code: 'ENOENT' })
  t.equal(fullHits() - listedBefore, 10, 'the next misses there were answered on the FUSE thread')
  if (root) await forgetKernelNames()
  t.equal((await fsp.lstat(path.join(old, 'a'))).size, 6, 'a stored file is found')
  t.equal((await fsp.lstat(path.join(old, 'b'))).size, 13, 'a file being written is found')
  t.ok((await fsp.lstat(path.join(old, 'sub'))).isDirectory(), 'a directory is found')
  t.equal(await fsp.readFile(path.join(old, 'fromcli'), 'utf8'), 'put elsewhere', 'what another process put is found')
  await open.close()
  await fsp.writeFile(path.join(old, 'made-after'), 'new')
  if (root) await forgetKernelNames()
  t.equal(await fsp.readFile(path.join(old, 'made-after'), 'utf8'), 'new', 'a name made afterwards is found')

  // Another process's put shows once the directory's time (1 s) and the kernel's are up.
  const e = path.join(base, 'external')
  await fsp.mkdir(e)
  await t.rejects(fsp.lstat(path.join(e, 'put')), { code: 'ENOENT' })
  const other = Store.open(data)
  try { await other.putObject('full-58', 'external/put', 'from elsewhere') } finally { other.close() }
  await sleep(2100)
  t.equal(await fsp.readFile(path.join(e, 'put'), 'utf8'), 'from elsewhere', 'a put by another process shows within two timeouts')
  const late = fullHits()
  await t.rejects(fsp.lstat(path.join(e, 'other')), { code: 'ENOENT' })
  t.equal(fullHits(), late, 'after its second, a lookup there reaches the daemon')
})

const listingsHeld = (): number => fastPathStats()?.listings ?? 0
const listingHits = (): number => fastPathStats()?.listingHits ?? 0

/**
 * Lists parent until a directory in it has been listed ahead and put (a late release's
 * forget may refuse a put; a directory is not listed ahead again within a second).
 */
async function listAheadOf (parent: string): Promise<boolean> {
  for (let i = 0; i < 4; i++) {
    const before = listingsHeld()
    await fsp.readdir(parent)
    for (let j = 0; j < 100; j++) {
      if (listingsHeld() > before) return true
      await sleep(5)
    }
    await sleep(1100)
  }
  return false
}

t.test('a walk\'s readdirs are answered from listings made ahead, with what the daemon lists', { skip: fastPathStats() === undefined ? 'the fuse-native addon has no fast path' : false }, async t => {
  const { mnt } = await mountTemp(t, 'walk')
  const top = path.join(mnt, 'ahead-58', 'top')
  const expected = new Map<string, string[]>()
  for (let i = 0; i < 5; i++) {
    const d = path.join(top, `d${i}`)
    await fsp.mkdir(path.join(d, 's'), { recursive: true })
    for (let j = 0; j < 3; j++) await fsp.writeFile(path.join(d, `f${j}`), `${i}${j}`)
    await fsp.symlink('f0', path.join(d, 'link'))
    await fsp.writeFile(path.join(d, 's', 'g'), 'deep')
    expected.set(d, ['f0', 'f1', 'f2', 'link/l', 's/d'])
    expected.set(path.join(d, 's'), ['g'])
  }
  expected.set(top, Array.from({ length: 5 }, (_, i) => `d${i}/d`))
  await sleep(300) // the kernel's late releases forget what they touch: let them land first

  /** Every directory's names with their types, as a program walking the tree sees them. */
  const walk = async (dir: string, out: Map<string, string[]>): Promise<void> => {
    const entries = await fsp.readdir(dir, { withFileTypes: true })
    out.set(dir, entries.map(e => e.name + (e.isDirectory() ? '/d' : e.isSymbolicLink() ? '/l' : '')).sort())
    for (const e of entries) if (e.isDirectory()) await walk(path.join(dir, e.name), out)
  }
  const before = listingHits()
  const seen = new Map<string, string[]>()
  await walk(top, seen)
  t.same(Object.fromEntries(seen), Object.fromEntries(expected), 'every directory with its names and their types')
  t.ok(listingHits() > before, `readdirs were answered from listings made ahead (${listingHits() - before} of ${seen.size})`)
})

t.test('a listing made ahead answers one readdir, within its second, and no op leaves one stale', { skip: fastPathStats() === undefined ? 'the fuse-native addon has no fast path' : false }, async t => {
  const { mnt } = await mountTemp(t, 'stale')
  const base = path.join(mnt, 'ahead-58')
  let n = 0
  /** A parent holding a file `in` and directory c (files f0 and f1, directories e, empty, and s, holding g). */
  const make = async (): Promise<{ parent: string, c: string }> => {
    const parent = path.join(base, `p${n++}`)
    const c = path.join(parent, 'c')
    await fsp.mkdir(path.join(c, 'e'), { recursive: true })
    await fsp.mkdir(path.join(c, 's'))
    await fsp.writeFile(path.join(c, 's', 'g'), 'g')
    await fsp.writeFile(path.join(c, 'f0'), 'zero')
    await fsp.writeFile(path.join(c, 'f1'), 'one')
    await fsp.writeFile(path.join(parent, 'in'), 'moved in')
    await sleep(300) // the kernel's late releases
    return { parent, c }
  }
  const names = async (dir: string): Promise<string[]> => (await fsp.readdir(dir)).sort()

  await t.test('unchanged, it answers once', async t => {
    const { parent, c } = await make()
    t.ok(await listAheadOf(parent), 'c was listed ahead')
    const before = listingHits()
    t.same(await names(c), ['e', 'f0', 'f1', 's'])
    t.equal(listingHits(), before + 1, 'its readdir was answered from the listing')
    t.same(await names(c), ['e', 'f0', 'f1', 's'])
    t.equal(listingHits(), before + 1, 'the next one by the daemon')
  })

  await t.test('past its second, it answers nothing', async t => {
    const { parent, c } = await make()
    t.ok(await listAheadOf(parent), 'c was listed ahead')
    await sleep(1100)
    const before = listingHits()
    t.same(await names(c), ['e', 'f0', 'f1', 's'])
    t.equal(listingHits(), before, 'its readdir was answered by the daemon')
  })

  const ops: Array<[string, (parent: string, c: string) => Promise<unknown>, string[]]> = [
    ['create', async (_p, c) => { await fsp.writeFile(path.join(c, 'new'), 'n') }, ['e', 'f0', 'f1', 'new', 's']],
    ['a file left open for writing', async (_p, c) => {
      const fh = await fsp.open(path.join(c, 'open'), 'w')
      t.teardown(async () => { await fh.close().catch(() => {}) })
      await fh.write('being written')
    }, ['e', 'f0', 'f1', 'open', 's']],
    ['unlink', async (_p, c) => { await fsp.unlink(path.join(c, 'f0')) }, ['e', 'f1', 's']],
    ['mkdir', async (_p, c) => { await fsp.mkdir(path.join(c, 'nd')) }, ['e', 'f0', 'f1', 'nd', 's']],
    ['rmdir', async (_p, c) => { await fsp.rmdir(path.join(c, 'e')) }, ['f0', 'f1', 's']],
    ['symlink', async (_p, c) => { await fsp.symlink('f0', path.join(c, 'l')) }, ['e', 'f0', 'f1', 'l', 's']],
    ['rename inside', async (_p, c) => { await fsp.rename(path.join(c, 'f0'), path.join(c, 'g0')) }, ['e', 'f1', 'g0', 's']],
    ['rename out', async (p, c) => { await fsp.rename(path.join(c, 'f0'), path.join(p, 'out')) }, ['e', 'f1', 's']],
    ['rename in', async (p, c) => { await fsp.rename(path.join(p, 'in'), path.join(c, 'in')) }, ['e', 'f0', 'f1', 'in', 's']],
    ['rename a directory out', async (p, c) => { await fsp.rename(path.join(c, 's'), path.join(p, 's2')) }, ['e', 'f0', 'f1']],
    ['the directory renamed and another made in its place', async (p, c) => {
      await fsp.rename(c, path.join(p, 'c-old'))
      await fsp.mkdir(c)
      await fsp.writeFile(path.join(c, 'other'), 'o')
    }, ['other']],
    ['the directory above renamed and remade', async (p, c) => {
      await fsp.rename(p, p + '-old')
      await fsp.mkdir(c, { recursive: true })
      await fsp.writeFile(path.join(c, 'z'), 'z')
    }, ['z']],
    ['the directory removed and made again', async (_p, c) => {
      await fsp.rm(c, { recursive: true })
      await fsp.mkdir(c)
    }, []]
  ]
  for (const [name, op, after] of ops) {
    const { parent, c } = await make()
    t.ok(await listAheadOf(parent), `${name}: c was listed ahead`)
    await op(parent, c)
    const before = listingHits()
    t.same(await names(c), after, `${name}: its readdir shows the change`)
    t.equal(listingHits(), before, `${name}: answered by the daemon, not from the listing made before`)
  }

  await t.test('under .versions, where a save adds names without an op on them, nothing is listed ahead', async t => {
    const file = path.join(base, 'ver', 'v', 'file')
    await fsp.mkdir(path.dirname(file), { recursive: true })
    await fsp.writeFile(file, 'v1')
    await fsp.writeFile(file, 'v2')
    await sleep(300)
    const held = listingsHeld()
    const versions = path.join(base, '.versions', 'ver', 'v')
    t.same(await fsp.readdir(versions), ['file'])
    await sleep(100)
    t.equal(listingsHeld(), held, 'the versions of a key are not listed ahead')
    // (An unversioned bucket: the one version's name carries the time it was saved.)
    const was = await fsp.readdir(path.join(versions, 'file'))
    await fsp.writeFile(file, 'v3')
    const now = await fsp.readdir(path.join(versions, 'file'))
    t.equal(now.length, 1)
    t.not(now[0], was[0], 'a save shows there at once')
  })
})
