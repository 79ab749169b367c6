// Big-file workloads: sequential write and cold sequential read with dd, random
// 4 KiB overwrites with fio.
import fs from 'node:fs'
import path from 'node:path'
import { cmd, dropCaches, MiB } from '../proc'
import { randomFile } from '../fixtures'
import type { Context, Sample, Target, Workload } from '../workload'

const seqFile = (t: Target): string => path.join(t.dir, 'seq.bin')
const fioFile = (t: Target): string => path.join(t.dir, 'fio.dat')

const mbPerSec = (bytes: number, ms: number): number => bytes / 1e6 / (ms / 1000)

/** dd's own summary line ("… copied, 2.5 s, 105 MB/s"), for the detail. */
function ddRate (stderr: string): string {
  const line = stderr.trim().split('\n').pop() ?? ''
  return line.split(', ').slice(-1)[0] ?? ''
}

/** Reads a file so that it is in the page cache (a write's source must not be the limit). */
async function warm (file: string): Promise<void> {
  await cmd('dd', [`if=${file}`, 'of=/dev/null', 'bs=4M'])
}

async function writeSeq (ctx: Context, file: string, source = ctx.randomFile): Promise<{ ms: number, dd: string }> {
  const r = await cmd('dd', [`if=${source}`, `of=${file}`, 'bs=1M', `count=${ctx.sizes.seqBytes / MiB}`, 'conv=fsync'])
  return { ms: r.ms, dd: ddRate(r.stderr) }
}

/**
 * What each target's seqwrite writes, round by round: bytes no earlier round wrote. The
 * same bytes again would measure bucketfs's dedupe instead of a write: a chunk it already
 * holds is read back and compared, not written (375 and 404 MB/s for new bytes, 345 and
 * 343 for the same file again, on one mount with caches dropped before each dd).
 */
const seqRounds = new Map<string, { round: number, source: string }>()
function nextSource (ctx: Context, t: Target): string {
  const round = (seqRounds.get(t.name)?.round ?? 0) + 1
  const source = round === 1
    ? ctx.randomFile
    : randomFile(ctx.randomFile.replace(/(\.bin)?$/, `-${round}$1`), ctx.sizes.seqBytes, round)
  seqRounds.set(t.name, { round, source })
  return source
}

export const seqwrite: Workload = {
  name: 'seqwrite',
  title: 'sequential write (dd bs=1M conv=fsync)',
  unit: 'MB/s',
  better: 'higher',
  figure: { vs: 'raw', minRatio: 0.7 },
  prepare: async (ctx, t) => {
    fs.rmSync(seqFile(t), { force: true })
    // Every target starts from the same page cache: on this VM, pages the guest has never
    // used cost far more to fill than recycled ones, and each target's 1 GiB (and the
    // kernel's copy of a FUSE file's pages) grows the cache into such pages. Measured with
    // a bucketfs mount: 250 MB/s, then 136 MB/s for the same dd after two more GiB were
    // cached, and 222 MB/s again after dropping the caches. The previous target's writes
    // are also written back here, not during this one's (dropCaches syncs first).
    const source = nextSource(ctx, t)
    await dropCaches()
    await warm(source)
  },
  run: async (ctx, t): Promise<Sample> => {
    const { ms, dd } = await writeSeq(ctx, seqFile(t), seqRounds.get(t.name)?.source)
    return { value: mbPerSec(ctx.sizes.seqBytes, ms), detail: { ms: Math.round(ms), dd } }
  }
}

export const seqread: Workload = {
  name: 'seqread',
  title: 'sequential read, cold (dd bs=1M)',
  unit: 'MB/s',
  better: 'higher',
  figure: { vs: 'raw', minRatio: 0.5 },
  prepare: async (ctx, t) => {
    let size = -1
    try { size = fs.statSync(seqFile(t)).size } catch {}
    if (size !== ctx.sizes.seqBytes) {
      await warm(ctx.randomFile)
      await writeSeq(ctx, seqFile(t))
    }
  },
  run: async (ctx, t): Promise<Sample> => {
    await dropCaches()
    const r = await cmd('dd', [`if=${seqFile(t)}`, 'of=/dev/null', 'bs=1M'])
    return { value: mbPerSec(ctx.sizes.seqBytes, r.ms), detail: { ms: Math.round(r.ms), dd: ddRate(r.stderr), cold: ctx.canDropCaches ? 'yes' : 'no (not root)' } }
  },
  finish: async (_ctx, t) => { fs.rmSync(seqFile(t), { force: true }) }
}

interface FioJob { write: { iops: number, total_ios: number, runtime: number, io_bytes: number } }
interface FioOutput { jobs: FioJob[] }

export const randwrite: Workload = {
  name: 'randwrite',
  title: 'random 4 KiB overwrites (fio psync, end_fsync)',
  unit: 'IOPS',
  better: 'higher',
  figure: { vs: 'bindfs', minRatio: 0.5 },
  prepare: async (ctx, t) => {
    if (ctx.sizes.fioBytes > ctx.sizes.seqBytes) throw new Error('the random source is smaller than fio\'s file')
    fs.rmSync(fioFile(t), { force: true })
    await cmd('dd', [`if=${ctx.randomFile}`, `of=${fioFile(t)}`, 'bs=1M', `count=${ctx.sizes.fioBytes / MiB}`, 'conv=fsync'])
  },
  run: async (ctx, t): Promise<Sample> => {
    // The file exists at full size, so fio does not lay it out: the whole run is overwrites,
    // then one fsync. The value is I/Os over fio's whole wall time, that fsync included.
    const r = await cmd('fio', [
      '--name=randwrite', `--filename=${fioFile(t)}`, '--rw=randwrite', '--bs=4k', `--size=${ctx.sizes.fioBytes}`,
      '--ioengine=psync', '--runtime=20', '--end_fsync=1', '--randrepeat=1', '--output-format=json'
    ])
    const out = JSON.parse(r.stdout.slice(r.stdout.indexOf('{'))) as FioOutput
    const w = out.jobs[0].write
    return {
      value: w.total_ios / (r.ms / 1000),
      detail: { ios: w.total_ios, wallMs: Math.round(r.ms), fioIops: Math.round(w.iops), fioRuntimeMs: w.runtime }
    }
  },
  finish: async (_ctx, t) => { fs.rmSync(fioFile(t), { force: true }) }
}
