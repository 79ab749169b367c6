// Hashing off the event loop. SHA-256 of every chunk (written and read) and the MD5
// of every part take about 2.6 ms of CPU per MiB, which on the main thread stalled
// every other operation and capped sequential I/O. Where our addon native/chunkio.c
// loads, they run on libuv's threadpool over the caller's own buffer (no copy; the
// caller leaves it untouched until the answer). Without it, worker threads do them on
// the other core: what a worker hashes is a copy moved to it (transferred), which its
// own garbage collector frees: buffers shared with workers (SharedArrayBuffer) were
// not collected in time and held gigabytes during a 4 GiB write.
// Small inputs are hashed in place: a round trip to a thread costs more.
// CRC-32s (the read checks) come from @node-rs/crc32 (about 22 GB/s here, against
// zlib.crc32's 4.4): fast enough to run in place whatever the size.
import crypto from 'node:crypto'
import zlib from 'node:zlib'
import { Worker } from 'node:worker_threads'
import createDebug from 'debug'
import { POOLED, ownsBuffer, pooledBuffer, recycle } from './pool'
import { alignedMemory } from './aligned'
import { chunkIo } from '../addon'

const log = createDebug('bucketfs:hasher')

/** Below this many bytes hashing is cheaper than a round trip to a worker. */
const IN_PLACE_MAX = 128 * 1024

/** native/chunkio.c, when it was built (else the workers below do the hashing). */
const io = chunkIo()
/** Whether large hashes run on the threadpool in place (native/chunkio.c), not on worker threads. */
export const NATIVE_HASHING = io !== undefined

// The worker's code is source text, so the same worker runs from dist/ and under
// tap's TypeScript loader (a Worker cannot load a .ts file). Each buffer a worker
// was given goes back (transferred) once hashed, to be reused.
const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads')
const crypto = require('node:crypto')
const zlib = require('node:zlib')
// The same CRC-32 either way: zlib's when the faster module cannot be loaded here. With
// neither (Node before 20.15), no CRC is answered: the chunk is stored without one.
let crc32 = zlib.crc32
try { if (workerData.crcModule) crc32 = require(workerData.crcModule).crc32 } catch {}
const streams = new Map()
const zeros = Buffer.alloc(8 * 1024 * 1024)
parentPort.on('message', m => {
  let answer = {}
  try {
    if (m.op === 'sha256') {
      answer = { req: m.req, value: crypto.createHash('sha256').update(m.data).digest('hex') }
      if (m.crc === true && crc32 !== undefined) answer.crc = crc32(m.data)
    } else if (m.op === 'crc32') {
      answer = { req: m.req, value: '', crc: crc32(m.data) }
    } else if (m.op === 'update') {
      let h = streams.get(m.id)
      if (h === undefined) { h = crypto.createHash('md5'); streams.set(m.id, h) }
      h.update(m.data)
    } else if (m.op === 'zeros') {
      let h = streams.get(m.id)
      if (h === undefined) { h = crypto.createHash('md5'); streams.set(m.id, h) }
      for (let left = m.len; left > 0; left -= zeros.length) h.update(left >= zeros.length ? zeros : zeros.subarray(0, left))
      answer = { req: m.req, value: '' }
    } else if (m.op === 'digest') {
      const h = streams.get(m.id) ?? crypto.createHash('md5')
      answer = { req: m.req, value: h.copy().digest('hex') }
    } else if (m.op === 'drop') {
      streams.delete(m.id)
    }
  } catch (err) {
    answer = { req: m.req, error: String(err && err.stack || err) }
  }
  if (m.data !== undefined) parentPort.postMessage({ ...answer, back: m.data.buffer }, [m.data.buffer])
  else if (answer.req !== undefined) parentPort.postMessage(answer)
})
`

/** Buffers a worker may have queued before a sender waits (MD5 runs at ~530 MB/s here). */
const BACKLOG = 16

/** A copy of data that can be moved to a worker (one memcpy; the caller keeps its buffer). */
function movable (data: Buffer): Uint8Array {
  const copy = data.length === POOLED ? pooledBuffer() : new Uint8Array(data.length)
  copy.set(data)
  return copy
}

/** An answer, and the buffer the worker gave back when its asker wants it. */
interface Answer { value: string, crc?: number, back?: ArrayBuffer }
interface Pending { resolve: (v: Answer) => void, reject: (e: Error) => void, wantsBack: boolean }

class HashWorker {
  private worker: Worker | null = null
  private readonly pending = new Map<number, Pending>()
  /** Buffers handed over and not yet given back; who waits for that number to drop. */
  private queued = 0
  private readonly waiting: Array<() => void> = []
  /** Counts the workers that died: an MD5 stream fed to an earlier one is lost. */
  generation = 0

  private get w (): Worker {
    if (this.worker === null) {
      const w = new Worker(WORKER_SOURCE, { eval: true, workerData: { crcModule: FAST_CRC_MODULE } })
      w.on('message', (m: { req?: number, value?: string, crc?: number, error?: string, back?: ArrayBuffer }) => {
        const p = m.req === undefined ? undefined : this.pending.get(m.req)
        if (m.back !== undefined) {
          if (p?.wantsBack !== true) recycle(m.back)
          this.queued--
          while (this.waiting.length > 0 && this.queued <= BACKLOG) this.waiting.shift()?.()
          this.idleCheck(w)
        }
        if (m.req === undefined || p === undefined) return
        this.pending.delete(m.req)
        this.idleCheck(w)
        if (m.error !== undefined) p.reject(new Error(m.error))
        else p.resolve({ value: m.value ?? '', crc: m.crc, back: m.back })
      })
      w.on('error', err => { this.fail(w, err) })
      w.on('exit', code => { this.fail(w, new Error(`hash worker exited with ${code}`)) })
      w.unref()
      this.worker = w
    }
    return this.worker
  }

  /** The worker keeps the process alive only while it has work whose answer someone awaits. */
  private idleCheck (w: Worker): void {
    if (this.pending.size === 0 && this.queued === 0) w.unref()
  }

  /** A dead worker fails what it had (MD5 streams on it are lost: their digests reject). */
  private fail (w: Worker, err: Error): void {
    if (this.worker !== w) return
    log('hash worker failed: %s', err.message)
    this.worker = null
    this.generation++
    this.queued = 0
    for (const resume of this.waiting.splice(0)) resume()
    for (const p of this.pending.values()) p.reject(err)
    this.pending.clear()
  }

  /** Sends; with data, answers when the worker's backlog is small again (back-pressure). */
  async send (msg: Record<string, unknown>, data?: Uint8Array): Promise<void> {
    if (data === undefined) { this.w.postMessage(msg); return }
    this.w.ref()
    this.w.postMessage({ ...msg, data }, [data.buffer as ArrayBuffer])
    this.queued++
    if (this.queued > BACKLOG) await new Promise<void>(resolve => { this.waiting.push(resolve) })
  }

  /** `wantsBack`: the answer carries the data's buffer back (else it goes to the pool). */
  async ask (msg: Record<string, unknown>, data?: Uint8Array, wantsBack = false): Promise<Answer> {
    const w = this.w
    const req = nextReq++
    const answer = new Promise<Answer>((resolve, reject) => { this.pending.set(req, { resolve, reject, wantsBack }) })
    w.ref()
    try {
      if (data === undefined) w.postMessage({ ...msg, req })
      else { w.postMessage({ ...msg, req, data }, [data.buffer as ArrayBuffer]); this.queued++ }
    } catch (err) {
      this.pending.delete(req)
      this.idleCheck(w)
      throw err
    }
    return await answer
  }
}

let nextReq = 1
let nextStream = 1
/**
 * One worker streams MD5s (533 MB/s here), the other does SHA-256s (1.3 GB/s with
 * SHA-NI): a chunk's SHA-256, which a write may wait for, never queues behind MD5s.
 */
const md5Worker = new HashWorker()
const shaWorker = new HashWorker()

/** SHA-256 of data, on a worker when it is large. */
export async function sha256Of (data: Buffer): Promise<Buffer> {
  if (data.length <= IN_PLACE_MAX) return crypto.createHash('sha256').update(data).digest()
  if (io !== undefined) return (await io.sha256Crc(data, false))[0]
  return Buffer.from((await shaWorker.ask({ op: 'sha256' }, movable(data))).value, 'hex')
}

/** @node-rs/crc32's entry, where its prebuilt addon loads (it computes zlib's CRC-32). */
const FAST_CRC_MODULE: string | undefined = (() => {
  try {
    const file = require.resolve('@node-rs/crc32')
    const m = require(file) as { crc32?: (d: Uint8Array) => number }
    const probe = Buffer.from('123456789')
    return m.crc32?.(probe) === 0xcbf43926 ? file : undefined
  } catch {
    return undefined
  }
})()
const fastCrc32 = FAST_CRC_MODULE === undefined ? undefined : (require(FAST_CRC_MODULE) as { crc32: (d: Uint8Array) => number }).crc32
const zlibCrc32 = (zlib as { crc32?: (d: Uint8Array) => number }).crc32

/**
 * Whether CRC-32s can be computed (@node-rs/crc32, or zlib.crc32 of Node 20.15 and
 * later): without either, chunks get no CRC and reads check SHA-256s.
 */
export const CRC_AVAILABLE = fastCrc32 !== undefined || typeof zlibCrc32 === 'function'
/** Whether CRC-32s of any size are computed in place (@node-rs/crc32 loaded), not on a worker. */
export const CRC_IN_PLACE = fastCrc32 !== undefined
const crc32 = (data: Uint8Array): number => (fastCrc32 ?? zlibCrc32 as (d: Uint8Array) => number)(data)

/**
 * SHA-256 and CRC-32 (null without zlib.crc32) of a chunk being written, in one pass
 * off the event loop; data must stay untouched until the answer.
 */
export async function sha256AndCrc (data: Buffer): Promise<{ hash: Buffer, crc: number | null }> {
  if (!CRC_AVAILABLE) return { hash: await sha256Of(data), crc: null }
  if (data.length <= IN_PLACE_MAX) return { hash: crypto.createHash('sha256').update(data).digest(), crc: crc32(data) }
  if (io !== undefined) {
    const [hash, crc] = await io.sha256Crc(data, true)
    return { hash, crc }
  }
  const a = await shaWorker.ask({ op: 'sha256', crc: true }, movable(data))
  return { hash: Buffer.from(a.value, 'hex'), crc: a.crc ?? null }
}

/**
 * Whether data can be moved to a worker: it owns its whole ArrayBuffer, which is not
 * aligned memory from the addon (such a buffer is copied by postMessage on Node 20 and
 * refused on later versions).
 */
function canMove (data: Buffer): boolean {
  return ownsBuffer(data) && !alignedMemory(data.buffer)
}

/** Asks the SHA-256 worker about data moved to it (not copied); answers with the same bytes back. */
async function askMoving (op: 'sha256' | 'crc32', data: Buffer): Promise<{ answer: Answer, data: Buffer }> {
  const answer = await shaWorker.ask({ op }, new Uint8Array(data.buffer), true)
  if (answer.back === undefined) throw new Error('the hash worker did not give the chunk back')
  return { answer, data: Buffer.from(answer.back) }
}

/**
 * SHA-256 of data that is the caller's to give (a chunk just read): it is moved to the
 * worker, not copied, when it owns its whole ArrayBuffer. `data` must not be touched
 * until this answers; use the `data` answered (the same bytes) instead.
 */
export async function sha256Moving (data: Buffer): Promise<{ hash: Buffer, data: Buffer }> {
  if (data.length <= IN_PLACE_MAX || io !== undefined || !canMove(data)) return { hash: await sha256Of(data), data }
  const moved = await askMoving('sha256', data)
  return { hash: Buffer.from(moved.answer.value, 'hex'), data: moved.data }
}

/** CRC-32 of data that is the caller's to give, as sha256Moving. Needs CRC_AVAILABLE. */
export async function crc32Moving (data: Buffer): Promise<{ crc: number, data: Buffer }> {
  if (CRC_IN_PLACE || data.length <= IN_PLACE_MAX || !canMove(data)) return { crc: crc32(data), data }
  const moved = await askMoving('crc32', data)
  if (moved.answer.crc === undefined) throw new Error('the hash worker gave no CRC')
  return { crc: moved.answer.crc, data: moved.data }
}

/** Streams hashed side by side by one md5Lanes job (the width of its vectors). */
const LANES = 8
/**
 * Bytes waiting for MD5 before a job starts without waiting for LANES streams. A
 * sequential writer's chunk buffers stay in memory until hashed, so this bounds what it
 * holds (another job's worth may be hashing). 8 MiB parts: eight, one per lane. Measured
 * on a 1 GiB dd (4 rounds each, twice): 32 MiB took 521-570 MB/s and 2.5 s of pool-thread
 * CPU, 64 MiB 532-586 MB/s and 2.3 s; the 4 GiB write's peak RSS was 214 and 221 MiB.
 */
const HELD_MAX = 64 * 1024 * 1024
/** How long bytes wait for other streams to join them before they are hashed anyway. */
const LINGER_MS = 200

/** Holes hashed at once (each its own job). */
const ZERO_JOBS = 2

/** What a native stream has waiting for the next job. */
interface Waiting { pieces: Uint8Array[], bytes: number, hashed: Promise<void>, done: () => void }

/**
 * Gathers what the native MD5 streams are fed into md5Lanes jobs (native/md5lanes.c):
 * one job hashes up to eight streams side by side for about the time of one. A piece
 * waits until eight streams have some, or HELD_MAX bytes wait, or someone waits for a
 * stream (`soon`, `settle`), or LINGER_MS passed; one job runs at a time. Where the CPU
 * has no vector kernel, each stream's pieces go at once to a job of their own (jobs of
 * different streams run on the pool's threads side by side instead). A hole is hashed
 * in a job of its own, after what came before it: a long one would hold up the others'.
 * A piece's promise answers once it is hashed (its owner keeps it untouched until then);
 * a job's failure is its streams', answered by their digests.
 */
class LaneHasher {
  private readonly waiting = new Map<object, Waiting>()
  private waitingBytes = 0
  /** The streams jobs feed now, each with the end of its job (md5Lanes or md5Zeros). */
  private readonly running = new Map<object, Promise<void>>()
  private lanesJobs = 0
  private zeroJobs = 0
  private readonly zeroTurns: Array<() => void> = []
  /** Streams someone waits for: the next job starts at once. */
  private readonly urgent = new Set<object>()
  private timer: NodeJS.Timeout | null = null
  /** Whether streams are hashed side by side (a vector kernel runs here). */
  private readonly together: boolean
  readonly failures = new WeakMap<object, unknown>()

  constructor (private readonly chunkIo: NonNullable<typeof io>) {
    this.together = chunkIo.md5Kernel() !== 'scalar'
  }

  /** Queues data for stream (`soon`: its hashing is awaited now); answers once it is hashed. */
  async feed (stream: object, data: Uint8Array, soon = false): Promise<void> {
    let w = this.waiting.get(stream)
    if (w === undefined) {
      let done = (): void => {}
      const hashed = new Promise<void>(resolve => { done = resolve })
      w = { pieces: [], bytes: 0, hashed, done }
      this.waiting.set(stream, w)
    }
    w.pieces.push(data)
    w.bytes += data.length
    this.waitingBytes += data.length
    if (soon) this.urgent.add(stream)
    this.consider()
    await w.hashed
  }

  /**
   * Feeds len zero bytes after everything fed before; answers once they are hashed. At
   * most ZERO_JOBS run at once (eight parts read again at a close may each have a hole):
   * the threadpool also writes chunks and reads files.
   */
  async zeros (stream: object, len: number): Promise<void> {
    while (this.zeroJobs >= ZERO_JOBS) await new Promise<void>(resolve => { this.zeroTurns.push(resolve) })
    this.zeroJobs++
    try {
      await this.zerosNow(stream, len)
    } finally {
      this.zeroJobs--
      this.zeroTurns.shift()?.()
    }
  }

  private async zerosNow (stream: object, len: number): Promise<void> {
    // Fed again meanwhile: settled again, so that the stream is in no job when this starts.
    while (this.waiting.has(stream) || this.running.has(stream)) await this.settle(stream)
    let job: Promise<void>
    try {
      job = this.chunkIo.md5Zeros(stream, len)
    } catch (err) {
      job = Promise.reject(err)
    }
    const over = job.catch((err: unknown) => { this.failed([stream], err) }).then(() => {
      this.running.delete(stream)
      this.consider()
    })
    this.running.set(stream, over)
    await over
  }

  /** Answers once everything stream was fed is hashed (which starts now). */
  async settle (stream: object): Promise<void> {
    for (;;) {
      const w = this.waiting.get(stream)
      const run = this.running.get(stream)
      if (w === undefined && run === undefined) return
      if (w !== undefined) { this.urgent.add(stream); this.consider() }
      await (run ?? w?.hashed)
    }
  }

  /**
   * The stream is not wanted any more: pieces waiting are not hashed, and their promises
   * answer now. Its digest would fail (it lacks them).
   */
  forget (stream: object): void {
    if (!this.failures.has(stream)) this.failures.set(stream, new Error('this MD5 stream was dropped'))
    this.takeWaiting(stream)?.done()
  }

  /** What stream has waiting, taken out of the queue. */
  private takeWaiting (stream: object): Waiting | undefined {
    const w = this.waiting.get(stream)
    if (w === undefined) return undefined
    this.waiting.delete(stream)
    this.urgent.delete(stream)
    this.waitingBytes -= w.bytes
    return w
  }

  private failed (streams: object[], err: unknown): void {
    log('MD5 job of %d streams failed: %s', streams.length, err instanceof Error ? err.message : String(err))
    for (const stream of streams) if (!this.failures.has(stream)) this.failures.set(stream, err)
  }

  private consider (): void {
    if (this.waiting.size === 0) return
    if (!this.together) { this.start(); return }
    if (this.lanesJobs > 0) return
    if (this.urgent.size > 0 || this.waiting.size >= LANES || this.waitingBytes >= HELD_MAX) { this.start(); return }
    if (this.timer === null) {
      // (Not unref'd: whoever waits for a piece gets its answer, at most LINGER_MS late.)
      this.timer = setTimeout(() => { this.timer = null; if (this.lanesJobs === 0) this.start() }, LINGER_MS)
    }
  }

  /** Starts a job of the waiting streams that no job feeds (one job each where they are not hashed together). */
  private start (): void {
    if (this.timer !== null) { clearTimeout(this.timer); this.timer = null }
    const ready = [...this.waiting].filter(([stream]) => !this.running.has(stream))
    for (const [stream] of ready) this.takeWaiting(stream)
    for (const batch of this.together ? [ready] : ready.map(entry => [entry])) {
      if (batch.length === 0) continue
      const streams = batch.map(([stream]) => stream)
      let job: Promise<void>
      try {
        job = this.chunkIo.md5Lanes(streams, batch.map(([, w]) => w.pieces))
      } catch (err) {
        job = Promise.reject(err)
      }
      const over = job.catch((err: unknown) => { this.failed(streams, err) }).then(() => {
        this.lanesJobs--
        for (const [stream, w] of batch) { this.running.delete(stream); w.done() }
        this.consider()
      })
      this.lanesJobs++
      for (const stream of streams) this.running.set(stream, over)
    }
  }
}

// (An addon built before md5Lanes existed hashes nothing: the workers do.)
const lanes = typeof io?.md5Lanes !== 'function' ? undefined : new LaneHasher(io)

/**
 * An MD5 fed piece by piece, in order: natively (native/md5lanes.c, several streams side
 * by side), else on one worker. `digest` answers the MD5 of everything fed so far; `drop`
 * forgets it (call it once the stream is not needed).
 */
export class Md5Stream {
  private readonly id = nextStream++
  private readonly worker = md5Worker
  /**
   * What was fed while it all fits in IN_PLACE_MAX bytes (copies, and holes as lengths):
   * hashed in place by a digest (a small file's last part), or handed on in order, to the
   * native code or the worker, once the stream grows past it. (Hashing in place whatever
   * came after a small first piece put 8 MiB slices, and holes as big as a part, on the
   * event loop.)
   */
  private small: Array<Buffer | number> | null = []
  private smallBytes = 0
  private fed = false
  private generation = -1
  /** The native stream, fed by `lanes`. */
  private native: object | null = null
  /** Bytes of copies fed natively and not yet hashed (back-pressure for `update`). */
  private copied = 0
  /**
   * Natively, once a hole was fed: its job of its own, and of the holes before it. What is
   * fed after a hole waits for it (awaiting one promise, they keep the order they came in).
   */
  private gate: Promise<void> | null = null

  /**
   * Keeps a piece (copied) or a hole's length while the stream is small, and answers true.
   * Once it is not, hands on what was kept, in order, and answers false.
   */
  private keptSmall (piece: Buffer | number): boolean {
    if (this.small === null) return false
    const n = typeof piece === 'number' ? piece : piece.length
    if (this.smallBytes + n <= IN_PLACE_MAX) {
      this.small.push(typeof piece === 'number' ? piece : Buffer.from(piece))
      this.smallBytes += n
      return true
    }
    const kept = this.small
    this.small = null
    // Each is queued before its first await, so they keep their order (a failure is the digest's).
    for (const p of kept) void (typeof p === 'number' ? this.updateZeros(p) : this.update(p)).catch(() => {})
    return false
  }

  /** Feeds data (copied); answers when the hashing is not far behind, for back-pressure. */
  async update (data: Buffer): Promise<void> {
    if (data.length === 0 || this.keptSmall(data)) return
    if (lanes !== undefined) {
      const copy = movable(data)
      this.copied += copy.length
      const hashed = this.feedNative(lanes, copy, false).then(() => { this.copied -= copy.length; recycle(copy.buffer) })
      if (this.copied > HELD_MAX) await hashed
      return
    }
    if (!this.fed) { this.fed = true; this.generation = this.worker.generation }
    await this.worker.send({ op: 'update', id: this.id }, movable(data))
  }

  /**
   * Feeds data that the caller leaves untouched until this answers, which is once it is
   * hashed: natively it is read where it lies, not copied, and may wait for other streams
   * to be hashed beside it unless `soon` (the caller waits for this now).
   */
  async updateHeld (data: Buffer, soon = false): Promise<void> {
    if (data.length === 0) return
    if (lanes === undefined) { await this.update(data); return }
    if (this.keptSmall(data)) return
    await this.feedNative(lanes, data, soon)
  }

  private async feedNative (hasher: LaneHasher, data: Uint8Array, soon: boolean): Promise<void> {
    const stream = this.native ??= (io as NonNullable<typeof io>).md5New()
    if (this.gate !== null) await this.gate
    await hasher.feed(stream, data, soon)
  }

  /** Feeds `len` zero bytes (a hole) without handing any over; answers once they are hashed. */
  async updateZeros (len: number): Promise<void> {
    if (len <= 0 || this.keptSmall(len)) return
    if (lanes !== undefined) {
      const stream = this.native ??= (io as NonNullable<typeof io>).md5New()
      const before = this.gate
      const gate = (async () => {
        if (before !== null) await before
        await lanes.zeros(stream, len)
      })()
      this.gate = gate
      await gate
      return
    }
    if (!this.fed) { this.fed = true; this.generation = this.worker.generation }
    await this.worker.ask({ op: 'zeros', id: this.id, len })
  }

  /** Answers once everything fed is hashed, which starts now (natively; elsewhere it runs at once anyway). */
  async hurry (): Promise<void> {
    if (this.native === null || lanes === undefined) return
    if (this.gate !== null) await this.gate
    await lanes.settle(this.native)
  }

  async digest (): Promise<string> {
    if (this.small !== null) {
      const h = crypto.createHash('md5')
      for (const p of this.small) h.update(typeof p === 'number' ? Buffer.alloc(p) : p)
      return h.digest('hex')
    }
    if (this.native !== null && lanes !== undefined && io !== undefined) {
      await this.hurry()
      if (lanes.failures.has(this.native)) throw lanes.failures.get(this.native)
      return io.md5Digest(this.native)
    }
    if (!this.fed) return crypto.createHash('md5').digest('hex')
    const hex = (await this.worker.ask({ op: 'digest', id: this.id })).value
    if (this.worker.generation !== this.generation) throw new Error('the hash worker that had this MD5 stream died')
    return hex
  }

  drop (): void {
    this.small = null
    // A native stream is freed with its object, once no job holds it; what waits for a job is not hashed.
    if (this.native !== null) lanes?.forget(this.native)
    if (this.fed) void this.worker.send({ op: 'drop', id: this.id })
  }
}
