// The part layout of a mount's write session: fixed ranges that do not depend on
// the file's size, so a part that did not change keeps its MD5 from one version
// to the next. Parts 1–1000 are 8 MiB, the next 1000 are 16 MiB, and so on,
// doubling every 1000 parts: 10,000 parts cover more than S3's 5 TiB limit and
// every part but the last is over S3's 5 MiB minimum.
import crypto from 'node:crypto'

const BASE = 8 * 1024 * 1024
const PER_TIER = 1000

export interface PartRange { part: number, start: number, end: number }

/** Part number (1-based) and range holding byte `offset`. */
export function partAt (offset: number): PartRange {
  let start = 0
  let size = BASE
  let part = 1
  for (;;) {
    const tierBytes = size * PER_TIER
    if (offset < start + tierBytes) {
      const i = Math.floor((offset - start) / size)
      return { part: part + i, start: start + i * size, end: start + (i + 1) * size }
    }
    start += tierBytes
    part += PER_TIER
    size *= 2
  }
}

export function partRange (part: number): PartRange {
  const tier = Math.floor((part - 1) / PER_TIER)
  let start = 0
  let size = BASE
  for (let t = 0; t < tier; t++) { start += size * PER_TIER; size *= 2 }
  const i = (part - 1) % PER_TIER
  return { part, start: start + i * size, end: start + (i + 1) * size }
}

/** The parts covering [0, size), the last one cut at size. */
export function partsOf (size: number): PartRange[] {
  const out: PartRange[] = []
  for (let off = 0; off < size;) {
    const r = partAt(off)
    out.push({ part: r.part, start: r.start, end: Math.min(r.end, size) })
    off = r.end
  }
  return out
}

const zeroMd5 = new Map<number, Promise<string>>()
const ZERO_BLOCK = Buffer.alloc(8 * 1024 * 1024)
/**
 * MD5 of `len` zero bytes (holes), computed once per length, in 8 MiB steps that
 * yield to the event loop: a 1 TiB sparse file's parts hash about 1 GiB of zeros,
 * which must not stall every other operation of the daemon.
 */
export async function md5OfZeros (len: number): Promise<string> {
  let hex = zeroMd5.get(len)
  if (hex === undefined) {
    hex = (async () => {
      const h = crypto.createHash('md5')
      for (let left = len; left > 0; left -= ZERO_BLOCK.length) {
        h.update(left >= ZERO_BLOCK.length ? ZERO_BLOCK : ZERO_BLOCK.subarray(0, left))
        if (left > ZERO_BLOCK.length) await new Promise(resolve => setImmediate(resolve))
      }
      return h.digest('hex')
    })()
    zeroMd5.set(len, hex)
  }
  return await hex
}

/** S3's ETag: the MD5 for one part, md5(binary part MD5s)-N for N parts. */
export function etagOf (partMd5s: string[]): string {
  if (partMd5s.length === 0) return crypto.createHash('md5').digest('hex')
  if (partMd5s.length === 1) return partMd5s[0]
  return multipartEtag(partMd5s)
}

/** The ETag S3 gives an object completed from multipart parts, even from one part. */
export function multipartEtag (partMd5s: string[]): string {
  const h = crypto.createHash('md5')
  for (const m of partMd5s) h.update(Buffer.from(m, 'hex'))
  return `${h.digest('hex')}-${partMd5s.length}`
}
