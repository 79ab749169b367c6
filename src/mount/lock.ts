// One daemon per data directory: <data>/daemon.lock names the holder as JSON
// {pid, mountpoint, started}. It is created whole and atomically (written to a temp
// file, then hard-linked into place, which fails if the lock exists), so nobody ever
// reads a half-written lock. A lock whose process is gone is taken over.
import fs from 'node:fs'
import path from 'node:path'
import debug from 'debug'
import { STORE_LOCKED } from '../errors'

const log = debug('bucketfs:mount')

export const LOCK_FILE = 'daemon.lock'

export interface LockInfo {
  pid: number
  mountpoint: string
  /** The holder's start time (/proc/<pid>/stat field 22), so a recycled pid is not taken for it. */
  started?: string
}

export interface DaemonLock {
  readonly file: string
  readonly info: LockInfo
  release: () => void
}

/** Fields of /proc/<pid>/stat after the command name (which may hold spaces and parentheses). */
function procStat (pid: number): string[] | undefined {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8')
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  } catch {
    return undefined
  }
}

/** Field 22 of /proc/<pid>/stat (start time in clock ticks since boot); undefined off Linux or if gone. */
export function processStartTime (pid: number): string | undefined {
  return procStat(pid)?.[19]
}

/** Whether the process a lock names is still the one that wrote it (a zombie is dead). */
export function holderAlive (info: LockInfo): boolean {
  try {
    process.kill(info.pid, 0)
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EPERM') return false
  }
  const fields = procStat(info.pid)
  if (fields === undefined) return !fs.existsSync('/proc/self/stat') // without /proc the pid is all we know
  if (fields[0] === 'Z' || fields[0] === 'X') return false
  return info.started === undefined || fields[19] === info.started
}

/** The lock's content, or undefined if there is none or it is unreadable. */
export function readLock (dataDir: string): LockInfo | undefined {
  let text: string
  try {
    text = fs.readFileSync(path.join(dataDir, LOCK_FILE), 'utf8')
  } catch {
    return undefined
  }
  try {
    const v = JSON.parse(text) as Partial<LockInfo>
    if (typeof v.pid === 'number' && Number.isInteger(v.pid) && v.pid > 0) {
      return { pid: v.pid, mountpoint: typeof v.mountpoint === 'string' ? v.mountpoint : '', started: typeof v.started === 'string' ? v.started : undefined }
    }
  } catch {}
  return undefined
}

/**
 * Takes the data directory's lock for a daemon mounting at `mountpoint`, or throws
 * StoreLocked naming the live holder. The directory must exist.
 */
export function acquireLock (dataDir: string, mountpoint: string): DaemonLock {
  const file = path.join(dataDir, LOCK_FILE)
  const info: LockInfo = { pid: process.pid, mountpoint, started: processStartTime(process.pid) }
  const temp = `${file}.${process.pid}.tmp`
  fs.writeFileSync(temp, JSON.stringify(info) + '\n', { mode: 0o600 })
  try {
    for (let attempt = 0; ; attempt++) {
      try {
        fs.linkSync(temp, file)
        break
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST' || attempt >= 5) throw err
      }
      let st: fs.Stats
      try {
        st = fs.statSync(file)
      } catch {
        continue // released meanwhile: try again
      }
      const holder = readLock(dataDir)
      if (holder !== undefined && holderAlive(holder)) {
        const at = holder.mountpoint !== '' ? ` at ${holder.mountpoint}` : ''
        throw STORE_LOCKED(`store ${dataDir} is already mounted by pid ${holder.pid}${at}`)
      }
      // Stale (its daemon died) or unreadable: take it over, unless another mount replaced it meanwhile.
      log('taking over the stale lock %s of pid %s', file, holder?.pid ?? '?')
      try {
        if (fs.statSync(file).ino === st.ino) fs.unlinkSync(file)
      } catch {}
    }
  } finally {
    fs.rmSync(temp, { force: true })
  }
  log('locked %s for pid %d', file, process.pid)
  let held = true
  return {
    file,
    info,
    release: () => {
      if (!held) return
      held = false
      // Remove it only if it is still ours.
      if (readLock(dataDir)?.pid === process.pid) fs.rmSync(file, { force: true })
      log('released %s', file)
    }
  }
}
