// What is mounted where (/proc/self/mounts), stale FUSE mounts (a dead daemon leaves
// its mount behind: every access fails with ENOTCONN), and clearing them.
import fs from 'node:fs'
import path from 'node:path'
import { execFile } from 'node:child_process'
import { promisify } from 'node:util'

export interface MountEntry {
  /** The first column: for bucketfs, `bucketfs:<data dir>` or `bucketfs`. */
  source: string
  mountpoint: string
  /** e.g. `fuse.bucketfs` */
  type: string
  options: string
}

/** /proc/mounts escapes space, tab, newline and backslash as \ooo. */
const unescape = (s: string): string => s.replace(/\\([0-7]{3})/g, (_, oct: string) => String.fromCharCode(parseInt(oct, 8)))

export function listMounts (): MountEntry[] {
  let text: string
  try {
    text = fs.readFileSync('/proc/self/mounts', 'utf8')
  } catch {
    return []
  }
  return text.split('\n').filter(l => l !== '').map(line => {
    const [source = '', mountpoint = '', type = '', options = ''] = line.split(' ')
    return { source: unescape(source), mountpoint: unescape(mountpoint), type, options }
  })
}

/**
 * The absolute path the kernel lists for `p`: symlinks in its parent resolved, the last
 * component kept (a stale mountpoint cannot be resolved itself).
 */
export function canonicalMountpoint (p: string): string {
  const abs = path.resolve(p)
  try {
    return path.join(fs.realpathSync(path.dirname(abs)), path.basename(abs))
  } catch {
    return abs
  }
}

/** The device (`major:minor`) of the mount at exactly this path, from /proc/self/mountinfo (the last one if stacked). */
export function deviceAt (mountpoint: string): string | undefined {
  const mp = canonicalMountpoint(mountpoint)
  let text: string
  try {
    text = fs.readFileSync('/proc/self/mountinfo', 'utf8')
  } catch {
    return undefined
  }
  let dev: string | undefined
  for (const line of text.split('\n')) {
    const f = line.split(' ')
    if (f.length > 4 && unescape(f[4]) === mp) dev = f[2]
  }
  return dev
}

/** The mount at exactly this path (the last one if several are stacked). */
export function mountAt (mountpoint: string): MountEntry | undefined {
  const mp = canonicalMountpoint(mountpoint)
  return listMounts().filter(m => m.mountpoint === mp).pop()
}

export const isFuse = (m: MountEntry): boolean => m.type === 'fuse' || m.type.startsWith('fuse.')
export const isBucketfs = (m: MountEntry): boolean => m.type === 'fuse.bucketfs'

/** Whether a bucketfs mount is at this path (not whatever may be mounted under it). */
export function bucketfsMountedAt (mountpoint: string): boolean {
  const m = mountAt(mountpoint)
  return m !== undefined && isBucketfs(m)
}

/**
 * A FUSE mount whose daemon is gone: any request fails with ENOTCONN. statfs always reaches
 * the daemon (stat may be answered from the kernel's attribute cache). Blocks while the
 * daemon answers: never call it on a mount this process serves.
 */
export function isStale (mountpoint: string): boolean {
  try {
    fs.statfsSync(mountpoint)
    return false
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'ENOTCONN'
  }
}

/** `fusermount -uz`: detaches the mount now; the kernel frees it when its last file closes. */
export async function fusermountLazy (mountpoint: string): Promise<void> {
  await promisify(execFile)('fusermount', ['-uz', mountpoint])
}

/** Polls `test` until it holds; false after `ms`. */
export async function waitFor (test: () => boolean, ms: number, every = 50): Promise<boolean> {
  const deadline = Date.now() + ms
  for (;;) {
    if (test()) return true
    if (Date.now() >= deadline) return false
    await new Promise(resolve => setTimeout(resolve, every))
  }
}
