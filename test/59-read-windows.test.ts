// Read windows on the FUSE thread (scripts/fuse-native/fast-path.c): a sequential
// reader's next bytes are put there verified, and its reads inside them are answered
// without JavaScript. They must give exactly the stored bytes (to the last byte of a
// file of any size), and never bytes that a write, a truncate or a rename through the
// mount has changed since they were put.
//
// The mount runs in this process (to read the windows' counters), so every access to it
// is asynchronous. The kernel's page cache is dropped (/proc/sys/vm/drop_caches, root
// only) where a test needs reads to reach the mount again.
process.env.UV_THREADPOOL_SIZE = '16'
/* eslint-disable import/first */
import t from 'tap'
import fs from 'node:fs'
import fsp from 'node:fs/promises'
import path from 'node:path'
import crypto from 'node:crypto'
import { mountInProcess } from './helpers/in-process'
import { fastPathStats } from '../src/mount/fuse'
import { deviceAt } from '../src/mount/mounts'
import { MiB } from './helpers/e2e'

const root = process.getuid?.() === 0
const hits = (): number => fastPathStats()?.windowHits ?? 0
const loads = (): number => fastPathStats()?.windowLoads ?? 0
const sha = (b: Buffer): string => crypto.createHash('sha256').update(b).digest('hex')

async function dropPages (): Promise<void> {
  await fsp.writeFile('/proc/sys/vm/drop_caches', '1\n')
}

/** Reads [from, to) of an open file in 128 KiB reads, until one fails: the bytes read and the failure's code. */
async function readUntilError (fh: fsp.FileHandle, from: number, to: number): Promise<{ data: Buffer, code: string }> {
  const out = Buffer.alloc(to - from)
  let pos = from
  try {
    while (pos < to) {
      const { bytesRead } = await fh.read(out, pos - from, Math.min(128 * 1024, to - pos), pos)
      if (bytesRead === 0) break
      pos += bytesRead
    }
  } catch (err) {
    return { data: out.subarray(0, pos - from), code: (err as NodeJS.ErrnoException).code ?? String(err) }
  }
  return { data: out.subarray(0, pos - from), code: 'ok' }
}

/** Reads [from, to) of an open file in 128 KiB reads. */
async function readRange (fh: fsp.FileHandle, from: number, to: number): Promise<Buffer> {
  const out = Buffer.alloc(to - from)
  for (let pos = from; pos < to;) {
    const { bytesRead } = await fh.read(out, pos - from, Math.min(128 * 1024, to - pos), pos)
    if (bytesRead === 0) break
    pos += bytesRead
  }
  return out
}

t.test('read windows', { skip: fastPathStats() === undefined ? 'the fuse-native addon has no read windows' : false }, async t => {
  const { base, mnt } = await mountInProcess(t, '59')
  const dir = path.join(mnt, 'windows-59')
  await fsp.mkdir(dir)

  await t.test('the kernel reads ahead of a sequential reader 1 MiB at a time', { skip: root ? false : 'the read-ahead is set by root only' }, async t => {
    const dev = deviceAt(mnt)
    t.match(dev, /^\d+:\d+$/, 'the mount\'s device')
    t.equal(fs.readFileSync(`/sys/class/bdi/${dev ?? ''}/read_ahead_kb`, 'utf8').trim(), '1024', 'its read-ahead is 1024 KiB')
  })

  await t.test('a sequential read is answered from them, to the last byte', async t => {
    for (const size of [12 * MiB + 12345, 3 * MiB, 1]) {
      const data = crypto.randomBytes(size)
      const f = path.join(dir, `seq-${size}`)
      await fsp.writeFile(f, data)
      if (root) await dropPages()
      const before = hits()
      const loaded = loads()
      const fh = await fsp.open(f, 'r')
      const got = await readRange(fh, 0, size + 4096)
      await fh.close()
      t.equal(sha(got.subarray(0, size)), sha(data), `${size} bytes read back exactly`)
      t.ok(got.subarray(size).every(b => b === 0), 'nothing past the end')
      if (size > 4 * MiB) {
        t.ok(hits() - before > 0, `some reads were answered from the windows (${hits() - before})`)
        t.ok(loads() - loaded > 0, `windows were read from their chunk files on the threadpool (${loads() - loaded})`)
      }
    }
  })

  await t.test('a damaged chunk is never answered from a window', { skip: root ? false : 'dropping the page cache needs root' }, async t => {
    const data = crypto.randomBytes(12 * MiB)
    const f = path.join(dir, 'damaged')
    await fsp.writeFile(f, data)
    // The chunk file of the seventh MiB (chunks are named by their SHA-256), damaged in place.
    const hex = sha(data.subarray(6 * MiB, 7 * MiB))
    const chunk = path.join(base, 'data', 'chunks', hex.slice(0, 2), hex)
    const fd = fs.openSync(chunk, 'r+')
    fs.writeSync(fd, Buffer.alloc(16, 0x42), 0, 16, 4000)
    fs.closeSync(fd)
    await dropPages()
    const loaded = loads()
    const fh = await fsp.open(f, 'r')
    try {
      const head = await readUntilError(fh, 0, 6 * MiB + 128 * 1024)
      t.ok(loads() > loaded, `the reader's windows were read on the threadpool (${loads() - loaded})`)
      t.equal(head.code, 'EIO', 'the read reaching the damaged chunk fails with EIO')
      t.ok(head.data.length >= 5 * MiB, `the bytes before it were read (${head.data.length})`)
      t.ok(head.data.equals(data.subarray(0, head.data.length)), 'and every byte read is the right one')
      const inside = await readUntilError(fh, 6 * MiB + 4000, 6 * MiB + 4016)
      t.equal(inside.code, 'EIO', 'reading exactly the damaged bytes: EIO')
      const tail = await readUntilError(fh, 8 * MiB, 12 * MiB)
      t.equal(tail.code, 'ok', 'the chunks after it read')
      t.ok(tail.data.equals(data.subarray(8 * MiB)), 'with the right bytes')
    } finally {
      await fh.close()
    }
  })

  await t.test('a chunk file longer than its chunk still reads as the chunk', { skip: root ? false : 'dropping the page cache needs root' }, async t => {
    // A load reads a whole chunk (1 MiB) and no more, then checks the file's size: one that
    // grew is not loaded, and the reader gets the chunk's own bytes from the vfs.
    const data = crypto.randomBytes(8 * MiB)
    const f = path.join(dir, 'longer')
    await fsp.writeFile(f, data)
    const hex = sha(data.subarray(3 * MiB, 4 * MiB))
    await fsp.appendFile(path.join(base, 'data', 'chunks', hex.slice(0, 2), hex), Buffer.alloc(8192, 0x42))
    await dropPages()
    const loaded = loads()
    const fh = await fsp.open(f, 'r')
    try {
      const got = await readUntilError(fh, 0, 8 * MiB)
      t.equal(got.code, 'ok', 'the whole file reads')
      t.ok(got.data.equals(data), 'with the right bytes')
      t.ok(loads() > loaded, `its windows were read on the threadpool (${loads() - loaded})`)
    } finally {
      await fh.close()
    }
  })

  // Each MiB of the file differs (no chunk is shared), so the windows are read from chunk files.
  const changed = async (t: tap.Test, name: string, change: (f: string, reader: fsp.FileHandle) => Promise<void>, expect: (got: Buffer, orig: Buffer) => void): Promise<void> => {
    const f = path.join(dir, name)
    const orig = crypto.randomBytes(16 * MiB)
    await fsp.writeFile(f, orig)
    await dropPages()
    const fh = await fsp.open(f, 'r')
    try {
      const before = hits()
      const loaded = loads()
      await readRange(fh, 0, 4 * MiB) // the windows are put up to 16 MiB past this
      await readRange(fh, 4 * MiB, 6 * MiB)
      t.ok(hits() > before, 'the reader is being answered from the windows')
      t.ok(loads() > loaded, 'which were read on the threadpool')
      await change(f, fh)
      await dropPages()
      expect(await readRange(fh, 6 * MiB, 16 * MiB), orig)
    } finally {
      await fh.close()
    }
  }

  await t.test('a write through another descriptor is seen by the reader', { skip: root ? false : 'dropping the page cache needs root' }, async t => {
    await changed(t, 'written', async f => {
      const w = await fsp.open(f, 'r+')
      await w.write(Buffer.alloc(MiB, 'b'), 0, MiB, 8 * MiB)
      await w.close()
    }, (got, orig) => {
      t.ok(got.subarray(2 * MiB, 3 * MiB).every(b => b === 0x62), 'the new bytes, not the windows\' old ones')
      t.ok(got.subarray(0, 2 * MiB).equals(orig.subarray(6 * MiB, 8 * MiB)), 'the bytes before them')
      t.ok(got.subarray(3 * MiB).equals(orig.subarray(9 * MiB)), 'and after them')
    })
  })

  await t.test('a write through the name libfuse hides an unlinked open file under is seen by the reader', { skip: root ? false : 'dropping the page cache needs root' }, async t => {
    await changed(t, 'hidden', async (f, reader) => {
      await fsp.unlink(f) // open: libfuse renames it to .fuse_hiddenNNN (and every window goes)
      await dropPages()
      await readRange(reader, 6 * MiB, 7 * MiB) // windows are put again, past what was put before, under the old name
      const w = await fsp.open(`/proc/self/fd/${reader.fd}`, 'r+')
      await w.write(Buffer.alloc(MiB, 'b'), 0, MiB, 15 * MiB)
      await w.close()
    }, (got, orig) => {
      t.ok(got.subarray(9 * MiB, 10 * MiB).every(b => b === 0x62), 'the new bytes, not the windows\' old ones')
      t.ok(got.subarray(0, 9 * MiB).equals(orig.subarray(6 * MiB, 15 * MiB)), 'the bytes before them (the file\'s old bytes: its version row is gone, its extents are not)')
    })
  })

  await t.test('a truncate is seen by the reader', { skip: root ? false : 'dropping the page cache needs root' }, async t => {
    await changed(t, 'truncated', async f => { await fsp.truncate(f, 7 * MiB) }, (got, orig) => {
      t.ok(got.subarray(0, MiB).equals(orig.subarray(6 * MiB, 7 * MiB)), 'the bytes left')
      t.ok(got.subarray(MiB).every(b => b === 0), 'nothing past the new end')
    })
  })

  await t.test('a window counts the memory its load holds, not just its length', { skip: root ? false : 'dropping the page cache needs root' }, async t => {
    // The last chunk is a file of 100 KiB + 1 byte, which a load reads into 104 KiB. Read
    // from the start, the file's windows are put up to its end (16 MiB ahead), each read
    // with its chunk on the threadpool (a 1 MiB chunk into half of a huge page) or put whole from
    // a chunk JavaScript read (1 MiB): whole pages each. Counted by length, they would add
    // up to 1 byte past a page.
    const size = 10 * MiB + 100 * 1024 + 1
    const f = path.join(dir, 'uneven')
    const data = crypto.randomBytes(size)
    await fsp.writeFile(f, data)
    await dropPages()
    const bytes = (): number => fastPathStats()?.windowBytes ?? 0
    const before = bytes()
    const fh = await fsp.open(f, 'r')
    try {
      const got = await readRange(fh, 0, 2 * MiB)
      t.ok(got.equals(data.subarray(0, 2 * MiB)), 'the bytes read')
      const held = bytes() - before
      t.ok(held > 8 * MiB && held % 4096 === 0, `the windows count the memory they hold, in whole pages (${held} bytes)`)
    } finally {
      await fh.close()
    }
  })

  await t.test('a file renamed over the one being read keeps the reader on its own bytes', { skip: root ? false : 'dropping the page cache needs root' }, async t => {
    await changed(t, 'replaced', async f => {
      await fsp.writeFile(f + '.new', crypto.randomBytes(16 * MiB))
      await fsp.rename(f + '.new', f)
    }, (got, orig) => {
      t.ok(got.equals(orig.subarray(6 * MiB)), 'an open file keeps its content when its name is replaced')
    })
  })
})

// The close (FLUSH) of a file opened read-only has nothing to save or report: the FUSE
// thread answers it (rsync opens every file it made read-only to set its mode). A close
// of a file opened for writing, or with O_TRUNC, still reaches the vfs and saves.
t.test('closes of read-only files', { skip: fastPathStats() === undefined ? 'the fuse-native addon has no fast path' : false }, async t => {
  const { mnt } = await mountInProcess(t, '59-close')
  const quiet = (): number => fastPathStats()?.quietFlushes ?? 0
  const dir = path.join(mnt, 'closes-59')
  await fsp.mkdir(dir)
  const f = path.join(dir, 'f')
  await fsp.writeFile(f, 'first')

  let before = quiet()
  const r = await fsp.open(f, 'r')
  t.equal((await r.read(Buffer.alloc(16), 0, 16, 0)).bytesRead, 5, 'read through the read-only handle')
  await r.close()
  t.equal(quiet(), before + 1, 'a read-only close is answered on the FUSE thread')

  before = quiet()
  const rw = await fsp.open(f, 'r+')
  await rw.close()
  t.equal(quiet(), before, 'a close of a file opened for writing goes to the vfs')

  // A reader closes while a writer has unsaved changes: the writer's close still saves them.
  const w = await fsp.open(f, 'r+')
  await w.write(Buffer.from('SECOND'), 0, 6, 0)
  const r2 = await fsp.open(f, 'r')
  before = quiet()
  await r2.close()
  t.equal(quiet(), before + 1, 'the reader\'s close answered on the FUSE thread')
  await w.close()
  t.equal(await fsp.readFile(f, 'utf8'), 'SECOND', 'the writer\'s close saved what it wrote')

  before = quiet()
  const tr = await fsp.open(f, fs.constants.O_RDONLY | fs.constants.O_TRUNC)
  await tr.close()
  t.equal(quiet(), before, 'a close of a file opened read-only with O_TRUNC goes to the vfs')
  t.equal((await fsp.stat(f)).size, 0, 'and the truncation holds')
})
