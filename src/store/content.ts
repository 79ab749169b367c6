// Object bytes: cutting incoming data into content-addressed chunks (ingest) and
// reading ranges back from extents (with every chunk verified against its hash).
import crypto from 'node:crypto'
import createDebug from 'debug'
import { LRUCache } from 'lru-cache'
import type { Catalog, Extent, ReadableExtent } from '../meta/catalog'
import { ChunkFiles } from '../blob/chunks'
import { sha256Moving, sha256AndCrc, crc32Moving, CRC_AVAILABLE } from '../blob/hasher'
import { ownsBuffer, recycle } from '../blob/pool'
import { SpaceReserve } from '../blob/space'
import { CHUNK_SIZE, INLINE_MAX } from './limits'
import { CORRUPT_CHUNK, ENTITY_TOO_LARGE } from '../errors'

const log = createDebug('bucketfs:content')
let ownerNext = crypto.randomBytes(6).readUIntBE(0, 6)
const WRITES_IN_FLIGHT = 4

/** What a caller gets back from writing chunks: extents naming pinned chunks. */
export interface Ingested {
  extents: Extent[]
  size: number
  md5: string
  /** Pins to drop in the transaction that commits the extents (Content.release). */
  owner: number
}

/** Bytes of a chunk file: where a range starts in it, and what the whole file must be (its size and CRC-32). */
export interface ChunkSlice { file: string, size: number, off: number, crc: number }

/** A stored chunk, as extents name it. */
export interface ChunkRef { id: number, hash: Buffer, crc: number | null, inline: number, size: number }

/** A chunk small enough to live in SQLite, hashed and ready to go into a transaction that names it (Content.insertInline). */
export interface InlineChunk { data: Buffer, hash: Buffer, crc: number | null }

export type Source = Buffer | string | AsyncIterable<Buffer | Uint8Array | string>

export class Content {
  private readonly verified: LRUCache<string, Buffer>
  private readonly loading = new Map<string, Promise<Buffer>>()
  readonly space: SpaceReserve

  constructor (readonly catalog: Catalog, readonly files: ChunkFiles, cacheBytes = 64 * 1024 * 1024) {
    this.space = new SpaceReserve(files.root)
    // A chunk read from disk is a pooled buffer: its memory goes back when it leaves the
    // cache, to be reused from the next event-loop turn; every reader copies out of it
    // before then (no await between getting a chunk and copying from it).
    this.verified = new LRUCache<string, Buffer>({
      maxSize: cacheBytes,
      sizeCalculation: b => Math.max(1, b.length),
      dispose: b => { if (ownsBuffer(b)) recycle(b.buffer) } // (only pooled-size ones are kept)
    })
  }

  /**
   * A new pin owner: unique across the processes sharing the store. A random 48-bit
   * start per process, then counted (randomBytes per owner cost 22 µs per small file).
   */
  newOwner (): number {
    ownerNext = (ownerNext + 1) % 2 ** 48
    return ownerNext
  }

  /**
   * Stores one chunk: its row is created and pinned by `owner` before its file is
   * written, so garbage collection cannot remove it before the metadata naming it commits.
   * New bytes must leave the disk's free-space reserve (src/blob/space.ts) untouched.
   */
  async putChunk (data: Buffer, owner: number): Promise<ChunkRef> {
    const { hash, crc } = await sha256AndCrc(data)
    const inline = data.length <= INLINE_MAX
    const fresh = this.catalog.chunkIdByHash(hash) === undefined
    if (fresh) await this.space.claim(data.length)
    // A chunk file's row is committed before the file is written: a crash never leaves a
    // file that no row names (group commits: Catalog.write).
    const put = (): number => {
      const id = this.catalog.ensureChunk(hash, data.length, inline ? Buffer.from(data) : null, crc)
      this.catalog.pin(id, owner, process.pid)
      return id
    }
    const id = inline ? this.catalog.write(put) : this.catalog.writeCommitted(put)
    if (!inline) await this.files.write(hash, data, fresh)
    return { id, hash, crc, inline: inline ? 1 : 0, size: data.length }
  }

  /**
   * Hashes a chunk that lives inline (at most INLINE_MAX bytes; copied) for a later
   * insertInline. Its new bytes are checked against the free-space reserve now.
   */
  async prepareInline (data: Buffer): Promise<InlineChunk> {
    if (data.length > INLINE_MAX) throw new Error(`prepareInline: ${data.length} bytes do not live inline`)
    const { hash, crc } = await sha256AndCrc(data)
    if (this.catalog.chunkIdByHash(hash) === undefined) await this.space.claim(data.length)
    return { data: Buffer.from(data), hash, crc }
  }

  /**
   * Stores a prepared inline chunk inside the caller's write transaction, the one whose
   * extents name it: no transaction and no pin of its own (gc cannot see it before
   * that commit). Answers its id.
   */
  insertInline (c: InlineChunk): number {
    return this.catalog.ensureChunk(c.hash, c.data.length, c.data, c.crc)
  }

  /**
   * Pins the chunks of extents that something in memory still reads (an open file whose
   * version may be deleted meanwhile), so gc keeps them; returns the owner to unpin.
   */
  pinExtents (extents: Array<{ chunk: number | null }>): number {
    const owner = this.newOwner()
    if (extents.some(e => e.chunk !== null)) this.catalog.write(() => { this.pinIn(extents, owner) })
    return owner
  }

  /** Pins the chunks of extents for owner, inside the caller's write transaction. */
  pinIn (extents: Array<{ chunk: number | null }>, owner: number): void {
    const ids = new Set<number>()
    for (const e of extents) if (e.chunk !== null) ids.add(e.chunk)
    for (const id of ids) this.catalog.pin(id, owner, process.pid)
  }

  /** Drops pins taken with pinExtents, soon (Catalog.unpinSoon): they only keep gc away. */
  unpin (owner: number): void {
    this.catalog.unpinSoon(owner)
  }

  /** Drops an owner's pins (inside the transaction that committed its extents, or after a failure). */
  release (owner: number): void {
    this.catalog.unpin(owner)
  }

  /** Cuts a source into chunks (each `chunkSize`, aligned to the source's start), stored and pinned. */
  async ingest (source: Source, maxSize: number): Promise<Ingested> {
    const owner = this.newOwner()
    const md5 = crypto.createHash('md5')
    const extents: Extent[] = []
    const pending = new Set<Promise<void>>()
    let size = 0
    let buf = Buffer.allocUnsafe(CHUNK_SIZE)
    let fill = 0
    let failure: unknown = null

    const emit = async (chunk: Buffer): Promise<void> => {
      const off = size - chunk.length
      const p = this.putChunk(chunk, owner).then(
        ref => { extents.push({ off, len: chunk.length, chunk: ref.id, coff: 0 }) },
        err => { failure ??= err })
      pending.add(p)
      void p.finally(() => pending.delete(p))
      if (pending.size >= WRITES_IN_FLIGHT) await Promise.race(pending)
    }

    try {
      const pieces: AsyncIterable<Buffer | Uint8Array | string> | Iterable<Buffer> = Buffer.isBuffer(source) ? [source] : typeof source === 'string' ? [Buffer.from(source)] : source
      for await (const piece of pieces) {
        let data = typeof piece === 'string' ? Buffer.from(piece) : Buffer.isBuffer(piece) ? piece : Buffer.from(piece.buffer, piece.byteOffset, piece.byteLength)
        if (size + data.length > maxSize) throw ENTITY_TOO_LARGE(`object exceeds the maximum size of ${maxSize} bytes`)
        md5.update(data)
        while (data.length > 0) {
          const n = Math.min(CHUNK_SIZE - fill, data.length)
          data.copy(buf, fill, 0, n)
          fill += n
          size += n
          data = data.subarray(n)
          if (fill === CHUNK_SIZE) {
            await emit(buf)
            buf = Buffer.allocUnsafe(CHUNK_SIZE)
            fill = 0
          }
        }
        if (failure !== null) throw failure
      }
      if (fill > 0) await emit(Buffer.from(buf.subarray(0, fill)))
      await Promise.all(pending)
      if (failure !== null) throw failure
      await this.files.syncWritten() // durable before the caller's transaction names them
    } catch (err) {
      await Promise.allSettled(pending)
      this.catalog.write(() => this.release(owner))
      throw err
    }
    extents.sort((a, b) => a.off - b.off)
    return { extents, size, md5: md5.digest('hex'), owner }
  }

  /** The whole verified content of a chunk; concurrent reads of one chunk share one load. */
  async chunk (e: ReadableExtent): Promise<Buffer> {
    const { chunk, hash } = e
    if (chunk === null || hash === null) throw CORRUPT_CHUNK(`extent at ${e.off} names a chunk that does not exist`)
    // Keyed by hash, not id: ids of collected chunks are reused, hashes name content.
    const hex = hash.toString('hex')
    const cached = this.verified.get(hex)
    if (cached !== undefined) return cached
    let loading = this.loading.get(hex)
    if (loading === undefined) {
      loading = this.load({ ...e, chunk, hash }, hex).finally(() => { this.loading.delete(hex) })
      this.loading.set(hex, loading)
    }
    return await loading
  }

  private async load (e: ReadableExtent & { chunk: number, hash: Buffer }, hex: string): Promise<Buffer> {
    let data: Buffer | undefined
    if (e.inline === 1) {
      data = this.catalog.inlineData(e.chunk)
    } else {
      try { data = await this.files.readWhole(e.hash, e.csize) } catch (err) {
        log('chunk %s unreadable: %s', hex, (err as Error).stack)
        throw CORRUPT_CHUNK(`chunk ${hex} is missing or unreadable`, err)
      }
    }
    // Checked against the CRC-32 written with it (a third of a SHA-256's cost), or its
    // SHA-256 when it has none (written before there were CRCs).
    let verified = false
    if (data !== undefined && data.length === e.csize) {
      if (e.crc != null && CRC_AVAILABLE) {
        const checked = await crc32Moving(data)
        data = checked.data
        verified = checked.crc === e.crc
      } else {
        const checked = await sha256Moving(data)
        data = checked.data
        verified = checked.hash.equals(e.hash)
      }
    }
    if (data === undefined || !verified) {
      const err = CORRUPT_CHUNK(`chunk ${hex} is damaged: its content does not match its hash`)
      log('%s', err.stack)
      throw err
    }
    this.verified.set(hex, data)
    return data
  }

  /** Bytes [off, off+len) of content described by sorted extents of total `size` (holes read as zeros). */
  async read (extents: ReadableExtent[], size: number, off: number, len: number): Promise<Buffer> {
    const out = Buffer.allocUnsafe(Math.max(0, Math.min(size, off + len) - off))
    await this.readInto(extents, size, off, out)
    return out
  }

  /**
   * Reads [off, off + out.length) into `out` (cut at `size`); answers the byte count.
   * `ahead`: bytes past the read whose chunks start loading now (a sequential reader's
   * next reads find them verified).
   */
  async readInto (extents: ReadableExtent[], size: number, off: number, out: Buffer, ahead = 0): Promise<number> {
    const end = Math.min(size, off + out.length)
    if (end <= off) return 0
    let pos = off
    let i = firstExtentAt(extents, off)
    for (; i < extents.length; i++) {
      const e = extents[i]
      if (e.off >= end) break
      const from = Math.max(off, e.off)
      const to = Math.min(end, e.off + e.len)
      if (to <= from || e.chunk === null) continue
      if (from > pos) out.fill(0, pos - off, from - off)
      const data = await this.chunk(e)
      data.copy(out, from - off, e.coff + (from - e.off), e.coff + (to - e.off))
      pos = to
    }
    if (pos < end) out.fill(0, pos - off, end - off)
    if (ahead > 0) this.prefetch(extents, i, end + ahead)
    return end - off
  }

  /**
   * Bytes [off, off+len) as a view into the one verified chunk holding all of them, or
   * undefined when they span extents or a hole (then readInto copies them). The view is
   * only valid until the caller's next await (the chunk's memory is reused later).
   */
  async viewAt (extents: ReadableExtent[], off: number, len: number): Promise<Buffer | undefined> {
    const i = firstExtentAt(extents, off)
    const e = extents[i]
    if (e === undefined || e.chunk === null || e.off > off || e.off + e.len < off + len) return undefined
    const data = await this.chunk(e)
    return data.subarray(e.coff + (off - e.off), e.coff + (off - e.off) + len)
  }

  /**
   * Where bytes [off, off+len) lie in the one chunk file holding all of them, for a reader
   * that checks the whole file's size and CRC-32 itself (bucketfs_read_load); undefined
   * when they span extents or a hole, the chunk lives inline or has no CRC-32, or it is
   * verified in memory already or being loaded here (viewAt then answers without reading
   * the disk again).
   */
  sliceAt (extents: ReadableExtent[], off: number, len: number): ChunkSlice | undefined {
    const e = extents[firstExtentAt(extents, off)]
    if (e === undefined || e.chunk === null || e.hash === null || e.inline === 1 || e.crc == null ||
      e.off > off || e.off + e.len < off + len) return undefined
    const hex = e.hash.toString('hex')
    if (this.verified.has(hex) || this.loading.has(hex)) return undefined
    return { file: this.files.pathOf(e.hash), size: e.csize, off: e.coff + (off - e.off), crc: e.crc }
  }

  /**
   * readInto when every chunk it needs is verified and in memory: the byte count, with
   * no promise in between; undefined (nothing read) when some chunk must be loaded.
   */
  readIntoCached (extents: ReadableExtent[], size: number, off: number, out: Buffer, ahead = 0): number | undefined {
    const end = Math.min(size, off + out.length)
    if (end <= off) return 0
    const first = firstExtentAt(extents, off)
    const parts: Array<{ e: ReadableExtent, data: Buffer }> = []
    let i = first
    for (; i < extents.length && extents[i].off < end; i++) {
      const e = extents[i]
      if (e.chunk === null) continue
      const data = e.hash === null ? undefined : this.verified.get(e.hash.toString('hex'))
      if (data === undefined) return undefined
      parts.push({ e, data })
    }
    let pos = off
    for (const { e, data } of parts) {
      const from = Math.max(off, e.off)
      const to = Math.min(end, e.off + e.len)
      if (to <= from) continue
      if (from > pos) out.fill(0, pos - off, from - off)
      data.copy(out, from - off, e.coff + (from - e.off), e.coff + (to - e.off))
      pos = to
    }
    if (pos < end) out.fill(0, pos - off, end - off)
    if (ahead > 0) this.prefetch(extents, i, end + ahead)
    return end - off
  }

  /** Starts loading the chunks holding [from, until) that are not loaded or loading. */
  prefetchFrom (extents: ReadableExtent[], from: number, until: number): void {
    this.prefetch(extents, firstExtentAt(extents, from), until)
  }

  /** Starts loading the chunks of extents[i…] that begin before `until`. */
  private prefetch (extents: ReadableExtent[], i: number, until: number): void {
    for (; i < extents.length && extents[i].off < until; i++) {
      const e = extents[i]
      if (e.chunk === null || e.hash === null || e.inline === 1) continue
      const hex = e.hash.toString('hex')
      if (this.verified.has(hex) || this.loading.has(hex)) continue
      this.chunk(e).catch(() => {}) // a damaged chunk is reported to the read that needs it
    }
  }

  forget (hash: Buffer): void { this.verified.delete(hash.toString('hex')) }
}

/** Index of the first extent that ends after `off` (extents sorted by off). */
export function firstExtentAt (extents: Extent[], off: number): number {
  let lo = 0
  let hi = extents.length
  while (lo < hi) {
    const mid = (lo + hi) >>> 1
    const e = extents[mid]
    if (e.off + e.len <= off) lo = mid + 1
    else hi = mid
  }
  return lo
}
