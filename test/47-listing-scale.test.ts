// ListObjectsV2 on a big bucket: 100 top-level prefixes, inserted through the
// store API. Correctness only: timing belongs in the benchmarks, not in tests.
//
// Scale: putObject of a tiny object costs ~0.4 ms here (one SQLite transaction
// each), so 100 × 2,000 = 200,000 keys would take ~75 s alone. By default the
// test uses 99 prefixes × 450 keys plus one "hot" prefix (p042/) of 2,500 keys
// (47,050 keys), which still pages a prefix at maxKeys 1000 over three pages.
// BUCKETFS_TEST_KEYS_PER_PREFIX=2000 runs the full layout (≈200,000 keys).
// Reference: Amazon S3 API Reference — ListObjectsV2 (Delimiter, CommonPrefixes,
// MaxKeys, ContinuationToken: a common prefix counts as one entry).
import t from 'tap'
import { tempStore } from './helpers/store'

const PREFIXES = 100
const KEYS_PER_PREFIX = Number(process.env.BUCKETFS_TEST_KEYS_PER_PREFIX ?? 450)
const HOT = 42
const HOT_KEYS = Math.max(2500, KEYS_PER_PREFIX)
const keysIn = (i: number): number => i === HOT ? HOT_KEYS : KEYS_PER_PREFIX
const TOTAL = (PREFIXES - 1) * KEYS_PER_PREFIX + HOT_KEYS
const BATCH = 500

const pad = (n: number, w: number): string => String(n).padStart(w, '0')
const prefixOf = (i: number): string => `p${pad(i, 3)}/`
const keyOf = (i: number, j: number): string => `${prefixOf(i)}k${pad(j, 5)}`

t.test(`listing ${TOTAL} keys under ${PREFIXES} prefixes`, async t => {
  const { store } = tempStore(t)
  store.createBucket('scale', {})
  const empty = Buffer.alloc(0)
  const started = Date.now()
  // Insert in an order unlike the sorted one, BATCH puts in flight at a time.
  let batch: Array<Promise<unknown>> = []
  for (let j = 0; j < HOT_KEYS; j++) {
    for (let i = PREFIXES - 1; i >= 0; i--) {
      if (j >= keysIn(i)) continue
      batch.push(store.putObject('scale', keyOf(i, j), empty))
      if (batch.length >= BATCH) { await Promise.all(batch); batch = [] }
    }
  }
  await Promise.all(batch)
  t.comment(`inserted ${TOTAL} keys in ${Date.now() - started} ms`)
  t.equal(store.stats().objects, TOTAL, 'every key stored')

  const root = store.listObjects('scale', { delimiter: '/' })
  t.same(root.commonPrefixes, Array.from({ length: PREFIXES }, (_, i) => prefixOf(i)), 'root with delimiter: exactly the 100 common prefixes')
  t.same(root.contents, [], 'and no keys')
  t.equal(root.isTruncated, false, 'not truncated (100 < maxKeys 1000)')
  t.equal(root.keyCount, PREFIXES, 'keyCount counts the prefixes')

  const prefixPages: string[] = []
  let token: string | undefined
  let pages = 0
  do {
    const r = store.listObjects('scale', { delimiter: '/', maxKeys: 10, continuationToken: token })
    pages++
    t.ok(r.commonPrefixes.length <= 10 && r.contents.length === 0, `root page ${pages}: at most 10 prefixes`)
    prefixPages.push(...r.commonPrefixes)
    token = r.isTruncated ? r.nextContinuationToken : undefined
  } while (token !== undefined && pages < PREFIXES + 5)
  t.same(prefixPages, root.commonPrefixes, 'paging the root 10 at a time gives each prefix once, in order')

  const p = HOT
  const want = Array.from({ length: HOT_KEYS }, (_, j) => keyOf(p, j))
  const got: string[] = []
  token = undefined
  pages = 0
  do {
    const r = store.listObjects('scale', { prefix: prefixOf(p), delimiter: '/', maxKeys: 1000, continuationToken: token })
    pages++
    t.ok(r.contents.length <= 1000, `prefix page ${pages}: at most 1000 keys`)
    t.same(r.commonPrefixes, [], 'no deeper prefixes')
    t.ok(r.contents.every(o => o.key.startsWith(prefixOf(p))), 'only keys under the prefix')
    got.push(...r.contents.map(o => o.key))
    token = r.isTruncated ? r.nextContinuationToken : undefined
  } while (token !== undefined && pages < 100)
  t.equal(pages, Math.ceil(HOT_KEYS / 1000), 'pages of 1000')
  t.same(got, want, `every key of ${prefixOf(p)} once, in order`)

  const first = store.listObjects('scale', { prefix: prefixOf(p), delimiter: '/', maxKeys: 1000 })
  t.equal(first.contents.length, 1000, 'first page is full')
  t.equal(first.isTruncated, true, 'and truncated')
  const other = store.listObjects('scale', { prefix: prefixOf(7), delimiter: '/', maxKeys: 1000 })
  t.same(other.contents.map(o => o.key), Array.from({ length: Math.min(1000, keysIn(7)) }, (_, j) => keyOf(7, j)), 'another prefix')
  t.equal(other.isTruncated, KEYS_PER_PREFIX > 1000)

  const big = store.listObjects('scale', { maxKeys: 5000 })
  t.equal(big.contents.length, 1000, 'maxKeys above 1000 returns at most 1000 (S3 caps MaxKeys at 1000)')
  t.equal(big.isTruncated, true, 'and is truncated')
  t.equal(store.listObjects('scale', { prefix: prefixOf(p) }).contents.length, 1000, 'the default maxKeys is 1000')

  const after = store.listObjects('scale', { startAfter: keyOf(50, KEYS_PER_PREFIX - 1), maxKeys: 3 })
  t.same(after.contents.map(o => o.key), [keyOf(51, 0), keyOf(51, 1), keyOf(51, 2)], 'startAfter the last key of a prefix')
  const tail = store.listObjects('scale', { startAfter: keyOf(PREFIXES - 1, KEYS_PER_PREFIX - 2) })
  t.same(tail.contents.map(o => o.key), [keyOf(PREFIXES - 1, KEYS_PER_PREFIX - 1)], 'the very last key')
  t.equal(tail.isTruncated, false, 'the last page is not truncated')
  t.same(store.listObjects('scale', { prefix: 'p1', delimiter: '/' }).commonPrefixes, [], 'prefix p1 matches nothing (p100+ do not exist)')
  t.same(store.listObjects('scale', { prefix: 'p09', delimiter: '/' }).commonPrefixes,
    Array.from({ length: 10 }, (_, i) => prefixOf(90 + i)), 'a partial prefix rolls up to its directories')
})

t.test('listDirectory: one level in one pass, each sub-prefix once, with the attributes readdir shows', async t => {
  const ts = tempStore(t)
  const s = ts.store
  s.createBucket('dir-listing')
  const keys = ['a.txt', 'd/', 'd/x.txt', 'd/y/z.txt', 'd/y/w.txt', 'd/y', 'd/yy/1', 'd/é.txt', 'd/\u{1F600}/q', 'e/f', 'd0']
  for (const k of keys) await s.putObject('dir-listing', k, `content of ${k}`, { posix: { mode: 0o100600, uid: 7, gid: 8 } })
  const top = s.listDirectory('dir-listing', '')
  t.same(top.dirs, ['d', 'e'], 'the root: sub-prefixes d/ and e/')
  const [dMode, dUid, dGid] = top.dirMarkers[0] ?? []
  t.same([dMode, dUid, dGid], [0o100600, 7, 8], 'd/ with the attributes of its marker key d/')
  t.equal(top.dirMarkers[1], null, 'e/ has no marker: implied')
  t.same(top.files.names, ['a.txt', 'd0'], 'and its keys')
  const d = s.listDirectory('dir-listing', 'd/')
  t.same(d.dirs, ['y', 'yy', '\u{1F600}'], 'd/: each sub-prefix once, in UTF-8 order')
  t.same(d.files.names, ['', 'x.txt', 'y', 'é.txt'], 'd/: its marker key (\'\'), its keys by name (a key y beside a prefix y/)')
  const f = d.files
  t.same([f.sizes[1], f.modes[1] & 0o7777, f.uids[1], f.gids[1]], [Buffer.byteLength('content of d/x.txt'), 0o600, 7, 8], 'with size, mode and owner')
  const x = s.headObject('dir-listing', 'd/x.txt')
  t.same([f.mtimes[1], f.ctimes[1], f.stored[1]], [x.posix.mtimeMs, x.posix.ctimeMs, x.storedBytes], 'and times and stored bytes, exactly')
  t.same(d.dirMarkers, [null, null, null], 'none of them has a marker')
  t.same(s.listDirectory('dir-listing', 'nothing/'), { dirs: [], dirMarkers: [], files: { names: [], sizes: [], modes: [], uids: [], gids: [], mtimes: [], ctimes: [], stored: [] } },
    'an empty prefix lists nothing')
  const odd = ['q"uote', 'back\\slash', 'new\nline', 'tab\there', '\u0001ctl', 'bom\ufeff', '\u2028sep', 'x\u{10FFFF}']
  const fillers = Array.from({ length: 70 }, (_, i) => `f${String(i).padStart(2, '0')}`)
  for (const [i, name] of [...odd, ...fillers].entries()) await s.putObject('dir-listing', `odd/${name}`, 'z'.repeat(i), { posix: { mode: 0o100600 + i % 8, uid: i, gid: 1000 + i } })
  // Past 64 keys the columns come as JSON arrays (Catalog.files): the same as rows.
  const o = s.listDirectory('dir-listing', 'odd/').files
  t.same([...o.names].sort(), [...odd, ...fillers].sort(), 'names that JSON escapes come back as they were stored')
  const all = [...odd, ...fillers]
  const got = o.names.map((n, j) => [n, o.sizes[j], o.modes[j] & 0o7777, o.uids[j], o.gids[j], o.mtimes[j], o.ctimes[j], o.stored[j]])
  const want = o.names.map(n => {
    const v = s.headObject('dir-listing', `odd/${n}`)
    const i = all.indexOf(n)
    return [n, i, 0o600 + i % 8, i, 1000 + i, v.posix.mtimeMs, v.posix.ctimeMs, v.storedBytes]
  })
  t.same(got, want, 'each with its own attributes, exactly')

  // A column too long for SQLite to hand over as one string: read as rows instead.
  const catalog = s.catalog as unknown as { s: (sql: string) => unknown }
  const statement = catalog.s.bind(catalog)
  catalog.s = (sql: string) => {
    if (!sql.includes('json_group_array')) return statement(sql)
    return { raw: () => ({ get: () => { throw Object.assign(new Error('string or blob too big'), { code: 'SQLITE_TOOBIG' }) } }) }
  }
  t.same(s.listDirectory('dir-listing', 'odd/').files, { ...o }, 'the same listing when the JSON would be too long')
  catalog.s = statement
})
