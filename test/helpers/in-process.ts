// A store mounted in the test's own process (test/58, test/59), so a test can read the
// addon's counters (fastPathStats). Every access to such a mount must be asynchronous, or
// the one thread that serves it would wait on itself.
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { spawnSync } from 'node:child_process'
import { mountFilesystem, type MountHandle } from '../../src/mount/mount'
import { fastPathStats } from '../../src/mount/fuse'
import type {} from 'tap' // the global tap.Test type

/** How long the teardown waits for each unmount before it detaches the mount. */
const UNMOUNT_WAIT_MS = 60000

export interface InProcessMount { base: string, mnt: string, data: string, handle: MountHandle }

/** Each test's mounts, unmounted by one teardown, the last made first. */
const mountsOf = new WeakMap<tap.Test, InProcessMount[]>()

/**
 * Mounts a fresh store under a temporary directory named for `name`, unmounted at the
 * test's end. Every mount of the test is unmounted even when one fails: an unmount that
 * fails or does not finish fails the test (the daemon's stderr says what it was waiting
 * for) and its mount is detached, never left behind. (A stuck unmount still holds
 * fuse-native's handle on the event loop: the file's other tests run, and the process
 * then ends at tap's timeout.)
 */
export async function mountInProcess (t: tap.Test, name: string): Promise<InProcessMount> {
  const base = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), `bucketfs-${name}-`)))
  const mnt = path.join(base, 'mnt')
  const data = path.join(base, 'data')
  const handle = await mountFilesystem({ mountpoint: mnt, dataDir: data })
  const m = { base, mnt, data, handle }
  let mounts = mountsOf.get(t)
  if (mounts === undefined) {
    mountsOf.set(t, mounts = [])
    const all = mounts
    t.teardown(async () => {
      const problems: string[] = []
      for (const one of [...all].reverse()) {
        const problem = await unmountOne(one)
        if (problem !== undefined) problems.push(problem)
      }
      if (problems.length > 0) throw new Error(problems.join('; '))
    })
  }
  mounts.push(m)
  return m
}

/** Unmounts m within UNMOUNT_WAIT_MS and removes its directory; else detaches it and says why. */
async function unmountOne (m: InProcessMount): Promise<string | undefined> {
  let timer: NodeJS.Timeout | undefined
  const late = new Promise<'late'>(resolve => { timer = setTimeout(() => { resolve('late') }, UNMOUNT_WAIT_MS) })
  const outcome = await Promise.race([m.handle.unmount().then(() => 'done' as const, (err: unknown) => err instanceof Error ? err : new Error(String(err))), late])
  clearTimeout(timer)
  if (outcome === 'done') {
    fs.rmSync(m.base, { recursive: true, force: true })
    return undefined
  }
  spawnSync('fusermount', ['-uz', m.mnt], { stdio: 'ignore' })
  // (A stuck unmount still holds the store: its directory is left for a look.)
  if (outcome === 'late') return `unmounting ${m.mnt} did not finish in ${UNMOUNT_WAIT_MS / 1000} s; the addon holds ${JSON.stringify(fastPathStats())}`
  fs.rmSync(m.base, { recursive: true, force: true })
  return `unmounting ${m.mnt} failed: ${outcome.message}`
}
