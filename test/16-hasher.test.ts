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
