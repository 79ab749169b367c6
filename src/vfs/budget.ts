// The memory all write sessions may hold in dirty buffers together. A session
// that finds the budget spent flushes its own buffers before its write returns
// (back-pressure), so memory stays near the budget however much is written.
//
// Whole-chunk buffers are recycled: a sequential writer goes through one per MiB,
// and leaving each to the garbage collector kept hundreds of MiB of dead buffers
// (and malloc's free lists) in the daemon's RSS during a 4 GiB write.
import { CHUNK_SIZE } from '../store/limits'
import { alignedBuffer } from '../blob/aligned'

const SPARE_CHUNKS = 32

export class MemoryBudget {
  used = 0
  private readonly spare: Buffer[] = []
  constructor (readonly limit: number) {}
  take (n: number): void { this.used += n }
  give (n: number): void { this.used = Math.max(0, this.used - n) }
  get exceeded (): boolean { return this.used > this.limit }

  /**
   * A zero-filled buffer of `size` bytes, recycled when it is a whole chunk. Whole-chunk
   * ones are on aligned memory when they can be, so their chunk files are written with
   * O_DIRECT (src/blob/chunks.ts).
   */
  buffer (size: number): Buffer {
    if (size !== CHUNK_SIZE) return Buffer.alloc(size)
    const b = this.spare.pop()
    return b === undefined ? alignedBuffer(size) ?? Buffer.alloc(size) : b.fill(0)
  }

  /** Takes back a buffer nothing refers to any more. */
  recycle (buf: Buffer): void {
    if (buf.length === CHUNK_SIZE && buf.byteOffset === 0 && this.spare.length < SPARE_CHUNKS) this.spare.push(buf)
  }
}

/** Runs async sections one at a time. */
export class Mutex {
  private tail: Promise<unknown> = Promise.resolve()
  private held = 0
  /** Whether no section runs or waits. */
  get idle (): boolean { return this.held === 0 }
  async run<T> (fn: () => Promise<T>): Promise<T> {
    this.held++
    const result = this.tail.then(fn, fn)
    this.tail = result.catch(() => {})
    try {
      return await result
    } finally {
      this.held--
    }
  }
}
