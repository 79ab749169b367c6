// npm run bench [-- --quick] [--only a,b] [--skip-million] [--json PATH] …
//
// Runs issue 5's workloads on the raw disk, on a bindfs passthrough mount and on a
// bucketfs mount, in that order for each workload, in one run; prints each value with
// bucketfs's ratio to the other two and issue 5's figure, and writes the results as
// JSON (results/bench-<date>.json unless --json). Then the bucketfs-only measurements:
// peak daemon RSS during a 4 GiB write, and a 1,000,000-key bucket (listing, stat,
// mount start-up). Everything it mounts is unmounted, even on failure or Ctrl-C.
import { execFileSync } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import yargs from 'yargs'
import { hideBin } from 'yargs/helpers'
import { Cleanup } from './cleanup'
import { REPO, startBindfs, startBucketfs, type Daemon } from './daemons'
import { makeTree, randomFile } from './fixtures'
import { alive, cmd, cpuDelta, have, isRoot, loadAvg, monoMicros, mountsUnder, nowMs, statusKiB, threadCpu } from './proc'
import { diffProbe, formatProbe, probeSnapshot } from './probe-client'
import { formatSummary, readProfile, summarize, type ProfileSummary } from './profile'
import { details, fmt, table, verdict } from './report'
import { Strace } from './strace'
import { randwrite, seqread, seqwrite } from './workloads/data'
import { millionRows } from './workloads/million'
import { rssRow } from './workloads/rss'
import { rename, rmrf, rsync, stat, untar } from './workloads/tree'
import { FULL, QUICK, TARGET_NAMES, median, type Context, type Row, type Target, type TargetName, type Workload } from './workload'

const WORKLOADS: Workload[] = [seqwrite, seqread, randwrite, untar, stat, rsync, rename, rmrf]
const SPECIAL = ['rss', 'million'] as const
const ALIASES: Record<string, string> = { list10k: 'million', statkey: 'million', startup: 'million' }
const ALL = [...WORKLOADS.map(w => w.name), ...SPECIAL]

interface Args {
  quick: boolean
  only?: string
  skipMillion: boolean
  json?: string
  work?: string
  keep: boolean
  targets: string
  cpuProf?: string
  probe: boolean
  strace: boolean
  millionStore?: string
  rounds?: number
}

function parseArgs (): Args {
  return yargs(hideBin(process.argv))
    .scriptName('npm run bench --')
    .usage('$0 [options]\n\nbucketfs against the raw disk and bindfs (issue 5).')
    .option('quick', { type: 'boolean', default: false, describe: 'smoke sizes: 64 MiB files, a 500-file tree, a 10,000-key bucket' })
    .option('only', { type: 'string', describe: `comma-separated workloads: ${ALL.join(', ')}` })
    .option('skip-million', { type: 'boolean', default: false, describe: 'leave out the 1,000,000-key bucket' })
    .option('json', { type: 'string', describe: 'where to write the results (default results/bench-<date>.json)' })
    .option('work', { type: 'string', describe: 'work directory (default a fresh one under the temp dir); fixtures in it are reused' })
    .option('keep', { type: 'boolean', default: false, describe: 'keep the work directory' })
    .option('targets', { type: 'string', default: TARGET_NAMES.join(','), describe: 'which of raw,bindfs,bucketfs to run' })
    .option('cpu-prof', { type: 'string', describe: 'run the bucketfs daemon under node --cpu-prof, write profiles here and summarise each workload' })
    .option('probe', { type: 'boolean', default: false, describe: 'count FUSE ops, SQL statements, hashing and fs calls in the daemon per workload (slows it)' })
    .option('strace', { type: 'boolean', default: false, describe: 'count the daemon\'s system calls per workload with strace -c -f (slows it)' })
    .option('million-store', { type: 'string', describe: 'data dir for the big bucket, reused if it already holds it' })
    .option('rounds', {
      type: 'number',
      describe: 'run each workload this many times on every target, the targets taking turns, and report the medians ' +
        '(default 3, 1 with --quick): this VM\'s disk varies by half between runs, and a fresh daemon\'s first round ' +
        'of a workload runs before V8 has optimized its code'
    })
    .strict()
    .help()
    .parseSync() as unknown as Args
}

function selected (args: Args): Set<string> {
  if (args.only === undefined) return new Set(args.skipMillion ? ALL.filter(n => n !== 'million') : ALL)
  const names = args.only.split(',').map(s => s.trim()).filter(s => s !== '').map(s => ALIASES[s] ?? s)
  const unknown = names.filter(n => !ALL.includes(n))
  if (unknown.length > 0) throw new Error(`unknown workload ${unknown.join(', ')}; known: ${ALL.join(', ')}`)
  return new Set(names.filter(n => !(args.skipMillion && n === 'million')))
}

async function ensureTools (): Promise<void> {
  // rsync is a workload like fio, and a fresh Debian machine has neither.
  const missing = ['bindfs', 'fio', 'rsync'].filter(p => !have(p))
  if (missing.length > 0) {
    if (!isRoot()) throw new Error(`${missing.join(', ')} missing: install them (apt-get install ${missing.join(' ')}) or run as root`)
    process.stderr.write(`installing ${missing.join(' ')} with apt-get\n`)
    const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' }
    await cmd('apt-get', ['update'], { env })
    await cmd('apt-get', ['install', '-y', '--no-install-recommends', ...missing], { env })
  }
  for (const p of ['dd', 'tar', 'fusermount', 'sync']) {
    if (!have(p)) throw new Error(`${p} is needed`)
  }
  if (!fs.existsSync('/dev/fuse')) throw new Error('/dev/fuse is missing: FUSE is not available here')
  if (!fs.existsSync(path.join(REPO, 'dist', 'src', 'cli', 'main.js'))) throw new Error('bucketfs is not built (npm run build)')
}

function version (file: string, args: string[]): string {
  try {
    return execFileSync(file, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).split('\n')[0].trim()
  } catch {
    return 'unknown'
  }
}

// ---- running

interface Running {
  ctx: Context
  targets: Target[]
  daemons: Partial<Record<TargetName, Daemon>>
  probeFile?: string
  /** The last probe snapshot's sequence number. */
  probeSeq: number
  /** Where strace -c writes its summaries (--strace). */
  straceDir?: string
}

async function runWorkload (w: Workload, r: Running, rounds: number): Promise<Row> {
  const row: Row = { workload: w.name, title: w.title, unit: w.unit, better: w.better, figure: w.figure, values: {}, detail: {}, daemonCpu: {}, seconds: {} }
  const errors: string[] = []
  const samples: Partial<Record<TargetName, number[]>> = {}
  const failed = new Set<TargetName>()
  // Rounds take turns across the targets, so a slow spell of the disk is shared out.
  // The value is the rounds' median; everything else (wall time, daemon CPU, probe,
  // strace, the profile window, the detail beside `rounds`) is the last round's.
  for (let round = 1; round <= rounds; round++) {
    for (const t of r.targets) {
      if (failed.has(t.name)) continue
      process.stderr.write(`  ${w.name} on ${t.name}${rounds > 1 ? ` (round ${round} of ${rounds})` : ''}…`)
      try {
        await w.prepare?.(r.ctx, t)
        await cmd('sync', [])
        const probe = t.name === 'bucketfs' && r.probeFile !== undefined && t.pid !== undefined
          ? await probeSnapshot(t.pid, r.probeFile, r.probeSeq)
          : undefined
        if (probe !== undefined) r.probeSeq = probe.seq
        if (t.name === 'bucketfs') row.load = loadAvg()[0]
        const tracer = t.name === 'bucketfs' && r.straceDir !== undefined && t.pid !== undefined
          ? await Strace.attach(t.pid, path.join(r.straceDir, `${w.name}.strace`))
          : undefined
        const cpuBefore = t.pid === undefined ? {} : threadCpu(t.pid)
        const from = monoMicros()
        const started = nowMs()
        const sample = await w.run(r.ctx, t)
        const secs = (nowMs() - started) / 1000
        const to = monoMicros()
        if (t.pid !== undefined) row.daemonCpu[t.name] = cpuDelta(cpuBefore, threadCpu(t.pid))
        if (tracer !== undefined) row.strace = await tracer.detach()
        if (t.name === 'bucketfs') row.window = { from, to }
        if (probe !== undefined && t.pid !== undefined && r.probeFile !== undefined) {
          const after = await probeSnapshot(t.pid, r.probeFile, probe.seq)
          if (after !== undefined) {
            r.probeSeq = after.seq
            row.probe = diffProbe(probe, after)
          }
        }
        const values = samples[t.name] ??= []
        values.push(sample.value)
        row.values[t.name] = median(values)
        row.seconds[t.name] = secs
        row.detail[t.name] = rounds > 1 ? { ...sample.detail, rounds: values.map(v => String(Number(v.toPrecision(4)))).join(' ') } : sample.detail ?? {}
        await w.finish?.(r.ctx, t)
        process.stderr.write(` ${fmt(sample.value)} ${w.unit}\n`)
      } catch (err) {
        const message = err instanceof Error ? err.message : String(err)
        errors.push(`${t.name}: ${message}`)
        failed.add(t.name)
        delete row.values[t.name] // (no median of the rounds before it: the target failed)
        process.stderr.write(` failed: ${message}\n`)
        if (t.pid !== undefined && !alive(t.pid)) throw new Error(`the ${t.name} daemon died during ${w.name}: ${message}`)
      }
    }
  }
  if (errors.length > 0) row.error = errors.join('; ')
  return row
}

function dateStamp (): string {
  return new Date().toISOString().replace(/:/g, '').replace(/\..*$/, '')
}

async function main (): Promise<number> {
  const args = parseArgs()
  const chosen = selected(args)
  const targetNames = args.targets.split(',').map(s => s.trim()) as TargetName[]
  for (const n of targetNames) if (!TARGET_NAMES.includes(n)) throw new Error(`unknown target ${n}`)
  const rounds = args.rounds ?? (args.quick ? 1 : 3)
  if (!Number.isInteger(rounds) || rounds < 1) throw new Error(`--rounds takes a whole number from 1, not ${rounds}`)
  await ensureTools()
  const sizes = args.quick ? QUICK : FULL
  const cleanup = new Cleanup()
  const work = path.resolve(args.work ?? path.join(os.tmpdir(), `bucketfs-bench-${process.pid}`))
  const fresh = args.work === undefined
  const runDir = path.join(work, `run-${process.pid}`)
  fs.mkdirSync(runDir, { recursive: true })
  const logs = path.join(runDir, 'logs')
  fs.mkdirSync(logs, { recursive: true })
  if (!args.keep) {
    const remove = (): void => {
      const dir = fresh ? work : runDir
      // Never recurse into a mount that failed to go away.
      if (mountsUnder(dir).length > 0) {
        process.stderr.write(`bench: still mounted under ${dir}: ${mountsUnder(dir).join(', ')}; leaving it\n`)
        return
      }
      fs.rmSync(dir, { recursive: true, force: true })
    }
    cleanup.add('work directory', async () => { remove() }, remove)
  }
  const loadStart = loadAvg()
  const startedAt = new Date()
  const rows: Row[] = []
  const profiles: Record<string, ProfileSummary> = {}
  const notes: string[] = []
  try {
    const fixtures = path.join(work, 'fixtures')
    fs.mkdirSync(fixtures, { recursive: true })
    process.stderr.write(`work directory ${work}\nload average ${loadStart.join(' ')} on ${os.cpus().length} CPUs\n`)
    const perTarget = WORKLOADS.filter(w => chosen.has(w.name))
    const ctx: Context = {
      sizes,
      work,
      randomFile: path.join(fixtures, `random-${sizes.seqBytes}.bin`),
      tree: { dir: '', tar: '', files: 0, dirs: 0, bytes: 0 },
      canDropCaches: isRoot()
    }
    if (!ctx.canDropCaches) notes.push('not root: caches could not be dropped, "cold" reads are warm')
    if (perTarget.length > 0) {
      process.stderr.write('making fixtures…\n')
      randomFile(ctx.randomFile, sizes.seqBytes)
      ctx.tree = await makeTree(fixtures, sizes.treeFiles)
    }

    const needs = (t: TargetName): boolean => targetNames.includes(t) && perTarget.length > 0
    const daemons: Partial<Record<TargetName, Daemon>> = {}
    const targets: Target[] = []
    const probeFile = args.probe ? path.join(runDir, 'probe.json') : undefined
    const cpuProfMain = args.cpuProf === undefined ? undefined : path.join(path.resolve(args.cpuProf), `main-${process.pid}`)
    if (needs('raw')) {
      const dir = path.join(runDir, 'raw')
      fs.mkdirSync(dir)
      targets.push({ name: 'raw', dir })
    }
    if (needs('bindfs')) {
      const d = await startBindfs(path.join(runDir, 'bindfs-src'), path.join(runDir, 'bindfs-mnt'), path.join(logs, 'bindfs.log'), cleanup)
      daemons.bindfs = d
      targets.push({ name: 'bindfs', dir: d.mountpoint, pid: d.pid })
    }
    if (needs('bucketfs')) {
      const d = await startBucketfs({
        dataDir: path.join(runDir, 'bucketfs-data'),
        mountpoint: path.join(runDir, 'bucketfs-mnt'),
        logFile: path.join(logs, 'bucketfs.log'),
        cpuProfDir: cpuProfMain,
        probeFile
      }, cleanup)
      daemons.bucketfs = d
      const dir = path.join(d.mountpoint, 'bench')
      fs.mkdirSync(dir)
      targets.push({ name: 'bucketfs', dir, pid: d.pid })
    }
    const straceDir = args.strace ? path.join(runDir, 'strace') : undefined
    if (straceDir !== undefined) {
      if (!have('strace')) throw new Error('--strace needs strace')
      fs.mkdirSync(straceDir)
    }
    const running: Running = { ctx, targets, daemons, probeFile, probeSeq: 0, straceDir }

    for (const w of perTarget) {
      process.stderr.write(`${w.name}: ${w.title}\n`)
      rows.push(await runWorkload(w, running, rounds))
    }
    // The main daemon's memory after every workload (it does not give memory back).
    const mainPid = daemons.bucketfs?.pid
    const mainRss = mainPid === undefined ? undefined : statusKiB(mainPid, 'VmRSS')
    const mainHwm = mainPid === undefined ? undefined : statusKiB(mainPid, 'VmHWM')
    if (mainRss !== undefined && mainHwm !== undefined) {
      notes.push(`the bucketfs daemon that ran the workloads above: RSS ${Math.round(mainRss / 1024)} MiB, peak ${Math.round(mainHwm / 1024)} MiB`)
    }
    // Stop the main mounts before the bucketfs-only measurements, so they do not compete.
    for (const d of Object.values(daemons)) await d.stop()
    if (chosen.has('rss') && targetNames.includes('bucketfs')) {
      process.stderr.write(`rss: peak daemon RSS during a ${sizes.rssBytes / 2 ** 30} GiB write, on a fresh mount…\n`)
      try {
        const d = await startBucketfs({
          dataDir: path.join(runDir, 'rss-data'),
          mountpoint: path.join(runDir, 'rss-mnt'),
          logFile: path.join(logs, 'bucketfs-rss.log'),
          cpuProfDir: args.cpuProf === undefined ? undefined : path.join(path.resolve(args.cpuProf), `rss-${process.pid}`)
        }, cleanup)
        let row: Row
        try {
          const dir = path.join(d.mountpoint, 'bench')
          fs.mkdirSync(dir)
          row = await rssRow(ctx, { name: 'bucketfs', dir, pid: d.pid })
        } finally {
          await d.stop()
          fs.rmSync(path.join(runDir, 'rss-data'), { recursive: true, force: true })
        }
        row.load = loadAvg()[0]
        rows.push(row)
        process.stderr.write(`  ${fmt(row.values.bucketfs)} MiB\n`)
      } catch (err) {
        rows.push({ workload: 'rss', title: 'daemon peak RSS', unit: 'MiB', better: 'lower', figure: { max: 300 }, values: {}, detail: {}, daemonCpu: {}, seconds: {}, error: err instanceof Error ? err.message : String(err) })
      }
    }
    if (cpuProfMain !== undefined) summariseProfiles(cpuProfMain, rows.filter(r => r.workload !== 'rss'), profiles, notes)
    if (args.cpuProf !== undefined) summariseProfiles(path.join(path.resolve(args.cpuProf), `rss-${process.pid}`), rows.filter(r => r.workload === 'rss'), profiles, notes)

    if (chosen.has('million') && targetNames.includes('bucketfs')) {
      process.stderr.write(`million: a ${sizes.bucketKeys}-key bucket…\n`)
      const dataDir = path.resolve(args.millionStore ?? path.join(runDir, 'million-data'))
      const load = loadAvg()[0]
      try {
        const got = await millionRows(ctx, {
          dataDir,
          mountpoint: path.join(runDir, 'million-mnt'),
          logFile: path.join(logs, 'bucketfs-million.log'),
          cleanup,
          cpuProfDir: args.cpuProf === undefined ? undefined : path.join(path.resolve(args.cpuProf), `million-${process.pid}`)
        })
        for (const r of got) r.load = load
        rows.push(...got)
      } catch (err) {
        rows.push({ workload: 'million', title: 'the 1,000,000-key bucket', unit: 'ms', better: 'lower', values: {}, detail: {}, daemonCpu: {}, seconds: {}, error: err instanceof Error ? err.message : String(err) })
      }
    }
  } finally {
    await cleanup.run()
  }

  const loadEnd = loadAvg()
  process.stdout.write('\n' + table(rows) + '\n\n' + details(rows) + '\n')
  for (const [name, s] of Object.entries(profiles)) process.stdout.write(`\nbucketfs daemon profile during ${name}:\n${formatSummary(s)}\n`)
  for (const row of rows) {
    if (row.probe !== undefined) process.stdout.write(`\nbucketfs daemon counters during ${row.workload}:\n${formatProbe(row.probe)}\n`)
    if (row.strace !== undefined) process.stdout.write(`\nbucketfs daemon system calls during ${row.workload}: ${JSON.stringify(row.strace)}\n`)
  }
  process.stdout.write(`\nload average at start ${loadStart.join(' ')}, at end ${loadEnd.join(' ')} (${os.cpus().length} CPUs)\n`)
  for (const n of notes) process.stdout.write(`note: ${n}\n`)

  const jsonFile = path.resolve(args.json ?? path.join(REPO, 'results', `bench-${dateStamp()}.json`))
  fs.mkdirSync(path.dirname(jsonFile), { recursive: true })
  const result = {
    startedAt: startedAt.toISOString(),
    finishedAt: new Date().toISOString(),
    quick: args.quick,
    rounds,
    host: {
      cpus: os.cpus().length,
      cpuModel: os.cpus()[0]?.model ?? 'unknown',
      memoryGiB: Math.round(os.totalmem() / 2 ** 30),
      kernel: os.release(),
      node: process.version,
      bindfs: version('bindfs', ['--version']),
      fio: version('fio', ['--version']),
      commit: version('git', ['-C', REPO, 'rev-parse', '--short', 'HEAD']),
      loadAverageStart: loadStart,
      loadAverageEnd: loadEnd
    },
    sizes,
    notes,
    rows: rows.map(r => ({ ...r, ...verdict(r) })),
    profiles
  }
  fs.writeFileSync(jsonFile, JSON.stringify(result, null, 2) + '\n')
  process.stdout.write(`results written to ${jsonFile}\n`)
  return rows.some(r => r.error !== undefined) ? 1 : 0
}

/** Cuts the newest CPU profile in `dir` into each row's window. */
function summariseProfiles (dir: string, rows: Row[], into: Record<string, ProfileSummary>, notes: string[]): void {
  const file = newestProfile(dir)
  if (file === undefined) return
  process.stderr.write(`summarising ${file}\n`)
  const prof = readProfile(file)
  for (const row of rows) if (row.window !== undefined) into[row.workload] = summarize(prof, row.window.from, row.window.to)
  notes.push(`daemon CPU profile: ${file}`)
}

function newestProfile (dir: string): string | undefined {
  let files: string[]
  try {
    files = fs.readdirSync(dir).filter(f => f.endsWith('.cpuprofile'))
  } catch {
    return undefined
  }
  return files.map(f => path.join(dir, f)).sort((a, b) => fs.statSync(b).mtimeMs - fs.statSync(a).mtimeMs)[0]
}

main().then(code => {
  process.exitCode = code
}, (err: unknown) => {
  process.stderr.write(`bench: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`)
  process.exitCode = 1
})
