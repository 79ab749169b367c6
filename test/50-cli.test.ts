// The command line, end to end: spawn bin/bucketfs (the built dist/) against a
// fresh data directory and check what a user or a script sees: output and exit codes.
import t from 'tap'
import { spawn } from 'node:child_process'
import crypto from 'node:crypto'
import { once } from 'node:events'
import fs from 'node:fs'
import path from 'node:path'
import { Store } from '../src/store'
import { defaultDataDir } from '../src/cli/datadir'

const ROOT = path.resolve(__dirname, '..')
const BIN = path.join(ROOT, 'bin', 'bucketfs')
const MiB = 1024 * 1024

interface Run { code: number | null, stdout: string, stderr: string, out: Buffer }

/** Runs `bucketfs --data <data> ...args`; never through a TTY, never with DEBUG. */
async function cli (data: string, args: string[], input?: Buffer): Promise<Run> {
  const env = { ...process.env }
  delete env.DEBUG
  const child = spawn(process.execPath, [BIN, '--data', data, ...args], { cwd: data, env })
  const out: Buffer[] = []
  const err: Buffer[] = []
  child.stdout.on('data', (b: Buffer) => out.push(b))
  child.stderr.on('data', (b: Buffer) => err.push(b))
  child.stdin.on('error', () => {}) // a command that never reads stdin may exit first
  child.stdin.end(input)
  const [code] = await once(child, 'close') as [number | null]
  const stdout = Buffer.concat(out)
  return { code, stdout: stdout.toString(), stderr: Buffer.concat(err).toString(), out: stdout }
}

/** Runs and insists on exit 0, so a failing step shows its stderr. */
async function ok (t: tap.Test, data: string, args: string[], input?: Buffer): Promise<Run> {
  const r = await cli(data, args, input)
  t.equal(r.code, 0, `bucketfs ${args.join(' ')}`, { stderr: r.stderr })
  return r
}

const sha256 = (b: Buffer): string => crypto.createHash('sha256').update(b).digest('hex')

function randomFile (dir: string, name: string, size: number): { file: string, hash: string } {
  const data = crypto.randomBytes(size)
  const file = path.join(dir, name)
  fs.writeFileSync(file, data)
  return { file, hash: sha256(data) }
}

/** Non-empty output lines split into columns. */
const rows = (out: string): string[][] => out.split('\n').filter(l => l.trim() !== '').map(l => l.trim().split(/\s+/))

function filesUnder (dir: string): string[] {
  if (!fs.existsSync(dir)) return []
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap(e => {
    const p = path.join(dir, e.name)
    return e.isDirectory() ? filesUnder(p) : [p]
  })
}

function freshDataDir (t: tap.Test): string {
  return t.testdir()
}

t.jobs = 4

t.before(() => {
  if (!fs.existsSync(path.join(ROOT, 'dist', 'src', 'cli', 'main.js'))) {
    throw new Error('dist/ is missing: run `npm run build` (npm test does) before this test')
  }
})

t.test('defaultDataDir follows XDG_DATA_HOME, else ~/.local/share', async t => {
  t.equal(defaultDataDir({ XDG_DATA_HOME: '/x/data' }), '/x/data/bucketfs')
  t.match(defaultDataDir({}), /\/\.local\/share\/bucketfs$/)
  t.match(defaultDataDir({ XDG_DATA_HOME: 'relative' }), /\/\.local\/share\/bucketfs$/, 'a relative XDG_DATA_HOME is ignored')
})

t.test('--help and usage errors', async t => {
  const data = freshDataDir(t)
  const help = await cli(data, ['--help'])
  t.equal(help.code, 0)
  const commands = fs.readdirSync(path.join(ROOT, 'src', 'cli', 'commands')).map(f => path.basename(f, '.ts'))
  t.ok(commands.length >= 11)
  for (const cmd of commands) t.match(help.stdout, new RegExp(`bucketfs ${cmd}\\b`), `--help lists ${cmd} (every file in src/cli/commands is wired)`)
  const putHelp = await cli(data, ['put', '--help'])
  t.equal(putHelp.code, 0)
  t.match(putHelp.stdout, /--content-type/)
  t.equal((await cli(data, ['bucket', 'create', '--help'])).code, 0)

  const none = await cli(data, [])
  t.equal(none.code, 2, 'no command: exit 2')
  t.match(none.stderr, /bucketfs: a command is required/)
  const missing = await cli(data, ['put'])
  t.equal(missing.code, 2, 'put without arguments: exit 2')
  t.match(missing.stderr, /Not enough non-option arguments/)
  t.equal((await cli(data, ['bucket'])).code, 2, 'bucket without sub-command: exit 2')
  t.equal((await cli(data, ['frobnicate'])).code, 2, 'unknown command: exit 2')
  t.equal((await cli(data, ['ls', '--no-such-flag', 'b'])).code, 2, 'unknown option: exit 2 (strict)')
  t.equal((await cli(data, ['get', 'bucketonly'])).code, 2, 'get needs bucket/key')
  t.equal((await cli(data, ['restore', 'b/k'])).code, 2, 'restore needs --version')
  t.equal((await cli(data, ['put', __filename, 'b/k', '--meta', 'novalue'])).code, 2, '--meta needs name=value')
  t.equal((await cli(data, ['versioning', 'b', 'maybe'])).code, 2, 'versioning action must be one of the choices')
})

t.test('bucket create, ls, rm', async t => {
  const data = freshDataDir(t)
  t.match((await ok(t, data, ['bucket', 'create', 'photos'])).stdout, /created bucket photos \(region local\)/)
  await ok(t, data, ['bucket', 'create', 'backups', '--region', 'eu-west-1'])
  const list = rows((await ok(t, data, ['bucket', 'ls'])).stdout)
  t.same(list.map(r => r.slice(1)), [['eu-west-1', 'Unversioned', 'backups'], ['local', 'Unversioned', 'photos']])
  t.match(list[0][0], /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/, 'creation time in UTC')
  t.same(rows((await ok(t, data, ['ls'])).stdout).map(r => r[3]), ['backups', 'photos'], 'ls without a target lists buckets')

  const dup = await cli(data, ['bucket', 'create', 'photos'])
  t.equal(dup.code, 4, 'an existing bucket: exit 4 (conflict)')
  t.match(dup.stderr, /^bucketfs: .*photos/)

  const bad = await cli(data, ['bucket', 'create', 'Bad_Name'])
  t.equal(bad.code, 5, 'an invalid name: exit 5 (invalid input)')
  t.match(bad.stderr, /^bucketfs: .*Bad_Name/, 'the message names the bucket')
  t.equal(bad.stdout, '')
  t.equal((await cli(data, ['bucket', 'create', '192.168.1.1'])).code, 5, 'IPv4-shaped name refused')
  t.equal((await cli(data, ['bucket', 'create', 'ab'])).code, 5, 'too short refused')

  fs.writeFileSync(path.join(data, 'f.txt'), 'x')
  await ok(t, data, ['put', 'f.txt', 'photos/f.txt'])
  t.equal((await cli(data, ['bucket', 'rm', 'photos'])).code, 4, 'non-empty bucket: exit 4')
  await ok(t, data, ['rm', 'photos/f.txt'])
  t.match((await ok(t, data, ['bucket', 'rm', 'photos'])).stdout, /removed bucket photos/)
  const gone = await cli(data, ['bucket', 'rm', 'photos'])
  t.equal(gone.code, 3, 'no such bucket: exit 3')
  t.match(gone.stderr, /^bucketfs: /)
  t.same(rows((await ok(t, data, ['bucket', 'ls'])).stdout).map(r => r[3]), ['backups'])
})

t.test('put and get a 12 MiB file, to a file and to stdout', async t => {
  const data = freshDataDir(t)
  await ok(t, data, ['bucket', 'create', 'big'])
  const size = 12 * MiB + 12345
  const { file, hash } = randomFile(data, 'random.bin', size)
  const put = await ok(t, data, ['put', file, 'big/dir/random.bin', '--content-type', 'application/x-test', '--meta', 'owner=me', '--cache-control', 'no-cache'])
  t.match(put.stdout, new RegExp(`^big/dir/random\\.bin  ${size} bytes  etag \\S+  version null\n$`))

  const out = path.join(data, 'copy.bin')
  t.match((await ok(t, data, ['get', 'big/dir/random.bin', out])).stdout, new RegExp(`-> .*copy\\.bin  ${size} bytes`))
  t.equal(sha256(fs.readFileSync(out)), hash, 'file round trip keeps every byte')
  t.same(filesUnder(data).filter(f => f.includes('.bucketfs-')), [], 'no temp file left behind')

  const piped = await cli(data, ['get', 'big/dir/random.bin', '-'])
  t.equal(piped.code, 0)
  t.equal(sha256(piped.out), hash, 'stdout round trip keeps every byte')

  fs.mkdirSync(path.join(data, 'into'))
  await ok(t, data, ['get', 'big/dir/random.bin', 'into'])
  t.equal(sha256(fs.readFileSync(path.join(data, 'into', 'random.bin'))), hash, 'a directory destination gets the key\'s name')

  await ok(t, data, ['put', '-', 'big/stdin.txt'], Buffer.from('from stdin\n'))
  t.equal((await ok(t, data, ['get', 'big/stdin.txt', '-'])).stdout, 'from stdin\n')
  await ok(t, data, ['put', file, 'big/prefix/'])
  t.match((await ok(t, data, ['ls', '-r', 'big/prefix/'])).stdout, /prefix\/random\.bin/, 'a key ending in / takes the file name')

  const noKey = await cli(data, ['get', 'big/nope', '-'])
  t.equal(noKey.code, 3, 'no such key: exit 3')
  t.match(noKey.stderr, /^bucketfs: /)
  t.equal((await cli(data, ['get', 'nobucket/k', '-'])).code, 3, 'no such bucket: exit 3')
  t.equal((await cli(data, ['put', 'no-such-file', 'big/k'])).code, 3, 'missing local file: exit 3')
  t.equal((await cli(data, ['put', file, `big/${'k'.repeat(1025)}`])).code, 5, 'key over 1024 bytes: exit 5')
  t.equal((await cli(data, ['put', 'copy.bin', 'big/m', '--meta', `x=${'v'.repeat(2100)}`])).code, 5, 'user metadata over 2 KB: exit 5')
})

t.test('ls: delimiter, --recursive, --versions, rm and restore', async t => {
  const data = freshDataDir(t)
  await ok(t, data, ['bucket', 'create', 'docs'])
  fs.writeFileSync(path.join(data, 'v1.txt'), 'version one\n')
  fs.writeFileSync(path.join(data, 'v2.txt'), 'version two, longer\n')
  await ok(t, data, ['put', 'v1.txt', 'docs/a/b/deep.txt'])
  await ok(t, data, ['put', 'v1.txt', 'docs/top.txt'])

  const top = rows((await ok(t, data, ['ls', 'docs'])).stdout)
  t.same(top, [['PRE', 'a/'], [top[1][0], '12', 'top.txt']], 'a delimiter groups a/ as a prefix')
  t.same(rows((await ok(t, data, ['ls', 'docs/a/'])).stdout), [['PRE', 'a/b/']])
  t.same(rows((await ok(t, data, ['ls', '--recursive', 'docs'])).stdout).map(r => r.slice(1)), [['12', 'a/b/deep.txt'], ['12', 'top.txt']])

  t.equal((await ok(t, data, ['versioning', 'docs'])).stdout, 'Unversioned\n')
  t.equal((await ok(t, data, ['versioning', 'docs', 'enable'])).stdout, 'Enabled\n')
  t.equal((await ok(t, data, ['versioning', 'docs', 'status'])).stdout, 'Enabled\n')
  const put2 = (await ok(t, data, ['put', 'v2.txt', 'docs/top.txt'])).stdout
  const v2 = /version (\S+)/.exec(put2)?.[1] ?? ''
  t.not(v2, 'null', 'a versioned put gets a real version id')

  t.same(rows((await ok(t, data, ['ls', 'docs/top'])).stdout).map(r => r.slice(1)), [['20', 'top.txt']], 'ls shows only the latest')
  let versions = rows((await ok(t, data, ['ls', '--versions', 'docs/top'])).stdout)
  t.same(versions.map(r => r.slice(1)), [['20', v2, 'latest', 'top.txt'], ['12', 'null', '-', 'top.txt']], 'newest first, with ids')

  const rm = await ok(t, data, ['rm', 'docs/top.txt'])
  t.match(rm.stdout, /delete marker (\S+) added/)
  const marker = /delete marker (\S+)/.exec(rm.stdout)?.[1] ?? ''
  t.same(rows((await ok(t, data, ['ls', 'docs'])).stdout), [['PRE', 'a/']], 'a deleted key is not listed')
  versions = rows((await ok(t, data, ['ls', '--versions', 'docs/top'])).stdout)
  t.same(versions.map(r => r.slice(1)), [
    ['-', marker, 'latest,delete-marker', 'top.txt'],
    ['20', v2, '-', 'top.txt'],
    ['12', 'null', '-', 'top.txt']
  ], 'the delete marker is the latest version')
  t.equal((await cli(data, ['get', 'docs/top.txt', '-'])).code, 3, 'get of a deleted key: exit 3')
  t.equal((await cli(data, ['rm', 'docs/top.txt'])).code, 3, 'rm of a deleted key: exit 3')
  t.equal((await ok(t, data, ['get', 'docs/top.txt', '-', '--version-id', v2])).stdout, 'version two, longer\n', 'old versions stay readable')

  const restored = await ok(t, data, ['restore', 'docs/top.txt', '--version', 'null'])
  t.match(restored.stdout, /restored docs\/top\.txt from version null as version \S+/)
  t.equal((await ok(t, data, ['get', 'docs/top.txt', '-'])).stdout, 'version one\n', 'restore brings back the old bytes')
  t.equal(rows((await ok(t, data, ['ls', '--versions', 'docs/top'])).stdout).length, 4, 'restore adds a version')
  t.equal((await cli(data, ['restore', 'docs/top.txt', '--version', 'no-such-version'])).code, 3, 'restore of an unknown version: exit 3')

  const removed = await ok(t, data, ['rm', 'docs/top.txt', '--version-id', v2])
  t.match(removed.stdout, new RegExp(`removed version ${v2} of docs/top\\.txt`))
  t.equal((await cli(data, ['get', 'docs/top.txt', '-', '--version-id', v2])).code, 3, 'a removed version is gone')

  t.equal((await ok(t, data, ['versioning', 'docs', 'suspend'])).stdout, 'Suspended\n')
  t.equal((await cli(data, ['versioning', 'nobucket'])).code, 3)
})

t.test('uploads ls and abort', async t => {
  const data = freshDataDir(t)
  await ok(t, data, ['bucket', 'create', 'uploads-test'])
  const s = Store.open(data)
  let uploadId: string
  try {
    uploadId = s.createMultipartUpload('uploads-test', 'big/file.bin').uploadId
    await s.uploadPart(uploadId, 1, crypto.randomBytes(5 * MiB))
    await s.uploadPart(uploadId, 2, Buffer.from('tail'))
  } finally {
    s.close()
  }
  const list = rows((await ok(t, data, ['uploads', 'ls'])).stdout)
  t.same(list.map(r => r.slice(1)), [[uploadId, 'client', '2', String(5 * MiB + 4), 'uploads-test/big/file.bin']])
  t.same(rows((await ok(t, data, ['uploads', 'ls', 'uploads-test'])).stdout).length, 1)

  const fsck = await ok(t, data, ['fsck'])
  t.match(fsck.stdout, /uploads in progress: 1\n {2}\S+ {2}client {2}uploads-test\/big\/file\.bin/, 'fsck reports the upload')
  t.equal((await cli(data, ['bucket', 'rm', 'uploads-test'])).code, 4, 'an upload keeps the bucket non-empty')

  t.match((await ok(t, data, ['uploads', 'abort', uploadId])).stdout, /aborted upload/)
  t.equal((await ok(t, data, ['uploads', 'ls'])).stdout, '')
  t.equal((await cli(data, ['uploads', 'abort', uploadId])).code, 3, 'abort of an unknown upload: exit 3')
})

t.test('fsck: clean, then a missing chunk', async t => {
  const data = freshDataDir(t)
  await ok(t, data, ['bucket', 'create', 'chk'])
  const { file } = randomFile(data, 'one.bin', 3 * MiB)
  await ok(t, data, ['put', file, 'chk/one.bin'])

  const clean = await ok(t, data, ['fsck'])
  t.match(clean.stdout, /missing chunks: none/)
  t.match(clean.stdout, /store is clean\n$/)
  t.equal((await ok(t, data, ['fsck', '--deep'])).code, 0)

  const chunks = filesUnder(path.join(data, 'chunks'))
  t.ok(chunks.length > 0, 'a 3 MiB object has chunk files under <data>/chunks')
  const victim = chunks[0]
  fs.rmSync(victim)
  const broken = await cli(data, ['fsck'])
  t.equal(broken.code, 1, 'problems found: exit 1')
  t.match(broken.stdout, /missing chunks: 1\n/)
  t.ok(broken.stdout.includes(path.basename(victim)), 'the report names the missing chunk', { stdout: broken.stdout, victim })
  t.match(broken.stdout, /PROBLEMS FOUND/)
})

t.test('gc and stats --json show dedup', async t => {
  const data = freshDataDir(t)
  await ok(t, data, ['bucket', 'create', 'dedup'])
  const { file } = randomFile(data, 'ten.bin', 10 * MiB)
  await ok(t, data, ['put', file, 'dedup/one.bin'])
  await ok(t, data, ['put', file, 'dedup/two.bin'])

  const stats = JSON.parse((await ok(t, data, ['stats', '--json'])).stdout) as Record<string, number>
  t.match(stats, { buckets: 1, objects: 2, versions: 2, deleteMarkers: 0, uploads: 0, logicalBytes: 20 * MiB })
  t.ok(stats.storedBytes >= 10 * MiB && stats.storedBytes < 10.5 * MiB, `stored bytes about half of logical (${stats.storedBytes})`)
  t.ok(stats.dedupRatio > 1.9 && stats.dedupRatio <= 2, `dedup ratio about 2 (${stats.dedupRatio})`)
  t.ok(stats.chunks > 0)
  const human = (await ok(t, data, ['stats'])).stdout
  t.match(human, /logical bytes +20971520 \(20\.0 MiB\)/)
  t.match(human, /dedup ratio +\d\.\d\d/)

  t.match((await ok(t, data, ['gc'])).stdout, /^removed 0 chunks, freed 0 bytes/, 'nothing to collect while both keys share the chunks')
  await ok(t, data, ['rm', 'dedup/one.bin'])
  t.match((await ok(t, data, ['gc'])).stdout, /^removed 0 chunks/, 'the other key still holds them')
  await ok(t, data, ['rm', 'dedup/two.bin'])
  const gc = (await ok(t, data, ['gc'])).stdout
  t.match(gc, /^removed [1-9]\d* chunks, freed \d+ bytes/, 'gc frees chunks nothing references')
  const after = JSON.parse((await ok(t, data, ['stats', '--json'])).stdout) as Record<string, number>
  t.match(after, { objects: 0, logicalBytes: 0, storedBytes: 0 })
  t.same(filesUnder(path.join(data, 'chunks')), [], 'no chunk file left')
  await ok(t, data, ['fsck'])
})
