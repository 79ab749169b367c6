// POSIX attributes as the mount reports them.
import type { ObjectVersion, Bucket } from '../store/types'

export interface Attr {
  mode: number, uid: number, gid: number, size: number
  atimeMs: number, mtimeMs: number, ctimeMs: number
  nlink: number, ino: number, blocks: number
}

/**
 * A directory's entries (without '.' and '..') with their attributes. `exact`: the
 * indices whose attributes are what getattr of the entry answers at this moment (a
 * stored file with no open session), which the mount may answer lookups from.
 */
export interface Listing { names: string[], attrs: Attr[], exact?: number[] }

export const S_IFMT = 0o170000
export const S_IFDIR = 0o040000
export const S_IFREG = 0o100000
export const S_IFLNK = 0o120000

export function isDirMode (mode: number): boolean { return (mode & S_IFMT) === S_IFDIR }
export function isLinkMode (mode: number): boolean { return (mode & S_IFMT) === S_IFLNK }

/** `stored`: the bytes that are not holes (st_blocks counts 512-byte blocks of them, as du shows). */
export function fileAttr (size: number, p: { mode: number, uid: number, gid: number, mtimeMs: number, ctimeMs: number }, stored = size): Attr {
  return listedFileAttr(size, p.mode, p.uid, p.gid, p.mtimeMs, p.ctimeMs, stored)
}

/** fileAttr from a listing's columns (no object per entry for its fields). */
export function listedFileAttr (size: number, mode: number, uid: number, gid: number, mtimeMs: number, ctimeMs: number, stored: number): Attr {
  return {
    mode: (mode & S_IFMT) === 0 ? S_IFREG | (mode & 0o7777) : mode,
    uid, gid, size,
    atimeMs: mtimeMs, mtimeMs, ctimeMs,
    nlink: 1, ino: 0, blocks: Math.ceil(Math.min(size, stored) / 512)
  }
}

export function versionAttr (v: ObjectVersion): Attr {
  return fileAttr(v.size, v.posix, v.storedBytes)
}

export function dirAttr (p: { mode: number, uid: number, gid: number, mtimeMs: number, ctimeMs?: number }): Attr {
  return {
    mode: S_IFDIR | (p.mode & 0o7777), uid: p.uid, gid: p.gid, size: 4096,
    atimeMs: p.mtimeMs, mtimeMs: p.mtimeMs, ctimeMs: p.ctimeMs ?? p.mtimeMs,
    nlink: 2, ino: 0, blocks: 8
  }
}

export function bucketAttr (b: Bucket): Attr {
  return dirAttr({ mode: b.mode, uid: b.uid, gid: b.gid, mtimeMs: b.mtimeMs, ctimeMs: b.mtimeMs })
}

/** Read-only view (the .versions tree). */
export function readOnly (a: Attr): Attr {
  return { ...a, mode: a.mode & ~0o222 }
}
