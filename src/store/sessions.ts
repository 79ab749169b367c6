// A mount's write session, as the store sees it: a multipart upload of kind
// 'session' whose parts are fixed ranges of the object (src/store/layout.ts).
// Parts that were never uploaded are the base version's bytes (below
// base_limit) or zeros. The release of the file completes it into one version.
import type { Store, VersionFields } from './store'
import type { Extent, ReadableExtent, UploadRow, VersionPartRow } from '../meta/catalog'
import { newUploadId } from './versionid'
import { partsOf, partRange, etagOf, md5OfZeros } from './layout'
import { Md5Stream } from '../blob/hasher'
import { toVersion } from './convert'
import { firstExtentAt } from './content'
import type { InlineChunk } from './content'
import type { ObjectVersion } from './types'
import createDebug from 'debug'

const log = createDebug('bucketfs:sessions')

export interface SessionMeta { bucket: string, key: string, fields: VersionFields, baseSeq: number | null, baseLimit: number, size: number }
export interface SessionPart { part: number, extents: Extent[] } // extents relative to the object's start

/**
 * Creates the upload row on first persist, then replaces the given parts, in one
 * transaction. `seal` marks data a close or an fsync made final (see recoverSessions).
 */
export function persistSession (store: Store, uploadRowId: number | null, meta: SessionMeta, parts: SessionPart[], owner: number, durable: boolean, seal: boolean): number {
  // A seal (a close, an fsync) is committed before it answers: recovery completes what it sealed.
  const c = store.catalog
  const run = durable ? c.writeDurably.bind(c) : seal ? c.writeCommitted.bind(c) : c.write.bind(c)
  return run(() => {
    const b = store.bucketRow(meta.bucket)
    let id = uploadRowId
    if (id === null || store.catalog.uploadByRowId(id) === undefined) {
      id = store.catalog.insertUpload({
        upload_id: newUploadId(), bucket_id: b.id, key: meta.key, kind: 'session', initiated_ms: Date.now(),
        attrs: JSON.stringify(meta.fields), base_seq: meta.baseSeq, base_limit: meta.baseLimit, size: meta.size
      })
    } else {
      store.catalog.updateUploadSession(id, { key: meta.key, bucket_id: b.id, attrs: JSON.stringify(meta.fields), base_limit: meta.baseLimit, size: meta.size })
    }
    for (const p of parts) {
      const r = partRange(p.part)
      const size = Math.max(0, Math.min(r.end, meta.size) - r.start)
      store.catalog.replacePart(id, p.part, size, '', p.extents.map(e => ({ ...e, off: e.off - r.start })))
    }
    // Parts wholly past the end are gone.
    if (meta.size === 0) store.catalog.deletePartsFrom(id, 1)
    else store.catalog.deletePartsFrom(id, partsOf(meta.size).slice(-1)[0].part + 1)
    if (seal) store.catalog.sealUpload(id)
    store.content.release(owner)
    return id
  })
}

/**
 * Commits a session's final content as one version and removes its upload, in one
 * transaction. `rebase`: the session goes on from the new version, whose chunks that
 * transaction pins for `pin` (dropping the old base's pins, `unpin`). Answers the new
 * version and its extents, as extentsOf would read them back.
 */
export function completeSession (store: Store, uploadRowId: number | null, meta: SessionMeta, extents: ReadableExtent[],
  parts: Array<Omit<VersionPartRow, 'seq'>>, owner: number, rebase?: { pin: number, unpin: number | null },
  inline: Array<{ off: number, chunk: InlineChunk }> = []): { version: ObjectVersion, extents: ReadableExtent[] } {
  // Committed before the close that saves it answers, with the group of writes before it.
  const row = store.catalog.writeCommitted(() => {
    // Small chunks go in with the version that names them (one commit for a small file).
    if (inline.length > 0) {
      const put = inline.map(({ off, chunk }) => ({
        off, len: chunk.data.length, chunk: store.content.insertInline(chunk), coff: 0, hash: chunk.hash, crc: chunk.crc, inline: 1, csize: chunk.data.length
      }))
      extents = clip(overlayMany(extents, put.sort((a, b) => a.off - b.off)), meta.size)
    }
    extents = extents.filter(e => e.len > 0) // as insertExtents stores them
    const b = store.bucketRow(meta.bucket)
    const etag = etagOf(parts.map(p => p.md5))
    const r = store.commitVersion(b, meta.key, meta.fields, { size: meta.size, etag, extents, parts })
    if (uploadRowId !== null) store.catalog.deleteUpload(uploadRowId)
    store.content.release(owner)
    if (rebase !== undefined) {
      if (rebase.unpin !== null) store.content.release(rebase.unpin)
      store.content.pinIn(extents, rebase.pin)
    }
    return r
  })
  log('completed %s/%s (%d bytes)', meta.bucket, meta.key, meta.size)
  return { version: toVersion(meta.bucket, row, true), extents }
}

/** Overlays extents of [from, to) onto a sorted extent list, cutting what they cover (no data is copied). */
export function overlay<E extends Extent> (list: E[], from: number, to: number, put: E[]): E[] {
  const i = firstExtentAt(list, from)
  const before = list.slice(0, i)
  const after: E[] = []
  let j = i
  for (; j < list.length && list[j].off < to; j++) {
    const e = list[j]
    if (e.off < from) before.push({ ...e, len: from - e.off })
    if (e.off + e.len > to) {
      const cut = to - e.off
      after.push({ ...e, off: to, len: e.len - cut, coff: e.coff + cut })
    }
  }
  return [...before, ...put.filter(e => e.len > 0), ...after, ...list.slice(j)]
}

/** Overlays sorted, non-overlapping extents onto a sorted extent list in one pass. */
export function overlayMany<E extends Extent> (list: E[], puts: E[]): E[] {
  const out: E[] = []
  let i = 0
  let cur: E | undefined = list[i++]
  for (const p of puts) {
    if (p.len <= 0) continue
    const end = p.off + p.len
    while (cur !== undefined && cur.off + cur.len <= p.off) { out.push(cur); cur = list[i++] }
    if (cur !== undefined && cur.off < p.off) {
      const cut: number = p.off - cur.off
      out.push({ ...cur, len: cut })
      cur = { ...cur, off: p.off, len: cur.len - cut, coff: cur.coff + cut }
    }
    while (cur !== undefined && cur.off + cur.len <= end) cur = list[i++]
    if (cur !== undefined && cur.off < end) {
      const cut: number = end - cur.off
      cur = { ...cur, off: end, len: cur.len - cut, coff: cur.coff + cut }
    }
    out.push(p)
  }
  while (cur !== undefined) { out.push(cur); cur = list[i++] }
  return out
}

/** Cuts a sorted extent list at `size`. */
export function clip<E extends Extent> (list: E[], size: number): E[] {
  const out: E[] = []
  for (const e of list) {
    if (e.off >= size) break
    out.push(e.off + e.len > size ? { ...e, len: size - e.off } : e)
  }
  return out
}

/**
 * Parts hashed at once when they must be read (a file changed here and there): their MD5s
 * are hashed side by side (src/blob/hasher.ts), and each holds at most READ_SLICE * 2
 * bytes read and not yet hashed.
 */
const PARTS_AT_ONCE = 8
/** What one read of a part for its MD5 takes at most (parts grow to GiBs in a huge file). */
const READ_SLICE = 8 * 1024 * 1024

/** The MD5s of the session layout's parts of content; known[part] are used where given. */
export async function partMd5s (store: Store, extents: ReadableExtent[], size: number, known: Map<number, string>): Promise<Array<Omit<VersionPartRow, 'seq'>>> {
  const ranges = partsOf(size)
  const out: Array<Omit<VersionPartRow, 'seq'>> = new Array(ranges.length)
  let next = 0
  let failed = false // (then the others stop: the caller has its answer)
  const hashParts = async (): Promise<void> => {
    for (let i = next++; i < ranges.length && !failed; i = next++) {
      const r = ranges[i]
      let md5 = known.get(r.part)
      if (md5 === undefined) {
        const inside = clip(extents.slice(firstExtentAt(extents, r.start)), r.end).filter(e => e.off < r.end)
        try {
          md5 = inside.every(e => e.chunk === null) ? await md5OfZeros(r.end - r.start) : await md5OfRange(store, inside, r.start, r.end)
        } catch (err) {
          failed = true
          throw err
        }
      }
      out[i] = { part: r.part, off: r.start, size: r.end - r.start, md5 }
    }
  }
  await Promise.all(Array.from({ length: Math.min(PARTS_AT_ONCE, ranges.length) }, hashParts))
  return out
}

/**
 * MD5 of [start, end) of content whose extents are `inside` (holes fed as zeros), read in
 * slices that are hashed where they lie, beside other parts' when they wait together: at
 * most two slices wait, which only a part over 16 MiB (a file over 8 GB) reaches.
 */
async function md5OfRange (store: Store, inside: ReadableExtent[], start: number, end: number): Promise<string> {
  const h = new Md5Stream()
  const held: Array<{ n: number, fed: Promise<void> }> = []
  let heldBytes = 0
  try {
    let pos = start
    const zerosTo = async (to: number): Promise<void> => {
      if (to > pos) await h.updateZeros(to - pos)
      pos = Math.max(pos, to)
    }
    for (const e of inside) {
      const from = Math.max(start, e.off)
      const to = Math.min(end, e.off + e.len)
      if (to <= from) continue
      await zerosTo(from)
      for (let at = from; at < to; at += READ_SLICE) {
        const n = Math.min(READ_SLICE, to - at)
        // A fresh buffer nothing else holds.
        const data = await store.content.read([e], at + n, at, n)
        heldBytes += n
        const tooMuch = heldBytes > 2 * READ_SLICE
        const fed = h.updateHeld(data, tooMuch) // (tooMuch: hashed now, not after other parts')
        fed.catch(() => {}) // (a failure is the digest's)
        held.push({ n, fed })
        while (heldBytes > 2 * READ_SLICE) {
          const oldest = held.shift() as { n: number, fed: Promise<void> }
          await oldest.fed
          heldBytes -= oldest.n
        }
      }
      pos = to
    }
    await zerosTo(end)
    const md5 = await h.digest()
    await Promise.all(held.map(async x => { await x.fed }))
    return md5
  } finally {
    h.drop()
  }
}

/**
 * At mount: completes the session uploads a dead daemon left whose data a close or
 * an fsync had made final, and drops the others (files half-written, never closed).
 */
export async function recoverSessions (store: Store): Promise<{ completed: ObjectVersion[], dropped: number }> {
  const completed: ObjectVersion[] = []
  let dropped = 0
  for (const u of store.catalog.listUploads(null).filter(u => u.kind === 'session')) {
    if (u.sealed === 1) {
      completed.push(await recoverOne(store, u))
    } else {
      log('dropping half-written session upload %s for %s', u.upload_id, u.key)
      store.catalog.write(() => store.catalog.deleteUpload(u.id))
      dropped++
    }
  }
  return { completed, dropped }
}

async function recoverOne (store: Store, u: UploadRow): Promise<ObjectVersion> {
  const meta: SessionMeta = { bucket: store.catalog.bucketById(u.bucket_id)?.name ?? '', key: u.key, fields: JSON.parse(u.attrs) as VersionFields, baseSeq: u.base_seq, baseLimit: u.base_limit, size: u.size }
  let extents: ReadableExtent[] = u.base_seq === null ? [] : clip(store.catalog.extentsOf(u.base_seq), u.base_limit)
  for (const p of store.catalog.uploadParts(u.id)) {
    const r = partRange(p.part)
    const put = store.catalog.partExtents(u.id, p.part).map(e => ({ ...e, off: e.off + r.start }))
    extents = overlay(extents, r.start, r.end, put)
  }
  extents = clip(extents, u.size)
  const parts = await partMd5s(store, extents, u.size, new Map())
  const owner = store.content.newOwner()
  log('recovering session upload %s for %s/%s', u.upload_id, meta.bucket, u.key)
  return completeSession(store, u.id, meta, extents, parts, owner).version
}
