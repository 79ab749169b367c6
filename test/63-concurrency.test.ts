// Concurrent access through a real FUSE mount (SPEC §2, write path): all handles
// of one key share one write session, so appends from two processes all land,
// readers see a writer's data (and size) before it closes, two writers' disjoint
// ranges both survive, and random overwrites of a big file are exact, also after
// a remount. Needs the built daemon (`npm run build`) and /dev/fuse.
import t from 'tap'
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import readline from 'node:readline'
import { withMount, remount, BIN } from './helpers/mount'
import { run, runAsync, sha256, sha256File, Prng, KiB, MiB, scratchDir, sleep } from './helpers/e2e'

process.umask(0o022)

/**
 * A child process that runs one fs command per stdin line and answers each with
 * one stdout line ("ok …" or "err CODE"), so a test can interleave what two
 * processes do on the same file exactly.
 */
const AGENT = `
const fs = require('fs')
const readline = require('readline')
const fds = new Map()
const pattern = (seed, len) => { const b = Buffer.alloc(len); let s = seed >>> 0; for (let i = 0; i < len; i++) { s = (Math.imul(s, 1103515245) + 12345) >>> 0; b[i] = s >>> 24 } return b }
readline.createInterface({ input: process.stdin }).on('line', line => {
  const [cmd, ...a] = line.split(' ')
  try {
    if (cmd === 'open') { fds.set(a[0], fs.openSync(a[1], a[2])); console.log('ok') }
    else if (cmd === 'write') { const [name, seed, off, len] = [a[0], +a[1], +a[2], +a[3]]; const n = fs.writeSync(fds.get(name), pattern(seed, len), 0, len, off); console.log('ok ' + n) }
    else if (cmd === 'read') { const [name, off, len] = [a[0], +a[1], +a[2]]; const b = Buffer.alloc(len); const n = fs.readSync(fds.get(name), b, 0, len, off); console.log('ok ' + n + ' ' + require('crypto').createHash('sha256').update(b.subarray(0, n)).digest('hex')) }
    else if (cmd === 'size') { console.log('ok ' + fs.fstatSync(fds.get(a[0])).size + ' ' + fs.statSync(a[1]).size) }
    else if (cmd === 'randfill') { const [name, seed, count, lo, hi, size] = a.slice(0, 1).concat(a.slice(1).map(Number)); let s = seed >>> 0; for (let i = 0; i < count; i++) { s = (Math.imul(s, 1664525) + 1013904223) >>> 0; const off = lo + (s % (hi - lo - size + 1)); fs.writeSync(fds.get(name), pattern(seed + i, size), 0, size, off) } console.log('ok') }
    else if (cmd === 'fsync') { fs.fsyncSync(fds.get(a[0])); console.log('ok') }
    else if (cmd === 'close') { fs.closeSync(fds.get(a[0])); fds.delete(a[0]); console.log('ok') }
    else if (cmd === 'exit') { console.log('ok'); process.exit(0) }
    else console.log('err unknown command ' + cmd)
  } catch (e) { console.log('err ' + (e.code || e.message)) }
})
`

/** The bytes the agent writes for `write <fd> seed off len`. */
function pattern (seed: number, len: number): Buffer {
  const b = Buffer.alloc(len)
  let s = seed >>> 0
  for (let i = 0; i < len; i++) { s = (Math.imul(s, 1103515245) + 12345) >>> 0; b[i] = s >>> 24 }
  return b
}

/** Applies the agent's `randfill name seed count lo hi size` to a buffer. */
function randfill (buf: Buffer, seed: number, count: number, lo: number, hi: number, size: number): void {
  let s = seed >>> 0
  for (let i = 0; i < count; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0
    pattern(seed + i, size).copy(buf, lo + (s % (hi - lo - size + 1)))
  }
}

class Agent {
  private readonly child: ChildProcessWithoutNullStreams
  private readonly answers: string[] = []
  private waiting: ((line: string) => void) | undefined
  stderr = ''

  constructor (t: tap.Test) {
    this.child = spawn(process.execPath, ['-e', AGENT], { stdio: ['pipe', 'pipe', 'pipe'] })
    this.child.stderr.on('data', (d: Buffer) => { this.stderr += d.toString() })
    readline.createInterface({ input: this.child.stdout }).on('line', line => {
      const w = this.waiting
      if (w !== undefined) { this.waiting = undefined; w(line) } else this.answers.push(line)
    })
    const pid = this.child.pid
    t.teardown(() => { if (this.child.exitCode === null && pid !== undefined) process.kill(pid, 'SIGKILL') })
  }

  async do (line: string): Promise<string> {
    this.child.stdin.write(line + '\n')
    const early = this.answers.shift()
    if (early !== undefined) return early
    return await new Promise(resolve => { this.waiting = resolve })
  }

  async exit (): Promise<void> {
    if (this.child.exitCode !== null) return
    const exited = new Promise(resolve => this.child.on('exit', resolve))
    this.child.stdin.write('exit\n')
    await exited
  }
}

t.test('concurrent access on a mounted store', async t => {
  await withMount(t, async (mnt, dataDir) => {
    const b = path.join(mnt, 'concurrency-63')
    fs.mkdirSync(b)
    const p = (...parts: string[]): string => path.join(b, ...parts)

    await t.test('three processes appending to one file at once, a fourth reading', async t => {
      const f = p('appends.log')
      const pad = 'x'.repeat(100)
      const loop = (tag: string): string => `for i in $(seq 500); do echo "${tag} $i ${pad}" >> '${f}'; done`
      const line = /^[ABC] \d+ x{100}$/
      const started = Date.now()
      let running = true
      const writers = Promise.all(['A', 'B', 'C'].map(async tag => await runAsync('sh', ['-c', loop(tag)])))
        .finally(() => { running = false })
      // Meanwhile: every read sees whole lines (but maybe the last) and a size that never shrinks.
      let reads = 0
      let torn = 0
      let tornExample: object | undefined
      let shrank = 0
      let last = 0
      while (running) {
        let text = ''
        try { text = fs.readFileSync(f, 'utf8') } catch (err) { if ((err as { code?: string }).code !== 'ENOENT') throw err }
        if (text.length < last) shrank++
        last = text.length
        const complete = text.split('\n').slice(0, -1)
        const bad = complete.findIndex(l => !line.test(l))
        if (bad >= 0) {
          torn++
          if (tornExample === undefined) tornExample = { read: reads, length: text.length, line: bad, text: JSON.stringify(complete.slice(Math.max(0, bad - 1), bad + 2)) }
        }
        reads++
        await new Promise(resolve => setImmediate(resolve))
      }
      const results = await writers
      t.comment(`1,500 appends from three processes took ${Date.now() - started} ms, with ${reads} reads meanwhile`)
      for (const [i, r] of results.entries()) t.equal(r.status, 0, `writer ${'ABC'[i]} succeeded`, { stderr: r.stderr })
      t.equal(torn, 0, 'a concurrent reader never saw a torn or mixed line', { reads, example: tornExample })
      t.equal(shrank, 0, 'nor the file shrink')
      const text = fs.readFileSync(f, 'utf8')
      const lines = text.split('\n')
      t.equal(lines.pop(), '', 'the file ends with a newline')
      t.equal(lines.length, 1500, '1,500 lines')
      t.same(lines.filter(l => !line.test(l)), [], 'no line is interleaved with another')
      for (const tag of ['A', 'B', 'C']) {
        const mine = lines.filter(l => l.startsWith(tag + ' ')).map(l => Number(l.split(' ')[1]))
        t.same(mine, Array.from({ length: 500 }, (_, i) => i + 1), `every line of ${tag} is there once, in order`)
      }
      t.equal(fs.statSync(f).size, Buffer.byteLength(text), 'stat agrees with the content')
    })

    await t.test('a reader sees a writer\'s data and size before it closes', async t => {
      const f = p('growing.bin')
      const writer = new Agent(t)
      t.equal(await writer.do(`open w ${f} a`), 'ok', 'the writer opens (creates) the file for appending')
      const early = fs.openSync(f, 'r') // opened while the file is empty
      const reader = new Agent(t)
      t.equal(await reader.do(`open r ${f} r`), 'ok', 'a reader process opens it too')
      let readerWrong = 0
      const block = 64 * KiB
      const blocks = 60
      const sizes: number[] = []
      let wrong = 0
      for (let i = 0; i < blocks; i++) {
        // O_APPEND: the position (0) is ignored, each block goes at the end.
        t.equal(await writer.do(`write w ${i + 1} 0 ${block}`), `ok ${block}`, `append of block ${i}`, { stderr: writer.stderr })
        const seen = await reader.do(`read r ${i * block} ${block}`)
        if (seen !== `ok ${block} ${sha256(pattern(i + 1, block))}`) readerWrong++
        const sizes2 = await reader.do(`size r ${f}`)
        if (sizes2 !== `ok ${(i + 1) * block} ${(i + 1) * block}`) readerWrong++
        const size = fs.statSync(f).size
        sizes.push(size)
        // The block just written, through the fd opened at the start and through a new one.
        const got = Buffer.alloc(block)
        const n = fs.readSync(early, got, 0, block, i * block)
        if (n !== block || !got.equals(pattern(i + 1, block))) wrong++
        if (i % 10 === 9) {
          const fresh = fs.readFileSync(f)
          const want = Buffer.concat(Array.from({ length: i + 1 }, (_, j) => pattern(j + 1, block)))
          t.equal(fresh.length, want.length, `a new open after ${i + 1} blocks sees them all`)
          t.ok(fresh.equals(want), `with the right bytes after ${i + 1} blocks`)
        }
      }
      t.same(sizes, Array.from({ length: blocks }, (_, i) => (i + 1) * block), 'stat saw the size grow with every write')
      t.equal(wrong, 0, 'the early reader read every block right as it was written')
      t.equal(readerWrong, 0, 'so did the reader process, and its fstat and stat saw the size grow')
      // The writer fsyncs, then overwrites the start: readers see that too.
      t.equal(await writer.do('fsync w'), 'ok')
      t.equal(await writer.do(`write w 999 0 ${block}`), `ok ${block}`)
      const tail = Buffer.alloc(block)
      fs.readSync(early, tail, 0, block, blocks * block)
      t.ok(tail.equals(pattern(999, block)), 'an append after fsync is seen by the reader')
      t.equal(await reader.do(`read r ${blocks * block} ${block}`), `ok ${block} ${sha256(pattern(999, block))}`, 'and by the reader process')
      t.equal(await writer.do('close w'), 'ok', 'the writer closes')
      fs.closeSync(early)
      t.equal(await reader.do('close r'), 'ok')
      await writer.exit()
      await reader.exit()
      const want = Buffer.concat([...Array.from({ length: blocks }, (_, j) => pattern(j + 1, block)), pattern(999, block)])
      t.equal(sha256File(f), sha256(want), 'the closed file has everything')
    })

    await t.test('two fds in one process write disjoint ranges', async t => {
      const f = p('two-fds.bin')
      const a = pattern(11, MiB)
      const c = pattern(22, MiB)
      const fd1 = fs.openSync(f, 'w')
      const fd2 = fs.openSync(f, 'r+')
      fs.writeSync(fd1, a, 0, a.length, 0)
      fs.writeSync(fd2, c, 0, c.length, 2 * MiB)
      fs.closeSync(fd1)
      t.equal(fs.statSync(f).size, 3 * MiB, 'after the first close, the size includes the second fd\'s range')
      fs.closeSync(fd2)
      const want = Buffer.concat([a, Buffer.alloc(MiB), c])
      t.equal(sha256File(f), sha256(want), 'both ranges are there, the gap is zeros')
    })

    await t.test('two processes write disjoint ranges of an existing file', async t => {
      const f = p('two-writers.bin')
      const base = new Prng(63).bytes(4 * MiB)
      fs.writeFileSync(f, base)
      for (const closeFirst of ['A', 'B']) {
        const A = new Agent(t)
        const B = new Agent(t)
        t.equal(await A.do(`open x ${f} r+`), 'ok')
        t.equal(await B.do(`open x ${f} r+`), 'ok')
        const seedA = closeFirst === 'A' ? 101 : 201
        const seedB = closeFirst === 'A' ? 102 : 202
        // Interleaved: A, B, A, B… in 256 KiB pieces over [0, 1 MiB) and [2 MiB, 3 MiB).
        for (let off = 0; off < MiB; off += 256 * KiB) {
          t.equal(await A.do(`write x ${seedA + off} ${off} ${256 * KiB}`), `ok ${256 * KiB}`)
          t.equal(await B.do(`write x ${seedB + off} ${2 * MiB + off} ${256 * KiB}`), `ok ${256 * KiB}`)
        }
        const [first, second] = closeFirst === 'A' ? [A, B] : [B, A]
        t.equal(await first.do('close x'), 'ok', `${closeFirst} closes first`)
        t.equal(await second.do('close x'), 'ok', 'then the other')
        await A.exit()
        await B.exit()
        for (let off = 0; off < MiB; off += 256 * KiB) {
          pattern(seedA + off, 256 * KiB).copy(base, off)
          pattern(seedB + off, 256 * KiB).copy(base, 2 * MiB + off)
        }
        t.equal(sha256File(f), sha256(base), `both writers' ranges are there (${closeFirst} closed first), the rest untouched`)
      }
    })

    await t.test('two processes writing random blocks in disjoint halves at the same time', async t => {
      const f = p('halves.bin')
      const size = 16 * MiB
      const want = new Prng(6363).bytes(size)
      fs.writeFileSync(f, want)
      const A = new Agent(t)
      const B = new Agent(t)
      t.equal(await A.do(`open x ${f} r+`), 'ok')
      t.equal(await B.do(`open x ${f} r+`), 'ok')
      const [ra, rb] = await Promise.all([
        A.do(`randfill x 1000 800 0 ${size / 2} 4096`),
        B.do(`randfill x 2000 800 ${size / 2} ${size} 4096`)
      ])
      t.equal(ra, 'ok', 'A wrote 800 blocks in the first half', { stderr: A.stderr })
      t.equal(rb, 'ok', 'B wrote 800 blocks in the second half', { stderr: B.stderr })
      randfill(want, 1000, 800, 0, size / 2, 4096)
      randfill(want, 2000, 800, size / 2, size, 4096)
      t.equal(sha256File(f), sha256(want), 'while both are open, a reader sees both')
      await Promise.all([A.do('close x'), B.do('close x')])
      await A.exit()
      await B.exit()
      t.equal(sha256File(f), sha256(want), 'after both close at once, both halves are there')
    })

    await t.test('a file replaced by rename while held open never disappears for a reader', async t => {
      // What editors and office programs do: keep the document open, write a temp
      // file, rename it over the document. Another process reading the document by
      // name must always find it (rename is atomic).
      const f = p('held.txt')
      const tmp = p('held.txt.tmp')
      fs.writeFileSync(f, 'version 0\n')
      let hold = fs.openSync(f, 'r')
      const reader = runAsync('sh', ['-c', `n=0; for i in $(seq 1500); do cat '${f}' > /dev/null 2>&1 || n=$((n+1)); done; echo $n`])
      let done = false
      void reader.then(() => { done = true })
      let saves = 0
      while (!done) {
        fs.writeFileSync(tmp, `version ${++saves}\n`)
        fs.renameSync(tmp, f)
        fs.closeSync(hold)
        hold = fs.openSync(f, 'r')
        await new Promise(resolve => setImmediate(resolve))
      }
      fs.closeSync(hold)
      const r = await reader
      t.ok(saves > 20, 'the saves overlapped the reads', { saves })
      // Known limitation (docs/SEMANTICS.md): libfuse 2 hides a held-open file before the rename
      // replaces it, and a lookup that falls between the two steps gets ENOENT (a few in a thousand).
      t.equal(r.stdout.trim(), '0', 'no read by name failed during the saves',
        { failedReads: r.stdout.trim(), of: 1500, saves, stderr: r.stderr, todo: 'libfuse 2 hide-then-rename window' })
      t.equal(fs.readFileSync(f, 'utf8'), `version ${saves}\n`, 'the last save is the content')
      t.same(fs.readdirSync(b).filter(n => n.startsWith('held') || n.startsWith('.fuse_hidden')), ['held.txt'], 'no temp or hidden file is left')
    })

    await t.test('a writer that closes first does not lose a later writer\'s data', async t => {
      const f = p('late-writer.bin')
      fs.writeFileSync(f, Buffer.alloc(2 * MiB, 0x2e))
      const A = new Agent(t)
      const B = new Agent(t)
      t.equal(await A.do(`open x ${f} r+`), 'ok')
      t.equal(await B.do(`open x ${f} r+`), 'ok')
      t.equal(await A.do(`write x 1 0 ${64 * KiB}`), `ok ${64 * KiB}`)
      t.equal(await A.do('close x'), 'ok', 'A writes and closes: a version with A\'s data')
      const afterA = fs.readFileSync(f)
      t.ok(afterA.subarray(0, 64 * KiB).equals(pattern(1, 64 * KiB)), 'A\'s data is visible after A closes')
      t.equal(await B.do(`write x 2 ${MiB} ${64 * KiB}`), `ok ${64 * KiB}`)
      t.equal(await B.do(`write x 3 ${2 * MiB} ${64 * KiB}`), `ok ${64 * KiB}`)
      t.equal(await B.do('close x'), 'ok', 'B writes after that, extends the file, and closes')
      await A.exit()
      await B.exit()
      const want = Buffer.alloc(2 * MiB + 64 * KiB, 0x2e)
      pattern(1, 64 * KiB).copy(want, 0)
      pattern(2, 64 * KiB).copy(want, MiB)
      pattern(3, 64 * KiB).copy(want, 2 * MiB)
      t.equal(sha256File(f), sha256(want), 'A\'s and B\'s writes are both there')
    })

    await t.test('a file the CLI replaces while mounted shows its new bytes at the next open, not cached pages', async t => {
      const f = p('cli-replaced.txt')
      fs.writeFileSync(f, 'A'.repeat(10000))
      t.equal(fs.readFileSync(f, 'utf8'), 'A'.repeat(10000), 'read once through the mount: the kernel caches its pages')
      const src = path.join(scratchDir(t, 'cli'), 'b.txt')
      fs.writeFileSync(src, 'B'.repeat(10000))
      const put = run(process.execPath, [BIN, 'put', src, 'concurrency-63/cli-replaced.txt', '--data', dataDir])
      t.equal(put.status, 0, 'bucketfs put of the same key, same size', { stderr: put.stderr })
      await sleep(1100) // the kernel's 1 s attribute cache
      t.equal(fs.readFileSync(f, 'utf8'), 'B'.repeat(10000), 'the next open reads the CLI\'s bytes')
    })
  })
})

t.test('2,000 random 4 KiB overwrites in a 64 MiB file, before and after a remount', async t => {
  const mirror = path.join(scratchDir(t), 'mirror.bin')
  const rng = new Prng(0x63)
  const SIZE = 64 * MiB
  let expected = ''
  await remount(t, async (mnt) => {
    const b = path.join(mnt, 'overwrite-63')
    fs.mkdirSync(b)
    const f = path.join(b, 'big.bin')
    // The initial content, written through the mount and mirrored.
    const mfd = fs.openSync(mirror, 'w+')
    let fd = fs.openSync(f, 'w')
    for (let off = 0; off < SIZE; off += MiB) {
      const piece = rng.bytes(MiB)
      fs.writeSync(fd, piece, 0, MiB, off)
      fs.writeSync(mfd, piece, 0, MiB, off)
    }
    fs.closeSync(fd)
    t.equal(sha256File(f), sha256File(mirror), 'the 64 MiB file as first written')
    const started = Date.now()
    fd = fs.openSync(f, 'r+')
    const rfd = fs.openSync(f, 'r')
    let badReads = 0
    const buf = Buffer.alloc(4 * KiB)
    for (let i = 0; i < 2000; i++) {
      const off = rng.int(SIZE - buf.length + 1)
      for (let j = 0; j < buf.length; j += 4) buf.writeUInt32LE(rng.next(), j)
      fs.writeSync(fd, buf, 0, buf.length, off)
      fs.writeSync(mfd, buf, 0, buf.length, off)
      if (i % 100 === 50) {
        const at = rng.int(SIZE - 64 * KiB)
        const got = Buffer.alloc(64 * KiB)
        const want = Buffer.alloc(64 * KiB)
        fs.readSync(rfd, got, 0, got.length, at)
        fs.readSync(mfd, want, 0, want.length, at)
        if (!got.equals(want)) badReads++
      }
      if (i === 999) {
        t.equal(sha256File(f), sha256File(mirror), 'after 1,000 overwrites, a reader sees them all (file still open)')
      }
    }
    fs.closeSync(fd)
    fs.closeSync(rfd)
    fs.closeSync(mfd)
    t.equal(badReads, 0, 'reads through a second fd between the writes matched the mirror')
    t.comment(`2,000 random overwrites took ${Date.now() - started} ms`)
    expected = sha256File(mirror)
    t.equal(fs.statSync(f).size, SIZE, 'the size is unchanged')
    t.equal(sha256File(f), expected, 'after close: the same sha256 as the mirror')
  }, async (mnt) => {
    const f = path.join(mnt, 'overwrite-63', 'big.bin')
    t.equal(fs.statSync(f).size, SIZE, 'after remount: the size')
    t.equal(sha256File(f), expected, 'after remount: the same sha256 as the mirror')
  })
})
