// Shared helpers for the mounted end-to-end tests (test/6x-*.test.ts): errno
// assertions on real syscalls, running the tools people use on a mount, hashing,
// a seeded PRNG, and a manifest of a tree to compare before/after a remount.
import { spawn, spawnSync } from 'node:child_process'
import crypto from 'node:crypto'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { mulberry32 } from '../../scripts/lib/prng'
import type {} from 'tap' // the global tap.Test type

export const KiB = 1024
export const MiB = 1024 * 1024

/** The errno code (e.g. 'ENOENT') a synchronous fs call fails with, or 'ok' if it succeeds. */
export function errnoOf (fn: () => unknown): string {
  try {
    fn()
    return 'ok'
  } catch (err) {
    const code = (err as { code?: unknown }).code
    return typeof code === 'string' ? code : `not a system error: ${String(err)}`
  }
}

/** Asserts that a synchronous fs call fails with `code` (ENOENT, EEXIST…). */
export function failsWith (t: tap.Test, fn: () => unknown, code: string, msg: string): void {
  const found = errnoOf(fn)
  t.equal(found, code, `${msg}: ${code}${found === code ? '' : ` (got ${found})`}`)
}

export interface RunResult { status: number | null, stdout: string, stderr: string }

/** Environment for tools: no user config (git, vim), C locale so messages are predictable. */
export function toolEnv (home: string, extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, HOME: home, LC_ALL: 'C', LANG: 'C', GIT_CONFIG_NOSYSTEM: '1', ...extra }
  delete env.DEBUG
  delete env.GIT_DIR
  delete env.GIT_WORK_TREE
  return env
}

/** Runs a command to completion (no shell), with a generous time limit. */
export function run (cmd: string, args: string[], opts: { cwd?: string, env?: NodeJS.ProcessEnv, input?: string | Buffer, timeoutMs?: number } = {}): RunResult {
  const r = spawnSync(cmd, args, {
    cwd: opts.cwd,
    env: opts.env ?? toolEnv(process.env.HOME ?? '/tmp'),
    input: opts.input,
    timeout: opts.timeoutMs ?? 120_000,
    maxBuffer: 64 * MiB,
    encoding: 'utf8'
  })
  const stderr = (r.stderr ?? '') + (r.error !== undefined ? `\n[spawn error: ${r.error.message}]` : '')
  return { status: r.status, stdout: r.stdout ?? '', stderr }
}

/** Runs a command and asserts exit 0 (showing stderr when it is not). */
export function runOk (t: tap.Test, cmd: string, args: string[], opts: Parameters<typeof run>[2] = {}): RunResult {
  const r = run(cmd, args, opts)
  t.equal(r.status, 0, `${cmd} ${args.join(' ')}`.slice(0, 160), { stderr: r.stderr.slice(0, 4000), stdout: r.stdout.slice(0, 2000) })
  return r
}

/** Runs a command asynchronously (for concurrent processes); resolves when it exits. */
export async function runAsync (cmd: string, args: string[], opts: { cwd?: string, env?: NodeJS.ProcessEnv } = {}): Promise<RunResult> {
  return await new Promise(resolve => {
    const child = spawn(cmd, args, { cwd: opts.cwd, env: opts.env ?? toolEnv(process.env.HOME ?? '/tmp'), stdio: ['ignore', 'pipe', 'pipe'] })
    const out: Buffer[] = []
    const err: Buffer[] = []
    child.stdout.on('data', (b: Buffer) => out.push(b))
    child.stderr.on('data', (b: Buffer) => err.push(b))
    child.on('error', e => err.push(Buffer.from(`[spawn error: ${e.message}]`)))
    child.on('close', status => { resolve({ status, stdout: Buffer.concat(out).toString(), stderr: Buffer.concat(err).toString() }) })
  })
}

export function sha256 (data: Buffer | string): string {
  return crypto.createHash('sha256').update(data).digest('hex')
}

export function md5 (data: Buffer | string): string {
  return crypto.createHash('md5').update(data).digest('hex')
}

/** sha256 of a file, read in 1 MiB pieces (works for big files on the mount). */
export function sha256File (file: string): string {
  const h = crypto.createHash('sha256')
  const fd = fs.openSync(file, 'r')
  try {
    const buf = Buffer.alloc(MiB)
    for (;;) {
      const n = fs.readSync(fd, buf, 0, buf.length, null)
      if (n === 0) break
      h.update(buf.subarray(0, n))
    }
  } finally {
    fs.closeSync(fd)
  }
  return h.digest('hex')
}

/**
 * Saves `doc` the way LibreOffice does: a lock file beside it, the document held open,
 * the new content written to a temp file in 8 KiB writes and fsynced, renamed over
 * the document, then the document closed and the lock removed.
 */
export function libreOfficeSave (doc: string, content: Buffer, tmpName: string): void {
  const dir = path.dirname(doc)
  const lock = path.join(dir, `.~lock.${path.basename(doc)}#`)
  fs.writeFileSync(lock, ',Ada Lovelace,host,25.11.2025 13:00,file:///home/ada/.config/libreoffice/4;\n')
  const dfd = fs.openSync(doc, 'r')
  const tmp = path.join(dir, tmpName)
  const tfd = fs.openSync(tmp, 'wx', 0o644)
  for (let off = 0; off < content.length; off += 8192) fs.writeSync(tfd, content, off, Math.min(8192, content.length - off), off)
  fs.fsyncSync(tfd)
  fs.closeSync(tfd)
  fs.renameSync(tmp, doc)
  fs.closeSync(dfd)
  fs.unlinkSync(lock)
}

/** A seeded PRNG (scripts/lib/prng.ts), so a failing random test can be replayed. */
export class Prng {
  /** A uint32. */
  readonly next: () => number
  constructor (seed: number) { this.next = mulberry32(seed) }

  /** An integer in [0, n). */
  int (n: number): number { return Math.floor((this.next() / 4294967296) * n) }

  bytes (n: number): Buffer {
    const b = Buffer.alloc(n)
    let i = 0
    for (; i + 4 <= n; i += 4) b.writeUInt32LE(this.next(), i)
    for (; i < n; i++) b[i] = this.next() & 0xff
    return b
  }
}

export interface Entry {
  type: 'file' | 'dir' | 'symlink'
  mode: number // permission bits only
  mtimeMs: number // whole milliseconds
  size?: number
  sha256?: string
  target?: string
}

/**
 * Everything a user sees of a tree: for each relative path, its type, permission
 * bits, mtime (whole ms), and content hash or link target. `skip` leaves out names.
 */
export function manifest (root: string, opts: { times?: boolean, dirTimes?: boolean, skip?: (rel: string) => boolean } = {}): Record<string, Entry> {
  const out: Record<string, Entry> = {}
  const walk = (dir: string, rel: string): void => {
    for (const name of fs.readdirSync(dir).sort()) {
      const r = rel === '' ? name : `${rel}/${name}`
      if (opts.skip?.(r) === true) continue
      const p = path.join(dir, name)
      const st = fs.lstatSync(p)
      const mtimeMs = Math.floor(st.mtimeMs)
      if (st.isSymbolicLink()) {
        out[r] = { type: 'symlink', mode: 0, mtimeMs: 0, target: fs.readlinkSync(p) }
      } else if (st.isDirectory()) {
        out[r] = { type: 'dir', mode: st.mode & 0o7777, mtimeMs: opts.dirTimes === false ? 0 : mtimeMs }
        walk(p, r)
      } else {
        out[r] = { type: 'file', mode: st.mode & 0o7777, mtimeMs, size: st.size, sha256: sha256File(p) }
      }
      if (opts.times === false) out[r].mtimeMs = 0
    }
  }
  walk(root, '')
  return out
}

/**
 * A fresh scratch directory outside the mount harness's own (t.testdir() belongs to
 * the harness), removed when the test ends.
 */
export function scratchDir (t: tap.Test, name = 'scratch'): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `bucketfs-e2e-${name}-`))
  t.teardown(() => { fs.rmSync(dir, { recursive: true, force: true }) })
  return dir
}

/** Sleeps. */
export async function sleep (ms: number): Promise<void> {
  await new Promise(resolve => setTimeout(resolve, ms))
}
