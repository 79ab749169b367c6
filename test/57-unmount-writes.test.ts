// An unmount while another process is still writing: every write that process was
// told was done is in the stored file, and the writes after those fail. The FUSE thread
// answers most writes itself and leaves them to JavaScript (fast-path.c, "staged"), so an
// unmount stops that before it applies the last of them and completes the file; from
// then on the vfs refuses writes (EROFS).
//
// The mount runs in this process (it can then be unmounted mid-write); the writer is a
// child process, so nothing of this one waits on the mount.
import t from 'tap'
import fsp from 'node:fs/promises'
import path from 'node:path'
import { spawn } from 'node:child_process'
import { mountInProcess } from './helpers/in-process'
import { Store } from '../src/store'
import { MiB } from './helpers/e2e'

const PIECE = 64 * 1024

/** Piece i of what the writer writes: its number, then a byte of its own. */
function piece (i: number): Buffer {
  const b = Buffer.alloc(PIECE, (i * 7 + 1) % 256)
  b.writeUInt32LE(i, 0)
  return b
}

// Writes pieces until a write fails; says "going" after `before` pieces, and at the end
// how many were written and why the next was not.
const WRITER = `
const fs = require('node:fs')
const [file, before] = [process.argv[1], Number(process.argv[2])]
const piece = ${piece.toString()}
const PIECE = ${PIECE}
const fd = fs.openSync(file, 'w')
let n = 0, why = 'none failed'
for (; n < 100000; n++) {
  try { fs.writeSync(fd, piece(n), 0, PIECE, n * PIECE) } catch (err) { why = err.code || String(err); break }
  if (n + 1 === before) process.stdout.write('going\\n')
}
try { fs.closeSync(fd) } catch {}
process.stdout.write(JSON.stringify({ written: n, why }) + '\\n')
`

t.test('writes going on through an unmount are stored, or fail', async t => {
  const { mnt, data, handle } = await mountInProcess(t, '57')
  await fsp.mkdir(path.join(mnt, 'bkt'))
  const child = spawn(process.execPath, ['-e', WRITER, path.join(mnt, 'bkt', 'busy'), String(4 * MiB / PIECE)], { stdio: ['ignore', 'pipe', 'inherit'] })
  let out = ''
  let unmounting: Promise<void> | undefined
  child.stdout.setEncoding('utf8')
  child.stdout.on('data', (s: string) => {
    out += s
    if (unmounting === undefined && out.includes('going\n')) unmounting = handle.unmount()
  })
  const code = await new Promise<number | null>(resolve => { child.on('exit', resolve) })
  t.equal(code, 0, 'the writer ended')
  t.ok(unmounting !== undefined, 'the unmount began while it wrote')
  await unmounting
  const result = JSON.parse(out.trim().split('\n').pop() ?? '{}') as { written: number, why: string }
  t.ok(result.written >= 4 * MiB / PIECE, `${result.written} writes of 64 KiB were done`)
  t.equal(result.why, 'EROFS', 'and the next one failed with EROFS')

  const store = Store.open(data)
  try {
    const { body } = await store.getObject('bkt', 'busy')
    t.equal(body.length, result.written * PIECE, 'the stored file holds every write the writer was told was done')
    let same = true
    for (let i = 0; i < result.written && same; i++) same = body.subarray(i * PIECE, (i + 1) * PIECE).equals(piece(i))
    t.ok(same, 'each as it was written')
  } finally {
    store.close()
  }
})
