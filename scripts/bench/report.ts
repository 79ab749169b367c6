// The bench's table: each value, bucketfs's ratio to the raw disk and to bindfs,
// and whether issue 5's figure is reached.
import type { Figure, Row } from './workload'

export interface Verdict { ratioRaw?: number, ratioBindfs?: number, figure: string, met?: boolean }

function ratio (a: number | undefined, b: number | undefined): number | undefined {
  if (a === undefined || b === undefined || !Number.isFinite(a) || !Number.isFinite(b) || b === 0) return undefined
  return a / b
}

export function describeFigure (f: Figure | undefined, unit: string): string {
  if (f === undefined) return '—'
  if ('max' in f) return `≤ ${f.max} ${unit}`
  if ('minRatio' in f) return `≥ ${f.minRatio}× ${f.vs}`
  return `≤ ${f.maxRatio}× ${f.vs}`
}

export function verdict (row: Row): Verdict {
  const b = row.values.bucketfs
  const ratioRaw = ratio(b, row.values.raw)
  const ratioBindfs = ratio(b, row.values.bindfs)
  const f = row.figure
  let met: boolean | undefined
  if (f !== undefined && b !== undefined && Number.isFinite(b)) {
    if ('max' in f) {
      met = b <= f.max
    } else {
      const r = f.vs === 'raw' ? ratioRaw : ratioBindfs
      if (r !== undefined) met = 'minRatio' in f ? r >= f.minRatio : r <= f.maxRatio
    }
  }
  return { ratioRaw, ratioBindfs, figure: describeFigure(f, row.unit), met }
}

/** 3 significant digits below 100, whole numbers with thousands separators above. */
export function fmt (x: number | undefined): string {
  if (x === undefined) return '—'
  if (!Number.isFinite(x)) return 'n/a'
  if (Math.abs(x) >= 100) return Math.round(x).toLocaleString('en-US')
  return Number(x.toPrecision(3)).toString()
}

const fmtRatio = (r: number | undefined): string => r === undefined ? '—' : `${fmt(r)}×`

export function table (rows: Row[]): string {
  const head = ['workload', 'unit', 'raw', 'bindfs', 'bucketfs', 'b/raw', 'b/bindfs', 'figure', 'met', 'load']
  const body = rows.map(r => {
    const v = verdict(r)
    return [
      r.workload, r.unit, fmt(r.values.raw), fmt(r.values.bindfs),
      r.error !== undefined && r.values.bucketfs === undefined ? 'error' : fmt(r.values.bucketfs),
      fmtRatio(v.ratioRaw), fmtRatio(v.ratioBindfs), v.figure,
      v.met === undefined ? '—' : v.met ? 'yes' : 'NO',
      r.load === undefined ? '' : r.load.toFixed(2)
    ]
  })
  const widths = head.map((h, i) => Math.max(h.length, ...body.map(b => b[i].length)))
  const line = (cells: string[]): string => cells.map((c, i) => i <= 1 || i === 7 ? c.padEnd(widths[i]) : c.padStart(widths[i])).join('  ').trimEnd()
  return [line(head), widths.map(w => '-'.repeat(w)).join('  '), ...body.map(line)].join('\n')
}

/** One line per row with its details and the daemons' CPU time. */
export function details (rows: Row[]): string {
  const out: string[] = []
  for (const r of rows) {
    out.push(`${r.workload}: ${r.title}`)
    for (const [target, d] of Object.entries(r.detail)) {
      const cpu = r.daemonCpu[target as keyof Row['daemonCpu']]
      const secs = r.seconds[target as keyof Row['seconds']]
      const parts = Object.entries(d ?? {}).map(([k, v]) => `${k}=${typeof v === 'number' ? fmt(v) : v}`)
      if (secs !== undefined) parts.push(`wall=${fmt(secs)}s`)
      if (cpu !== undefined && Object.keys(cpu).length > 0) {
        parts.push('daemon cpu s: ' + Object.entries(cpu).sort((a, b) => b[1] - a[1]).map(([k, v]) => `${k} ${v}`).join(', '))
      }
      out.push(`  ${target.padEnd(8)} ${parts.join('  ')}`)
    }
    if (r.error !== undefined) out.push(`  error: ${r.error}`)
  }
  return out.join('\n')
}
