// bucketfs ls [--versions] [--recursive] [bucket[/prefix]]
import type { Argv } from 'yargs'
import type { Store } from '../../store'
import type { ObjectVersion } from '../../store/types'
import { defineCommand, parseTarget, withStore, type GlobalArgs } from '../command'
import { formatTime, printTable } from '../format'
import { printBuckets } from './bucket'

interface Listing { prefix: string, delimiter?: string }

/** Where a prefix line has no time: as wide as formatTime's output, so pages line up. */
const NO_TIME = ' '.repeat(20)

/** Merges one page of keys and common prefixes into key order, as `ls` shows them. */
function byName (rows: Array<{ name: string, cells: string[] }>): string[][] {
  return rows.sort((a, b) => a.name < b.name ? -1 : a.name > b.name ? 1 : 0).map(r => r.cells)
}

function listObjects (store: Store, bucket: string, opts: Listing): void {
  let continuationToken: string | undefined
  do {
    const page = store.listObjects(bucket, { ...opts, continuationToken })
    printTable(byName([
      ...page.commonPrefixes.map(p => ({ name: p, cells: [NO_TIME, 'PRE', p] })),
      ...page.contents.map(o => ({ name: o.key, cells: [formatTime(o.lastModifiedMs), String(o.size), o.key] }))
    ]), new Set([1]))
    continuationToken = page.isTruncated ? page.nextContinuationToken : undefined
  } while (continuationToken !== undefined)
}

function versionRow (v: ObjectVersion): string[] {
  const flags = [v.isLatest ? 'latest' : '', v.isDeleteMarker ? 'delete-marker' : ''].filter(f => f !== '').join(',')
  return [formatTime(v.lastModifiedMs), v.isDeleteMarker ? '-' : String(v.size), v.versionId, flags === '' ? '-' : flags, v.key]
}

function listVersions (store: Store, bucket: string, opts: Listing): void {
  let keyMarker: string | undefined
  let versionIdMarker: string | undefined
  for (;;) {
    const page = store.listObjectVersions(bucket, { ...opts, keyMarker, versionIdMarker })
    printTable(byName([
      ...page.commonPrefixes.map(p => ({ name: p, cells: [NO_TIME, '', '', 'PRE', p] })),
      // a stable sort keeps the store's newest-first order within a key
      ...page.versions.map(v => ({ name: v.key, cells: versionRow(v) }))
    ]), new Set([1]))
    if (!page.isTruncated) return
    keyMarker = page.nextKeyMarker
    versionIdMarker = page.nextVersionIdMarker
  }
}

export default defineCommand({
  command: 'ls [target]',
  describe: 'list buckets, or the objects of bucket[/prefix]',
  builder: (y: Argv<GlobalArgs>) => y
    .positional('target', { type: 'string', describe: 'bucket or bucket/prefix; none lists the buckets' })
    .option('versions', { type: 'boolean', default: false, describe: 'every version and delete marker, with version ids' })
    .option('recursive', { alias: 'r', type: 'boolean', default: false, describe: 'every key below the prefix (no "/" grouping)' })
    .example('$0 ls photos/2024/', 'keys and sub-"directories" under 2024/')
    .example('$0 ls -r --versions photos', 'the full history of the bucket'),
  handler: async args => withStore(args, store => {
    if (args.target === undefined || args.target === '') return printBuckets(store)
    const { bucket, key } = parseTarget(args.target)
    const opts: Listing = { prefix: key, delimiter: args.recursive ? undefined : '/' }
    if (args.versions) listVersions(store, bucket, opts)
    else listObjects(store, bucket, opts)
  })
})
