// bucketfs get bucket/key [dest|-] [--version-id ID]
import { once } from 'node:events'
import fs from 'node:fs'
import path from 'node:path'
import { pipeline } from 'node:stream/promises'
import type { Argv } from 'yargs'
import { INVALID_ARGUMENT, NOT_FOUND } from '../../errors'
import { defineCommand, parseTarget, requireObjectTarget, stdioArg, withStore, type GlobalArgs } from '../command'
import { NO_PROGRESS, PROGRESS_MIN_BYTES, startProgress, type Progress } from '../progress'

async function toStdout (body: AsyncIterable<Buffer>): Promise<void> {
  for await (const chunk of body) {
    if (!process.stdout.write(chunk)) await once(process.stdout, 'drain')
  }
}

/**
 * Writes next to `dest` and renames into place, so a failed download never
 * leaves a truncated file under the real name.
 */
async function toFile (body: AsyncIterable<Buffer>, dest: string, progress: Progress): Promise<void> {
  const tmp = path.join(path.dirname(dest), `.${path.basename(dest)}.bucketfs-${process.pid}.tmp`)
  let done = 0
  try {
    await pipeline(body, async function * (source: AsyncIterable<Buffer>) {
      for await (const chunk of source) {
        done += chunk.length
        progress.update(done)
        yield chunk
      }
    }, fs.createWriteStream(tmp, { flags: 'wx' }))
    fs.renameSync(tmp, dest)
  } catch (err) {
    fs.rmSync(tmp, { force: true })
    if (!isDirectory(path.dirname(dest))) throw NOT_FOUND(`${path.dirname(dest)}: no such directory`, err)
    throw err
  }
}

/** No dest: the key's file name in the current directory; a directory: the key's file name in it. */
function destination (key: string, dest: string | undefined): string {
  const name = path.posix.basename(key)
  if (dest === '') throw INVALID_ARGUMENT('the destination is an empty string')
  if (dest !== undefined && !dest.endsWith('/') && !isDirectory(dest)) return dest
  if (name === '' || key.endsWith('/')) throw INVALID_ARGUMENT(`${key} has no file name; give a destination`)
  return path.join(dest ?? '.', name)
}

function isDirectory (p: string): boolean {
  return fs.statSync(p, { throwIfNoEntry: false })?.isDirectory() ?? false
}

export default defineCommand({
  command: 'get <target> [dest]',
  describe: 'copy an object (or one version of it) to a file or stdout (-)',
  builder: (y: Argv<GlobalArgs>) => y
    .positional('target', { type: 'string', demandOption: true, describe: 'bucket/key' })
    .positional('dest', { type: 'string', coerce: stdioArg, describe: 'file, directory, or - for stdout (default: the key\'s file name here)' })
    .option('version-id', { type: 'string', requiresArg: true, describe: 'a version from `ls --versions`' })
    .check(requireObjectTarget('target'))
    .example('$0 get photos/2024/cat.jpg', 'writes ./cat.jpg')
    .example('$0 get backups/src.tar - | tar x', ''),
  handler: async args => withStore(args, async store => {
    const { bucket, key } = parseTarget(args.target)
    const { version, stream } = store.readObject(bucket, key, { versionId: args.versionId })
    if (args.dest === '-') return await toStdout(stream)
    const dest = destination(key, args.dest)
    const progress = version.size >= PROGRESS_MIN_BYTES ? startProgress(`get ${key}`, version.size, 'bytes') : NO_PROGRESS
    try {
      await toFile(stream, dest, progress)
    } finally {
      progress.stop()
    }
    process.stdout.write(`${bucket}/${key} -> ${dest}  ${version.size} bytes  version ${version.versionId}\n`)
  })
})
