// bucketfs umount <mountpoint>
//
// Asks the daemon that owns the mount to finish (SIGTERM: it completes every open
// write, unmounts and releases the store), waits for it to exit, and falls back to
// `fusermount -uz` for a mount without a live daemon or one that does not finish in time.
import path from 'node:path'
import type { Argv } from 'yargs'
import { INVALID_ARGUMENT, NOT_FOUND } from '../../errors'
import { holderAlive, readLock } from '../../mount/lock'
import { bucketfsMountedAt, canonicalMountpoint, fusermountLazy, isBucketfs, isStale, mountAt, waitFor } from '../../mount/mounts'
import { defineCommand, type GlobalArgs } from '../command'
import { log } from '../log'

interface UmountArgs extends GlobalArgs {
  mountpoint: string
  timeout: number
}

export default defineCommand({
  command: 'umount <mountpoint>',
  describe: 'complete every open write and unmount',
  builder: (y: Argv<GlobalArgs>) => y
    .positional('mountpoint', { type: 'string', demandOption: true, describe: 'where the store is mounted' })
    .option('timeout', {
      type: 'number', default: 600, requiresArg: true,
      describe: 'seconds to wait for the daemon to finish before detaching the mount anyway'
    })
    .example('$0 umount ~/buckets', ''),
  handler: async args => { await umount(args as unknown as UmountArgs) }
})

async function umount (args: UmountArgs): Promise<void> {
  const mountpoint = canonicalMountpoint(args.mountpoint)
  const entry = mountAt(mountpoint)
  if (entry === undefined) throw NOT_FOUND(`nothing is mounted at ${mountpoint}`)
  if (!isBucketfs(entry)) throw INVALID_ARGUMENT(`${mountpoint} is not a bucketfs mount (${entry.type} from ${entry.source})`)

  // The daemon mounts with fsname bucketfs:<data dir> when the path allows; else --data says.
  const dataDir = entry.source.startsWith('bucketfs:') ? entry.source.slice('bucketfs:'.length) : path.resolve(args.data)
  const holder = readLock(dataDir)
  if (holder !== undefined && holder.mountpoint === mountpoint && holderAlive(holder)) {
    log('asking pid %d to unmount %s', holder.pid, mountpoint)
    process.kill(holder.pid, 'SIGTERM')
    const slow = setTimeout(() => {
      process.stderr.write(`waiting for pid ${holder.pid} to complete open writes and unmount...\n`)
    }, 2000)
    const exited = await waitFor(() => !holderAlive(holder), args.timeout * 1000, 100)
    clearTimeout(slow)
    if (exited) {
      if (!bucketfsMountedAt(mountpoint)) {
        process.stdout.write(`unmounted ${mountpoint}\n`)
        return
      }
    } else {
      process.stderr.write(`bucketfs: pid ${holder.pid} did not finish within ${args.timeout} s; detaching the mount anyway\n`)
    }
  } else {
    log('no live daemon for %s (lock: %o, stale: %s)', mountpoint, holder, isStale(mountpoint))
  }
  await fusermountLazy(mountpoint)
  if (!await waitFor(() => !bucketfsMountedAt(mountpoint), 5000)) throw new Error(`${mountpoint} is still mounted after fusermount -uz`)
  process.stdout.write(`unmounted ${mountpoint}\n`)
}
