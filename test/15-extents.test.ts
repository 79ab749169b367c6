// Extent arithmetic and the session part layout, checked against a byte-array model.
import t from 'tap'
import { overlay, overlayMany, clip, completeSession } from '../src/store/sessions'
import { CHUNK_SIZE } from '../src/store/limits'
import { tempStore } from './helpers/store'
import { partAt, partRange, partsOf, etagOf, md5OfZeros, ZERO_PART_MD5 } from '../src/store/layout'
import type { Extent } from '../src/meta/catalog'
import { uniform } from '../scripts/lib/prng'
import crypto from 'node:crypto'

function render (list: Extent[], size: number): number[] {
  const out = new Array<number>(size).fill(0)
  for (const e of list) for (let i = 0; i < e.len && e.off + i < size; i++) out[e.off + i] = (e.chunk ?? 0) * 1000 + e.coff + i
  return out
}

const rng = uniform

t.test('overlay and overlayMany agree with a byte model', async t => {
  const r = rng(7)
  for (let round = 0; round < 300; round++) {
    const size = 200
    let list: Extent[] = []
    let model = new Array<number>(size).fill(0)
    for (let step = 0; step < 12; step++) {
      const n = 1 + Math.floor(r() * 3)
      const puts: Extent[] = []
      let off = Math.floor(r() * 50)
      for (let k = 0; k < n && off < size; k++) {
        const len = 1 + Math.floor(r() * 30)
        const e = { off, len: Math.min(len, size - off), chunk: 1 + Math.floor(r() * 9), coff: Math.floor(r() * 100) }
        puts.push(e)
        off += e.len + Math.floor(r() * 20)
      }
      if (puts.length === 1 && r() < 0.5) list = overlay(list, puts[0].off, puts[0].off + puts[0].len, puts)
      else list = overlayMany(list, puts)
      for (const p of puts) for (let i = 0; i < p.len; i++) model[p.off + i] = p.chunk! * 1000 + p.coff + i
      for (let i = 1; i < list.length; i++) {
        if (list[i].off < list[i - 1].off + list[i - 1].len) t.fail(`extents overlap at round ${round}`)
      }
    }
    t.same(render(list, size), model, `round ${round}`)
    const cut = Math.floor(r() * size)
    const clipped = clip(list, cut)
    t.same(render(clipped, size), model.map((v, i) => i < cut ? v : 0))
    model = []
  }
})

t.test('the session part layout is fixed, contiguous and within S3 limits', async t => {
  t.same(partAt(0), { part: 1, start: 0, end: 8 * 1048576 })
  t.same(partAt(8 * 1048576), { part: 2, start: 8 * 1048576, end: 16 * 1048576 })
  const tier2 = 1000 * 8 * 1048576
  t.same(partAt(tier2), { part: 1001, start: tier2, end: tier2 + 16 * 1048576 })
  for (const n of [1, 2, 999, 1000, 1001, 2500, 9999, 10000]) {
    const r = partRange(n)
    t.same(partAt(r.start), r, `part ${n} starts where partAt says`)
    t.same(partAt(r.end - 1), r, `part ${n} ends where partAt says`)
    t.equal(partAt(r.end).part, n + 1, `part ${n + 1} follows`)
  }
  t.ok(partRange(10000).end > 5 * 1024 ** 4, '10,000 parts cover 5 TiB')
  const ps = partsOf(20 * 1048576 + 5)
  t.same(ps.map(p => [p.part, p.start, p.end]), [[1, 0, 8388608], [2, 8388608, 16777216], [3, 16777216, 20971525]])
  t.same(partsOf(0), [])
})

t.test('ETags: one part is its MD5, several are md5 of MD5s with -N, zeros are cached', async t => {
  const a = crypto.createHash('md5').update('a').digest('hex')
  const b = crypto.createHash('md5').update('b').digest('hex')
  t.equal(etagOf([a]), a)
  t.equal(etagOf([a, b]), crypto.createHash('md5').update(Buffer.concat([Buffer.from(a, 'hex'), Buffer.from(b, 'hex')])).digest('hex') + '-2')
  t.equal(etagOf([]), crypto.createHash('md5').digest('hex'))
  t.equal(await md5OfZeros(1000), crypto.createHash('md5').update(Buffer.alloc(1000)).digest('hex'))
})

t.test('the table of MD5s of whole zero parts holds every tier size, each recomputed here', async t => {
  const sizes = new Set<number>()
  for (let part = 1; part <= 10000; part += 1000) sizes.add(partRange(part).end - partRange(part).start)
  t.same([...ZERO_PART_MD5.keys()].sort((a, b) => a - b), [...sizes].sort((a, b) => a - b), 'one entry per part size of the layout')
  // One pass over 4 GiB of zeros, taking the digest at each size (about 8 s of CPU).
  const zeros = Buffer.alloc(8 * 1024 * 1024)
  const h = crypto.createHash('md5')
  let hashed = 0
  for (const size of [...sizes].sort((a, b) => a - b)) {
    for (; hashed < size; hashed += zeros.length) h.update(zeros)
    t.equal(ZERO_PART_MD5.get(size), h.copy().digest('hex'), `MD5 of ${size / 2 ** 20} MiB of zeros`)
    t.equal(await md5OfZeros(size), ZERO_PART_MD5.get(size), 'md5OfZeros answers from the table')
  }
})

t.test('completeSession answers the extents that extentsOf reads back', async t => {
  // An open file goes on from the version its close made, with these extents in
  // place of a read-back: they must be the stored ones, hashes and CRCs included.
  const { store } = tempStore(t)
  store.createBucket('ext', {})
  const owner = store.content.newOwner()
  const big = crypto.randomBytes(CHUNK_SIZE)
  const ref = await store.content.putChunk(big, owner)
  const tail = crypto.randomBytes(3000)
  const inline = [{ off: 2 * CHUNK_SIZE + 5, chunk: await store.content.prepareInline(tail) }]
  // A stored chunk, a hole, the stored chunk again cut short, and the inline tail.
  const size = 2 * CHUNK_SIZE + 5 + tail.length
  const stored = { chunk: ref.id, hash: ref.hash, crc: ref.crc, inline: ref.inline, csize: ref.size }
  const extents = [{ off: 0, len: CHUNK_SIZE, coff: 0, ...stored }, { off: CHUNK_SIZE + 100, len: 700, coff: 9, ...stored }]
  const parts = [{ part: 1, off: 0, size, md5: crypto.createHash('md5').update('x').digest('hex') }]
  const meta = { bucket: 'ext', key: 'k', fields: { contentType: '', headers: '{}', userMeta: '{}', posix: { mode: 0o100644, uid: 0, gid: 0, mtimeMs: 1, ctimeMs: 1 } }, baseSeq: null, baseLimit: 0, size }
  const done = completeSession(store, null, meta, extents, parts, owner, undefined, inline)
  const readBack = store.extentsOf(done.version.seq).map(e => ({ ...e, inline: Number(e.inline) }))
  t.equal(readBack.length, 3)
  t.same(done.extents, readBack)
  t.not(readBack[2].crc, null, 'the inline chunk has its CRC')
})
