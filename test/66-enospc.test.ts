// A full disk is an error, not a corruption (SPEC §2: "a full disk (ENOSPC, and
// nothing already stored is lost)"; issue 6). The data directory lives on a small
// tmpfs made by the test (we run as root), always unmounted in teardown:
// - chunk files that do not fit: the failing write or close gets ENOSPC (never EIO),
//   the daemon keeps serving, everything stored earlier is intact, and after deleting
//   files and `bucketfs gc` writing works again;
// - SQLite unable to grow (the tmpfs filled with a plain file): metadata-only ops
//   (mkdir, rename, setxattr, small-file creates) fail with ENOSPC or succeed, and each
//   is all-or-nothing; after freeing space fsck is clean and everything works.
// Needs the built daemon (`npm run build`), /dev/fuse and root (mount -t tmpfs).
import t from 'tap'
import fs from 'node:fs'
import path from 'node:path'
import { spawn, spawnSync } from 'node:child_process'
import Database from 'better-sqlite3'
import { Mount, BIN, isMounted } from './helpers/mount'
import { errnoOf, run, sha256, sha256File, Prng, KiB, MiB, sleep } from './helpers/e2e'

process.umask(0o022)

const TMPFS_SIZE = '64m'

/** strerror text (LC_ALL=C) → errno code, for tools like setfattr that only print it. */
const STRERROR: Record<string, string> = {
  'No space left on device': 'ENOSPC',
  'Input/output error': 'EIO',
  'Disk quota exceeded': 'EDQUOT',
  'Argument list too long': 'E2BIG',
  'No such file or directory': 'ENOENT',
  'Transport endpoint is not connected': 'ENOTCONN'
}

function setfattr (file: string, name: string, value: string): string {
  const r = run('setfattr', ['-n', name, '-v', value, file])
  if (r.status === 0) return 'ok'
  for (const [text, code] of Object.entries(STRERROR)) if (r.stderr.includes(text)) return code
  return `setfattr failed: ${r.stderr.trim()}`
}

function cli (dataDir: string, ...args: string[]): { status: number | null, out: string } {
  const env = { ...process.env }
  delete env.DEBUG
  const r = spawnSync(process.execPath, [BIN, ...args, '--data', dataDir], { encoding: 'utf8', env, timeout: 120_000 })
  return { status: r.status, out: `${r.stdout ?? ''}${r.stderr ?? ''}` }
}

/**
 * A mount whose data dir is a tmpfs of TMPFS_SIZE. Teardown (also after a failure):
 * stop the daemon, unmount the tmpfs (lazily if it is busy), then remove the temp dirs.
 * If this process dies without teardown, a detached watchdog unmounts the tmpfs.
 */
async function tmpfsMount (t: tap.Test, args: string[] = []): Promise<Mount> {
  const m = new Mount({ args })
  fs.mkdirSync(m.dataDir, { mode: 0o700 })
  const mounted = spawnSync('mount', ['-t', 'tmpfs', '-o', `size=${TMPFS_SIZE},mode=0700`, 'tmpfs', m.dataDir], { encoding: 'utf8' })
  if (mounted.status !== 0) throw new Error(`mount -t tmpfs failed: ${mounted.stderr}`)
  const dog = spawn('sh', ['-c', 'read _x; sleep 2; umount -l "$1" 2>/dev/null', 'bucketfs-tmpfs-watchdog', m.dataDir], { detached: true, stdio: ['pipe', 'ignore', 'ignore'] })
  dog.unref()
  t.teardown(async () => {
    await m.stop()
    if (isMounted(m.dataDir)) {
      if (spawnSync('umount', [m.dataDir]).status !== 0) spawnSync('umount', ['-l', m.dataDir])
    }
    if (dog.pid !== undefined && dog.exitCode === null) { try { process.kill(dog.pid, 'SIGKILL') } catch {} }
    dog.stdin?.destroy()
    await m.cleanup()
  })
  await m.start()
  return m
}

/** Writes `data` to a new file in 1 MiB writes; reports which step failed and how. */
function writeFile (file: string, data: Buffer): { step: 'open' | 'write' | 'close' | 'done', code: string } {
  let fd: number
  try { fd = fs.openSync(file, 'w') } catch (err) { return { step: 'open', code: (err as NodeJS.ErrnoException).code ?? String(err) } }
  let failed: { step: 'write', code: string } | undefined
  for (let off = 0; off < data.length && failed === undefined; off += MiB) {
    try { fs.writeSync(fd, data, off, Math.min(MiB, data.length - off)) } catch (err) { failed = { step: 'write', code: (err as NodeJS.ErrnoException).code ?? String(err) } }
  }
  const closed = errnoOf(() => { fs.closeSync(fd) })
  if (failed !== undefined) return failed
  return closed === 'ok' ? { step: 'done', code: 'ok' } : { step: 'close', code: closed }
}

function eioLines (m: Mount): string[] {
  return m.log().split('\n').filter(l => /EIO/.test(l))
}

t.test('chunk files that do not fit: ENOSPC, the daemon serves on, nothing stored is lost', async t => {
  // A small write budget, so dirty data that a failed close leaves behind shows (see the last step).
  const m = await tmpfsMount(t, ['--write-budget', '1'])
  const b = path.join(m.mountpoint, 'full-66')
  fs.mkdirSync(b)
  const rng = new Prng(66)
  const kept = new Map<string, string>()
  for (const [name, size] of [['big-1.bin', 3 * MiB], ['big-2.bin', 3 * MiB + 123], ['small-1.txt', 10 * KiB], ['small-2.txt', 200], ['empty', 0]] as const) {
    const data = rng.bytes(size)
    fs.writeFileSync(path.join(b, name), data)
    kept.set(name, sha256(data))
  }
  const before = fs.statfsSync(m.mountpoint)
  t.ok(before.blocks * before.bsize <= 64 * MiB + MiB, `statfs shows the tmpfs (${before.blocks * before.bsize} bytes)`)

  // Fill the disk with 8 MiB files of random data until a write or close fails.
  const fillers: string[] = []
  let failure: { step: string, code: string, file: string } | undefined
  for (let i = 0; i < 20 && failure === undefined; i++) {
    const f = path.join(b, `fill-${i}.bin`)
    const r = writeFile(f, rng.bytes(8 * MiB))
    if (r.step === 'done') fillers.push(f)
    else failure = { ...r, file: path.basename(f) }
  }
  t.ok(failure !== undefined, `a file failed to be stored once the disk was full (after ${fillers.length} × 8 MiB)`, { failure })
  t.equal(failure?.code, 'ENOSPC', `the ${failure?.step ?? '?'} of ${failure?.file ?? '?'} failed with ENOSPC (not EIO)`)
  t.ok(failure?.step === 'write' || failure?.step === 'close', 'it was a write or the close that failed')
  t.ok(m.pid !== undefined, 'the daemon is still running')

  // More attempts on the full disk: each fails cleanly too.
  const again = writeFile(path.join(b, 'again.bin'), rng.bytes(3 * MiB))
  t.equal(again.code, 'ENOSPC', `another write on the full disk: ENOSPC at ${again.step}`)
  {
    // fsync of a file with unsaved data on the full disk: ENOSPC (the write itself may be accepted: it is buffered).
    // A whole chunk: the last refusal was of a 1 MiB chunk, so less than that is left above
    // the reserve (a smaller one may still fit, depending on how much the database took).
    const fd = fs.openSync(path.join(b, 'fsync-full.bin'), 'w')
    const w = errnoOf(() => fs.writeSync(fd, rng.bytes(MiB)))
    const s2 = w === 'ok' ? errnoOf(() => { fs.fsyncSync(fd) }) : 'not reached'
    const c = errnoOf(() => { fs.closeSync(fd) })
    t.ok(w === 'ok' || w === 'ENOSPC', `a 1 MiB write on the full disk: ${w}`)
    t.ok(s2 === 'ENOSPC' || s2 === 'not reached', `its fsync: ${s2}`)
    t.ok(c === 'ENOSPC' || c === 'ok', `its close: ${c}`)
    errnoOf(() => { fs.unlinkSync(path.join(b, 'fsync-full.bin')) })
  }
  const small = errnoOf(() => { fs.writeFileSync(path.join(b, 'small-new.txt'), rng.bytes(100 * KiB)) })
  t.ok(small === 'ENOSPC' || small === 'ok', `a 100 KiB file on the full disk: ${small}`)

  // The daemon serves: stat, readdir, reads of everything stored earlier.
  t.ok(fs.statSync(path.join(b, 'big-1.bin')).isFile(), 'stat works')
  const names = fs.readdirSync(b)
  for (const [name, sum] of kept) {
    t.ok(names.includes(name), `${name} is listed`)
    t.equal(sha256File(path.join(b, name)), sum, `${name} is intact`)
  }
  for (const f of fillers) t.equal(fs.statSync(f).size, 8 * MiB, `${path.basename(f)} (stored before the disk filled) is whole`)
  if (failure !== undefined) {
    const st = errnoOf(() => fs.statSync(path.join(b, failure?.file ?? '')))
    t.ok(st === 'ENOENT' || st === 'ok', `the file that failed: ${st}`)
    if (st === 'ok') t.comment(`the failed file shows with ${fs.statSync(path.join(b, failure.file)).size} bytes`)
  }
  t.same(eioLines(m), [], 'the daemon log has no EIO')

  // Free space: delete the fillers, gc, write again. Deleting must work on the full
  // disk (as on any filesystem), or a user has no way to free space through the mount.
  const unlinked = fillers.map(f => errnoOf(() => { fs.unlinkSync(f) }))
  t.same(unlinked.filter(c => c !== 'ok'), [], 'files can be deleted while the disk is full (to free space)', { unlinked })
  if (fillers.some(f => fs.existsSync(f))) {
    // Go on with the rest: make room by growing the tmpfs instead.
    t.comment(`unlinks on the full disk: ${unlinked.join(' ')}; growing the tmpfs to 96m to go on`)
    t.equal(spawnSync('mount', ['-o', 'remount,size=96m', m.dataDir]).status, 0, 'tmpfs grown')
    for (const f of fillers) errnoOf(() => { fs.unlinkSync(f) })
  }
  t.same(fillers.filter(f => fs.existsSync(f)), [], 'the fillers are deleted')
  for (const f of [failure?.file, 'again.bin', 'small-new.txt']) if (f !== undefined) errnoOf(() => { fs.unlinkSync(path.join(b, f)) })
  await sleep(300)
  const gc = cli(m.dataDir, 'gc')
  t.equal(gc.status, 0, `bucketfs gc: ${gc.out.trim()}`)
  {
    // Nothing is being written now: no chunk may stay pinned (a pin by the live daemon keeps gc off it).
    const db = new Database(path.join(m.dataDir, 'meta.db'), { readonly: true })
    const pins = db.prepare('SELECT COUNT(*) AS n, COALESCE(SUM(c.size), 0) AS bytes FROM pins p JOIN chunks c ON c.id = p.chunk').get() as { n: number, bytes: number }
    db.close()
    t.same(pins, { n: 0, bytes: 0 }, 'no chunk stays pinned by the failed writes (gc could never free it while the daemon runs)')
  }
  const data = rng.bytes(12 * MiB)
  const r = writeFile(path.join(b, 'after.bin'), data)
  t.same(r, { step: 'done', code: 'ok' }, 'a 12 MiB file is stored once space is free again')
  t.equal(sha256File(path.join(b, 'after.bin')), sha256(data), 'and reads back exactly')
  for (const [name, sum] of kept) t.equal(sha256File(path.join(b, name)), sum, `${name} is still intact`)

  // The dirty data of the files that failed must not stay charged to the write budget:
  // 512 KiB written (less than a chunk and half the 1 MiB budget) is not flushed
  // before close, so no upload shows for it while it is open.
  const fd = fs.openSync(path.join(b, 'budget.bin'), 'w')
  for (let i = 0; i < 8; i++) fs.writeSync(fd, rng.bytes(64 * KiB))
  // (Read the database in this process: a child process would inherit the open
  // descriptor and close it at exec, and FUSE turns that close into a flush.)
  const db = new Database(path.join(m.dataDir, 'meta.db'), { readonly: true })
  const uploads = db.prepare('SELECT key, size FROM uploads').all() as Array<{ key: string, size: number }>
  db.close()
  t.same(uploads.filter(u => u.key === 'budget.bin'), [], 'a half-chunk file being written is not flushed early (failed closes do not leak the write budget)', { uploads })
  fs.closeSync(fd)
  t.same(uploads.filter(u => u.key !== 'budget.bin'), [], 'no upload of a file whose close failed is left behind (its parts would hold chunks gc cannot free)')

  const fsck = cli(m.dataDir, 'fsck', '--deep')
  t.equal(fsck.status, 0, 'fsck --deep is clean', { out: fsck.out })
  t.same(eioLines(m), [], 'the daemon log has no EIO')
  t.equal(await m.stop(), 0, 'the daemon exits 0')
  t.notOk(m.leftMountBehind, 'and leaves no mount')
})

t.test('the metadata database cannot grow: ENOSPC for metadata ops, all-or-nothing, fsck clean after', async t => {
  const m = await tmpfsMount(t)
  const b = path.join(m.mountpoint, 'meta-66')
  fs.mkdirSync(b)
  const rng = new Prng(6602)
  const kept = new Map<string, string>()
  for (let i = 0; i < 20; i++) {
    const data = rng.bytes(i % 3 === 0 ? 300 * KiB : 2 * KiB)
    fs.writeFileSync(path.join(b, `f${i}.bin`), data)
    kept.set(`f${i}.bin`, sha256(data))
  }
  fs.mkdirSync(path.join(b, 'dir'))

  // Fill the tmpfs with a plain file next to the store (not a chunk).
  const filler = path.join(m.dataDir, 'filler')
  const fd = fs.openSync(filler, 'w')
  let filled = 0
  for (const size of [MiB, 4 * KiB, 512]) {
    const buf = Buffer.alloc(size, 1)
    for (;;) {
      try { fs.writeSync(fd, buf); filled += size } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOSPC') throw err
        break
      }
    }
  }
  fs.closeSync(fd)
  t.comment(`filled the tmpfs with ${filled} bytes; free now: ${fs.statfsSync(m.dataDir).bavail} blocks`)

  // Metadata-only ops until SQLite cannot grow any more: each succeeds or fails with ENOSPC.
  const outcomes = new Map<string, Map<string, number>>()
  const count = (op: string, code: string): void => {
    const m2 = outcomes.get(op) ?? new Map<string, number>()
    m2.set(code, (m2.get(code) ?? 0) + 1)
    outcomes.set(op, m2)
  }
  const made: string[] = []
  const refused: string[] = []
  const started = Date.now()
  let firstEnospc = -1
  for (let i = 0; i < 20000 && Date.now() - started < 40_000; i++) {
    const d = path.join(b, 'dir', `d${i}-${'x'.repeat(100)}`)
    const code = errnoOf(() => { fs.mkdirSync(d) })
    count('mkdir', code)
    if (code === 'ok') made.push(d)
    else refused.push(d)
    if (code !== 'ok' && firstEnospc < 0) firstEnospc = i
    if (code !== 'ok' && code !== 'ENOSPC') break
    if (firstEnospc >= 0 && i > firstEnospc + 20) break
  }
  t.ok(firstEnospc >= 0, `mkdir failed once the database could not grow (after ${made.length} directories)`)
  // Now the other metadata ops, several times each.
  const renamed: Array<{ from: string, to: string, code: string }> = []
  const xattrs: Array<{ file: string, code: string }> = []
  const creates: Array<{ file: string, code: string }> = []
  for (let i = 0; i < 10; i++) {
    const from = path.join(b, `f${i}.bin`)
    const to = path.join(b, `renamed-${i}.bin`)
    const code = errnoOf(() => { fs.renameSync(from, to) })
    count('rename', code)
    renamed.push({ from, to, code })
    const x = setfattr(path.join(b, `f${10 + i}.bin`), 'user.note', `value ${i} ${'y'.repeat(500)}`)
    count('setxattr', x)
    xattrs.push({ file: path.join(b, `f${10 + i}.bin`), code: x })
    const f = path.join(b, `new-${i}.txt`)
    const c = errnoOf(() => { fs.writeFileSync(f, `small file ${i}\n`) })
    count('create', c)
    creates.push({ file: f, code: c })
  }
  const summary = [...outcomes].map(([op, codes]) => `${op}: ${[...codes].map(([c, n]) => `${c} ×${n}`).join(', ')}`)
  t.comment(`outcomes on the full disk: ${summary.join('; ')}`)
  for (const [op, codes] of outcomes) {
    t.same([...codes.keys()].filter(c => c !== 'ok' && c !== 'ENOSPC'), [], `${op}: only ok or ENOSPC (never EIO)`)
  }
  t.ok(m.pid !== undefined, 'the daemon is still running')
  // Reads are served on the full disk.
  for (const [name, sum] of kept) {
    const moved = renamed.find(r => path.basename(r.from) === name && r.code === 'ok')
    const file = moved !== undefined ? moved.to : path.join(b, name)
    t.equal(sha256File(file), sum, `${path.basename(file)} reads back intact on the full disk`)
  }

  // Free the space; the store must be consistent and every op all-or-nothing.
  fs.unlinkSync(filler)
  const fsck = cli(m.dataDir, 'fsck', '--deep')
  t.equal(fsck.status, 0, 'fsck --deep is clean after freeing space', { out: fsck.out })
  await sleep(1100) // the kernel's attribute and name caches
  t.same(made.filter(d => !fs.existsSync(d)), [], 'every mkdir that succeeded made its directory')
  t.same(refused.filter(d => fs.existsSync(d)), [], 'no mkdir that failed left a directory')
  for (const r of renamed) {
    if (r.code === 'ok') t.ok(!fs.existsSync(r.from) && fs.existsSync(r.to), `rename ${path.basename(r.from)} (ok) moved it`)
    else t.ok(fs.existsSync(r.from) && !fs.existsSync(r.to), `rename ${path.basename(r.from)} (${r.code}) left it where it was`)
  }
  for (const x of xattrs) {
    const got = run('getfattr', ['--only-values', '--absolute-names', '-n', 'user.note', x.file])
    t.equal(got.status === 0, x.code === 'ok', `setxattr on ${path.basename(x.file)} (${x.code}) is ${x.code === 'ok' ? '' : 'not '}there`)
  }
  for (const c of creates) {
    const there = fs.existsSync(c.file)
    if (c.code === 'ok') t.equal(fs.readFileSync(c.file, 'utf8'), `small file ${path.basename(c.file).replace(/\D/g, '')}\n`, `${path.basename(c.file)} (ok) has its content`)
    else t.notOk(there && fs.statSync(c.file).size > 0, `${path.basename(c.file)} (${c.code}) left no half-written file`)
  }
  // And everything works again.
  t.equal(errnoOf(() => { fs.mkdirSync(path.join(b, 'after')) }), 'ok', 'mkdir works again')
  t.equal(errnoOf(() => { fs.writeFileSync(path.join(b, 'after', 'x.txt'), 'x') }), 'ok', 'a small file can be created again')
  t.equal(setfattr(path.join(b, 'after', 'x.txt'), 'user.note', 'ok'), 'ok', 'setxattr works again')
  t.same(eioLines(m), [], 'the daemon log has no EIO', { log: m.log().slice(-4000) })
  t.equal(await m.stop(), 0, 'the daemon exits 0')
  const fsck2 = cli(m.dataDir, 'fsck', '--deep')
  t.equal(fsck2.status, 0, 'fsck --deep is clean on the unmounted store', { out: fsck2.out })
})

/** A document of `size` random bytes in directory `name` of the mount, then files of 8 MiB until the disk is full. */
function docOnFullDisk (m: Mount, name: string, seed: number, size: number): { doc: string, original: Buffer, rng: Prng } {
  const b = path.join(m.mountpoint, name)
  fs.mkdirSync(b)
  const rng = new Prng(seed)
  const doc = path.join(b, 'doc.bin')
  const original = rng.bytes(size)
  fs.writeFileSync(doc, original)
  for (let i = 0; i < 20; i++) {
    if (writeFile(path.join(b, `fill-${i}.bin`), rng.bytes(8 * MiB)).step !== 'done') break
  }
  return { doc, original, rng }
}

t.test('an overwrite that failed on the full disk never becomes the file later', async t => {
  const m = await tmpfsMount(t)
  const { doc, original, rng } = docOnFullDisk(m, 'overwrite-66', 6603, 3 * MiB)
  // Overwrite the document in place (as an editor or a database does) on the full disk.
  const fd = fs.openSync(doc, 'r+')
  const writes: string[] = []
  for (let i = 0; i < 3; i++) writes.push(errnoOf(() => fs.writeSync(fd, rng.bytes(MiB), 0, MiB, i * MiB)))
  const closed = errnoOf(() => { fs.closeSync(fd) })
  t.ok([...writes, closed].includes('ENOSPC'), `the overwrite failed: writes ${writes.join(' ')}, close ${closed}`)
  t.same([...writes, closed].filter(c => c !== 'ok' && c !== 'ENOSPC'), [], 'with ENOSPC only')
  await sleep(300)
  // A reader that only opens, reads and closes must not fail, nor finish the failed save.
  const rfd = fs.openSync(doc, 'r')
  const readClose = errnoOf(() => { fs.closeSync(rfd) })
  t.equal(readClose, 'ok', 'closing a read-only descriptor of the file succeeds on the full disk')
  t.equal(spawnSync('mount', ['-o', 'remount,size=96m', m.dataDir]).status, 0, 'space freed (tmpfs grown)')
  for (let i = 0; i < 3; i++) { const r = fs.openSync(doc, 'r'); fs.closeSync(r) }
  await sleep(300)
  t.equal(sha256File(doc), sha256(original), 'after space is back, the document still has its original content (the failed save was not completed later)')
  t.equal(await m.stop(), 0, 'the daemon exits 0')
  await m.start()
  t.equal(sha256File(doc), sha256(original), 'and after a remount too')
  const fsck = cli(m.dataDir, 'fsck', '--deep')
  t.equal(fsck.status, 0, 'fsck --deep is clean', { out: fsck.out })
})

t.test('a write answered early that then failed is never saved with a gap, even once space is back', async t => {
  // Each 1 MiB write fills a chunk, which is stored behind it: on the full disk that store
  // fails, and the next write hears of it before it takes its own bytes. Those are lost.
  const m = await tmpfsMount(t)
  const { doc, original, rng } = docOnFullDisk(m, 'gap-66', 6604, 8 * MiB)
  // Overwritten in place on the full disk; the FUSE thread answers these writes before
  // the daemon stores them. Space comes back before the close: the file must then be
  // either as it was or all of what was written, never some of it around a gap.
  const fd = fs.openSync(doc, 'r+')
  const writes: string[] = []
  const written = rng.bytes(8 * MiB)
  for (let i = 0; i < 8; i++) {
    writes.push(errnoOf(() => fs.writeSync(fd, written, i * MiB, MiB, i * MiB)))
    await sleep(100) // (the store behind it fails meanwhile)
  }
  const synced = errnoOf(() => { fs.fsyncSync(fd) })
  t.equal(spawnSync('mount', ['-o', 'remount,size=96m', m.dataDir]).status, 0, 'space freed (tmpfs grown)')
  const closed = errnoOf(() => { fs.closeSync(fd) })
  t.ok([...writes, synced].includes('ENOSPC'), `the disk was full: writes ${writes.join(' ')}, fsync ${synced}`)
  await sleep(300)
  const whole = (got: string): string => got === sha256(original) ? 'as it was' : got === sha256(written) ? 'all of what was written' : 'neither'
  fs.writeFileSync('/proc/sys/vm/drop_caches', '1\n') // (read what was stored, not the kernel's pages of the writes)
  const saved = whole(sha256File(doc))
  t.not(saved, 'neither', `the document is ${saved} (the close answered ${closed})`)
  t.equal(saved === 'as it was', closed !== 'ok', 'and the close failed exactly when the save was dropped')
  t.equal(await m.stop(), 0, 'the daemon exits 0')
  await m.start()
  t.equal(whole(sha256File(doc)), saved, 'the same after a remount')
})
