// Loaded into the bucketfs daemon with `node --require` by `npm run bench -- --probe`:
// counts what the daemon does, without touching src/. On SIGUSR2 it writes a snapshot of
// its cumulative counters to $BUCKETFS_BENCH_PROBE; the bench takes one before and one
// after each workload and reports the difference.
// - FUSE ops: the adapter traces every op with its duration through `debug`
//   (DEBUG=bucketfs:fuse); the trace is counted here instead of printed.
// - SQLite: every statement execution (by SQL text), with time spent, and the transactions (BEGINs).
// - hashing (createHash().update) and the fs calls of the chunk store.
// - event-loop utilisation and GC time.
// The counting costs time: numbers from a probed run are counts, not speeds.
import crypto from 'node:crypto'
import fs from 'node:fs'
import fsp from 'node:fs/promises'
import { performance, PerformanceObserver } from 'node:perf_hooks'
import { format } from 'node:util'
import Database from 'better-sqlite3'
import createDebug from 'debug'

interface Counter { n: number, ms: number }
export interface ProbeSnapshot {
  seq: number
  /** CLOCK_MONOTONIC µs */
  at: number
  fuse: Record<string, Counter & { errors: number }>
  sql: Record<string, Counter>
  transactions: number
  hash: Record<string, Counter & { bytes: number }>
  fs: Record<string, Counter>
  loop: { activeMs: number, idleMs: number }
  gcMs: number
}

const out = process.env.BUCKETFS_BENCH_PROBE
const writeFileSync = fs.writeFileSync
const renameSync = fs.renameSync
const now = (): number => Number(process.hrtime.bigint()) / 1e6

const fuse: ProbeSnapshot['fuse'] = {}
const sql: ProbeSnapshot['sql'] = {}
const hash: ProbeSnapshot['hash'] = {}
const fsCalls: ProbeSnapshot['fs'] = {}
let gcMs = 0
let seq = 0

function count (table: Record<string, Counter>, key: string, ms: number): void {
  const c = table[key] ?? (table[key] = { n: 0, ms: 0 })
  c.n++
  c.ms += ms
}

type Fn = (this: unknown, ...args: unknown[]) => unknown

/** Replaces obj[name] (a function) with a wrapper built from the original. */
function wrap (obj: object, name: string, make: (orig: Fn) => Fn): void {
  const rec = obj as Record<string, unknown>
  const orig = rec[name]
  if (typeof orig !== 'function') return
  rec[name] = make(orig as Fn)
}

/** Counts calls and time of a synchronous function. */
function timeSync (table: Record<string, Counter>, key: (self: unknown, args: unknown[]) => string): (orig: Fn) => Fn {
  return orig => function (this: unknown, ...args: unknown[]): unknown {
    const t0 = now()
    try {
      return orig.apply(this, args)
    } finally {
      count(table, key(this, args), now() - t0)
    }
  }
}

/** Counts calls of an async function and the time until its promise settles. */
function timeAsync (table: Record<string, Counter>, label: string, after?: (value: unknown) => void): (orig: Fn) => Fn {
  return orig => function (this: unknown, ...args: unknown[]): unknown {
    const t0 = now()
    const p = orig.apply(this, args)
    if (p instanceof Promise) {
      return p.then(v => { count(table, label, now() - t0); after?.(v); return v }, (e: unknown) => { count(table, label, now() - t0); throw e })
    }
    count(table, label, now() - t0)
    return p
  }
}

// ---- FUSE ops, from the adapter's trace: "op(args) → result, 0.123 ms" (debug leaves
// %s to the final util.format, so the message is formatted here)
const TRACE = /bucketfs:fuse (\w+)\(/
const TOOK = /, ([\d.e+-]+) ms\s*$/
const FAILED = /\) → -\d+ \(/
createDebug.log = (...args: unknown[]): void => {
  const text = format(...args)
  const op = TRACE.exec(text)
  if (op === null) return
  const c = fuse[op[1]] ?? (fuse[op[1]] = { n: 0, ms: 0, errors: 0 })
  c.n++
  c.ms += Number(TOOK.exec(text)?.[1] ?? 0)
  if (FAILED.test(text)) c.errors++
}

// ---- SQLite statements and transactions
const probeDb = new Database(':memory:')
const statementProto = Object.getPrototypeOf(probeDb.prepare('SELECT 1')) as object
const source = (self: unknown): string => {
  const s = (self as { source?: unknown }).source
  return typeof s === 'string' ? s.replace(/\s+/g, ' ').trim() : '?'
}
for (const method of ['run', 'get', 'all']) wrap(statementProto, method, timeSync(sql, self => `${method} ${source(self)}`))
wrap(statementProto, 'iterate', orig => function (this: unknown, ...args: unknown[]): unknown {
  count(sql, `iterate ${source(this)}`, 0)
  return orig.apply(this, args)
})
wrap(Object.getPrototypeOf(probeDb) as object, 'pragma', timeSync(sql, (_self, args) => `pragma ${String(args[0])}`))
probeDb.close()

// ---- hashing
wrap(crypto, 'createHash', orig => function (this: unknown, ...args: unknown[]): unknown {
  const h = orig.apply(this, args) as crypto.Hash
  const algorithm = String(args[0])
  const update = h.update.bind(h) as (data: crypto.BinaryLike, enc?: crypto.Encoding) => crypto.Hash
  h.update = (data: crypto.BinaryLike, enc?: crypto.Encoding): crypto.Hash => {
    const t0 = now()
    update(data, enc)
    const c = hash[algorithm] ?? (hash[algorithm] = { n: 0, ms: 0, bytes: 0 })
    c.n++
    c.ms += now() - t0
    c.bytes += typeof data === 'string' ? Buffer.byteLength(data) : data.byteLength
    return h
  }
  return h
})

// ---- fs calls of the chunk store and the vfs
for (const name of ['existsSync', 'statSync', 'lstatSync', 'openSync', 'readSync', 'writeSync', 'fsyncSync', 'closeSync', 'readdirSync', 'renameSync', 'rmSync', 'mkdirSync', 'readFileSync', 'statfsSync']) {
  wrap(fs, name, timeSync(fsCalls, () => name))
}
let handleWrapped = false
const wrapHandle = (handle: unknown): void => {
  if (handleWrapped || handle === null || typeof handle !== 'object') return
  handleWrapped = true
  const proto = Object.getPrototypeOf(handle) as object
  for (const name of ['read', 'write', 'writeFile', 'readFile', 'sync', 'datasync', 'close', 'stat', 'truncate']) {
    wrap(proto, name, timeAsync(fsCalls, `handle.${name}`))
  }
}
wrap(fsp, 'open', timeAsync(fsCalls, 'promises.open', wrapHandle))
for (const name of ['rename', 'mkdir', 'readFile', 'writeFile', 'rm', 'unlink', 'stat', 'readdir']) {
  wrap(fsp, name, timeAsync(fsCalls, `promises.${name}`))
}

// ---- GC
new PerformanceObserver(list => {
  for (const e of list.getEntries()) gcMs += e.duration
}).observe({ entryTypes: ['gc'] })

function snapshot (): ProbeSnapshot {
  const elu = performance.eventLoopUtilization()
  return {
    seq: ++seq,
    at: Number(process.hrtime.bigint() / 1000n),
    fuse,
    sql,
    // Each transaction begins with a BEGIN statement (better-sqlite3 runs it like any
    // other); transaction functions themselves are made once per connection (src/meta/db.ts).
    transactions: Object.entries(sql).reduce((n, [key, c]) => key.startsWith('run BEGIN') ? n + c.n : n, 0),
    hash,
    fs: fsCalls,
    loop: { activeMs: elu.active, idleMs: elu.idle },
    gcMs
  }
}

if (out !== undefined && out !== '') {
  process.on('SIGUSR2', () => {
    try {
      writeFileSync(`${out}.tmp`, JSON.stringify(snapshot()))
      renameSync(`${out}.tmp`, out)
    } catch (err) {
      process.stderr.write(`bench probe: ${err instanceof Error ? err.message : String(err)}\n`)
    }
  })
}
