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

/** How long the teardown waits for an unmount before it detaches the mount and fails. */
const UNMOUNT_WAIT_MS = 60000

export interface InProcessMount { base: string, mnt: string, data: string, handle: MountHandle }

/**
 * Mounts a fresh store under a temporary directory named for `name`, unmounted at the
 * test's end. An unmount that does not finish fails the test with what the daemon holds
 * (its stderr says what it was waiting for), and the mount is detached: never a hang of
 * the whole file, and never a mount left behind.
 */
export async function mountInProcess (t: tap.Test, name: string): Promise<InProcessMount> {
  const base = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), `bucketfs-${name}-`)))
  const mnt = path.join(base, 'mnt')
  const data = path.join(base, 'data')
  const handle = await mountFilesystem({ mountpoint: mnt, dataDir: data })
  t.teardown(async () => {
    let timer: NodeJS.Timeout | undefined
    const late = new Promise<'late'>(resolve => { timer = setTimeout(() => { resolve('late') }, UNMOUNT_WAIT_MS) })
    const outcome = await Promise.race([handle.unmount().then(() => 'done' as const, () => 'failed' as const), late])
    clearTimeout(timer)
    if (outcome !== 'done') spawnSync('fusermount', ['-uz', mnt], { stdio: 'ignore' })
    if (outcome === 'late') {
      // (The store stays open: the stuck unmount still holds it. Left for a look.)
      throw new Error(`unmounting ${mnt} did not finish in ${UNMOUNT_WAIT_MS / 1000} s; the addon holds ${JSON.stringify(fastPathStats())}`)
    }
    fs.rmSync(base, { recursive: true, force: true })
  })
  return { base, mnt, data, handle }
}
