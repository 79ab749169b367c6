import { SingleBar, Presets } from 'cli-progress'

export interface Progress {
  update (done: number, total?: number): void
  stop (): void
}

export const NO_PROGRESS: Progress = { update () {}, stop () {} }

/** Files at least this big get a progress bar on put/get. */
export const PROGRESS_MIN_BYTES = 4 * 1024 * 1024

/**
 * A progress bar on stderr, or nothing when stderr is not a terminal (so pipes,
 * logs and tests never see control characters).
 */
export function startProgress (label: string, total: number, unit: 'bytes' | 'items' = 'items'): Progress {
  if (process.stderr.isTTY !== true) return NO_PROGRESS
  const format = unit === 'bytes'
    ? `${label} [{bar}] {percentage}% | {done}/{all} MiB | ETA {eta_formatted}`
    : `${label} [{bar}] {percentage}% | {value}/{total}`
  const bar = new SingleBar({ format, stream: process.stderr, hideCursor: true, clearOnComplete: true }, Presets.shades_classic)
  const mib = (n: number): string => (n / 1048576).toFixed(1)
  bar.start(total, 0, { done: mib(0), all: mib(total) })
  return {
    update (done, newTotal) {
      if (newTotal !== undefined && newTotal !== total) { total = newTotal; bar.setTotal(total) }
      bar.update(done, { done: mib(done), all: mib(total) })
    },
    stop () { bar.stop() }
  }
}
