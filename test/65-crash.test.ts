// Crash consistency under concurrent writers (issue 6): the short CI variant of
// scripts/crash-test.ts (run it for many rounds before a release):
//   node dist/scripts/crash-test.js --rounds 50 --writers 4 --seed 1
// Writers create, overwrite, append, write in place, rename, delete, some fsync and
// all close, journaling outside the mount; the daemon is SIGKILLed at a random moment;
// after each remount every closed file has exactly its content, fsynced-but-open ones
// at least their fsynced content, nothing half-written is visible, and fsck --deep is
// clean before and after gc (which leaves no unreferenced chunk).
// Needs the built script (`npm run build`) and /dev/fuse.
import t from 'tap'
import fs from 'node:fs'
import path from 'node:path'
import { spawn, spawnSync } from 'node:child_process'
import { ROOT, withMount } from './helpers/mount'

const SCRIPT = path.join(ROOT, 'dist', 'scripts', 'crash-test.js')

t.test('three SIGKILL rounds with three writers: nothing closed or fsynced is lost, nothing half-written shows', async t => {
  t.ok(fs.existsSync(SCRIPT), 'the crash test is built')
  const child = spawn(process.execPath, [SCRIPT, '--rounds', '3', '--writers', '3', '--seed', '65', '--max-kill-ms', '3000'], {
    cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe']
  })
  // The script unmounts and stops its writers on SIGTERM (and its mount's watchdog does if it dies).
  t.teardown(() => { if (child.exitCode === null && child.signalCode === null && child.pid !== undefined) process.kill(child.pid, 'SIGTERM') })
  let out = ''
  child.stdout.on('data', (d: Buffer) => { out += d.toString() })
  child.stderr.on('data', (d: Buffer) => { out += d.toString() })
  const code = await new Promise<number | null>(resolve => child.on('exit', c => { resolve(c) }))
  for (const line of out.trimEnd().split('\n')) t.comment(line)
  t.equal(code, 0, 'crash-test exits 0', { output: out.slice(-8000) })
  t.match(out, /rounds survived: 3\/3/, 'every round survived')
  t.match(out, /problems found: 0/, 'no problem found')
  const files = Number(/files verified: (\d+)/.exec(out)?.[1] ?? 0)
  t.ok(files > 0, `files verified: ${files}`)
})

// A process that writes a file and meanwhile starts another program (fork + exec)
// must not make the half-written file a version: FUSE sends FLUSH for the child's
// copy of the descriptor (closed at exec, O_CLOEXEC), the same request as a close.
t.test('starting a program while writing a file makes no half-written version, also across a crash', async t => {
  await withMount(t, async (mnt, _dataDir, m) => {
    const b = path.join(mnt, 'fork-65')
    fs.mkdirSync(b)
    t.equal(spawnSync('setfattr', ['-n', 'user.s3.versioning', '-v', 'Enabled', b]).status, 0, 'versioning enabled')
    const f = path.join(b, 'doc.txt')
    const fd = fs.openSync(f, 'w')
    fs.writeSync(fd, 'first half, ')
    spawnSync('true') // any child process: a shell command, a compiler, git…
    fs.writeSync(fd, 'second half')
    fs.closeSync(fd)
    const versions = fs.readdirSync(path.join(b, '.versions', 'doc.txt'))
    const contents = versions.map(v => fs.readFileSync(path.join(b, '.versions', 'doc.txt', v), 'utf8'))
    t.same(contents, ['first half, second half'], 'one save, one version: the whole file', { versions })

    // The same, but the daemon dies before the close: the file was never closed or fsynced.
    const g = path.join(b, 'never-closed.txt')
    const gfd = fs.openSync(g, 'w')
    fs.writeSync(gfd, 'half-written')
    spawnSync('true')
    await m.killDaemon()
    try { fs.closeSync(gfd) } catch {}
    await m.start()
    const there = fs.existsSync(g)
    t.notOk(there, 'a file never closed nor fsynced is not there after the crash', there ? { content: fs.readFileSync(g, 'utf8') } : {})
  })
})
