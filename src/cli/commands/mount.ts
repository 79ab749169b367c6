// bucketfs mount <mountpoint> [--daemon] [--allow-other] [--show-versions] [--write-budget MiB]
//
// In the foreground by default: SIGINT, SIGTERM or SIGHUP flush every open write and
// unmount. --daemon starts the same command again, detached, with its output in
// <data>/daemon.log, and returns once the filesystem is mounted (or with the daemon's error).
import { execFileSync, spawn } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import v8 from 'node:v8'
import type { Argv } from 'yargs'
import { BucketfsError, messageOf, type ErrorCode } from '../../errors'
import { mountFilesystem, type MountHandle } from '../../mount/mount'
import { defineCommand, type GlobalArgs } from '../command'
import { log } from '../log'

const MiB = 1024 * 1024
export const DAEMON_LOG = 'daemon.log'

interface MountArgs extends GlobalArgs {
  mountpoint: string
  daemon: boolean
  allowOther: boolean
  showVersions: boolean
  writeBudget?: number
  debugFuse: boolean
  daemonChild: boolean
}

/** What a --daemon child tells its parent through the IPC channel. */
type Report = { ready: true, pid: number } | { ready: false, message: string, code?: ErrorCode }

export default defineCommand({
  command: 'mount <mountpoint>',
  describe: 'mount the store as a filesystem (buckets at the top level)',
  builder: (y: Argv<GlobalArgs>) => y
    .positional('mountpoint', { type: 'string', demandOption: true, describe: 'directory to mount on (created if missing)' })
    .option('daemon', { type: 'boolean', default: false, describe: `run in the background, logging to <data>/${DAEMON_LOG}` })
    .option('allow-other', { type: 'boolean', default: false, describe: 'let other users in (the kernel checks permissions)' })
    .option('show-versions', { type: 'boolean', default: false, describe: 'list .versions in bucket listings' })
    .option('write-budget', { type: 'number', requiresArg: true, describe: 'MiB of unflushed writes all open files may hold together (default 256)' })
    .option('debug-fuse', { type: 'boolean', default: false, describe: 'print libfuse\'s log of every request' })
    .option('daemon-child', { type: 'boolean', default: false, hidden: true })
    .check(argv => {
      const budget = argv['write-budget']
      if (budget !== undefined && !(typeof budget === 'number' && Number.isFinite(budget) && budget > 0)) {
        throw new Error('--write-budget must be a positive number of MiB')
      }
      return true
    })
    .example('$0 mount ~/buckets', 'mount in the foreground; Ctrl-C unmounts')
    .example('$0 mount --daemon ~/buckets', 'mount in the background; `bucketfs umount ~/buckets` unmounts'),
  handler: async args => {
    const a = args as unknown as MountArgs
    if (a.daemon && !a.daemonChild) await startDaemon(a)
    else await runMount(a)
  }
})

/**
 * The daemon's JavaScript heap is small (about 9 MiB live), so V8 sets its next
 * collection a few MiB ahead; but every write and every chunk sent to a hash worker
 * hands V8 an ArrayBuffer (GiBs of them a GiB written), which count toward that limit:
 * a 1 GiB dd ran 120 full collections (--trace-gc), about 15 % of the main thread.
 * Growing the limit by 300 % after each collection (V8's own largest factor, always)
 * makes that 36-41; npm run bench's seqwrite went from 225-243 to 234-276 MB/s (3
 * rounds each, alternating) and the 4 GiB write's peak RSS from 170 to 192-200 MiB.
 * V8 reads it at every collection, so it can be set now.
 */
const HEAP_GROWING_PERCENT = 300

/** Mounts in this process and returns once unmounted. */
async function runMount (args: MountArgs): Promise<void> {
  v8.setFlagsFromString(`--heap-growing-percent=${HEAP_GROWING_PERCENT}`)
  const dataDir = path.resolve(args.data)
  const mountpoint = path.resolve(args.mountpoint)
  let handle: MountHandle
  try {
    handle = await mountFilesystem({
      mountpoint,
      dataDir,
      allowOther: args.allowOther,
      showVersions: args.showVersions,
      writeBudgetBytes: args.writeBudget === undefined ? undefined : Math.round(args.writeBudget * MiB),
      debugFuse: args.debugFuse
    })
  } catch (err) {
    if (args.daemonChild) await tellParent({ ready: false, message: messageOf(err), code: (err as Partial<BucketfsError>).code })
    throw err
  }
  installFatalHandlers(mountpoint)

  let signals = 0
  const onSignal = (signal: NodeJS.Signals): void => {
    if (signals++ === 0) {
      log('%s: unmounting', signal)
      handle.unmount().catch(() => {}) // reported through handle.ended
    } else {
      process.stderr.write(`bucketfs: ${signal}: still completing open writes before unmounting; SIGKILL abandons those not fsynced\n`)
    }
  }
  for (const s of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.on(s, onSignal)

  process.stdout.write(`mounted ${dataDir} at ${mountpoint} (pid ${process.pid})\n`)
  if (args.daemonChild) await tellParent({ ready: true, pid: process.pid })

  try {
    await handle.ended
    process.stdout.write(`unmounted ${mountpoint}\n`)
  } finally {
    for (const s of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.off(s, onSignal)
  }
}

/**
 * A bug that escapes every handler: detach the mount (a dead daemon would leave one that
 * answers ENOTCONN) and exit. Writes that were fsynced or closed are in the store; the
 * lock names a dead pid, which the next mount takes over.
 */
function installFatalHandlers (mountpoint: string): void {
  const fatal = (err: unknown): void => {
    process.stderr.write(`bucketfs: fatal: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`)
    try {
      execFileSync('fusermount', ['-uz', mountpoint], { stdio: 'ignore' })
    } catch {}
    process.exit(70) // EX_SOFTWARE
  }
  process.on('uncaughtException', fatal)
  process.on('unhandledRejection', fatal)
}

async function tellParent (report: Report): Promise<void> {
  const send = process.send?.bind(process)
  if (send === undefined) return
  await new Promise<void>(resolve => { send(report, undefined, {}, () => { resolve() }) })
  process.disconnect()
}

/** Starts `bucketfs mount` detached and waits for it to report the mount ready, or its error. */
async function startDaemon (args: MountArgs): Promise<void> {
  const dataDir = path.resolve(args.data)
  const mountpoint = path.resolve(args.mountpoint)
  fs.mkdirSync(dataDir, { recursive: true, mode: 0o700 })
  const logFile = path.join(dataDir, DAEMON_LOG)
  const out = fs.openSync(logFile, 'a', 0o600)
  const argv = [path.resolve(process.argv[1]), 'mount', mountpoint, '--data', dataDir, '--daemon-child']
  if (args.allowOther) argv.push('--allow-other')
  if (args.showVersions) argv.push('--show-versions')
  if (args.writeBudget !== undefined) argv.push('--write-budget', String(args.writeBudget))
  if (args.debugFuse) argv.push('--debug-fuse')
  log('starting daemon: %s %o', process.execPath, argv)
  fs.writeSync(out, `\n--- ${new Date().toISOString()} bucketfs mount ${mountpoint}\n`)
  const child = spawn(process.execPath, [...process.execArgv, ...argv], {
    detached: true, cwd: '/', stdio: ['ignore', out, out, 'ipc']
  })
  fs.closeSync(out)

  const outcome = await new Promise<Report | { exited: number | null, signal: NodeJS.Signals | null }>((resolve, reject) => {
    child.once('message', msg => { resolve(msg as Report) })
    child.once('exit', (code, signal) => { resolve({ exited: code, signal }) })
    child.once('error', reject)
  })
  if ('ready' in outcome && outcome.ready) {
    child.disconnect()
    child.unref()
    process.stdout.write(`mounted ${dataDir} at ${mountpoint} (daemon pid ${outcome.pid}, log ${logFile})\n`)
    return
  }
  if ('ready' in outcome) {
    await new Promise(resolve => { child.exitCode !== null ? resolve(null) : child.once('exit', resolve) })
    const code = outcome.code
    throw code !== undefined ? new BucketfsError(code, outcome.message) : new Error(outcome.message)
  }
  const how = outcome.signal !== null ? `was killed by ${outcome.signal}` : `exited with code ${outcome.exited}`
  throw new Error(`the daemon ${how} before mounting; see ${logFile}:\n${tail(logFile, 10)}`)
}

function tail (file: string, lines: number): string {
  try {
    return fs.readFileSync(file, 'utf8').trimEnd().split('\n').slice(-lines).join('\n')
  } catch {
    return ''
  }
}
