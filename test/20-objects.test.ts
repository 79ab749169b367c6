// Objects in an unversioned bucket: put/get/head, ranges, content types,
// headers and user metadata, ETags, copies, ListObjectsV2 and deletes.
// Reference: Amazon S3 API Reference — PutObject, GetObject (Range),
// HeadObject, CopyObject, ListObjectsV2, DeleteObject, DeleteBucket.
import t from 'tap'
import { Readable } from 'node:stream'
import { tempStore, failsWith, md5hex, random, collect, pieces, utf8Sort, MiB, KiB } from './helpers/store'

const EMPTY_MD5 = 'd41d8cd98f00b204e9800998ecf8427e'

t.test('put, get, head', async t => {
  const { store } = tempStore(t)
  store.createBucket('bkt1', {})
  const data = Buffer.from('hello, bucketfs\n')
  const before = Date.now()
  const v = await store.putObject('bkt1', 'greeting.txt', data)
  t.match(v, {
    bucket: 'bkt1',
    key: 'greeting.txt',
    versionId: 'null',
    isDeleteMarker: false,
    isLatest: true,
    size: data.length,
    etag: md5hex(data)
  }, 'putObject returns the new version')
  t.ok(v.lastModifiedMs >= before - 1000 && v.lastModifiedMs <= Date.now() + 1000, 'Last-Modified is now')

  const got = await store.getObject('bkt1', 'greeting.txt', {})
  t.same(got.body, data, 'get returns the bytes')
  t.match(got.version, { key: 'greeting.txt', size: data.length, etag: md5hex(data), versionId: 'null' })

  const head = store.headObject('bkt1', 'greeting.txt', {})
  t.match(head, { key: 'greeting.txt', size: data.length, etag: md5hex(data), versionId: 'null', isLatest: true })
  t.equal(head.lastModifiedMs, v.lastModifiedMs, 'head and put agree on Last-Modified')

  await failsWith(t, () => store.getObject('bkt1', 'missing', {}), 'NoSuchKey', 'get of a missing key')
  await failsWith(t, () => store.headObject('bkt1', 'missing', {}), 'NoSuchKey', 'head of a missing key')
  await failsWith(t, () => store.putObject('nope', 'k', data), 'NoSuchBucket', 'put into a missing bucket')
  await failsWith(t, () => store.getObject('nope', 'k', {}), 'NoSuchBucket', 'get from a missing bucket')
})

t.test('put from a stream; readObject streams big objects', async t => {
  const { store } = tempStore(t)
  store.createBucket('bkt1', {})
  const data = random(3 * MiB + 12345)
  // Uneven pieces that straddle every chunk boundary.
  const v = await store.putObject('bkt1', 'big.bin', Readable.from(pieces(data, 100 * KiB + 7)))
  t.equal(v.size, data.length)
  t.equal(v.etag, md5hex(data), 'ETag is the MD5 of the streamed data')
  const r = store.readObject('bkt1', 'big.bin', {})
  t.equal(r.version.size, data.length)
  const body = await collect(r.stream)
  t.ok(body.equals(data), 'readObject streams the exact bytes')
  const got = await store.getObject('bkt1', 'big.bin', {})
  t.ok(got.body.equals(data), 'getObject returns the exact bytes')
  await store.putObject('bkt1', 'gen.bin', pieces(data, MiB))
  t.ok((await store.getObject('bkt1', 'gen.bin', {})).body.equals(data), 'an async generator works as a body too')
})

t.test('byte ranges (HTTP semantics: end inclusive)', async t => {
  const { store } = tempStore(t)
  store.createBucket('bkt1', {})
  const small = Buffer.from(Array.from({ length: 100 }, (_, i) => i))
  await store.putObject('bkt1', 'small', small)
  const range = async (start: number, end: number): Promise<Buffer> =>
    (await store.getObject('bkt1', 'small', { range: { start, end } })).body
  t.same(await range(0, 0), small.subarray(0, 1), 'first byte')
  t.same(await range(10, 19), small.subarray(10, 20), '10 bytes, end inclusive')
  t.same(await range(99, 99), small.subarray(99), 'last byte')
  t.same(await range(0, 99), small, 'whole object')
  t.same(await range(90, 1000), small.subarray(90), 'end beyond the size is clipped')
  await failsWith(t, () => range(100, 150), 'InvalidRange', 'start == size')
  await failsWith(t, () => range(500, 600), 'InvalidRange', 'start > size')

  // A range across chunk boundaries of a multi-chunk object.
  const big = random(5 * MiB + 333)
  await store.putObject('bkt1', 'big', big)
  for (const [s, e] of [[MiB - 10, MiB + 10], [123, 4 * MiB + 77], [2 * MiB, 3 * MiB - 1], [5 * MiB, 5 * MiB + 332], [5 * MiB + 300, 10 * MiB]]) {
    const got = (await store.getObject('bkt1', 'big', { range: { start: s, end: e } })).body
    t.ok(got.equals(big.subarray(s, Math.min(e, big.length - 1) + 1)), `range ${s}-${e} of a multi-chunk object`)
  }
})

t.test('zero-byte object', async t => {
  const { store } = tempStore(t)
  store.createBucket('bkt1', {})
  const v = await store.putObject('bkt1', 'empty', Buffer.alloc(0))
  t.equal(v.size, 0)
  t.equal(v.etag, EMPTY_MD5, 'ETag of no data')
  const got = await store.getObject('bkt1', 'empty', {})
  t.equal(got.body.length, 0)
  t.equal(store.headObject('bkt1', 'empty', {}).size, 0)
  t.equal((await collect(store.readObject('bkt1', 'empty', {}).stream)).length, 0, 'readObject yields nothing')
  const empty = await store.putObject('bkt1', 'empty-stream', Readable.from([]))
  t.equal(empty.size, 0, 'an empty stream makes a zero-byte object')
  t.same(store.listObjects('bkt1', {}).contents.map(o => [o.key, o.size]), [['empty', 0], ['empty-stream', 0]])
  // S3 answers 416 InvalidRange for any range on an empty object (start 0 >= size 0).
  await failsWith(t, () => store.getObject('bkt1', 'empty', { range: { start: 0, end: 10 } }), 'InvalidRange', 'range on a zero-byte object')
})

t.test('content type guessed from the extension, overridable', async t => {
  const { store } = tempStore(t)
  store.createBucket('bkt1', {})
  const cases: Array<[string, string]> = [
    ['notes.txt', 'text/plain'],
    ['data.json', 'application/json'],
    ['page.html', 'text/html'],
    ['photo.png', 'image/png'],
    ['photo.JPG', 'image/jpeg'],
    ['dir/archive.tar.gz', 'application/gzip'],
    ['doc.pdf', 'application/pdf'],
    ['README', 'application/octet-stream'],
    ['blob.unknownext', 'application/octet-stream'],
    ['dir.d/noext', 'application/octet-stream']
  ]
  for (const [key, type] of cases) {
    const v = await store.putObject('bkt1', key, Buffer.from('x'))
    // The media type must match; a charset parameter is acceptable.
    t.equal(v.contentType.split(';')[0].trim(), type, `${key} → ${type}`)
    t.equal(store.headObject('bkt1', key, {}).contentType, v.contentType, `${key}: head agrees`)
  }
  const o = await store.putObject('bkt1', 'notes2.txt', Buffer.from('x'), { contentType: 'application/x-custom' })
  t.equal(o.contentType, 'application/x-custom', 'explicit Content-Type wins over the extension')
  t.equal(store.headObject('bkt1', 'notes2.txt', {}).contentType, 'application/x-custom')
  const u = store.createMultipartUpload('bkt1', 'big.json', {})
  await store.uploadPart(u.uploadId, 1, Buffer.from('{}'))
  const done = await store.completeMultipartUpload(u.uploadId, [{ partNumber: 1, etag: md5hex(Buffer.from('{}')) }])
  t.equal(done.contentType.split(';')[0], 'application/json', 'multipart uploads guess too')
})

t.test('standard headers and user metadata round trip', async t => {
  const ts = tempStore(t)
  ts.store.createBucket('bkt1', {})
  const headers = {
    cacheControl: 'max-age=3600, public',
    contentDisposition: 'attachment; filename="r\u00e9sum\u00e9.pdf"',
    contentEncoding: 'gzip',
    contentLanguage: 'de-CH',
    expires: 'Wed, 21 Oct 2026 07:28:00 GMT'
  }
  const userMeta = { author: 'Zoë', project: 'bucketfs', empty: '', 'x-note': '日本語' }
  await ts.store.putObject('bkt1', 'doc.pdf', Buffer.from('%PDF'), { headers, userMeta, contentType: 'application/pdf' })
  const check = (v: { headers: object, userMeta: object, contentType: string }, when: string): void => {
    t.same(v.headers, headers, `headers ${when}`)
    t.same(v.userMeta, userMeta, `user metadata ${when}`)
    t.equal(v.contentType, 'application/pdf', `content type ${when}`)
  }
  check(ts.store.headObject('bkt1', 'doc.pdf', {}), 'on head')
  check((await ts.store.getObject('bkt1', 'doc.pdf', {})).version, 'on get')
  check(ts.reopen().headObject('bkt1', 'doc.pdf', {}), 'after reopen')
  await ts.store.putObject('bkt1', 'plain', Buffer.from('x'))
  const plain = ts.store.headObject('bkt1', 'plain', {})
  t.same(plain.userMeta, {}, 'no user metadata unless given')
  t.notOk(plain.headers.cacheControl, 'no Cache-Control unless given')
  await ts.store.putObject('bkt1', 'doc.pdf', Buffer.from('%PDF-2'))
  const replaced = ts.store.headObject('bkt1', 'doc.pdf', {})
  t.same(replaced.userMeta, {}, 'an overwrite replaces the metadata too (PUT is whole-object)')
  t.notOk(replaced.headers.cacheControl, 'and the headers')
})

t.test('ETag is the MD5 hex of the data', async t => {
  const { store } = tempStore(t)
  store.createBucket('bkt1', {})
  for (const size of [1, 1000, 64 * KiB, 64 * KiB + 1, MiB, 2 * MiB + 3]) {
    const data = random(size)
    const v = await store.putObject('bkt1', `k${size}`, data)
    t.equal(v.etag, md5hex(data), `${size} bytes`)
    t.equal(store.headObject('bkt1', `k${size}`, {}).etag, md5hex(data), `${size} bytes (head)`)
    t.ok((await store.getObject('bkt1', `k${size}`, {})).body.equals(data), `${size} bytes read back`)
  }
})

t.test('copy shares chunks and copies no bytes', async t => {
  const { store } = tempStore(t)
  store.createBucket('src', {})
  store.createBucket('dst', {})
  const data = random(2 * MiB)
  const src = await store.putObject('src', 'a/original.bin', data, { userMeta: { color: 'blue' }, contentType: 'application/x-thing' })
  const before = store.stats()
  const c1 = await store.copyObject('src', 'a/original.bin', 'src', 'b/copy.bin', {})
  const c2 = await store.copyObject('src', 'a/original.bin', 'dst', 'copy.bin', {})
  const after = store.stats()
  t.equal(after.storedBytes, before.storedBytes, 'storedBytes unchanged after two copies')
  t.equal(after.chunks, before.chunks, 'no new chunks')
  t.equal(after.logicalBytes, before.logicalBytes + 2 * data.length, 'logicalBytes counts every copy')
  t.equal(c1.etag, src.etag, 'a copy of a single-part object keeps its ETag')
  t.equal(c2.size, data.length)
  t.ok((await store.getObject('src', 'b/copy.bin', {})).body.equals(data), 'copy in the same bucket reads back')
  t.ok((await store.getObject('dst', 'copy.bin', {})).body.equals(data), 'copy to another bucket reads back')
  t.same(c1.userMeta, { color: 'blue' }, 'metadataDirective COPY (default) keeps user metadata')
  t.equal(c1.contentType, 'application/x-thing', 'and the content type')
  const c3 = await store.copyObject('src', 'a/original.bin', 'src', 'c/replaced.txt',
    { metadataDirective: 'REPLACE', userMeta: { color: 'red' }, contentType: 'text/x-new' })
  t.same(c3.userMeta, { color: 'red' }, 'REPLACE takes the new user metadata')
  t.equal(c3.contentType, 'text/x-new', 'and the new content type')
  t.equal(store.stats().storedBytes, before.storedBytes, 'still no new bytes stored')
  await store.deleteObject('src', 'a/original.bin', {})
  t.ok((await store.getObject('dst', 'copy.bin', {})).body.equals(data), 'a copy survives the deletion of its source')
  store.gc({})
  t.ok((await store.getObject('src', 'b/copy.bin', {})).body.equals(data), 'and a gc')
  // The S3 idiom for changing an object's metadata: copy it onto itself with REPLACE.
  const self = await store.copyObject('dst', 'copy.bin', 'dst', 'copy.bin', { metadataDirective: 'REPLACE', userMeta: { state: 'edited' } })
  t.same(self.userMeta, { state: 'edited' }, 'copy onto itself with REPLACE changes the metadata')
  t.same(store.listObjectVersions('dst', {}).versions.map(v => v.versionId), ['null'], 'unversioned: still one version')
  store.gc({})
  t.ok((await store.getObject('dst', 'copy.bin', {})).body.equals(data), 'and keeps the bytes, also after gc')
  await failsWith(t, () => store.copyObject('src', 'missing', 'dst', 'x', {}), 'NoSuchKey', 'copy of a missing key')
  await failsWith(t, () => store.copyObject('src', 'b/copy.bin', 'nope', 'x', {}), 'NoSuchBucket', 'copy into a missing bucket')
})

t.test('listObjects: prefix, delimiter, common prefixes, startAfter', async t => {
  const { store } = tempStore(t)
  store.createBucket('bkt1', {})
  const keys = ['a/1', 'a/2', 'a/b/3', 'a/b/4', 'a/c/5', 'b/1', 'c', 'd/', 'd/e', 'e.txt']
  for (const k of keys) await store.putObject('bkt1', k, Buffer.from(k))
  const all = store.listObjects('bkt1', {})
  t.same(all.contents.map(o => o.key), keys, 'no options: every key, sorted')
  t.equal(all.isTruncated, false)
  t.equal(all.keyCount, keys.length)
  t.notOk(all.nextContinuationToken, 'no continuation token when not truncated')
  t.match(all.contents[0], { key: 'a/1', size: 3, etag: md5hex(Buffer.from('a/1')) }, 'entries carry size and ETag')

  t.same(store.listObjects('bkt1', { prefix: 'a/' }).contents.map(o => o.key), ['a/1', 'a/2', 'a/b/3', 'a/b/4', 'a/c/5'], 'prefix')
  t.same(store.listObjects('bkt1', { prefix: 'a/b' }).contents.map(o => o.key), ['a/b/3', 'a/b/4'], 'prefix need not end at a slash')
  t.same(store.listObjects('bkt1', { prefix: 'zzz' }).contents, [], 'prefix matching nothing')

  const root = store.listObjects('bkt1', { delimiter: '/' })
  t.same(root.contents.map(o => o.key), ['c', 'e.txt'], 'delimiter at the root: only top-level keys')
  t.same(root.commonPrefixes, ['a/', 'b/', 'd/'], 'and the common prefixes')
  t.equal(root.keyCount, 5, 'KeyCount counts keys and common prefixes')

  const a = store.listObjects('bkt1', { prefix: 'a/', delimiter: '/' })
  t.same(a.contents.map(o => o.key), ['a/1', 'a/2'])
  t.same(a.commonPrefixes, ['a/b/', 'a/c/'])
  const d = store.listObjects('bkt1', { prefix: 'd/', delimiter: '/' })
  t.same(d.contents.map(o => o.key), ['d/', 'd/e'], 'the directory marker key itself is listed under its prefix')
  t.same(d.commonPrefixes, [])

  t.same(store.listObjects('bkt1', { startAfter: 'a/b/4' }).contents.map(o => o.key), ['a/c/5', 'b/1', 'c', 'd/', 'd/e', 'e.txt'], 'startAfter')
  t.same(store.listObjects('bkt1', { startAfter: 'a/b/35' }).contents.map(o => o.key)[0], 'a/b/4', 'startAfter need not be a key')
  const after = store.listObjects('bkt1', { delimiter: '/', startAfter: 'a/c/5' })
  t.same([after.contents.map(o => o.key), after.commonPrefixes], [['c', 'e.txt'], ['b/', 'd/']], 'startAfter with a delimiter')
  t.same(store.listObjects('bkt1', { delimiter: '.' }).commonPrefixes, ['e.'], 'any delimiter, not only /')
  await failsWith(t, () => store.listObjects('nope', {}), 'NoSuchBucket')
})

t.test('listObjects: maxKeys and continuation tokens', async t => {
  const { store } = tempStore(t)
  store.createBucket('bkt1', {})
  const keys = Array.from({ length: 25 }, (_, i) => `k${String(i).padStart(2, '0')}`)
  for (const k of [...keys].reverse()) await store.putObject('bkt1', k, Buffer.from('x'))
  const pages: string[][] = []
  let token: string | undefined
  for (let i = 0; i < 10; i++) {
    const r = store.listObjects('bkt1', { maxKeys: 10, continuationToken: token })
    pages.push(r.contents.map(o => o.key))
    t.equal(r.keyCount, r.contents.length, `page ${i + 1}: keyCount`)
    if (!r.isTruncated) {
      t.notOk(r.nextContinuationToken, 'last page has no token')
      break
    }
    t.type(r.nextContinuationToken, 'string', `page ${i + 1} is truncated and has a token`)
    token = r.nextContinuationToken
  }
  t.same(pages.map(p => p.length), [10, 10, 5], '25 keys in pages of 10')
  t.same(pages.flat(), keys, 'every key once, in order')
  const exact = store.listObjects('bkt1', { maxKeys: 25 })
  t.equal(exact.contents.length, 25)
  t.equal(exact.isTruncated, false, 'maxKeys equal to the count is not truncated')

  // The token, not startAfter, decides where a continued listing resumes.
  const first = store.listObjects('bkt1', { maxKeys: 5, startAfter: 'k09' })
  t.same(first.contents.map(o => o.key), keys.slice(10, 15))
  const second = store.listObjects('bkt1', { maxKeys: 5, startAfter: 'k09', continuationToken: first.nextContinuationToken })
  t.same(second.contents.map(o => o.key), keys.slice(15, 20), 'continues after the first page')

  // Paging with a delimiter: a common prefix counts as one entry and comes once.
  store.createBucket('bkt2', {})
  const nested: string[] = []
  for (const p of ['d1', 'd2', 'd3', 'd4']) for (let i = 0; i < 4; i++) nested.push(`${p}/f${i}`)
  nested.push('a', 'z', 'e', 'd25')
  for (const k of nested) await store.putObject('bkt2', k, Buffer.from('x'))
  const seenKeys: string[] = []
  const seenPrefixes: string[] = []
  token = undefined
  for (let i = 0; i < 20; i++) {
    const r = store.listObjects('bkt2', { delimiter: '/', maxKeys: 3, continuationToken: token })
    t.ok(r.contents.length + r.commonPrefixes.length <= 3, `page ${i + 1}: at most maxKeys entries`)
    seenKeys.push(...r.contents.map(o => o.key))
    seenPrefixes.push(...r.commonPrefixes)
    if (!r.isTruncated) break
    token = r.nextContinuationToken
  }
  t.same(seenKeys, ['a', 'd25', 'e', 'z'], 'keys across pages')
  t.same(seenPrefixes, ['d1/', 'd2/', 'd3/', 'd4/'], 'each common prefix exactly once across pages')

  await failsWith(t, () => store.listObjects('bkt1', { continuationToken: 'not a token!' }), 'InvalidArgument', 'a forged continuation token')
  await failsWith(t, () => store.listObjects('bkt1', { maxKeys: -1 }), 'InvalidArgument', 'negative maxKeys')
})

t.test('listObjects: keys sorted by UTF-8 bytes', async t => {
  const { store } = tempStore(t)
  store.createBucket('bkt1', {})
  // U+FB01 (UTF-8 EF AC 81) sorts before U+1F600 (F0 9F 98 80) in UTF-8, but after
  // it in UTF-16 (FB01 > D83D): a JavaScript string sort gets this wrong.
  const keys = ['b', 'B', 'a', 'é', 'e', '\uFB01', '😀', 'Z', '0', '-', '~', '\u007f', 'a/b', 'a b', 'ab', '\u00ff', '\u0100']
  for (const k of keys) await store.putObject('bkt1', k, Buffer.from('x'))
  const expected = utf8Sort(keys)
  t.not(expected.join('|'), [...keys].sort().join('|'), 'the test set tells UTF-8 order from UTF-16 order')
  t.same(store.listObjects('bkt1', {}).contents.map(o => o.key), expected, 'listed in UTF-8 binary order')
  const page1 = store.listObjects('bkt1', { maxKeys: 8 })
  const page2 = store.listObjects('bkt1', { maxKeys: 100, continuationToken: page1.nextContinuationToken })
  t.same([...page1.contents, ...page2.contents].map(o => o.key), expected, 'and paged in that order')
  t.same(store.listObjects('bkt1', { startAfter: '\uFB01' }).contents.map(o => o.key), expected.slice(expected.indexOf('\uFB01') + 1),
    'startAfter compares UTF-8 bytes too')
})

t.test('listObjects: startAfter and prefix compared as UTF-8 bytes', async t => {
  const { store } = tempStore(t)
  store.createBucket('bkt1', {})
  for (const k of ['\uFB01a', '\uFB01b', '😀a', '😀b', 'z']) await store.putObject('bkt1', k, Buffer.from('x'))
  // In UTF-8, '😀' (F0 9F 98 80) sorts after every key starting with U+FB01 (EF AC 81):
  // listing after it under prefix U+FB01 finds nothing. (In UTF-16 it would sort before.)
  t.same(store.listObjects('bkt1', { prefix: '\uFB01', startAfter: '😀' }).contents.map(o => o.key), [],
    'startAfter beyond every key of the prefix (in UTF-8 order) lists nothing')
  t.same(store.listObjects('bkt1', { prefix: '😀', startAfter: '\uFB01z' }).contents.map(o => o.key), ['😀a', '😀b'],
    'startAfter before the prefix (in UTF-8 order) lists the whole prefix')
  t.same(store.listObjects('bkt1', { startAfter: '😀' }).contents.map(o => o.key), ['😀a', '😀b'], 'no prefix: same order')
  t.same(store.listObjects('bkt1', { prefix: '\uFB01', startAfter: '\uFB01a' }).contents.map(o => o.key), ['\uFB01b'], 'startAfter inside the prefix')
})

t.test('listObjects: prefixes with SQL and glob wildcard characters, multi-byte and multi-char delimiters', async t => {
  const { store } = tempStore(t)
  store.createBucket('bkt1', {})
  const keys = ['a_b', 'axb', 'a%c', 'abc', 'a*d', 'a?e', 'a[f]', 'aXd', 'a\\g', 'é1', 'é2', 'ê', 'e\u0301', 'x--y--z', 'x--w', 'v']
  for (const k of keys) await store.putObject('bkt1', k, Buffer.from('x'))
  const list = (prefix: string): string[] => store.listObjects('bkt1', { prefix }).contents.map(o => o.key)
  t.same(list('a_'), ['a_b'], "'_' in a prefix is a literal character (not a LIKE wildcard)")
  t.same(list('a%'), ['a%c'], "'%' is literal")
  t.same(list('a*'), ['a*d'], "'*' is literal (not a GLOB wildcard)")
  t.same(list('a?'), ['a?e'], "'?' is literal")
  t.same(list('a['), ['a[f]'], "'[' is literal")
  t.same(list('a\\'), ['a\\g'], 'a backslash is literal')
  t.same(list('A'), [], 'prefixes are case-sensitive')
  t.same(list('é'), ['é1', 'é2'], 'a multi-byte prefix matches only keys that start with it')
  t.same(list('e'), ['e\u0301'], 'no Unicode normalization: e + combining accent is not é')
  const d = store.listObjects('bkt1', { delimiter: '--', prefix: 'x' })
  t.same(d.commonPrefixes, ['x--'], 'a multi-character delimiter')
  t.same(d.contents, [])
  const d2 = store.listObjects('bkt1', { delimiter: '--', prefix: 'x--' })
  t.same([d2.contents.map(o => o.key), d2.commonPrefixes], [['x--w'], ['x--y--']], 'the delimiter after the prefix')
  const d3 = store.listObjects('bkt1', { delimiter: '1', prefix: 'é' })
  t.same([d3.contents.map(o => o.key), d3.commonPrefixes], [['é2'], ['é1']], 'delimiter right after a multi-byte prefix')
})

t.test('deleteObject', async t => {
  const { store } = tempStore(t)
  store.createBucket('bkt1', {})
  await store.putObject('bkt1', 'k', Buffer.from('data'))
  const r = store.deleteObject('bkt1', 'k', {})
  t.equal(r.deleteMarker, false, 'no delete marker in an unversioned bucket')
  await failsWith(t, () => store.getObject('bkt1', 'k', {}), 'NoSuchKey', 'gone after delete')
  t.same(store.listObjects('bkt1', {}).contents, [], 'not listed')
  t.same(store.listObjectVersions('bkt1', {}).versions, [], 'no version or marker left')
  t.doesNotThrow(() => store.deleteObject('bkt1', 'k', {}), 'deleting it again succeeds (S3 returns 204)')
  t.doesNotThrow(() => store.deleteObject('bkt1', 'never-existed', {}), 'deleting a missing key succeeds')
  t.same(store.listObjectVersions('bkt1', {}).versions, [], 'and leaves nothing behind in an unversioned bucket')
  await failsWith(t, () => store.deleteObject('nope', 'k', {}), 'NoSuchBucket', 'delete in a missing bucket')
})

t.test('deleteBucket', async t => {
  const { store } = tempStore(t)
  store.createBucket('bkt1', {})
  await store.putObject('bkt1', 'k', Buffer.from('data'))
  await failsWith(t, () => store.deleteBucket('bkt1'), 'BucketNotEmpty', 'refused while an object is left')
  t.equal(store.headBucket('bkt1').name, 'bkt1', 'bucket still there')
  store.deleteObject('bkt1', 'k', {})
  store.deleteBucket('bkt1')
  await failsWith(t, () => store.headBucket('bkt1'), 'NoSuchBucket', 'gone after delete')
  t.same(store.listBuckets(), [])
  await failsWith(t, () => store.deleteBucket('bkt1'), 'NoSuchBucket', 'delete of a missing bucket')
  store.createBucket('bkt1', {})
  t.same(store.listObjects('bkt1', {}).contents, [], 'a re-created bucket starts empty')
})

t.test('reads from memory: readIntoCached answers only when every chunk is verified in memory, with the same bytes', async t => {
  const ts = tempStore(t)
  const s = ts.store
  s.createBucket('cached-reads')
  const data = random(3 * MiB + 123)
  const v = await s.putObject('cached-reads', 'k', data)
  const extents = s.extentsOf(s.liveVersion('cached-reads', 'k')?.seq ?? -1)
  t.ok(v.versionId !== undefined && extents.length === 4, 'four chunks')
  const out = Buffer.alloc(200 * KiB, 0xee)
  t.equal(s.content.readIntoCached(extents, data.length, MiB - 1000, out), undefined, 'nothing is in memory yet: undefined, nothing read')
  t.ok(out.every(b => b === 0xee), 'and out is untouched')
  t.equal(await s.content.readInto(extents, data.length, MiB - 1000, out), out.length, 'readInto loads and verifies the two chunks it spans')
  const out2 = Buffer.alloc(out.length)
  t.equal(s.content.readIntoCached(extents, data.length, MiB - 1000, out2), out2.length, 'now the same read is answered from memory')
  t.ok(out2.equals(data.subarray(MiB - 1000, MiB - 1000 + out.length)), 'with the right bytes, across the chunk boundary')
  const tail = Buffer.alloc(1000)
  await s.content.readInto(extents, data.length, data.length - 100, tail)
  t.equal(s.content.readIntoCached(extents, data.length, data.length - 100, tail), 100, 'a read past the end is cut at the size')
  t.equal(s.content.readIntoCached(extents, data.length, data.length, tail), 0, 'a read at the end reads nothing')
})
