// `strace -c -f -p PID` attached to a daemon for the length of one workload: its
// system calls by count (the daemon's own; FUSE requests show as reads of /dev/fuse).
// ptrace slows every call down a lot: these are counts, not speeds.
import { spawn, type ChildProcess } from 'node:child_process'
import fs from 'node:fs'
import { sleep, waitFor } from './proc'

export interface SyscallCount { calls: number, errors: number, seconds: number }

export class Strace {
  private stderr = ''
  private exited = false
  private constructor (private readonly child: ChildProcess, private readonly file: string) {
    child.stderr?.on('data', (b: Buffer) => { this.stderr += b.toString() })
    child.once('exit', () => { this.exited = true })
  }

  /** Attaches to every thread of `pid` and returns once attached. */
  static async attach (pid: number, file: string): Promise<Strace> {
    const child = spawn('strace', ['-c', '-f', '-p', String(pid), '-o', file], { stdio: ['ignore', 'ignore', 'pipe'] })
    const s = new Strace(child, file)
    await waitFor(() => s.exited || /attached/.test(s.stderr), 5000, 10)
    await sleep(100)
    if (s.exited) throw new Error(`strace could not attach to ${pid}: ${s.stderr.trim()}`)
    return s
  }

  /** Detaches and returns the counts, most called first. */
  async detach (top = 25): Promise<Record<string, SyscallCount>> {
    if (!this.exited) {
      const exit = new Promise(resolve => this.child.once('exit', resolve))
      this.child.kill('SIGINT')
      await exit
    }
    const out: Array<[string, SyscallCount]> = []
    for (const line of fs.readFileSync(this.file, 'utf8').split('\n')) {
      const m = /^\s*[\d.]+\s+([\d.]+)\s+\d+\s+(\d+)\s+(\d+)?\s*(\w+)\s*$/.exec(line)
      if (m === null || m[4] === 'total') continue
      out.push([m[4], { calls: Number(m[2]), errors: Number(m[3] ?? 0), seconds: Number(m[1]) }])
    }
    return Object.fromEntries(out.sort((a, b) => b[1].calls - a[1].calls).slice(0, top))
  }
}
