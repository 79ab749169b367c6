// The read-only .versions tree, synthesised from version listings (nothing is
// stored for it): /bucket/.versions/<key>/ lists every version of <key> as a file
// named '<UTC time>_<version id>[_deleted]<ext>', so names sort in time order and
// a desktop program still recognises the file type. Prefixes are directories.
import path from 'node:path'
import type { Store } from '../store/store'
import type { ObjectVersion } from '../store/types'
import { dirAttr, fileAttr, readOnly, bucketAttr } from './attr'
import type { Attr } from './attr'
import { showableName, baseName } from './paths'
import { NOT_FOUND } from '../errors'

export function versionFileName (v: ObjectVersion): string {
  const time = new Date(v.lastModifiedMs).toISOString().replace(/:/g, '-')
  const ext = path.extname(baseName(v.key))
  return `${time}_${v.versionId}${v.isDeleteMarker ? '_deleted' : ''}${ext}`
}

function versionIdOfName (name: string): string | undefined {
  const m = /^\d{4}-\d\d-\d\dT\d\d-\d\d-\d\d\.\d{3}Z_([^_.]+)/.exec(name)
  return m?.[1]
}

/**
 * A version file has the mode the version had (as snapshot folders of ZFS or btrfs
 * do), so a file restored by `cp` is not read-only; every write under .versions
 * fails with EROFS anyway. Its mtime is the version's Last-Modified.
 */
function versionFileAttr (v: ObjectVersion): Attr {
  return fileAttr(v.size, { ...v.posix, mtimeMs: v.lastModifiedMs }, v.storedBytes)
}

export class VersionsTree {
  constructor (private readonly store: Store) {}

  /** The version a path under .versions names, if it names one. */
  versionAt (bucket: string, rest: string): ObjectVersion | undefined {
    const i = rest.lastIndexOf('/')
    if (i < 0) return undefined
    const key = rest.slice(0, i)
    const name = rest.slice(i + 1)
    const id = versionIdOfName(name)
    if (id === undefined) return undefined
    return this.store.versionsOf(bucket, key).find(v => v.versionId === id && versionFileName(v) === name)
  }

  private isDir (bucket: string, rest: string): boolean {
    if (rest === '') return true
    if (this.store.versionsOf(bucket, rest).length > 0) return true
    return this.store.listVersionKeys(bucket, rest + '/', '', null, 1).keys.length > 0
  }

  getattr (bucket: string, rest: string): Attr {
    const b = this.store.headBucket(bucket)
    const v = this.versionAt(bucket, rest)
    if (v !== undefined) return versionFileAttr(v)
    if (this.isDir(bucket, rest)) return readOnly(rest === '' ? bucketAttr(b) : dirAttr({ mode: 0o755, uid: b.uid, gid: b.gid, mtimeMs: b.mtimeMs }))
    throw NOT_FOUND(`no such path under .versions: ${rest}`)
  }

  readdir (bucket: string, rest: string): { names: string[], attrs: Attr[] } {
    if (!this.isDir(bucket, rest)) throw NOT_FOUND(`no such directory under .versions: ${rest}`)
    const b = this.store.headBucket(bucket)
    const names: string[] = []
    const attrs: Attr[] = []
    const seen = new Set<string>()
    const dir = readOnly(dirAttr({ mode: 0o755, uid: b.uid, gid: b.gid, mtimeMs: b.mtimeMs }))
    const prefix = rest === '' ? '' : rest + '/'
    let after: string | null = null
    for (;;) {
      const page = this.store.listVersionKeys(bucket, prefix, '/', after, 1000)
      for (const entry of [...page.prefixes.map(p => p.slice(prefix.length, -1)), ...page.keys.map(k => k.slice(prefix.length))]) {
        if (showableName(entry) && !seen.has(entry)) { seen.add(entry); names.push(entry); attrs.push(dir) }
      }
      if (!page.truncated || page.last === null) break
      after = page.last
    }
    if (rest !== '') {
      for (const v of this.store.versionsOf(bucket, rest).reverse()) {
        names.push(versionFileName(v))
        attrs.push(versionFileAttr(v))
      }
    }
    return { names, attrs }
  }
}
