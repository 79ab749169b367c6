// Mount paths ↔ S3 names. '/' lists buckets, '/b/a/c' is key 'a/c' of bucket b,
// '/b/.versions/…' is the read-only history tree.
import { MAX_KEY_BYTES, MAX_NAME_BYTES } from '../store/limits'
import { NAME_TOO_LONG, KEY_TOO_LONG, NOT_PERMITTED, READ_ONLY } from '../errors'

export const VERSIONS_DIR = '.versions'

export type Location =
  | { kind: 'root' }
  | { kind: 'bucket', bucket: string }
  | { kind: 'key', bucket: string, key: string }
  | { kind: 'versions', bucket: string, rest: string } // rest: '' for the .versions root, else 'a/b.txt[/name]'

export function parsePath (p: string): Location {
  const parts = p.split('/').filter(s => s.length > 0)
  for (const part of parts) {
    if (Buffer.byteLength(part, 'utf8') > MAX_NAME_BYTES) throw NAME_TOO_LONG(`a name is longer than ${MAX_NAME_BYTES} bytes`)
  }
  if (parts.length === 0) return { kind: 'root' }
  const bucket = parts[0]
  if (parts.length === 1) return { kind: 'bucket', bucket }
  if (parts[1] === VERSIONS_DIR) return { kind: 'versions', bucket, rest: parts.slice(2).join('/') }
  const key = parts.slice(1).join('/')
  if (Buffer.byteLength(key, 'utf8') > MAX_KEY_BYTES) throw KEY_TOO_LONG(`the key would be over ${MAX_KEY_BYTES} bytes`)
  return { kind: 'key', bucket, key }
}

/** For operations that create or change a key: refuses the root and buckets' special names. */
export function keyLocation (p: string): { bucket: string, key: string } {
  const loc = parsePath(p)
  if (loc.kind === 'key') return loc
  if (loc.kind === 'versions') throw READ_ONLY('.versions is read-only')
  throw NOT_PERMITTED('only directories (buckets) can be created at the root')
}

export function parentKey (key: string): string {
  const i = key.lastIndexOf('/')
  return i < 0 ? '' : key.slice(0, i)
}

export function baseName (key: string): string {
  return key.slice(key.lastIndexOf('/') + 1)
}

/** A listing name the mount can show (S3 keys may hold empty, '.' or '..' components). */
export function showableName (name: string): boolean {
  // A UTF-16 code unit is at most 3 bytes of UTF-8: most names need no count of their bytes.
  return name !== '' && name !== '.' && name !== '..' && (name.length * 3 <= MAX_NAME_BYTES || Buffer.byteLength(name, 'utf8') <= MAX_NAME_BYTES)
}
