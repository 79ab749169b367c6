// Damaged chunks (issue 6, docs/SEMANTICS.md "Reads verify", "fsck"): bytes
// overwritten inside a chunk file under <data>/chunks while the store is mounted
// are detected on read (EIO through the mount, never wrong bytes; logged), by
// `fsck --deep`; `fsck --repair` moves the file to <data>/quarantine/ and reads of
// it keep failing with EIO. Also: a chunk file cut short, a missing one, damaged
// inline data, and writing the same bytes again.
// Needs the built daemon (`npm run build`) and /dev/fuse.
import t from 'tap'
import fs from 'node:fs'
import path from 'node:path'
import { spawnSync } from 'node:child_process'
import Database from 'better-sqlite3'
import { withMount, BIN } from './helpers/mount'
import { errnoOf, sha256, Prng, KiB, MiB } from './helpers/e2e'

process.umask(0o022)

function cli (dataDir: string, ...args: string[]): { status: number | null, out: string } {
  const env = { ...process.env }
  delete env.DEBUG
  const r = spawnSync(process.execPath, [BIN, ...args, '--data', dataDir], { encoding: 'utf8', env, timeout: 120_000 })
  return { status: r.status, out: `${r.stdout ?? ''}${r.stderr ?? ''}` }
}

const chunkPath = (dataDir: string, data: Buffer): string => {
  const hex = sha256(data)
  return path.join(dataDir, 'chunks', hex.slice(0, 2), hex)
}

/** Reads [off, off+len) through the mount: the bytes read, or the errno. */
function readRange (file: string, off: number, len: number): { code: string, data: Buffer } {
  const buf = Buffer.alloc(len)
  let n = 0
  const code = errnoOf(() => {
    const fd = fs.openSync(file, 'r')
    try { n = fs.readSync(fd, buf, 0, len, off) } finally { fs.closeSync(fd) }
  })
  return { code, data: buf.subarray(0, n) }
}

t.test('a damaged chunk gives EIO, never wrong bytes; fsck finds it; --repair quarantines it', async t => {
  await withMount(t, async (mnt, dataDir, m) => {
    const b = path.join(mnt, 'damage-69')
    fs.mkdirSync(b)
    const rng = new Prng(69)
    const data = rng.bytes(3 * MiB)
    const f = path.join(b, 'three-chunks.bin')
    fs.writeFileSync(f, data)
    const twin = path.join(b, 'twin.bin') // the same middle MiB: shares the chunk
    fs.writeFileSync(twin, data.subarray(MiB, 2 * MiB))
    const mid = data.subarray(MiB, 2 * MiB)
    const chunk = chunkPath(dataDir, mid)
    t.ok(fs.existsSync(chunk), 'the middle MiB is a chunk file named by its SHA-256')
    // A fresh mount: nothing of these files is in the kernel's page cache or the daemon's chunk cache.
    t.equal(await m.remount(), 0, 'remounted')

    // Damage 16 bytes in the middle of the chunk file, in place, while mounted.
    const fd = fs.openSync(chunk, 'r+')
    fs.writeSync(fd, Buffer.alloc(16, 0x42), 0, 16, 4000)
    fs.closeSync(fd)
    t.equal(fs.statSync(chunk).size, MiB, 'the damaged chunk file keeps its size')

    const first = readRange(f, 0, 64 * KiB)
    t.equal(first.code, 'ok', 'the first MiB (an intact chunk) reads')
    t.ok(first.data.equals(data.subarray(0, 64 * KiB)), 'with the right bytes')
    const bad = readRange(f, MiB, 64 * KiB)
    t.equal(bad.code, 'EIO', 'reading inside the damaged chunk: EIO')
    const exact = readRange(f, MiB + 4000, 16)
    t.equal(exact.code, 'EIO', 'reading exactly the damaged bytes: EIO')
    const across = readRange(f, MiB - 8 * KiB, 16 * KiB)
    t.ok(across.code === 'EIO' || across.data.length <= 8 * KiB, `a read across into the damaged chunk: ${across.code}, ${across.data.length} bytes`)
    t.ok(across.data.equals(data.subarray(MiB - 8 * KiB, MiB - 8 * KiB + across.data.length)), 'any bytes it returned are the right ones')
    t.equal(readRange(twin, 0, 4 * KiB).code, 'EIO', 'another file sharing the chunk: EIO too')
    t.equal(readRange(f, 2 * MiB, 64 * KiB).code, 'ok', 'the last MiB reads')
    let whole = 'ok'
    try { fs.readFileSync(f) } catch (err) { whole = (err as NodeJS.ErrnoException).code ?? String(err) }
    t.equal(whole, 'EIO', 'reading the whole file fails with EIO')
    t.equal(errnoOf(() => fs.readFileSync(f)), 'EIO', 'and again (nothing damaged is cached as good)')
    t.ok(m.pid !== undefined, 'the daemon is still running')
    const hex = path.basename(chunk)
    t.match(m.log(), new RegExp(hex), 'the daemon log names the damaged chunk')
    t.match(m.log(), /damaged|does not match/, 'and says it is damaged')

    // fsck: the plain one checks sizes only; --deep rehashes.
    const plain = cli(dataDir, 'fsck')
    t.comment(`fsck (not deep): exit ${plain.status}`)
    const deep = cli(dataDir, 'fsck', '--deep')
    t.equal(deep.status, 1, 'fsck --deep exits 1')
    t.match(deep.out, /corrupt chunks: 1/, 'and reports one corrupt chunk', { out: deep.out })
    t.match(deep.out, new RegExp(hex), 'naming it')

    // --repair moves it to quarantine; reads keep failing with EIO.
    const repair = cli(dataDir, 'fsck', '--deep', '--repair')
    t.match(repair.out, /moved damaged chunk/, 'fsck --repair moves the damaged chunk', { out: repair.out })
    t.notOk(fs.existsSync(chunk), 'it is gone from chunks/')
    const quarantined = fs.readdirSync(path.join(dataDir, 'quarantine'))
    t.equal(quarantined.filter(n => n.startsWith(hex)).length, 1, 'and is in quarantine/')
    t.equal(readRange(f, MiB, 64 * KiB).code, 'EIO', 'reading the range still fails with EIO')
    t.equal(readRange(f, 0, 64 * KiB).code, 'ok', 'the intact parts still read')
    const after = cli(dataDir, 'fsck')
    t.equal(after.status, 1, 'fsck now reports the chunk as missing (exit 1)')
    t.match(after.out, /missing chunks: 1/, 'as one missing chunk', { out: after.out })
    t.match(repair.out + after.out, /damage-69\/three-chunks\.bin|three-chunks\.bin/, 'the objects holding it are named somewhere in the reports')

    // Writing the same bytes again (a restore from a backup) makes the chunk whole again.
    const restored = path.join(b, 'restored-middle.bin')
    fs.writeFileSync(restored, mid)
    t.equal(await m.remount(), 0, 'remounted (so reads come from the store, not the kernel\'s cache of the write)')
    t.equal(readRange(restored, 0, 64 * KiB).code, 'ok', 'a new file with the lost chunk\'s bytes reads')
    t.ok(fs.existsSync(chunk), 'the chunk file exists again')
    t.equal(sha256(fs.readFileSync(chunk)), hex, 'with the right content')
    t.equal(errnoOf(() => fs.readFileSync(f)), 'ok', 'and the damaged file reads again, whole')
    t.equal(sha256(fs.readFileSync(f)), sha256(data), 'with exactly its bytes')
    const healed = cli(dataDir, 'fsck', '--deep')
    t.equal(healed.status, 0, 'fsck --deep is clean again', { out: healed.out })
  })
})

t.test('writing bytes that match a damaged chunk must not silently reuse the damaged file', async t => {
  await withMount(t, async (mnt, dataDir, m) => {
    const b = path.join(mnt, 'dedup-69')
    fs.mkdirSync(b)
    const data = new Prng(6901).bytes(MiB)
    fs.writeFileSync(path.join(b, 'original.bin'), data)
    const chunk = chunkPath(dataDir, data)
    const fd = fs.openSync(chunk, 'r+')
    fs.writeSync(fd, Buffer.from('garbage'), 0, 7, 100)
    fs.closeSync(fd)
    t.equal(await m.remount(), 0, 'remounted (no cached copy anywhere)')
    // A new file with the very same bytes: dedup finds the chunk "already stored".
    const copy = path.join(b, 'copy.bin')
    const wrote = errnoOf(() => { fs.writeFileSync(copy, data) })
    t.equal(wrote, 'ok', 'writing the same bytes again succeeds')
    t.equal(await m.remount(), 0, 'remounted (the kernel kept the written pages: read from the store)')
    const r = readRange(copy, 0, 64 * KiB)
    t.equal(r.code, 'ok', 'and the new file reads (a successful write must not be unreadable)')
    if (r.code === 'ok') t.ok(r.data.equals(data.subarray(0, 64 * KiB)), 'with the right bytes')
    t.ok(m.pid !== undefined, 'the daemon is running')
  })
})

t.test('a chunk file cut short, a missing one, and damaged inline data', async t => {
  await withMount(t, async (mnt, dataDir, m) => {
    const b = path.join(mnt, 'more-damage-69')
    fs.mkdirSync(b)
    const rng = new Prng(6902)
    const short = rng.bytes(MiB)
    const gone = rng.bytes(MiB)
    const small = rng.bytes(10 * KiB) // inline in SQLite
    fs.writeFileSync(path.join(b, 'short.bin'), short)
    fs.writeFileSync(path.join(b, 'gone.bin'), gone)
    fs.writeFileSync(path.join(b, 'small.bin'), small)
    fs.writeFileSync(path.join(b, 'fine.bin'), rng.bytes(2 * MiB))
    t.equal(await m.remount(), 0, 'remounted')
    fs.truncateSync(chunkPath(dataDir, short), 1000)
    fs.rmSync(chunkPath(dataDir, gone))
    const db = new Database(path.join(dataDir, 'meta.db'))
    const changed = db.prepare('UPDATE chunks SET data = ? WHERE hash = ?').run(Buffer.alloc(small.length, 0x55), Buffer.from(sha256(small), 'hex')).changes
    db.close()
    t.equal(changed, 1, 'the inline chunk\'s data was overwritten in the database')
    t.equal(readRange(path.join(b, 'short.bin'), 0, 4 * KiB).code, 'EIO', 'a chunk file cut short: EIO')
    t.equal(readRange(path.join(b, 'short.bin'), 0, 500).code, 'EIO', 'even for bytes it still holds')
    t.equal(readRange(path.join(b, 'gone.bin'), 0, 4 * KiB).code, 'EIO', 'a missing chunk file: EIO')
    t.equal(readRange(path.join(b, 'small.bin'), 0, 4 * KiB).code, 'EIO', 'damaged inline data: EIO')
    t.equal(readRange(path.join(b, 'fine.bin'), MiB, 4 * KiB).code, 'ok', 'an intact file reads')
    const plain = cli(dataDir, 'fsck')
    t.equal(plain.status, 1, 'fsck (not deep) finds the short and the missing file')
    t.match(plain.out, /missing chunks: 1/, 'one missing', { out: plain.out })
    const deep = cli(dataDir, 'fsck', '--deep')
    t.match(deep.out, /corrupt chunks: 2/, 'fsck --deep: two corrupt (the short file and the inline data)', { out: deep.out })
    t.ok(m.pid !== undefined, 'the daemon is running')
    t.equal(await m.stop(), 0, 'the daemon exits 0')
  })
})

t.test('reads check a chunk\'s CRC-32, or its SHA-256 when it was written without one', async t => {
  await withMount(t, async (mnt, dataDir, m) => {
    const b = path.join(mnt, 'crc-69')
    fs.mkdirSync(b)
    const rng = new Prng(6969)
    const withCrc = rng.bytes(2 * MiB)
    const withoutCrc = rng.bytes(2 * MiB)
    fs.writeFileSync(path.join(b, 'with-crc.bin'), withCrc)
    fs.writeFileSync(path.join(b, 'without-crc.bin'), withoutCrc)
    const db = new Database(path.join(dataDir, 'meta.db'))
    try {
      const crcOf = (data: Buffer): number | null => (db.prepare('SELECT crc FROM chunks WHERE hash = ?').get(Buffer.from(sha256(data), 'hex')) as { crc: number | null }).crc
      const c = crcOf(withCrc.subarray(0, MiB))
      t.ok(typeof c === 'number', 'a chunk is written with its CRC-32')
      // As a store written before CRCs (schema version 3) has them.
      for (const off of [0, MiB]) db.prepare('UPDATE chunks SET crc = NULL WHERE hash = ?').run(Buffer.from(sha256(withoutCrc.subarray(off, off + MiB)), 'hex'))
    } finally {
      db.close()
    }
    t.equal(await m.remount(), 0, 'remounted (nothing cached)')
    for (const [name, data] of [['with-crc.bin', withCrc], ['without-crc.bin', withoutCrc]] as const) {
      t.ok(fs.readFileSync(path.join(b, name)).equals(data), `${name} reads back`)
      const chunk = chunkPath(dataDir, data.subarray(MiB))
      const fd = fs.openSync(chunk, 'r+')
      fs.writeSync(fd, Buffer.from([0x5a]), 0, 1, 123456)
      fs.closeSync(fd)
    }
    t.equal(await m.remount(), 0, 'remounted after damaging one byte of each second chunk')
    for (const name of ['with-crc.bin', 'without-crc.bin']) {
      t.equal(readRange(path.join(b, name), 0, 64 * KiB).code, 'ok', `${name}: the intact chunk reads`)
      t.equal(readRange(path.join(b, name), MiB, 64 * KiB).code, 'EIO', `${name}: the damaged one gives EIO`)
    }
  })
})
