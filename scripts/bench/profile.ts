// Reading a V8 .cpuprofile of the daemon (node --cpu-prof): self and inclusive time
// per function and per layer, within a time window (a workload's run, in
// CLOCK_MONOTONIC µs, the clock of the profile's timestamps).
// Also a command: node dist/scripts/bench/profile.js FILE.cpuprofile [FROM_US TO_US]
import fs from 'node:fs'

interface CallFrame { functionName: string, url: string, lineNumber: number }
interface ProfileNode { id: number, callFrame: CallFrame, children?: number[] }
interface CpuProfile { nodes: ProfileNode[], startTime: number, endTime: number, samples: number[], timeDeltas: number[] }

export interface FunctionTime { fn: string, ms: number, pct: number }
export interface ProfileSummary {
  /** ms covered by samples in the window */
  totalMs: number
  /** ms the main thread was idle (waiting in the event loop) */
  idleMs: number
  gcMs: number
  self: FunctionTime[]
  /** inclusive time of bucketfs's own functions (dist/src) */
  inclusive: FunctionTime[]
  /** self time per layer: src/<dir>, node:<module>, node_modules/<pkg>, native, (gc)… */
  layers: FunctionTime[]
}

const round = (x: number): number => Math.round(x * 10) / 10

function shortUrl (url: string): string {
  const src = url.indexOf('/dist/')
  if (src >= 0) return url.slice(src + '/dist/'.length)
  const nm = url.lastIndexOf('/node_modules/')
  if (nm >= 0) return url.slice(nm + '/node_modules/'.length)
  return url.replace(/^file:\/\//, '')
}

function label (f: CallFrame): string {
  const name = f.functionName === '' ? '(anonymous)' : f.functionName
  if (f.url === '') return name
  return `${name} ${shortUrl(f.url)}:${f.lineNumber + 1}`
}

function layer (f: CallFrame): string {
  if (f.url === '') return f.functionName.startsWith('(') ? f.functionName : 'native (V8 builtins, addons)'
  const u = shortUrl(f.url)
  if (u.startsWith('src/')) return u.split('/').slice(0, 2).join('/')
  if (u.startsWith('node:')) return u.split('/')[0].replace(/^node:internal$/, 'node:internal')
  if (f.url.includes('/node_modules/')) return `node_modules/${u.split('/')[0]}`
  return u
}

function top (m: Map<string, number>, totalMs: number, n: number): FunctionTime[] {
  return [...m.entries()].sort((a, b) => b[1] - a[1]).slice(0, n)
    .map(([fn, us]) => ({ fn, ms: round(us / 1000), pct: totalMs > 0 ? round(us / 10 / totalMs) : 0 }))
}

export function readProfile (file: string): CpuProfile {
  return JSON.parse(fs.readFileSync(file, 'utf8')) as CpuProfile
}

/** Summarises the samples whose time falls in [from, to) (µs, CLOCK_MONOTONIC); the whole profile by default. */
export function summarize (p: CpuProfile, from = -Infinity, to = Infinity, n = 15): ProfileSummary {
  const byId = new Map<number, ProfileNode>()
  const parent = new Map<number, number>()
  for (const node of p.nodes) {
    byId.set(node.id, node)
    for (const c of node.children ?? []) parent.set(c, node.id)
  }
  const self = new Map<string, number>()
  const inclusive = new Map<string, number>()
  const layers = new Map<string, number>()
  let total = 0
  let idle = 0
  let gc = 0
  let t = p.startTime
  for (let i = 0; i < p.samples.length; i++) {
    t += p.timeDeltas[i]
    if (t < from || t >= to) continue
    // A sample stands for the time until the next one.
    const dt = i + 1 < p.timeDeltas.length ? p.timeDeltas[i + 1] : 0
    const node = byId.get(p.samples[i])
    if (node === undefined || dt <= 0) continue
    total += dt
    const f = node.callFrame
    if (f.functionName === '(idle)') { idle += dt; continue }
    if (f.functionName === '(garbage collector)') gc += dt
    const key = label(f)
    self.set(key, (self.get(key) ?? 0) + dt)
    const l = layer(f)
    layers.set(l, (layers.get(l) ?? 0) + dt)
    const seen = new Set<string>()
    for (let id: number | undefined = node.id; id !== undefined; id = parent.get(id)) {
      const cf = byId.get(id)?.callFrame
      if (cf === undefined || !shortUrl(cf.url).startsWith('src/')) continue
      const k = label(cf)
      if (seen.has(k)) continue
      seen.add(k)
      inclusive.set(k, (inclusive.get(k) ?? 0) + dt)
    }
  }
  const totalMs = total / 1000
  const busy = totalMs - idle / 1000
  return {
    totalMs: round(totalMs),
    idleMs: round(idle / 1000),
    gcMs: round(gc / 1000),
    // percentages of the busy (non-idle) time
    self: top(self, busy, n),
    inclusive: top(inclusive, busy, n),
    layers: top(layers, busy, n)
  }
}

export function formatSummary (s: ProfileSummary): string {
  const lines = [`  main thread: ${s.totalMs} ms sampled, ${s.idleMs} ms idle, ${round(s.totalMs - s.idleMs)} ms busy (${s.gcMs} ms GC)`]
  const table = (title: string, rows: FunctionTime[]): void => {
    lines.push(`  ${title}:`)
    for (const r of rows) lines.push(`    ${String(r.ms).padStart(9)} ms ${String(r.pct).padStart(5)}%  ${r.fn}`)
  }
  table('self time by layer (% of busy)', s.layers)
  table('top self time', s.self)
  table('inclusive time, bucketfs functions', s.inclusive)
  return lines.join('\n')
}

if (require.main === module) {
  const [file, from, to] = process.argv.slice(2)
  if (file === undefined) {
    process.stderr.write('usage: node dist/scripts/bench/profile.js FILE.cpuprofile [FROM_US TO_US]\n')
    process.exit(2)
  }
  const s = summarize(readProfile(file), from === undefined ? -Infinity : Number(from), to === undefined ? Infinity : Number(to), 25)
  process.stdout.write(formatSummary(s) + '\n')
}
