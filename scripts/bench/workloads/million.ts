// bucketfs only: a bucket of 1,000,000 keys (built through the store API, not the
// mount), in which a 10,000-entry directory is listed and single keys are stat'ed
// through a fresh mount, and the mount's start-up time on that store.
import fs from 'node:fs'
import path from 'node:path'
import { Store } from '../../../src/store'
import type { Cleanup } from '../cleanup'
import { startBucketfs } from '../daemons'
import { nowMs } from '../proc'
import { median, type Context, type Row } from '../workload'

const BUCKET = 'million'
const BATCH = 20_000
const MOUNTS = 3

const pad = (n: number, w: number): string => String(n).padStart(w, '0')

interface Layout { dirs: number, perDir: number, dirName: (i: number) => string, keyName: (i: number, j: number) => string }

function layout (keys: number, perDir: number): Layout {
  const dirs = Math.ceil(keys / perDir)
  const dw = String(dirs - 1).length
  const fw = String(perDir - 1).length
  return { dirs, perDir, dirName: i => `d${pad(i, dw)}`, keyName: (i, j) => `d${pad(i, dw)}/f${pad(j, fw)}` }
}

export interface BuildReport { keys: number, ms: number, reused: boolean, method: string }

/**
 * The store with `keys` keys `dNN/fNNNN` (`perDir` per directory) in bucket `million`.
 * putObject costs a transaction and a chunk lookup per key (~0.4 ms: 7 minutes for a
 * million), so one 100-byte object is put normally and every other key is committed with
 * Store.commitVersion, the step putObject ends with, sharing that object's chunk and part
 * list, BATCH keys per catalog.write transaction, in key order.
 */
export async function buildStore (dataDir: string, keys: number, perDir: number): Promise<BuildReport> {
  const method = `putObject once, then Store.commitVersion sharing its chunk, ${BATCH} keys per catalog.write transaction`
  const store = Store.open(dataDir)
  try {
    const existing = store.listBuckets().some(b => b.name === BUCKET)
    if (existing && store.stats().objects === keys) return { keys, ms: 0, reused: true, method }
    if (existing) throw new Error(`${dataDir} holds a bucket ${BUCKET} of another size: remove it or pass another --million-store`)
    const started = nowMs()
    const l = layout(keys, perDir)
    store.createBucket(BUCKET)
    const first = await store.putObject(BUCKET, l.keyName(0, 0), Buffer.alloc(100, 'b'))
    const row = store.catalog.versionBySeq(first.seq)
    if (row === undefined) throw new Error('the template object vanished')
    const data = store.sharedData(row)
    const fields = store.fieldsFor(l.keyName(0, 0), {})
    const bucket = store.bucketRow(BUCKET)
    let done = 1
    let next = 1 // key index; 0 is the template
    while (done < keys) {
      store.catalog.write(() => {
        for (let n = 0; n < BATCH && done < keys; n++, next++, done++) {
          store.commitVersion(bucket, l.keyName(Math.floor(next / perDir), next % perDir), fields, data)
        }
      })
      if (process.stderr.isTTY) process.stderr.write(`\r  building the ${keys}-key bucket: ${done}`)
    }
    if (process.stderr.isTTY) process.stderr.write('\n')
    return { keys, ms: nowMs() - started, reused: false, method }
  } finally {
    store.close()
  }
}

function timed<T> (fn: () => T): { ms: number, value: T } {
  const started = nowMs()
  const value = fn()
  return { ms: nowMs() - started, value }
}

const round = (x: number): number => Math.round(x * 100) / 100

export interface MillionOptions {
  dataDir: string
  mountpoint: string
  logFile: string
  cleanup: Cleanup
  cpuProfDir?: string
}

export async function millionRows (ctx: Context, opts: MillionOptions): Promise<Row[]> {
  const keys = ctx.sizes.bucketKeys
  const perDir = ctx.sizes.dirEntries
  const build = await buildStore(opts.dataDir, keys, perDir)
  const l = layout(keys, perDir)
  const mid = Math.floor(l.dirs / 2)
  const startup: number[] = []
  const mounted: number[] = []
  const detail: Record<string, number | string> = {}
  let listMs = NaN
  let statMs = NaN

  for (let i = 0; i < MOUNTS; i++) {
    const d = await startBucketfs({ dataDir: opts.dataDir, mountpoint: opts.mountpoint, logFile: opts.logFile, cpuProfDir: opts.cpuProfDir }, opts.cleanup)
    try {
      const root = path.join(opts.mountpoint, BUCKET)
      const first = timed(() => fs.statSync(root))
      startup.push(d.mountedMs + first.ms)
      mounted.push(d.mountedMs)
      if (i === 0) {
        // Cold: nothing under the bucket was looked up through this mount before.
        const list = timed(() => fs.readdirSync(path.join(root, l.dirName(mid))))
        if (list.value.length !== perDir) throw new Error(`listed ${list.value.length} entries in ${l.dirName(mid)}, expected ${perDir}`)
        listMs = list.ms
        detail.listWarmMs = round(timed(() => fs.readdirSync(path.join(root, l.dirName(mid)))).ms)
        detail.listAndLstatMs = round(timed(() => {
          const dir = path.join(root, l.dirName(mid))
          for (const name of fs.readdirSync(dir)) fs.lstatSync(path.join(dir, name))
        }).ms)
        // A key in a directory not looked up yet: lookups of the directory and the key.
        const other = (mid + 1) % l.dirs
        statMs = timed(() => fs.statSync(path.join(root, l.keyName(other, Math.floor(perDir / 3))))).ms
        const more: number[] = []
        for (let k = 0; k < 9; k++) {
          const dir = (mid + 2 + k * 7) % l.dirs
          more.push(timed(() => fs.statSync(path.join(root, l.keyName(dir, (k * 977) % perDir)))).ms)
        }
        detail.statMedianOf9Ms = round(median(more))
      }
    } finally {
      const started = nowMs()
      await d.stop()
      detail[`unmount${i + 1}Ms`] = Math.round(nowMs() - started)
    }
  }
  const buildDetail = { keys, buildMs: Math.round(build.ms), reused: build.reused ? 'yes' : 'no', built: build.method }
  const common = { unit: 'ms', better: 'lower' as const, daemonCpu: {}, seconds: {} }
  return [
    {
      workload: 'list10k',
      title: `readdir of a ${perDir}-entry directory in a ${keys}-key bucket, cold`,
      figure: { max: 100 },
      values: { bucketfs: listMs },
      detail: { bucketfs: { ...detail, ...buildDetail } },
      ...common
    },
    {
      workload: 'statkey',
      title: `stat of one key in the ${keys}-key bucket, cold`,
      values: { bucketfs: statMs },
      detail: { bucketfs: { statMedianOf9Ms: detail.statMedianOf9Ms } },
      ...common
    },
    {
      workload: 'startup',
      title: `mount start-up on that store (spawn → first stat answered, median of ${MOUNTS})`,
      figure: { max: 1000 },
      values: { bucketfs: median(startup) },
      detail: { bucketfs: { eachMs: startup.map(Math.round).join(' '), inProcMountsMs: mounted.map(Math.round).join(' ') } },
      ...common
    }
  ]
}
