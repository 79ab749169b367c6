// The programs people point at a drive (SPEC §2, "Desktop-program and tool
// patterns that must work"), through a real FUSE mount: editors' save-by-rename,
// lock files, cp -a and rsync -a keeping modes and mtimes, tar x of thousands of
// files, git init/commit/clone/fsck, and an SQLite database.
// Needs the built daemon (`npm run build`), /dev/fuse, rsync, git, sqlite3, attr.
import t from 'tap'
import fs from 'node:fs'
import path from 'node:path'
import { withMount, remount } from './helpers/mount'
import { run, runOk, runAsync, toolEnv, manifest, sha256, Prng, sleep, scratchDir, libreOfficeSave } from './helpers/e2e'

process.umask(0o022)

const have = (cmd: string): boolean => run('sh', ['-c', `command -v ${cmd}`]).status === 0

/** Lists every file below dir (relative paths, sorted). */
function listFiles (dir: string, rel = ''): string[] {
  const out: string[] = []
  for (const e of fs.readdirSync(path.join(dir, rel), { withFileTypes: true })) {
    const r = rel === '' ? e.name : `${rel}/${e.name}`
    if (e.isDirectory()) out.push(`${r}/`, ...listFiles(dir, r))
    else out.push(r)
  }
  return out.sort()
}

t.test('desktop programs: save via temp file + rename, lock files', async t => {
  await withMount(t, async (mnt) => {
    const b = path.join(mnt, 'desktop-62')
    fs.mkdirSync(b)
    const p = (...parts: string[]): string => path.join(b, ...parts)

    await t.test('vim-style: swap file, new file, rename over the original', async t => {
      const f = p('notes.txt')
      fs.writeFileSync(f, 'line 1\nline 2\n', { mode: 0o640 })
      // vim opens a swap file next to the file and keeps writing it while editing.
      const swp = p('.notes.txt.swp')
      const sfd = fs.openSync(swp, 'w', 0o600)
      fs.writeSync(sfd, Buffer.alloc(4096, 0x62), 0, 4096, 0)
      fs.fsyncSync(sfd)
      fs.writeSync(sfd, Buffer.alloc(4096, 0x63), 0, 4096, 4096)
      // It checks that the directory is writable with a file named 4913.
      fs.closeSync(fs.openSync(p('4913'), 'wx'))
      fs.unlinkSync(p('4913'))
      // Write the new content to a new file, give it the mode, fsync, rename over.
      const tmp = p('notes.txt~new')
      fs.writeFileSync(tmp, 'line 1\nline 2 edited\nline 3\n')
      fs.chmodSync(tmp, fs.statSync(f).mode & 0o7777)
      const tfd = fs.openSync(tmp, 'r')
      fs.fsyncSync(tfd)
      fs.closeSync(tfd)
      fs.renameSync(tmp, f)
      fs.closeSync(sfd)
      fs.unlinkSync(swp)
      t.equal(fs.readFileSync(f, 'utf8'), 'line 1\nline 2 edited\nline 3\n', 'the saved content')
      t.equal(fs.statSync(f).mode & 0o7777, 0o640, 'the mode is kept')
      t.same(fs.readdirSync(b).sort(), ['notes.txt'], 'no swap, test or temp file is left')
    })

    await t.test('vim itself', { skip: have('vim') ? false : 'vim is not installed' }, async t => {
      const home = scratchDir(t)
      const f = p('vimmed.txt')
      fs.writeFileSync(f, 'first\n', { mode: 0o604 })
      for (const [setting, line] of [['backupcopy=yes', 'second'], ['backupcopy=no', 'third'], ['backupcopy=auto', 'fourth']]) {
        runOk(t, 'vim', ['-u', 'NONE', '-i', 'NONE', '-N', '-E', '-s', '-c', `set ${setting} writebackup swapfile`, '-c', `$put ='${line}'`, '-c', 'wq', f],
          { env: toolEnv(home), cwd: b, timeoutMs: 60_000 })
      }
      t.equal(fs.readFileSync(f, 'utf8'), 'first\nsecond\nthird\nfourth\n', 'three saves with each backupcopy setting')
      t.equal(fs.statSync(f).mode & 0o7777, 0o604, 'the mode is kept')
      t.same(fs.readdirSync(b).filter(n => n.includes('vimmed') && n !== 'vimmed.txt'), [], 'no swap or backup file is left')
    })

    await t.test('LibreOffice-style: lock file, temp file, rename over, unlock', async t => {
      t.equal(run('setfattr', ['-n', 'user.s3.versioning', '-v', 'Enabled', b]).status, 0, 'versioning on (so the old document is kept)')
      const doc = p('report.odt')
      const v1 = new Prng(1).bytes(40_000)
      const v2 = new Prng(2).bytes(52_345)
      fs.writeFileSync(doc, v1)
      libreOfficeSave(doc, v2, 'lu4242abcd.tmp')
      t.equal(sha256(fs.readFileSync(doc)), sha256(v2), 'the document has the new content')
      t.same(fs.readdirSync(b).filter(n => n.startsWith('.~lock') || n.endsWith('.tmp')), [], 'no lock or temp file is left')
      t.same(fs.readdirSync(p('.versions')).filter(n => n.startsWith('.fuse_hidden')), [], 'no .fuse_hidden key was stored on the way')
      const versions = fs.readdirSync(p('.versions', 'report.odt'))
      t.same(versions.filter(v => v.includes('deleted')), [], 'the document was never deleted on the way (rename over it is atomic)', { versions })
      t.equal(versions.length, 2, 'the replaced document is a version', { versions })
      t.ok(versions.every(v => v.endsWith('.odt')), 'version names keep the extension', { versions })
      t.equal(sha256(fs.readFileSync(p('.versions', 'report.odt', versions[0]))), sha256(v1), 'the old version has the old content')
      t.equal(sha256(fs.readFileSync(p('.versions', 'report.odt', versions[1]))), sha256(v2), 'the new version has the new content')
    })

    await t.test('lock files and advisory locks', async t => {
      const lock = p('app.lock')
      fs.writeFileSync(lock, '')
      // A lock file made with O_EXCL is the classic mutex between programs.
      fs.writeFileSync(p('pid.lock'), String(process.pid), { flag: 'wx' })
      t.not(run('sh', ['-c', `set -C; echo $$ > '${p('pid.lock')}'`]).status, 0, 'a second O_EXCL lock file fails (noclobber)')
      fs.unlinkSync(p('pid.lock'))
      t.equal(run('sh', ['-c', `set -C; echo $$ > '${p('pid.lock')}'`]).status, 0, 'and succeeds once it is removed')
      fs.unlinkSync(p('pid.lock'))
      // flock(2) between two processes.
      const marker = path.join(scratchDir(t, 'flock'), 'locked')
      const holder = runAsync('flock', ['-x', lock, 'sh', '-c', `touch '${marker}'; sleep 2`])
      for (let i = 0; i < 200 && !fs.existsSync(marker); i++) await sleep(50)
      t.ok(fs.existsSync(marker), 'a process holds the lock')
      const second = run('flock', ['-n', '-x', lock, 'true'])
      t.equal(second.status, 1, 'flock -n fails while another process holds the lock')
      const done = await holder
      t.equal(done.status, 0, 'the holder ran', { stderr: done.stderr })
      t.equal(run('flock', ['-n', '-x', lock, 'true']).status, 0, 'and it is free afterwards')
    })
  })
})

/** A source tree of about 200 files with varied modes, sizes and mtimes, plus links and empty dirs. */
function makeTree (root: string): void {
  const rng = new Prng(62)
  const modes = [0o644, 0o600, 0o755, 0o640, 0o444, 0o700, 0o664, 0o750]
  const dirModes = [0o755, 0o750, 0o700, 0o775]
  const base = Date.UTC(2015, 5, 1)
  const dirs: string[] = []
  for (let d = 0; d < 10; d++) {
    dirs.push(`d${d}`)
    for (let s = 0; s < 2; s++) dirs.push(`d${d}/sub${s}`)
  }
  for (const d of dirs) fs.mkdirSync(path.join(root, d), { recursive: true })
  fs.mkdirSync(path.join(root, 'empty', 'empty-inside'), { recursive: true })
  for (let i = 0; i < 200; i++) {
    const dir = dirs[i % dirs.length]
    const f = path.join(root, dir, `file-${i}${['.txt', '.bin', '.sh', '', '.tar.gz'][i % 5]}`)
    const size = i % 17 === 0 ? 0 : rng.int(i % 23 === 0 ? 300_000 : 20_000)
    fs.writeFileSync(f, rng.bytes(size))
    fs.chmodSync(f, modes[i % modes.length])
    const mtime = new Date(base + i * 3_671_000 + (i * 37) % 1000)
    const atime = new Date(mtime.getTime() + 86_400_000 + i) // read a day after it was written
    fs.utimesSync(f, atime, mtime)
  }
  fs.symlinkSync('../d1/file-1.bin', path.join(root, 'd0', 'link-rel'))
  fs.symlinkSync('/nonexistent/target', path.join(root, 'd2', 'link-dangling'))
  fs.symlinkSync('sub0', path.join(root, 'd3', 'link-dir'))
  const all = [...dirs, 'empty', 'empty/empty-inside'].sort().reverse() // children before parents
  all.forEach((d, i) => {
    fs.chmodSync(path.join(root, d), dirModes[i % dirModes.length])
    const mtime = new Date(base - (i + 1) * 86_400_000 + i)
    fs.utimesSync(path.join(root, d), new Date(mtime.getTime() + 3_600_000), mtime)
  })
}

t.test('cp -a and rsync -a keep modes and mtimes', async t => {
  const src = path.join(scratchDir(t), 'src')
  fs.mkdirSync(src)
  makeTree(src)
  run('setfattr', ['-n', 'user.origin', '-v', 'source tree', path.join(src, 'd0', 'file-0.txt')])
  const want = manifest(src)
  t.ok(Object.keys(want).filter(k => want[k].type === 'file').length === 200, '200 source files')
  await withMount(t, async (mnt) => {
    const b = path.join(mnt, 'copies-62')
    fs.mkdirSync(b)

    await t.test('cp -a', async t => {
      const dst = path.join(b, 'cp-copy')
      const r = runOk(t, 'cp', ['-a', src, dst])
      t.equal(r.stderr, '', 'no complaints from cp')
      const got = manifest(dst)
      t.same(Object.keys(got), Object.keys(want), 'the same names')
      t.same(manifest(dst, { times: false }), manifest(src, { times: false }), 'the same content, modes and links')
      t.same(got, want, 'the same mtimes (files and directories, to the ms)')
      const srcHasXattr = run('getfattr', ['--only-values', '-n', 'user.origin', path.join(src, 'd0', 'file-0.txt')]).status === 0
      if (srcHasXattr) {
        const x = run('getfattr', ['--only-values', '-n', 'user.origin', path.join(dst, 'd0', 'file-0.txt')])
        t.equal(x.stdout, 'source tree', 'cp -a copies a user.* xattr')
      }
    })

    await t.test('rsync -a, then again: nothing to transfer', async t => {
      const dst = path.join(b, 'rsync-copy')
      runOk(t, 'rsync', ['-a', `${src}/`, `${dst}/`])
      const got = manifest(dst)
      t.same(Object.keys(got), Object.keys(want), 'the same names')
      t.same(manifest(dst, { times: false }), manifest(src, { times: false }), 'the same content, modes and links')
      t.same(got, want, 'the same mtimes (files and directories, to the ms)')
      const again = runOk(t, 'rsync', ['-a', '--itemize-changes', `${src}/`, `${dst}/`])
      t.same(again.stdout.split('\n').filter(l => l !== ''), [], 'a second rsync -a changes nothing')
      // One changed file: exactly that file is sent.
      const changed = path.join(src, 'd0', 'sub0', 'file-1.bin')
      t.ok(fs.existsSync(changed), 'a source file to change')
      fs.appendFileSync(changed, 'more')
      const when = new Date(Date.UTC(2024, 0, 2, 3, 4, 5))
      fs.utimesSync(changed, when, when)
      fs.utimesSync(path.dirname(changed), fs.statSync(path.dirname(changed)).atime, fs.statSync(path.dirname(changed)).mtime)
      const third = runOk(t, 'rsync', ['-a', '--itemize-changes', `${src}/`, `${dst}/`])
      t.same(third.stdout.split('\n').filter(l => l !== ''), ['>f.st...... d0/sub0/file-1.bin'], 'after one change, only that file is sent')
      t.same(manifest(dst, { times: false }), manifest(src, { times: false }), 'and the copy matches again')
      const fourth = runOk(t, 'rsync', ['-a', '--itemize-changes', '--checksum', `${src}/`, `${dst}/`])
      t.same(fourth.stdout.split('\n').filter(l => /^[<>c]/.test(l)), [], 'rsync --checksum finds no content to send')
      runOk(t, 'rsync', ['-a', '--delete', `${path.join(src, 'd5')}/`, `${path.join(dst, 'd6')}/`])
      t.same(manifest(path.join(dst, 'd6'), { times: false }), manifest(path.join(src, 'd5'), { times: false }), 'rsync --delete over another directory')
    })
  })
})

t.test('tar x of an archive of 3,000 files', async t => {
  const dir = scratchDir(t)
  const src = path.join(dir, 'src')
  const rng = new Prng(3000)
  const want: Record<string, string> = {}
  for (let i = 0; i < 3000; i++) {
    const rel = `top${i % 6}/mid${i % 10}/leaf${i % 5}/f${i}.dat`
    const data = rng.bytes(i % 50 === 0 ? 0 : rng.int(4000))
    fs.mkdirSync(path.dirname(path.join(src, rel)), { recursive: true })
    fs.writeFileSync(path.join(src, rel), data, { mode: i % 3 === 0 ? 0o755 : 0o644 })
    const mtime = new Date(Date.UTC(2019, 0, 1) + i * 1_000_000)
    fs.utimesSync(path.join(src, rel), new Date(Date.UTC(2024, 0, 1)), mtime)
    want[rel] = sha256(data)
  }
  for (const d of listFiles(src).filter(f => f.endsWith('/'))) {
    fs.utimesSync(path.join(src, d), new Date(Date.UTC(2024, 0, 1)), new Date(Date.UTC(2018, 5, d.length)))
  }
  const archive = path.join(dir, 'files.tar')
  runOk(t, 'tar', ['cf', archive, '-C', src, '.'])
  await withMount(t, async (mnt) => {
    const b = path.join(mnt, 'tar-62')
    fs.mkdirSync(b)
    const dst = path.join(b, 'x')
    fs.mkdirSync(dst)
    const started = Date.now()
    runOk(t, 'tar', ['xf', archive, '-C', dst], { timeoutMs: 240_000 })
    t.comment(`tar x of 3,000 files took ${Date.now() - started} ms`)
    t.same(listFiles(dst), listFiles(src), 'the same list of files and directories')
    let bad = 0
    for (const [rel, hash] of Object.entries(want)) if (sha256(fs.readFileSync(path.join(dst, rel))) !== hash) bad++
    t.equal(bad, 0, 'every file has its sha256')
    const got = manifest(dst)
    const exp = manifest(src)
    const secs = (m: ReturnType<typeof manifest>): Record<string, string> =>
      Object.fromEntries(Object.entries(m).map(([k, e]) => [k, `${e.type} ${e.mode.toString(8)} ${Math.floor(e.mtimeMs / 1000)}`]))
    t.same(secs(got), secs(exp), 'modes and mtimes (to the second, as tar keeps them)')
    const list = runOk(t, 'tar', ['tf', archive]).stdout
    t.equal(list.split('\n').filter(l => l.endsWith('.dat')).length, 3000, 'the archive had 3,000 files')
  })
})

t.test('git and SQLite on the mount, and after a remount', async t => {
  const dir = scratchDir(t)
  const home = path.join(dir, 'home')
  fs.mkdirSync(home)
  const env = toolEnv(home, { GIT_AUTHOR_DATE: '2025-01-01T00:00:00Z', GIT_COMMITTER_DATE: '2025-01-01T00:00:00Z' })
  const git = (...args: string[]): string[] =>
    ['-c', 'user.name=Bucket Tester', '-c', 'user.email=tester@example.com', '-c', 'init.defaultBranch=main', '-c', 'safe.directory=*', ...args]

  // The repository to clone: three commits, packed.
  const origin = path.join(dir, 'origin')
  fs.mkdirSync(origin)
  runOk(t, 'git', git('init', '-q', origin), { env })
  const rng = new Prng(7)
  for (let c = 0; c < 3; c++) {
    for (let i = 0; i < 20; i++) {
      fs.mkdirSync(path.join(origin, `src${i % 4}`), { recursive: true })
      fs.writeFileSync(path.join(origin, `src${i % 4}`, `m${i}.txt`), rng.bytes(500 + rng.int(5000)).toString('base64'))
    }
    runOk(t, 'git', git('add', '-A'), { env, cwd: origin })
    runOk(t, 'git', git('commit', '-q', '-m', `commit ${c}`), { env, cwd: origin })
  }
  runOk(t, 'git', git('gc', '-q'), { env, cwd: origin })
  const originHead = runOk(t, 'git', git('rev-parse', 'HEAD'), { env, cwd: origin }).stdout.trim()

  const sqlScript = (n: number): string => {
    const lines = ['CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT NOT NULL, n INTEGER NOT NULL);', 'CREATE INDEX t_n ON t (n);']
    for (let i = 1; i <= n; i++) {
      lines.push(`BEGIN; INSERT INTO t (v, n) VALUES ('row ${i} ${'x'.repeat(i % 300)}', ${i}); UPDATE t SET n = n + 1 WHERE id = ${1 + (i % 7)}; COMMIT;`)
    }
    return lines.join('\n') + '\n'
  }
  // Sum of n: 1..500, plus one per UPDATE that found its row (row 1+(i%7) exists once i >= 1+(i%7)).
  let expectedSum = 0
  for (let i = 1; i <= 500; i++) expectedSum += i
  for (let i = 1; i <= 500; i++) if (1 + (i % 7) <= i) expectedSum += 1
  const check = (db: string): string => runOk(t, 'sqlite3', [db, 'PRAGMA integrity_check; SELECT count(*) FROM t; SELECT sum(n) FROM t;'], { env }).stdout

  await remount(t, async (mnt) => {
    const b = path.join(mnt, 'tools-62')
    fs.mkdirSync(b)

    await t.test('git init, add, commit, log, status', async t => {
      const repo = path.join(b, 'repo')
      fs.mkdirSync(repo)
      runOk(t, 'git', git('init', '-q'), { env, cwd: repo })
      for (let i = 0; i < 30; i++) {
        fs.mkdirSync(path.join(repo, `dir${i % 3}`), { recursive: true })
        fs.writeFileSync(path.join(repo, `dir${i % 3}`, `file${i}.txt`), `content ${i}\n`.repeat(i + 1))
      }
      fs.writeFileSync(path.join(repo, 'run.sh'), '#!/bin/sh\necho run\n', { mode: 0o755 })
      runOk(t, 'git', git('add', '.'), { env, cwd: repo })
      runOk(t, 'git', git('commit', '-q', '-m', 'first'), { env, cwd: repo })
      fs.appendFileSync(path.join(repo, 'dir0', 'file0.txt'), 'changed\n')
      fs.renameSync(path.join(repo, 'dir1', 'file1.txt'), path.join(repo, 'dir1', 'renamed.txt'))
      fs.unlinkSync(path.join(repo, 'dir2', 'file2.txt'))
      runOk(t, 'git', git('add', '-A'), { env, cwd: repo })
      runOk(t, 'git', git('commit', '-q', '-m', 'second'), { env, cwd: repo })
      const log = runOk(t, 'git', git('log', '--format=%s'), { env, cwd: repo }).stdout
      t.same(log.trim().split('\n'), ['second', 'first'], 'git log shows both commits')
      t.equal(runOk(t, 'git', git('status', '--porcelain'), { env, cwd: repo }).stdout, '', 'git status is clean')
      const show = runOk(t, 'git', git('show', '--stat', '--format=', 'HEAD'), { env, cwd: repo }).stdout
      t.match(show, /3 files changed/, 'the second commit has the three changes')
      runOk(t, 'git', git('gc', '-q'), { env, cwd: repo })
      runOk(t, 'git', git('fsck', '--full', '--strict'), { env, cwd: repo })
      t.equal(runOk(t, 'git', git('status', '--porcelain'), { env, cwd: repo }).stdout, '', 'still clean after git gc')
    })

    await t.test('git clone of a local repository, then git fsck', async t => {
      for (const [name, url] of [['clone-local', origin], ['clone-file-url', `file://${origin}`]]) {
        const dst = path.join(b, name)
        runOk(t, 'git', git('clone', '-q', url, dst), { env, cwd: b })
        runOk(t, 'git', git('fsck', '--full', '--strict'), { env, cwd: dst })
        t.equal(runOk(t, 'git', git('rev-parse', 'HEAD'), { env, cwd: dst }).stdout.trim(), originHead, `${name}: the same HEAD`)
        t.equal(runOk(t, 'git', git('rev-list', '--count', 'HEAD'), { env, cwd: dst }).stdout.trim(), '3', `${name}: three commits`)
        t.equal(runOk(t, 'git', git('status', '--porcelain'), { env, cwd: dst }).stdout, '', `${name}: git status is clean`)
        const files = listFiles(origin).filter(f => !f.startsWith('.git/') && !f.endsWith('/'))
        const same = files.every(f => sha256(fs.readFileSync(path.join(origin, f))) === sha256(fs.readFileSync(path.join(dst, f))))
        t.ok(same, `${name}: the checked-out files match`)
      }
    })

    await t.test('an SQLite database: 500 transactions, close, reopen', async t => {
      const db = path.join(b, 'sql', 'app.db')
      fs.mkdirSync(path.dirname(db))
      const started = Date.now()
      runOk(t, 'sqlite3', [db], { env, input: sqlScript(500), timeoutMs: 240_000 })
      t.comment(`500 sqlite transactions took ${Date.now() - started} ms`)
      t.equal(check(db), `ok\n500\n${expectedSum}\n`, 'integrity_check ok, 500 rows, the right sum')
      t.same(fs.readdirSync(path.dirname(db)), ['app.db'], 'no journal left behind')
    })

    await t.test('an SQLite database in WAL mode', async t => {
      const db = path.join(b, 'sql', 'wal.db')
      runOk(t, 'sqlite3', [db], { env, input: 'PRAGMA journal_mode=WAL;\n' + sqlScript(200), timeoutMs: 240_000 })
      const out = runOk(t, 'sqlite3', [db, 'PRAGMA journal_mode; PRAGMA integrity_check; SELECT count(*) FROM t;'], { env }).stdout
      t.equal(out, 'wal\nok\n200\n', 'WAL mode, integrity_check ok, 200 rows')
    })
  }, async (mnt) => {
    const b = path.join(mnt, 'tools-62')
    t.equal(check(path.join(b, 'sql', 'app.db')), `ok\n500\n${expectedSum}\n`, 'after remount: integrity_check ok, 500 rows, the right sum')
    const wal = runOk(t, 'sqlite3', [path.join(b, 'sql', 'wal.db'), 'PRAGMA integrity_check; SELECT count(*) FROM t;'], { env }).stdout
    t.equal(wal, 'ok\n200\n', 'after remount: the WAL database too')
    const repo = path.join(b, 'repo')
    runOk(t, 'git', git('fsck', '--full', '--strict'), { env, cwd: repo })
    t.equal(runOk(t, 'git', git('status', '--porcelain'), { env, cwd: repo }).stdout, '', 'after remount: git status is clean')
    const clone = path.join(b, 'clone-file-url')
    runOk(t, 'git', git('fsck', '--full'), { env, cwd: clone })
    t.equal(runOk(t, 'git', git('rev-parse', 'HEAD'), { env, cwd: clone }).stdout.trim(), originHead, 'after remount: the clone\'s HEAD')
  })
})
