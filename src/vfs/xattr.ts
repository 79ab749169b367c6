// Extended attributes: user.* are the object's S3 user metadata; user.s3.* are
// system attributes (read-only but for content_type, and versioning on a bucket).
import type { ObjectVersion, Bucket, VersioningState } from '../store/types'
import { NO_ATTRIBUTE, NOT_SUPPORTED, NOT_PERMITTED, EXISTS, INVALID_ARGUMENT } from '../errors'

export const S3_PREFIX = 'user.s3.'
const USER = 'user.'

export const XATTR_CREATE = 1
export const XATTR_REPLACE = 2

export function systemAttrsOf (v: ObjectVersion): Record<string, string> {
  return {
    etag: v.etag,
    version_id: v.versionId,
    content_type: v.contentType,
    last_modified: new Date(v.lastModifiedMs).toISOString(),
    is_latest: v.isLatest ? 'true' : 'false'
  }
}

export function bucketSystemAttrs (b: Bucket): Record<string, string> {
  return { versioning: b.versioning, region: b.region, created: new Date(b.createdMs).toISOString() }
}

/** Splits an xattr name into what it addresses. */
export function classify (name: string): { kind: 'system', attr: string } | { kind: 'user', meta: string } {
  if (name.startsWith(S3_PREFIX)) return { kind: 'system', attr: name.slice(S3_PREFIX.length) }
  if (name.startsWith(USER)) return { kind: 'user', meta: name.slice(USER.length).toLowerCase() }
  throw NOT_SUPPORTED(`only user.* extended attributes are supported, not ${name}`)
}

export function lookup (name: string, system: Record<string, string>, meta: Record<string, string>): Buffer {
  const c = classify(name)
  const value = c.kind === 'system' ? system[c.attr] : meta[c.meta]
  if (value === undefined) throw NO_ATTRIBUTE(`no attribute ${name}`)
  return Buffer.from(value, 'utf8')
}

export function names (system: Record<string, string>, meta: Record<string, string>): string[] {
  return [...Object.keys(meta).map(k => USER + k), ...Object.keys(system).map(k => S3_PREFIX + k)]
}

/** The new user metadata after setting `name`, honouring XATTR_CREATE/XATTR_REPLACE. */
export function withUserMeta (meta: Record<string, string>, name: string, value: Buffer, flags: number): Record<string, string> {
  const c = classify(name)
  if (c.kind !== 'user') throw NOT_PERMITTED(`${name} is read-only`)
  const exists = c.meta in meta
  if ((flags & XATTR_CREATE) !== 0 && exists) throw EXISTS(`attribute ${name} exists`)
  if ((flags & XATTR_REPLACE) !== 0 && !exists) throw NO_ATTRIBUTE(`no attribute ${name}`)
  return { ...meta, [c.meta]: utf8Value(name, value) }
}

const strictUtf8 = new TextDecoder('utf-8', { fatal: true })

/** S3 metadata values are text: a value that is not UTF-8 is refused (EINVAL), never altered. */
export function utf8Value (name: string, value: Buffer): string {
  try { return strictUtf8.decode(value) } catch {
    throw INVALID_ARGUMENT(`the value of ${name} is not UTF-8 text (S3 metadata is text)`)
  }
}

export function withoutUserMeta (meta: Record<string, string>, name: string): Record<string, string> {
  const c = classify(name)
  if (c.kind !== 'user') throw NOT_PERMITTED(`${name} is read-only`)
  if (!(c.meta in meta)) throw NO_ATTRIBUTE(`no attribute ${name}`)
  const out = { ...meta }
  delete out[c.meta]
  return out
}

export function parseVersioning (value: Buffer): VersioningState {
  const v = value.toString('utf8').trim().toLowerCase()
  if (v === 'enabled') return 'Enabled'
  if (v === 'suspended') return 'Suspended'
  return value.toString('utf8') as VersioningState // the store refuses it with a clear error
}
