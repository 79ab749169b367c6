// Buffers whose memory starts on a 4096-byte boundary, for O_DIRECT writes of whole
// chunks (src/blob/chunks.ts). They come from our C in the patched fuse-native addon
// (scripts/fuse-native/fast-path.c, bucketfs_aligned_buffer), the one native module our
// install builds; without it there are none, and every chunk is written through the
// page cache as before.
import { fuseAddon } from '../addon'

export const ALIGN = 4096

const make = ((): ((size: number) => ArrayBuffer) | undefined => {
  try {
    const f = fuseAddon().bucketfs_aligned_buffer
    return typeof f === 'function' ? f as (size: number) => ArrayBuffer : undefined
  } catch {
    return undefined
  }
})()

const made = new WeakSet<ArrayBufferLike>()

/** A zeroed buffer of `size` bytes on aligned memory, or undefined when the addon cannot make one. */
export function alignedBuffer (size: number): Buffer | undefined {
  if (make === undefined) return undefined
  try {
    const ab = make(size)
    made.add(ab)
    return Buffer.from(ab)
  } catch {
    return undefined
  }
}

/** Notes ab as memory on a 4096-byte boundary that our C made (a staged write's bytes). */
export function markAligned (ab: ArrayBufferLike): void {
  made.add(ab)
}

/** Whether ab is memory alignedBuffer made (or markAligned noted). */
export function alignedMemory (ab: ArrayBufferLike): boolean {
  return made.has(ab)
}

/** Whether b can be written with O_DIRECT: on aligned memory, starting and ending on a boundary. */
export function directWritable (b: Uint8Array): boolean {
  return b.length > 0 && b.byteOffset % ALIGN === 0 && b.length % ALIGN === 0 && made.has(b.buffer)
}
