// Hashing off the event loop (src/blob/hasher.ts): the answers must be exactly
// node:crypto's, for inputs hashed in place and on the workers, for MD5 streams fed
// in many pieces, several at once, and interleaved with SHA-256s.
import t from 'tap'
import crypto from 'node:crypto'
import zlib from 'node:zlib'
import { sha256Of, sha256AndCrc, sha256Moving, crc32Moving, CRC_AVAILABLE, CRC_IN_PLACE, Md5Stream } from '../src/blob/hasher'
import { pooledBuffer, pooledAligned, POOLED } from '../src/blob/pool'

const md5 = (b: Buffer): string => crypto.createHash('md5').update(b).digest('hex')
const sha = (b: Buffer): string => crypto.createHash('sha256').update(b).digest('hex')
const MiB = 1024 * 1024

t.test('SHA-256 of small and large inputs, also of views into larger buffers', async t => {
  for (const size of [0, 1, 1000, 128 * 1024, 128 * 1024 + 1, MiB, 3 * MiB + 7]) {
    const b = crypto.randomBytes(size)
    t.equal((await sha256Of(b)).toString('hex'), sha(b), `${size} bytes`)
  }
  const big = crypto.randomBytes(2 * MiB)
  const view = big.subarray(12345, 12345 + MiB)
  t.equal((await sha256Of(view)).toString('hex'), sha(view), 'a view hashes only its own bytes')
  const many = Array.from({ length: 20 }, () => crypto.randomBytes(MiB))
  const got = await Promise.all(many.map(async b => (await sha256Of(b)).toString('hex')))
  t.same(got, many.map(sha), '20 at once, each answered with its own hash')
})

t.test('MD5 streams: pieces in order, several streams at once, small ones in place', async t => {
  const parts = Array.from({ length: 5 }, () => Array.from({ length: 9 }, (_, i) => crypto.randomBytes(i === 8 ? 5000 : MiB)))
  const streams = parts.map(() => new Md5Stream())
  // Interleave the streams' pieces, and SHA-256s on the side.
  for (let i = 0; i < 9; i++) {
    await Promise.all(streams.map(async (s, j) => { await s.update(parts[j][i]) }))
    void sha256Of(parts[0][i])
  }
  const digests = await Promise.all(streams.map(async s => await s.digest()))
  t.same(digests, parts.map(p => md5(Buffer.concat(p))), 'each stream has the MD5 of its own pieces')
  t.equal(await streams[0].digest(), digests[0], 'a digest can be asked again')
  await streams[0].update(Buffer.from('more'))
  t.equal(await streams[0].digest(), md5(Buffer.concat([...parts[0], Buffer.from('more')])), 'and the stream goes on after it')
  for (const s of streams) s.drop()

  const small = new Md5Stream()
  await small.update(Buffer.from('hello '))
  await small.update(crypto.randomBytes(0))
  await small.update(Buffer.from('world'))
  t.equal(await small.digest(), md5(Buffer.from('hello world')), 'a small stream (hashed in place)')
  t.equal(await new Md5Stream().digest(), md5(Buffer.alloc(0)), 'an empty stream')
})

t.test('MD5 streams fed at once (hashed side by side where the addon is): each its own MD5, in the order fed', async t => {
  // Eleven streams: more than one job's eight lanes. Pieces held (uncopied) and copied,
  // a hole between, none awaited before the next is given.
  const streams = Array.from({ length: 11 }, () => new Md5Stream())
  const fed: Buffer[][] = streams.map(() => [])
  const answers: Array<Promise<void>> = []
  for (let round = 0; round < 6; round++) {
    streams.forEach((s, i) => {
      // The first piece is over 128 KiB, so no stream is hashed in place.
      const b = crypto.randomBytes(round === 0 ? 200 * 1024 + i : (i * 37 + round * 100_003) % (MiB + 1) + 1)
      answers.push(round % 2 === 0 ? s.updateHeld(b) : s.update(b))
      fed[i].push(b)
      if (i === 3 && round === 2) { answers.push(s.updateZeros(MiB + 5)); fed[i].push(Buffer.alloc(MiB + 5)) }
    })
    if (round === 3) t.equal(await streams[5].digest(), md5(Buffer.concat(fed[5])), 'a digest asked midway has what was fed so far')
  }
  // Dropped with pieces waiting: their answers come all the same (nothing waits forever).
  const dropped = new Md5Stream()
  const waiting = dropped.updateHeld(crypto.randomBytes(300 * 1024))
  dropped.drop()
  await Promise.all([...answers, waiting])
  t.pass('every piece fed was answered')
  const digests = await Promise.all(streams.map(async s => await s.digest()))
  t.same(digests, fed.map(f => md5(Buffer.concat(f))), 'each stream has the MD5 of its own pieces')
  // Fed again while others' pieces are being hashed.
  const more = crypto.randomBytes(3 * MiB)
  const busy = streams.slice(1).map(async s => { await s.updateHeld(crypto.randomBytes(MiB)) })
  void streams[0].updateHeld(more)
  t.equal(await streams[0].digest(), md5(Buffer.concat([...fed[0], more])), 'a stream goes on after its digest')
  await Promise.all(busy)
  for (const s of streams) s.drop()
})

t.test('an MD5 stream that starts small and grows: what it kept goes on first, in order', async t => {
  // A part whose data starts with a few KiB, then a long hole, then more: all kept in
  // memory while small, then handed on (not hashed on the event loop, nor the hole allocated).
  const a = crypto.randomBytes(4096)
  const b = crypto.randomBytes(60 * 1024)
  const c = crypto.randomBytes(3 * MiB + 5)
  const s = new Md5Stream()
  void s.updateHeld(a)
  void s.updateZeros(1000)
  void s.update(b)
  t.equal(await s.digest(), md5(Buffer.concat([a, Buffer.alloc(1000), b])), 'while small, its digest is hashed in place')
  void s.updateZeros(40 * MiB + 1)
  void s.updateHeld(c)
  void s.updateZeros(7)
  t.equal(await s.digest(), md5(Buffer.concat([a, Buffer.alloc(1000), b, Buffer.alloc(40 * MiB + 1), c, Buffer.alloc(7)])), 'grown past it, every piece and hole in the order given')
  s.drop()
  const z = new Md5Stream()
  void z.updateZeros(100)
  void z.updateHeld(crypto.randomBytes(0))
  const big = crypto.randomBytes(200 * 1024)
  await z.updateHeld(big)
  t.equal(await z.digest(), md5(Buffer.concat([Buffer.alloc(100), big])), 'a small hole, then a piece that is not small')
  z.drop()
})

t.test('MD5 streams take holes as lengths of zeros', async t => {
  const data = crypto.randomBytes(MiB)
  const s = new Md5Stream()
  await s.update(data)
  await s.updateZeros(20 * MiB + 3)
  await s.update(data.subarray(0, 1000))
  t.equal(await s.digest(), md5(Buffer.concat([data, Buffer.alloc(20 * MiB + 3), data.subarray(0, 1000)])), 'data, a hole, data')
  s.drop()
  const z = new Md5Stream()
  await z.updateZeros(300 * 1024)
  t.equal(await z.digest(), md5(Buffer.alloc(300 * 1024)), 'a stream of zeros only')
})

t.test('a chunk\'s SHA-256 and CRC-32 together; a read chunk moved to the worker and back', { skip: typeof (zlib as { crc32?: unknown }).crc32 === 'function' ? false : 'this Node has no zlib.crc32 to compare with' }, async t => {
  t.ok(CRC_AVAILABLE, 'CRC-32s can be computed')
  // zlib's own CRC-32, which the fast one (@node-rs/crc32) must equal.
  const crc32 = (d: Buffer): number => (zlib as unknown as { crc32: (d: Buffer) => number }).crc32(d)
  const sha = (d: Buffer): string => crypto.createHash('sha256').update(d).digest('hex')
  for (const size of [0, 100, 128 * 1024 + 1, POOLED]) {
    const data = crypto.randomBytes(size)
    const both = await sha256AndCrc(data)
    t.equal(both.hash.toString('hex'), sha(data), `SHA-256 of ${size} bytes`)
    t.equal(both.crc, crc32(data), `CRC-32 of ${size} bytes`)
  }
  const chunk = pooledBuffer()
  crypto.randomFillSync(chunk)
  const copy = Buffer.from(chunk)
  const c = await crc32Moving(chunk)
  t.equal(c.crc, crc32(copy), 'the CRC of a moved chunk')
  t.ok(c.data.equals(copy), 'and its bytes come back unchanged')
  if (CRC_IN_PLACE) t.equal(chunk.length, POOLED, 'the fast CRC ran in place: the buffer given is still there')
  else t.equal(chunk.length, 0, 'the buffer given was moved (detached), not copied')
  const s = await sha256Moving(c.data)
  t.equal(s.hash.toString('hex'), sha(copy), 'the SHA-256 of a moved chunk')
  t.ok(s.data.equals(copy), 'and its bytes come back unchanged')
  const view = copy.subarray(10, 10 + 200 * 1024)
  t.equal((await crc32Moving(view)).crc, crc32(view), 'a view into a larger buffer is hashed in place')
  t.equal(view.length, 200 * 1024, 'and stays usable')
  // Aligned memory from the addon (O_DIRECT reads) cannot be moved to a worker.
  const aligned = pooledAligned()
  if (aligned !== undefined) {
    crypto.randomFillSync(aligned)
    const bytes = Buffer.from(aligned)
    const a = await sha256Moving(aligned)
    t.equal(a.hash.toString('hex'), sha(bytes), 'the SHA-256 of an aligned chunk')
    t.equal(a.data, aligned, 'is taken from a copy: the aligned buffer itself comes back')
    t.equal(aligned.length, POOLED, 'still whole')
  }
})
