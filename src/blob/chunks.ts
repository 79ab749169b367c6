// Content-addressed chunk files: <dir>/chunks/<first 2 hex>/<sha256 hex>.
// The only module that touches chunk files. A chunk file is written to a temp
// file, fsynced, renamed into place, and its directory fsynced, so a name that
// exists always holds the whole chunk.
import fs from 'node:fs'
import fsp from 'node:fs/promises'
import path from 'node:path'
import crypto from 'node:crypto'
import { fromSystemError } from '../errors'

export function sha256 (data: Buffer): Buffer {
  return crypto.createHash('sha256').update(data).digest()
}

export class ChunkFiles {
  readonly root: string
  readonly tmp: string
  readonly quarantine: string

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
   */
  async write (hash: Buffer, data: Buffer): Promise<void> {
    const dest = this.pathOf(hash)
    if (await this.holds(dest, data)) return
    const dir = path.dirname(dest)
    const tmp = path.join(this.tmp, `${path.basename(dest)}.${process.pid}.${crypto.randomBytes(4).toString('hex')}`)
    try {
      await fsp.mkdir(dir, { recursive: true, mode: 0o700 })
      const fh = await fsp.open(tmp, 'w', 0o600)
      try {
        await fh.writeFile(data)
        await fh.sync()
      } finally {
        await fh.close()
      }
      await fsp.rename(tmp, dest)
      await syncDirectory(dir)
    } catch (err) {
      await fsp.rm(tmp, { force: true }).catch(() => {})
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

  async readWhole (hash: Buffer): Promise<Buffer> {
    return await fsp.readFile(this.pathOf(hash))
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

async function syncDirectory (dir: string): Promise<void> {
  const fh = await fsp.open(dir, 'r')
  try { await fh.sync() } finally { await fh.close() }
}
