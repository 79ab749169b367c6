// The mount itself, end to end: `bucketfs mount` in a child process serving a fresh
// store; files through the kernel; the data dir's lock; unmounting (SIGTERM, --daemon
// + `bucketfs umount`); and the stale mount a SIGKILLed daemon leaves, cleared by the
// next mount. Needs the built dist/ (`npm test` builds) and /dev/fuse.
import t from 'tap'
import { spawnSync } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { BIN, ROOT, isMounted, isStale, mountEntry, pidAlive, startMount, watchdog, withMount, Mount } from './helpers/mount'

interface Run { code: number | null, stdout: string, stderr: string }

/** `bucketfs <args>`, without DEBUG. */
function cli (args: string[]): Run {
  const env = { ...process.env }
  delete env.DEBUG
  const r = spawnSync(process.execPath, [BIN, ...args], { cwd: ROOT, env, encoding: 'utf8', timeout: 120_000 })
  return { code: r.status, stdout: r.stdout, stderr: r.stderr }
}

const lockOf = (dataDir: string): { pid: number, mountpoint: string } =>
  JSON.parse(fs.readFileSync(path.join(dataDir, 'daemon.lock'), 'utf8')) as { pid: number, mountpoint: string }

t.before(() => {
  if (!fs.existsSync(path.join(ROOT, 'dist', 'src', 'cli', 'main.js'))) {
    throw new Error('dist/ is missing: run `npm run build` (npm test does) before this test')
  }
})

t.test('mount, a bucket, a file written and read back, ls, unmount', async t => {
  await withMount(t, async (mnt, dataDir, m) => {
    const entry = mountEntry(mnt)
    t.equal(entry?.type, 'fuse.bucketfs', 'listed in /proc/mounts as fuse.bucketfs')
    t.equal(entry?.source, `bucketfs:${dataDir}`, 'the source names the data dir (df shows it)')
    const lock = lockOf(dataDir)
    t.equal(lock.pid, m.pid, 'the lock names the daemon')
    t.equal(lock.mountpoint, mnt, 'and its mountpoint')

    const bucket = path.join(mnt, 'photos')
    fs.mkdirSync(bucket)
    t.ok(fs.statSync(bucket).isDirectory(), 'mkdir at the root makes a bucket')
    const file = path.join(bucket, '2024', 'hello.txt')
    fs.mkdirSync(path.dirname(file))
    fs.writeFileSync(file, 'hello, bucketfs\n')
    t.equal(fs.readFileSync(file, 'utf8'), 'hello, bucketfs\n', 'a file reads back what was written')
    t.equal(fs.statSync(file).size, 16, 'and has its size')
    t.same(fs.readdirSync(mnt), ['photos'], 'readdir of the root lists the bucket')
    t.same(fs.readdirSync(path.join(bucket, '2024')), ['hello.txt'], 'readdir of a directory lists the file')

    const ls = spawnSync('ls', ['-la', path.join(bucket, '2024')], { encoding: 'utf8' })
    t.equal(ls.status, 0, 'ls -la works')
    t.match(ls.stdout, /^-rw.* 16 .* hello\.txt$/m, 'ls -la shows the file with its size')
    t.match(ls.stdout, /^d.* \.$/m, 'and . ')
    t.match(ls.stdout, /^d.* \.\.$/m, 'and ..')

    const df = spawnSync('df', ['-P', mnt], { encoding: 'utf8' })
    t.equal(df.status, 0, 'df (statfs) works')
    t.match(df.stdout, `bucketfs:${dataDir}`, 'df names the store')
  })
})

t.test('the data survives an unmount; a second daemon on the same data dir is refused', async t => {
  const m = await startMount(t)
  const file = path.join(m.mountpoint, 'docs', 'a.txt')
  fs.mkdirSync(path.dirname(file))
  fs.writeFileSync(file, 'kept')

  const other = new Mount()
  t.teardown(async () => { await other.cleanup() })
  const second = cli(['mount', other.mountpoint, '--data', m.dataDir])
  t.not(second.code, 0, 'a second mount of the same data dir fails')
  t.match(second.stderr, `already mounted by pid ${m.pid ?? '?'}`, 'naming the pid that holds it', { stderr: second.stderr })
  t.notOk(isMounted(other.mountpoint), 'and mounts nothing')
  t.ok(pidAlive(m.pid ?? 0), 'the first daemon is unharmed')
  t.equal(fs.readFileSync(file, 'utf8'), 'kept', 'and still serves its files')

  t.equal(await m.stop(), 0, 'SIGTERM: the daemon exits 0')
  t.notOk(m.leftMountBehind, 'and leaves no mount')
  t.notOk(fs.existsSync(path.join(m.dataDir, 'daemon.lock')), 'and no lock')

  await m.start()
  t.equal(fs.readFileSync(file, 'utf8'), 'kept', 'mounted again: the file is there')
})

t.test('a SIGKILLed daemon leaves a stale mount; the next mount clears it', async t => {
  const m = await startMount(t)
  const file = path.join(m.mountpoint, 'crash', 'closed.txt')
  fs.mkdirSync(path.dirname(file))
  fs.writeFileSync(file, 'closed before the crash')
  const deadPid = m.pid
  await m.killDaemon()
  t.ok(isMounted(m.mountpoint), 'the mount is still listed')
  t.ok(isStale(m.mountpoint), 'and answers ENOTCONN')
  t.equal(lockOf(m.dataDir).pid, deadPid, 'the lock still names the dead daemon')

  await m.start()
  t.not(m.pid, deadPid, 'a new daemon')
  t.notOk(isStale(m.mountpoint), 'the stale mount was cleared and replaced')
  t.equal(mountEntry(m.mountpoint)?.type, 'fuse.bucketfs')
  const stacked = fs.readFileSync('/proc/self/mounts', 'utf8').split('\n').filter(l => l.split(' ')[1] === m.mountpoint)
  t.equal(stacked.length, 1, 'one mount at the mountpoint, not two stacked')
  t.equal(fs.readFileSync(file, 'utf8'), 'closed before the crash', 'a file closed before the crash is there')
  t.equal(lockOf(m.dataDir).pid, m.pid, 'the lock was taken over')
})

t.test('mount --daemon returns once mounted; umount stops it', async t => {
  const m = new Mount() // only for its temp dirs; the daemon here is not our child
  let daemonPid: number | undefined
  let retire: (() => void) | undefined
  t.teardown(async () => {
    retire?.()
    if (daemonPid !== undefined && pidAlive(daemonPid)) {
      process.kill(daemonPid, 'SIGTERM')
      for (let i = 0; i < 600 && pidAlive(daemonPid); i++) await new Promise(resolve => setTimeout(resolve, 100))
      if (pidAlive(daemonPid)) process.kill(daemonPid, 'SIGKILL')
    }
    await m.cleanup()
  })

  const mountpoint = path.join(m.root, 'not-yet-there')
  const started = cli(['mount', '--daemon', mountpoint, '--data', m.dataDir])
  t.equal(started.code, 0, 'mount --daemon exits 0', { stderr: started.stderr })
  daemonPid = lockOf(m.dataDir).pid
  retire = watchdog(daemonPid, mountpoint)
  t.match(started.stdout, `daemon pid ${daemonPid}`, 'and says which pid serves the mount')
  t.equal(mountEntry(mountpoint)?.type, 'fuse.bucketfs', 'the mount is there when it returns (the mountpoint was created)')
  fs.mkdirSync(path.join(mountpoint, 'daemon-bucket'))
  fs.writeFileSync(path.join(mountpoint, 'daemon-bucket', 'f'), 'x')
  t.match(fs.readFileSync(path.join(m.dataDir, 'daemon.log'), 'utf8'), `mounted ${m.dataDir} at ${mountpoint}`, 'the daemon logs to <data>/daemon.log')

  const again = cli(['mount', '--daemon', path.join(m.root, 'elsewhere'), '--data', m.dataDir])
  t.not(again.code, 0, 'a second --daemon on the same data dir fails')
  t.match(again.stderr, `already mounted by pid ${daemonPid}`, 'with the holder\'s pid, passed on from the child')

  const stopped = cli(['umount', mountpoint])
  t.equal(stopped.code, 0, 'umount exits 0', { stderr: stopped.stderr })
  t.notOk(isMounted(mountpoint), 'the mount is gone')
  t.notOk(pidAlive(daemonPid), 'the daemon has exited')
  t.notOk(fs.existsSync(path.join(m.dataDir, 'daemon.lock')), 'and released the lock')

  const nothing = cli(['umount', mountpoint])
  t.not(nothing.code, 0, 'umount where nothing is mounted fails')
  t.match(nothing.stderr, `nothing is mounted at ${mountpoint}`, 'and says so')
})

t.test('umount clears a stale mount whose daemon is gone', async t => {
  const m = await startMount(t)
  await m.killDaemon()
  t.ok(isStale(m.mountpoint), 'stale after SIGKILL')
  const r = cli(['umount', m.mountpoint])
  t.equal(r.code, 0, 'umount exits 0', { stderr: r.stderr })
  t.notOk(isMounted(m.mountpoint), 'the stale mount is gone')
})

t.test('big writes: a 1 MiB dd block reaches the daemon as one write (as 128 KiB ones where the kernel takes no max_pages)', async t => {
  await withMount(t, async (mnt, _dataDir, m) => {
    fs.mkdirSync(path.join(mnt, 'ddtest'))
    const dd = spawnSync('dd', ['if=/dev/zero', `of=${path.join(mnt, 'ddtest', 'zeros')}`, 'bs=1M', 'count=4', 'conv=fsync'], { encoding: 'utf8' })
    t.equal(dd.status, 0, 'dd bs=1M count=4', { stderr: dd.stderr })
    t.equal(fs.statSync(path.join(mnt, 'ddtest', 'zeros')).size, 4 * 1024 * 1024)
    const sizes = [...m.log().matchAll(/ write\(\/ddtest\/zeros, \d+, (\d+), \d+\)/g)].map(x => Number(x[1]))
    // 1 MiB requests need FUSE_MAX_PAGES (Linux 4.20 and later; test/58 also checks what the daemon asked for).
    const [major, minor] = os.release().split('.').map(Number)
    const size = major * 1000 + minor >= 4020 || sizes[0] === 1024 * 1024 ? 1024 * 1024 : 128 * 1024
    t.equal(sizes.length, 4 * 1024 * 1024 / size, `${sizes.length} writes for 4 MiB`, { sizes: [...new Set(sizes)] })
    t.ok(sizes.every(n => n === size), `each of ${size / 1024} KiB`)
  }, { env: { DEBUG: 'bucketfs:fuse' } })
})

t.test('an unmount from outside (fusermount -u) ends the daemon cleanly', async t => {
  const m = await startMount(t)
  const pid = m.pid ?? 0
  const r = spawnSync('fusermount', ['-u', m.mountpoint], { encoding: 'utf8' })
  t.equal(r.status, 0, 'fusermount -u', { stderr: r.stderr })
  for (let i = 0; i < 100 && pidAlive(pid); i++) await new Promise(resolve => setTimeout(resolve, 100))
  t.notOk(pidAlive(pid), 'the daemon notices and exits')
  t.notOk(fs.existsSync(path.join(m.dataDir, 'daemon.lock')), 'releasing the lock')
  t.match(m.log(), `unmounted ${m.mountpoint}`)
})
