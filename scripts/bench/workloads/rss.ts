// bucketfs only: the daemon's peak resident memory while a 4 GiB file is written
// sequentially through the mount (and fsynced), to show that write buffers are bounded.
import fs from 'node:fs'
import path from 'node:path'
import { cpuDelta, have, MiB, monoMicros, nowMs, resetPeakRss, sh, statusKiB, threadCpu } from '../proc'
import type { Context, Row, Target } from '../workload'

const POLL_MS = 20

/** Non-repeating bytes, fast: AES-CTR over zeros (openssl), else /dev/urandom. */
function source (): string {
  if (have('openssl')) {
    return 'openssl enc -aes-128-ctr -nosalt -K 000102030405060708090a0b0c0d0e0f -iv 0f0e0d0c0b0a09080706050403020100 -in /dev/zero 2>/dev/null'
  }
  return 'cat /dev/urandom'
}

export async function rssRow (ctx: Context, t: Target): Promise<Row> {
  const pid = t.pid
  if (pid === undefined) throw new Error('the bucketfs target has no daemon pid')
  const file = path.join(t.dir, 'rss.bin')
  fs.rmSync(file, { force: true })
  const before = statusKiB(pid, 'VmRSS') ?? NaN
  const reset = resetPeakRss(pid)
  let polled = 0
  const poll = setInterval(() => { polled = Math.max(polled, statusKiB(pid, 'VmRSS') ?? 0) }, POLL_MS)
  const started = nowMs()
  const from = monoMicros()
  const cpu = threadCpu(pid)
  let ms: number
  try {
    const count = ctx.sizes.rssBytes / MiB
    const r = await sh(`${source()} | dd of='${file}' bs=1M count=${count} iflag=fullblock conv=fsync`)
    ms = r.ms
  } finally {
    clearInterval(poll)
  }
  const to = monoMicros()
  const hwm = statusKiB(pid, 'VmHWM') ?? 0
  fs.rmSync(file, { force: true })
  // Without clear_refs, VmHWM is the peak since the daemon started: only the polled value is this write's.
  const peakKiB = reset ? Math.max(hwm, polled) : polled
  return {
    workload: 'rss',
    title: `daemon peak RSS during a ${ctx.sizes.rssBytes / MiB / 1024} GiB sequential write (dd bs=1M conv=fsync)`,
    unit: 'MiB',
    better: 'lower',
    figure: { max: 300 },
    values: { bucketfs: peakKiB / 1024 },
    detail: {
      bucketfs: {
        rssBeforeMiB: Math.round(before / 1024),
        polledPeakMiB: Math.round(polled / 1024),
        vmHwmMiB: reset ? Math.round(hwm / 1024) : 'not reset',
        writeMBps: Math.round(ctx.sizes.rssBytes / 1e6 / (ms / 1000)),
        ms: Math.round(nowMs() - started)
      }
    },
    daemonCpu: { bucketfs: cpuDelta(cpu, threadCpu(pid)) },
    seconds: { bucketfs: ms / 1000 },
    window: { from, to }
  }
}
