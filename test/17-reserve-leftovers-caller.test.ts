// Small parts of issue 6's machinery, without a mount: the free-space reserve, the
// retried store cleanups, and turning a FUSE caller's thread id into its process.
import t from 'tap'
import fs from 'node:fs'
import { Worker } from 'node:worker_threads'
import { SpaceReserve, reserveFor } from '../src/blob/space'
import { Leftovers } from '../src/vfs/leftovers'
import { processOf } from '../src/mount/caller'
import { isBucketfsError } from '../src/errors'

const MiB = 1024 * 1024

t.test('the reserve is 1% of the disk, at least 8 MiB and at most 1 GiB', async t => {
  t.equal(reserveFor(64 * MiB), 8 * MiB, 'a 64 MiB tmpfs keeps 8 MiB')
  t.equal(reserveFor(100 * 1024 * MiB), 1024 * MiB, 'a 100 GiB disk keeps 1 GiB')
  t.equal(reserveFor(50 * 1024 * MiB), 512 * MiB, 'a 50 GiB disk keeps 1%')
})

t.test('a claim that would eat into the reserve is NoSpace; statfs shows the reserve as used', async t => {
  const dir = t.testdir()
  const space = new SpaceReserve(dir)
  const s = fs.statfsSync(dir)
  const free = s.bavail * s.bsize
  await space.claim(MiB)
  const shown = await space.statfs()
  t.ok(shown.bavail * shown.bsize <= free - reserveFor(s.blocks * s.bsize) + 64 * MiB, 'statfs: free space less the reserve')
  let err: unknown
  try { await space.claim(free) } catch (e) { err = e }
  t.ok(isBucketfsError(err, 'NoSpace'), 'claiming all the free space fails with NoSpace', { err })
})

t.test('cleanups: run now when they can, else retried in order until they succeed', async t => {
  const l = new Leftovers()
  const done: string[] = []
  l.tidy(() => { done.push('a') })
  t.same(done, ['a'], 'a cleanup that works runs at once')
  let failures = 2
  l.tidy(() => { if (failures-- > 0) throw new Error('disk full'); done.push('b') })
  l.later(() => { done.push('c') })
  t.same(done, ['a'], 'a failing cleanup waits, and what comes after it waits behind it')
  l.retry()
  t.same(done, ['a'], 'still failing')
  l.retry()
  t.same(done, ['a', 'b', 'c'], 'once it works, the rest follow in order')
  await new Promise(resolve => setTimeout(resolve, 1100))
  t.same(done, ['a', 'b', 'c'], 'and nothing runs twice')
})

t.test('a thread id is turned into its process id', async t => {
  t.equal(processOf(process.pid), process.pid, 'the main thread is the process')
  const w = new Worker('setInterval(() => {}, 1000)', { eval: true })
  t.teardown(async () => { await w.terminate() })
  await new Promise(resolve => w.once('online', resolve))
  const tids = fs.readdirSync('/proc/self/task').map(Number).filter(n => n !== process.pid)
  t.ok(tids.length > 0, 'this process has other threads')
  t.same([...new Set(tids.map(processOf))], [process.pid], 'each of them belongs to this process')
  t.equal(processOf(0), 0, 'no caller (0) stays 0')
  t.equal(processOf(2 ** 22 + 12345), 2 ** 22 + 12345, 'a thread that does not exist is taken as its own process')
})
