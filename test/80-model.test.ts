// Model-based test of the mount (the short CI variant; scripts/model-long.ts runs
// many seeds × 2000 ops): seeded random create/write/append/truncate/rename/
// unlink/mkdir/rmdir/chmod/symlink/read sequences, files held open across
// unlinks and renames, clean remounts and SIGKILL crashes, applied with
// node:fs/promises to a local directory (the reference) and to a bucket on a
// real bucketfs mount, which must agree after every step on the op's result
// (errno included) and on the whole tree (names, types, sizes, content, modes).
import t from 'tap'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { execFileSync } from 'node:child_process'
import { withMount, type Mount } from './helpers/mount'
import { runModel, reproduction, syncDir, DELIBERATE_DIFFERENCES } from './helpers/model'
import { sleep } from './helpers/e2e'

const SEEDS = [1, 2, 3]
const OPS = 150

/** Until the mount answers a readdir (stat may be answered from the kernel's cache of a dead mount). */
async function answering (mnt: string): Promise<void> {
  for (const deadline = Date.now() + 30_000; ;) {
    try { await fs.promises.readdir(mnt); return } catch (err) {
      if (Date.now() > deadline) throw err
      await sleep(50)
    }
  }
}

t.test('random operations: the mount agrees with a local directory', async t => {
  for (const d of DELIBERATE_DIFFERENCES) t.comment(`filtered out as a deliberate difference from POSIX: ${d.why}`)
  // A 2 MiB write budget, so the model's bigger writes also go through flushed parts.
  // A private temp dir, not t.testdir(): that path is shared by every run of this file, and a
  // concurrent run would wipe it.
  const refs = fs.mkdtempSync(path.join(os.tmpdir(), 'bucketfs-model-ref-'))
  t.teardown(() => { fs.rmSync(refs, { recursive: true, force: true }) })
  await withMount(t, async (mnt, _dataDir, m: Mount) => {
    const restarts = { remount: 0, crash: 0 }
    for (const seed of SEEDS) {
      const bucket = path.join(mnt, `model-${seed}`)
      await fs.promises.mkdir(bucket)
      // Odd seeds in a versioned bucket: versions must not change what the tree shows.
      if (seed % 2 === 1) execFileSync('setfattr', ['-n', 'user.s3.versioning', '-v', 'Enabled', bucket])
      const r = await runModel({
        ref: path.join(refs, `ref-${seed}`),
        sut: bucket,
        seed,
        ops: OPS,
        restart: async how => {
          if (how === 'crash') {
            // The namespace changes just answered commit on their own within 5 ms
            // (docs/SEMANTICS.md, "Group commits"); the kill comes after that.
            await sleep(50)
            await m.killDaemon()
            await m.start()
          } else {
            t.equal(await m.remount(), 0, 'the daemon exits 0 at a remount')
          }
          await answering(mnt)
          restarts[how]++
        }
      })
      const first = r.mismatches[0]
      if (first === undefined) {
        t.equal(r.steps + r.skipped, OPS, `seed ${seed}: ${r.steps} ops, the mount agrees with the reference at every step`)
      } else {
        t.fail(`seed ${seed}: the mount differs from the reference (${first.kind}) after step ${first.step}: ${first.op}`,
          { details: first.details, daemonLog: m.log().slice(-3000) })
        t.comment(reproduction(r)) // rerun: node dist/scripts/model-long.js --seed <seed>
      }
    }
    t.comment(`restarts: ${restarts.remount} clean, ${restarts.crash} SIGKILL`)
  }, { args: ['--write-budget', '2'] })
})

// The model's crash-open op, made deterministic: a file open in one process is removed
// (rm returns), closed (close returns), and the daemon is killed: the removal is there at
// the next mount once its group of changes committed (docs/SEMANTICS.md, "Group
// commits"): at an fsync of the directory, or on its own within 5 ms. Recovery must not
// bring the file's upload back either way.
for (const [how, settle] of [
  ['the directory is fsynced', syncDir],
  ['50 ms pass', async () => { await sleep(50) }]
] as const) {
  t.test(`a removed file that was open stays removed after a crash, once ${how}`, async t => {
    await withMount(t, async (mnt, _dataDir, m: Mount) => {
      const bucket = path.join(mnt, 'crash')
      await fs.promises.mkdir(bucket)
      const rounds = 5
      const back: string[] = []
      for (let i = 0; i < rounds; i++) {
        const f = path.join(bucket, `f${i}`)
        await fs.promises.writeFile(f, 'content')
        const fh = await fs.promises.open(f, 'r')
        await fs.promises.unlink(f)
        await fh.close()
        await settle(bucket)
        await m.killDaemon()
        await m.start()
        await answering(mnt)
        if ((await fs.promises.readdir(bucket)).includes(`f${i}`)) back.push(`f${i}`)
      }
      t.same(back, [], `none of ${rounds} removed files came back`)
    })
  })
}
