// Access control (issue 6, SPEC §3 store, §2 mount): the data directory is 0700 and
// the database (and its -wal/-shm) 0600, also under a permissive umask; the mount
// is private to the user who mounted it; with --allow-other the kernel checks the
// stored modes for another uid (read a 0644 file, not write it, not read a 0600
// one, no chown/chmod of others' files); no key, however crafted, makes bucketfs
// touch a path outside its data directory.
// Needs the built daemon (`npm run build`), /dev/fuse and root (to add a test user
// and run commands as it).
import t from 'tap'
import fs from 'node:fs'
import path from 'node:path'
import { spawnSync } from 'node:child_process'
import { Mount, startMount, BIN } from './helpers/mount'
import { scratchDir } from './helpers/e2e'

const USER = 'bucketfs-test-user'

function ensureUser (): { uid: number, gid: number } {
  const id = (flag: string): number => Number(spawnSync('id', [flag, USER], { encoding: 'utf8' }).stdout.trim())
  if (spawnSync('id', [USER]).status !== 0) {
    // A group of that name may be left from an earlier run (userdel without its group): join it.
    const group = spawnSync('getent', ['group', USER]).status === 0 ? ['-g', USER] : []
    const r = spawnSync('useradd', ['-M', '-s', '/usr/sbin/nologin', ...group, USER], { encoding: 'utf8' })
    if (r.status !== 0 && spawnSync('id', [USER]).status !== 0) throw new Error(`useradd failed: ${r.stderr}`)
  }
  return { uid: id('-u'), gid: id('-g') }
}

/**
 * Runs fs calls as the test user (runuser, so no capabilities): each entry of `ops` is
 * a JS expression using `fs`; the answer is 'ok', 'ok:<value>' or the errno code.
 */
function asOther (ops: Record<string, string>): Record<string, string> {
  const script = `
    const fs = require('fs'); const out = {}
    const ops = ${JSON.stringify(ops)}
    for (const [name, expr] of Object.entries(ops)) {
      try { const v = eval(expr); out[name] = v === undefined ? 'ok' : 'ok:' + String(v) } catch (e) { out[name] = e.code || String(e) }
    }
    process.stdout.write(JSON.stringify(out))`
  const r = spawnSync('runuser', ['-u', USER, '--', process.execPath, '-e', script], { encoding: 'utf8', cwd: '/', timeout: 60_000 })
  if (r.status !== 0) throw new Error(`runuser failed (${r.status}): ${r.stderr}`)
  return JSON.parse(r.stdout) as Record<string, string>
}

function cli (dataDir: string, ...args: string[]): { status: number | null, out: string } {
  const env = { ...process.env }
  delete env.DEBUG
  const r = spawnSync(process.execPath, [BIN, ...args, '--data', dataDir], { encoding: 'utf8', env, timeout: 120_000 })
  return { status: r.status, out: `${r.stdout ?? ''}${r.stderr ?? ''}` }
}

const modeOf = (p: string): string => (fs.statSync(p).mode & 0o7777).toString(8).padStart(4, '0')

/** Every path under dir, relative, with its mode. */
function modes (dir: string): Record<string, string> {
  const out: Record<string, string> = {}
  const walk = (d: string, rel: string): void => {
    for (const name of fs.readdirSync(d)) {
      const p = path.join(d, name)
      const r = rel === '' ? name : `${rel}/${name}`
      const st = fs.lstatSync(p)
      out[r] = (st.mode & 0o7777).toString(8).padStart(4, '0')
      if (st.isDirectory()) walk(p, r)
    }
  }
  walk(dir, '')
  return out
}

t.test('the store is private on disk, also under umask 000', async t => {
  const old = process.umask(0)
  let m: Mount
  try {
    m = await startMount(t) // the daemon inherits umask 000
  } finally {
    process.umask(old)
  }
  const b = path.join(m.mountpoint, 'private-68')
  fs.mkdirSync(b)
  fs.writeFileSync(path.join(b, 'big.bin'), Buffer.alloc(3 * 1024 * 1024, 7)) // chunk files
  fs.writeFileSync(path.join(b, 'small.txt'), 'small') // inline
  fs.closeSync(fs.openSync(path.join(b, 'open.txt'), 'w'))
  t.equal(modeOf(m.dataDir), '0700', 'the data directory is 0700')
  t.equal(modeOf(path.join(m.dataDir, 'meta.db')), '0600', 'meta.db is 0600')
  for (const suffix of ['-wal', '-shm']) {
    const f = path.join(m.dataDir, `meta.db${suffix}`)
    if (fs.existsSync(f)) t.equal(modeOf(f), '0600', `meta.db${suffix} is 0600`)
  }
  // The CLI opening the same store (and maybe re-creating -wal/-shm) keeps it private too.
  t.equal(cli(m.dataDir, 'stats').status, 0, 'bucketfs stats runs on the mounted store')
  const all = modes(m.dataDir)
  const loose = Object.entries(all).filter(([, mode]) => (parseInt(mode, 8) & 0o077) !== 0)
  t.same(loose, [], 'nothing in the data directory is readable or writable by group or others', { all })
  t.equal(await m.stop(), 0, 'the daemon exits 0')
  // A fresh CLI process on the unmounted store re-creates -wal/-shm: still 0600.
  const old2 = process.umask(0)
  try {
    t.equal(cli(m.dataDir, 'bucket', 'ls').status, 0, 'bucketfs bucket ls (umask 000)')
  } finally {
    process.umask(old2)
  }
  const after = Object.entries(modes(m.dataDir)).filter(([, mode]) => (parseInt(mode, 8) & 0o077) !== 0)
  t.same(after, [], 'still nothing readable by others after the CLI opened it')
})

t.test('the mount is private to its user by default', async t => {
  ensureUser()
  const m = await startMount(t)
  fs.chmodSync(m.root, 0o755) // let the other user reach the mountpoint at all
  const b = path.join(m.mountpoint, 'private-mount-68')
  fs.mkdirSync(b, 0o755)
  fs.writeFileSync(path.join(b, 'public.txt'), 'readable by anyone, were it allowed', { mode: 0o644 })
  fs.chmodSync(path.join(b, 'public.txt'), 0o644)
  const r = asOther({
    readdirRoot: `fs.readdirSync(${JSON.stringify(m.mountpoint)}).length`,
    statBucket: `fs.statSync(${JSON.stringify(b)}).mode`,
    read: `fs.readFileSync(${JSON.stringify(path.join(b, 'public.txt'))}, 'utf8')`,
    create: `fs.writeFileSync(${JSON.stringify(path.join(b, 'x.txt'))}, 'x')`
  })
  t.same(r, { readdirRoot: 'EACCES', statBucket: 'EACCES', read: 'EACCES', create: 'EACCES' }, 'another uid cannot even list the mount')
  t.notOk(fs.existsSync(path.join(b, 'x.txt')), 'nothing was created')
})

t.test('--allow-other: the kernel checks the stored modes for another uid', async t => {
  const other = ensureUser()
  const m = await startMount(t, { args: ['--allow-other'] })
  fs.chmodSync(m.root, 0o755)
  const b = path.join(m.mountpoint, 'shared-68')
  fs.mkdirSync(b, 0o755)
  fs.chmodSync(b, 0o755)
  const f = (n: string): string => path.join(b, n)
  const mk = (n: string, mode: number): void => { fs.writeFileSync(f(n), `content of ${n}`); fs.chmodSync(f(n), mode) }
  mk('public.txt', 0o644)
  mk('secret.txt', 0o600)
  mk('world-writable.txt', 0o666)
  mk('theirs.txt', 0o644)
  fs.chownSync(f('theirs.txt'), other.uid, other.gid)
  fs.mkdirSync(f('closed-dir'), 0o700)
  fs.chmodSync(f('closed-dir'), 0o700)
  fs.writeFileSync(path.join(f('closed-dir'), 'inside.txt'), 'inside')
  fs.mkdirSync(f('open-dir'))
  fs.chmodSync(f('open-dir'), 0o777)
  await new Promise(resolve => setTimeout(resolve, 1100)) // attribute caches
  const q = JSON.stringify
  const r = asOther({
    readPublic: `fs.readFileSync(${q(f('public.txt'))}, 'utf8')`,
    writePublic: `fs.writeFileSync(${q(f('public.txt'))}, 'overwritten')`,
    appendPublic: `fs.appendFileSync(${q(f('public.txt'))}, 'more')`,
    truncatePublic: `fs.truncateSync(${q(f('public.txt'))}, 0)`,
    readSecret: `fs.readFileSync(${q(f('secret.txt'))}, 'utf8')`,
    statSecret: `(fs.statSync(${q(f('secret.txt'))}).mode & 0o777).toString(8)`,
    chownPublic: `fs.chownSync(${q(f('public.txt'))}, ${other.uid}, ${other.gid})`,
    chmodPublic: `fs.chmodSync(${q(f('public.txt'))}, 0o666)`,
    unlinkPublic: `fs.unlinkSync(${q(f('public.txt'))})`,
    renamePublic: `fs.renameSync(${q(f('public.txt'))}, ${q(f('moved.txt'))})`,
    createInBucket: `fs.writeFileSync(${q(f('mine.txt'))}, 'mine')`,
    mkdirInBucket: `fs.mkdirSync(${q(f('my-dir'))})`,
    listClosed: `fs.readdirSync(${q(f('closed-dir'))}).length`,
    readInClosed: `fs.readFileSync(${q(path.join(f('closed-dir'), 'inside.txt'))}, 'utf8')`,
    writeWorld: `fs.writeFileSync(${q(f('world-writable.txt'))}, 'written by other')`,
    writeTheirs: `fs.writeFileSync(${q(f('theirs.txt'))}, 'written by owner')`,
    chmodTheirs: `fs.chmodSync(${q(f('theirs.txt'))}, 0o600)`,
    chownTheirsToRoot: `fs.chownSync(${q(f('theirs.txt'))}, 0, 0)`,
    createInOpenDir: `fs.writeFileSync(${q(path.join(f('open-dir'), 'new.txt'))}, 'new')`,
    mkBucket: `fs.mkdirSync(${q(path.join(m.mountpoint, 'other-user-bucket'))})`,
    versions: `fs.readdirSync(${q(path.join(b, '.versions', 'public.txt'))}).length`
  })
  t.equal(r.readPublic, 'ok:content of public.txt', 'the other uid reads a 0644 file')
  t.equal(r.writePublic, 'EACCES', 'cannot write it')
  t.equal(r.appendPublic, 'EACCES', 'cannot append to it')
  t.equal(r.truncatePublic, 'EACCES', 'cannot truncate it')
  t.equal(r.readSecret, 'EACCES', 'cannot read a 0600 file')
  t.equal(r.statSecret, 'ok:600', 'but may stat it')
  t.equal(r.chownPublic, 'EPERM', 'cannot chown a file')
  t.equal(r.chmodPublic, 'EPERM', 'cannot chmod a file it does not own')
  t.equal(r.unlinkPublic, 'EACCES', 'cannot unlink in a 0755 directory of another user')
  t.equal(r.renamePublic, 'EACCES', 'cannot rename there')
  t.equal(r.createInBucket, 'EACCES', 'cannot create there')
  t.equal(r.mkdirInBucket, 'EACCES', 'cannot mkdir there')
  t.equal(r.listClosed, 'EACCES', 'cannot list a 0700 directory')
  t.equal(r.readInClosed, 'EACCES', 'cannot reach into it')
  t.equal(r.writeWorld, 'ok', 'may write a 0666 file')
  t.equal(r.writeTheirs, 'ok', 'may write its own 0644 file')
  t.equal(r.chmodTheirs, 'ok', 'may chmod its own file')
  t.equal(r.chownTheirsToRoot, 'EPERM', 'may not give its file away (chown is for root)')
  t.equal(r.createInOpenDir, 'ok', 'may create in a 0777 directory')
  t.equal(r.mkBucket, 'EACCES', 'cannot create a bucket in the root (0755, root\'s)')
  t.ok(['EACCES', 'ok:1', 'ok:0'].includes(r.versions), `the .versions tree of a 0644 file: ${r.versions}`)
  await new Promise(resolve => setTimeout(resolve, 1100))
  t.equal(fs.readFileSync(f('public.txt'), 'utf8'), 'content of public.txt', 'public.txt is unchanged')
  t.equal(fs.readFileSync(f('world-writable.txt'), 'utf8'), 'written by other', 'world-writable.txt has the other user\'s write')
  t.equal(fs.readFileSync(f('theirs.txt'), 'utf8'), 'written by owner', 'theirs.txt has its owner\'s write')
  t.equal(fs.statSync(f('theirs.txt')).uid, other.uid, 'theirs.txt still belongs to the other user')
  t.equal(fs.statSync(f('theirs.txt')).mode & 0o777, 0o600, 'and has the mode it set')
  t.notOk(fs.existsSync(f('moved.txt')), 'nothing was renamed')
  t.notOk(fs.existsSync(f('mine.txt')), 'nothing was created in the bucket')
  {
    const st = fs.statSync(path.join(f('open-dir'), 'new.txt'))
    t.same([st.uid, st.gid], [other.uid, other.gid], 'a file the other user created belongs to that user (the caller FUSE names)')
    const again = asOther({ chmodNew: `fs.chmodSync(${q(path.join(f('open-dir'), 'new.txt'))}, 0o600)` })
    t.equal(again.chmodNew, 'ok', 'so that user may chmod it')
  }
})

t.test('no key, however crafted, makes bucketfs touch a path outside its data directory', async t => {
  const m = await startMount(t)
  const parent = m.root // holds mnt/, data/, daemon.log
  const outside = path.dirname(parent) // the temp dir all of this lives in
  const before = new Set(fs.readdirSync(parent))
  const beforeOutside = new Set(fs.readdirSync(outside))
  const bucket = 'crafted-68'
  fs.mkdirSync(path.join(m.mountpoint, bucket))
  const src = path.join(scratchDir(t, 'crafted'), 'payload')
  fs.writeFileSync(src, Buffer.alloc(200 * 1024, 9)) // bigger than inline: a chunk file
  const keys = [
    '../../x', '../../../../../../tmp/bucketfs-escape', `..${path.sep}..${path.sep}data-escape`, path.join(parent, 'abs-escape'),
    '/' + path.join(outside, 'abs-escape2'), 'chunks/../../x', '../meta.db', '../daemon.lock', '..', '.', 'tmp/../../y',
    '\\..\\..\\win', '%2e%2e%2fencoded', '..%2f..%2fx', '\u2025/\u2024/dots', 'a/' + '../'.repeat(100) + 'deep'
  ]
  for (const k of keys) {
    const r = cli(m.dataDir, 'put', src, `${bucket}/${k}`)
    t.ok(r.status === 0 || r.status === 5, `put ${JSON.stringify(k)}: exit ${r.status}`, { out: r.out })
  }
  // Crafted bucket names are refused by the S3 rules.
  for (const name of ['..', '../x', '.', '/abs', 'a/b']) {
    const r = cli(m.dataDir, 'bucket', 'create', name)
    t.not(r.status, 0, `bucket create ${JSON.stringify(name)} is refused`)
  }
  // Names through the mount cannot hold '/'; '..' and '.' are resolved by the kernel.
  fs.writeFileSync(path.join(m.mountpoint, bucket, '..%2f..%2fmounted'), 'x')
  t.equal(cli(m.dataDir, 'gc').status, 0, 'gc runs')
  t.equal(cli(m.dataDir, 'fsck', '--deep').status, 0, 'fsck --deep is clean')
  // `get` of a key that names '..' or '.' writes nowhere but where asked.
  const cwd = scratchDir(t, 'get-cwd')
  const inner = path.join(cwd, 'inner')
  fs.mkdirSync(inner)
  const cwdBefore = fs.readdirSync(cwd).sort()
  for (const k of ['..', '.', '../../x', 'a/' + '../'.repeat(100) + 'deep']) {
    const r = spawnSync(process.execPath, [BIN, 'get', `${bucket}/${k}`, '--data', m.dataDir], { cwd: inner, encoding: 'utf8' })
    t.comment(`get ${JSON.stringify(k)} (in a scratch dir): exit ${r.status} ${(r.stdout + r.stderr).trim().split('\n')[0]}`)
  }
  t.same(fs.readdirSync(cwd).sort(), cwdBefore, 'get wrote nothing into the parent of its working directory')
  const created = [...fs.readdirSync(parent)].filter(n => !before.has(n))
  t.same(created, [], 'nothing new next to the data directory')
  const createdOutside = [...fs.readdirSync(outside)].filter(n => !beforeOutside.has(n) && /escape|^x$|^y$|deep|win|encoded|dots/.test(n))
  t.same(createdOutside, [], 'nothing with a crafted name in the temp directory above')
  t.notOk(fs.existsSync('/tmp/bucketfs-escape'), 'no /tmp/bucketfs-escape')
  const inData = fs.readdirSync(m.dataDir).sort()
  t.same(inData.filter(n => !['chunks', 'tmp', 'meta.db', 'meta.db-wal', 'meta.db-shm', 'daemon.lock', 'quarantine', 'daemon.log'].includes(n)), [], 'the data directory holds only the store\'s own files', { inData })
  // Every chunk file is named by its hash.
  const chunkNames: string[] = []
  for (const sub of fs.readdirSync(path.join(m.dataDir, 'chunks'))) for (const n of fs.readdirSync(path.join(m.dataDir, 'chunks', sub))) chunkNames.push(`${sub}/${n}`)
  t.same(chunkNames.filter(n => !/^[0-9a-f]{2}\/[0-9a-f]{64}$/.test(n)), [], 'chunk files are named only by their hash')
  t.ok(m.pid !== undefined, 'the daemon is running')
  t.equal(fs.readdirSync(path.join(m.mountpoint, bucket)).includes('..%2f..%2fmounted'), true, 'the mount still lists the bucket')
})
