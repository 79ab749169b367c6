// Crash consistency under load (SPEC §2 write path, docs/SEMANTICS.md close/fsync/
// recovery rules). Mounts a fresh store and, for each round, runs W writer child
// processes doing random operations in two buckets (one unversioned, one versioned):
// create new files, overwrite (O_TRUNC), append, write in place, rename (files over
// files, whole directories), unlink, mkdir/rmdir; some fsync (and some hold the file
// open after the fsync), all close. Each writer journals to a file OUTSIDE the mount:
// the operation before it starts, every fsync after it returned, and the end of the
// operation after its close/rename/unlink returned (each line appended and fsynced).
// At a random moment the daemon gets SIGKILL; the store is mounted again (the stale
// mount is cleared by the daemon) and checked:
//
// - each writer's directory is exactly one of the states its journal allows: every
//   completed operation applied, plus, for the one operation in flight at the kill,
//   its state before, after, or at any fsync point not older than the last journaled
//   fsync (so a closed file has exactly its content, an fsynced-but-not-closed one at
//   least its fsynced content, and a rename is all-or-nothing); nothing else is
//   visible anywhere in the buckets (nothing half-written). The daemon commits
//   namespace changes in groups (docs/SEMANTICS.md, "Group commits"): the last
//   renames, unlinks, mkdirs and rmdirs a writer completed after its last close, within
//   LOSS_WINDOW_MS of the kill, may be missing, latest first (never one without those
//   after it), and then the op in flight is not there either;
// - no operation failed before the kill (any errno then is a problem), and the
//   daemon's log has no EIO;
// - `bucketfs fsck --deep` is clean and reports no upload left in progress (recovery
//   completes the sealed ones and drops the others);
// - `bucketfs gc`, then `fsck --deep` clean again and no unreferenced chunk row left.
//
// Rounds repeat on the same store. At the end the daemon is stopped with SIGTERM
// (it must exit 0) and fsck --deep runs once more on the unmounted store.
//
//   npm run build && node dist/scripts/crash-test.js [--rounds 20] [--seed 1] [--writers 4]
//        [--min-kill-ms 300] [--max-kill-ms 4000] [--write-budget MiB] [--keep] [--verbose]
//
// Prints rounds survived, files verified and problems found; exits 1 on any problem.
// (test/65-crash.test.ts runs a short variant in CI.)
import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import readline from 'node:readline'
import Database from 'better-sqlite3'
import { Mount, BIN, fuseAnswers } from '../test/helpers/mount'
import { Prng, sha256 } from '../test/helpers/e2e'

const KiB = 1024
const MiB = 1024 * 1024
const BUCKETS = ['crash-plain', 'crash-versioned']
/**
 * How long before the kill a completed namespace change may yet be uncommitted: a group
 * commits GROUP_MS (5 ms) after its first write, later only while the daemon's main
 * thread is busy with ops before it (under this test's load, well within a second).
 */
const LOSS_WINDOW_MS = 1000

// ------------------------------------------------------------------ the model

/** What a writer's directory holds: relative path → file (by sha256) or directory. */
type Node = { t: 'f', sha: string, size: number } | { t: 'd' }
type Tree = Record<string, Node>

/** One operation, as journaled before it starts. */
type Op =
  /**
   * states[0]: before (null: absent); states[1..n-2]: at each fsync; states[n-1]: after the
   * close. The data goes to [offset, offset+len); fsyncPos[k-1]: how far it was written at
   * the fsync of states[k]. With fsyncs, `side` names files holding the content before and
   * after (for the partial states an fsynced upload may be recovered with).
   */
  | { op: 'write', kind: 'create' | 'trunc' | 'append' | 'pwrite', path: string, states: Array<{ sha: string, size: number } | null>, hold: boolean,
    offset: number, len: number, fsyncPos: number[], side?: string }
  | { op: 'rename', from: string, to: string }
  | { op: 'unlink', path: string }
  | { op: 'mkdir', path: string }
  | { op: 'rmdir', path: string }

/** A journal line. */
type Line =
  | { init: Tree }
  | { begin: Op, n: number }
  | { fsync: number } // index into states of the fsync that returned
  | { done: number, at?: number } // at: Date.now() once it returned
  | { error: { code: string, message: string, at: number, op: string } }

const under = (p: string, dir: string): boolean => p === dir || p.startsWith(dir + '/')

/** The tree after `op` reached state j (0: not done at all). */
function applyOp (tree: Tree, op: Op, j: number): Tree {
  if (j === 0) return tree
  const out: Tree = { ...tree }
  switch (op.op) {
    case 'write': {
      const s = op.states[j]
      if (s === null) delete out[op.path]
      else out[op.path] = { t: 'f', sha: s.sha, size: s.size }
      return out
    }
    case 'rename': {
      const src = tree[op.from]
      if (src === undefined) return out // cannot happen for a writer's own model
      if (src.t === 'f') {
        delete out[op.from]
        out[op.to] = src
        return out
      }
      for (const p of Object.keys(tree)) {
        if (under(p, op.from)) {
          delete out[p]
          out[op.to + p.slice(op.from.length)] = tree[p]
        }
      }
      return out
    }
    case 'unlink': delete out[op.path]; return out
    case 'mkdir': out[op.path] = { t: 'd' }; return out
    case 'rmdir': delete out[op.path]; return out
  }
}

/** How many states an op has (index 0 = not done). */
const stateCount = (op: Op): number => op.op === 'write' ? op.states.length : 2

function sameTree (a: Tree, b: Tree): boolean {
  const ka = Object.keys(a).sort()
  const kb = Object.keys(b).sort()
  if (ka.length !== kb.length || ka.some((k, i) => k !== kb[i])) return false
  for (const k of ka) {
    const x = a[k]
    const y = b[k]
    if (x.t !== y.t) return false
    if (x.t === 'f' && y.t === 'f' && x.sha !== y.sha) return false
  }
  return true
}

function treeDiff (want: Tree, got: Tree): string[] {
  const out: string[] = []
  for (const k of new Set([...Object.keys(want), ...Object.keys(got)])) {
    const w = want[k]
    const g = got[k]
    const show = (n: Node | undefined): string => n === undefined ? 'absent' : n.t === 'd' ? 'dir' : `file ${n.size} B ${n.sha.slice(0, 12)}`
    if (w === undefined || g === undefined || w.t !== g.t || (w.t === 'f' && g.t === 'f' && w.sha !== g.sha)) out.push(`${k}: expected ${show(w)}, found ${show(g)}`)
  }
  return out.sort()
}

/** Everything under dir as a Tree (read through the mount). */
function scanTree (dir: string): Tree {
  const out: Tree = {}
  const walk = (abs: string, rel: string): void => {
    for (const name of fs.readdirSync(abs).sort()) {
      const r = rel === '' ? name : `${rel}/${name}`
      const p = path.join(abs, name)
      const st = fs.lstatSync(p)
      if (st.isDirectory()) {
        out[r] = { t: 'd' }
        walk(p, r)
      } else {
        const data = fs.readFileSync(p)
        out[r] = { t: 'f', sha: sha256(data), size: data.length }
        if (st.size !== data.length) out[r] = { t: 'f', sha: `stat size ${st.size} but ${data.length} bytes read`, size: data.length }
      }
    }
  }
  walk(dir, '')
  return out
}

// ------------------------------------------------------------------ the writer (child process)

interface WriterConfig { dir: string, journal: string, seed: number, deadline: number, maxFiles: number }

/**
 * The content an upload sealed by an fsync may be recovered with when the daemon died
 * later in the same write: what the fsync made durable plus any later data that a
 * part flush (a full 8 MiB part, or the write budget) uploaded: the final content up to
 * some X ≥ the fsynced position, then the content before the write. (Writes go in
 * increasing offsets, so that is every state the file went through.)
 */
function partialStateOk (actual: Buffer, before: Buffer | null, final: Buffer, op: Extract<Op, { op: 'write' }>, minPos: number): boolean {
  const base = op.kind === 'create' || op.kind === 'trunc' ? Buffer.alloc(0) : (before ?? Buffer.alloc(0))
  let p = 0
  while (p < actual.length && p < final.length && actual[p] === final[p]) p++
  for (let x = p; x >= Math.max(minPos, p - 64, 0); x--) {
    if (x > op.offset + op.len) continue
    const size = Math.max(base.length, x)
    if (actual.length !== size) continue
    if (actual.subarray(x).equals(base.subarray(x, size))) return true
  }
  return false
}

/** Sleeps synchronously (the writer does only synchronous fs calls). */
function sleepSync (ms: number): void {
  if (ms > 0) Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms)
}

/** A failure that means the daemon is gone: the writer's round is over. */
const DISCONNECTED = new Set(['ENOTCONN', 'ECONNABORTED'])

function runWriter (cfg: WriterConfig): void {
  const rng = new Prng(cfg.seed)
  const jfd = fs.openSync(cfg.journal, 'a')
  const journal = (line: Line): void => {
    fs.writeSync(jfd, JSON.stringify(line) + '\n')
    fs.fsyncSync(jfd)
  }
  const abs = (rel: string): string => path.join(cfg.dir, rel)
  const files = new Map<string, Buffer>()
  const dirs = new Set<string>()
  // The starting state, as the mount shows it.
  const walk = (rel: string): void => {
    for (const name of fs.readdirSync(abs(rel))) {
      const r = rel === '' ? name : `${rel}/${name}`
      if (fs.lstatSync(abs(r)).isDirectory()) { dirs.add(r); walk(r) } else files.set(r, fs.readFileSync(abs(r)))
    }
  }
  walk('')
  const tree = (): Tree => {
    const t: Tree = {}
    for (const d of dirs) t[d] = { t: 'd' }
    for (const [p, b] of files) t[p] = { t: 'f', sha: sha256(b), size: b.length }
    return t
  }
  journal({ init: tree() })
  process.stdout.write('ready\n')

  const pick = <T>(xs: T[]): T => xs[rng.int(xs.length)]
  const dirList = (): string[] => ['', ...[...dirs].sort()]
  let counter = 0
  /** A name nothing in the writer's tree has (names from earlier rounds stay around). */
  const unused = (make: () => string): string => {
    for (;;) {
      const p = make()
      if (!files.has(p) && !dirs.has(p)) return p
    }
  }
  const newName = (dir: string): string => unused(() => {
    const exts = ['.bin', '.txt', '.dat', '', '.json']
    const name = `f${(cfg.seed % 1000).toString(36)}-${(counter++).toString(36)}-${rng.int(1e6).toString(36)}${pick(exts)}`
    return dir === '' ? name : `${dir}/${name}`
  })
  const newDirName = (parent: string): string => unused(() => `${parent === '' ? '' : parent + '/'}d${rng.int(1e6).toString(36)}`)
  const dataSize = (): number => {
    const r = rng.int(100)
    if (r < 8) return 0
    if (r < 25) return 1 + rng.int(200)
    if (r < 55) return 1 + rng.int(64 * KiB) // inline chunks
    if (r < 85) return 64 * KiB + rng.int(MiB) // one or two chunk files
    if (r < 96) return MiB + rng.int(3 * MiB) // several chunks
    return 8 * MiB + rng.int(16 * MiB) // several 8 MiB parts (uploaded as each fills)
  }

  /** A content op: open, write pieces (fsyncing at some piece boundaries), close. */
  const contentOp = (kind: 'create' | 'trunc' | 'append' | 'pwrite', p: string): void => {
    const before = files.get(p) ?? null
    const data = rng.bytes(kind === 'create' || kind === 'trunc' ? dataSize() : Math.min(dataSize(), kind === 'append' ? 12 * MiB : 2 * MiB))
    let offset = 0
    if (kind === 'append') offset = before?.length ?? 0
    if (kind === 'pwrite') offset = rng.int((before?.length ?? 0) + 64 * KiB)
    // Pieces, and after which of them an fsync happens.
    const pieces: Array<{ off: number, len: number }> = []
    for (let at = 0; at < data.length;) {
      const len = Math.min(data.length - at, 1 + rng.int(256 * KiB))
      pieces.push({ off: at, len })
      at += len
    }
    const fsyncAfter = new Set<number>()
    if (pieces.length > 0 && rng.int(100) < 35) {
      fsyncAfter.add(rng.int(pieces.length))
      if (rng.int(3) === 0) fsyncAfter.add(rng.int(pieces.length))
    }
    const hold = fsyncAfter.size > 0 && rng.int(100) < 30
    // The content after k pieces.
    let cur: Buffer = kind === 'create' || kind === 'trunc' ? Buffer.alloc(0) : Buffer.from(before ?? Buffer.alloc(0))
    const apply = (piece: { off: number, len: number }): void => {
      const at = offset + piece.off
      if (at + piece.len > cur.length) cur = Buffer.concat([cur, Buffer.alloc(at + piece.len - cur.length)])
      data.copy(cur, at, piece.off, piece.off + piece.len)
    }
    const states: Array<{ sha: string, size: number } | null> = [before === null ? null : { sha: sha256(before), size: before.length }]
    const stateOfPiece = new Map<number, number>()
    const fsyncPos: number[] = []
    pieces.forEach((piece, i) => {
      apply(piece)
      if (fsyncAfter.has(i)) {
        stateOfPiece.set(i, states.length)
        states.push({ sha: sha256(cur), size: cur.length })
        fsyncPos.push(offset + piece.off + piece.len)
      }
    })
    const final = cur
    states.push({ sha: sha256(final), size: final.length })
    let side: string | undefined
    if (fsyncPos.length > 0) {
      side = `${cfg.journal}.side`
      fs.writeFileSync(`${side}.before`, before ?? Buffer.alloc(0))
      fs.writeFileSync(`${side}.final`, final)
    }
    journal({ begin: { op: 'write', kind, path: p, states, hold, offset, len: data.length, fsyncPos, side }, n: counter })
    const flags = kind === 'create' ? 'wx' : kind === 'trunc' ? 'w' : kind === 'append' ? 'a' : 'r+'
    const fd = fs.openSync(abs(p), flags, 0o644)
    pieces.forEach((piece, i) => {
      // O_APPEND ignores the position; pwrite at offset for the others.
      fs.writeSync(fd, data, piece.off, piece.len, kind === 'append' ? null : offset + piece.off)
      const k = stateOfPiece.get(i)
      if (k !== undefined) {
        fs.fsyncSync(fd)
        journal({ fsync: k })
        if (hold) sleepSync(100 + rng.int(500))
      }
      if (rng.int(10) === 0) sleepSync(rng.int(15))
    })
    fs.closeSync(fd)
    files.set(p, final)
    journal({ done: counter, at: Date.now() })
  }

  /** A namespace op: journaled before it starts and after it returned. */
  const journaled = (begin: Op, act: () => void): void => {
    journal({ begin, n: counter })
    act()
    journal({ done: counter, at: Date.now() })
  }
  const unlink = (p: string): void => { journaled({ op: 'unlink', path: p }, () => { fs.unlinkSync(abs(p)); files.delete(p) }) }

  const ops = (): void => {
    const fileList = [...files.keys()].sort()
    const r = rng.int(100)
    if (fileList.length >= cfg.maxFiles && r < 40) return unlink(pick(fileList))
    if (r < 25 || fileList.length === 0) return contentOp('create', newName(pick(dirList())))
    if (r < 38) return contentOp('trunc', pick(fileList))
    if (r < 50) return contentOp('append', pick(fileList))
    if (r < 62) return contentOp('pwrite', pick(fileList))
    if (r < 75) {
      const from = pick(fileList)
      const others = fileList.filter(f => f !== from)
      const to = others.length > 0 && rng.int(100) < 40 ? pick(others) : newName(pick(dirList()))
      return journaled({ op: 'rename', from, to }, () => {
        fs.renameSync(abs(from), abs(to))
        const b = files.get(from) as Buffer
        files.delete(from)
        files.set(to, b)
      })
    }
    if (r < 86) return unlink(pick(fileList))
    if (r < 91) {
      if (dirs.size >= 6) return
      const p = newDirName(pick(dirList()))
      return journaled({ op: 'mkdir', path: p }, () => { fs.mkdirSync(abs(p)); dirs.add(p) })
    }
    if (r < 96) {
      if (dirs.size === 0) return
      const from = pick([...dirs].sort())
      const targets = dirList().filter(d => !under(d, from))
      const to = newDirName(pick(targets))
      return journaled({ op: 'rename', from, to }, () => {
        fs.renameSync(abs(from), abs(to))
        const move = (p: string): string => under(p, from) ? to + p.slice(from.length) : p
        for (const d of [...dirs]) { if (under(d, from)) { dirs.delete(d); dirs.add(move(d)) } }
        for (const [p, b] of [...files]) { if (under(p, from)) { files.delete(p); files.set(move(p), b) } }
      })
    }
    const empty = [...dirs].sort().filter(d => ![...dirs, ...files.keys()].some(x => x !== d && under(x, d)))
    if (empty.length === 0) return
    const p = pick(empty)
    journaled({ op: 'rmdir', path: p }, () => { fs.rmdirSync(abs(p)); dirs.delete(p) })
  }

  const parent = process.ppid
  while (Date.now() < cfg.deadline && process.ppid === parent) {
    counter++
    try {
      ops()
    } catch (err) {
      const e = err as NodeJS.ErrnoException
      journal({ error: { code: e.code ?? 'none', message: e.message, at: Date.now(), op: String(counter) } })
      // The daemon is gone, or something failed that should not have: either way the
      // writer's model may now differ from the mount, so this round ends for it.
      break
    }
  }
  fs.closeSync(jfd)
}

// ------------------------------------------------------------------ the coordinator

interface Args {
  rounds: number, seed: number, writers: number, minKillMs: number, maxKillMs: number
  writeBudget?: number, keep: boolean, verbose: boolean, maxFiles: number
}

function usage (): never {
  process.stderr.write(`usage: crash-test [--rounds N] [--seed S] [--writers W] [--min-kill-ms MS] [--max-kill-ms MS]
                  [--max-files N] [--write-budget MiB] [--keep] [--verbose]
  --rounds N         SIGKILL rounds on the same store (default 10)
  --seed S           seeds the writers and the kill times (default: from the clock, printed)
  --writers W        writer processes per round (default 4)
  --min/max-kill-ms  the daemon is killed this long after the writers started (default 300..4000)
  --max-files N      files per writer before it prefers deleting (default 24)
  --write-budget M   the mount's write budget in MiB (small values flush parts early)
  --keep             keep the temp dir (store, journals, daemon log)
`)
  process.exit(2)
}

function parseArgs (argv: string[]): Args {
  const a: Args = { rounds: 10, seed: Date.now() % 1_000_000, writers: 4, minKillMs: 300, maxKillMs: 4000, keep: false, verbose: false, maxFiles: 24 }
  for (let i = 0; i < argv.length; i++) {
    const num = (): number => {
      const v = Number(argv[++i])
      if (!Number.isFinite(v) || v < 0) usage()
      return v
    }
    switch (argv[i]) {
      case '--rounds': a.rounds = num(); break
      case '--seed': a.seed = num(); break
      case '--writers': a.writers = Math.max(1, num()); break
      case '--min-kill-ms': a.minKillMs = num(); break
      case '--max-kill-ms': a.maxKillMs = num(); break
      case '--max-files': a.maxFiles = num(); break
      case '--write-budget': a.writeBudget = num(); break
      case '--keep': a.keep = true; break
      case '--verbose': a.verbose = true; break
      default: usage()
    }
  }
  if (a.maxKillMs < a.minKillMs) a.maxKillMs = a.minKillMs
  return a
}

const sleep = async (ms: number): Promise<void> => { await new Promise(resolve => setTimeout(resolve, ms)) }

interface Writer { id: number, bucket: string, rel: string, journal: string, child: ChildProcess, ready: Promise<boolean>, exited: Promise<void>, stderr: string }

function startWriter (id: number, bucket: string, rel: string, mnt: string, journal: string, seed: number, deadline: number, maxFiles: number): Writer {
  const cfg: WriterConfig = { dir: path.join(mnt, bucket, rel), journal, seed, deadline, maxFiles }
  const child = spawn(process.execPath, [__filename, '--writer', JSON.stringify(cfg)], { stdio: ['ignore', 'pipe', 'pipe'] })
  const w: Writer = { id, bucket, rel, journal, child, ready: Promise.resolve(false), exited: Promise.resolve(), stderr: '' }
  child.stderr?.on('data', (d: Buffer) => { w.stderr += d.toString() })
  w.exited = new Promise(resolve => child.once('exit', () => { resolve() }))
  w.ready = new Promise(resolve => {
    if (child.stdout === null) { resolve(false); return }
    readline.createInterface({ input: child.stdout }).on('line', l => { if (l === 'ready') resolve(true) })
    child.once('exit', () => { resolve(false) })
  })
  return w
}

function readJournal (file: string): Line[] {
  let text = ''
  try { text = fs.readFileSync(file, 'utf8') } catch { return [] }
  return text.split('\n').filter(l => l !== '').map(l => JSON.parse(l) as Line)
}

interface Verdict {
  ok: boolean
  problems: string[]
  observed: Tree
  opsDone: number
  uncommitted: number
  inFlight?: string
  fsyncedInFlight: boolean
  /** The in-flight write was recovered with more than its last fsync covered (a later part flush). */
  partial: boolean
  errors: Array<{ code: string, message: string, at: number, op: string }>
}

/** What the journal allows for a writer's directory, and whether the mount shows one of it. */
function judge (expected: Tree, lines: Line[], observed: Tree, killedAt: number, readActual: (rel: string) => Buffer): Verdict {
  const problems: string[] = []
  let tree = expected
  let pending: Op | null = null
  let minState = 0
  let opsDone = 0
  const errors: Verdict['errors'] = []
  /** The tree before each completed op, and the op with when it completed. */
  const before: Tree[] = []
  const completed: Array<{ op: Op, at: number | undefined }> = []
  for (const l of lines) {
    if ('init' in l) {
      if (!sameTree(l.init, expected)) problems.push(`the writer found a different tree at its start than the last check left:\n      ${treeDiff(expected, l.init).join('\n      ')}`)
    } else if ('begin' in l) {
      pending = l.begin
      minState = 0
    } else if ('fsync' in l) {
      minState = l.fsync
    } else if ('done' in l) {
      if (pending !== null) {
        before.push(tree)
        completed.push({ op: pending, at: l.at })
        tree = applyOp(tree, pending, stateCount(pending) - 1)
      }
      pending = null
      opsDone++
    } else if ('error' in l) {
      errors.push(l.error)
      if (!DISCONNECTED.has(l.error.code) && l.error.at < killedAt) problems.push(`an operation failed before the kill: ${l.error.code} ${l.error.message}`)
    }
  }
  const allowed: Tree[] = []
  if (pending === null) allowed.push(tree)
  else for (let j = minState; j < stateCount(pending); j++) allowed.push(applyOp(tree, pending, j))
  // A group not yet committed: namespace changes completed since the last close or fsync
  // (which commit everything before them), lately enough. An fsync of the op in flight
  // committed them.
  if (minState === 0) {
    for (let i = completed.length - 1; i >= 0; i--) {
      const c = completed[i]
      if (c.op.op === 'write' || c.at === undefined || c.at < killedAt - LOSS_WINDOW_MS) break
      allowed.push(before[i])
    }
  }
  const match = allowed.findIndex(a => sameTree(a, observed))
  /** Completed namespace changes the store does not show (a group the kill cut short). */
  const uncommitted = match > 0 && pending === null ? match : (pending !== null && match >= stateCount(pending) - minState ? match - (stateCount(pending) - minState) + 1 : 0)
  let ok = match >= 0
  let partial = false
  if (!ok && pending?.op === 'write' && pending.side !== undefined && pending.fsyncPos.length > 0) {
    // An fsync sealed the upload: a later part flush may have added data the fsync did not cover.
    const op = pending
    const rest = (t: Tree): Tree => { const c = { ...t }; delete c[op.path]; return c }
    const got = observed[op.path]
    if (got?.t === 'f' && sameTree(rest(tree), rest(observed))) {
      const minPos = minState > 0 ? op.fsyncPos[minState - 1] : op.fsyncPos[0]
      try {
        const before = op.states[0] === null ? null : fs.readFileSync(`${op.side}.before`)
        partial = partialStateOk(readActual(op.path), before, fs.readFileSync(`${op.side}.final`), op, minPos)
      } catch (err) {
        problems.push(`cannot check a partial state of ${op.path}: ${(err as Error).message}`)
      }
      ok = partial
    }
  }
  if (!ok) {
    const best = allowed.map(a => treeDiff(a, observed)).sort((x, y) => x.length - y.length)[0]
    problems.push(`the directory matches none of the ${allowed.length} allowed state(s)${pending !== null ? ` (in flight: ${describe(pending)}, fsynced up to state ${minState})` : ''}; closest:\n      ${best.join('\n      ')}`)
  }
  return { ok: ok && problems.length === 0, problems, observed, opsDone, uncommitted, inFlight: pending === null ? undefined : describe(pending), fsyncedInFlight: pending?.op === 'write' && minState > 0, partial, errors }
}

function describe (op: Op): string {
  switch (op.op) {
    case 'write': return `${op.kind} ${op.path} (${op.states.length - 2} fsync(s)${op.hold ? ', held open' : ''}, ${op.states[op.states.length - 1]?.size ?? 0} B)`
    case 'rename': return `rename ${op.from} → ${op.to}`
    default: return `${op.op} ${op.path}`
  }
}

interface CliResult { status: number | null, out: string }

function cli (dataDir: string, ...args: string[]): CliResult {
  const env = { ...process.env }
  delete env.DEBUG
  const r = spawnSync(process.execPath, [BIN, ...args, '--data', dataDir], { encoding: 'utf8', env, timeout: 300_000, maxBuffer: 64 * MiB })
  return { status: r.status, out: `${r.stdout ?? ''}${r.stderr ?? ''}${r.error !== undefined ? `\n[${r.error.message}]` : ''}` }
}

/** fsck --deep must be clean and show no upload left in progress. */
function checkFsck (dataDir: string, when: string, problems: string[]): void {
  const r = cli(dataDir, 'fsck', '--deep')
  if (r.status !== 0 || !r.out.includes('store is clean')) problems.push(`fsck --deep ${when}: exit ${r.status}\n${indent(r.out)}`)
  else if (!/uploads in progress: none/.test(r.out)) problems.push(`fsck --deep ${when}: uploads left in progress after recovery\n${indent(r.out)}`)
}

/** After gc: no chunk row that nothing references (or pins), no chunk file without a row. */
function checkNoGarbage (dataDir: string, problems: string[]): void {
  const db = new Database(path.join(dataDir, 'meta.db'), { readonly: true, fileMustExist: true })
  try {
    const unref = db.prepare('SELECT COUNT(*) AS n FROM chunks WHERE refs <= 0').get() as { n: number }
    const pins = db.prepare('SELECT COUNT(*) AS n FROM pins').get() as { n: number }
    if (unref.n > 0) problems.push(`after gc: ${unref.n} unreferenced chunk row(s) left (pins: ${pins.n})`)
    const rows = new Set((db.prepare('SELECT hex(hash) AS h FROM chunks WHERE data IS NULL').all() as Array<{ h: string }>).map(r => r.h.toLowerCase()))
    let files = 0
    const chunks = path.join(dataDir, 'chunks')
    for (const sub of fs.readdirSync(chunks)) {
      for (const name of fs.readdirSync(path.join(chunks, sub))) {
        files++
        if (!rows.has(name)) problems.push(`after gc: chunk file ${sub}/${name} has no row`)
      }
    }
    if (files !== rows.size) problems.push(`after gc: ${rows.size} chunk rows stored as files but ${files} chunk files`)
  } finally {
    db.close()
  }
}

const indent = (s: string): string => s.trimEnd().split('\n').map(l => `      ${l}`).join('\n')

async function main (): Promise<number> {
  const args = parseArgs(process.argv.slice(2))
  const m = new Mount({
    args: args.writeBudget !== undefined ? ['--write-budget', String(args.writeBudget)] : [],
    stopTimeoutMs: 60_000
  })
  const journals = path.join(m.root, 'journals')
  fs.mkdirSync(journals)
  const writers = new Set<Writer>()
  let stopping = false
  const killWriters = (): void => {
    for (const w of writers) if (w.child.pid !== undefined && w.child.exitCode === null && w.child.signalCode === null) { try { process.kill(w.child.pid, 'SIGKILL') } catch {} }
  }
  const onSignal = (sig: NodeJS.Signals): void => {
    if (stopping) return
    stopping = true
    process.stderr.write(`\n${sig}: stopping the writers and unmounting\n`)
    killWriters()
    void m.cleanup().finally(() => process.exit(130))
  }
  process.on('SIGINT', onSignal)
  process.on('SIGTERM', onSignal)

  const rng = new Prng(args.seed)
  const started = Date.now()
  const problems: string[] = []
  let roundsSurvived = 0
  let filesVerified = 0
  let opsDone = 0
  let uncommitted = 0
  const inFlight = { total: 0, fsynced: 0, partial: 0, byKind: new Map<string, number>() }
  const expected = new Map<string, Tree>() // writer dir → the tree the last check found
  process.stdout.write(`crash-test: seed ${args.seed}, ${args.rounds} round(s) × ${args.writers} writer(s), kill after ${args.minKillMs}..${args.maxKillMs} ms; store ${m.dataDir}\n`)
  try {
    await m.start()
    fs.mkdirSync(path.join(m.mountpoint, BUCKETS[0]))
    fs.mkdirSync(path.join(m.mountpoint, BUCKETS[1]))
    const v = spawnSync('setfattr', ['-n', 'user.s3.versioning', '-v', 'Enabled', path.join(m.mountpoint, BUCKETS[1])], { encoding: 'utf8' })
    if (v.status !== 0) throw new Error(`could not enable versioning: ${v.stderr}`)
    const dirs: Array<{ bucket: string, rel: string }> = []
    for (let i = 0; i < args.writers; i++) {
      const d = { bucket: BUCKETS[i % 2], rel: `w${i}` }
      fs.mkdirSync(path.join(m.mountpoint, d.bucket, d.rel))
      dirs.push(d)
      expected.set(`${d.bucket}/${d.rel}`, {})
    }

    let logFrom = 0
    for (let round = 1; round <= args.rounds && !stopping; round++) {
      const roundProblems: string[] = []
      const killAfter = args.minKillMs + rng.int(args.maxKillMs - args.minKillMs + 1)
      const deadline = Date.now() + args.maxKillMs + 60_000
      const ws = dirs.map((d, i) => startWriter(i, d.bucket, d.rel, m.mountpoint, path.join(journals, `r${round}-w${i}.jsonl`), (args.seed * 7919 + round * 104729 + i * 1299709) >>> 0, deadline, args.maxFiles))
      for (const w of ws) writers.add(w)
      const ready = await Promise.all(ws.map(async w => await w.ready))
      if (ready.some(r => !r)) roundProblems.push(`a writer did not start: ${ws.filter((_, i) => !ready[i]).map(w => w.stderr).join('\n')}`)
      await sleep(killAfter)
      const killedAt = Date.now()
      const daemonPid = m.pid
      await m.killDaemon()
      // Every writer ends on ENOTCONN/ECONNABORTED; one stuck after 30 s is a problem too.
      const allExited = await Promise.race([Promise.all(ws.map(async w => await w.exited)).then(() => true), sleep(30_000).then(() => false)])
      if (!allExited) {
        roundProblems.push('a writer was still blocked 30 s after the daemon was killed')
        killWriters()
        await Promise.all(ws.map(async w => await w.exited))
      }
      for (const w of ws) writers.delete(w)
      await m.start() // clears the stale mount, recovers sealed uploads
      // (Mount.start() waits until a FUSE filesystem answers statfs at the mountpoint: the
      // new daemon's, not the dead one's nor the empty directory under it.)
      if (!fuseAnswers(m.mountpoint)) roundProblems.push('the remounted store does not answer')
      // A fresh mount: nothing is cached in the kernel, every byte comes from the store.
      let roundFiles = 0
      const notes: string[] = []
      for (const w of ws) {
        const id = `${w.bucket}/${w.rel}`
        let observed: Tree | undefined
        for (let attempt = 0; observed === undefined; attempt++) {
          try { observed = scanTree(path.join(m.mountpoint, w.bucket, w.rel)) } catch (err) {
            roundProblems.push(`${id}: cannot scan (attempt ${attempt + 1}): ${(err as Error).message}`)
            if (attempt === 2) break
            await sleep(1500)
          }
        }
        if (observed === undefined) continue
        const verdict = judge(expected.get(id) ?? {}, readJournal(w.journal), observed, killedAt, rel => fs.readFileSync(path.join(m.mountpoint, w.bucket, w.rel, rel)))
        if (w.stderr.trim() !== '') verdict.problems.push(`writer stderr:\n${indent(w.stderr)}`)
        for (const p of verdict.problems) roundProblems.push(`${id}: ${p}`)
        expected.set(id, observed)
        const nFiles = Object.values(observed).filter(n => n.t === 'f').length
        roundFiles += nFiles
        opsDone += verdict.opsDone
        uncommitted += verdict.uncommitted
        if (verdict.inFlight !== undefined) {
          inFlight.total++
          if (verdict.fsyncedInFlight) inFlight.fsynced++
          if (verdict.partial) inFlight.partial++
          const kind = verdict.inFlight.split(' ')[0]
          inFlight.byKind.set(kind, (inFlight.byKind.get(kind) ?? 0) + 1)
        }
        notes.push(`${id}: ${verdict.opsDone} ops, ${nFiles} files${verdict.inFlight !== undefined ? `, in flight: ${verdict.inFlight}${verdict.fsyncedInFlight ? ' [fsynced]' : ''}${verdict.partial ? ' [recovered with later flushed data]' : ''}` : ''}`)
      }
      // Nothing else is visible in the buckets: no stray or half-written object.
      for (const b of BUCKETS) {
        let names: string[]
        try { names = fs.readdirSync(path.join(m.mountpoint, b)).sort() } catch (err) {
          let root = ''
          try { root = fs.readdirSync(m.mountpoint).join(', ') } catch (e) { root = (e as Error).message }
          await sleep(1500)
          let again = ''
          try { again = `${fs.readdirSync(path.join(m.mountpoint, b)).length} entries` } catch (e) { again = (e as Error).message }
          roundProblems.push(`${b}: cannot list the bucket: ${(err as Error).message} (the root shows [${root}]; 1.5 s later: ${again})`)
          continue
        }
        const want = dirs.filter(d => d.bucket === b).map(d => d.rel).sort()
        if (names.join('/') !== want.join('/')) roundProblems.push(`${b}: shows [${names.join(', ')}], expected [${want.join(', ')}]`)
      }
      const log = m.log().slice(logFrom)
      logFrom += log.length
      const eio = log.split('\n').filter(l => /EIO/.test(l))
      if (eio.length > 0) roundProblems.push(`the daemon log mentions EIO:\n${indent(eio.slice(0, 10).join('\n'))}`)
      checkFsck(m.dataDir, `after round ${round}'s recovery`, roundProblems)
      const gc = cli(m.dataDir, 'gc')
      if (gc.status !== 0) roundProblems.push(`gc: exit ${gc.status}\n${indent(gc.out)}`)
      checkFsck(m.dataDir, `after round ${round}'s gc`, roundProblems)
      checkNoGarbage(m.dataDir, roundProblems)
      filesVerified += roundFiles
      const status = roundProblems.length === 0 ? 'ok' : `${roundProblems.length} PROBLEM(S)`
      process.stdout.write(`round ${round}: daemon pid ${daemonPid} killed after ${killAfter} ms; ${roundFiles} files verified; ${gc.out.trim()}; ${status}\n`)
      if (args.verbose || roundProblems.length > 0) for (const n of notes) process.stdout.write(`    ${n}\n`)
      for (const p of roundProblems) process.stdout.write(`  PROBLEM: ${p}\n`)
      if (roundProblems.length === 0) roundsSurvived++
      problems.push(...roundProblems.map(p => `round ${round}: ${p}`))
    }
    const code = await m.stop()
    if (code !== 0) problems.push(`the last daemon exited ${code} after SIGTERM`)
    if (m.leftMountBehind) problems.push('the last daemon left its mount behind')
    const finalProblems: string[] = []
    checkFsck(m.dataDir, 'on the unmounted store at the end', finalProblems)
    problems.push(...finalProblems)
    for (const p of finalProblems) process.stdout.write(`  PROBLEM: ${p}\n`)
  } catch (err) {
    problems.push(`the run failed: ${(err as Error).stack ?? String(err)}\n${indent(m.log().slice(-3000))}`)
    process.stdout.write(`  PROBLEM: ${problems[problems.length - 1]}\n`)
  } finally {
    killWriters()
    if (args.keep) {
      await m.stop()
      process.stdout.write(`kept ${m.root}\n`)
    } else {
      await m.cleanup()
    }
  }
  const kinds = [...inFlight.byKind].map(([k, n]) => `${k} ${n}`).join(', ')
  process.stdout.write(`rounds survived: ${roundsSurvived}/${args.rounds}\nfiles verified: ${filesVerified}\noperations completed: ${opsDone} (${uncommitted} namespace change(s) uncommitted at a kill)\n` +
    `in flight at a kill: ${inFlight.total} (${kinds}${kinds === '' ? '' : '; '}${inFlight.fsynced} after an fsync, ${inFlight.partial} recovered with data flushed after it)\n` +
    `problems found: ${problems.length}\ntime: ${((Date.now() - started) / 1000).toFixed(1)} s\n`)
  return problems.length === 0 ? 0 : 1
}

if (process.argv[2] === '--writer') {
  runWriter(JSON.parse(process.argv[3]) as WriterConfig)
} else if (require.main === module) {
  main().then(code => { process.exitCode = code }, (err: unknown) => {
    process.stderr.write(`${(err as Error).stack ?? String(err)}\n`)
    process.exitCode = 1
  })
}
