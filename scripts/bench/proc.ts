// Running programs and reading the kernel's view of processes: timed commands,
// cache dropping, waiting, and per-thread CPU time and memory from /proc.
import { spawn, spawnSync } from 'node:child_process'
import fs from 'node:fs'

export const KiB = 1024
export const MiB = 1024 * 1024
export const GiB = 1024 * MiB

/** Monotonic time in µs on CLOCK_MONOTONIC, the clock V8's .cpuprofile timestamps use. */
export function monoMicros (): number {
  return Number(process.hrtime.bigint() / 1000n)
}

export function nowMs (): number {
  return Number(process.hrtime.bigint()) / 1e6
}

export async function sleep (ms: number): Promise<void> {
  await new Promise(resolve => setTimeout(resolve, ms))
}

/** Polls `test` every `every` ms until it holds; false after `ms`. */
export async function waitFor (test: () => boolean, ms: number, every = 10): Promise<boolean> {
  const deadline = Date.now() + ms
  for (;;) {
    if (test()) return true
    if (Date.now() >= deadline) return false
    await sleep(every)
  }
}

export interface CmdResult { status: number | null, signal: NodeJS.Signals | null, stdout: string, stderr: string, ms: number }

export class CommandError extends Error {
  constructor (readonly cmd: string, readonly result: CmdResult) {
    super(`${cmd} exited with ${result.signal ?? String(result.status)}: ${result.stderr.trim().slice(-2000)}`)
  }
}

export interface CmdOptions { cwd?: string, env?: NodeJS.ProcessEnv, input?: string, allowFail?: boolean }

/**
 * Runs a program to completion without a shell and times it (spawn to exit) in ms.
 * Asynchronous, so the bench can sample the daemon while the command runs.
 */
export async function cmd (file: string, args: string[], opts: CmdOptions = {}): Promise<CmdResult> {
  const started = nowMs()
  const result = await new Promise<CmdResult>((resolve, reject) => {
    const child = spawn(file, args, { cwd: opts.cwd, env: opts.env ?? process.env, stdio: [opts.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'] })
    const out: Buffer[] = []
    const err: Buffer[] = []
    child.stdout?.on('data', (b: Buffer) => out.push(b))
    child.stderr?.on('data', (b: Buffer) => err.push(b))
    child.on('error', reject)
    child.on('close', (status, signal) => {
      resolve({ status, signal, stdout: Buffer.concat(out).toString(), stderr: Buffer.concat(err).toString(), ms: nowMs() - started })
    })
    if (opts.input !== undefined && child.stdin !== null) {
      child.stdin.on('error', () => {}) // a child that exits without reading its input
      child.stdin.end(opts.input)
    }
  })
  if (result.status !== 0 && opts.allowFail !== true) throw new CommandError([file, ...args].join(' '), result)
  return result
}

/** `cmd` through `sh -c` (for pipelines). */
export async function sh (script: string, opts: CmdOptions = {}): Promise<CmdResult> {
  return await cmd('sh', ['-c', script], opts)
}

export function have (program: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${program}`], { stdio: 'ignore' }).status === 0
}

export const isRoot = (): boolean => process.getuid?.() === 0

/** Writes dirty pages back and empties the page, dentry and inode caches (root only). */
export async function dropCaches (): Promise<boolean> {
  await cmd('sync', [])
  if (!isRoot()) return false
  fs.writeFileSync('/proc/sys/vm/drop_caches', '3\n')
  return true
}

/** Whether `mountpoint` is listed in /proc/mounts. */
export function isMounted (mountpoint: string): boolean {
  const escaped = mountpoint.replace(/[ \t\n\\]/g, c => '\\' + c.charCodeAt(0).toString(8).padStart(3, '0'))
  return fs.readFileSync('/proc/mounts', 'utf8').split('\n').some(line => line.split(' ')[1] === escaped)
}

/** Mountpoints in /proc/mounts at or below `dir`. */
export function mountsUnder (dir: string): string[] {
  const unescape = (p: string): string => p.replace(/\\([0-7]{3})/g, (_, oct: string) => String.fromCharCode(parseInt(oct, 8)))
  return fs.readFileSync('/proc/mounts', 'utf8').split('\n')
    .map(line => unescape(line.split(' ')[1] ?? ''))
    .filter(mp => mp === dir || mp.startsWith(dir + '/'))
}

export function alive (pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch {
    return false
  }
}

const CLK_TCK = 100 // getconf CLK_TCK on Linux

/**
 * CPU seconds of one process by thread: `main` (for node, the JavaScript thread) and the
 * others by name; Node 20 names all its threads `node` (libuv's pool, V8's workers, and
 * libfuse's worker threads, which inherit the name), counted together as `threads`.
 */
export function threadCpu (pid: number): Record<string, number> {
  const out: Record<string, number> = {}
  let tasks: string[]
  try {
    tasks = fs.readdirSync(`/proc/${pid}/task`)
  } catch {
    return out
  }
  for (const tid of tasks) {
    let stat: string
    try {
      stat = fs.readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8')
    } catch {
      continue // the thread ended meanwhile
    }
    const open = stat.indexOf('(')
    const close = stat.lastIndexOf(')')
    const comm = stat.slice(open + 1, close)
    const name = tid === String(pid) ? 'main' : comm === 'node' ? 'threads' : comm
    const fields = stat.slice(close + 2).split(' ')
    const secs = (Number(fields[11]) + Number(fields[12])) / CLK_TCK // utime, stime
    out[name] = (out[name] ?? 0) + secs
  }
  return out
}

/** CPU seconds per thread name spent between two `threadCpu` samples (threads that ended are lost). */
export function cpuDelta (before: Record<string, number>, after: Record<string, number>): Record<string, number> {
  const out: Record<string, number> = {}
  for (const [name, secs] of Object.entries(after)) {
    const d = secs - (before[name] ?? 0)
    if (d > 0.005) out[name] = Math.round(d * 100) / 100
  }
  return out
}

/** A field of /proc/<pid>/status in KiB (VmRSS, VmHWM…), or undefined if the process is gone. */
export function statusKiB (pid: number, field: string): number | undefined {
  try {
    const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'))
    return m === null ? undefined : Number(m[1])
  } catch {
    return undefined
  }
}

/** Resets VmHWM to the current RSS (Linux ≥ 4.0: `echo 5 > /proc/<pid>/clear_refs`). */
export function resetPeakRss (pid: number): boolean {
  try {
    fs.writeFileSync(`/proc/${pid}/clear_refs`, '5\n')
    return true
  } catch {
    return false
  }
}

export function loadAvg (): number[] {
  return fs.readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).map(Number)
}
