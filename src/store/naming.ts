import { INVALID_BUCKET_NAME, INVALID_KEY, KEY_TOO_LONG, METADATA_TOO_LARGE, INVALID_ARGUMENT } from '../errors'
import { MAX_KEY_BYTES, MAX_USER_META_BYTES } from './limits'

const IPV4 = /^\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}$/
const FORBIDDEN_PREFIXES = ['xn--', 'sthree-', 'amzn-s3-demo-']
const FORBIDDEN_SUFFIXES = ['-s3alias', '--ol-s3', '.mrap']

/** Throws InvalidBucketName naming the S3 rule that `name` breaks. */
export function validateBucketName (name: string): void {
  const fail = (rule: string): never => { throw INVALID_BUCKET_NAME(`invalid bucket name ${JSON.stringify(name)}: ${rule}`) }
  if (typeof name !== 'string') fail('must be a string')
  if (name.length < 3 || name.length > 63) fail('must be 3 to 63 characters long')
  if (!/^[a-z0-9.-]+$/.test(name)) fail('may contain only lowercase letters, digits, dots and hyphens')
  if (!/^[a-z0-9]/.test(name) || !/[a-z0-9]$/.test(name)) fail('must begin and end with a letter or digit')
  if (name.includes('..')) fail('must not contain two adjacent dots')
  if (IPV4.test(name)) fail('must not be formatted as an IP address')
  for (const p of FORBIDDEN_PREFIXES) if (name.startsWith(p)) fail(`must not start with "${p}"`)
  for (const s of FORBIDDEN_SUFFIXES) if (name.endsWith(s)) fail(`must not end with "${s}"`)
}

export function validateKey (key: string): void {
  if (typeof key !== 'string' || key.length === 0) throw INVALID_KEY('object key must not be empty')
  const bytes = Buffer.byteLength(key, 'utf8')
  if (bytes > MAX_KEY_BYTES) throw KEY_TOO_LONG(`object key is ${bytes} bytes; the limit is ${MAX_KEY_BYTES}`)
  if (key.includes('\0')) throw INVALID_KEY('object key must not contain NUL')
  if (/\p{Surrogate}/u.test(key)) throw INVALID_KEY('object key must be valid UTF-8')
}

/** User metadata: names + values at most 2 KB of UTF-8. Names are lowercased, as S3 does. */
export function normalizeUserMeta (meta: Record<string, string> | undefined): Record<string, string> {
  const out: Record<string, string> = {}
  if (meta === undefined) return out
  let bytes = 0
  for (const [name, value] of Object.entries(meta)) {
    if (typeof value !== 'string') throw INVALID_ARGUMENT(`user metadata ${JSON.stringify(name)} must be a string`)
    const n = name.toLowerCase()
    if (n.length === 0) throw INVALID_ARGUMENT('user metadata names must not be empty')
    bytes += Buffer.byteLength(n, 'utf8') + Buffer.byteLength(value, 'utf8')
    out[n] = value
  }
  if (bytes > MAX_USER_META_BYTES) throw METADATA_TOO_LARGE(`user metadata is ${bytes} bytes; the limit is ${MAX_USER_META_BYTES}`)
  return out
}
