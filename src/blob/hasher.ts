// Hashing off the event loop. SHA-256 of every chunk (written and read) and the MD5
// of every part take about 2.6 ms of CPU per MiB, which on the main thread stalled
// every other operation and capped sequential I/O: worker threads do it on the
// other core. What a worker hashes is a copy moved to it (transferred), which its
// own garbage collector frees: buffers shared with workers (SharedArrayBuffer) were
// not collected in time and held gigabytes during a 4 GiB write.
// Small inputs are hashed in place: a round trip to a worker costs more.
import crypto from 'node:crypto'
import { Worker } from 'node:worker_threads'
import createDebug from 'debug'

const log = createDebug('bucketfs:hasher')

/** Below this many bytes hashing is cheaper than a round trip to a worker. */
const IN_PLACE_MAX = 128 * 1024

// The worker's code is source text, so the same worker runs from dist/ and under
// tap's TypeScript loader (a Worker cannot load a .ts file). Each buffer a worker
// was given goes back (transferred) once hashed, to be reused.
const WORKER_SOURCE = `
const { parentPort } = require('node:worker_threads')
const crypto = require('node:crypto')
const streams = new Map()
const zeros = Buffer.alloc(8 * 1024 * 1024)
parentPort.on('message', m => {
  let answer = {}
  try {
    if (m.op === 'sha256') {
      answer = { req: m.req, value: crypto.createHash('sha256').update(m.data).digest('hex') }
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

const POOLED = 1024 * 1024
/** Buffers a worker may have queued before a sender waits (MD5 runs at ~530 MB/s here). */
const BACKLOG = 16
const POOL_MAX = 64
/** 1 MiB buffers the workers gave back, for the next copies (no allocation per chunk). */
const pool: ArrayBuffer[] = []

/** A copy of data that can be moved to a worker (one memcpy; the caller keeps its buffer). */
function movable (data: Buffer): Uint8Array {
  const copy = data.length === POOLED && pool.length > 0 ? new Uint8Array(pool.pop() as ArrayBuffer) : new Uint8Array(data.length)
  copy.set(data)
  return copy
}

interface Pending { resolve: (v: string) => void, reject: (e: Error) => void }

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
      const w = new Worker(WORKER_SOURCE, { eval: true })
      w.on('message', (m: { req?: number, value?: string, error?: string, back?: ArrayBuffer }) => {
        if (m.back !== undefined) {
          if (m.back.byteLength === POOLED && pool.length < POOL_MAX) pool.push(m.back)
          this.queued--
          while (this.waiting.length > 0 && this.queued <= BACKLOG) this.waiting.shift()?.()
          this.idleCheck(w)
        }
        if (m.req === undefined) return
        const p = this.pending.get(m.req)
        if (p === undefined) return
        this.pending.delete(m.req)
        this.idleCheck(w)
        if (m.error !== undefined) p.reject(new Error(m.error))
        else p.resolve(m.value ?? '')
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

  async ask (msg: Record<string, unknown>, data?: Uint8Array): Promise<string> {
    const w = this.w
    const req = nextReq++
    const answer = new Promise<string>((resolve, reject) => { this.pending.set(req, { resolve, reject }) })
    w.ref()
    if (data === undefined) w.postMessage({ ...msg, req })
    else { w.postMessage({ ...msg, req, data }, [data.buffer as ArrayBuffer]); this.queued++ }
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
  return Buffer.from(await shaWorker.ask({ op: 'sha256' }, movable(data)), 'hex')
}

/**
 * An MD5 fed piece by piece on one worker, in order. `digest` answers the MD5 of
 * everything fed so far; `drop` forgets it (call it once the stream is not needed).
 */
export class Md5Stream {
  private readonly id = nextStream++
  private readonly worker = md5Worker
  /** In-place hashing, chosen at the first update when it is small (a small file's last chunk). */
  private local: crypto.Hash | null = null
  private fed = false
  private generation = -1

  /** Feeds data (copied); answers when the worker is not far behind, for back-pressure. */
  async update (data: Buffer): Promise<void> {
    if (data.length === 0) return
    if (this.local === null && !this.fed && data.length <= IN_PLACE_MAX) this.local = crypto.createHash('md5')
    if (this.local !== null) { this.local.update(data); return }
    if (!this.fed) { this.fed = true; this.generation = this.worker.generation }
    await this.worker.send({ op: 'update', id: this.id }, movable(data))
  }

  /** Feeds `len` zero bytes (a hole) without handing any over; answers once they are hashed. */
  async updateZeros (len: number): Promise<void> {
    if (len <= 0) return
    if (this.local === null && !this.fed && len <= IN_PLACE_MAX) this.local = crypto.createHash('md5')
    if (this.local !== null) { this.local.update(Buffer.alloc(len)); return }
    if (!this.fed) { this.fed = true; this.generation = this.worker.generation }
    await this.worker.ask({ op: 'zeros', id: this.id, len })
  }

  async digest (): Promise<string> {
    if (this.local !== null) return this.local.copy().digest('hex')
    if (!this.fed) return crypto.createHash('md5').digest('hex')
    const hex = await this.worker.ask({ op: 'digest', id: this.id })
    if (this.worker.generation !== this.generation) throw new Error('the hash worker that had this MD5 stream died')
    return hex
  }

  drop (): void {
    if (this.fed) void this.worker.send({ op: 'drop', id: this.id })
  }
}
