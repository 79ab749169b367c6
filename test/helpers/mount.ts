// A real mount for end-to-end tests: a fresh data dir and mountpoint, served by
// `bin/bucketfs mount` in a child process (the built dist/), always unmounted.
//
//   await withMount(t, async (mnt, dataDir, m) => { ...; await m.remount(); ...; await m.killDaemon() })
//   await remount(t, async (mnt) => { write }, async (mnt) => { check })
//
// Never use synchronous fs calls on a mount from the process that serves it; here the
// daemon is always another process, so the test may use fs.*Sync freely.
//
// Cleanup, in every case:
// - at the end of withMount: SIGTERM to the daemon (it completes open writes and unmounts),
//   checked: it must exit 0 and leave no mount;
// - in t.teardown (also after a failure): SIGTERM, wait; SIGKILL by pid if it does not
//   exit; `fusermount -uz` if the mount is still listed; the temp dirs removed only then;
// - if this test process dies without its teardowns (a tap timeout ends in SIGKILL), a
//   watchdog (a small detached shell holding a pipe from us) sees the pipe close and
//   does the same to the daemon.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import type {} from 'tap' // the global tap.Test type
import { isStale } from '../../src/mount/mounts'

/** The checkout: the first directory above this file with bin/bucketfs (also when run compiled, from dist/). */
export const ROOT = ((): string => {
  for (let d = __dirname; path.dirname(d) !== d; d = path.dirname(d)) {
    if (fs.existsSync(path.join(d, 'package.json')) && fs.existsSync(path.join(d, 'bin', 'bucketfs'))) return d
  }
  return path.resolve(__dirname, '..', '..')
})()
export const BIN = path.join(ROOT, 'bin', 'bucketfs')

export interface MountOptions {
  /** More `bucketfs mount` arguments, e.g. ['--write-budget', '8', '--show-versions']. */
  args?: string[]
  /** More environment for the daemon. DEBUG is not passed on unless given here. */
  env?: NodeJS.ProcessEnv
  /** How long a daemon may take to mount (default 30 s) and to unmount after SIGTERM (default 120 s). */
  startTimeoutMs?: number
  stopTimeoutMs?: number
}

export interface MountEntry { source: string, mountpoint: string, type: string }

const unescape = (s: string): string => s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)))

/** The /proc/self/mounts entry at exactly `mountpoint` (the top one if stacked). */
export function mountEntry (mountpoint: string): MountEntry | undefined {
  const rows = fs.readFileSync('/proc/self/mounts', 'utf8').split('\n').filter(l => l !== '').map(l => {
    const [source = '', mp = '', type = ''] = l.split(' ')
    return { source: unescape(source), mountpoint: unescape(mp), type }
  })
  return rows.filter(r => r.mountpoint === mountpoint).pop()
}

export const isMounted = (mountpoint: string): boolean => mountEntry(mountpoint) !== undefined

const FUSE_SUPER_MAGIC = 0x65735546

/**
 * A FUSE filesystem answers at `mountpoint`, in one statfs: reading /proc/self/mounts and
 * then calling statfs races a dead mount's lazy detach (the entry read is the dead mount,
 * the statfs reaches the empty directory under it and succeeds).
 */
export function fuseAnswers (mountpoint: string): boolean {
  try {
    return fs.statfsSync(mountpoint).type === FUSE_SUPER_MAGIC
  } catch {
    return false
  }
}

/** A FUSE mount whose daemon is gone answers ENOTCONN to everything (the daemon's own check). */
export { isStale }

const sleep = async (ms: number): Promise<void> => { await new Promise(resolve => setTimeout(resolve, ms)) }

async function waitFor (test: () => boolean, ms: number, every = 50): Promise<boolean> {
  for (const deadline = Date.now() + ms; ;) {
    if (test()) return true
    if (Date.now() >= deadline) return false
    await sleep(every)
  }
}

/** Whether `pid` runs (a zombie does not). */
export function pidAlive (pid: number): boolean {
  try {
    process.kill(pid, 0)
  } catch {
    return false
  }
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8')
    return !/^[ZX]$/.test(stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3))
  } catch {
    return false
  }
}

function fusermountLazy (mountpoint: string): void {
  spawnSync('fusermount', ['-uz', mountpoint], { stdio: 'ignore' })
}

// Runs detached; reads its stdin until it closes (we exited, however); then stops the daemon.
const WATCHDOG = `
read _ignored
kill -TERM "$1" 2>/dev/null
i=0
while [ $i -lt 1200 ] && [ -r /proc/$1/stat ] && ! grep -q ') [ZX] ' /proc/$1/stat; do sleep 0.1; i=$((i+1)); done
kill -KILL "$1" 2>/dev/null
fusermount -uz "$2" 2>/dev/null
`

/** Starts the watchdog for a daemon; returns a function that retires it (normal cleanup). */
export function watchdog (pid: number, mountpoint: string): () => void {
  const dog = spawn('sh', ['-c', WATCHDOG, 'bucketfs-test-watchdog', String(pid), mountpoint], {
    detached: true, stdio: ['pipe', 'ignore', 'ignore']
  })
  dog.unref()
  const stdin = dog.stdin as (NodeJS.WritableStream & { unref?: () => void }) | null
  stdin?.unref?.()
  return () => {
    if (dog.pid !== undefined && dog.exitCode === null && dog.signalCode === null) {
      try { process.kill(dog.pid, 'SIGKILL') } catch {}
    }
    dog.stdin?.destroy()
  }
}

/** A mountpoint and data dir, and the daemon serving them (one at a time). */
export class Mount {
  readonly root: string
  readonly mountpoint: string
  readonly dataDir: string
  /** The daemons' stdout and stderr, every run appended. */
  readonly logFile: string
  private child: ChildProcess | undefined
  private exited: Promise<number | null> | undefined
  private retireWatchdog: (() => void) | undefined
  /** Whether the last stop() found the mount still there after the daemon exited (and detached it). */
  leftMountBehind = false

  constructor (readonly opts: MountOptions = {}) {
    // Not t.testdir(): tap removes that on its own schedule, maybe through a live mount.
    this.root = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), 'bucketfs-mount-')))
    this.mountpoint = path.join(this.root, 'mnt')
    this.dataDir = path.join(this.root, 'data')
    this.logFile = path.join(this.root, 'daemon.log')
    fs.mkdirSync(this.mountpoint)
  }

  /** The running daemon's pid. */
  get pid (): number | undefined {
    return this.child !== undefined && this.child.exitCode === null && this.child.signalCode === null ? this.child.pid : undefined
  }

  log (): string {
    try { return fs.readFileSync(this.logFile, 'utf8') } catch { return '' }
  }

  /** Starts `bucketfs mount` in the foreground and waits until the mount answers. */
  async start (): Promise<void> {
    if (this.pid !== undefined) throw new Error(`a daemon (pid ${this.pid}) already serves ${this.mountpoint}`)
    const env: NodeJS.ProcessEnv = { ...process.env }
    delete env.DEBUG
    Object.assign(env, this.opts.env)
    const out = fs.openSync(this.logFile, 'a')
    const child = spawn(process.execPath, [BIN, 'mount', this.mountpoint, '--data', this.dataDir, ...(this.opts.args ?? [])], {
      cwd: this.root, env, stdio: ['ignore', out, out]
    })
    fs.closeSync(out)
    this.child = child
    this.exited = new Promise(resolve => { child.once('exit', code => { resolve(code) }) })
    if (child.pid !== undefined) this.retireWatchdog = watchdog(child.pid, this.mountpoint)
    const ready = await waitFor(() => {
      if (this.pid === undefined) return true
      const m = mountEntry(this.mountpoint)
      return m?.type === 'fuse.bucketfs' && fuseAnswers(this.mountpoint)
    }, this.opts.startTimeoutMs ?? 30_000)
    if (this.pid === undefined) throw new Error(`bucketfs mount exited with ${child.exitCode ?? child.signalCode} before mounting:\n${this.log()}`)
    if (!ready) throw new Error(`${this.mountpoint} was not mounted within ${this.opts.startTimeoutMs ?? 30_000} ms:\n${this.log()}`)
  }

  /**
   * SIGTERM, as a user's Ctrl-C or `bucketfs umount` would: the daemon completes every open
   * write and unmounts. Falls back to SIGKILL and `fusermount -uz`. Resolves to the exit code.
   */
  async stop (): Promise<number | null> {
    const child = this.child
    if (child === undefined || this.exited === undefined) return null
    let code: number | null = child.exitCode
    if (this.pid !== undefined && child.pid !== undefined) {
      process.kill(child.pid, 'SIGTERM')
      const timeout = this.opts.stopTimeoutMs ?? 120_000
      let timer: NodeJS.Timeout | undefined
      const result = await Promise.race([this.exited, new Promise<'timeout'>(resolve => { timer = setTimeout(() => { resolve('timeout') }, timeout) })])
      clearTimeout(timer)
      if (result === 'timeout') {
        if (this.pid !== undefined) process.kill(child.pid, 'SIGKILL')
        await this.exited
        code = null
      } else {
        code = result
      }
    }
    this.retireWatchdog?.()
    this.retireWatchdog = undefined
    this.leftMountBehind = isMounted(this.mountpoint)
    if (this.leftMountBehind) fusermountLazy(this.mountpoint)
    return code
  }

  /** SIGKILL: a crash. The mount stays behind, stale, until the next start() clears it. */
  async killDaemon (): Promise<void> {
    const child = this.child
    if (child?.pid === undefined || this.pid === undefined || this.exited === undefined) throw new Error('no daemon is running')
    process.kill(child.pid, 'SIGKILL')
    await this.exited
    this.retireWatchdog?.()
    this.retireWatchdog = undefined
  }

  /** Stops the daemon and mounts the same data dir again at the same place. */
  async remount (): Promise<number | null> {
    const code = await this.stop()
    await this.start()
    return code
  }

  /** Everything back as it was: no daemon, no mount, no temp dirs. */
  async cleanup (): Promise<void> {
    await this.stop()
    if (isMounted(this.mountpoint)) {
      fusermountLazy(this.mountpoint)
      await waitFor(() => !isMounted(this.mountpoint), 5000)
    }
    // Never remove through a mount.
    if (!isMounted(this.mountpoint)) fs.rmSync(this.root, { recursive: true, force: true })
    else throw new Error(`${this.mountpoint} is still mounted; left ${this.root} in place`)
  }
}

/** A started mount, cleaned up in t.teardown whatever happens. */
export async function startMount (t: tap.Test, opts: MountOptions = {}): Promise<Mount> {
  const m = new Mount(opts)
  t.teardown(async () => { await m.cleanup() })
  await m.start()
  return m
}

/**
 * Runs fn on a fresh mount, then unmounts as a user would and checks that the daemon
 * exited 0 and left no mount (t.teardown cleans up if anything failed on the way).
 */
export async function withMount (t: tap.Test, fn: (mnt: string, dataDir: string, m: Mount) => Promise<void>, opts: MountOptions = {}): Promise<void> {
  const m = await startMount(t, opts)
  await fn(m.mountpoint, m.dataDir, m)
  if (m.pid !== undefined) {
    const code = await m.stop()
    t.equal(code, 0, 'the daemon exits 0 after SIGTERM', { log: m.log().slice(-4000) })
    t.notOk(m.leftMountBehind, 'the daemon leaves no mount behind')
  }
}

/** Two sessions on the same data dir and mountpoint, with an unmount and a mount between. */
export async function remount (t: tap.Test, first: (mnt: string, dataDir: string) => Promise<void>,
  second: (mnt: string, dataDir: string) => Promise<void>, opts: MountOptions = {}): Promise<void> {
  await withMount(t, async (mnt, dataDir, m) => {
    await first(mnt, dataDir)
    const code = await m.remount()
    t.equal(code, 0, 'the first daemon exits 0 after SIGTERM', { log: m.log().slice(-4000) })
    t.notOk(m.leftMountBehind, 'the first daemon leaves no mount behind')
    await second(mnt, dataDir)
  }, opts)
}
