// One write session per open key: every handle of the key shares it. Writes land
// in chunk-sized buffers (materialized from the current content on first touch,
// so unchanged chunks are never rewritten); flushes turn dirty chunks into
// content-addressed chunks and upload the affected parts; completion turns the
// result into exactly one version (none when nothing changed).
import type { Store, VersionFields } from '../store/store'
import type { ObjectVersion } from '../store/types'
import type { ReadableExtent } from '../meta/catalog'
import { CHUNK_SIZE, INLINE_MAX, MAX_OBJECT_SIZE } from '../store/limits'
import type { InlineChunk } from '../store/content'
import { partAt, partRange } from '../store/layout'
import { persistSession, completeSession, overlay, overlayMany, clip, partMd5s } from '../store/sessions'
import type { SessionMeta } from '../store/sessions'
import { MemoryBudget, Mutex } from './budget'
import { Md5Stream } from '../blob/hasher'
import { ENTITY_TOO_LARGE, INVALID_ARGUMENT } from '../errors'

/** A part's MD5, streamed (on a hash worker) as its chunks are stored in order. */
interface PartMd5 { next: number, stream: Md5Stream }

/** Chunks being hashed and written at once behind a sequential writer (measured: 4 → 16 took dd from 190 to 230 MB/s). */
const CHUNK_WRITES_IN_FLIGHT = 16
/**
 * Stored chunks whose part MD5 may still read them, before a writer waits: the hasher
 * holds up to 64 MiB for a job while another job's worth runs (src/blob/hasher.ts), so
 * this only binds if hashing falls behind.
 */
const CHUNKS_HASHING_MAX = 96

/** Failures of write that came before it took its bytes: those bytes are not in the session. */
const untaken = new WeakSet<object>()

/**
 * Whether a write that failed with err had taken its bytes first (a store behind it
 * failed afterwards: they stay in memory for a retry), so the session lacks nothing.
 */
export function writeTookBytes (err: unknown): boolean {
  return typeof err === 'object' && err !== null && !untaken.has(err)
}

export class WriteSession {
  bucket: string
  key: string
  fields: VersionFields
  size: number
  changed: boolean
  private base: ObjectVersion | null
  private baseLimit: number
  private committed: ReadableExtent[]
  private readonly dirty = new Map<number, Buffer>()
  private readonly flushing = new Map<number, Buffer>()
  private readonly pendingParts = new Set<number>()
  private readonly touchedParts = new Set<number>()
  private readonly md5 = new Map<number, PartMd5>()
  private uploadRowId: number | null = null
  private readonly lock = new Mutex()
  /** Contiguous bytes written from each dirty chunk's start (write-behind when it reaches CHUNK_SIZE). */
  private readonly seqFill = new Map<number, number>()
  private readonly chunkGen = new Map<number, number>()
  private readonly inflight = new Set<Promise<void>>()
  /** Stored chunks' MD5 feeds not yet over (their buffers are held until then). */
  private readonly hashing = new Set<Promise<void>>()
  private storeError: unknown = null
  private detached = false
  private basePin: number | null = null
  /** Pins of chunks stored but not yet named by a committed part or version. */
  private owner: number | null = null

  constructor (private readonly store: Store, private readonly budget: MemoryBudget,
    bucket: string, key: string, base: ObjectVersion | null, fields: VersionFields, truncate: boolean, baseExtents?: ReadableExtent[]) {
    this.bucket = bucket
    this.key = key
    this.base = base
    this.fields = fields
    // `baseExtents`: the base's extents as already read, which stay right after its version
    // row is deleted (a file unlinked while open and then written through /proc/PID/fd).
    this.committed = base === null || truncate ? [] : baseExtents ?? store.extentsOf(base.seq)
    // The base's chunks stay readable even if its version is deleted meanwhile (gc skips pins).
    this.basePin = this.committed.length > 0 ? store.content.pinExtents(this.committed) : null
    this.size = base === null || truncate ? 0 : base.size
    this.baseLimit = this.size
    this.changed = base === null || (truncate && base.size > 0)
    if (truncate && base !== null) this.touchedParts.add(1)
  }

  // ------------------------------------------------------------ reads

  async read (off: number, len: number): Promise<Buffer> {
    const end = Math.min(this.size, off + len)
    if (end <= off) return Buffer.alloc(0)
    const out = Buffer.alloc(end - off)
    let pos = off
    while (pos < end) {
      const idx = Math.floor(pos / CHUNK_SIZE)
      const chunkEnd = Math.min(end, (idx + 1) * CHUNK_SIZE)
      const mem = this.dirty.get(idx) ?? this.flushing.get(idx)
      if (mem !== undefined) {
        const from = pos - idx * CHUNK_SIZE
        if (from < mem.length) mem.copy(out, pos - off, from, Math.min(mem.length, chunkEnd - idx * CHUNK_SIZE))
        pos = chunkEnd
        continue
      }
      // Coalesce a run of chunks that are not in memory into one read.
      let runEnd = chunkEnd
      while (runEnd < end && !this.dirty.has(runEnd / CHUNK_SIZE) && !this.flushing.has(runEnd / CHUNK_SIZE)) {
        runEnd = Math.min(end, runEnd + CHUNK_SIZE)
      }
      const data = await this.store.content.read(this.committed, this.size, pos, runEnd - pos)
      data.copy(out, pos - off)
      pos = runEnd
    }
    return out
  }

  // ------------------------------------------------------------ writes

  /**
   * Writes data at off. Taken in at once when nothing else holds the session, no store
   * failed and every chunk it touches is in memory or new: then the bytes and the size
   * are there for readers when this returns, and it answers undefined unless it must
   * wait for stores in flight or the budget's flush (a promise, whose failure is this
   * write's). Otherwise it waits its turn (a promise, over when the write is).
   * Answering without a promise saves each of a sequential writer's writes
   * some ten promise turns on the event loop that every write passes through.
   * `append` (O_APPEND): off is the size when the write's turn comes, so appends that
   * wait behind one another each go to the end. `given`: data is the caller's to give
   * away; a whole chunk of it, at a chunk's start, becomes that chunk's buffer (no copy).
   */
  write (data: Buffer, off: number, append = false, given = false): Promise<void> | undefined {
    if (append && data.length > 0) {
      if (!this.lock.idle) {
        return this.lock.run(async () => {
          this.checkWrite(data, this.size)
          await this.writeLocked(data, this.size)
        })
      }
      off = this.size
    }
    this.checkWrite(data, off)
    if (data.length === 0) return undefined
    const end = off + data.length
    if (this.lock.idle && this.storeError === null && this.inMemory(off, end)) {
      for (let pos = off; pos < end;) {
        const idx = Math.floor(pos / CHUNK_SIZE)
        const within = pos - idx * CHUNK_SIZE
        const n = Math.min(CHUNK_SIZE - within, end - pos)
        if (given && n === CHUNK_SIZE && !this.dirty.has(idx) && !this.flushing.has(idx)) {
          const whole = this.holdDirty(idx, data.subarray(pos - off, pos - off + n))
          this.fill(whole, idx, 0, whole, 0, n, true)
        } else {
          this.fill(this.chunkNow(idx, within + n) as Buffer, idx, within, data, pos - off, n)
        }
        pos += n
      }
      this.wrote(end)
      if (!this.behind() && !this.budget.exceeded) return undefined
      return this.lock.run(async () => {
        await this.catchUp()
        if (this.budget.exceeded) await this.relieveBudget()
      })
    }
    return this.lock.run(async () => { await this.writeLocked(data, off) })
  }

  /** Whether the stores (or the MD5s) behind a sequential writer are as many as it may leave behind. */
  private behind (): boolean {
    return this.inflight.size >= CHUNK_WRITES_IN_FLIGHT || this.hashing.size >= CHUNKS_HASHING_MAX
  }

  private async catchUp (): Promise<void> {
    while (this.behind()) await Promise.race(this.inflight.size >= CHUNK_WRITES_IN_FLIGHT ? this.inflight : this.hashing)
  }

  private checkWrite (data: Buffer, off: number): void {
    if (!Number.isSafeInteger(off) || off < 0) throw INVALID_ARGUMENT(`invalid offset ${off}`)
    if (off + data.length > MAX_OBJECT_SIZE) throw ENTITY_TOO_LARGE(`a file may not grow past ${MAX_OBJECT_SIZE} bytes`)
  }

  /** write's turn, with the session held (off checked). A failure before all its bytes are taken is marked so (writeTookBytes). */
  private async writeLocked (data: Buffer, off: number): Promise<void> {
    const end = off + data.length
    try {
      if (this.storeError !== null) {
        // A chunk stored behind an earlier write failed (ENOSPC…): say so now; its data is kept for a retry.
        const err = this.storeError
        this.storeError = null
        throw err
      }
      for (let pos = off; pos < end;) {
        const idx = Math.floor(pos / CHUNK_SIZE)
        const within = pos - idx * CHUNK_SIZE
        const n = Math.min(CHUNK_SIZE - within, end - pos)
        const stored = this.fill(await this.chunkForWrite(idx, within + n), idx, within, data, pos - off, n)
        pos += n
        if (stored) await this.catchUp()
      }
    } catch (err) {
      if (typeof err === 'object' && err !== null) untaken.add(err)
      throw err
    }
    this.wrote(end)
    if (this.budget.exceeded) await this.relieveBudget()
  }

  /**
   * The write budget is spent. Stored chunks waiting for their MD5 hold it too: they are
   * hashed now, without waiting for other parts to join them. Dirty buffers are flushed
   * as parts if it is still spent.
   */
  private async relieveBudget (): Promise<void> {
    if (this.hashing.size > 0) {
      for (const st of this.md5.values()) void st.stream.hurry()
      await Promise.all([...this.hashing])
    }
    if (this.budget.exceeded) await this.flushLocked(false)
  }

  /**
   * Copies data[from, from+n) to offset `within` of chunk idx's buffer (`inPlace`: they are
   * there already). Write-behind: a
   * chunk filled from its start by sequential writes is stored now, while the next ones
   * arrive, instead of at close (answers true then). Parts are not persisted here
   * (waiting for the stores in flight stalled the writer at every part boundary): fsync,
   * close and the write budget do it.
   */
  private fill (buf: Buffer, idx: number, within: number, data: Buffer, from: number, n: number, inPlace = false): boolean {
    if (!inPlace) data.copy(buf, within, from, from + n)
    const pos = idx * CHUNK_SIZE + within
    this.touch(pos, n)
    if ((this.seqFill.get(idx) ?? 0) !== within) return false
    this.seqFill.set(idx, within + n)
    if (within + n !== CHUNK_SIZE) return false
    this.size = Math.max(this.size, pos + n)
    this.storeChunk(idx)
    return true
  }

  /** A write up to `end` is in. */
  private wrote (end: number): void {
    this.size = Math.max(this.size, end)
    this.changed = true
    this.fields.posix.mtimeMs = Date.now()
    this.fields.posix.ctimeMs = this.fields.posix.mtimeMs
  }

  /** Whether every chunk of [off, end) can be written without reading its current bytes first. */
  private inMemory (off: number, end: number): boolean {
    for (let idx = Math.floor(off / CHUNK_SIZE); idx * CHUNK_SIZE < end; idx++) {
      if (!this.dirty.has(idx) && !this.flushing.has(idx) && this.size > idx * CHUNK_SIZE) return false
    }
    return true
  }

  /** Marks a written range: its parts changed, and part MD5s streamed past it are void. */
  private touch (pos: number, n: number): void {
    for (let p = pos; p < pos + n;) {
      const r = partAt(p)
      this.touchedParts.add(r.part)
      const st = this.md5.get(r.part)
      if (st !== undefined && p < st.next) this.dropMd5(r.part)
      p = r.end
    }
  }

  /** The dirty buffer of chunk idx, at least `need` bytes long, holding the chunk's current bytes. */
  private async chunkForWrite (idx: number, need: number): Promise<Buffer> {
    const now = this.chunkNow(idx, need)
    if (now !== undefined) return now
    const start = idx * CHUNK_SIZE
    const valid = Math.min(this.size, start + CHUNK_SIZE) - start
    const cur = await this.store.content.read(this.committed, this.size, start, valid)
    // (Nothing else ran meanwhile: the caller holds the lock, and writes taken in at once need it idle.)
    const buf = this.budget.buffer(capacityOf(idx, Math.max(need, valid)))
    cur.copy(buf)
    return this.holdDirty(idx, buf)
  }

  /** buf becomes chunk idx's dirty buffer (held in the budget), filled from nothing yet. */
  private holdDirty (idx: number, buf: Buffer): Buffer {
    this.dirty.set(idx, buf)
    this.seqFill.delete(idx)
    this.budget.take(buf.length)
    return buf
  }

  /** chunkForWrite without waiting: undefined when the chunk's current bytes must be read from the store first. */
  private chunkNow (idx: number, need: number): Buffer | undefined {
    let buf = this.dirty.get(idx)
    if (buf === undefined) {
      const start = idx * CHUNK_SIZE
      const valid = Math.max(0, Math.min(this.size, start + CHUNK_SIZE) - start)
      const mem = this.flushing.get(idx)
      if (mem === undefined && valid > 0) return undefined
      buf = this.holdDirty(idx, this.budget.buffer(capacityOf(idx, Math.max(need, valid))))
      if (mem !== undefined) mem.copy(buf, 0, 0, Math.min(mem.length, valid))
    }
    if (buf.length < need) {
      const bigger = this.budget.buffer(capacityOf(idx, need))
      buf.copy(bigger)
      this.budget.take(bigger.length - buf.length)
      this.dirty.set(idx, bigger)
      buf = bigger
    }
    return buf
  }

  async truncate (size: number): Promise<void> {
    if (!Number.isSafeInteger(size) || size < 0) throw INVALID_ARGUMENT(`invalid size ${size}`)
    if (size > MAX_OBJECT_SIZE) throw ENTITY_TOO_LARGE(`a file may not grow past ${MAX_OBJECT_SIZE} bytes`)
    await this.lock.run(async () => {
      if (size === this.size) return
      await this.settleStores()
      if (size < this.size) {
        for (const [idx, buf] of this.dirty) {
          const start = idx * CHUNK_SIZE
          if (start >= size) { this.dirty.delete(idx); this.seqFill.delete(idx); this.budget.give(buf.length) } else if (start + buf.length > size) buf.fill(0, size - start)
        }
        this.committed = clip(this.committed, size)
        this.baseLimit = Math.min(this.baseLimit, size)
        for (const [part, st] of this.md5) if (st.next > size) this.dropMd5(part)
        if (size > 0) {
          const r = partAt(size - 1)
          this.touchedParts.add(r.part)
          this.pendingParts.add(r.part)
        }
      } else {
        this.touch(this.size, size - this.size)
      }
      this.size = size
      this.changed = true
      this.fields.posix.mtimeMs = Date.now()
      this.fields.posix.ctimeMs = this.fields.posix.mtimeMs
    })
  }

  // ------------------------------------------------------------ flush and complete

  /**
   * Makes everything written so far uploaded parts (durable against power loss when
   * asked). No version. `seal`: a close or an fsync, whose data recovery completes.
   */
  async flush (durable: boolean, seal: boolean): Promise<boolean> {
    return await this.lock.run(async () => await this.flushLocked(durable, seal))
  }

  /** Answers whether it persisted anything (nothing: unchanged, or unlinked). */
  private async flushLocked (durable: boolean, seal = false): Promise<boolean> {
    if (!this.changed || this.detached) return false
    const owner = await this.storeDirtyChunks()
    if (this.detached) return false // unlinked meanwhile: nothing of it may be persisted
    this.uploadRowId = persistSession(this.store, this.uploadRowId, this.meta(), this.partsToPersist(), owner, durable, seal)
    this.owner = null
    this.pendingParts.clear()
    return true
  }

  private partsToPersist (): Array<{ part: number, extents: ReadableExtent[] }> {
    const out: Array<{ part: number, extents: ReadableExtent[] }> = []
    for (const part of [...this.pendingParts].sort((a, b) => a - b)) {
      const r = partRange(part)
      if (r.start >= this.size) continue
      const end = Math.min(r.end, this.size)
      const inside = clip(overlay(this.committed, 0, r.start, []), end).filter(e => e.off >= r.start)
      out.push({ part, extents: inside })
    }
    return out
  }

  /**
   * Starts storing dirty chunk idx as a content-addressed chunk (pinned by this.owner
   * until the transaction that names it). Its buffer stays readable in `flushing` until
   * the chunk is in `committed`. A chunk stored twice applies only its newest copy.
   */
  private storeChunk (idx: number): void {
    const buf = this.dirty.get(idx)
    if (buf === undefined) return
    this.dirty.delete(idx)
    this.seqFill.delete(idx)
    const start = idx * CHUNK_SIZE
    const len = Math.min(CHUNK_SIZE, this.size - start)
    if (len <= 0) { this.budget.give(buf.length); return }
    this.flushing.set(idx, buf)
    const gen = (this.chunkGen.get(idx) ?? 0) + 1
    this.chunkGen.set(idx, gen)
    const data = buf.length >= len ? buf.subarray(0, len) : Buffer.concat([buf, Buffer.alloc(len - buf.length)])
    const md5Fed = this.streamMd5(start, data)
    this.owner ??= this.store.content.newOwner()
    // The store is over once the chunk is written: its part's MD5 may be hashed later,
    // side by side with other parts' (src/blob/hasher.ts). Both read buf where it lies:
    // it is reused once both are over, and it goes back to dirty after a failed store
    // only once the MD5 is over too (that MD5 is void: the retry drops it).
    const put = this.store.content.putChunk(data, this.owner)
    const hashed = md5Fed.catch(() => {})
    this.hashing.add(hashed)
    void hashed.then(() => this.hashing.delete(hashed))
    const p = put.then(ref => {
      if (this.chunkGen.get(idx) === gen) {
        // Only what is still inside the file (a truncate waits for stores in flight).
        const keep = Math.min(len, this.size - start)
        if (keep > 0) {
          this.committed = overlayMany(this.committed, [{ off: start, len: keep, chunk: ref.id, coff: 0, hash: ref.hash, crc: ref.crc, inline: ref.inline, csize: ref.size }])
          this.pendingParts.add(partAt(start).part)
        }
      }
      if (this.flushing.get(idx) === buf) this.flushing.delete(idx)
      void hashed.then(() => {
        this.budget.give(buf.length)
        // Stored and hashed: nothing reads it any more (readers copy out of `flushing` synchronously).
        this.budget.recycle(buf)
      })
    }, async (err: unknown) => {
      this.storeError ??= err
      await hashed
      // Nothing written is lost: the buffer goes back to dirty unless newer data is there.
      if (this.flushing.get(idx) === buf) {
        this.flushing.delete(idx)
        if (!this.dirty.has(idx)) { this.dirty.set(idx, buf); return }
      }
      this.budget.give(buf.length)
    })
    this.inflight.add(p)
    void p.finally(() => this.inflight.delete(p))
  }

  /**
   * The file's last chunk, if it is dirty, small enough to live inline and completes its
   * part's MD5: taken out of memory here, to be stored inside the completing transaction
   * (a small file's close commits once, not twice). Every other chunk is a whole
   * CHUNK_SIZE, too big to live inline: those are left to storeDirtyChunks.
   */
  private async takeInlineChunks (): Promise<Array<{ off: number, chunk: InlineChunk }>> {
    if (this.size === 0) return []
    const idx = Math.floor((this.size - 1) / CHUNK_SIZE)
    const buf = this.dirty.get(idx)
    const start = idx * CHUNK_SIZE
    const len = this.size - start
    if (buf === undefined || len > INLINE_MAX) return []
    const r = partAt(start)
    // Its part's MD5 must be known once it is fed: the part is not read back before the commit.
    const fedTo = this.md5.get(r.part)?.next ?? (start === r.start ? start : -1)
    if (fedTo !== start || start + len !== Math.min(r.end, this.size)) return []
    const data = buf.length >= len ? buf.subarray(0, len) : Buffer.concat([buf, Buffer.alloc(len - buf.length)])
    const chunk = await this.store.content.prepareInline(data) // (ENOSPC: the reserve is reached)
    await this.streamMd5(start, chunk.data, true)
    this.dirty.delete(idx)
    this.seqFill.delete(idx)
    this.budget.give(buf.length)
    this.budget.recycle(buf)
    return [{ off: start, chunk }]
  }

  /** Inline chunks taken for a completion that failed are dirty again (their part's MD5 is read again later). */
  private giveBackInline (inline: Array<{ off: number, chunk: InlineChunk }>): void {
    for (const { off, chunk } of inline) {
      const idx = off / CHUNK_SIZE
      this.dropMd5(partAt(off).part)
      if (this.dirty.has(idx)) continue
      const buf = this.budget.buffer(capacityFor(chunk.data.length))
      chunk.data.copy(buf)
      this.budget.take(buf.length)
      this.dirty.set(idx, buf)
    }
  }

  /** Waits for every chunk store in flight; throws (once) the first failure. */
  private async settleStores (): Promise<void> {
    while (this.inflight.size > 0) await Promise.all([...this.inflight])
    const err = this.storeError
    this.storeError = null
    if (err !== null) throw err
  }

  /** Stores every dirty chunk into `committed`; returns the owner whose pins the caller's transaction drops. */
  private async storeDirtyChunks (): Promise<number> {
    await this.settleStores()
    for (const idx of [...this.dirty.keys()].sort((a, b) => a - b)) {
      this.storeChunk(idx)
      if (this.inflight.size >= CHUNK_WRITES_IN_FLIGHT) await Promise.race(this.inflight)
    }
    await this.settleStores()
    await this.store.content.files.syncWritten()
    this.owner ??= this.store.content.newOwner()
    return this.owner
  }

  private dropMd5 (part: number): void {
    this.md5.get(part)?.stream.drop()
    this.md5.delete(part)
  }

  /** Feeds a part's MD5 stream data at start (kept untouched until this answers; `soon`: awaited now). */
  private async streamMd5 (start: number, data: Buffer, soon = false): Promise<void> {
    const r = partAt(start)
    let st = this.md5.get(r.part)
    if (st === undefined && start === r.start) {
      st = { next: start, stream: new Md5Stream() }
      this.md5.set(r.part, st)
    }
    if (st === undefined) return
    if (st.next !== start) { this.dropMd5(r.part); return }
    st.next += data.length
    await st.stream.updateHeld(data, soon) // (both callers keep data until this answers)
  }

  /** MD5s known without reading: streamed during flushes, or unchanged parts of the base. */
  private async knownMd5s (): Promise<Map<number, string>> {
    const known = new Map<number, string>()
    const streamed = [...this.md5].filter(([part, st]) => st.next === Math.min(partRange(part).end, this.size))
    // A digest the worker could not give (it died) is left out: that part is read again.
    const digests = await Promise.all(streamed.map(async ([, st]) => await st.stream.digest().catch(() => undefined)))
    streamed.forEach(([part], i) => { const d = digests[i]; if (d !== undefined) known.set(part, d) })
    if (this.base !== null) {
      for (const p of this.store.catalog.versionParts(this.base.seq)) {
        const r = partRange(p.part)
        const end = Math.min(r.end, this.size)
        if (!this.touchedParts.has(p.part) && p.off === r.start && p.off + p.size === end && end <= this.baseLimit && !known.has(p.part)) known.set(p.part, p.md5)
      }
    }
    return known
  }

  /** Completes the session into one version, or none when nothing changed. The session stays usable. */
  async complete (): Promise<ObjectVersion | null> {
    return await this.lock.run(async () => {
      if (!this.changed || this.detached) return null
      await this.settleStores()
      const inline = await this.takeInlineChunks()
      let done: { version: ObjectVersion, extents: ReadableExtent[] }
      // The session goes on from the new version: its chunks are pinned in the same transaction.
      const pin = this.store.content.newOwner()
      try {
        const owner = await this.storeDirtyChunks()
        if (this.detached) { this.giveBackInline(inline); return null }
        const extents = clip(this.committed, this.size)
        const parts = await partMd5s(this.store, extents, this.size, await this.knownMd5s())
        // Unlinked or replaced while its MD5s were hashed: nothing of it may be stored under its old name.
        if (this.detached) { this.giveBackInline(inline); return null }
        done = completeSession(this.store, this.uploadRowId, this.meta(), extents, parts, owner, { pin, unpin: this.basePin }, inline)
      } catch (err) {
        this.giveBackInline(inline)
        throw err
      }
      this.owner = null
      this.basePin = null
      this.rebase(done.version, done.extents, pin)
      return done.version
    })
  }

  /**
   * The file lost its name (unlinked, or replaced by a rename): its persisted upload is
   * dropped at once so recovery cannot bring it back, and nothing is persisted again;
   * reads and writes go on in memory until the last handle closes.
   */
  detach (): void {
    if (this.detached) return
    this.detached = true
    const id = this.uploadRowId
    this.uploadRowId = null
    if (id !== null) this.store.catalog.write(() => this.store.catalog.deleteUpload(id))
  }

  /** The session is over (its last handle closed): its base chunks need no pin any more. */
  releasePins (): void {
    if (this.basePin !== null) { this.store.content.unpin(this.basePin); this.basePin = null }
  }

  /**
   * Drops everything written and ends the session (the file was unlinked while open, or
   * its save failed). Never throws: memory goes back to the write budget first; the
   * store's part (the upload row, the pins) is done at once if the database can take it,
   * else returned to be retried.
   */
  async abort (): Promise<(() => void) | null> {
    return await this.lock.run(async () => {
      await this.settleStores().catch(() => {})
      for (const buf of this.dirty.values()) this.budget.give(buf.length)
      this.dirty.clear()
      this.seqFill.clear()
      for (const part of [...this.md5.keys()]) this.dropMd5(part)
      this.detached = true
      this.changed = false
      const upload = this.uploadRowId
      const owner = this.owner
      const basePin = this.basePin
      this.uploadRowId = null
      this.owner = null
      this.basePin = null
      const cleanup = (): void => {
        this.store.catalog.write(() => {
          if (upload !== null) this.store.catalog.deleteUpload(upload)
          if (owner !== null) this.store.content.release(owner)
          if (basePin !== null) this.store.content.release(basePin)
        })
      }
      try { cleanup(); return null } catch { return cleanup }
    })
  }

  /** Goes on from v, whose chunks `pin` holds (taken with it). */
  private rebase (v: ObjectVersion, extents: ReadableExtent[], pin: number): void {
    this.base = v
    this.committed = extents
    this.basePin = pin
    this.size = v.size
    this.baseLimit = v.size
    this.uploadRowId = null
    this.changed = false
    this.touchedParts.clear()
    this.pendingParts.clear()
    for (const part of [...this.md5.keys()]) this.dropMd5(part)
  }

  private meta (): SessionMeta {
    return { bucket: this.bucket, key: this.key, fields: this.fields, baseSeq: this.base?.seq ?? null, baseLimit: this.baseLimit, size: this.size }
  }

  /** About how many bytes of the file are not holes: stored chunks plus buffers in memory. */
  get storedBytes (): number {
    let n = 0
    for (const e of this.committed) if (e.chunk !== null && e.off < this.size) n += Math.min(e.len, this.size - e.off)
    for (const b of this.dirty.values()) n += b.length
    for (const b of this.flushing.values()) n += b.length
    return Math.min(n, this.size)
  }

  get dirtyBytes (): number {
    let n = 0
    for (const b of this.dirty.values()) n += b.length
    return n
  }
}

/**
 * Buffers grow by doubling from 4 KiB up to the chunk size, so small files do not hold
 * a whole chunk. (From 64 KiB, zero-filling each new file's buffer cost 23 µs a file in
 * an rsync of small files, and its external memory brought the garbage collector on.)
 */
/**
 * The buffer size for chunk idx holding n bytes: a whole chunk past the first (a file
 * that big is written in whole chunks; growing each from a few KiB cost a sequential
 * writer a zero-filled allocation and a copy per doubling), else capacityFor(n).
 */
function capacityOf (idx: number, n: number): number {
  return idx > 0 ? CHUNK_SIZE : capacityFor(n)
}

function capacityFor (n: number): number {
  if (n >= CHUNK_SIZE) return CHUNK_SIZE
  let cap = 4 * 1024
  while (cap < n) cap *= 2
  return Math.min(cap, CHUNK_SIZE)
}
