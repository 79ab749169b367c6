// Names and limits: S3's bucket naming rules, bucket uniqueness and region,
// object key length (UTF-8 bytes) and the 2 KB user-metadata limit.
// Reference: "General purpose bucket naming rules" and "Naming Amazon S3
// objects" / "Working with object metadata" in the Amazon S3 User Guide.
import t from 'tap'
import { validateBucketName } from '../src/store/naming'
import { MAX_KEY_BYTES, MAX_USER_META_BYTES } from '../src/store/limits'
import { tempStore, failsWith } from './helpers/store'

const ACCEPTED: Array<[string, string]> = [
  ['abc', 'shortest: 3 characters'],
  ['a'.repeat(63), 'longest: 63 characters'],
  ['my-bucket', 'hyphen inside'],
  ['my.bucket.name', 'dots inside'],
  ['0bucket9', 'starts and ends with a digit'],
  ['123', 'all digits'],
  ['a-b.c-d', 'dots and hyphens mixed'],
  ['a--b', 'two adjacent hyphens are allowed'],
  ['1.2.3', 'three dotted numbers are not an IPv4 address'],
  ['1.2.3.4.5', 'five dotted numbers are not an IPv4 address'],
  ['192.168.5.4a', 'ends with a letter: not an IP address'],
  ['xn-bucket', 'xn- without the second hyphen'],
  ['axn--bucket', 'xn-- not at the start'],
  ['sthree', 'sthree without the hyphen'],
  ['sthreebucket', 'sthree not followed by a hyphen'],
  ['amzn-s3-demo', 'amzn-s3-demo without the trailing hyphen'],
  ['bucket-s3alias-x', '-s3alias not at the end'],
  ['bucket-ol-s3', 'only one hyphen before ol-s3'],
  ['bucket.mrap.x', '.mrap not at the end'],
  ['bucketmrap', 'mrap without the dot']
]

const REFUSED: Array<[string, string]> = [
  ['', 'empty'],
  ['ab', '2 characters'],
  ['a'.repeat(64), '64 characters'],
  ['MyBucket', 'uppercase letters'],
  ['my_bucket', 'underscore'],
  ['my bucket', 'space'],
  ['bücket', 'non-ASCII letter'],
  ['my/bucket', 'slash'],
  ['-bucket', 'starts with a hyphen'],
  ['bucket-', 'ends with a hyphen'],
  ['.bucket', 'starts with a dot'],
  ['bucket.', 'ends with a dot'],
  ['my..bucket', 'two adjacent dots'],
  ['192.168.5.4', 'formatted as an IPv4 address'],
  ['10.0.0.1', 'formatted as an IPv4 address'],
  ['xn--bucket', 'prefix xn--'],
  ['sthree-bucket', 'prefix sthree-'],
  ['sthree-configurator', 'prefix sthree-configurator'],
  ['amzn-s3-demo-bucket', 'prefix amzn-s3-demo-'],
  ['bucket-s3alias', 'suffix -s3alias'],
  ['bucket--ol-s3', 'suffix --ol-s3'],
  ['bucket.mrap', 'suffix .mrap']
]

t.test('bucket names: every rule accepted', async t => {
  const { store } = tempStore(t)
  for (const [name, why] of ACCEPTED) {
    t.doesNotThrow(() => { validateBucketName(name) }, `validateBucketName accepts ${JSON.stringify(name)} (${why})`)
    const b = store.createBucket(name, {})
    t.equal(b.name, name, `createBucket ${JSON.stringify(name)} (${why})`)
  }
  t.same(store.listBuckets().map(b => b.name), [...ACCEPTED.map(([n]) => n)].sort(), 'all listed, sorted by name')
})

t.test('bucket names: every rule refused with InvalidBucketName', async t => {
  const { store } = tempStore(t)
  for (const [name, why] of REFUSED) {
    await failsWith(t, () => { validateBucketName(name) }, 'InvalidBucketName', `validateBucketName refuses ${JSON.stringify(name)} (${why})`)
    await failsWith(t, () => store.createBucket(name, {}), 'InvalidBucketName', `createBucket refuses ${JSON.stringify(name)} (${why})`)
  }
  t.same(store.listBuckets(), [], 'no bucket was created')
})

t.test('bucket names are unique in the store', async t => {
  const { store } = tempStore(t)
  store.createBucket('photos', {})
  await failsWith(t, () => store.createBucket('photos', {}), 'BucketAlreadyExists')
  await failsWith(t, () => store.createBucket('photos', { region: 'eu-west-1' }), 'BucketAlreadyExists', 'also in another region')
  t.equal(store.listBuckets().length, 1, 'still one bucket')
})

t.test('bucket region: default local, settable, persisted', async t => {
  const ts = tempStore(t)
  const before = Date.now()
  const a = ts.store.createBucket('alpha', {})
  const b = ts.store.createBucket('beta', { region: 'eu-west-1' })
  t.equal(a.region, 'local', 'default region')
  t.equal(b.region, 'eu-west-1', 'region given at creation')
  t.equal(a.versioning, 'Unversioned', 'versioning is off by default')
  t.ok(a.createdMs >= before - 1000 && a.createdMs <= Date.now() + 1000, 'creation time is now')
  const store = ts.reopen()
  t.equal(store.headBucket('alpha').region, 'local', 'default region after reopen')
  t.equal(store.headBucket('beta').region, 'eu-west-1', 'region after reopen')
  t.equal(store.headBucket('alpha').createdMs, a.createdMs, 'creation time persisted')
  t.same(store.listBuckets().map(b => [b.name, b.region]), [['alpha', 'local'], ['beta', 'eu-west-1']], 'listBuckets after reopen')
  await failsWith(t, () => store.headBucket('gamma'), 'NoSuchBucket')
})

t.test('object keys: at most 1024 UTF-8 bytes, not empty', async t => {
  const { store } = tempStore(t)
  store.createBucket('keys', {})
  t.equal(MAX_KEY_BYTES, 1024, 'MAX_KEY_BYTES')
  const ok: Array<[string, string]> = [
    ['a'.repeat(1024), '1024 ASCII bytes'],
    ['é'.repeat(512), '512 two-byte characters = 1024 bytes'],
    ['€'.repeat(341) + 'a', '341 three-byte characters + 1 = 1024 bytes'],
    ['😀'.repeat(256), '256 four-byte characters = 1024 bytes (512 UTF-16 units)'],
    ['a', 'one byte']
  ]
  for (const [key, why] of ok) {
    t.equal(Buffer.byteLength(key), key.length === 1 ? 1 : 1024, `(the test key is ${Buffer.byteLength(key)} bytes)`)
    const v = await store.putObject('keys', key, Buffer.from('x'))
    t.equal(v.key, key, `put accepts ${why}`)
    const got = await store.getObject('keys', key, {})
    t.equal(got.body.toString(), 'x', `get reads back ${why}`)
  }
  const tooLong: Array<[string, string]> = [
    ['a'.repeat(1025), '1025 ASCII bytes'],
    ['é'.repeat(512) + 'a', '1025 bytes of two-byte characters'],
    ['é'.repeat(600), '600 characters but 1200 bytes (bytes count, not characters)'],
    ['😀'.repeat(257), '257 four-byte characters = 1028 bytes (514 UTF-16 units)']
  ]
  for (const [key, why] of tooLong) {
    await failsWith(t, () => store.putObject('keys', key, Buffer.from('x')), 'KeyTooLong', `put refuses ${why}`)
    await failsWith(t, () => store.createMultipartUpload('keys', key, {}), 'KeyTooLong', `createMultipartUpload refuses ${why}`)
  }
  await failsWith(t, () => store.putObject('keys', '', Buffer.from('x')), 'InvalidKey', 'empty key')
  await failsWith(t, () => store.createMultipartUpload('keys', '', {}), 'InvalidKey', 'empty key (multipart)')
  t.equal(store.listObjects('keys', {}).contents.length, ok.length, 'only the valid keys were stored')
})

t.test('user metadata: at most 2048 bytes of UTF-8 names + values', async t => {
  const { store } = tempStore(t)
  store.createBucket('meta', {})
  t.equal(MAX_USER_META_BYTES, 2048, 'MAX_USER_META_BYTES')
  const ok: Array<[Record<string, string>, string]> = [
    [{ a: 'x'.repeat(2047) }, '1 + 2047 bytes'],
    [{ ab: 'x'.repeat(1000), cd: 'y'.repeat(1044) }, 'two pairs, 2048 bytes in total'],
    [{ k: 'é'.repeat(1023) + 'x' }, '1 + 2046 + 1 bytes with two-byte characters'],
    [{ ['n'.repeat(1024)]: 'v'.repeat(1024) }, 'long name counts: 1024 + 1024']
  ]
  let i = 0
  for (const [userMeta, why] of ok) {
    const key = `ok-${i++}`
    await store.putObject('meta', key, Buffer.from('data'), { userMeta })
    t.same(store.headObject('meta', key, {}).userMeta, userMeta, `accepted and round-trips: ${why}`)
  }
  const big: Array<[Record<string, string>, string]> = [
    [{ a: 'x'.repeat(2048) }, '1 + 2048 = 2049 bytes'],
    [{ ab: 'x'.repeat(1000), cd: 'y'.repeat(1045) }, 'two pairs, 2049 bytes in total'],
    [{ k: 'é'.repeat(1024) }, '1 + 2048 bytes: 1025 characters but 2049 bytes'],
    [{ ['n'.repeat(1025)]: 'v'.repeat(1024) }, 'the name counts: 1025 + 1024']
  ]
  for (const [userMeta, why] of big) {
    await failsWith(t, () => store.putObject('meta', 'big', Buffer.from('data'), { userMeta }), 'MetadataTooLarge', `put refuses ${why}`)
    await failsWith(t, () => store.createMultipartUpload('meta', 'big-mpu', { userMeta }), 'MetadataTooLarge', `createMultipartUpload refuses ${why}`)
  }
  await failsWith(t, () => store.headObject('meta', 'big', {}), 'NoSuchKey', 'nothing was stored for the refused puts')
  t.same(store.listMultipartUploads('meta'), [], 'no upload was created for the refused metadata')
  await store.putObject('meta', 'src', Buffer.from('data'))
  await failsWith(t, () => store.copyObject('meta', 'src', 'meta', 'dst', { metadataDirective: 'REPLACE', userMeta: { a: 'x'.repeat(2048) } }),
    'MetadataTooLarge', 'copy with REPLACE refuses 2049 bytes')
})
