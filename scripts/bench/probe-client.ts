// The bench's side of scripts/bench/probe.ts: asking the daemon for a snapshot of its
// counters (SIGUSR2) and turning two snapshots into what happened in between.
import fs from 'node:fs'
import type { ProbeSnapshot } from './probe'
import { waitFor } from './proc'

/** Asks the daemon for a snapshot newer than `last`; undefined if none comes within 10 s. */
export async function probeSnapshot (pid: number, file: string, last: number): Promise<ProbeSnapshot | undefined> {
  process.kill(pid, 'SIGUSR2')
  let snap: ProbeSnapshot | undefined
  await waitFor(() => {
    try {
      const s = JSON.parse(fs.readFileSync(file, 'utf8')) as ProbeSnapshot
      if (s.seq > last) snap = s
    } catch {}
    return snap !== undefined
  }, 10_000, 5)
  return snap
}

interface Count { n: number, ms: number, errors?: number, bytes?: number }
type Counters = Record<string, Count>

/** What the daemon did during one workload. */
export interface ProbeDelta {
  fuseOps: Counters
  fuseOpsTotal: number
  sqlStatements: number
  transactions: number
  sqlTop: Counters
  hash: Counters
  fs: Counters
  eventLoopUtilization: number
  gcMs: number
}

function diffCounters (a: Counters, b: Counters, topN: number): Counters {
  const rows = Object.entries(b).map(([k, v]) => {
    const before = a[k]
    const d: Count = { n: v.n - (before?.n ?? 0), ms: Math.round((v.ms - (before?.ms ?? 0)) * 10) / 10 }
    if (v.errors !== undefined) d.errors = v.errors - (before?.errors ?? 0)
    if (v.bytes !== undefined) d.bytes = v.bytes - (before?.bytes ?? 0)
    return [k, d] as const
  }).filter(([, d]) => d.n > 0).sort((x, y) => y[1].n - x[1].n).slice(0, topN)
  return Object.fromEntries(rows)
}

export function diffProbe (a: ProbeSnapshot, b: ProbeSnapshot): ProbeDelta {
  const fuseOps = diffCounters(a.fuse, b.fuse, 100)
  const sql = diffCounters(a.sql, b.sql, 25)
  const statements = Object.entries(b.sql).reduce((n, [k, v]) => n + v.n - (a.sql[k]?.n ?? 0), 0)
  const active = b.loop.activeMs - a.loop.activeMs
  const idle = b.loop.idleMs - a.loop.idleMs
  return {
    fuseOps,
    fuseOpsTotal: Object.values(fuseOps).reduce((n, v) => n + v.n, 0),
    sqlStatements: statements,
    transactions: b.transactions - a.transactions,
    sqlTop: sql,
    hash: diffCounters(a.hash, b.hash, 10),
    fs: diffCounters(a.fs, b.fs, 20),
    eventLoopUtilization: active + idle > 0 ? Math.round(active / (active + idle) * 1000) / 1000 : 0,
    gcMs: Math.round(b.gcMs - a.gcMs)
  }
}


/** A few lines for the terminal. */
export function formatProbe (p: ProbeDelta): string {
  const list = (c: Counters): string => Object.entries(c)
    .map(([k, v]) => `${k} ${v.n}${v.errors !== undefined && v.errors > 0 ? ` (${v.errors} failed)` : ''} ${Math.round(v.ms)} ms`).join(', ')
  const lines = [
    `  FUSE ops: ${p.fuseOpsTotal} — ${list(p.fuseOps)} (ms: time inside the daemon)`,
    `  SQL: ${p.sqlStatements} statements in ${p.transactions} transactions; event-loop utilisation ${p.eventLoopUtilization}, GC ${p.gcMs} ms`
  ]
  for (const [sql, v] of Object.entries(p.sqlTop).slice(0, 8)) lines.push(`    ${String(v.n).padStart(8)} ${String(Math.round(v.ms)).padStart(6)} ms  ${sql.slice(0, 100)}`)
  if (Object.keys(p.hash).length > 0) {
    lines.push('  hashing: ' + Object.entries(p.hash).map(([k, v]) => `${k} ${Math.round((v.bytes ?? 0) / 1e6)} MB in ${Math.round(v.ms)} ms`).join(', '))
  }
  if (Object.keys(p.fs).length > 0) lines.push(`  fs calls: ${Object.entries(p.fs).map(([k, v]) => `${k} ${v.n}`).join(', ')}`)
  return lines.join('\n')
}
