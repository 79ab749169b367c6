// native/chunkio.c, the addon that hashes a written chunk and writes its file on
// libuv's threadpool, reading the caller's buffer in place: its answers must be
// node:crypto's and zlib's, its files whole, its failures node:fs-like errors that
// leave nothing behind, its MD5 streams refuse misuse. And Md5Stream.updateHeld,
// which feeds it buffers uncopied.
// (test/19 runs the hashing and chunk-file tests again without the addon.)
import t from 'tap'
import fs from 'node:fs'
import path from 'node:path'
import crypto from 'node:crypto'
import zlib from 'node:zlib'
import { chunkIo } from '../src/addon'
import { Md5Stream, NATIVE_HASHING } from '../src/blob/hasher'
import { alignedBuffer } from '../src/blob/aligned'

const MiB = 1024 * 1024
const md5 = (b: Buffer): string => crypto.createHash('md5').update(b).digest('hex')
const off = (process.env.BUCKETFS_NO_CHUNKIO ?? '') !== ''
const io = off ? undefined : chunkIo()

t.test('the addon is built and used (unless turned off)', async t => {
  if (off) {
    t.notOk(NATIVE_HASHING, 'BUCKETFS_NO_CHUNKIO=1: the worker threads hash')
    return
  }
  t.ok(io, 'native/build/Release/chunkio.node loads (npm install builds it)')
  t.ok(NATIVE_HASHING, 'and the hasher uses it')
})

t.test('SHA-256 and CRC-32 on the threadpool equal node:crypto and zlib', { skip: io === undefined ? 'no addon' : false }, async t => {
  if (io === undefined) return
  const crc32 = (zlib as unknown as { crc32: (d: Buffer) => number }).crc32
  // (Lengths around the folding code's 16- and 64-byte steps, native/crc32.h.)
  for (const size of [0, 1, 15, 16, 63, 64, 65, 79, 127, 128, 1000, 4096, 4097, MiB, MiB + 13, 3 * MiB + 5]) {
    const data = crypto.randomBytes(size)
    const [hash, crc] = await io.sha256Crc(data, true)
    t.equal(hash.toString('hex'), crypto.createHash('sha256').update(data).digest('hex'), `SHA-256 of ${size} bytes`)
    if (typeof crc32 === 'function') t.equal(crc, crc32(data), `CRC-32 of ${size} bytes`)
  }
  const big = crypto.randomBytes(2 * MiB)
  for (const at of [1, 3, 777]) {
    const odd = big.subarray(at, at + 1000 + at)
    if (typeof crc32 === 'function') t.equal((await io.sha256Crc(odd, true))[1], crc32(odd), `CRC-32 of ${odd.length} bytes at an odd address`)
  }
  const view = big.subarray(777, 777 + MiB)
  t.equal((await io.sha256Crc(view, false))[0].toString('hex'), crypto.createHash('sha256').update(view).digest('hex'), 'a view hashes only its own bytes')
  t.equal((await io.sha256Crc(view, false))[1], null, 'no CRC when none is asked for')
  t.throws(() => io.sha256Crc('text' as unknown as Uint8Array, true), TypeError, 'a non-buffer is refused at once')
})

t.test('MD5 streams on the threadpool: data, holes, digests that go on', { skip: io === undefined ? 'no addon' : false }, async t => {
  if (io === undefined) return
  const s = io.md5New()
  const a = crypto.randomBytes(MiB + 3)
  await io.md5Update(s, a)
  await io.md5Zeros(s, 3 * MiB + 1)
  t.equal(io.md5Digest(s), md5(Buffer.concat([a, Buffer.alloc(3 * MiB + 1)])), 'data then a hole')
  await io.md5Update(s, Buffer.from('tail'))
  t.equal(io.md5Digest(s), md5(Buffer.concat([a, Buffer.alloc(3 * MiB + 1), Buffer.from('tail')])), 'the stream goes on after a digest')
  t.equal(io.md5Digest(io.md5New()), md5(Buffer.alloc(0)), 'an empty stream')
  t.throws(() => io.md5Digest({}), TypeError, 'something else than a stream is refused')
  for (const bad of [0.5, -1, Infinity, NaN, 2 ** 60]) t.throws(() => io.md5Zeros(s, bad), TypeError, `a hole of ${bad} bytes is refused`)
  const busy = io.md5Update(s, crypto.randomBytes(4 * MiB))
  t.throws(() => io.md5Digest(s), TypeError, 'no digest while an update runs')
  t.throws(() => io.md5Update(s, Buffer.from('x')), TypeError, 'nor a second update')
  await busy
  t.type(io.md5Digest(s), 'string', 'both go again once it is over')
})

/** Pieces for one stream: empty, shorter than a block, a block, around block sizes, large, at odd addresses. */
function somePieces (pool: Buffer): Buffer[] {
  const sizes = [0, 1, 55, 56, 63, 64, 65, 127, 128, 1000, 4096, 70_001, MiB]
  const out: Buffer[] = []
  for (let k = Math.floor(Math.random() * 5); k > 0; k--) {
    const n = sizes[Math.floor(Math.random() * sizes.length)] + (Math.random() < 0.5 ? Math.floor(Math.random() * 200) : 0)
    const at = Math.floor(Math.random() * (pool.length - n))
    out.push(pool.subarray(at, at + n))
  }
  return out
}

t.test('md5Lanes: streams hashed side by side, with every kernel this CPU runs, are node:crypto\'s MD5s', { skip: io === undefined ? 'no addon' : false }, async t => {
  if (io === undefined) return
  const best = io.md5Kernel()
  t.ok(['scalar', 'avx2', 'avx512'].includes(best), `the kernel in use is a known one (${best})`)
  const pool = crypto.randomBytes(2 * MiB + 300)
  try {
    for (const kernel of ['scalar', 'avx2', 'avx512']) {
      if (io.md5Kernel(kernel) !== kernel) { t.comment(`this CPU does not run the ${kernel} kernel`); continue }
      let wrong = 0
      let trials = 0
      for (; trials < 60; trials++) {
        // 1 to 20 streams: more than the eight lanes, so lanes are handed on as streams end.
        const n = 1 + Math.floor(Math.random() * 20)
        const streams = Array.from({ length: n }, () => io.md5New())
        const fed: Buffer[][] = streams.map(() => [])
        for (let job = 0; job < 3; job++) {
          const lists = streams.map(() => somePieces(pool))
          lists.forEach((l, i) => fed[i].push(...l))
          await io.md5Lanes(streams, lists)
          if (job === 1) {
            // A plain update between two jobs: the same stream state.
            const extra = pool.subarray(7, 7 + 333)
            await io.md5Update(streams[0], extra)
            fed[0].push(extra)
          }
        }
        if (streams.some((s, i) => io.md5Digest(s) !== md5(Buffer.concat(fed[i])))) wrong++
      }
      t.equal(wrong, 0, `${kernel}: ${trials} jobs of 1-20 streams, each stream's MD5 right`)
      // Equal long inputs: every lane busy from the first block to the last.
      const eight = Array.from({ length: 8 }, (_, i) => pool.subarray(i * 1001, i * 1001 + MiB))
      const streams = eight.map(() => io.md5New())
      await io.md5Lanes(streams, eight.map(b => [b]))
      t.same(streams.map(s => io.md5Digest(s)), eight.map(md5), `${kernel}: eight 1 MiB streams at once`)
    }
  } finally {
    io.md5Kernel(best)
  }
  t.equal(io.md5Kernel(), best, 'the best kernel is back')
  t.throws(() => io.md5Kernel('sse9'), TypeError, 'an unknown kernel is refused')
})

t.test('md5Lanes refuses what it cannot take, and leaves the streams usable', { skip: io === undefined ? 'no addon' : false }, async t => {
  if (io === undefined) return
  const a = io.md5New()
  const b = io.md5New()
  const x = Buffer.from('x')
  t.throws(() => io.md5Lanes([a, a], [[x], [x]]), TypeError, 'one stream twice in a job')
  t.throws(() => io.md5Lanes([a, b], [[x]]), TypeError, 'a list of pieces missing')
  t.throws(() => io.md5Lanes([], []), TypeError, 'no stream')
  t.throws(() => io.md5Lanes([a, {}], [[x], [x]]), TypeError, 'something else than a stream')
  t.throws(() => io.md5Lanes([a], [['text' as unknown as Uint8Array]]), TypeError, 'a piece that is not bytes')
  t.throws(() => io.md5Lanes([a], [x as unknown as Uint8Array[]]), TypeError, 'pieces not in a list')
  const big = crypto.randomBytes(4 * MiB)
  const running = io.md5Lanes([a], [[big]])
  t.throws(() => io.md5Lanes([b, a], [[x], [x]]), TypeError, 'a stream another job feeds')
  t.throws(() => io.md5Digest(a), TypeError, 'no digest while a job feeds it')
  await running
  await io.md5Lanes([a, b], [[x], [x, x]])
  t.equal(io.md5Digest(a), md5(Buffer.concat([big, x])), 'the streams refused jobs named were fed nothing by them')
  t.equal(io.md5Digest(b), md5(Buffer.from('xx')), 'and are fed by the next job')
})

t.test('chunk files: written whole and renamed, with or without O_DIRECT; failures leave nothing', { skip: io === undefined ? 'no addon' : false }, async t => {
  if (io === undefined) return
  const dir = t.testdir({})
  const data = crypto.randomBytes(MiB)
  t.equal(await io.writeFile(path.join(dir, 'a.tmp'), data, false, path.join(dir, 'a')), false, 'through the page cache when not asked for O_DIRECT')
  t.ok(fs.readFileSync(path.join(dir, 'a')).equals(data), 'the file holds the data, under its final name')
  t.notOk(fs.existsSync(path.join(dir, 'a.tmp')), 'and the temp name is gone')

  await io.writeFile(path.join(dir, 'b'), data.subarray(0, 1000), false, null)
  t.ok(fs.readFileSync(path.join(dir, 'b')).equals(data.subarray(0, 1000)), 'without a rename when no final name is given')

  // Ordinary memory, or a length off a block boundary, cannot go with O_DIRECT: the
  // write is refused (EINVAL) and done again through the page cache.
  const odd = crypto.randomBytes(MiB - 100)
  const used = await io.writeFile(path.join(dir, 'c.tmp'), odd, true, path.join(dir, 'c'))
  t.ok(fs.readFileSync(path.join(dir, 'c')).equals(odd), `O_DIRECT asked of ordinary memory: the file is whole all the same (used: ${used})`)
  const aligned = alignedBuffer(MiB)
  if (aligned !== undefined) {
    crypto.randomFillSync(aligned)
    const usedAligned = await io.writeFile(path.join(dir, 'd.tmp'), aligned, true, path.join(dir, 'd'))
    t.ok(fs.readFileSync(path.join(dir, 'd')).equals(aligned), `aligned memory: the file is whole (O_DIRECT used: ${usedAligned})`)
  }

  await t.rejects(io.writeFile(path.join(dir, 'no', 'such', 'x'), data, true, null), { code: 'ENOENT', syscall: 'open', errno: -2 }, 'a missing directory: ENOENT from open')
  fs.mkdirSync(path.join(dir, 'full'))
  await t.rejects(io.writeFile(path.join(dir, 'e.tmp'), data, false, path.join(dir, 'full')), { code: 'EISDIR', syscall: 'rename' }, 'a rename onto a directory fails…')
  t.notOk(fs.existsSync(path.join(dir, 'e.tmp')), '…and leaves no temp file')
  t.throws(() => io.writeFile(path.join(dir, 'f'), data, false, 7 as unknown as string), TypeError, 'a bad final name is refused at once')
})

t.test('Md5Stream.updateHeld: pieces fed uncopied, in order, with copied pieces and holes between', async t => {
  const pieces = Array.from({ length: 12 }, (_, i) => crypto.randomBytes(i % 3 === 0 ? MiB : 200 * 1024 + i))
  const s = new Md5Stream()
  const expect: Buffer[] = []
  const fed: Array<Promise<void>> = []
  // Not awaited one by one: the stream must keep the order it was called in.
  for (const [i, p] of pieces.entries()) {
    if (i % 4 === 3) { fed.push(s.update(p)); expect.push(p) } else { fed.push(s.updateHeld(p)); expect.push(p) }
    if (i === 5) { fed.push(s.updateZeros(MiB + 1)); expect.push(Buffer.alloc(MiB + 1)) }
  }
  await Promise.all(fed)
  t.equal(await s.digest(), md5(Buffer.concat(expect)), 'the MD5 of every piece, in the order given')
  s.drop()

  const small = new Md5Stream()
  await small.updateHeld(Buffer.from('abc'))
  await small.updateHeld(crypto.randomBytes(0))
  await small.updateHeld(Buffer.from('def'))
  t.equal(await small.digest(), md5(Buffer.from('abcdef')), 'a small stream, hashed in place')
})
