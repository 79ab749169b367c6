// Store cleanups the database could not take when they were due (a full disk:
// dropping a failed save's upload, unpinning chunks), retried every second until
// they succeed, so nothing is left pinned or half-there once space is back.
import createDebug from 'debug'

const log = createDebug('bucketfs:vfs')

export class Leftovers {
  private readonly due: Array<() => void> = []
  private timer: NodeJS.Timeout | null = null

  /** Runs a cleanup now, or later if the database cannot take it yet. */
  tidy (cleanup: () => void): void {
    try { cleanup() } catch { this.later(cleanup) }
  }

  later (cleanup: () => void): void {
    this.due.push(cleanup)
    if (this.timer !== null) return
    this.timer = setInterval(() => { this.retry() }, 1000)
    this.timer.unref()
  }

  /** Runs what is due, in order, up to the first that still fails. */
  retry (): void {
    while (this.due.length > 0) {
      try { this.due[0]() } catch (err) {
        log('store cleanup still fails, retrying: %s', (err as Error).message)
        return
      }
      this.due.shift()
    }
    if (this.timer !== null) { clearInterval(this.timer); this.timer = null }
  }
}
