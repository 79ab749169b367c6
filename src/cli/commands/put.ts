// bucketfs put <file|-> bucket/key
import fs from 'node:fs'
import path from 'node:path'
import type { Argv } from 'yargs'
import { IS_DIRECTORY, NOT_FOUND } from '../../errors'
import type { ObjectHeaders } from '../../store/types'
import { defineCommand, parseTarget, stdioArg, withStore, type GlobalArgs } from '../command'
import { NO_PROGRESS, PROGRESS_MIN_BYTES, startProgress, type Progress } from '../progress'

/** `--meta a=1 --meta b=x=y` → { a: '1', b: 'x=y' } (names are lower-cased, as S3 does). */
export function parseMeta (pairs: readonly string[]): Record<string, string> {
  const meta: Record<string, string> = {}
  for (const pair of pairs) {
    const eq = pair.indexOf('=')
    if (eq <= 0) throw new Error(`--meta takes name=value, got '${pair}'`)
    meta[pair.slice(0, eq).toLowerCase()] = pair.slice(eq + 1)
  }
  return meta
}

async function * counted (source: AsyncIterable<Buffer>, progress: Progress): AsyncIterable<Buffer> {
  let done = 0
  for await (const chunk of source) {
    done += chunk.length
    progress.update(done)
    yield chunk
  }
}

function definedOnly<T extends object> (obj: T): T {
  return Object.fromEntries(Object.entries(obj).filter(([, v]) => v !== undefined)) as T
}

/** The bytes to store and their size when known; '-' is stdin. */
function openSource (file: string): { data: AsyncIterable<Buffer>, size?: number } {
  if (file === '-') return { data: process.stdin }
  let stat: fs.Stats
  try {
    stat = fs.statSync(file)
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw NOT_FOUND(`${file}: no such file`, err)
    throw err
  }
  if (stat.isDirectory()) throw IS_DIRECTORY(`${file} is a directory`)
  return { data: fs.createReadStream(file, { highWaterMark: 1024 * 1024 }), size: stat.size }
}

export default defineCommand({
  command: 'put <file> <target>',
  describe: 'store a file (or stdin: -) as an object',
  builder: (y: Argv<GlobalArgs>) => y
    .positional('file', { type: 'string', demandOption: true, coerce: stdioArg, describe: 'local file, or - for stdin' })
    .positional('target', { type: 'string', demandOption: true, describe: 'bucket/key; a key ending in / (or none) appends the file name' })
    .option('content-type', { type: 'string', requiresArg: true, describe: 'default: guessed from the key\'s extension' })
    .option('meta', { type: 'string', array: true, default: [] as string[], describe: 'user metadata name=value (repeatable)' })
    .option('cache-control', { type: 'string', requiresArg: true })
    .option('content-disposition', { type: 'string', requiresArg: true })
    .option('content-encoding', { type: 'string', requiresArg: true })
    .option('content-language', { type: 'string', requiresArg: true })
    .option('expires', { type: 'string', requiresArg: true })
    .check(argv => {
      parseMeta(argv.meta)
      const { bucket, key } = parseTarget(argv.target)
      if (bucket === '') throw new Error(`target must look like bucket/key, got '${argv.target}'`)
      if (argv.file === '-' && (key === '' || key.endsWith('/'))) throw new Error('reading stdin (-) needs a full bucket/key')
      return true
    })
    .example('$0 put ./cat.jpg photos/2024/', 'stores photos/2024/cat.jpg')
    .example('tar c src | $0 put - backups/src.tar --meta host=$(hostname)', ''),
  handler: async args => {
    const target = parseTarget(args.target)
    const key = target.key === '' || target.key.endsWith('/') ? target.key + path.basename(args.file) : target.key
    const headers: ObjectHeaders = definedOnly({
      cacheControl: args.cacheControl,
      contentDisposition: args.contentDisposition,
      contentEncoding: args.contentEncoding,
      contentLanguage: args.contentLanguage,
      expires: args.expires
    })
    const source = openSource(args.file)
    const big = source.size !== undefined && source.size >= PROGRESS_MIN_BYTES
    const progress = big ? startProgress(`put ${key}`, source.size ?? 0, 'bytes') : NO_PROGRESS
    const version = await withStore(args, async store => {
      try {
        return await store.putObject(target.bucket, key, big ? counted(source.data, progress) : source.data, {
          contentType: args.contentType,
          headers,
          userMeta: parseMeta(args.meta)
        })
      } finally {
        progress.stop()
      }
    })
    process.stdout.write(`${version.bucket}/${version.key}  ${version.size} bytes  etag ${version.etag}  version ${version.versionId}\n`)
  }
})
