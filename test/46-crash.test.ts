// Crash safety: a child process writing a big object is killed with SIGKILL at
// several moments. Afterwards the store opens, fsck --deep finds no damage, the
// key is absent or whole (never partial), and gc leaves fsck clean. (SPEC §3:
// chunks are fsynced and renamed into place before metadata naming them commits;
// every state change is one transaction.)
// The child (test/fixtures/crash-child.js) runs the built store: `npm run build` first.
import t from 'tap'
import fs from 'node:fs'
import path from 'node:path'
import crypto from 'node:crypto'
import { spawn } from 'node:child_process'
import readline from 'node:readline'
import { Store } from '../src/store'
import { MiB } from './helpers/store'

const ROOT = path.resolve(__dirname, '..')
const CHILD = path.join(__dirname, 'fixtures', 'crash-child.js')
const BUILT = path.join(ROOT, 'dist', 'src', 'store', 'index.js')

/** MiB number i of the child's data (same function as in crash-child.js). */
function mib (i: number): Buffer {
  const iv = Buffer.alloc(16)
  iv.writeUInt32BE(i, 0)
  const c = crypto.createCipheriv('aes-128-ctr', Buffer.alloc(16, 0x5a), iv)
  return Buffer.concat([c.update(Buffer.alloc(MiB)), c.final()])
}

function expectedSha256 (mibs: number): string {
  const h = crypto.createHash('sha256')
  for (let i = 0; i < mibs; i++) h.update(mib(i))
  return h.digest('hex')
}

interface Run { lines: string[], signal: NodeJS.Signals | null, code: number | null, stderr: string }

/** Runs the child and SIGKILLs it `delayMs` after it prints a line equal to `killAt`. */
async function runAndKill (args: string[], killAt: string, delayMs: number): Promise<Run> {
  const child = spawn(process.execPath, [CHILD, ...args], { stdio: ['ignore', 'pipe', 'pipe'] })
  const lines: string[] = []
  let stderr = ''
  child.stderr.on('data', (d: Buffer) => { stderr += d.toString() })
  const rl = readline.createInterface({ input: child.stdout })
  rl.on('line', line => {
    lines.push(line)
    if (line === killAt) {
      if (delayMs === 0) child.kill('SIGKILL')
      else setTimeout(() => child.kill('SIGKILL'), delayMs)
    }
  })
  // A safety net: never let a child outlive the test.
  const guard = setTimeout(() => child.kill('SIGKILL'), 60_000)
  const [code, signal] = await new Promise<[number | null, NodeJS.Signals | null]>(resolve => {
    child.on('exit', (c, s) => { resolve([c, s]) })
  })
  clearTimeout(guard)
  return { lines, code, signal, stderr }
}

async function sha256Of (stream: AsyncIterable<Buffer>): Promise<[string, number]> {
  const h = crypto.createHash('sha256')
  let n = 0
  for await (const b of stream) { h.update(b); n += b.length }
  return [h.digest('hex'), n]
}

const PUT_MIB = 64
const PARTS = 4 // × 5 MiB
const putSha = expectedSha256(PUT_MIB)
const mpuSha = expectedSha256(PARTS * 5)

interface Scenario { name: string, args: (dir: string) => string[], killAt: string, delayMs: number, mibs: number, sha: string }
const scenarios: Scenario[] = [
  { name: 'put: killed after the first MiB', args: d => [d, 'put', String(PUT_MIB), '5'], killAt: 'chunk 1', delayMs: 0, mibs: PUT_MIB, sha: putSha },
  { name: 'put: killed in the middle', args: d => [d, 'put', String(PUT_MIB), '5'], killAt: 'chunk 40', delayMs: 0, mibs: PUT_MIB, sha: putSha },
  { name: 'put: killed as the stream ends', args: d => [d, 'put', String(PUT_MIB), '5'], killAt: 'streamed', delayMs: 0, mibs: PUT_MIB, sha: putSha },
  { name: 'put: killed while committing (+3 ms)', args: d => [d, 'put', String(PUT_MIB), '5'], killAt: 'streamed', delayMs: 3, mibs: PUT_MIB, sha: putSha },
  { name: 'put: killed while committing (+15 ms)', args: d => [d, 'put', String(PUT_MIB), '5'], killAt: 'streamed', delayMs: 15, mibs: PUT_MIB, sha: putSha },
  { name: 'put: killed after put returned (store not closed)', args: d => [d, 'put', String(PUT_MIB), '0'], killAt: 'done', delayMs: 0, mibs: PUT_MIB, sha: putSha },
  { name: 'multipart: killed between parts', args: d => [d, 'multipart', String(PARTS), '5'], killAt: 'part 2', delayMs: 0, mibs: PARTS * 5, sha: mpuSha },
  { name: 'multipart: killed during Complete', args: d => [d, 'multipart', String(PARTS), '0'], killAt: 'completing', delayMs: 0, mibs: PARTS * 5, sha: mpuSha },
  { name: 'multipart: killed after Complete returned', args: d => [d, 'multipart', String(PARTS), '0'], killAt: 'done', delayMs: 0, mibs: PARTS * 5, sha: mpuSha }
]

t.test('crash-child needs the built store', async t => {
  t.ok(fs.existsSync(BUILT), `${path.relative(ROOT, BUILT)} exists (run \`npm run build\` first)`)
})

for (const sc of scenarios) {
  t.test(sc.name, async t => {
    if (!fs.existsSync(BUILT)) {
      t.fail('dist/ is missing: run `npm run build` before this test')
      return
    }
    const dir = path.join(t.testdir(), 'data')
    const setup = Store.open(dir)
    setup.createBucket('crash', {})
    setup.close()

    const run = await runAndKill(sc.args(dir), sc.killAt, sc.delayMs)
    t.equal(run.signal, 'SIGKILL', 'the child was killed by SIGKILL', { stderr: run.stderr, lastLines: run.lines.slice(-3) })
    t.ok(run.lines.includes(sc.killAt), `the child reached "${sc.killAt}"`)
    const finished = run.lines.includes('done')
    t.comment(`child got to: ${run.lines[run.lines.length - 1]}${finished ? ' (operation returned)' : ''}`)

    let store: Store | undefined
    t.doesNotThrow(() => { store = Store.open(dir) }, 'Store.open works after the crash')
    if (store === undefined) return
    const s = store
    t.teardown(() => { s.close() })

    const report = await s.fsck({ deep: true })
    t.same(report.missingChunks, [], 'no referenced chunk is missing')
    t.same(report.corruptChunks, [], 'no chunk is corrupt')
    t.same(report.badRefcounts, [], 'reference counts are right')
    t.equal(report.clean, true, 'fsck --deep is clean', { orphanFiles: report.orphanFiles.length, repaired: report.repaired })

    const uploads = s.listMultipartUploads('crash')
    let present = false
    try {
      const r = s.readObject('crash', 'big.bin', {})
      const [sha, size] = await sha256Of(r.stream)
      present = true
      t.equal(size, sc.mibs * MiB, 'the key is whole: full size')
      t.equal(sha, sc.sha, 'the key is whole: exact bytes')
      t.equal(r.version.size, sc.mibs * MiB, 'its metadata says the full size')
    } catch (err) {
      t.equal((err as { code?: string }).code, 'NoSuchKey', 'or the key is absent')
    }
    if (finished) t.ok(present, 'an operation that returned before the kill is durable')
    t.comment(present ? 'outcome: key present and whole' : 'outcome: key absent')

    if (sc.args(dir)[1] === 'multipart') {
      if (present) {
        t.same(uploads, [], 'a completed upload is no longer in progress')
      } else {
        t.equal(uploads.length, 1, 'the interrupted upload is still in progress')
        t.same(report.uploadsInProgress.map(u => u.uploadId), uploads.map(u => u.uploadId), 'and fsck reports it')
        const parts = s.listParts(uploads[0].uploadId)
        t.ok(parts.every(p => p.size === 5 * MiB), 'every listed part is whole')
        if (run.lines.includes('completing')) {
          // Complete is atomic: interrupted, it left every part; completing now works.
          t.equal(parts.length, PARTS, 'all parts are still there')
          const v = await s.completeMultipartUpload(uploads[0].uploadId, parts.map(p => ({ partNumber: p.partNumber, etag: p.etag })))
          t.equal(v.size, sc.mibs * MiB, 'completing it after the crash works')
          const [sha] = await sha256Of(s.readObject('crash', 'big.bin', {}).stream)
          t.equal(sha, sc.sha, 'and gives the whole object')
        } else {
          s.abortMultipartUpload(uploads[0].uploadId)
        }
      }
    }

    const gc = s.gc({})
    t.comment(`gc removed ${gc.chunksRemoved} chunks, ${gc.orphanFilesRemoved} orphan files, ${gc.bytesFreed} bytes`)
    const after = await s.fsck({ deep: true })
    t.equal(after.clean, true, 'fsck --deep is clean after gc')
    t.same(after.orphanFiles, [], 'no orphan files after gc')
    if (present) {
      const [sha] = await sha256Of(s.readObject('crash', 'big.bin', {}).stream)
      t.equal(sha, sc.sha, 'the object still reads whole after gc')
    }
  })
}
