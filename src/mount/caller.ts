// Which process made an op. FUSE names the calling thread; a save is decided per
// process (src/vfs: the opener's close ends it, a forked child's does not), so the
// thread id is turned into its process id (Tgid in /proc/<tid>/status), cached
// briefly because thread ids are reused only after they end.
import fs from 'node:fs'
import { LRUCache } from 'lru-cache'

const tgids = new LRUCache<number, number>({ max: 4096, ttl: 10_000 })

/** The process of thread `tid`; `tid` itself when /proc does not know it (it has ended). */
export function processOf (tid: number): number {
  if (tid <= 0) return tid
  const known = tgids.get(tid)
  if (known !== undefined) return known
  let tgid = tid
  try {
    const m = /^Tgid:\s*(\d+)/m.exec(fs.readFileSync(`/proc/${tid}/status`, 'latin1'))
    if (m !== null) tgid = Number(m[1])
  } catch {}
  tgids.set(tid, tgid)
  return tgid
}
