// Content-addressed chunk files: <dir>/chunks/<first 2 hex>/<sha256 hex>.
// The only module that touches chunk files. A chunk file is written to a temp
// file and renamed into place, so while the system runs a name always holds the
// whole chunk. Files and their directories are fsynced in batches (syncWritten)
// before any metadata naming them commits: one fsync pair per chunk cost two
// journal commits per MiB. After a power loss a chunk no committed metadata names
// may be short; writers compare an existing file before trusting it and readers
// verify every chunk's hash, so such a file is rewritten or collected, never served.
// A write session's whole chunks are written with O_DIRECT (writeNew). Where our
// addon native/chunkio.c loads, a chunk file's open, write, close and rename are one
// job on libuv's threadpool instead of four promise round trips.
import fs from 'node:fs'
import fsp from 'node:fs/promises'
import path from 'node:path'
import crypto from 'node:crypto'
import { fromSystemError } from '../errors'
import { POOLED, pooledBuffer, pooledAligned } from './pool'
import { ALIGN, directWritable } from './aligned'
import { chunkIo } from '../addon'

const io = chunkIo()

const DIRECT_WRITE = fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_TRUNC | fs.constants.O_DIRECT
const DIRECT_READ = fs.constants.O_RDONLY | fs.constants.O_DIRECT

export function sha256 (data: Buffer): Buffer {
  return crypto.createHash('sha256').update(data).digest()
}

export class ChunkFiles {
  readonly root: string
  readonly tmp: string
  readonly quarantine: string
  /** Fan-out directories known to exist. */
  private readonly dirs = new Set<string>()
  /** Chunk files and directories written but not yet fsynced (or being fsynced: the promise). */
  private readonly unsynced = new Map<string, Promise<void> | null>()

  constructor (dataDir: string) {
    this.root = path.join(dataDir, 'chunks')
    this.tmp = path.join(dataDir, 'tmp')
    this.quarantine = path.join(dataDir, 'quarantine')
    fs.mkdirSync(this.root, { recursive: true, mode: 0o700 })
    fs.mkdirSync(this.tmp, { recursive: true, mode: 0o700 })
  }

  pathOf (hash: Buffer): string {
    const hex = hash.toString('hex')
    return path.join(this.root, hex.slice(0, 2), hex)
  }

  exists (hash: Buffer): boolean {
    return fs.existsSync(this.pathOf(hash))
  }

  /**
   * Writes the chunk unless a file of that name already holds exactly these bytes. A
   * damaged file of that name (wrong size or content) is replaced, which also heals
   * every object that shares the chunk.
   * `fresh`: the caller knows the store had no chunk of this hash, so no file needs comparing.
   */
  async write (hash: Buffer, data: Buffer, fresh = false): Promise<void> {
    const dest = this.pathOf(hash)
    // `fresh`: the store had no such chunk, so a file of that name can only be a leftover.
    if (!fresh && await this.holds(dest, data)) {
      this.unsynced.set(dest, null) // it may be another writer's, not yet synced
      return
    }
    const dir = path.dirname(dest)
    const tmp = path.join(this.tmp, `${path.basename(dest)}.${process.pid}.${crypto.randomBytes(4).toString('hex')}`)
    try {
      if (!this.dirs.has(dir)) {
        await fsp.mkdir(dir, { recursive: true, mode: 0o700 })
        this.dirs.add(dir)
      }
      if (io !== undefined) {
        const direct = this.directWrite && directWritable(data)
        if (direct && await io.writeFile(tmp, data, true, dest)) this.directWrites++
        else if (direct) this.directWrite = false // refused: never tried again (the addon wrote it without)
        else await io.writeFile(tmp, data, false, dest)
      } else {
        await this.writeNew(tmp, data)
        await fsp.rename(tmp, dest)
      }
    } catch (err) {
      await fsp.rm(tmp, { force: true }).catch(() => {})
      throw fromSystemError(err)
    }
    this.unsynced.set(dest, null)
    this.unsynced.set(dir, null)
  }

  /** Chunk files written with O_DIRECT so far. */
  directWrites = 0

  /** Whether O_DIRECT writes and reads work here (a filesystem without them answers EINVAL). */
  private directWrite = true
  private directRead = true

  /**
   * Writes data as the new file tmp. From aligned memory (a write session's whole
   * chunks) it goes with O_DIRECT, straight from our buffer to the disk: no copy into
   * new page-cache pages (most of a sequential write's CPU on this VM), and nothing
   * left for the sync. Durability is the same either way: syncWritten fsyncs the file.
   */
  private async writeNew (tmp: string, data: Buffer): Promise<void> {
    if (this.directWrite && directWritable(data)) {
      let done = 0
      try {
        const fh = await fsp.open(tmp, DIRECT_WRITE, 0o600)
        try {
          while (done < data.length) done += (await fh.write(data, done, data.length - done, done)).bytesWritten
        } finally {
          await fh.close()
        }
        this.directWrites++
        return
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EINVAL') throw err
        // Refused outright: this filesystem has no O_DIRECT. (Past a short write, at an
        // offset off a boundary, EINVAL says nothing about it.) Written again below.
        if (done === 0) this.directWrite = false
      }
    }
    const fh = await fsp.open(tmp, 'w', 0o600)
    try {
      await fh.writeFile(data)
    } finally {
      await fh.close()
    }
  }

  /**
   * Makes every chunk file written so far durable (file and directory fsyncs, run
   * together so the filesystem's journal commits are shared). Call it before the
   * metadata transaction that names those chunks commits. Waits for syncs other
   * callers started too.
   */
  async syncWritten (): Promise<void> {
    const waits: Array<Promise<void>> = []
    for (const [file, started] of this.unsynced) {
      let sync = started
      if (sync === null) {
        const p: Promise<void> = syncPath(file).finally(() => { if (this.unsynced.get(file) === p) this.unsynced.delete(file) })
        this.unsynced.set(file, p)
        sync = p
      }
      waits.push(sync)
    }
    try {
      await Promise.all(waits)
    } catch (err) {
      throw fromSystemError(err)
    }
  }

  private async holds (file: string, data: Buffer): Promise<boolean> {
    try {
      const st = await fsp.stat(file)
      if (st.size !== data.length) return false
      return (await fsp.readFile(file)).equals(data)
    } catch {
      return false
    }
  }

  /** Reads [off, off+len) of a chunk; short if the file is short (the caller verifies). */
  async read (hash: Buffer, off: number, len: number): Promise<Buffer> {
    const fh = await fsp.open(this.pathOf(hash), 'r')
    try {
      const buf = Buffer.allocUnsafe(len)
      let got = 0
      while (got < len) {
        const { bytesRead } = await fh.read(buf, got, len - got, off + got)
        if (bytesRead === 0) break
        got += bytesRead
      }
      return got === len ? buf : buf.subarray(0, got)
    } finally {
      await fh.close()
    }
  }

  /**
   * The chunk's bytes: `size` of them when its size is known (one read into a buffer
   * of that size; the caller verifies), else the whole file.
   */
  async readWhole (hash: Buffer, size?: number): Promise<Buffer> {
    if (size === undefined) return await fsp.readFile(this.pathOf(hash))
    if (size === POOLED && this.directRead) {
      const read = await this.readDirect(hash)
      if (read !== undefined) return read
    }
    const fh = await fsp.open(this.pathOf(hash), 'r')
    try {
      return await readInto(fh, size === POOLED ? pooledBuffer() : Buffer.allocUnsafeSlow(size), size, false)
    } finally {
      await fh.close()
    }
  }

  /**
   * A whole chunk read with O_DIRECT into aligned memory: straight from the disk, without
   * filling new page-cache pages first. Undefined when there is no aligned memory, or the
   * filesystem refuses O_DIRECT (EINVAL at the open or the read: never tried again).
   */
  private async readDirect (hash: Buffer): Promise<Buffer | undefined> {
    const buf = pooledAligned()
    if (buf === undefined) return undefined
    try {
      const fh = await fsp.open(this.pathOf(hash), DIRECT_READ)
      try {
        return await readInto(fh, buf, POOLED, true)
      } finally {
        await fh.close()
      }
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EINVAL') throw err
      this.directRead = false
      return undefined
    }
  }

  sizeOf (hash: Buffer): number | null {
    try { return fs.statSync(this.pathOf(hash)).size } catch { return null }
  }

  remove (hash: Buffer): void {
    fs.rmSync(this.pathOf(hash), { force: true })
  }

  /** Moves a damaged chunk file aside so that nothing serves it again. */
  quarantineFile (hash: Buffer): string {
    fs.mkdirSync(this.quarantine, { recursive: true, mode: 0o700 })
    const dest = path.join(this.quarantine, `${hash.toString('hex')}.${Date.now()}`)
    fs.renameSync(this.pathOf(hash), dest)
    return dest
  }

  /** Every chunk file's hash, as hex. */
  * list (): Generator<string> {
    for (const sub of fs.readdirSync(this.root)) {
      const dir = path.join(this.root, sub)
      let names: string[]
      try { names = fs.readdirSync(dir) } catch { continue }
      for (const name of names) if (/^[0-9a-f]{64}$/.test(name)) yield name
    }
  }

  /** Temp files older than maxAgeMs (left by a writer that died). */
  staleTempFiles (maxAgeMs: number): string[] {
    const out: string[] = []
    const now = Date.now()
    for (const name of fs.readdirSync(this.tmp)) {
      const file = path.join(this.tmp, name)
      try { if (now - fs.statSync(file).mtimeMs > maxAgeMs) out.push(file) } catch {}
    }
    return out
  }
}

/**
 * Reads the first `size` bytes of a file into buf: all of them, or what a short file
 * holds. O_DIRECT (`direct`) reads go on from block boundaries only: a count off one is the end.
 */
async function readInto (fh: fsp.FileHandle, buf: Buffer, size: number, direct: boolean): Promise<Buffer> {
  let got = 0
  while (got < size) {
    const { bytesRead } = await fh.read(buf, got, size - got, got)
    if (bytesRead === 0) break
    got += bytesRead
    if (direct && got % ALIGN !== 0) break
  }
  return got === size ? buf : buf.subarray(0, got)
}

/**
 * fsyncs a file or directory. One that is gone is not an error: a chunk file written
 * for a save that then failed stays listed here until the next sync, and gc (in any
 * process) may remove it meanwhile, once unpinned; a chunk a save is committing is
 * pinned, so gc never removes it.
 */
async function syncPath (file: string): Promise<void> {
  let fh: fsp.FileHandle
  try {
    fh = await fsp.open(file, 'r')
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return
    throw err
  }
  try { await fh.sync() } finally { await fh.close() }
}
