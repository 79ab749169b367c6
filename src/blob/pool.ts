// Whole-chunk (1 MiB) buffers kept for reuse. A cold 1 GiB read allocated two per
// chunk (the chunk read from disk, and its copy for the hash worker), and V8's
// collections of them took 28 % of the main thread (--cpu-prof of `seqread`).
import { alignedBuffer, alignedMemory } from './aligned'

export const POOLED = 1024 * 1024
const MAX = 64
const free: ArrayBuffer[] = []

/** A 1 MiB buffer that owns its whole ArrayBuffer (so it can be moved to a worker). */
export function pooledBuffer (): Buffer {
  const ab = free.pop()
  return ab !== undefined ? Buffer.from(ab) : Buffer.allocUnsafeSlow(POOLED)
}

/** Whether b views the whole of its ArrayBuffer (so it can be moved to a worker, or pooled). */
export function ownsBuffer (b: Uint8Array): boolean {
  return b.byteOffset === 0 && b.buffer.byteLength === b.byteLength && b.buffer instanceof ArrayBuffer
}

/** Pooled buffers on aligned memory (src/blob/aligned.ts), for O_DIRECT reads; kept apart: moving one to a worker copies it. */
const freeAligned: ArrayBuffer[] = []

/** A 1 MiB buffer on aligned memory, or undefined when there is none to be had. */
export function pooledAligned (): Buffer | undefined {
  const ab = freeAligned.pop()
  return ab !== undefined ? Buffer.from(ab) : alignedBuffer(POOLED)
}

const cooling: ArrayBuffer[] = []
let warming = false

/**
 * Gives a buffer's memory back when it is pooled-size. It is handed out again only from
 * the next turn of the event loop: code that was given the buffer before it was given
 * back (a read whose chunk load has just resolved) copies out of it first.
 */
export function recycle (ab: ArrayBufferLike): void {
  if (ab.byteLength !== POOLED || !(ab instanceof ArrayBuffer) || free.length + freeAligned.length + cooling.length >= MAX) return
  cooling.push(ab)
  if (warming) return
  warming = true
  setImmediate(() => {
    warming = false
    for (const b of cooling.splice(0)) (alignedMemory(b) ? freeAligned : free).push(b)
  })
}
