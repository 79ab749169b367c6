// ListObjectsV2 and ListObjectVersions over the key index. With a delimiter, a
// common prefix is reported once and the scan seeks past every key below it, so
// a listing costs what it returns, not what lies under its sub-prefixes.
import type { Catalog, VersionRow, DirFiles, MarkerRow } from '../meta/catalog'
import { compareKeys } from '../meta/catalog'
import { INVALID_ARGUMENT } from '../errors'

/** The smallest string greater than every string that starts with `prefix`, or null if none exists. */
export function prefixEnd (prefix: string): string | null {
  for (let i = prefix.length - 1; i >= 0; i--) {
    const c = prefix.charCodeAt(i)
    if (c < 0xd7ff || (c >= 0xe000 && c < 0xffff)) return prefix.slice(0, i) + String.fromCharCode(c + 1)
  }
  return null
}

export function clampMaxKeys (maxKeys: number | undefined): number {
  if (maxKeys === undefined) return 1000
  if (!Number.isInteger(maxKeys) || maxKeys < 0) throw INVALID_ARGUMENT('max-keys must be a non-negative integer')
  return Math.min(maxKeys, 1000)
}

export function encodeToken (s: string): string { return Buffer.from(s, 'utf8').toString('base64url') }
export function decodeToken (t: string): string {
  const s = Buffer.from(t, 'base64url').toString('utf8')
  if (encodeToken(s) !== t) throw INVALID_ARGUMENT('the continuation token is not valid')
  return s
}

export interface KeyListing {
  /** For live listings, `row` is the key's current version. */
  keys: Array<{ key: string, seq: number, row?: VersionRow }>
  prefixes: string[]
  /** Keys and common prefixes together, in key order. */
  entries: Array<{ kind: 'key' | 'prefix', name: string }>
  truncated: boolean
  last: string | null
}

/**
 * Walks live keys (or keys with any version) after `after`, under `prefix`, rolling
 * keys up to `delimiter`. Stops once `max` entries (keys + prefixes) are collected.
 */
export function walkKeys (
  catalog: Catalog, bucketId: number, source: 'live' | 'versions',
  prefix: string, delimiter: string, after: string | null, max: number
): KeyListing {
  const out: KeyListing = { keys: [], prefixes: [], entries: [], truncated: false, last: null }
  const until = prefix === '' ? null : prefixEnd(prefix)
  let from = prefix
  let inclusive = true
  if (after !== null && compareKeys(after, prefix) >= 0) {
    from = after
    inclusive = false
    // Resuming after a common prefix: skip everything below it.
    if (delimiter !== '' && after.startsWith(prefix) && after.slice(prefix.length).includes(delimiter) && after.endsWith(delimiter)) {
      const next = prefixEnd(after)
      if (next !== null) { from = next; inclusive = true }
    }
  }
  if (max === 0) {
    out.truncated = firstKey(catalog, bucketId, source, from, inclusive, until) !== undefined
    return out
  }
  for (;;) {
    let seekTo: string | null = null
    const iter = source === 'live'
      ? catalog.liveKeysFrom(bucketId, from, inclusive, until)
      : catalog.versionKeysFrom(bucketId, from, inclusive, until) as IterableIterator<{ key: string, seq?: number, bucket_id?: number }>
    let exhausted = true
    for (const row of iter) {
      if (!row.key.startsWith(prefix)) continue
      if (out.keys.length + out.prefixes.length >= max) { out.truncated = true; exhausted = false; break }
      const rest = row.key.slice(prefix.length)
      const d = delimiter === '' ? -1 : rest.indexOf(delimiter)
      if (d >= 0) {
        const cp = prefix + rest.slice(0, d + delimiter.length)
        out.prefixes.push(cp)
        out.entries.push({ kind: 'prefix', name: cp })
        out.last = cp
        seekTo = prefixEnd(cp)
        if (seekTo !== null) { exhausted = false; break }
        continue
      }
      out.keys.push(source === 'live' ? { key: row.key, seq: row.seq ?? 0, row: row as VersionRow } : { key: row.key, seq: 0 })
      out.entries.push({ kind: 'key', name: row.key })
      out.last = row.key
    }
    if (exhausted || out.truncated || seekTo === null) break
    from = seekTo
    inclusive = true
  }
  if (!out.truncated && out.keys.length + out.prefixes.length >= max) {
    out.truncated = firstKey(catalog, bucketId, source, out.last ?? from, false, until, prefix, delimiter) !== undefined
  }
  return out
}

function firstKey (catalog: Catalog, bucketId: number, source: 'live' | 'versions', from: string, inclusive: boolean,
  until: string | null, prefix = '', delimiter = ''): string | undefined {
  if (delimiter !== '' && from.startsWith(prefix) && from.slice(prefix.length).includes(delimiter) && from.endsWith(delimiter)) {
    const next = prefixEnd(from)
    if (next !== null) { from = next; inclusive = true }
  }
  const iter = source === 'live' ? catalog.liveKeysFrom(bucketId, from, inclusive, until) : catalog.versionKeysFrom(bucketId, from, inclusive, until)
  for (const row of iter) return row.key
  return undefined
}

export function versionsOfKeys (catalog: Catalog, bucketId: number, keys: string[]): VersionRow[] {
  const out: VersionRow[] = []
  for (const k of keys) out.push(...catalog.versionsOfKey(bucketId, k))
  return out
}

/**
 * What a directory listing holds: sub-prefixes (without `prefix`, without the '/'), the
 * live marker of each ([mode, uid, gid, mtime_ms, ctime_ms], null for an implied one),
 * and the keys right under it (column by column; the name '' is the directory's own marker).
 */
export interface Directory { dirs: string[], dirMarkers: Array<MarkerRow | null>, files: DirFiles }
