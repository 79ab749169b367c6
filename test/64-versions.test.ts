// The .versions tree and versioning control through a real FUSE mount (issue 4;
// SPEC §1 versioning, §2 versions tree): history you can browse and restore with
// ordinary tools, versioning set from the mount and the CLI, S3's null-version
// rules, delete markers, read-only history (EROFS), tools that never walk it,
// and 20 versions of a 64 MiB file costing less than twice its size.
// Needs the built daemon (`npm run build`), /dev/fuse, attr (setfattr/getfattr),
// rsync, and vim (optional).
import t from 'tap'
import fs from 'node:fs'
import path from 'node:path'
import { withMount, BIN } from './helpers/mount'
import { failsWith, errnoOf, run, runOk, toolEnv, md5, sha256, sha256File, Prng, MiB, scratchDir, sleep, libreOfficeSave } from './helpers/e2e'

const { O_CREAT, O_EXCL, O_RDONLY, O_WRONLY, O_RDWR, O_APPEND, O_TRUNC } = fs.constants

process.umask(0o022)

const have = (cmd: string): boolean => run('sh', ['-c', `command -v ${cmd}`]).status === 0

/** `getfattr --only-values -n name file`: the value, or undefined with the error text. */
function getfattr (file: string, name: string): { value?: string, stderr: string } {
  const r = run('getfattr', ['--only-values', '--absolute-names', '-n', name, file])
  return r.status === 0 ? { value: r.stdout, stderr: r.stderr } : { stderr: r.stderr }
}

function setfattr (file: string, name: string, value: string): { status: number | null, stderr: string } {
  return run('setfattr', ['-n', name, '-v', value, file])
}

/** `bucketfs <args> --data <dataDir>`, the CLI writing to the same store the mount serves. */
function cli (dataDir: string, ...args: string[]): { status: number | null, stdout: string, stderr: string } {
  return run(process.execPath, [BIN, ...args, '--data', dataDir])
}

function storeStats (t: tap.Test, dataDir: string): { storedBytes: number, logicalBytes: number, chunks: number, versions: number } {
  const r = cli(dataDir, 'stats', '--json')
  t.equal(r.status, 0, 'bucketfs stats --json', { stderr: r.stderr })
  return JSON.parse(r.stdout) as { storedBytes: number, logicalBytes: number, chunks: number, versions: number }
}

/** '<UTC time with - for :>_<version id>[_deleted]<ext>' */
const NAME = /^(\d{4}-\d\d-\d\dT\d\d)-(\d\d)-(\d\d\.\d{3}Z)_([0-9A-HJKMNP-TV-Z]{26}|null)(_deleted)?(\.[^._]+)?$/

interface VersionName { name: string, timeMs: number, id: string, deleted: boolean, ext: string }

function parseName (name: string): VersionName | undefined {
  const m = NAME.exec(name)
  if (m === null) return undefined
  return { name, timeMs: Date.parse(`${m[1]}:${m[2]}:${m[3]}`), id: m[4], deleted: m[5] !== undefined, ext: m[6] ?? '' }
}

t.test('the .versions tree on a mounted store', async t => {
  await withMount(t, async (mnt, dataDir, m) => {
    const bucket = (name: string, versioning?: 'Enabled' | 'Suspended'): ((...parts: string[]) => string) => {
      const b = path.join(mnt, name)
      fs.mkdirSync(b)
      if (versioning !== undefined) {
        const r = setfattr(b, 'user.s3.versioning', versioning)
        if (r.status !== 0) throw new Error(`setfattr user.s3.versioning=${versioning} on ${b} failed: ${r.stderr}`)
      }
      return (...parts) => path.join(b, ...parts)
    }
    /** The names .versions/<key>/ lists, in readdir order. */
    const history = (p: (...parts: string[]) => string, key: string): string[] => fs.readdirSync(p('.versions', ...key.split('/')))

    await t.test('three overwrites, a delete, a restore by cp and by the CLI', async t => {
      const p = bucket('hist-64', 'Enabled')
      const f = p('doc.txt')
      const contents = ['first version\n', 'the second version, longer\n', 'v3\n']
      const saved: Array<{ before: number, after: number }> = []
      for (const c of contents) {
        const before = Date.now()
        fs.writeFileSync(f, c)
        saved.push({ before, after: Date.now() })
        await sleep(30)
      }
      const names = history(p, 'doc.txt')
      t.equal(names.length, 3, 'three versions', { names })
      t.same(names, [...names].sort(), 'listed in name order, newest last')
      const parsed = names.map(parseName)
      t.ok(parsed.every(v => v !== undefined), 'every name is <UTC time>_<version id><ext>', { names })
      const vs = parsed.filter((v): v is VersionName => v !== undefined)
      t.ok(vs.every(v => v.ext === '.txt'), 'every name keeps the key\'s extension')
      t.ok(vs.every(v => !v.deleted), 'none is a delete marker')
      t.equal(new Set(vs.map(v => v.id)).size, 3, 'three distinct version ids')
      t.ok(vs.every(v => v.id !== 'null'), 'real version ids in a versioned bucket')
      t.ok(vs.every((v, i) => i === 0 || v.timeMs >= vs[i - 1].timeMs), 'name times are chronological')
      for (let i = 0; i < vs.length && i < 3; i++) {
        const file = p('.versions', 'doc.txt', vs[i].name)
        t.equal(fs.readFileSync(file, 'utf8'), contents[i], `version ${i + 1} has save ${i + 1}'s bytes`)
        const st = fs.statSync(file)
        t.ok(st.isFile(), `version ${i + 1} is a regular file`)
        t.equal(st.size, Buffer.byteLength(contents[i]), `version ${i + 1}'s size`)
        t.ok(st.mtimeMs >= saved[i].before - 2 && st.mtimeMs <= saved[i].after + 2,
          `version ${i + 1}'s mtime is the time it was saved`, { mtimeMs: st.mtimeMs, saved: saved[i] })
        t.equal(Math.floor(st.mtimeMs), vs[i].timeMs, `version ${i + 1}'s name shows its mtime (UTC)`)
        t.equal(getfattr(file, 'user.s3.last_modified').value, new Date(vs[i].timeMs).toISOString(), `version ${i + 1}: mtime = Last-Modified`)
        t.equal(getfattr(file, 'user.s3.version_id').value, vs[i].id, `version ${i + 1}: user.s3.version_id is the id in its name`)
        t.equal(getfattr(file, 'user.s3.etag').value, md5(contents[i]), `version ${i + 1}: user.s3.etag is the MD5 of its bytes`)
        t.equal(getfattr(file, 'user.s3.is_latest').value, i === 2 ? 'true' : 'false', `version ${i + 1}: user.s3.is_latest`)
      }
      t.equal(getfattr(f, 'user.s3.version_id').value, vs[2]?.id, 'the file is the newest version')
      const listed = run('getfattr', ['-d', '-m', '-', '--absolute-names', p('.versions', 'doc.txt', names[0])]).stdout
      t.match(listed, /user\.s3\.version_id=/, 'getfattr -d lists the version\'s attributes')

      // Delete: gone from the bucket, a marker in the history, every version still there.
      fs.unlinkSync(f)
      t.notOk(fs.readdirSync(p()).includes('doc.txt'), 'deleted: gone from the bucket listing')
      failsWith(t, () => fs.statSync(f), 'ENOENT', 'deleted: stat')
      t.ok(fs.readdirSync(p('.versions')).includes('doc.txt'), '.versions still lists the deleted key')
      const afterDelete = history(p, 'doc.txt')
      t.equal(afterDelete.length, 4, 'the history has the three versions and a delete marker', { afterDelete })
      t.same(afterDelete.slice(0, 3), names, 'the versions are unchanged')
      const marker = parseName(afterDelete[3] ?? '')
      t.ok(marker?.deleted === true, 'the newest entry is a delete marker, named _deleted', { name: afterDelete[3] })
      t.equal(marker?.ext, '.txt', 'the marker keeps the extension too')
      if (afterDelete[3] !== undefined) {
        const m = p('.versions', 'doc.txt', afterDelete[3])
        t.equal(fs.statSync(m).size, 0, 'the marker is an empty file')
        t.equal(fs.readFileSync(m, 'utf8'), '', 'that reads as nothing')
        t.equal(getfattr(m, 'user.s3.is_latest').value, 'true', 'the marker is the latest version')
        t.equal(getfattr(m, 'user.s3.version_id').value, marker?.id, 'the marker\'s version id')
      }
      for (let i = 0; i < 3; i++) {
        t.equal(fs.readFileSync(p('.versions', 'doc.txt', names[i]), 'utf8'), contents[i], `version ${i + 1} still reads after the delete`)
      }
      t.equal(getfattr(p('.versions', 'doc.txt', names[2]), 'user.s3.is_latest').value, 'false', 'the last save is no longer the latest')

      // Restore by cp.
      const before = storeStats(t, dataDir)
      runOk(t, 'cp', [p('.versions', 'doc.txt', names[0]), f])
      t.equal(fs.readFileSync(f, 'utf8'), contents[0], 'cp of version 1 onto the key brings its content back')
      const afterCp = history(p, 'doc.txt')
      t.equal(afterCp.length, 5, 'the history is longer by one', { afterCp })
      t.same(afterCp.slice(0, 4), afterDelete, 'and keeps everything it had')
      const restored = afterCp[4] ?? ''
      t.equal(fs.readFileSync(p('.versions', 'doc.txt', restored), 'utf8'), contents[0], 'the new version has version 1\'s bytes')
      t.equal(getfattr(f, 'user.s3.etag').value, md5(contents[0]), 'and its ETag')
      t.equal(fs.statSync(f).mode & 0o7777, 0o644, 'the restored file has the mode the file had (0644), not a read-only one',
        { restored: (fs.statSync(f).mode & 0o7777).toString(8), versionFile: (fs.statSync(p('.versions', 'doc.txt', names[0])).mode & 0o7777).toString(8) })
      const after = storeStats(t, dataDir)
      t.equal(after.storedBytes, before.storedBytes, 'restoring stored no new bytes (shared with the old version)', { before, after })

      // The CLI lists the same history.
      const listing = cli(dataDir, 'ls', '--versions', 'hist-64/doc.txt')
      t.equal(listing.status, 0, 'bucketfs ls --versions', { stderr: listing.stderr })
      t.ok(afterCp.every(n => listing.stdout.includes(parseName(n)?.id ?? '?')), 'bucketfs ls --versions shows every version id .versions shows', { stdout: listing.stdout })
      t.equal(listing.stdout.trim().split('\n').filter(l => l.includes('doc.txt')).length, afterCp.length, 'and no other')

      // Restore by the CLI while mounted.
      const r = cli(dataDir, 'restore', 'hist-64/doc.txt', '--version', vs[1]?.id ?? '?')
      t.equal(r.status, 0, 'bucketfs restore --version while mounted', { stderr: r.stderr })
      t.match(r.stdout, vs[1]?.id ?? '?', 'it names the restored version')
      const afterCli = history(p, 'doc.txt')
      t.equal(afterCli.length, 6, 'the mount lists the CLI\'s restore at once', { afterCli })
      t.equal(fs.readFileSync(p('.versions', 'doc.txt', afterCli[5] ?? ''), 'utf8'), contents[1], 'with version 2\'s bytes')
      await sleep(1100) // the kernel's attribute timeout
      t.equal(fs.readFileSync(f, 'utf8'), contents[1], 'the key reads as version 2 after the attribute timeout')
      t.equal(getfattr(f, 'user.s3.etag').value, md5(contents[1]), 'with version 2\'s ETag')

      // A bad version id from the CLI changes nothing.
      const bad = cli(dataDir, 'restore', 'hist-64/doc.txt', '--version', '01ARZ3NDEKTSV4RRFFQ69G5FAV')
      t.not(bad.status, 0, 'restoring a version that does not exist fails')
      t.equal(history(p, 'doc.txt').length, 6, 'and adds nothing')
    })

    await t.test('nested keys: prefixes are directories under .versions', async t => {
      const p = bucket('nested-64', 'Enabled')
      fs.mkdirSync(p('a', 'b'), { recursive: true })
      fs.writeFileSync(p('a', 'b', 'c.txt'), 'one')
      fs.writeFileSync(p('a', 'b', 'c.txt'), 'two')
      fs.writeFileSync(p('a', 'top.md'), '# top')
      fs.writeFileSync(p('z.bin'), 'z')
      // A key made by the CLI, whose directories are only implied.
      const src = path.join(scratchDir(t, 'put'), 'key.json')
      fs.writeFileSync(src, '{"a":1}')
      const put = cli(dataDir, 'put', src, 'nested-64/implied/deep/key.json')
      t.equal(put.status, 0, 'bucketfs put a key whose directories are only implied', { stderr: put.stderr })
      t.same(fs.readdirSync(p('.versions')).sort(), ['a', 'implied', 'z.bin'], 'ls .versions: the top-level keys and prefixes')
      t.same(fs.readdirSync(p('.versions', 'a')).sort(), ['b', 'top.md'], 'ls .versions/a')
      t.same(fs.readdirSync(p('.versions', 'a', 'b')), ['c.txt'], 'ls .versions/a/b')
      t.ok(fs.statSync(p('.versions', 'a')).isDirectory(), '.versions/a is a directory')
      t.ok(fs.statSync(p('.versions', 'a', 'b')).isDirectory(), '.versions/a/b is a directory')
      t.ok(fs.statSync(p('.versions', 'a', 'b', 'c.txt')).isDirectory(), '.versions/a/b/c.txt/ is a directory')
      const cs = history(p, 'a/b/c.txt')
      t.equal(cs.length, 2, '.versions/a/b/c.txt/ lists two versions', { cs })
      t.same(cs.map(n => fs.readFileSync(p('.versions', 'a', 'b', 'c.txt', n), 'utf8')), ['one', 'two'], 'with their bytes')
      t.ok(cs.every(n => parseName(n)?.ext === '.txt'), 'names keep the extension')
      t.same(fs.readdirSync(p('.versions', 'implied', 'deep')), ['key.json'], 'implied prefixes are browsable too')
      t.equal(history(p, 'implied/deep/key.json').length, 1, 'with the key\'s one version')
      const ls = runOk(t, 'ls', ['-1', p('.versions', 'a', 'b', 'c.txt')]).stdout.trim().split('\n')
      t.same(ls, [...cs].sort(), '`ls` of a key\'s history')
      const found = runOk(t, 'find', [p('.versions', 'a'), '-type', 'f']).stdout.trim().split('\n').map(l => path.relative(p('.versions'), l)).sort()
      t.same(found, [...cs.map(n => `a/b/c.txt/${n}`), ...history(p, 'a/top.md').map(n => `a/top.md/${n}`)].sort(), 'find walks .versions/a when asked to')
      failsWith(t, () => fs.readdirSync(p('.versions', 'a', 'nothing')), 'ENOENT', 'a key with no history')
      failsWith(t, () => fs.statSync(p('.versions', 'a', 'b', 'c.txt', '2020-01-01T00-00-00.000Z_01ARZ3NDEKTSV4RRFFQ69G5FAV.txt')), 'ENOENT', 'a version name that does not exist')
      failsWith(t, () => fs.readFileSync(p('.versions', 'a', 'b', 'c.txt')), 'EISDIR', 'reading a key\'s history directory as a file')
    })

    await t.test('a vim-style and a LibreOffice-style save each add one version', async t => {
      const p = bucket('saves-64', 'Enabled')
      const f = p('notes.txt')
      fs.writeFileSync(f, 'line 1\n', { mode: 0o640 })
      t.equal(history(p, 'notes.txt').length, 1, 'one version to start with')

      // vim: swap file, the "4913" test file, new content in a temp file, rename over, drop the swap file.
      const swp = p('.notes.txt.swp')
      const sfd = fs.openSync(swp, 'w', 0o600)
      fs.writeSync(sfd, Buffer.alloc(4096, 0x62), 0, 4096, 0)
      fs.fsyncSync(sfd)
      fs.closeSync(fs.openSync(p('4913'), 'wx'))
      fs.unlinkSync(p('4913'))
      const tmp = p('notes.txt~new')
      fs.writeFileSync(tmp, 'line 1\nline 2\n')
      fs.chmodSync(tmp, 0o640)
      const tfd = fs.openSync(tmp, 'r')
      fs.fsyncSync(tfd)
      fs.closeSync(tfd)
      fs.renameSync(tmp, f)
      fs.writeSync(sfd, Buffer.alloc(4096, 0x63), 0, 4096, 4096)
      fs.closeSync(sfd)
      fs.unlinkSync(swp)
      let h = history(p, 'notes.txt')
      t.equal(h.length, 2, 'the vim-style save added exactly one version', { h })
      t.same(h.map(n => fs.readFileSync(p('.versions', 'notes.txt', n), 'utf8')), ['line 1\n', 'line 1\nline 2\n'], 'the old and the new content')
      t.same(h.filter(n => n.includes('deleted')), [], 'no delete marker in the document\'s history')
      t.same(fs.readdirSync(p()).sort(), ['notes.txt'], 'no swap or temp file is left in the bucket')
      const tmpHistory = history(p, 'notes.txt~new')
      t.equal(tmpHistory.length, 2, 'the temp file\'s key keeps its history: its version and a delete marker', { tmpHistory })
      t.ok(parseName(tmpHistory[1] ?? '')?.deleted === true, 'the rename left a delete marker at the old key')

      // LibreOffice: lock file, document held open, temp file, rename over, unlock.
      const doc = p('report.odt')
      const v1 = new Prng(641).bytes(40_000)
      const v2 = new Prng(642).bytes(52_345)
      fs.writeFileSync(doc, v1)
      t.equal(history(p, 'report.odt').length, 1, 'one version of the document')
      libreOfficeSave(doc, v2, 'lu64abcd.tmp')
      await sleep(400) // libfuse's hidden-file handling settles 200 ms after a replace
      h = history(p, 'report.odt')
      t.equal(h.length, 2, 'the LibreOffice-style save added exactly one version', { h })
      t.same(h.filter(n => n.includes('deleted')), [], 'no delete marker in the document\'s history')
      t.same(h.map(n => sha256(fs.readFileSync(p('.versions', 'report.odt', n)))), [sha256(v1), sha256(v2)], 'the old and the new document')
      t.equal(sha256(fs.readFileSync(doc)), sha256(v2), 'the document has the new content')
      t.same(fs.readdirSync(p()).sort(), ['notes.txt', 'report.odt'], 'no lock or temp file is left')
      t.same(fs.readdirSync(p('.versions')).filter(n => n.startsWith('.fuse_hidden')), [], 'no .fuse_hidden key was stored')
    })

    await t.test('vim itself: one version per :w', { skip: have('vim') ? false : 'vim is not installed' }, async t => {
      const p = bucket('vim-64', 'Enabled')
      const home = scratchDir(t, 'vimhome')
      const f = p('vimmed.txt')
      fs.writeFileSync(f, 'first\n')
      const lines = ['first\n']
      for (const [setting, line] of [['backupcopy=yes', 'second'], ['backupcopy=no', 'third'], ['backupcopy=auto', 'fourth']]) {
        const before = history(p, 'vimmed.txt')
        runOk(t, 'vim', ['-u', 'NONE', '-i', 'NONE', '-N', '-E', '-s', '-c', `set ${setting} writebackup swapfile`, '-c', `$put ='${line}'`, '-c', 'wq', f],
          { env: toolEnv(home), cwd: p(), timeoutMs: 60_000 })
        lines.push(line + '\n')
        await sleep(400)
        const after = history(p, 'vimmed.txt')
        const added = after.filter(n => !before.includes(n))
        t.equal(added.filter(n => parseName(n)?.deleted === false).length, 1, `vim with ${setting}: one new version`, { added })
        t.same(added.filter(n => parseName(n)?.deleted === true), [], `vim with ${setting}: no delete marker in the document's history`, { added })
        const newest = after.filter(n => parseName(n)?.deleted === false).pop() ?? ''
        t.equal(fs.readFileSync(p('.versions', 'vimmed.txt', newest), 'utf8'), lines.join(''), `vim with ${setting}: the new version has the saved text`)
      }
      t.equal(fs.readFileSync(f, 'utf8'), lines.join(''), 'the file has every line')
    })

    await t.test('rename keeps the old key\'s history; an emacs-style save (original renamed to a backup)', async t => {
      const p = bucket('rename-64', 'Enabled')
      fs.writeFileSync(p('a.txt'), 'a1')
      fs.writeFileSync(p('a.txt'), 'a2')
      fs.renameSync(p('a.txt'), p('b.txt'))
      const ha = history(p, 'a.txt')
      t.equal(ha.length, 3, 'the old key keeps both versions behind a delete marker', { ha })
      t.ok(parseName(ha[2] ?? '')?.deleted === true, 'the newest entry of the old key is a delete marker')
      t.same(ha.slice(0, 2).map(n => fs.readFileSync(p('.versions', 'a.txt', n), 'utf8')), ['a1', 'a2'], 'and its versions still read')
      const hb = history(p, 'b.txt')
      t.equal(hb.length, 1, 'the new key has one version', { hb })
      t.equal(fs.readFileSync(p('.versions', 'b.txt', hb[0] ?? ''), 'utf8'), 'a2', 'with the renamed content')

      // emacs (backup-by-copying nil) on the first save of a session: rename the original
      // to file~, write the new content to a new file of the same name.
      const f = p('essay.txt')
      fs.writeFileSync(f, 'draft 1\n')
      fs.renameSync(f, p('essay.txt~'))
      fs.writeFileSync(f, 'draft 2\n')
      const h = history(p, 'essay.txt')
      t.same(h.filter(n => parseName(n)?.deleted === false).map(n => fs.readFileSync(p('.versions', 'essay.txt', n), 'utf8')), ['draft 1\n', 'draft 2\n'],
        'the document\'s history has both drafts', { h })
      // SPEC/issue 4: a rename leaves the old key's history behind a delete marker, so the
      // rename-away shows between the drafts (it is what happened to the key).
      t.same(h.map(n => parseName(n)?.deleted), [false, true, false], 'the rename-away is a delete marker between the drafts, and nothing else was added', { h })
      const hb2 = history(p, 'essay.txt~')
      t.equal(hb2.length, 1, 'the backup key has one version', { hb2 })
      t.equal(fs.readFileSync(p('essay.txt~'), 'utf8'), 'draft 1\n', 'the backup file has the old draft')
    })

    await t.test('names for every kind of key; per-version metadata; symlinks; only the bucket root has .versions', async t => {
      const p = bucket('names-64', 'Enabled')
      const cases: Array<[string, string]> = [['Makefile', ''], ['archive.tar.gz', '.gz'], ['.bashrc', ''], ['café ☕.txt', '.txt'], ['my_file.v2.md', '.md'], ['dir.d/noext', '']]
      for (const [key] of cases) {
        fs.mkdirSync(path.dirname(p(key)), { recursive: true })
        fs.writeFileSync(p(key), `1 ${key}`)
        fs.writeFileSync(p(key), `2 ${key}`)
      }
      for (const [key, ext] of cases) {
        const h = history(p, key)
        t.equal(h.length, 2, `${key}: two versions`, { h })
        t.ok(h.every(n => parseName(n)?.ext === ext), `${key}: names end with ${JSON.stringify(ext)}`, { h })
        t.same(h.map(n => fs.readFileSync(p('.versions', ...key.split('/'), n), 'utf8')), [`1 ${key}`, `2 ${key}`], `${key}: the versions read`)
      }

      // User metadata belongs to a version: changing it later does not rewrite history.
      const m = p('meta.txt')
      fs.writeFileSync(m, 'm1')
      t.equal(setfattr(m, 'user.color', 'blue').status, 0, 'user.color=blue on version 1')
      fs.writeFileSync(m, 'm2')
      t.equal(setfattr(m, 'user.color', 'red').status, 0, 'user.color=red on version 2')
      const hm = history(p, 'meta.txt')
      t.same(hm.map(n => getfattr(p('.versions', 'meta.txt', n), 'user.color').value), ['blue', 'red'], 'each version shows its own user metadata')

      // A symlink's history.
      fs.symlinkSync('target-1', p('link'))
      const hl = history(p, 'link')
      t.equal(hl.length, 1, 'a symlink has a version', { hl })
      const lv = p('.versions', 'link', hl[0] ?? '')
      const lst = fs.lstatSync(lv)
      if (lst.isSymbolicLink()) {
        let target: string | undefined
        const code = errnoOf(() => { target = fs.readlinkSync(lv) })
        t.equal(code, 'ok', 'a version listed as a symlink can be read as one (readlink)', { code })
        if (code === 'ok') t.equal(target, 'target-1', 'its target')
      } else {
        t.equal(fs.readFileSync(lv, 'utf8'), 'target-1', 'a symlink\'s version reads as its target')
      }

      fs.mkdirSync(p('sub'))
      fs.writeFileSync(p('sub', 'x.txt'), 'x')
      failsWith(t, () => fs.statSync(p('sub', '.versions')), 'ENOENT', 'a subdirectory has no .versions (only the bucket root does)')
      failsWith(t, () => fs.statSync(path.join(mnt, '.versions')), 'ENOENT', 'nor does the root')
    })

    await t.test('.versions lists more than one page of keys and prefixes', async t => {
      const p = bucket('many-64')
      const expected: string[] = []
      for (let i = 0; i < 1100; i++) {
        const n = String(i).padStart(4, '0')
        if (i % 8 === 0) {
          fs.mkdirSync(p(`d-${n}`))
          fs.writeFileSync(p(`d-${n}`, 'x'), n)
          expected.push(`d-${n}`)
        } else {
          fs.writeFileSync(p(`f-${n}`), n)
          expected.push(`f-${n}`)
        }
      }
      const listed = fs.readdirSync(p('.versions'))
      t.equal(listed.length, expected.length, `.versions lists all ${expected.length} keys and prefixes`)
      t.same([...listed].sort(), expected.sort(), 'each once')
    })

    await t.test('rsync, cp -r, find and du never enter .versions', async t => {
      const p = bucket('tools-64', 'Enabled')
      fs.mkdirSync(p('dir', 'sub'), { recursive: true })
      for (let i = 0; i < 3; i++) {
        fs.writeFileSync(p('top.txt'), `top ${i}\n`)
        fs.writeFileSync(p('dir', 'sub', 'deep.bin'), new Prng(i).bytes(3000 + i))
      }
      fs.writeFileSync(p('gone.txt'), 'soon deleted')
      fs.unlinkSync(p('gone.txt'))
      t.equal(history(p, 'top.txt').length, 3, 'the bucket has history')
      const names = fs.readdirSync(p())
      t.notOk(names.includes('.versions'), 'readdir of the bucket does not list .versions')
      t.notOk(runOk(t, 'ls', ['-a', p()]).stdout.split('\n').includes('.versions'), 'ls -a does not show it')
      t.ok(fs.statSync(p('.versions')).isDirectory(), 'but it is reachable by path')

      const visible = ['dir', 'dir/sub', 'dir/sub/deep.bin', 'top.txt']
      const walk = (root: string, rel = ''): string[] => fs.readdirSync(path.join(root, rel), { withFileTypes: true }).flatMap(e => {
        const r = rel === '' ? e.name : `${rel}/${e.name}`
        return e.isDirectory() ? [r, ...walk(root, r)] : [r]
      }).sort()
      const out = scratchDir(t, 'copies')
      runOk(t, 'rsync', ['-a', p() + '/', path.join(out, 'rsynced') + '/'])
      t.same(walk(path.join(out, 'rsynced')), visible, 'rsync -a copies the bucket and nothing of .versions')
      runOk(t, 'cp', ['-r', p(), path.join(out, 'copied')])
      t.same(walk(path.join(out, 'copied')), visible, 'cp -r copies the bucket and nothing of .versions')
      runOk(t, 'cp', ['-a', p(), path.join(out, 'archived')])
      t.same(walk(path.join(out, 'archived')), visible, 'cp -a too')
      const found = runOk(t, 'find', [p()]).stdout.trim().split('\n')
      t.same(found.map(l => path.relative(p(), l)).filter(l => l !== '').sort(), visible, 'find lists the bucket and nothing of .versions')
      const du = runOk(t, 'du', ['-a', p()]).stdout.trim().split('\n')
      t.same(du.filter(l => l.includes('.versions')), [], 'du -a never enters .versions', { du })
      t.equal(du.length, visible.length + 1, 'du -a lists every visible entry and the bucket')
      const tarred = runOk(t, 'tar', ['-cf', '-', '-C', p(), '.'], { timeoutMs: 60_000 })
      t.notMatch(tarred.stdout, /\.versions/, 'tar of the bucket has no .versions')
    })

    await t.test('EROFS for every kind of write under .versions', async t => {
      const p = bucket('ro-64', 'Enabled')
      fs.mkdirSync(p('nested'))
      fs.writeFileSync(p('nested', 'n.txt'), 'nested')
      fs.writeFileSync(p('ro.txt'), 'one')
      fs.writeFileSync(p('ro.txt'), 'two')
      const vdir = p('.versions', 'ro.txt')
      const names = fs.readdirSync(vdir)
      t.equal(names.length, 2, 'two versions')
      const v = path.join(vdir, names[0] ?? '')
      const when = new Date(Date.UTC(2001, 0, 2, 3, 4, 5))
      const uid = process.getuid?.() ?? 0
      const gid = process.getgid?.() ?? 0
      const erofs = (fn: () => unknown, what: string): void => { failsWith(t, fn, 'EROFS', what) }

      // create
      erofs(() => fs.writeFileSync(path.join(vdir, 'new.txt'), 'x'), 'create a file in .versions/<key>/')
      erofs(() => fs.openSync(path.join(vdir, 'excl.txt'), O_CREAT | O_EXCL | O_WRONLY, 0o644), 'create O_EXCL in .versions/<key>/')
      erofs(() => fs.writeFileSync(p('.versions', 'new.txt'), 'x'), 'create a file in .versions/')
      erofs(() => fs.writeFileSync(p('.versions', 'nested', 'new.txt'), 'x'), 'create a file in a prefix directory of .versions')
      // write to an existing version
      erofs(() => fs.openSync(v, O_WRONLY), 'open a version O_WRONLY')
      erofs(() => fs.openSync(v, O_RDWR), 'open a version O_RDWR')
      erofs(() => fs.openSync(v, O_WRONLY | O_APPEND), 'open a version O_WRONLY|O_APPEND')
      erofs(() => fs.openSync(v, O_RDONLY | O_TRUNC), 'open a version O_RDONLY|O_TRUNC')
      erofs(() => fs.writeFileSync(v, 'x'), 'write over a version (O_TRUNC)')
      erofs(() => fs.appendFileSync(v, 'x'), 'append to a version')
      // truncate
      erofs(() => fs.truncateSync(v, 0), 'truncate a version to 0')
      erofs(() => fs.truncateSync(v, 100), 'extend a version by truncate')
      // unlink
      erofs(() => fs.unlinkSync(v), 'unlink a version')
      // rename in and out
      erofs(() => fs.renameSync(p('ro.txt'), path.join(vdir, 'in.txt')), 'rename a key into .versions/<key>/')
      erofs(() => fs.renameSync(p('ro.txt'), p('.versions', 'in.txt')), 'rename a key into .versions/')
      erofs(() => fs.renameSync(p('ro.txt'), v), 'rename a key over a version')
      erofs(() => fs.renameSync(v, p('out.txt')), 'rename a version out of .versions')
      erofs(() => fs.renameSync(v, path.join(vdir, 'renamed.txt')), 'rename a version within .versions')
      erofs(() => fs.renameSync(vdir, p('history-out')), 'rename a key\'s history directory out')
      erofs(() => fs.renameSync(p('nested'), p('.versions', 'moved-dir')), 'rename a directory into .versions')
      erofs(() => fs.renameSync(p('.versions'), p('history')), 'rename .versions itself')
      // mkdir, rmdir
      erofs(() => fs.mkdirSync(path.join(vdir, 'd')), 'mkdir in .versions/<key>/')
      erofs(() => fs.mkdirSync(p('.versions', 'd')), 'mkdir in .versions/')
      erofs(() => fs.rmdirSync(vdir), 'rmdir of a key\'s history directory')
      erofs(() => fs.rmdirSync(p('.versions', 'nested')), 'rmdir of a prefix directory in .versions')
      erofs(() => fs.rmdirSync(p('.versions')), 'rmdir of .versions')
      // chmod, chown, utimes
      erofs(() => fs.chmodSync(v, 0o644), 'chmod a version')
      erofs(() => fs.chmodSync(vdir, 0o700), 'chmod a history directory')
      erofs(() => fs.chmodSync(p('.versions'), 0o700), 'chmod .versions')
      erofs(() => fs.chownSync(v, uid, gid), 'chown a version')
      erofs(() => fs.utimesSync(v, when, when), 'utimes on a version')
      erofs(() => fs.utimesSync(vdir, when, when), 'utimes on a history directory')
      const touch = run('touch', [v])
      t.match(touch.stderr, /Read-only file system/, 'touch of a version: EROFS', { touch })
      // setxattr, removexattr
      t.match(setfattr(v, 'user.x', '1').stderr, /Read-only file system/, 'setfattr user.* on a version: EROFS')
      t.match(setfattr(v, 'user.s3.content_type', 'text/x-other').stderr, /Read-only file system/, 'setfattr user.s3.content_type on a version: EROFS')
      t.match(setfattr(vdir, 'user.x', '1').stderr, /Read-only file system/, 'setfattr on a history directory: EROFS')
      t.match(setfattr(p('.versions'), 'user.s3.versioning', 'Suspended').stderr, /Read-only file system/, 'setfattr user.s3.versioning on .versions: EROFS')
      t.match(run('setfattr', ['-x', 'user.s3.etag', v]).stderr, /Read-only file system/, 'setfattr -x on a version: EROFS')
      // symlink, special files, hard links
      erofs(() => fs.symlinkSync('target', path.join(vdir, 'link')), 'symlink in .versions/<key>/')
      erofs(() => fs.symlinkSync('target', p('.versions', 'link')), 'symlink in .versions/')
      const fifo = run('mkfifo', [path.join(vdir, 'fifo')])
      t.match(fifo.stderr, /Read-only file system/, 'mkfifo in .versions/<key>/: EROFS', { fifo })
      const linkIn = errnoOf(() => fs.linkSync(p('ro.txt'), path.join(vdir, 'hard')))
      t.ok(linkIn === 'EROFS' || linkIn === 'EPERM', 'a hard link into .versions is refused (EROFS or EPERM)', { linkIn })

      // Nothing changed.
      t.same(fs.readdirSync(vdir), names, 'the history is unchanged')
      t.equal(fs.readFileSync(v, 'utf8'), 'one', 'the version is unchanged')
      t.equal(fs.readFileSync(p('ro.txt'), 'utf8'), 'two', 'the key is unchanged')
      t.same(fs.readdirSync(p()).sort(), ['nested', 'ro.txt'], 'no key appeared or disappeared in the bucket')
      t.same(fs.readdirSync(p('.versions')).sort(), ['nested', 'ro.txt'], 'nor under .versions')
      t.ok(fs.statSync(v).mtimeMs !== when.getTime(), 'the version\'s time is unchanged')
      t.equal(fs.statSync(v).mode & 0o7777, fs.statSync(p('.versions', 'ro.txt', names[0] ?? '')).mode & 0o7777, 'nor its mode')
    })

    await t.test('versioning via xattr and the CLI agree, both directions', async t => {
      const b = path.join(mnt, 'state-64')
      fs.mkdirSync(b)
      const status = (): string => cli(dataDir, 'versioning', 'state-64', 'status').stdout.trim()
      const xattr = (): string | undefined => getfattr(b, 'user.s3.versioning').value
      t.equal(xattr(), 'Unversioned', 'a new bucket is Unversioned (xattr)')
      t.equal(status(), 'Unversioned', 'and (CLI)')
      t.equal(setfattr(b, 'user.s3.versioning', 'Enabled').status, 0, 'setfattr Enabled')
      t.equal(status(), 'Enabled', 'the CLI sees Enabled')
      let r = cli(dataDir, 'versioning', 'state-64', 'suspend')
      t.equal(r.status, 0, 'bucketfs versioning suspend', { stderr: r.stderr })
      t.equal(r.stdout.trim(), 'Suspended', 'it prints the new state')
      t.equal(xattr(), 'Suspended', 'getfattr sees Suspended')
      r = cli(dataDir, 'versioning', 'state-64', 'enable')
      t.equal(r.status, 0, 'bucketfs versioning enable', { stderr: r.stderr })
      t.equal(xattr(), 'Enabled', 'getfattr sees Enabled')
      t.equal(setfattr(b, 'user.s3.versioning', 'Suspended').status, 0, 'setfattr Suspended')
      t.equal(status(), 'Suspended', 'the CLI sees Suspended')
      t.equal(cli(dataDir, 'versioning', 'state-64').stdout.trim(), 'Suspended', '`versioning <bucket>` alone prints the status')

      for (const bad of ['sometimes', 'Unversioned', '']) {
        const s = setfattr(b, 'user.s3.versioning', bad)
        t.not(s.status, 0, `setfattr user.s3.versioning=${JSON.stringify(bad)} fails`)
        t.match(s.stderr, /Invalid argument/, 'with EINVAL', { stderr: s.stderr })
      }
      t.equal(xattr(), 'Suspended', 'the state is unchanged (xattr)')
      t.equal(status(), 'Suspended', 'the state is unchanged (CLI)')
      const badCli = cli(dataDir, 'versioning', 'state-64', 'sometimes')
      t.not(badCli.status, 0, 'bucketfs versioning with a bad action fails')
      t.equal(xattr(), 'Suspended', 'and changes nothing')
      t.not(cli(dataDir, 'versioning', 'no-such-bucket-64', 'status').status, 0, 'bucketfs versioning of a missing bucket fails')

      // The daemon writes by the state the CLI set.
      const c = path.join(mnt, 'cli-state-64')
      fs.mkdirSync(c)
      fs.writeFileSync(path.join(c, 'f.txt'), 'unversioned')
      t.equal(cli(dataDir, 'versioning', 'cli-state-64', 'enable').status, 0, 'CLI enables versioning on a mounted bucket')
      fs.writeFileSync(path.join(c, 'f.txt'), 'enabled 1')
      fs.writeFileSync(path.join(c, 'f.txt'), 'enabled 2')
      let h = fs.readdirSync(path.join(c, '.versions', 'f.txt')).map(parseName)
      t.same(h.map(v => v?.id === 'null'), [true, false, false], 'the mount\'s next writes made real versions after the unversioned null one', { h })
      t.equal(cli(dataDir, 'versioning', 'cli-state-64', 'suspend').status, 0, 'CLI suspends versioning')
      fs.writeFileSync(path.join(c, 'f.txt'), 'suspended')
      h = fs.readdirSync(path.join(c, '.versions', 'f.txt')).map(parseName)
      t.same(h.map(v => v?.id === 'null'), [false, false, true], 'the mount\'s next write replaced the null version', { h })
      t.equal(getfattr(path.join(c, 'f.txt'), 'user.s3.version_id').value, 'null', 'the file is the null version')
    })

    await t.test('Suspended: an overwrite replaces the null version, a delete makes a null marker', async t => {
      const p = bucket('susp-64')
      const f = p('s.txt')
      fs.writeFileSync(f, 'unversioned') // the null version
      t.equal(setfattr(p(), 'user.s3.versioning', 'Enabled').status, 0, 'enable')
      fs.writeFileSync(f, 'enabled 1')
      fs.writeFileSync(f, 'enabled 2')
      t.equal(history(p, 's.txt').length, 3, 'the null version and two real ones')
      t.equal(setfattr(p(), 'user.s3.versioning', 'Suspended').status, 0, 'suspend')
      for (const c of ['suspended 1', 'suspended 2', 'suspended 3']) fs.writeFileSync(f, c)
      let h = history(p, 's.txt')
      let vs = h.map(parseName)
      t.equal(h.length, 3, 'three overwrites while Suspended leave the two real versions and one null version', { h })
      t.same(vs.map(v => v?.id === 'null'), [false, false, true], 'the null version is the newest', { h })
      t.same(h.map(n => fs.readFileSync(p('.versions', 's.txt', n), 'utf8')), ['enabled 1', 'enabled 2', 'suspended 3'],
        'the real versions are kept; the null version holds the last write (the unversioned one was replaced)')
      t.ok(h[2]?.endsWith('_null.txt'), 'the null version is named _null<ext>', { name: h[2] })
      t.equal(getfattr(f, 'user.s3.version_id').value, 'null', 'the file is the null version')
      t.equal(fs.readFileSync(f, 'utf8'), 'suspended 3', 'with the last write')

      fs.unlinkSync(f)
      t.notOk(fs.readdirSync(p()).includes('s.txt'), 'deleted while Suspended: gone from the bucket')
      h = history(p, 's.txt')
      vs = h.map(parseName)
      t.equal(h.length, 3, 'the null version was replaced by a null delete marker', { h })
      t.same(vs.map(v => `${v?.id === 'null' ? 'null' : 'id'}${v?.deleted === true ? ' deleted' : ''}`), ['id', 'id', 'null deleted'], 'the real versions and a null delete marker')
      t.ok(h[2]?.endsWith('_null_deleted.txt'), 'named _null_deleted<ext>', { name: h[2] })
      t.same(h.slice(0, 2).map(n => fs.readFileSync(p('.versions', 's.txt', n), 'utf8')), ['enabled 1', 'enabled 2'], 'the real versions still read')
      t.equal(getfattr(p('.versions', 's.txt', h[2] ?? ''), 'user.s3.is_latest').value, 'true', 'the null marker is the latest')

      fs.writeFileSync(f, 'back')
      h = history(p, 's.txt')
      t.equal(h.length, 3, 'writing again while Suspended replaces the null marker by a null version', { h })
      t.equal(fs.readFileSync(f, 'utf8'), 'back')
    })

    await t.test('Unversioned: one null version however many overwrites', async t => {
      const p = bucket('unv-64')
      const f = p('u.txt')
      for (let i = 1; i <= 4; i++) fs.writeFileSync(f, `write ${i}`)
      fs.appendFileSync(f, ' appended')
      const h = history(p, 'u.txt')
      t.equal(h.length, 1, 'exactly one version', { h })
      t.equal(parseName(h[0] ?? '')?.id, 'null', 'named with the null version id', { h })
      t.ok(h[0]?.endsWith('_null.txt'), 'and the extension')
      t.equal(fs.readFileSync(p('.versions', 'u.txt', h[0] ?? ''), 'utf8'), 'write 4 appended', 'holding the last content')
      t.equal(getfattr(p('.versions', 'u.txt', h[0] ?? ''), 'user.s3.is_latest').value, 'true', 'it is the latest')
      t.equal(getfattr(p('.versions', 'u.txt', h[0] ?? ''), 'user.s3.etag').value, md5('write 4 appended'), 'its ETag')
      fs.unlinkSync(f)
      failsWith(t, () => fs.readdirSync(p('.versions', 'u.txt')), 'ENOENT', 'a delete in an unversioned bucket leaves no history')
      t.notOk(fs.readdirSync(p('.versions')).includes('u.txt'), 'nor an entry in .versions')
    })

    await t.test('chmod, chown, utimes and xattrs make no version', async t => {
      const p = bucket('meta-64', 'Enabled')
      const f = p('m.txt')
      fs.writeFileSync(f, 'content')
      const id = getfattr(f, 'user.s3.version_id').value
      const h0 = history(p, 'm.txt')
      t.equal(h0.length, 1, 'one version')
      const when = new Date(Date.UTC(2010, 5, 6, 7, 8, 9))
      fs.chmodSync(f, 0o600)
      fs.chownSync(f, process.getuid?.() ?? 0, process.getgid?.() ?? 0)
      fs.utimesSync(f, when, when)
      runOk(t, 'touch', [f])
      runOk(t, 'touch', ['-m', '-d', '2012-01-01T00:00:00Z', f])
      t.equal(setfattr(f, 'user.note', 'hi').status, 0, 'setfattr user.note')
      t.same(history(p, 'm.txt'), h0, 'the history is the same single version')
      t.equal(getfattr(f, 'user.s3.version_id').value, id, 'the version id is unchanged')
      const st = fs.statSync(f)
      t.equal(st.mode & 0o7777, 0o600, 'the mode changed')
      t.equal(st.mtimeMs, Date.UTC(2012, 0, 1), 'the mtime changed')
      t.equal(fs.readFileSync(f, 'utf8'), 'content', 'the content did not')
      // The same on a file being written: the metadata goes with the one version its close makes.
      const fd = fs.openSync(f, 'r+')
      fs.writeSync(fd, 'C', 0)
      fs.fchmodSync(fd, 0o640)
      fs.futimesSync(fd, when, when)
      fs.closeSync(fd)
      const h1 = history(p, 'm.txt')
      t.equal(h1.length, 2, 'a write plus chmod/utimes while open makes one version', { h1 })
      t.equal(fs.statSync(f).mode & 0o7777, 0o640, 'with the new mode')
      t.equal(fs.readFileSync(f, 'utf8'), 'Content', 'and content')
    })

    await t.test('the history and the versioning states survive a remount', async t => {
      const keys: Array<[string, string]> = [['hist-64', 'doc.txt'], ['nested-64', 'a/b/c.txt'], ['susp-64', 's.txt'], ['rename-64', 'a.txt'], ['saves-64', 'report.odt']]
      const snapshot = (): Record<string, Record<string, string>> => Object.fromEntries(keys.map(([b, k]) => {
        const dir = path.join(mnt, b, '.versions', ...k.split('/'))
        return [`${b}/${k}`, Object.fromEntries(fs.readdirSync(dir).map(n => [n, sha256(fs.readFileSync(path.join(dir, n)))]))]
      }))
      const states = (): Array<string | undefined> => ['hist-64', 'susp-64', 'unv-64', 'state-64'].map(b => getfattr(path.join(mnt, b), 'user.s3.versioning').value)
      const before = snapshot()
      const statesBefore = states()
      t.same(statesBefore, ['Enabled', 'Suspended', 'Unversioned', 'Suspended'], 'the states before')
      t.equal(await m.remount(), 0, 'the daemon exits 0 at the remount')
      t.same(snapshot(), before, 'every history lists the same names with the same bytes after a remount')
      t.same(states(), statesBefore, 'and every bucket keeps its versioning state')
      t.notOk(fs.readdirSync(path.join(mnt, 'hist-64')).includes('.versions'), '.versions is still not listed')
    })
  })
})

t.test('--show-versions lists .versions in every bucket', async t => {
  await withMount(t, async (mnt) => {
    const b = path.join(mnt, 'shown-64')
    fs.mkdirSync(b)
    t.equal(setfattr(b, 'user.s3.versioning', 'Enabled').status, 0, 'versioning enabled')
    fs.writeFileSync(path.join(b, 'f.txt'), 'one')
    fs.writeFileSync(path.join(b, 'f.txt'), 'two')
    fs.mkdirSync(path.join(b, 'sub'))
    t.same(fs.readdirSync(b).sort(), ['.versions', 'f.txt', 'sub'], 'readdir of the bucket lists .versions')
    t.ok(runOk(t, 'ls', ['-a', b]).stdout.split('\n').includes('.versions'), 'ls -a shows it')
    t.notOk(fs.readdirSync(path.join(b, 'sub')).includes('.versions'), 'a subdirectory does not list it')
    t.notOk(fs.readdirSync(mnt).includes('.versions'), 'the root does not list it')
    const entry = fs.readdirSync(b, { withFileTypes: true }).find(e => e.name === '.versions')
    t.ok(entry?.isDirectory(), 'listed as a directory')
    const found = runOk(t, 'find', [b, '-type', 'f']).stdout.trim().split('\n').map(l => path.relative(b, l)).sort()
    t.equal(found.filter(l => l.startsWith('.versions/f.txt/')).length, 2, 'find walks into it', { found })
    t.match(setfattr(path.join(b, '.versions'), 'user.x', '1').stderr, /Read-only file system/, 'still read-only')
    failsWith(t, () => fs.writeFileSync(path.join(b, '.versions', 'x'), 'x'), 'EROFS', 'still read-only (create)')
  }, { args: ['--show-versions'] })
})

t.test('20 versions of a 64 MiB file changed 1 MiB in place cost less than 2x its size', async t => {
  await withMount(t, async (mnt, dataDir) => {
    const b = path.join(mnt, 'space-64')
    fs.mkdirSync(b)
    t.equal(setfattr(b, 'user.s3.versioning', 'Enabled').status, 0, 'versioning enabled')
    const f = path.join(b, 'big.bin')
    const SIZE = 64 * MiB
    const work = new Prng(6464).bytes(SIZE)
    const hashes = [sha256(work)]
    const started = Date.now()
    fs.writeFileSync(f, work)
    for (let i = 1; i < 20; i++) {
      const off = ((i * 7) % 64) * MiB // 19 distinct MiB-aligned offsets
      const patch = new Prng(7000 + i).bytes(MiB)
      const fd = fs.openSync(f, 'r+')
      let done = 0
      while (done < MiB) done += fs.writeSync(fd, patch, done, MiB - done, off + done)
      fs.closeSync(fd)
      patch.copy(work, off)
      hashes.push(sha256(work))
    }
    t.comment(`20 saves took ${Date.now() - started} ms`)
    const names = fs.readdirSync(path.join(b, '.versions', 'big.bin'))
    t.equal(names.length, 20, 'twenty versions', { names })
    t.ok(names.every(n => parseName(n)?.deleted === false && parseName(n)?.ext === '.bin'), 'none a delete marker, all .bin')
    t.ok(names.every(n => fs.statSync(path.join(b, '.versions', 'big.bin', n)).size === SIZE), 'each 64 MiB')

    const s = storeStats(t, dataDir)
    t.ok(s.storedBytes < 2 * SIZE, `stored bytes (${(s.storedBytes / MiB).toFixed(1)} MiB) < 2 x 64 MiB`, { stats: s })
    t.ok(s.storedBytes >= SIZE + 19 * MiB, 'and at least the file plus the 19 changed MiB (every version is really kept)', { stats: s })
    t.ok(s.logicalBytes >= 20 * SIZE, 'the logical size counts all twenty versions', { stats: s })

    const readStart = Date.now()
    for (const i of [0, 1, 7, 13, 18, 19]) {
      t.equal(sha256File(path.join(b, '.versions', 'big.bin', names[i] ?? '')), hashes[i], `version ${i + 1} reads back exactly`)
    }
    t.equal(sha256File(f), hashes[19], 'the file is the last version')
    t.comment(`7 x 64 MiB read back in ${Date.now() - readStart} ms`)
    t.equal(getfattr(path.join(b, '.versions', 'big.bin', names[19] ?? ''), 'user.s3.is_latest').value, 'true', 'the last is the latest')

    // Restoring the first version by cp stores nothing new: its chunks are already there.
    runOk(t, 'cp', [path.join(b, '.versions', 'big.bin', names[0] ?? ''), f])
    const after = storeStats(t, dataDir)
    t.equal(after.storedBytes, s.storedBytes, 'restoring 64 MiB by cp stored no new bytes', { before: s, after })
    t.equal(fs.readdirSync(path.join(b, '.versions', 'big.bin')).length, 21, 'and added one version')
    t.equal(sha256File(f), hashes[0], 'the file is the first version again')
  })
})

