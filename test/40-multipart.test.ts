// Multipart uploads: parts in any order, re-sent parts, CompleteMultipartUpload's
// checks, listing uploads and parts, abort, and the multipart ETag.
// Reference: Amazon S3 API Reference — CreateMultipartUpload, UploadPart,
// CompleteMultipartUpload (InvalidPart, InvalidPartOrder, EntityTooSmall),
// AbortMultipartUpload, ListParts, ListMultipartUploads; User Guide — "Uploading
// and copying objects using multipart upload" and "Checking object integrity"
// (ETags of multipart objects).
import t from 'tap'
import { tempStore, failsWith, md5hex, multipartEtag, random, chunkFiles, pieces, MiB, KiB } from './helpers/store'
import { MIN_PART_SIZE, MAX_PARTS } from '../src/store/limits'
import { newUploadId } from '../src/store/versionid'

t.test('parts uploaded out of order complete into the right bytes', async t => {
  const { store } = tempStore(t)
  store.createBucket('mpu', {})
  t.equal(MIN_PART_SIZE, 5 * MiB)
  t.equal(MAX_PARTS, 10000)
  const p1 = random(5 * MiB)
  const p2 = random(5 * MiB + 1)
  const p3 = random(777 * KiB + 3)
  const before = Date.now()
  const u = store.createMultipartUpload('mpu', 'dir/big.bin', { userMeta: { origin: 'test' } })
  t.type(u.uploadId, 'string')
  t.ok(u.uploadId.length > 0, 'an upload id')
  t.match(u, { bucket: 'mpu', key: 'dir/big.bin', kind: 'client' })
  t.ok(u.initiatedMs >= before - 1000 && u.initiatedMs <= Date.now() + 1000, 'initiated now')

  const r3 = await store.uploadPart(u.uploadId, 3, p3)
  const r1 = await store.uploadPart(u.uploadId, 1, p1)
  const r2 = await store.uploadPart(u.uploadId, 2, p2)
  t.match(r3, { partNumber: 3, size: p3.length, etag: md5hex(p3) }, 'a part’s ETag is the MD5 of its data')
  t.match(r1, { partNumber: 1, size: p1.length, etag: md5hex(p1) })
  t.equal(r2.etag, md5hex(p2))
  await failsWith(t, () => store.headObject('mpu', 'dir/big.bin', {}), 'NoSuchKey', 'nothing visible before Complete')
  t.same(store.listObjects('mpu', {}).contents, [], 'not listed before Complete')

  const v = await store.completeMultipartUpload(u.uploadId, [
    { partNumber: 1, etag: r1.etag }, { partNumber: 2, etag: r2.etag }, { partNumber: 3, etag: r3.etag }
  ])
  const whole = Buffer.concat([p1, p2, p3])
  t.equal(v.size, whole.length, 'size is the sum of the parts')
  t.equal(v.etag, multipartEtag([p1, p2, p3]), 'ETag = md5(concatenated binary part MD5s)-3')
  t.match(v.etag, /^[0-9a-f]{32}-3$/)
  t.same(v.userMeta, { origin: 'test' }, 'metadata given at create is on the object')
  t.equal(v.versionId, 'null', 'unversioned bucket: the null version')
  const got = await store.getObject('mpu', 'dir/big.bin', {})
  t.ok(got.body.equals(whole), 'bytes assembled in part-number order')
  t.equal(store.headObject('mpu', 'dir/big.bin', {}).etag, v.etag, 'head shows the multipart ETag')
  const across = await store.getObject('mpu', 'dir/big.bin', { range: { start: 5 * MiB - 5, end: 10 * MiB + 5 } })
  t.ok(across.body.equals(whole.subarray(5 * MiB - 5, 10 * MiB + 6)), 'a range across part boundaries')
  t.same(store.listMultipartUploads('mpu'), [], 'a completed upload is gone from the list')
  await failsWith(t, () => store.listParts(u.uploadId), 'NoSuchUpload', 'and its id is gone')
  await failsWith(t, () => store.uploadPart(u.uploadId, 4, p3), 'NoSuchUpload', 'no parts can be added after Complete')
})

t.test('a part sent again replaces the earlier copy', async t => {
  const { store } = tempStore(t)
  store.createBucket('mpu', {})
  const first = random(5 * MiB)
  const second = random(5 * MiB)
  const tail = Buffer.from('tail')
  const u = store.createMultipartUpload('mpu', 'k', {})
  await store.uploadPart(u.uploadId, 1, first)
  await store.uploadPart(u.uploadId, 2, tail)
  const again = await store.uploadPart(u.uploadId, 1, second)
  t.equal(again.etag, md5hex(second))
  const parts = store.listParts(u.uploadId)
  t.same(parts.map(p => [p.partNumber, p.size, p.etag]), [[1, second.length, md5hex(second)], [2, tail.length, md5hex(tail)]],
    'one part 1, the second copy; part 2 untouched')
  await failsWith(t, () => store.completeMultipartUpload(u.uploadId, [{ partNumber: 1, etag: md5hex(first) }, { partNumber: 2, etag: md5hex(tail) }]),
    'InvalidPart', 'the replaced copy’s ETag no longer matches')
  const v = await store.completeMultipartUpload(u.uploadId, [{ partNumber: 1, etag: md5hex(second) }, { partNumber: 2, etag: md5hex(tail) }])
  t.ok((await store.getObject('mpu', 'k', {})).body.equals(Buffer.concat([second, tail])), 'content from the second copy')
  t.equal(v.etag, multipartEtag([second, tail]))
  const freed = store.gc({})
  t.equal(freed.bytesFreed, first.length, 'gc frees the replaced copy')
  t.ok((await store.getObject('mpu', 'k', {})).body.equals(Buffer.concat([second, tail])), 'and the object still reads back')
})

t.test('parts left out of Complete are freed; parts may be streamed', async t => {
  const { store } = tempStore(t)
  store.createBucket('mpu', {})
  const a = random(5 * MiB)
  const b = random(5 * MiB)
  const c = random(300 * KiB)
  const u = store.createMultipartUpload('mpu', 'k', {})
  const ea = (await store.uploadPart(u.uploadId, 1, pieces(a, 100 * KiB + 1))).etag
  t.equal(ea, md5hex(a), 'a part from an async iterable')
  const eb = (await store.uploadPart(u.uploadId, 2, b)).etag
  const ec = (await store.uploadPart(u.uploadId, 3, c)).etag
  const before = store.stats().storedBytes
  await store.completeMultipartUpload(u.uploadId, [{ partNumber: 1, etag: ea }, { partNumber: 3, etag: ec }])
  t.equal(eb, md5hex(b))
  const report = store.gc({})
  t.equal(report.bytesFreed, b.length, 'gc frees the part that Complete left out')
  t.equal(store.stats().storedBytes, before - b.length)
  t.equal(store.stats().logicalBytes, a.length + c.length, 'logicalBytes: just the object now')
  t.ok((await store.getObject('mpu', 'k', {})).body.equals(Buffer.concat([a, c])), 'the object reads back')
  t.equal((await store.fsck({ deep: true })).clean, true)
})

t.test('CompleteMultipartUpload refuses bad part lists', async t => {
  const { store } = tempStore(t)
  store.createBucket('mpu', {})
  const big = random(5 * MiB)
  const small = random(100 * KiB)
  const u = store.createMultipartUpload('mpu', 'k', {})
  const e1 = (await store.uploadPart(u.uploadId, 1, big)).etag
  const e2 = (await store.uploadPart(u.uploadId, 2, big)).etag
  const e3 = (await store.uploadPart(u.uploadId, 3, small)).etag
  await failsWith(t, () => store.completeMultipartUpload(u.uploadId, [{ partNumber: 1, etag: e1 }, { partNumber: 2, etag: e2 }, { partNumber: 4, etag: e3 }]),
    'InvalidPart', 'a listed part that was never uploaded')
  await failsWith(t, () => store.completeMultipartUpload(u.uploadId, [{ partNumber: 1, etag: e1 }, { partNumber: 2, etag: md5hex(Buffer.from('other')) }]),
    'InvalidPart', 'a wrong ETag')
  await failsWith(t, () => store.completeMultipartUpload(u.uploadId, [{ partNumber: 2, etag: e2 }, { partNumber: 1, etag: e1 }]),
    'InvalidPartOrder', 'parts not in ascending order')
  await failsWith(t, () => store.completeMultipartUpload(u.uploadId, [{ partNumber: 1, etag: e1 }, { partNumber: 1, etag: e1 }, { partNumber: 3, etag: e3 }]),
    'InvalidPartOrder', 'a part listed twice is not ascending')
  t.equal(store.listMultipartUploads('mpu').length, 1, 'a refused Complete leaves the upload in progress')
  t.equal(store.listParts(u.uploadId).length, 3, 'with its parts')

  // Parts need not be contiguous: the listed ones make the object.
  const v = await store.completeMultipartUpload(u.uploadId, [{ partNumber: 1, etag: e1 }, { partNumber: 3, etag: e3 }])
  t.equal(v.size, big.length + small.length, 'parts 1 and 3 only')
  t.ok((await store.getObject('mpu', 'k', {})).body.equals(Buffer.concat([big, small])))
  t.equal(v.etag, multipartEtag([big, small]), 'ETag over the listed parts: -2')

  // S3 compares quoted or unquoted ETags alike.
  const q = store.createMultipartUpload('mpu', 'quoted', {})
  const qe = (await store.uploadPart(q.uploadId, 1, small)).etag
  const qv = await store.completeMultipartUpload(q.uploadId, [{ partNumber: 1, etag: `"${qe}"` }])
  t.equal(qv.size, small.length, 'a quoted ETag matches too')
})

t.test('EntityTooSmall: every part but the last must be at least 5 MiB', async t => {
  const { store } = tempStore(t)
  store.createBucket('mpu', {})
  const u = store.createMultipartUpload('mpu', 'k', {})
  const a = random(MiB)
  const b = random(MiB)
  const ea = (await store.uploadPart(u.uploadId, 1, a)).etag
  const eb = (await store.uploadPart(u.uploadId, 2, b)).etag
  await failsWith(t, () => store.completeMultipartUpload(u.uploadId, [{ partNumber: 1, etag: ea }, { partNumber: 2, etag: eb }]),
    'EntityTooSmall', 'a 1 MiB first part of two')
  const edge = random(5 * MiB - 1)
  const ee = (await store.uploadPart(u.uploadId, 1, edge)).etag
  await failsWith(t, () => store.completeMultipartUpload(u.uploadId, [{ partNumber: 1, etag: ee }, { partNumber: 2, etag: eb }]),
    'EntityTooSmall', 'one byte under 5 MiB')
  const exact = random(5 * MiB)
  const ex = (await store.uploadPart(u.uploadId, 1, exact)).etag
  const v = await store.completeMultipartUpload(u.uploadId, [{ partNumber: 1, etag: ex }, { partNumber: 2, etag: eb }])
  t.equal(v.size, 6 * MiB, 'exactly 5 MiB then a small last part is fine')

  const one = store.createMultipartUpload('mpu', 'single-small', {})
  const tiny = Buffer.from('tiny')
  const te = (await store.uploadPart(one.uploadId, 1, tiny)).etag
  const sv = await store.completeMultipartUpload(one.uploadId, [{ partNumber: 1, etag: te }])
  t.equal(sv.etag, multipartEtag([tiny]), 'a single small part is the last part: allowed; ETag ends -1')
  t.equal((await store.getObject('mpu', 'single-small', {})).body.toString(), 'tiny')

  const empty = store.createMultipartUpload('mpu', 'empty-part', {})
  const ze = (await store.uploadPart(empty.uploadId, 1, Buffer.alloc(0))).etag
  t.equal(ze, md5hex(Buffer.alloc(0)), 'a zero-byte part')
  const zv = await store.completeMultipartUpload(empty.uploadId, [{ partNumber: 1, etag: ze }])
  t.equal(zv.size, 0, 'makes a zero-byte object')
})

t.test('part numbers 1..10000; unknown uploads', async t => {
  const { store } = tempStore(t)
  store.createBucket('mpu', {})
  const u = store.createMultipartUpload('mpu', 'k', {})
  for (const n of [0, 10001, -1, 1.5, Number.NaN]) {
    await failsWith(t, () => store.uploadPart(u.uploadId, n, Buffer.from('x')), 'InvalidArgument', `part number ${n}`)
  }
  t.same(store.listParts(u.uploadId), [], 'no part stored by refused uploads')
  const last = await store.uploadPart(u.uploadId, 10000, Buffer.from('last'))
  t.equal(last.partNumber, 10000, 'part 10000 is allowed')
  await store.uploadPart(u.uploadId, 1, Buffer.from('first'))
  t.same(store.listParts(u.uploadId).map(p => p.partNumber), [1, 10000], 'listParts ascending by part number')
  await failsWith(t, () => store.uploadPart('no-such-upload', 1, Buffer.from('x')), 'NoSuchUpload', 'uploadPart to an unknown id')
  await failsWith(t, () => store.listParts('no-such-upload'), 'NoSuchUpload', 'listParts of an unknown id')
  await failsWith(t, () => store.completeMultipartUpload('no-such-upload', [{ partNumber: 1, etag: 'x' }]), 'NoSuchUpload', 'complete of an unknown id')
  await failsWith(t, () => store.abortMultipartUpload('no-such-upload'), 'NoSuchUpload', 'abort of an unknown id')
  await failsWith(t, () => store.createMultipartUpload('nope', 'k', {}), 'NoSuchBucket', 'create in a missing bucket')
})

t.test('listMultipartUploads and listParts show uploads in progress', async t => {
  const { store } = tempStore(t)
  store.createBucket('mpu1', {})
  store.createBucket('mpu2', {})
  const a = store.createMultipartUpload('mpu1', 'b-key', {})
  const b = store.createMultipartUpload('mpu1', 'a-key', {})
  const c = store.createMultipartUpload('mpu1', 'a-key', {})
  const d = store.createMultipartUpload('mpu2', 'x', {})
  t.equal(new Set([a, b, c, d].map(u => u.uploadId)).size, 4, 'distinct upload ids, even for the same key')
  const m1 = store.listMultipartUploads('mpu1')
  t.same(m1.map(u => u.key), ['a-key', 'a-key', 'b-key'], 'sorted by key')
  t.same(new Set(m1.map(u => u.uploadId)), new Set([a, b, c].map(u => u.uploadId)))
  t.ok(m1.every(u => u.bucket === 'mpu1' && u.kind === 'client'))
  t.same(store.listMultipartUploads().map(u => u.uploadId).sort(), [a, b, c, d].map(u => u.uploadId).sort(), 'no bucket: every upload')
  t.same(store.listMultipartUploads('mpu2').map(u => u.uploadId), [d.uploadId])
  t.equal(store.stats().uploads, 4)

  const p = random(5 * MiB)
  await store.uploadPart(a.uploadId, 2, Buffer.from('two'))
  await store.uploadPart(a.uploadId, 1, p)
  const parts = store.listParts(a.uploadId)
  t.same(parts.map(x => [x.partNumber, x.size, x.etag]), [[1, p.length, md5hex(p)], [2, 3, md5hex(Buffer.from('two'))]])
  t.ok(parts.every(x => typeof x.lastModifiedMs === 'number' && x.lastModifiedMs > 0), 'parts carry their time')
  t.same(store.listParts(b.uploadId), [], 'an upload without parts')
  t.ok(store.stats().logicalBytes >= p.length + 3, 'upload parts count in logicalBytes')

  t.same(store.listObjects('mpu1', {}).contents, [], 'in-progress uploads are not objects')
  await failsWith(t, () => store.deleteBucket('mpu2'), 'BucketNotEmpty', 'an upload in progress keeps the bucket (per the store contract)')
  store.abortMultipartUpload(d.uploadId)
  store.deleteBucket('mpu2')
  t.same(store.listBuckets().map(x => x.name), ['mpu1'])
})

t.test('Complete in a versioned bucket makes one new version', async t => {
  const { store } = tempStore(t)
  store.createBucket('vers', {})
  store.putBucketVersioning('vers', 'Enabled')
  const old = await store.putObject('vers', 'k', Buffer.from('old'))
  const u = store.createMultipartUpload('vers', 'k', {})
  const e = (await store.uploadPart(u.uploadId, 1, Buffer.from('new'))).etag
  const v = await store.completeMultipartUpload(u.uploadId, [{ partNumber: 1, etag: e }])
  t.not(v.versionId, 'null', 'a fresh version id')
  t.not(v.versionId, old.versionId)
  t.same(store.listObjectVersions('vers', {}).versions.map(x => [x.versionId, x.isLatest]), [[v.versionId, true], [old.versionId, false]],
    'exactly one new version on top of the old one')
  t.equal((await store.getObject('vers', 'k', { versionId: old.versionId })).body.toString(), 'old')
})

t.test('abort frees the parts and the upload is gone', async t => {
  const ts = tempStore(t)
  const store = ts.store
  store.createBucket('mpu', {})
  await store.putObject('mpu', 'keep', random(2 * MiB))
  const base = store.stats()
  const baseFiles = chunkFiles(ts.dir).length
  const u = store.createMultipartUpload('mpu', 'k', {})
  await store.uploadPart(u.uploadId, 1, random(5 * MiB))
  await store.uploadPart(u.uploadId, 2, random(5 * MiB))
  const during = store.stats()
  t.ok(during.storedBytes >= base.storedBytes + 10 * MiB, 'parts are stored while the upload is in progress')
  t.ok(chunkFiles(ts.dir).length > baseFiles, 'as chunk files')
  const gc0 = store.gc({})
  t.equal(gc0.chunksRemoved, 0, 'gc keeps the chunks of an upload in progress')
  t.equal(store.listParts(u.uploadId).length, 2)

  store.abortMultipartUpload(u.uploadId)
  t.same(store.listMultipartUploads('mpu'), [], 'not listed after abort')
  await failsWith(t, () => store.listParts(u.uploadId), 'NoSuchUpload', 'listParts after abort')
  await failsWith(t, () => store.uploadPart(u.uploadId, 3, Buffer.from('x')), 'NoSuchUpload', 'uploadPart after abort')
  await failsWith(t, () => store.completeMultipartUpload(u.uploadId, [{ partNumber: 1 }]), 'NoSuchUpload', 'complete after abort')
  await failsWith(t, () => store.abortMultipartUpload(u.uploadId), 'NoSuchUpload', 'abort twice')
  await failsWith(t, () => store.headObject('mpu', 'k', {}), 'NoSuchKey', 'no object was made')

  const report = store.gc({})
  t.ok(report.chunksRemoved > 0, 'gc removes the chunks of the aborted parts')
  t.ok(report.bytesFreed >= 10 * MiB, 'freeing at least 10 MiB')
  const after = store.stats()
  t.equal(after.storedBytes, base.storedBytes, 'storedBytes back to where it was')
  t.equal(after.uploads, 0)
  t.equal(after.logicalBytes, base.logicalBytes)
  t.equal(chunkFiles(ts.dir).length, baseFiles, 'chunk files back to where they were')
  t.equal(store.headObject('mpu', 'keep', {}).size, 2 * MiB, 'other objects untouched')
  t.equal((await store.fsck({ deep: true })).clean, true, 'fsck clean afterwards')
})

t.test('upload IDs never begin with a dash, which a command line takes for an option', async t => {
  // base64url gives '-' first once in 64 IDs: 10,000 would hold about 156 of them.
  const ids = Array.from({ length: 10_000 }, () => newUploadId())
  t.equal(ids.filter(id => id.startsWith('-')).length, 0)
  t.ok(ids.every(id => /^[A-Za-z0-9_][A-Za-z0-9_-]{23}$/.test(id)), 'each is 24 base64url characters')
  t.equal(new Set(ids).size, ids.length, 'all different')
})
