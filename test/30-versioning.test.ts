// S3 versioning: what put, get, delete, delete-by-version and ListObjectVersions
// do in each of the three bucket states, the allowed transitions, and restore.
// Reference: Amazon S3 User Guide — "Retaining multiple versions of objects with
// S3 Versioning", "Working with delete markers", "Deleting object versions from a
// versioning-enabled bucket", "Adding/Deleting objects to/from versioning-suspended
// buckets"; API Reference — PutBucketVersioning, GetObject, ListObjectVersions.
import t from 'tap'
import { tempStore, failsWith, md5hex, random, MiB } from './helpers/store'
import { Store } from '../src/store'

const buf = (s: string): Buffer => Buffer.from(s)
const body = async (store: Store, bucket: string, key: string, versionId?: string): Promise<string> =>
  (await store.getObject(bucket, key, versionId === undefined ? {} : { versionId })).body.toString()
const versionsOf = (store: Store, bucket: string, key: string): Array<[string, boolean, boolean]> =>
  store.listObjectVersions(bucket, { prefix: key }).versions
    .filter(v => v.key === key)
    .map(v => [v.versionId, v.isDeleteMarker, v.isLatest])

t.test('transitions: Unversioned → Enabled ⇄ Suspended, never back', async t => {
  const ts = tempStore(t)
  const store = ts.store
  store.createBucket('vers', {})
  t.equal(store.getBucketVersioning('vers'), 'Unversioned', 'off by default')
  await failsWith(t, () => store.putBucketVersioning('vers', 'Unversioned' as 'Enabled'), 'IllegalVersioningConfiguration', 'cannot set Unversioned')
  store.putBucketVersioning('vers', 'Enabled')
  t.equal(store.getBucketVersioning('vers'), 'Enabled')
  t.equal(store.headBucket('vers').versioning, 'Enabled', 'headBucket agrees')
  store.putBucketVersioning('vers', 'Suspended')
  t.equal(store.getBucketVersioning('vers'), 'Suspended')
  store.putBucketVersioning('vers', 'Enabled')
  t.equal(store.getBucketVersioning('vers'), 'Enabled', 'Suspended → Enabled')
  store.putBucketVersioning('vers', 'Enabled')
  t.equal(store.getBucketVersioning('vers'), 'Enabled', 'setting the same state again is fine')
  await failsWith(t, () => store.putBucketVersioning('vers', 'Unversioned' as 'Enabled'), 'IllegalVersioningConfiguration', 'never back to Unversioned')
  await failsWith(t, () => store.putBucketVersioning('vers', 'enabled' as 'Enabled'), 'IllegalVersioningConfiguration', 'states are case-sensitive')
  await failsWith(t, () => store.putBucketVersioning('vers', '' as 'Enabled'), 'IllegalVersioningConfiguration', 'empty state')
  t.equal(store.getBucketVersioning('vers'), 'Enabled', 'a refused change changes nothing')
  await failsWith(t, () => store.putBucketVersioning('nope', 'Enabled'), 'NoSuchBucket')
  await failsWith(t, () => store.getBucketVersioning('nope'), 'NoSuchBucket')
  store.putBucketVersioning('vers', 'Suspended')
  t.equal(ts.reopen().getBucketVersioning('vers'), 'Suspended', 'persisted across reopen')
})

t.test('Unversioned: one null version per key, overwrite replaces, delete removes', async t => {
  const { store } = tempStore(t)
  store.createBucket('unv', {})
  const a = await store.putObject('unv', 'k', buf('one'))
  const b = await store.putObject('unv', 'k', buf('two'))
  t.equal(a.versionId, 'null', 'version id is the string null')
  t.equal(b.versionId, 'null')
  t.equal(await body(store, 'unv', 'k'), 'two', 'overwrite replaces')
  t.equal(await body(store, 'unv', 'k', 'null'), 'two', 'get by versionId null')
  t.same(versionsOf(store, 'unv', 'k'), [['null', false, true]], 'exactly one version')
  t.equal(store.stats().versions, 1)
  const d = store.deleteObject('unv', 'k', {})
  t.equal(d.deleteMarker, false, 'no delete marker')
  t.same(versionsOf(store, 'unv', 'k'), [], 'nothing left')
  await failsWith(t, () => store.getObject('unv', 'k', {}), 'NoSuchKey')
  await store.putObject('unv', 'k2', buf('x'))
  const d2 = store.deleteObject('unv', 'k2', { versionId: 'null' })
  t.equal(d2.versionId, 'null', 'delete with versionId null removes the null version')
  t.same(store.listObjectVersions('unv', {}).versions, [], 'nothing left')
})

t.test('Enabled: every put a new version, ids unique and time-ordered', async t => {
  const { store } = tempStore(t)
  store.createBucket('ena', {})
  store.putBucketVersioning('ena', 'Enabled')
  const ids: string[] = []
  const seqs: number[] = []
  for (let i = 0; i < 30; i++) {
    const v = await store.putObject('ena', 'k', buf(`v${i}`))
    ids.push(v.versionId)
    seqs.push(v.seq)
    t.equal(v.isLatest, true)
  }
  t.equal(new Set(ids).size, 30, 'every put made a distinct version id')
  t.notOk(ids.includes('null'), 'no null version id while Enabled')
  t.ok(ids.every(id => typeof id === 'string' && id.length > 0), 'ids are non-empty strings')
  t.same([...ids].sort(), ids, 'version ids sort in creation order (time-ordered), even within one millisecond')
  t.same([...seqs].sort((x, y) => x - y), seqs, 'seq grows')
  const other = await store.putObject('ena', 'other', buf('o'))
  t.notOk(ids.includes(other.versionId), 'unique across keys too')
  t.equal(await body(store, 'ena', 'k'), 'v29', 'get returns the latest')
  t.equal(await body(store, 'ena', 'k', ids[0]), 'v0', 'get by versionId returns an old version')
  t.equal(await body(store, 'ena', 'k', ids[17]), 'v17')
  t.equal(store.headObject('ena', 'k', { versionId: ids[3] }).etag, md5hex(buf('v3')), 'head by versionId')
  const listed = versionsOf(store, 'ena', 'k')
  t.equal(listed.length, 30, 'every version listed')
  t.same(listed.map(([id]) => id), [...ids].reverse(), 'newest first')
  t.same(listed.map(([, , latest]) => latest), listed.map((_, i) => i === 0), 'only the newest isLatest')
  t.equal(store.listObjects('ena', {}).contents.length, 2, 'listObjects shows each key once')
  const st = store.stats()
  t.equal(st.versions, 31)
  t.equal(st.objects, 2)
})

t.test('Enabled: delete inserts a marker; delete by versionId removes permanently', async t => {
  const { store } = tempStore(t)
  store.createBucket('ena', {})
  store.putBucketVersioning('ena', 'Enabled')
  const v1 = await store.putObject('ena', 'dir/k', buf('one'))
  const v2 = await store.putObject('ena', 'dir/k', buf('two'))
  const v3 = await store.putObject('ena', 'dir/k', buf('three'))

  const del = store.deleteObject('ena', 'dir/k', {})
  t.equal(del.deleteMarker, true, 'a simple delete inserts a delete marker')
  t.not(del.versionId, 'null', 'the marker has a fresh version id')
  t.notOk([v1, v2, v3].map(v => v.versionId).includes(del.versionId))
  await failsWith(t, () => store.getObject('ena', 'dir/k', {}), 'NoSuchKey', 'get without versionId → NoSuchKey')
  await failsWith(t, () => store.headObject('ena', 'dir/k', {}), 'NoSuchKey', 'head without versionId → NoSuchKey')
  t.same(store.listObjects('ena', {}).contents, [], 'listObjects hides the key')
  t.same(store.listObjects('ena', { delimiter: '/' }).commonPrefixes, [], 'and the prefix only it made')
  t.same(versionsOf(store, 'ena', 'dir/k'), [
    [del.versionId, true, true],
    [v3.versionId, false, false],
    [v2.versionId, false, false],
    [v1.versionId, false, false]
  ], 'listObjectVersions shows the marker as latest and keeps every version')
  const marker = store.listObjectVersions('ena', {}).versions[0]
  t.equal(marker.size, 0, 'a marker has no data')
  await failsWith(t, () => store.getObject('ena', 'dir/k', { versionId: del.versionId }), 'MethodNotAllowed', 'get of a marker by versionId → MethodNotAllowed')
  await failsWith(t, () => store.headObject('ena', 'dir/k', { versionId: del.versionId }), 'MethodNotAllowed', 'head of a marker by versionId → MethodNotAllowed')
  await failsWith(t, () => store.readObject('ena', 'dir/k', { versionId: del.versionId }), 'MethodNotAllowed', 'readObject of a marker by versionId → MethodNotAllowed')
  await failsWith(t, () => store.readObject('ena', 'dir/k', {}), 'NoSuchKey', 'readObject without versionId → NoSuchKey')
  await failsWith(t, () => store.getObject('ena', 'dir/k', { versionId: 'null' }), 'NoSuchVersion', 'versionId null where there is no null version')
  t.equal(await body(store, 'ena', 'dir/k', v2.versionId), 'two', 'old versions still readable by id')
  t.match(store.stats(), { objects: 0, versions: 3, deleteMarkers: 1 })
  await failsWith(t, () => store.deleteBucket('ena'), 'BucketNotEmpty', 'versions keep the bucket non-empty')

  const again = store.deleteObject('ena', 'dir/k', {})
  t.equal(again.deleteMarker, true, 'deleting a deleted key inserts another marker (S3 does)')
  const undo2 = store.deleteObject('ena', 'dir/k', { versionId: again.versionId })
  t.match(undo2, { versionId: again.versionId, deleteMarker: true }, 'deleting a marker by id reports the marker')
  const undo = store.deleteObject('ena', 'dir/k', { versionId: del.versionId })
  t.equal(undo.versionId, del.versionId)
  t.equal(await body(store, 'ena', 'dir/k'), 'three', 'removing the marker brings the object back')
  t.same(store.listObjects('ena', {}).contents.map(o => o.key), ['dir/k'], 'listed again')

  const gone = store.deleteObject('ena', 'dir/k', { versionId: v3.versionId })
  t.match(gone, { versionId: v3.versionId, deleteMarker: false }, 'delete by versionId of an object version')
  t.equal(await body(store, 'ena', 'dir/k'), 'two', 'the previous version becomes the latest')
  t.same(versionsOf(store, 'ena', 'dir/k'), [[v2.versionId, false, true], [v1.versionId, false, false]], 'removed permanently, no marker added')
  await failsWith(t, () => store.getObject('ena', 'dir/k', { versionId: v3.versionId }), 'NoSuchVersion', 'a removed version id → NoSuchVersion')
  store.deleteObject('ena', 'dir/k', { versionId: v1.versionId })
  t.equal(await body(store, 'ena', 'dir/k'), 'two', 'removing an older version leaves the latest alone')

  const ghost = store.deleteObject('ena', 'never-existed', {})
  t.equal(ghost.deleteMarker, true, 'deleting a key that never existed still inserts a marker (S3 does)')
  t.same(versionsOf(store, 'ena', 'never-existed'), [[ghost.versionId, true, true]])
  t.same(store.listObjects('ena', {}).contents.map(o => o.key), ['dir/k'], 'a marker-only key is not listed')

  store.deleteObject('ena', 'dir/k', { versionId: v2.versionId })
  store.deleteObject('ena', 'never-existed', { versionId: ghost.versionId })
  t.same(store.listObjectVersions('ena', {}).versions, [], 'every version and marker removed')
  store.deleteBucket('ena')
  t.same(store.listBuckets(), [], 'now the bucket can be deleted')
})

t.test('a null version from before versioning is kept when it is enabled', async t => {
  const { store } = tempStore(t)
  store.createBucket('ena', {})
  await store.putObject('ena', 'k', buf('original'))
  store.putBucketVersioning('ena', 'Enabled')
  t.equal(await body(store, 'ena', 'k'), 'original', 'enabling changes no existing object')
  const v1 = await store.putObject('ena', 'k', buf('new'))
  t.not(v1.versionId, 'null')
  t.same(versionsOf(store, 'ena', 'k'), [[v1.versionId, false, true], ['null', false, false]], 'the null version stays as an older version')
  t.equal(await body(store, 'ena', 'k', 'null'), 'original')
  t.match(store.deleteObject('ena', 'k', { versionId: 'null' }), { versionId: 'null', deleteMarker: false }, 'delete the null version by id')
  t.same(versionsOf(store, 'ena', 'k'), [[v1.versionId, false, true]], 'only it is gone; the latest is untouched')
  await failsWith(t, () => store.getObject('ena', 'k', { versionId: 'null' }), 'NoSuchVersion', 'no null version any more')
})

t.test('Suspended: puts and deletes replace the null version, other versions stay', async t => {
  const { store } = tempStore(t)
  store.createBucket('susp', {})
  store.putBucketVersioning('susp', 'Enabled')
  const a = await store.putObject('susp', 'k', buf('A'))
  store.putBucketVersioning('susp', 'Suspended')
  t.equal(await body(store, 'susp', 'k'), 'A', 'suspending changes no existing object')

  const n1 = await store.putObject('susp', 'k', buf('N1'))
  t.equal(n1.versionId, 'null', 'a put while Suspended makes the null version')
  t.same(versionsOf(store, 'susp', 'k'), [['null', false, true], [a.versionId, false, false]], 'the earlier version is kept')
  const n2 = await store.putObject('susp', 'k', buf('N2'))
  t.equal(n2.versionId, 'null')
  t.same(versionsOf(store, 'susp', 'k'), [['null', false, true], [a.versionId, false, false]], 'a second put replaces the null version')
  t.equal(await body(store, 'susp', 'k'), 'N2')
  t.equal(await body(store, 'susp', 'k', 'null'), 'N2')
  t.equal(await body(store, 'susp', 'k', a.versionId), 'A')

  const d = store.deleteObject('susp', 'k', {})
  t.match(d, { versionId: 'null', deleteMarker: true }, 'a delete while Suspended inserts a null delete marker')
  t.same(versionsOf(store, 'susp', 'k'), [['null', true, true], [a.versionId, false, false]], 'the null version was replaced by the marker')
  await failsWith(t, () => store.getObject('susp', 'k', {}), 'NoSuchKey')
  await failsWith(t, () => store.getObject('susp', 'k', { versionId: 'null' }), 'MethodNotAllowed', 'the null version is now a marker')
  store.deleteObject('susp', 'k', {})
  t.same(versionsOf(store, 'susp', 'k'), [['null', true, true], [a.versionId, false, false]], 'deleting again still leaves one null marker')
  t.match(store.deleteObject('susp', 'k', { versionId: 'null' }), { versionId: 'null', deleteMarker: true }, 'delete the null marker by id')
  t.equal(await body(store, 'susp', 'k'), 'A', 'the older version is latest again')
  t.same(versionsOf(store, 'susp', 'k'), [[a.versionId, false, true]])

  // A key with only non-null versions: the delete removes nothing, adds a null marker.
  store.putBucketVersioning('susp', 'Enabled')
  const b = await store.putObject('susp', 'only-versioned', buf('B'))
  store.putBucketVersioning('susp', 'Suspended')
  store.deleteObject('susp', 'only-versioned', {})
  t.same(versionsOf(store, 'susp', 'only-versioned'), [['null', true, true], [b.versionId, false, false]], 'marker added, version kept')

  // Re-enabling: new puts get fresh ids and the null version stays.
  await store.putObject('susp', 'k', buf('N3'))
  store.putBucketVersioning('susp', 'Enabled')
  const c = await store.putObject('susp', 'k', buf('C'))
  t.not(c.versionId, 'null', 'Enabled again: fresh version id')
  t.same(versionsOf(store, 'susp', 'k'), [[c.versionId, false, true], ['null', false, false], [a.versionId, false, false]])
  t.equal(await body(store, 'susp', 'k', 'null'), 'N3')
})

t.test('Suspended: a put replaces an older null version that is not the latest', async t => {
  const { store } = tempStore(t)
  store.createBucket('susp', {})
  await store.putObject('susp', 'k', buf('N0')) // null version, from before versioning
  store.putBucketVersioning('susp', 'Enabled')
  const v1 = await store.putObject('susp', 'k', buf('V1'))
  store.putBucketVersioning('susp', 'Suspended')
  await store.putObject('susp', 'k', buf('N2'))
  t.same(versionsOf(store, 'susp', 'k'), [['null', false, true], [v1.versionId, false, false]], 'one null version, now the latest; V1 kept')
  t.equal(await body(store, 'susp', 'k', 'null'), 'N2', 'the old null content is gone')
  store.putBucketVersioning('susp', 'Enabled')
  const v3 = await store.putObject('susp', 'k', buf('V3'))
  store.putBucketVersioning('susp', 'Suspended')
  store.deleteObject('susp', 'k', {})
  t.same(versionsOf(store, 'susp', 'k'), [['null', true, true], [v3.versionId, false, false], [v1.versionId, false, false]],
    'a Suspended delete replaces the older null version with a null marker on top')
})

t.test('listObjectVersions: prefix, delimiter, paging with key and version-id markers', async t => {
  const { store } = tempStore(t)
  store.createBucket('ena', {})
  store.putBucketVersioning('ena', 'Enabled')
  const expected: Array<[string, string]> = []
  for (const key of ['a', 'b/x', 'b/y', 'c']) {
    const ids: string[] = []
    for (let i = 0; i < 3; i++) ids.push((await store.putObject('ena', key, buf(`${key}${i}`))).versionId)
    if (key === 'c') ids.push(store.deleteObject('ena', key, {}).versionId)
    for (const id of ids.reverse()) expected.push([key, id])
  }
  const all = store.listObjectVersions('ena', {})
  t.same(all.versions.map(v => [v.key, v.versionId]), expected, 'keys ascending, versions newest first, markers included')
  t.equal(all.isTruncated, false)

  t.same(store.listObjectVersions('ena', { prefix: 'b/' }).versions.map(v => v.key), ['b/x', 'b/x', 'b/x', 'b/y', 'b/y', 'b/y'], 'prefix')
  const delim = store.listObjectVersions('ena', { delimiter: '/' })
  t.same(delim.commonPrefixes, ['b/'], 'delimiter rolls up b/')
  t.same([...new Set(delim.versions.map(v => v.key))], ['a', 'c'], 'and lists the top-level keys')

  const seen: Array<[string, string]> = []
  let keyMarker: string | undefined
  let versionIdMarker: string | undefined
  for (let page = 0; page < 20; page++) {
    const r = store.listObjectVersions('ena', { maxKeys: 4, keyMarker, versionIdMarker })
    t.ok(r.versions.length <= 4, `page ${page + 1}: at most maxKeys`)
    seen.push(...r.versions.map(v => [v.key, v.versionId] as [string, string]))
    if (!r.isTruncated) break
    t.ok(r.nextKeyMarker, 'a truncated page has nextKeyMarker')
    keyMarker = r.nextKeyMarker
    versionIdMarker = r.nextVersionIdMarker
  }
  t.same(seen, expected, 'paging with maxKeys 4 lists every version exactly once, in order')
  t.same(store.listObjectVersions('ena', { keyMarker: 'b/x' }).versions.map(v => v.key)[0], 'b/y', 'keyMarker alone starts after that key')
})

t.test('copyObject and restoreObject from an old version share chunks', async t => {
  const { store } = tempStore(t)
  store.createBucket('ena', {})
  store.putBucketVersioning('ena', 'Enabled')
  const x = random(2 * MiB)
  const y = random(2 * MiB)
  const v1 = await store.putObject('ena', 'doc.bin', x)
  const v2 = await store.putObject('ena', 'doc.bin', y)
  const stored = store.stats().storedBytes

  const r = await store.restoreObject('ena', 'doc.bin', v1.versionId)
  t.notOk([v1.versionId, v2.versionId, 'null'].includes(r.versionId), 'restore makes a new version id')
  t.equal(r.isLatest, true)
  t.equal(r.etag, md5hex(x), 'with the old ETag')
  t.ok((await store.getObject('ena', 'doc.bin', {})).body.equals(x), 'the old bytes are the latest')
  t.same(versionsOf(store, 'ena', 'doc.bin').map(([id]) => id), [r.versionId, v2.versionId, v1.versionId], 'history kept, restore on top')
  t.equal(store.stats().storedBytes, stored, 'no bytes stored for the restore')

  const c = await store.copyObject('ena', 'doc.bin', 'ena', 'copy-of-v2.bin', { versionId: v2.versionId })
  t.ok((await store.getObject('ena', 'copy-of-v2.bin', {})).body.equals(y), 'copy from a versionId copies that version')
  t.not(c.versionId, v2.versionId, 'the copy is a new version')
  t.equal(store.stats().storedBytes, stored, 'no bytes stored for the copy')

  const m = store.deleteObject('ena', 'doc.bin', {})
  await store.restoreObject('ena', 'doc.bin', v2.versionId)
  t.ok((await store.getObject('ena', 'doc.bin', {})).body.equals(y), 'restoring brings a deleted key back')
  t.equal(versionsOf(store, 'ena', 'doc.bin')[1][0], m.versionId, 'and keeps the marker in history')
  const gone = await store.putObject('ena', 'doc.bin', buf('short-lived'))
  store.deleteObject('ena', 'doc.bin', { versionId: gone.versionId })
  await failsWith(t, () => store.restoreObject('ena', 'doc.bin', gone.versionId), 'NoSuchVersion', 'restore of a permanently deleted version')
})

t.test('concurrent writers: Unversioned keeps one null version, Enabled keeps them all', async t => {
  const { store } = tempStore(t)
  store.createBucket('unv', {})
  store.createBucket('ena', {})
  store.putBucketVersioning('ena', 'Enabled')
  const payloads = Array.from({ length: 8 }, (_, i) => Buffer.alloc(200 * 1024 + i, 65 + i))
  // Bodies that yield across event-loop turns, so the puts really interleave.
  async function * slow (data: Buffer): AsyncGenerator<Buffer> {
    for (let off = 0; off < data.length; off += 64 * 1024) {
      await new Promise(resolve => setImmediate(resolve))
      yield data.subarray(off, off + 64 * 1024)
    }
  }
  await Promise.all(payloads.map(p => store.putObject('unv', 'k', slow(p))))
  t.same(versionsOf(store, 'unv', 'k').map(([id, m, l]) => [id, m, l]), [['null', false, true]], 'exactly one null version after concurrent puts')
  const got = (await store.getObject('unv', 'k', {})).body
  t.ok(payloads.some(p => p.equals(got)), 'holding one whole payload')
  const vs = await Promise.all(payloads.map(p => store.putObject('ena', 'k', slow(p))))
  t.equal(new Set(vs.map(v => v.versionId)).size, payloads.length, 'Enabled: one distinct version per concurrent put')
  t.equal(versionsOf(store, 'ena', 'k').length, payloads.length, 'all listed')
  t.equal(versionsOf(store, 'ena', 'k').filter(([, , latest]) => latest).length, 1, 'exactly one isLatest')
  for (const [i, v] of vs.entries()) {
    t.ok((await store.getObject('ena', 'k', { versionId: v.versionId })).body.equals(payloads[i]), `version of put ${i} holds its data`)
  }
})

t.test('listObjectVersions pages through a null version', async t => {
  const { store } = tempStore(t)
  store.createBucket('ena', {})
  await store.putObject('ena', 'k', buf('n')) // null, oldest
  store.putBucketVersioning('ena', 'Enabled')
  const v1 = await store.putObject('ena', 'k', buf('1'))
  store.putBucketVersioning('ena', 'Suspended')
  await store.putObject('ena', 'j', buf('j')) // null version of j
  store.putBucketVersioning('ena', 'Enabled')
  const v2 = await store.putObject('ena', 'k', buf('2'))
  const expected = [['j', 'null'], ['k', v2.versionId], ['k', v1.versionId], ['k', 'null']]
  t.same(store.listObjectVersions('ena', {}).versions.map(v => [v.key, v.versionId]), expected)
  for (const maxKeys of [1, 2, 3]) {
    const seen: string[][] = []
    let keyMarker: string | undefined
    let versionIdMarker: string | undefined
    for (let page = 0; page < 10; page++) {
      const r = store.listObjectVersions('ena', { maxKeys, keyMarker, versionIdMarker })
      seen.push(...r.versions.map(v => [v.key, v.versionId]))
      if (!r.isTruncated) break
      keyMarker = r.nextKeyMarker
      versionIdMarker = r.nextVersionIdMarker
    }
    t.same(seen, expected, `maxKeys ${maxKeys}: every version once, the null ones included`)
  }
})

t.test('listObjectVersions: maxKeys counts common prefixes; key markers in UTF-8 order', async t => {
  const { store } = tempStore(t)
  store.createBucket('ena', {})
  store.putBucketVersioning('ena', 'Enabled')
  await store.putObject('ena', 'a/1', buf('x'))
  for (let i = 0; i < 3; i++) await store.putObject('ena', 'b', buf(`b${i}`))
  // S3: "All of the keys rolled up into a common prefix count as a single return
  // when calculating the number of returns" — a page never holds more than maxKeys.
  const seen: string[] = []
  let keyMarker: string | undefined
  let versionIdMarker: string | undefined
  for (let page = 0; page < 10; page++) {
    const r = store.listObjectVersions('ena', { delimiter: '/', maxKeys: 2, keyMarker, versionIdMarker })
    t.ok(r.versions.length + r.commonPrefixes.length <= 2, `page ${page + 1}: versions + common prefixes ≤ maxKeys (${r.versions.length} + ${r.commonPrefixes.length})`)
    seen.push(...r.commonPrefixes, ...r.versions.map(v => `${v.key}@${v.versionId}`))
    if (!r.isTruncated) break
    keyMarker = r.nextKeyMarker
    versionIdMarker = r.nextVersionIdMarker
  }
  t.equal(seen.length, 4, 'one prefix and three versions in all')
  t.equal(new Set(seen).size, 4, 'each once')

  // Keys whose UTF-16 and UTF-8 orders differ.
  store.createBucket('utf', {})
  store.putBucketVersioning('utf', 'Enabled')
  await store.putObject('utf', '\uFB01/x', buf('x')) // rolls up to '\uFB01/'
  for (let i = 0; i < 3; i++) await store.putObject('utf', '😀', buf(`e${i}`))
  t.same(store.listObjectVersions('utf', { prefix: '\uFB01', keyMarker: '😀' }).versions.map(v => v.key), [],
    'keyMarker after every key of the prefix (UTF-8 order) lists nothing')
  const keys: string[] = []
  const prefixes: string[] = []
  keyMarker = undefined
  versionIdMarker = undefined
  for (let page = 0; page < 10; page++) {
    const r = store.listObjectVersions('utf', { delimiter: '/', maxKeys: 2, keyMarker, versionIdMarker })
    keys.push(...r.versions.map(v => v.key))
    prefixes.push(...r.commonPrefixes)
    if (!r.isTruncated) break
    keyMarker = r.nextKeyMarker
    versionIdMarker = r.nextVersionIdMarker
  }
  t.same(prefixes, ['\uFB01/'], 'paging with a delimiter reports the common prefix (none lost)')
  t.same(keys, ['😀', '😀', '😀'], 'and every version')
})

t.test('a write acts on the bucket\'s versioning as another process just set it', async t => {
  // The writer keeps bucket rows cached; inside a write it uses them only while no other
  // connection has committed since they were read.
  const ts = tempStore(t)
  const writer = ts.store
  writer.createBucket('other-process', {})
  await writer.putObject('other-process', 'k', buf('one'))
  t.equal(writer.headBucket('other-process').versioning, 'Unversioned', 'the writer has read the row')
  const other = Store.open(ts.dir)
  t.teardown(() => { other.close() })
  other.putBucketVersioning('other-process', 'Enabled')
  const v = await writer.putObject('other-process', 'k', buf('two'))
  t.not(v.versionId, 'null', 'the next write (at once, within the cache\'s check interval) makes a versioned version')
  t.same(versionsOf(writer, 'other-process', 'k').map(([id, , latest]) => [id === 'null', latest]), [[false, true], [true, false]],
    'the null version is kept beneath it')
  other.putBucketVersioning('other-process', 'Suspended')
  const w = await writer.putObject('other-process', 'k', buf('three'))
  t.equal(w.versionId, 'null', 'and after Suspended, a null version again')
  // The writer's own change shows to itself inside its next write as well.
  writer.putBucketVersioning('other-process', 'Enabled')
  t.not((await writer.putObject('other-process', 'k', buf('four'))).versionId, 'null', 'its own change holds at once')
})
