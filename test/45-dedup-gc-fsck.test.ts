// The content-addressed chunk store seen through the Store API: the same bytes
// are stored once, gc removes exactly the unreferenced chunks, and fsck finds
// missing and corrupt chunk files. (SPEC §3; objects ≥ 1 MiB so that their
// chunks are files, not inline rows.)
import t from 'tap'
import fs from 'node:fs'
import path from 'node:path'
import os from 'node:os'
import crypto from 'node:crypto'
import fsp from 'node:fs/promises'
import { ChunkFiles } from '../src/blob/chunks'
import { alignedBuffer, directWritable } from '../src/blob/aligned'
import { NATIVE_HASHING } from '../src/blob/hasher'
import { Store } from '../src/store'
import { tempStore, failsWith, random, chunkFiles, sha256hex, md5hex, MiB } from './helpers/store'

t.test('the data dir: created 0700, database 0600', async t => {
  const ts = tempStore(t)
  t.equal(fs.statSync(ts.dir).mode & 0o777, 0o700, 'data dir is 0700')
  const dbFiles = fs.readdirSync(ts.dir).filter(f => /\.(db|sqlite3?)$/.test(f))
  t.ok(dbFiles.length >= 1, `a database file (${dbFiles.join(', ')})`)
  for (const f of dbFiles) t.equal(fs.statSync(path.join(ts.dir, f)).mode & 0o777, 0o600, `${f} is 0600`)
})

t.test('the same 10 MiB under two keys and as two versions is stored once', async t => {
  const ts = tempStore(t)
  const store = ts.store
  store.createBucket('dedup', {})
  store.putBucketVersioning('dedup', 'Enabled')
  const data = random(10 * MiB)
  const empty = store.stats()
  t.equal(empty.storedBytes, 0, 'an empty store stores nothing')
  t.equal(empty.dedupRatio, 1, 'dedup ratio 1 when nothing is stored')
  await store.putObject('dedup', 'one', data)
  const once = store.stats()
  await store.putObject('dedup', 'two', data)
  await store.putObject('dedup', 'same', data)
  await store.putObject('dedup', 'same', data)
  const st = store.stats()
  t.equal(st.logicalBytes, 40 * MiB, 'logicalBytes counts four versions of 10 MiB')
  t.ok(st.storedBytes >= 10 * MiB && st.storedBytes <= 10 * MiB + 64 * 1024, `storedBytes ≈ 10 MiB (${st.storedBytes})`)
  t.equal(st.storedBytes, once.storedBytes, 'the three later writes stored nothing new')
  t.equal(st.chunks, once.chunks, 'and made no new chunk')
  t.ok(st.dedupRatio > 3.95 && st.dedupRatio <= 4, `dedupRatio ≈ 4 (${st.dedupRatio})`)
  t.match(st, { buckets: 1, objects: 3, versions: 4, deleteMarkers: 0, uploads: 0 })
  const fileBytes = chunkFiles(ts.dir).reduce((n, f) => n + fs.statSync(f).size, 0)
  t.ok(fileBytes >= 10 * MiB && fileBytes <= 10 * MiB + 64 * 1024, `chunk files on disk hold ≈ 10 MiB (${fileBytes})`)
  for (const key of ['one', 'two', 'same']) {
    t.ok((await store.getObject('dedup', key, {})).body.equals(data), `${key} reads back`)
  }

  // A multipart upload of the same bytes (parts aligned to chunks) dedups too.
  const u = store.createMultipartUpload('dedup', 'mpu', {})
  const e1 = (await store.uploadPart(u.uploadId, 1, data.subarray(0, 5 * MiB))).etag
  const e2 = (await store.uploadPart(u.uploadId, 2, data.subarray(5 * MiB))).etag
  await store.completeMultipartUpload(u.uploadId, [{ partNumber: 1, etag: e1 }, { partNumber: 2, etag: e2 }])
  t.equal(store.stats().storedBytes, once.storedBytes, 'a multipart upload of the same bytes stores nothing new')
  t.ok((await store.getObject('dedup', 'mpu', {})).body.equals(data), 'and reads back')
})

t.test('gc removes exactly the unreferenced chunks', async t => {
  const ts = tempStore(t)
  const store = ts.store
  store.createBucket('gcb', {})
  store.putBucketVersioning('gcb', 'Enabled')
  const a = random(3 * MiB)
  const b = random(3 * MiB)
  const c = random(2 * MiB + 100)
  const va = await store.putObject('gcb', 'k', a)
  const vb = await store.putObject('gcb', 'k', b)
  await store.putObject('gcb', 'other', c)
  await store.copyObject('gcb', 'k', 'gcb', 'copy-of-a', { versionId: va.versionId })

  const nothing = store.gc({})
  t.match(nothing, { chunksRemoved: 0, bytesFreed: 0 }, 'gc removes nothing while everything is referenced')
  const filesBefore = chunkFiles(ts.dir)
  const statsBefore = store.stats()

  // Version A is still referenced by the copy: deleting it frees nothing.
  store.deleteObject('gcb', 'k', { versionId: va.versionId })
  t.equal(store.gc({}).chunksRemoved, 0, 'a chunk shared with a copy is kept')
  t.same(chunkFiles(ts.dir), filesBefore, 'no chunk file removed')

  // Deleting the copy (unversioned semantics do not apply: the bucket is Enabled,
  // so remove its version permanently) leaves A unreferenced.
  const copyVersion = store.listObjectVersions('gcb', { prefix: 'copy-of-a' }).versions[0]
  store.deleteObject('gcb', 'copy-of-a', { versionId: copyVersion.versionId })
  // A delete marker on 'other' keeps its data: nothing of C may go.
  store.deleteObject('gcb', 'other', {})
  const report = store.gc({})
  const filesAfter = chunkFiles(ts.dir)
  const statsAfter = store.stats()
  t.ok(report.chunksRemoved > 0, `gc removed the chunks of A (${report.chunksRemoved})`)
  t.equal(report.bytesFreed, 3 * MiB, 'exactly A’s 3 MiB freed')
  t.equal(statsBefore.storedBytes - statsAfter.storedBytes, 3 * MiB, 'storedBytes down by 3 MiB')
  t.equal(statsBefore.chunks - statsAfter.chunks, report.chunksRemoved, 'chunk count down by chunksRemoved')
  t.equal(filesBefore.length - filesAfter.length, report.chunksRemoved, 'exactly chunksRemoved chunk files were deleted')
  t.ok(filesAfter.every(f => filesBefore.includes(f)), 'no new chunk files')

  t.ok((await store.getObject('gcb', 'k', {})).body.equals(b), 'B still reads back')
  t.ok((await store.getObject('gcb', 'k', { versionId: vb.versionId })).body.equals(b), 'by version id too')
  const cVersion = store.listObjectVersions('gcb', { prefix: 'other' }).versions.find(v => !v.isDeleteMarker)
  t.ok(cVersion, 'C is still a version behind its marker')
  if (cVersion !== undefined) {
    t.ok((await store.getObject('gcb', 'other', { versionId: cVersion.versionId })).body.equals(c), 'C still reads back by version id')
  }
  t.match(store.gc({}), { chunksRemoved: 0, bytesFreed: 0 }, 'a second gc finds nothing')
  const fsck = await store.fsck({ deep: true })
  t.equal(fsck.clean, true, 'fsck --deep is clean after gc')
  t.same(fsck.orphanFiles, [], 'no orphan chunk files')
})

t.test('gc never removes chunks of an upload in progress', async t => {
  const ts = tempStore(t)
  const store = ts.store
  store.createBucket('gcb', {})
  const p1 = random(5 * MiB)
  const p2 = random(MiB + 7)
  const u = store.createMultipartUpload('gcb', 'k', {})
  const e1 = (await store.uploadPart(u.uploadId, 1, p1)).etag
  const files = chunkFiles(ts.dir).length
  t.equal(store.gc({}).chunksRemoved, 0, 'gc during an upload removes nothing')
  t.equal(chunkFiles(ts.dir).length, files, 'the part’s chunk files are there')
  const e2 = (await store.uploadPart(u.uploadId, 2, p2)).etag
  await store.completeMultipartUpload(u.uploadId, [{ partNumber: 1, etag: e1 }, { partNumber: 2, etag: e2 }])
  t.equal(store.gc({}).chunksRemoved, 0, 'nor after Complete (the object references them now)')
  t.ok((await store.getObject('gcb', 'k', {})).body.equals(Buffer.concat([p1, p2])), 'the object reads back whole')
  const report = await store.fsck({})
  t.equal(report.clean, true)
})

t.test('fsck: clean store, missing chunk file, corrupt chunk file', async t => {
  const ts = tempStore(t)
  const store = ts.store
  store.createBucket('fsk', {})
  const data = random(4 * MiB)
  await store.putObject('fsk', 'victim', data)
  await store.putObject('fsk', 'bystander', random(2 * MiB))

  const clean = await store.fsck({ deep: true })
  t.equal(clean.clean, true, 'a fresh store is clean')
  t.ok(clean.chunksChecked >= 1, `chunks checked (${clean.chunksChecked})`)
  t.same([clean.missingChunks, clean.corruptChunks, clean.badRefcounts, clean.orphanFiles], [[], [], [], []])
  const u = store.createMultipartUpload('fsk', 'pending', {})
  const withUpload = await store.fsck({})
  t.same(withUpload.uploadsInProgress.map(x => x.uploadId), [u.uploadId], 'fsck reports uploads in progress')
  t.equal(withUpload.clean, true, 'an upload in progress is not damage')
  store.abortMultipartUpload(u.uploadId)

  const progress: Array<[number, number]> = []
  await store.fsck({ deep: true, onProgress: (done, total) => { progress.push([done, total]) } })
  t.ok(progress.length > 0, 'onProgress is called')
  if (progress.length > 0) {
    const [done, total] = progress[progress.length - 1]
    t.equal(done, total, 'and ends at done === total')
  }

  // The victim's chunk files are the ones whose content occurs in its bytes.
  const files = chunkFiles(ts.dir)
  t.ok(files.length >= 2, 'chunk files exist for objects of several MiB')
  const victimFiles = files.filter(f => data.includes(fs.readFileSync(f)))
  t.ok(victimFiles.length >= 2, 'found chunk files holding the victim’s bytes')

  // 1. A deleted chunk file.
  const gone = victimFiles[0]
  const goneContent = fs.readFileSync(gone)
  const goneHash = sha256hex(goneContent)
  fs.rmSync(gone)
  const r1 = await store.fsck({})
  t.equal(r1.clean, false, 'not clean with a chunk file missing')
  t.equal(r1.missingChunks.length, 1, 'one missing chunk')
  t.ok(r1.missingChunks.includes(goneHash) || r1.missingChunks.some(h => path.basename(gone).includes(h)),
    'named by its hash')
  t.same(r1.corruptChunks, [])
  await t.rejects(async () => await store.getObject('fsk', 'victim', {}), 'reading an object whose chunk file is missing fails (never other bytes)')
  t.ok((await store.getObject('fsk', 'bystander', {})).body.length === 2 * MiB, 'other objects still read')
  fs.mkdirSync(path.dirname(gone), { recursive: true })
  fs.writeFileSync(gone, goneContent)
  t.equal((await store.fsck({ deep: true })).clean, true, 'clean again once the file is back')

  // 2. A corrupted chunk file (same size, one byte flipped).
  const bad = victimFiles[1]
  const badHash = sha256hex(fs.readFileSync(bad))
  fs.chmodSync(bad, 0o600)
  const fd = fs.openSync(bad, 'r+')
  const one = Buffer.alloc(1)
  fs.readSync(fd, one, 0, 1, 1000)
  one[0] ^= 0xff
  fs.writeSync(fd, one, 0, 1, 1000)
  fs.closeSync(fd)
  const r2 = await store.fsck({ deep: true })
  t.equal(r2.clean, false, 'deep fsck: not clean with a corrupt chunk')
  t.ok(r2.corruptChunks.includes(badHash) || r2.corruptChunks.some(h => path.basename(bad).includes(h)), 'the corrupt chunk is named by its hash')
  t.equal(r2.corruptChunks.length, 1, 'only that one')
  t.same(r2.missingChunks, [], 'nothing missing')

  // Sanity: md5 of the victim is unchanged in metadata.
  t.equal(store.headObject('fsk', 'victim', {}).etag, md5hex(data))
})

t.test('overwrites and deletes in an unversioned bucket free their data at gc', async t => {
  const ts = tempStore(t)
  const store = ts.store
  store.createBucket('gcb', {})
  const a = random(2 * MiB)
  const b = random(3 * MiB)
  await store.putObject('gcb', 'k', a)
  await store.putObject('gcb', 'k', b)
  t.equal(store.gc({}).bytesFreed, a.length, 'the overwritten data is freed')
  t.ok((await store.getObject('gcb', 'k', {})).body.equals(b))
  store.deleteObject('gcb', 'k', {})
  t.equal(store.gc({}).bytesFreed, b.length, 'the deleted data is freed')
  t.match(store.stats(), { storedBytes: 0, logicalBytes: 0, objects: 0, versions: 0 }, 'nothing left')
  t.same(chunkFiles(ts.dir), [], 'no chunk file left')
})

t.test('a put whose body fails stores nothing and leaks nothing', async t => {
  const ts = tempStore(t)
  const store = ts.store
  store.createBucket('gcb', {})
  const old = random(MiB + 5)
  await store.putObject('gcb', 'k', old)
  const base = store.stats()
  async function * failing (): AsyncGenerator<Buffer> {
    yield random(MiB)
    yield random(MiB)
    yield random(512 * 1024)
    throw new Error('client went away')
  }
  await t.rejects(store.putObject('gcb', 'k', failing()), { message: 'client went away' }, 'the put fails with the body’s error')
  await t.rejects(store.putObject('gcb', 'new', failing()), 'a put of a new key fails too')
  t.ok((await store.getObject('gcb', 'k', {})).body.equals(old), 'the old object is intact')
  await failsWith(t, () => store.headObject('gcb', 'new', {}), 'NoSuchKey', 'no object for the failed put')
  t.match(store.stats(), { objects: base.objects, versions: base.versions, logicalBytes: base.logicalBytes }, 'no version recorded')
  store.gc({})
  t.equal(store.stats().storedBytes, base.storedBytes, 'after gc, the failed puts’ chunks are gone')
  const report = await store.fsck({ deep: true })
  t.equal(report.clean, true, 'fsck clean')
  t.same(report.orphanFiles, [], 'no orphan files')
})

t.test('two stores on one data dir (daemon and CLI): gc in one never makes the other read wrong bytes', async t => {
  // SPEC §3: other processes (the CLI) may read and write the same database. Two
  // Store instances stand for two processes: each has its own caches.
  const ts = tempStore(t)
  const daemon = ts.store
  const cli = Store.open(ts.dir)
  t.teardown(() => { cli.close() })
  daemon.createBucket('two', {})
  const x = random(MiB)
  const y = random(MiB)
  await cli.putObject('two', 'x', x)
  t.ok((await daemon.getObject('two', 'x', {})).body.equals(x), 'the daemon reads what the CLI wrote')
  cli.deleteObject('two', 'x', {})
  cli.gc({})
  await failsWith(t, () => daemon.getObject('two', 'x', {}), 'NoSuchKey', 'the daemon sees the CLI’s delete')
  await cli.putObject('two', 'y', y)
  const got = (await daemon.getObject('two', 'y', {})).body
  t.ok(got.equals(y), 'the daemon reads the new object’s bytes (not the deleted one’s)', { sameAsDeletedObject: got.equals(x) })
  const r = daemon.readObject('two', 'y', {})
  const parts: Buffer[] = []
  for await (const b of r.stream) parts.push(b)
  t.ok(Buffer.concat(parts).equals(y), 'readObject too')
})

t.test('pins dropped with unpin go with the next transaction, or soon on their own, never while it rolls back', async t => {
  const ts = tempStore(t)
  const store = ts.store
  store.createBucket('pins', {})
  const v = await store.putObject('pins', 'k', random(2 * MiB))
  const pinned = (owner: number): number =>
    (store.catalog.db.prepare('SELECT COUNT(*) AS n FROM pins WHERE owner = ?').get(owner) as { n: number }).n
  const extents = store.extentsOf(v.seq)

  const a = store.content.pinExtents(extents)
  t.equal(pinned(a), 2, 'two chunks pinned')
  store.content.unpin(a)
  t.equal(pinned(a), 2, 'unpin leaves them for a moment')
  store.catalog.write(() => {})
  t.equal(pinned(a), 0, 'the next write transaction drops them')

  const b = store.content.pinExtents(extents)
  store.content.unpin(b)
  t.throws(() => store.catalog.write(() => { throw new Error('no') }), /no/)
  t.equal(pinned(b), 2, 'a transaction that rolls back keeps them')
  await new Promise(resolve => setTimeout(resolve, 300))
  t.equal(pinned(b), 0, 'and they go on their own soon after')

  const c = store.content.pinExtents(extents)
  store.content.unpin(c)
  ts.close()
  const again = Store.open(ts.dir)
  t.teardown(() => { again.close() })
  t.equal((again.catalog.db.prepare('SELECT COUNT(*) AS n FROM pins WHERE owner = ?').get(c) as { n: number }).n, 0, 'closing the store drops them')
})

t.test('a chunk file gc removed before it was synced does not fail the next sync', async t => {
  const ts = tempStore(t)
  const files = ts.store.content.files
  const data = random(MiB)
  const hash = Buffer.from(sha256hex(data), 'hex')
  await files.write(hash, data, true) // written, not yet synced (a save that then failed)
  fs.rmSync(files.pathOf(hash)) // what gc does once nothing pins it
  await t.resolves(files.syncWritten(), 'the next save\'s sync goes on')
  await files.write(hash, data, true)
  await t.resolves(files.syncWritten())
  t.ok(files.exists(hash), 'and the chunk can be written again')
})

/**
 * A ChunkFiles in a fresh temp dir whose opens through node:fs are seen (and can be
 * refused) by the test; `direct` counts those for reading with O_DIRECT. (With
 * native/chunkio a chunk file is written by the addon, which no spy sees:
 * ChunkFiles.directWrites counts the files written with O_DIRECT either way.)
 */
function spiedChunkFiles (t: tap.Test): { files: ChunkFiles, root: string, direct: () => number, directForWrite: () => number, refuse: (what: 'open' | 'read' | null) => void } {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'bucketfs-direct-'))
  t.teardown(() => { fs.rmSync(root, { recursive: true, force: true }) })
  const opened: number[] = []
  const open = fsp.open
  let refused: 'open' | 'read' | null = null
  const einval = (): Error => Object.assign(new Error('EINVAL: invalid argument'), { code: 'EINVAL' })
  fsp.open = (async (file: fs.PathLike, flags?: string | number, mode?: fs.Mode) => {
    const direct = typeof flags === 'number' && (flags & fs.constants.O_DIRECT) !== 0
    if (typeof flags === 'number') opened.push(flags)
    if (direct && refused === 'open') throw einval()
    const fh = await open(file, flags, mode)
    if (direct && refused === 'read') fh.read = (async () => { throw einval() }) as typeof fh.read
    return fh
  }) as typeof fsp.open
  t.teardown(() => { fsp.open = open })
  return {
    files: new ChunkFiles(root),
    root,
    direct: () => opened.filter(f => (f & fs.constants.O_DIRECT) !== 0 && (f & 3) === fs.constants.O_RDONLY).length,
    directForWrite: () => opened.filter(f => (f & fs.constants.O_DIRECT) !== 0 && (f & 3) !== fs.constants.O_RDONLY).length,
    refuse: what => { refused = what }
  }
}

function alignedChunk (): Buffer {
  const b = alignedBuffer(MiB)
  if (b === undefined) throw new Error('the patched fuse-native addon gives no aligned memory')
  crypto.randomFillSync(b)
  return b
}

const hashOf = (b: Buffer): Buffer => crypto.createHash('sha256').update(b).digest()

/** Whether the temp dir's filesystem takes O_DIRECT (tmpfs before Linux 6.6 does not). */
const directHere = ((): boolean => {
  const probe = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'bucketfs-probe-')), 'p')
  try {
    fs.closeSync(fs.openSync(probe, fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_DIRECT))
    return true
  } catch {
    return false
  } finally {
    fs.rmSync(path.dirname(probe), { recursive: true, force: true })
  }
})()

t.test('whole chunks are written from aligned memory and read with O_DIRECT, the rest through the page cache',
  { skip: directHere ? false : 'the temp dir refuses O_DIRECT' }, async t => {
    const { files, direct } = spiedChunkFiles(t)
    const aligned = alignedChunk()
    t.ok(directWritable(aligned), 'the addon gives aligned memory')
    t.notOk(directWritable(Buffer.alloc(MiB)), 'ordinary memory is not')
    t.notOk(directWritable(aligned.subarray(0, MiB - 100)), 'nor a length that ends off a boundary')
    const a = hashOf(aligned)
    await files.write(a, aligned, true)
    t.equal(files.directWrites, 1, 'a whole chunk from aligned memory: written with O_DIRECT')
    t.ok(fs.readFileSync(files.pathOf(a)).equals(aligned), 'and its file holds the chunk')
    const written = Buffer.from(aligned)
    t.ok((await files.readWhole(a, MiB)).equals(written), 'a whole chunk is read back…')
    t.equal(direct(), 1, '…with O_DIRECT')
    fs.truncateSync(files.pathOf(a), 5000)
    t.ok((await files.readWhole(a, MiB)).equals(written.subarray(0, 5000)), 'a short (damaged) file reads short, for the caller to refuse')
    t.equal(direct(), 2)
    const odd = random(MiB - 100)
    await files.write(hashOf(odd), odd, true)
    t.equal(files.directWrites, 1, 'other data goes through the page cache')
    t.ok(fs.readFileSync(files.pathOf(hashOf(odd))).equals(odd))
    await files.syncWritten()
  })

t.test('where O_DIRECT is refused, chunks are written and read through the page cache', async t => {
  // (The addon's own fallback, which no spy here can refuse, is in test/18.)
  if (NATIVE_HASHING) {
    const { files, refuse } = spiedChunkFiles(t)
    refuse('read')
    const aligned = alignedChunk()
    await files.write(hashOf(aligned), aligned, true)
    t.ok((await files.readWhole(hashOf(aligned), MiB)).equals(aligned), 'O_DIRECT refused at read: the chunk is read all the same')
    return
  }
  for (const what of ['open', 'read'] as const) {
    const { files, directForWrite, refuse } = spiedChunkFiles(t)
    refuse(what)
    const aligned = alignedChunk()
    const a = hashOf(aligned)
    await files.write(a, aligned, true)
    t.ok(fs.readFileSync(files.pathOf(a)).equals(aligned), `O_DIRECT refused at ${what}: the chunk is written all the same`)
    const bytes = Buffer.from(aligned)
    t.ok((await files.readWhole(a, MiB)).equals(bytes), 'and read back all the same')
    const tried = directForWrite()
    t.ok(tried >= 1, 'O_DIRECT was tried for the write')
    const b = alignedChunk()
    await files.write(hashOf(b), b, true)
    t.ok((await files.readWhole(hashOf(b), MiB)).equals(b))
    if (what === 'open') t.equal(directForWrite(), tried, 'and O_DIRECT is not tried again')
    else t.ok((await files.readWhole(a, MiB)).equals(bytes))
    await files.syncWritten()
  }
})
