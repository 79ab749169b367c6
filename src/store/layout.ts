// The part layout of a mount's write session: fixed ranges that do not depend on
// the file's size, so a part that did not change keeps its MD5 from one version
// to the next. Parts 1–1000 are 8 MiB, the next 1000 are 16 MiB, and so on,
// doubling every 1000 parts: 10,000 parts cover more than S3's 5 TiB limit and
// every part but the last is over S3's 5 MiB minimum.
import crypto from 'node:crypto'
import { Md5Stream } from '../blob/hasher'

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

/**
 * MD5s of whole parts of zeros (holes), one per tier's part size (8 MiB to 4 GiB):
 * hashing them would take 8 s of CPU for a sparse 5 TiB file. test/15-extents
 * recomputes every entry.
 */
export const ZERO_PART_MD5: ReadonlyMap<number, string> = new Map([
  [8 * 2 ** 20, '96995b58d4cbf6aaa9041b4f00c7f6ae'],
  [16 * 2 ** 20, '2c7ab85a893283e98c931e9511add182'],
  [32 * 2 ** 20, '58f06dd588d8ffb3beb46ada6309436b'],
  [64 * 2 ** 20, '7f614da9329cd3aebf59b91aadc30bf0'],
  [128 * 2 ** 20, 'fde9e0818281836e4fc0edfede2b8762'],
  [256 * 2 ** 20, '1f5039e50bd66b290c56684d8550c6c2'],
  [512 * 2 ** 20, 'aa559b4e3523a6c931f08f4df52d58f2'],
  [1024 * 2 ** 20, 'cd573cfaace07e7949bc0c46028904ff'],
  [2048 * 2 ** 20, 'a981130cf2b7e09f4686dc273cf7187e'],
  [4096 * 2 ** 20, 'c9a5a6878d97b48cc965c1e41859f034']
])

const zeroMd5 = new Map<number, Promise<string>>()
/**
 * MD5 of `len` zero bytes (holes): from the table for whole parts, else computed
 * once per length on a hash worker (the event loop goes on meanwhile).
 */
export async function md5OfZeros (len: number): Promise<string> {
  const whole = ZERO_PART_MD5.get(len)
  if (whole !== undefined) return whole
  let hex = zeroMd5.get(len)
  if (hex === undefined) {
    hex = (async () => {
      const h = new Md5Stream()
      try {
        await h.updateZeros(len)
        return await h.digest()
      } finally {
        h.drop()
      }
    })()
    if (zeroMd5.size >= 1000) zeroMd5.clear() // lengths of last parts: any number of them
    zeroMd5.set(len, hex)
    hex.catch(() => { zeroMd5.delete(len) })
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
