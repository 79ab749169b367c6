// `npm run bench` in its smoke size: two workloads on all three targets (raw disk,
// bindfs, bucketfs) produce a number each in the JSON. Speed is never asserted here.
import t from 'tap'
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import fs from 'node:fs'
import path from 'node:path'

const ROOT = path.resolve(__dirname, '..')
const BENCH = path.join(ROOT, 'dist', 'scripts', 'bench', 'main.js')

interface JsonRow { workload: string, values: Record<string, unknown>, error?: string }

const why = !fs.existsSync('/dev/fuse')
  ? 'no /dev/fuse'
  : !fs.existsSync(BENCH) ? 'the bench is not built (npm run build)' : undefined

/** Runs the bench with args (its JSON to dir/bench.json, its work in dir/work): exit code, output and the JSON's path. */
async function bench (dir: string, args: string[]): Promise<{ code: number | null, output: string, json: string }> {
  const json = path.join(dir, 'bench.json')
  const env = { ...process.env }
  delete env.DEBUG
  const child = spawn(process.execPath, [BENCH, ...args, '--json', json, '--work', path.join(dir, 'work')],
    { env, stdio: ['ignore', 'pipe', 'pipe'] })
  let output = ''
  child.stdout.on('data', (b: Buffer) => { output += b.toString() })
  child.stderr.on('data', (b: Buffer) => { output += b.toString() })
  const [code] = await once(child, 'close') as [number | null]
  return { code, output, json }
}

t.test('bench --quick runs seqwrite and untar on raw, bindfs and bucketfs', { skip: why }, async t => {
  const dir = t.testdir()
  const { code, output, json } = await bench(dir, ['--quick', '--only', 'seqwrite,untar', '--skip-million'])
  t.equal(code, 0, 'the bench exits 0', { output: output.slice(-4000) })
  const result = JSON.parse(fs.readFileSync(json, 'utf8')) as { rows: JsonRow[], host: { loadAverageStart: number[] } }
  t.same(result.rows.map(r => r.workload), ['seqwrite', 'untar'], 'one row per chosen workload, in order')
  for (const row of result.rows) {
    t.equal(row.error, undefined, `${row.workload}: no error`)
    for (const target of ['raw', 'bindfs', 'bucketfs']) {
      const v = row.values[target]
      t.ok(typeof v === 'number' && Number.isFinite(v) && v > 0, `${row.workload} on ${target}: a positive number (${String(v)})`)
    }
  }
  t.ok(Array.isArray(result.host.loadAverageStart), 'the load average is recorded')
  const mounts = fs.readFileSync('/proc/mounts', 'utf8')
  t.notOk(mounts.includes(dir), 'nothing left mounted under the test directory')
})

t.test('bench --rounds runs a workload that many times on each target and reports the median', { skip: why }, async t => {
  const { code, output, json } = await bench(t.testdir(), ['--quick', '--only', 'rename', '--targets', 'raw', '--rounds', '3'])
  t.equal(code, 0, 'the bench exits 0', { output: output.slice(-4000) })
  t.equal(output.match(/rename on raw \(round \d of 3\)/g)?.length, 3, 'three rounds on the raw disk')
  const [row] = (JSON.parse(fs.readFileSync(json, 'utf8')) as { rows: Array<JsonRow & { detail: Record<string, { rounds?: string }> }> }).rows
  const rounds = (row.detail.raw.rounds ?? '').split(' ').map(Number)
  t.equal(rounds.length, 3, `each round's value is kept (${row.detail.raw.rounds ?? 'none'})`)
  const middle = [...rounds].sort((a, b) => a - b)[1]
  const value = row.values.raw as number
  t.ok(Math.abs(value - middle) <= middle * 0.001, `the value (${value}) is the middle one of the rounds`)
})
