// Row ↔ public shape conversions.
import mime from 'mime-types'
import type { BucketRow, VersionRow } from '../meta/catalog'
import type { Bucket, ObjectHeaders, ObjectVersion, VersioningState } from './types'

export function toBucket (r: BucketRow): Bucket {
  return {
    name: r.name, region: r.region, createdMs: r.created_ms, versioning: r.versioning as VersioningState,
    mode: r.mode, uid: r.uid, gid: r.gid, mtimeMs: r.mtime_ms
  }
}

export function toVersion (bucket: string, r: VersionRow, isLatest: boolean): ObjectVersion {
  return {
    bucket,
    key: r.key,
    versionId: r.version_id,
    seq: r.seq,
    isDeleteMarker: r.delete_marker === 1,
    isLatest,
    size: r.size,
    storedBytes: r.stored ?? r.size,
    etag: r.etag,
    lastModifiedMs: r.last_modified_ms,
    contentType: r.content_type,
    headers: JSON.parse(r.headers) as ObjectHeaders,
    userMeta: JSON.parse(r.user_meta) as Record<string, string>,
    posix: { mode: r.mode, uid: r.uid, gid: r.gid, mtimeMs: r.mtime_ms, ctimeMs: r.ctime_ms }
  }
}

/** Content-Type from the key's extension. */
export function guessContentType (key: string): string {
  if (key.endsWith('/')) return 'application/x-directory'
  return mime.lookup(key) || 'application/octet-stream'
}

export function cleanHeaders (h: ObjectHeaders | undefined): ObjectHeaders {
  const out: ObjectHeaders = {}
  if (h === undefined) return out
  for (const k of ['cacheControl', 'contentDisposition', 'contentEncoding', 'contentLanguage', 'expires'] as const) {
    const v = h[k]
    if (typeof v === 'string') out[k] = v
  }
  return out
}
