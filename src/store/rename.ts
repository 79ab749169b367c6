// Renames: one transaction, no data copied. The destination gets a new version
// sharing the source's chunks (by its bucket's versioning rules) and the source
// is deleted by its bucket's rules, so a versioned bucket keeps the history of
// the old key behind a delete marker. Between buckets that were never versioned,
// where that new version would be the only one of its key and the source's only
// version would go, the version row itself moves instead (same outcome, no rows
// copied, no reference counts touched), and a whole directory moves by its
// directories' rows, whatever it holds.
import type { Store, VersionFields } from './store'
import type { BucketRow, VersionRow } from '../meta/catalog'
import { validateKey } from './naming'
import { prefixEnd } from './listing'
import { NO_SUCH_KEY } from '../errors'
import { MAX_KEY_BYTES } from './limits'

function fieldsOf (v: VersionRow): VersionFields {
  return {
    contentType: v.content_type, headers: v.headers, userMeta: v.user_meta,
    posix: { mode: v.mode, uid: v.uid, gid: v.gid, mtimeMs: v.mtime_ms, ctimeMs: Date.now() }
  }
}

/** Inside a write transaction: moves one live key (and any write session on it). */
function moveKey (store: Store, src: BucketRow, srcKey: string, dst: BucketRow, dstKey: string,
  v = store.catalog.liveVersion(src.id, srcKey)): void {
  const { catalog } = store
  if (v !== undefined && src.versioning === 'Unversioned' && dst.versioning === 'Unversioned' && v.version_id === 'null') {
    const replaced = catalog.versionSeq(dst.id, dstKey, 'null')
    if (replaced !== undefined) catalog.deleteVersion(replaced)
    const now = Date.now()
    catalog.moveVersion(v.seq, dst.id, dstKey, now, now)
    // Neither bucket was ever versioned: each key had that one version at most.
    catalog.setLive(src.id, srcKey, null)
    catalog.setLive(dst.id, dstKey, v.seq)
  } else if (v !== undefined) {
    store.commitVersion(dst, dstKey, fieldsOf(v), store.sharedData(v))
    store.deleteInTransaction(src, srcKey)
  }
  catalog.moveSessionUploads(src.id, srcKey, dst.id, dstKey)
}

/** Renames a key. NoSuchKey unless the source is live or has a session (`allowMissing`). */
export function renameObject (store: Store, srcBucket: string, srcKey: string, dstBucket: string, dstKey: string, allowMissing = false): void {
  validateKey(dstKey)
  if (srcBucket === dstBucket && srcKey === dstKey) return
  store.catalog.write(() => {
    const src = store.bucketRow(srcBucket)
    const dst = srcBucket === dstBucket ? src : store.bucketRow(dstBucket)
    const v = store.catalog.liveVersion(src.id, srcKey)
    if (!allowMissing && v === undefined) throw NO_SUCH_KEY(`no such key: ${srcBucket}/${srcKey}`)
    moveKey(store, src, srcKey, dst, dstKey, v)
  })
}

/**
 * Inside a write transaction: the whole directory moves by its directories' rows where
 * moveKey would move each key's version row anyway (neither bucket was ever versioned:
 * each key has its one 'null' version, no marker) and nothing but the target's own
 * marker lies under dstPrefix (an empty directory a rename replaces). Its keys keep
 * their Last-Modified and ctime, as a file in a renamed directory does. Answers false
 * where that does not hold (moveKey then moves the keys one by one).
 */
function moveDirectory (store: Store, src: BucketRow, srcPrefix: string, dst: BucketRow, dstPrefix: string): boolean {
  const { catalog } = store
  if (src.versioning !== 'Unversioned' || dst.versioning !== 'Unversioned') return false
  if (src.id === dst.id && (dstPrefix.startsWith(srcPrefix) || srcPrefix.startsWith(dstPrefix))) return false
  const target = catalog.dirId(dst.id, dstPrefix)
  if (target !== undefined && !catalog.holdsOnlyMarker(target)) return false
  // A key that would grow too long (or may: the bound is from the longest names ever held): moveKey names it.
  if (Buffer.byteLength(dstPrefix) > Buffer.byteLength(srcPrefix) &&
    catalog.longestKeyIfMoved(src.id, srcPrefix, dstPrefix) > MAX_KEY_BYTES) return false
  // As moveKey: the source's marker replaces the target's; without one, the target's stays.
  const replaced = target === undefined ? undefined : catalog.versionSeq(dst.id, dstPrefix, 'null')
  if (replaced !== undefined && catalog.versionSeq(src.id, srcPrefix, 'null') !== undefined) {
    catalog.deleteVersion(replaced)
    catalog.setLive(dst.id, dstPrefix, null)
  }
  catalog.moveDir(src.id, srcPrefix, dst.id, dstPrefix, target, Date.now())
  return true
}

/** Renames every live key under srcPrefix (a directory, ending in '/') to dstPrefix, in one transaction. */
export function renamePrefix (store: Store, srcBucket: string, srcPrefix: string, dstBucket: string, dstPrefix: string): void {
  if (srcBucket === dstBucket && srcPrefix === dstPrefix) return
  return store.catalog.write(() => {
    const { catalog } = store
    const src = store.bucketRow(srcBucket)
    const dst = srcBucket === dstBucket ? src : store.bucketRow(dstBucket)
    if (moveDirectory(store, src, srcPrefix, dst, dstPrefix)) return
    const until = prefixEnd(srcPrefix)
    const keys: string[] = []
    for (const row of catalog.liveKeysFrom(src.id, srcPrefix, true, until)) keys.push(row.key)
    const sessions = catalog.sessionUploadKeysUnder(src.id, srcPrefix, until)
    for (const k of keys) {
      const to = dstPrefix + k.slice(srcPrefix.length)
      validateKey(to)
      moveKey(store, src, k, dst, to)
    }
    const moved = new Set(keys)
    for (const k of sessions) {
      if (!moved.has(k)) catalog.moveSessionUploads(src.id, k, dst.id, dstPrefix + k.slice(srcPrefix.length))
    }
  })
}
