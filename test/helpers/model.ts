// Model-based testing of the mount: a seeded random sequence of filesystem
// operations is applied with node:fs/promises to two directory trees, a plain
// local directory (the reference: a mature POSIX filesystem) and a bucket
// directory on a bucketfs mount, and after every step the two must agree on the
// operation's result (success or errno code) and then on the whole tree (names,
// types, sizes, content SHA-256, mode & 0o777, symlink targets).
//
// Used by test/80-model.test.ts (a short run in CI) and scripts/model-long.ts
// (many seeds, long sequences, reproductions). No tap in here.
import crypto from 'node:crypto'
import fsp from 'node:fs/promises'
import path from 'node:path'
import { uniform } from '../../scripts/lib/prng'

const KiB = 1024
const MiB = 1024 * 1024
/** The store cuts data into 1 MiB chunks and files into 8 MiB parts: offsets around both matter. */
const CHUNK = MiB
const PART = 8 * MiB

// ---------------------------------------------------------------- the PRNG


class Rng {
  readonly next: () => number
  constructor (seed: number) { this.next = uniform(seed) }
  int (lo: number, hi: number): number { return lo + Math.floor(this.next() * (hi - lo + 1)) } // inclusive
  pick<T> (xs: readonly T[]): T { return xs[Math.floor(this.next() * xs.length)] }
  chance (p: number): boolean { return this.next() < p }
  weighted<T extends string> (table: ReadonlyArray<readonly [T, number]>): T {
    const total = table.reduce((s, [, w]) => s + w, 0)
    let r = this.next() * total
    for (const [v, w] of table) { r -= w; if (r < 0) return v }
    return table[table.length - 1][0]
  }
}

/** Deterministic bytes for a data seed (so an op's data is named by a number in a reproduction). */
export function dataFor (seed: number, len: number): Buffer {
  const out = Buffer.allocUnsafe(len)
  const next = uniform(seed ^ 0x5bd1e995)
  let i = 0
  for (; i + 4 <= len; i += 4) out.writeUInt32LE(Math.floor(next() * 4294967296), i)
  for (; i < len; i++) out[i] = Math.floor(next() * 256)
  return out
}

// ---------------------------------------------------------------- operations

export type Op =
  | { op: 'create', path: string, mode: number, len: number, data: number } // open(O_CREAT|O_TRUNC|O_WRONLY) + write + close
  | { op: 'write', path: string, offset: number, len: number, data: number } // open(O_RDWR) + pwrite + close
  | { op: 'append', path: string, len: number, data: number } // open(O_APPEND|O_WRONLY) + write + close
  | { op: 'truncate', path: string, size: number }
  // open(O_RDWR), pwrite around the cut, ftruncate (cutting into what was just written), pwrite (often growing it again), close
  | { op: 'ftruncate', path: string, pre: number, preLen: number, size: number, offset: number, len: number, data: number }
  | { op: 'rename', path: string, to: string }
  | { op: 'unlink', path: string }
  | { op: 'mkdir', path: string, mode: number }
  | { op: 'rmdir', path: string }
  | { op: 'chmod', path: string, mode: number }
  | { op: 'symlink', path: string, target: string }
  | { op: 'read', path: string, offset: number, len: number } // open(O_RDONLY) + pread + close: compares the bytes
  // Holds a file open (writing to it if `write`) while something happens to its name or
  // through a second handle, then reads everything through the held handle and closes it.
  // `pause`: ms to wait after the action before reading through the held handle.
  | { op: 'held', path: string, write: boolean, action: HeldAction, to: string, offset: number, len: number, data: number, pause: number }

  // The daemon stops (SIGTERM: a clean unmount; SIGKILL: a crash, 50 ms after the last op,
  // when its group of changes has committed) and mounts again. Every op before has closed
  // its files, so the tree must come back exactly as it was.
  | { op: 'remount' }
  | { op: 'crash' }
  // A file held open (written and fsynced if `write`) is unlinked, renamed or replaced, the
  // directories are fsynced, and the daemon is SIGKILLed before the file is closed: after the
  // restart, the names must be what they were when the daemon died (the reference just
  // closes the file).
  | { op: 'crash-open', path: string, write: boolean, action: 'unlink' | 'rename' | 'replace', to: string, len: number, data: number }

export type HeldAction = 'unlink' | 'rename' | 'replace' | 'truncate' | 'second'
const HELD_ACTIONS: readonly HeldAction[] = ['unlink', 'rename', 'replace', 'truncate', 'second']

export type OpName = Op['op']

/** A small namespace: three names, depth ≤ 2, so paths collide as files, directories and each other's parents. */
export const NAMES = ['a', 'b', 'c'] as const
export const PATHS: readonly string[] = [...NAMES, ...NAMES.flatMap(d => NAMES.map(n => `${d}/${n}`))]

const WEIGHTS: ReadonlyArray<readonly [OpName, number]> = [
  ['create', 14], ['write', 18], ['append', 5], ['truncate', 8], ['ftruncate', 4], ['rename', 14],
  ['unlink', 8], ['mkdir', 13], ['rmdir', 7], ['chmod', 5], ['symlink', 2], ['read', 4], ['held', 6],
  ['remount', 0.6], ['crash', 0.6], ['crash-open', 0.6]
]
// Every mode keeps the owner's rwx where it matters, so a run as a non-root user
// is not stopped by its own permissions on the reference (the mount has no
// default_permissions and would not check them).
const FILE_MODES = [0o600, 0o644, 0o640, 0o664, 0o700, 0o755] as const
const DIR_MODES = [0o700, 0o755, 0o750, 0o775, 0o711] as const

function size (r: Rng): number {
  const k = r.weighted([['tiny', 50], ['small', 35], ['chunk', 15]] as const)
  if (k === 'tiny') return r.int(0, 300)
  if (k === 'small') return r.int(0, 96 * KiB)
  return r.int(0, CHUNK + 200 * KiB)
}

/** An offset: mostly near the start, often across a chunk boundary, rarely across a part boundary. */
function offset (r: Rng): number {
  const k = r.weighted([['start', 55], ['chunk', 30], ['part', 5], ['any', 10]] as const)
  if (k === 'start') return r.int(0, 8 * KiB)
  if (k === 'chunk') return CHUNK * r.int(1, 2) + r.int(-64 * KiB, 64 * KiB)
  if (k === 'part') return PART + r.int(-64 * KiB, 64 * KiB)
  return r.int(0, 2 * CHUNK + 300 * KiB)
}

/**
 * Draws ops from a seed. Each op is drawn knowing the reference tree as it is
 * (which the seed alone determines), so most ops name a path that makes sense
 * for them (an existing file to write, a directory's child to create) and the
 * rest name any path, for the errors.
 */
export class OpGenerator {
  private readonly r: Rng
  constructor (seed: number) { this.r = new Rng(seed) }

  next (tree: Tree): Op {
    const r = this.r
    const name = r.weighted(WEIGHTS)
    const files = [...tree].filter(([, e]) => e.type === 'file').map(([p]) => p)
    const dirs = [...tree].filter(([, e]) => e.type === 'dir').map(([p]) => p)
    const existing = [...tree.keys()]
    // A path whose parent is the root or an existing directory.
    const creatable = PATHS.filter(p => !p.includes('/') || dirs.includes(p.slice(0, p.indexOf('/'))))
    const from = (xs: string[], p = 0.8): string => xs.length > 0 && r.chance(p) ? r.pick(xs) : r.pick(PATHS)
    switch (name) {
      case 'create': return { op: name, path: from(creatable), mode: r.pick(FILE_MODES), len: size(r), data: r.int(1, 1e9) }
      case 'write': {
        const len = size(r)
        return { op: name, path: from(files), offset: Math.max(0, offset(r) - (r.chance(0.3) ? Math.floor(len / 2) : 0)), len, data: r.int(1, 1e9) }
      }
      case 'append': return { op: name, path: from(files), len: size(r), data: r.int(1, 1e9) }
      case 'truncate': return { op: name, path: from(files), size: r.chance(0.4) ? r.int(0, 4 * KiB) : offset(r) }
      case 'ftruncate': {
        const cut = r.chance(0.4) ? r.int(0, 4 * KiB) : offset(r)
        const pre = Math.max(0, cut - r.int(0, 64 * KiB))
        return { op: name, path: from(files), pre, preLen: r.int(0, 128 * KiB), size: cut, offset: r.chance(0.5) ? cut + r.int(0, 64 * KiB) : offset(r), len: r.int(0, 2 * KiB), data: r.int(1, 1e9) }
      }
      case 'rename': return { op: name, path: from(existing), to: from(creatable, 0.7) }
      case 'unlink': return { op: name, path: from(files) }
      case 'mkdir': return { op: name, path: from(creatable), mode: r.pick(DIR_MODES) }
      case 'rmdir': return { op: name, path: from(dirs) }
      case 'chmod': return { op: name, path: from(existing), mode: r.pick(DIR_MODES) }
      // Relative targets inside the namespace only: following one never leaves the root.
      case 'symlink': return { op: name, path: from(creatable), target: r.pick(NAMES) }
      case 'read': return { op: name, path: from(files), offset: r.chance(0.5) ? 0 : offset(r), len: r.int(1, 256 * KiB) }
      case 'remount': case 'crash': return { op: name }
      case 'crash-open': return { op: name, path: from(files, 0.9), write: r.chance(0.5), action: r.pick(['unlink', 'rename', 'replace'] as const), to: from(creatable, 0.8), len: size(r), data: r.int(1, 1e9) }
      case 'held': return { op: name, path: from(files, 0.9), write: r.chance(0.6), action: r.pick(HELD_ACTIONS), to: from(creatable, 0.7), offset: offset(r), len: size(r), data: r.int(1, 1e9), pause: r.chance(0.3) ? 300 : 0 }
    }
  }
}

export function describeOp (o: Op): string {
  switch (o.op) {
    case 'create': return `create ${o.path} mode=0o${o.mode.toString(8)} len=${o.len} data=${o.data}`
    case 'write': return `write ${o.path} offset=${o.offset} len=${o.len} data=${o.data}`
    case 'append': return `append ${o.path} len=${o.len} data=${o.data}`
    case 'truncate': return `truncate ${o.path} size=${o.size}`
    case 'ftruncate': return `ftruncate ${o.path}: write offset=${o.pre} len=${o.preLen} data=${o.data + 1}, ftruncate size=${o.size}, write offset=${o.offset} len=${o.len} data=${o.data}`
    case 'rename': return `rename ${o.path} ${o.to}`
    case 'unlink': return `unlink ${o.path}`
    case 'mkdir': return `mkdir ${o.path} mode=0o${o.mode.toString(8)}`
    case 'rmdir': return `rmdir ${o.path}`
    case 'chmod': return `chmod ${o.path} mode=0o${o.mode.toString(8)}`
    case 'symlink': return `symlink ${o.path} -> ${o.target}`
    case 'read': return `read ${o.path} offset=${o.offset} len=${o.len}`
    case 'remount': return 'remount (SIGTERM the daemon, mount again)'
    case 'crash': return 'crash (SIGKILL the daemon, mount again)'
    case 'crash-open': return `crash-open ${o.path} (${o.write ? `written len=${o.len} data=${o.data} and fsynced` : 'reading'}): ${o.action === 'rename' ? `rename to ${o.to}` : o.action === 'replace' ? `a new file is renamed over it (from ${replacementPath(o.path)})` : 'unlink'}, then SIGKILL the daemon before close`
    case 'held': return `held ${o.path} (${o.write ? `writing offset=${o.offset} len=${o.len} data=${o.data}` : 'reading'}) while ${heldActionText(o)}${o.pause > 0 ? `, then ${o.pause} ms later reads it` : ''}`
  }
}

function heldActionText (o: Extract<Op, { op: 'held' }>): string {
  switch (o.action) {
    case 'unlink': return 'unlink'
    case 'rename': return `rename to ${o.to}`
    case 'replace': return `a new file is renamed over it (from ${replacementPath(o.path)})`
    case 'truncate': return `truncate(path, ${Math.max(0, o.offset - 1000)})`
    case 'second': return 'a second handle writes and reads'
  }
}

/** The temp file a 'replace' renames over the held file: a sibling outside the namespace. */
function replacementPath (p: string): string {
  const i = p.lastIndexOf('/')
  return i < 0 ? 'new.tmp' : `${p.slice(0, i)}/new.tmp`
}

async function readToEnd (fh: fsp.FileHandle): Promise<Buffer> {
  const out: Buffer[] = []
  for (let pos = 0; ;) {
    const buf = Buffer.alloc(256 * KiB)
    const { bytesRead } = await fh.read(buf, 0, buf.length, pos)
    if (bytesRead === 0) break
    out.push(buf.subarray(0, bytesRead))
    pos += bytesRead
  }
  return Buffer.concat(out)
}

async function held (root: string, o: Extract<Op, { op: 'held' }>): Promise<Outcome> {
  const p = path.join(root, o.path)
  const fh = await fsp.open(p, o.write ? 'r+' : 'r')
  const notes: string[] = []
  try {
    if (o.write) await writeFully(fh, dataFor(o.data, o.len), o.offset)
    // The action's own failure is part of the outcome; the held handle goes on.
    const step = async (what: string, fn: () => Promise<unknown>): Promise<void> => {
      try { await fn(); notes.push(`${what} ok`) } catch (err) {
        const code = (err as NodeJS.ErrnoException).code
        if (typeof code !== 'string') throw err
        notes.push(`${what} ${code}`)
      }
    }
    switch (o.action) {
      case 'unlink': await step('unlink', () => fsp.unlink(p)); break
      case 'rename': await step('rename', () => fsp.rename(p, path.join(root, o.to))); break
      case 'replace': {
        const tmp = path.join(root, replacementPath(o.path))
        await step('write new', () => fsp.writeFile(tmp, 'the replacement'))
        await step('rename over', () => fsp.rename(tmp, p))
        break
      }
      case 'truncate': await step('truncate', () => fsp.truncate(p, Math.max(0, o.offset - 1000))); break
      case 'second': await step('second handle', async () => {
        const other = await fsp.open(p, 'r+')
        try {
          await writeFully(other, Buffer.from('second handle'), 3)
          notes.push(`second reads ${sha256(await readToEnd(other)).slice(0, 16)}`)
        } finally { await other.close() }
      }); break
    }
    if (o.pause > 0) await new Promise(resolve => setTimeout(resolve, o.pause))
    if (o.write) await writeFully(fh, dataFor(o.data + 1, 100), 1)
    const size = (await fh.stat()).size
    const all = await readToEnd(fh)
    return `ok ${notes.join(', ')}; held handle: fstat ${size} bytes, reads ${all.length} bytes sha256:${sha256(all).slice(0, 16)}`
  } finally {
    await fh.close()
  }
}

/** What an operation did: 'ok' (with a digest of bytes read, for reads) or the errno code. */
export type Outcome = string

async function withFile<T> (p: string, flags: string, mode: number | undefined, fn: (fh: fsp.FileHandle) => Promise<T>): Promise<T> {
  const fh = await fsp.open(p, flags, mode)
  try { return await fn(fh) } finally { await fh.close() }
}

async function writeFully (fh: fsp.FileHandle, data: Buffer, position: number | null): Promise<void> {
  for (let done = 0; done < data.length;) {
    const { bytesWritten } = await fh.write(data, done, data.length - done, position === null ? null : position + done)
    if (bytesWritten <= 0) throw new Error('write wrote nothing')
    done += bytesWritten
  }
}

/** Applies one operation below root with node:fs/promises. */
/** fsync(2) of a directory: its entries on the disk. */
export async function syncDir (dir: string): Promise<void> {
  const dh = await fsp.open(dir, 'r')
  try { await dh.sync() } finally { await dh.close() }
}

/** A crash-open op: `crash` kills the daemon (nothing, on the reference) before the file is closed. */
export async function crashOpen (root: string, o: Extract<Op, { op: 'crash-open' }>, crash: () => Promise<void>): Promise<Outcome> {
  const p = path.join(root, o.path)
  let fh: fsp.FileHandle
  try { fh = await fsp.open(p, o.write ? 'r+' : 'r') } catch (err) {
    const code = (err as NodeJS.ErrnoException).code
    if (typeof code === 'string') return code
    throw err
  }
  const notes: string[] = []
  const step = async (what: string, fn: () => Promise<unknown>): Promise<void> => {
    try { await fn(); notes.push(`${what} ok`) } catch (err) {
      const code = (err as NodeJS.ErrnoException).code
      if (typeof code !== 'string') throw err
      notes.push(`${what} ${code}`)
    }
  }
  try {
    if (o.write) {
      await step('write', () => writeFully(fh, dataFor(o.data, o.len), 0))
      await step('fsync', () => fh.sync())
    }
    if (o.action === 'unlink') await step('unlink', () => fsp.unlink(p))
    else if (o.action === 'rename') await step('rename', () => fsp.rename(p, path.join(root, o.to)))
    else {
      const tmp = path.join(root, replacementPath(o.path))
      await step('write new', () => fsp.writeFile(tmp, 'the replacement'))
      await step('rename over', () => fsp.rename(tmp, p))
    }
    // As a program that needs the change to outlive a crash does (the mount commits
    // namespace changes in groups: docs/SEMANTICS.md, "Group commits").
    const dirs = new Set([path.dirname(p), ...(o.action === 'rename' ? [path.dirname(path.join(root, o.to))] : [])])
    for (const dir of dirs) await step('fsync dir', () => syncDir(dir))
  } finally {
    await crash()
    await fh.close().catch(() => {}) // on the mount, the handle died with its daemon
  }
  return `ok ${notes.join(', ')}`
}

export async function applyOp (root: string, o: Op): Promise<Outcome> {
  if (o.op === 'crash-open') return await crashOpen(root, o, async () => {})
  if (o.op === 'remount' || o.op === 'crash') throw new Error(`${o.op} is not a filesystem operation`)
  const p = path.join(root, o.path)
  try {
    switch (o.op) {
      case 'create': await withFile(p, 'w', o.mode, fh => writeFully(fh, dataFor(o.data, o.len), 0)); break
      case 'write': await withFile(p, 'r+', undefined, fh => writeFully(fh, dataFor(o.data, o.len), o.offset)); break
      case 'append': await withFile(p, 'a', 0o644, fh => writeFully(fh, dataFor(o.data, o.len), null)); break
      case 'truncate': await fsp.truncate(p, o.size); break
      case 'ftruncate': await withFile(p, 'r+', undefined, async fh => {
        await writeFully(fh, dataFor(o.data + 1, o.preLen), o.pre)
        await fh.truncate(o.size)
        await writeFully(fh, dataFor(o.data, o.len), o.offset)
      }); break
      case 'rename': await fsp.rename(p, path.join(root, o.to)); break
      case 'unlink': await fsp.unlink(p); break
      case 'mkdir': await fsp.mkdir(p, { mode: o.mode }); break
      case 'rmdir': await fsp.rmdir(p); break
      case 'chmod': await fsp.chmod(p, o.mode); break
      case 'symlink': await fsp.symlink(o.target, p); break
      case 'held': return await held(root, o)
      case 'read': {
        const got = await withFile(p, 'r', undefined, async fh => {
          const buf = Buffer.alloc(o.len)
          let n = 0
          while (n < o.len) {
            const { bytesRead } = await fh.read(buf, n, o.len - n, o.offset + n)
            if (bytesRead === 0) break
            n += bytesRead
          }
          return buf.subarray(0, n)
        })
        return `ok ${got.length} bytes sha256:${sha256(got).slice(0, 16)}`
      }
    }
    return 'ok'
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code
    if (typeof code === 'string') return code
    throw err
  }
}

// ---------------------------------------------------------------- trees

export interface Entry { type: 'file' | 'dir' | 'symlink' | 'other', mode: number, size: number, sha256: string, target: string }
export type Tree = Map<string, Entry>

function sha256 (b: Buffer): string { return crypto.createHash('sha256').update(b).digest('hex') }

/** Every entry below root (not following symlinks), keyed by relative path. */
export async function snapshot (root: string): Promise<Tree> {
  const out: Tree = new Map()
  async function walk (rel: string): Promise<void> {
    const names = (await fsp.readdir(path.join(root, rel))).sort()
    for (const name of names) {
      const r = rel === '' ? name : `${rel}/${name}`
      try {
        await visit(r)
      } catch (err) {
        // A .fuse_hidden file may go (its release) between readdir and reading it.
        if (name.startsWith('.fuse_hidden') && (err as NodeJS.ErrnoException).code === 'ENOENT') continue
        throw err
      }
    }
  }
  async function visit (r: string): Promise<void> {
    const p = path.join(root, r)
    const st = await fsp.lstat(p)
    const e: Entry = { type: 'other', mode: st.mode & 0o777, size: 0, sha256: '', target: '' }
    out.set(r, e)
    if (st.isDirectory()) {
      e.type = 'dir'
      await walk(r)
    } else if (st.isFile()) {
      const data = await fsp.readFile(p)
      e.type = 'file'
      e.size = st.size
      e.sha256 = sha256(data)
      if (data.length !== st.size) e.sha256 = `stat says ${st.size} bytes, read gives ${data.length}`
    } else if (st.isSymbolicLink()) {
      e.type = 'symlink'
      e.mode = 0 // a symlink's mode means nothing (0o777 on Linux)
      e.target = await fsp.readlink(p)
    }
  }
  await walk('')
  return out
}

/**
 * Without hard_remove, libfuse renames a file that is unlinked (or renamed over)
 * while open to .fuse_hidden<id> and removes it at its release, which the kernel
 * sends after close() has returned: give the release a moment before comparing.
 * A hidden file that stays is a leak and shows as a mismatch.
 */
export async function settledSnapshot (root: string, ms = 5000): Promise<Tree> {
  const hidden = (tree: Tree): boolean => [...tree.keys()].some(p => /(^|\/)\.fuse_hidden/.test(p))
  for (const deadline = Date.now() + ms; ;) {
    const tree = await snapshot(root)
    if (!hidden(tree) || Date.now() > deadline) return tree
    await new Promise(resolve => setTimeout(resolve, 20))
  }
}

export function describeEntry (e: Entry | undefined): string {
  if (e === undefined) return 'absent'
  if (e.type === 'dir') return `dir 0o${e.mode.toString(8)}`
  if (e.type === 'symlink') return `symlink -> ${e.target}`
  if (e.type === 'file') return `file 0o${e.mode.toString(8)} ${e.size} bytes sha256:${e.sha256.length === 64 ? e.sha256.slice(0, 16) : e.sha256}`
  return `other 0o${e.mode.toString(8)}`
}

/** Lines naming every path where the trees differ ('' when they agree). */
export function diffTrees (ref: Tree, sut: Tree): string[] {
  const out: string[] = []
  const paths = [...new Set([...ref.keys(), ...sut.keys()])].sort()
  for (const p of paths) {
    const a = describeEntry(ref.get(p))
    const b = describeEntry(sut.get(p))
    if (a !== b) out.push(`${p}: reference ${a}, bucketfs ${b}`)
  }
  return out
}

// ---------------------------------------------------------------- deliberate differences

/**
 * Where bucketfs deliberately differs from POSIX (docs/SEMANTICS.md), the op is
 * skipped on both sides instead of weakening a comparison. Each entry says why.
 * None so far.
 */
export const DELIBERATE_DIFFERENCES: ReadonlyArray<{ why: string, skip: (o: Op) => boolean }> = []

export function skipped (o: Op): string | undefined {
  return DELIBERATE_DIFFERENCES.find(d => d.skip(o))?.why
}

// ---------------------------------------------------------------- the run

export interface Mismatch {
  step: number // 0-based index of the op after which the roots differed
  op: string
  kind: 'result' | 'tree'
  details: string[]
}

export interface RunOptions {
  ref: string // the reference directory (created if missing; should be empty)
  sut: string // the directory on the mount (created if missing; should be empty)
  seed: number
  ops: number
  /** Keep going after a mismatch (trees then usually differ at every later step). Default: stop. */
  keepGoing?: boolean
  /** Ops to leave out of this run (e.g. while one known bug is being fixed); the sequence is unchanged. */
  skip?: (o: Op) => boolean
  /** Restarts the mount's daemon; without it, remount and crash ops are skipped. */
  restart?: (how: 'remount' | 'crash') => Promise<void>
  /** Called after each step (progress, logging). */
  onStep?: (step: number, op: Op, outcome: Outcome) => void
}

export interface RunResult {
  seed: number
  steps: number // ops applied
  skipped: number
  mismatches: Mismatch[]
  ops: Op[]
}

/** Applies one seed's ops to both roots, comparing after every step. */
export async function runModel (opts: RunOptions): Promise<RunResult> {
  const gen = new OpGenerator(opts.seed)
  await fsp.mkdir(opts.ref, { recursive: true })
  await fsp.mkdir(opts.sut, { recursive: true })
  const result: RunResult = { seed: opts.seed, steps: 0, skipped: 0, mismatches: [], ops: [] }
  let refTree = await snapshot(opts.ref)
  for (let i = 0; i < opts.ops; i++) {
    const o = gen.next(refTree)
    result.ops.push(o)
    if (skipped(o) !== undefined || opts.skip?.(o) === true) { result.skipped++; continue }
    let want: Outcome
    let got: Outcome
    if (o.op === 'remount' || o.op === 'crash') {
      if (opts.restart === undefined) { result.skipped++; continue }
      await opts.restart(o.op)
      want = got = 'ok'
    } else if (o.op === 'crash-open') {
      const restart = opts.restart
      if (restart === undefined) { result.skipped++; continue }
      want = await applyOp(opts.ref, o)
      got = await crashOpen(opts.sut, o, async () => { await restart('crash') })
    } else {
      want = await applyOp(opts.ref, o)
      got = await applyOp(opts.sut, o)
    }
    result.steps++
    opts.onStep?.(i, o, got)
    if (want !== got) {
      result.mismatches.push({ step: i, op: describeOp(o), kind: 'result', details: [`reference: ${want}`, `bucketfs: ${got}`] })
      if (opts.keepGoing !== true) break
    }
    refTree = await snapshot(opts.ref)
    const diff = diffTrees(refTree, await settledSnapshot(opts.sut))
    if (diff.length > 0) {
      result.mismatches.push({ step: i, op: describeOp(o), kind: 'tree', details: diff })
      if (opts.keepGoing !== true) break
    }
  }
  return result
}

/** A readable account of a mismatch: the ops that led to it, then what differed. */
export function reproduction (r: RunResult, m: Mismatch = r.mismatches[0]): string {
  const lines = [`seed ${r.seed}: ${m.kind} mismatch at step ${m.step}: ${m.op}`]
  for (const d of m.details) lines.push(`  ${d}`)
  lines.push('ops (numbered from 0):')
  r.ops.slice(0, m.step + 1).forEach((o, i) => lines.push(`  ${String(i).padStart(4)}  ${describeOp(o)}${skipped(o) !== undefined ? '  (skipped)' : ''}`))
  return lines.join('\n')
}
