// The two FUSE daemons the bench compares, each run as our own child in the
// foreground so that we know its pid, can sample it in /proc and stop it:
// bindfs (a C passthrough on libfuse 2) and `bucketfs mount`.
import { spawn, type ChildProcess } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import { Cleanup, killSync, lazyUnmountSync } from './cleanup'
import { alive, cmd, isMounted, nowMs, waitFor } from './proc'

/** The repository root (this file is dist/scripts/bench/daemons.js once built). */
export const REPO = path.resolve(__dirname, '..', '..', '..')
export const BUCKETFS_BIN = path.join(REPO, 'bin', 'bucketfs')

export interface Daemon {
  readonly name: string
  readonly pid: number
  readonly mountpoint: string
  /** Spawn → listed in /proc/mounts, in ms. */
  readonly mountedMs: number
  /** Unmounts and waits for the process to exit. Idempotent. */
  stop: () => Promise<void>
}

interface StartSpec {
  name: string
  file: string
  args: string[]
  mountpoint: string
  logFile: string
  env?: NodeJS.ProcessEnv
  /** How to ask it to unmount and exit. */
  unmount: (child: ChildProcess) => Promise<void>
  /** Max ms to wait for exit after asking. */
  exitTimeoutMs: number
}

async function startDaemon (spec: StartSpec, cleanup: Cleanup): Promise<Daemon> {
  fs.mkdirSync(spec.mountpoint, { recursive: true })
  if (isMounted(spec.mountpoint)) throw new Error(`${spec.mountpoint} is already mounted`)
  const log = fs.openSync(spec.logFile, 'a')
  const started = nowMs()
  const child = spawn(spec.file, spec.args, { stdio: ['ignore', log, log], env: spec.env ?? process.env })
  fs.closeSync(log)
  const pid = child.pid
  if (pid === undefined) throw new Error(`could not start ${spec.name}`)
  let exited = false
  const exit = new Promise<void>(resolve => { child.once('exit', () => { exited = true; resolve() }) })

  let stopping: Promise<void> | undefined
  const stop = async (): Promise<void> => {
    stopping ??= (async () => {
      if (!exited) {
        try {
          await spec.unmount(child)
        } catch (err) {
          process.stderr.write(`bench: stopping ${spec.name}: ${err instanceof Error ? err.message : String(err)}\n`)
        }
        let timer: NodeJS.Timeout | undefined
        const done = await Promise.race([
          exit.then(() => true),
          new Promise<boolean>(resolve => { timer = setTimeout(() => { resolve(false) }, spec.exitTimeoutMs) })
        ])
        clearTimeout(timer)
        if (!done) {
          process.stderr.write(`bench: ${spec.name} (pid ${pid}) did not exit within ${spec.exitTimeoutMs} ms: killing it\n`)
          lazyUnmountSync(spec.mountpoint)
          killSync(pid)
          await exit
        }
      }
      if (isMounted(spec.mountpoint)) lazyUnmountSync(spec.mountpoint)
    })()
    await stopping
  }
  cleanup.add(`${spec.name} at ${spec.mountpoint}`, stop, () => {
    if (alive(pid)) killSync(pid, 'SIGTERM')
    lazyUnmountSync(spec.mountpoint)
  })

  const ready = await waitFor(() => exited || isMounted(spec.mountpoint), 60_000, 2)
  if (!ready || exited) {
    await stop()
    const tail = fs.readFileSync(spec.logFile, 'utf8').slice(-3000)
    throw new Error(`${spec.name} did not mount ${spec.mountpoint}${exited ? ' (it exited)' : ''}:\n${tail}`)
  }
  return { name: spec.name, pid, mountpoint: spec.mountpoint, mountedMs: nowMs() - started, stop }
}

/** `bindfs -f --no-allow-other SRC MP`: libfuse 2, single-threaded (its default), no caching options. */
export async function startBindfs (source: string, mountpoint: string, logFile: string, cleanup: Cleanup): Promise<Daemon> {
  fs.mkdirSync(source, { recursive: true })
  return await startDaemon({
    name: 'bindfs',
    file: 'bindfs',
    args: ['-f', '--no-allow-other', source, mountpoint],
    mountpoint,
    logFile,
    unmount: async () => { await cmd('fusermount', ['-u', mountpoint]) },
    exitTimeoutMs: 30_000
  }, cleanup)
}

export interface BucketfsOptions {
  dataDir: string
  mountpoint: string
  logFile: string
  /** Write a V8 CPU profile of the daemon into this directory when it exits. */
  cpuProfDir?: string
  /** Load scripts/bench/probe.js into the daemon, snapshotting its counters into this file on SIGUSR2. */
  probeFile?: string
  extraArgs?: string[]
}

/** `node bin/bucketfs mount MP --data DIR` in the foreground; SIGTERM completes open writes and unmounts. */
export async function startBucketfs (opts: BucketfsOptions, cleanup: Cleanup): Promise<Daemon> {
  const nodeArgs: string[] = []
  const env: NodeJS.ProcessEnv = { ...process.env }
  delete env.DEBUG
  if (opts.cpuProfDir !== undefined) {
    fs.mkdirSync(opts.cpuProfDir, { recursive: true })
    nodeArgs.push('--cpu-prof', `--cpu-prof-dir=${opts.cpuProfDir}`)
  }
  if (opts.probeFile !== undefined) {
    nodeArgs.push('--require', path.join(__dirname, 'probe.js'))
    env.BUCKETFS_BENCH_PROBE = opts.probeFile
    env.DEBUG = 'bucketfs:fuse' // the adapter's per-op trace, which the probe counts instead of printing
  }
  return await startDaemon({
    name: 'bucketfs',
    file: process.execPath,
    args: [...nodeArgs, BUCKETFS_BIN, 'mount', opts.mountpoint, '--data', opts.dataDir, ...(opts.extraArgs ?? [])],
    mountpoint: opts.mountpoint,
    logFile: opts.logFile,
    env,
    unmount: async child => { child.kill('SIGTERM') },
    // Completing a 4 GiB write that is still open can take minutes.
    exitTimeoutMs: 10 * 60_000
  }, cleanup)
}
