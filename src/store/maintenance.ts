// fsck and gc: integrity checks and garbage collection of unreferenced chunks.
import fs from 'node:fs'
import createDebug from 'debug'
import type { Store } from './store'
import { sha256 } from '../blob/chunks'
import type { FsckReport, GcReport } from './types'

const log = createDebug('bucketfs:maintenance')
const STALE_TEMP_MS = 60 * 60 * 1000

type Progress = ((done: number, total: number) => void) | undefined

function alive (pid: number): boolean {
  if (pid === process.pid) return true
  try { process.kill(pid, 0); return true } catch (err) { return (err as NodeJS.ErrnoException).code === 'EPERM' }
}

/** Pins left by processes that are gone (a writer killed mid-put). */
function dropDeadPins (store: Store): number[] {
  const dead = store.catalog.pinnedPids().filter(pid => !alive(pid))
  for (const pid of dead) store.catalog.unpinPid(pid)
  return dead
}

export async function fsck (store: Store, opts: { deep?: boolean, repair?: boolean, onProgress?: Progress }): Promise<FsckReport> {
  const { catalog, files } = store
  const report: FsckReport = {
    chunksChecked: 0, missingChunks: [], corruptChunks: [], badRefcounts: [], orphanFiles: [],
    keyIndexProblems: catalog.read(() => catalog.keyIndexProblems()),
    uploadsInProgress: store.listMultipartUploads(), repaired: [], clean: true
  }
  const rows = [...catalog.allChunks()]
  const known = new Set<string>()
  const actual = catalog.actualRefs()
  const damaged: Array<{ id: number, hash: Buffer, missing: boolean }> = []
  let done = 0
  for (const c of rows) {
    const hex = c.hash.toString('hex')
    known.add(hex)
    report.chunksChecked++
    const refs = actual.get(c.id) ?? 0
    if (refs !== c.refs) report.badRefcounts.push({ hash: hex, recorded: c.refs, actual: refs })
    if (c.inline === 1) {
      if (opts.deep === true) {
        const data = catalog.inlineData(c.id)
        if (data === undefined || !sha256(data).equals(c.hash)) { report.corruptChunks.push(hex); damaged.push({ id: c.id, hash: c.hash, missing: false }) }
      }
    } else {
      const size = files.sizeOf(c.hash)
      if (size === null) {
        // A chunk nothing references and no writer pins may have lost its file to an interrupted gc: harmless.
        if (refs > 0) { report.missingChunks.push(hex); damaged.push({ id: c.id, hash: c.hash, missing: true }) }
      } else if (size !== c.size) {
        report.corruptChunks.push(hex); damaged.push({ id: c.id, hash: c.hash, missing: false })
      } else if (opts.deep === true) {
        const data = await files.readWhole(c.hash)
        if (!sha256(data).equals(c.hash)) { report.corruptChunks.push(hex); damaged.push({ id: c.id, hash: c.hash, missing: false }) }
      }
    }
    opts.onProgress?.(++done, rows.length)
  }
  for (const id of catalog.danglingExtents()) report.missingChunks.push(`chunk id ${id} (no row)`)
  for (const hex of files.list()) if (!known.has(hex)) report.orphanFiles.push(hex)

  if (opts.repair === true) {
    catalog.write(() => {
      const fresh = catalog.actualRefs()
      for (const b of report.badRefcounts) {
        const id = catalog.chunkIdByHash(Buffer.from(b.hash, 'hex'))
        if (id !== undefined) catalog.setRefs(id, fresh.get(id) ?? 0)
        report.repaired.push(`reference count of chunk ${b.hash} set from ${b.recorded} to ${b.actual}`)
      }
      for (const pid of dropDeadPins(store)) report.repaired.push(`dropped the pins of dead writer pid ${pid}`)
      for (const hex of report.orphanFiles) {
        // Under the write lock no writer is between pinning and writing: an unnamed file is garbage.
        if (catalog.chunkIdByHash(Buffer.from(hex, 'hex')) === undefined) {
          files.remove(Buffer.from(hex, 'hex'))
          report.repaired.push(`removed orphan chunk file ${hex}`)
        }
      }
    })
    for (const d of damaged) {
      if (!d.missing && d.hash !== null) {
        try {
          const dest = files.quarantineFile(d.hash)
          report.repaired.push(`moved damaged chunk ${d.hash.toString('hex')} to ${dest}; reads of it fail with EIO (held by ${catalog.holdersOfChunk(d.id).join(', ')})`)
        } catch {}
      } else {
        report.repaired.push(`chunk ${d.hash.toString('hex')} is lost; objects naming it cannot be read: ${catalog.holdersOfChunk(d.id).join(', ')}`)
      }
    }
    for (const file of files.staleTempFiles(STALE_TEMP_MS)) {
      fs.rmSync(file, { force: true })
      report.repaired.push(`removed stale temp file ${file}`)
    }
  }
  report.clean = report.missingChunks.length === 0 && report.corruptChunks.length === 0 && report.keyIndexProblems.length === 0 &&
    report.badRefcounts.length === 0 && report.orphanFiles.length === 0
  log('fsck: %o', { checked: report.chunksChecked, clean: report.clean })
  return report
}

export function gc (store: Store, opts: { onProgress?: Progress }): GcReport {
  const { catalog, files } = store
  const report: GcReport = { chunksRemoved: 0, bytesFreed: 0, orphanFilesRemoved: 0 }
  // Everything under the write lock: a writer pins a chunk before writing its file, and
  // commits its references in a transaction, so nothing here races a writer.
  catalog.write(() => {
    dropDeadPins(store)
    const dead = catalog.unreferencedChunks()
    let done = 0
    for (const c of dead) {
      catalog.deleteChunk(c.id)
      if (c.inline === 0) files.remove(c.hash)
      store.content.forget(c.hash)
      report.chunksRemoved++
      report.bytesFreed += c.size
      opts.onProgress?.(++done, dead.length)
    }
    for (const hex of files.list()) {
      const hash = Buffer.from(hex, 'hex')
      if (catalog.chunkIdByHash(hash) === undefined) {
        const size = files.sizeOf(hash) ?? 0
        files.remove(hash)
        report.orphanFilesRemoved++
        report.bytesFreed += size
      }
    }
  })
  for (const file of files.staleTempFiles(STALE_TEMP_MS)) fs.rmSync(file, { force: true })
  log('gc: %o', report)
  return report
}
