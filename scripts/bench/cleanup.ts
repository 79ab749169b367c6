// Everything the bench mounts or starts is registered here as it is created, and
// undone in reverse order: normally through `run()`, on SIGINT/SIGTERM through the
// same path, and on an abrupt exit through each step's synchronous fallback
// (`fusermount -uz`, a signal to our own child's pid). Nothing is found by name.
import { spawnSync } from 'node:child_process'

interface Step {
  label: string
  undo: () => Promise<void>
  /** What can still be done from process.on('exit'), where nothing asynchronous runs. */
  undoSync: () => void
}

export class Cleanup {
  private readonly steps: Step[] = []
  private running: Promise<void> | undefined

  constructor () {
    process.on('exit', () => { this.runSync() })
    for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
      process.once(signal, () => {
        process.stderr.write(`\nbench: ${signal}: unmounting what the bench mounted\n`)
        this.run().finally(() => process.exit(130))
      })
    }
  }

  /** Registers an undo step; returns a function that runs it early (and removes it). */
  add (label: string, undo: () => Promise<void>, undoSync: () => void): () => Promise<void> {
    const step: Step = { label, undo, undoSync }
    this.steps.push(step)
    return async () => {
      const i = this.steps.indexOf(step)
      if (i < 0) return
      this.steps.splice(i, 1)
      await step.undo()
    }
  }

  async run (): Promise<void> {
    this.running ??= (async () => {
      while (this.steps.length > 0) {
        const step = this.steps.pop()
        if (step === undefined) break
        try {
          await step.undo()
        } catch (err) {
          process.stderr.write(`bench: cleanup of ${step.label} failed: ${err instanceof Error ? err.message : String(err)}\n`)
          try { step.undoSync() } catch {}
        }
      }
    })()
    await this.running
  }

  private runSync (): void {
    while (this.steps.length > 0) {
      const step = this.steps.pop()
      if (step === undefined) break
      try { step.undoSync() } catch {}
    }
  }
}

/** Detaches a mount now, whatever holds it (the synchronous last resort). */
export function lazyUnmountSync (mountpoint: string): void {
  spawnSync('fusermount', ['-uz', mountpoint], { stdio: 'ignore' })
}

export function killSync (pid: number, signal: NodeJS.Signals = 'SIGKILL'): void {
  try { process.kill(pid, signal) } catch {}
}
