// Shared helpers for the store tests: a store in a fresh temp data dir, error
// assertions by S3 error code, hashing, and walking the chunk directory.
import fs from 'node:fs'
import path from 'node:path'
import crypto from 'node:crypto'
import type {} from 'tap' // the global tap.Test type
import { Store } from '../../src/store'
import type { StoreOptions } from '../../src/store/store'
import type { ErrorCode } from '../../src/errors'

export const KiB = 1024
export const MiB = 1024 * 1024

/** A store in its own temp data dir, closed when the test ends. */
export class TempStore {
  readonly dir: string
  store: Store
  #open = true

  constructor (t: tap.Test, opts: StoreOptions = {}) {
    // The store creates its data dir itself (mode 0700): give it a fresh path.
    this.dir = path.join(t.testdir(), 'data')
    this.store = Store.open(this.dir, opts)
    t.teardown(() => { this.close() })
  }

  close (): void {
    if (this.#open) {
      this.#open = false
      this.store.close()
    }
  }

  reopen (opts: StoreOptions = {}): Store {
    this.close()
    this.store = Store.open(this.dir, opts)
    this.#open = true
    return this.store
  }
}

/** Waits until cond() holds, asking every pollMs; false if it still does not after ms. */
export async function until (cond: () => boolean, ms = 5000, pollMs = 10): Promise<boolean> {
  const end = Date.now() + ms
  while (!cond()) {
    if (Date.now() > end) return false
    await new Promise(resolve => setTimeout(resolve, pollMs))
  }
  return true
}

/** Opens a store in a fresh temp dir; it is closed in t.teardown. */
export function tempStore (t: tap.Test, opts: StoreOptions = {}): TempStore {
  return new TempStore(t, opts)
}

/**
 * Asserts that fn fails with the given error code (works for sync throws and
 * rejected promises alike, so a test checks S3 behaviour, not sync-vs-async).
 */
export async function failsWith (t: tap.Test, fn: () => unknown, code: ErrorCode, msg?: string): Promise<void> {
  const what = msg ?? `fails with ${code}`
  let result: unknown
  try {
    result = await fn()
  } catch (err) {
    const found = (err as { code?: unknown } | null)?.code
    t.equal(found, code, what, { error: err instanceof Error ? `${err.name}: ${err.message}` : String(err) })
    return
  }
  t.fail(`${what} (it succeeded)`, { result: summarize(result) })
}

function summarize (v: unknown): unknown {
  if (Buffer.isBuffer(v)) return `<Buffer ${v.length} bytes>`
  if (v !== null && typeof v === 'object' && 'body' in v) return { ...(v as object), body: '<body>' }
  return v
}

export function md5hex (data: Buffer): string {
  return crypto.createHash('md5').update(data).digest('hex')
}

export function sha256hex (data: Buffer): string {
  return crypto.createHash('sha256').update(data).digest('hex')
}

/** The S3 multipart ETag: md5 of the concatenated binary part MD5s, then '-N'. */
export function multipartEtag (parts: Buffer[]): string {
  const digests = parts.map(p => crypto.createHash('md5').update(p).digest())
  return `${crypto.createHash('md5').update(Buffer.concat(digests)).digest('hex')}-${parts.length}`
}

export function random (size: number): Buffer {
  return crypto.randomBytes(size)
}

/** Collects an async iterable of Buffers (e.g. store.readObject().stream). */
export async function collect (stream: AsyncIterable<Buffer>): Promise<Buffer> {
  const parts: Buffer[] = []
  for await (const chunk of stream) parts.push(Buffer.from(chunk))
  return Buffer.concat(parts)
}

/** Yields data in pieces of the given size, as a stream body for putObject. */
export async function * pieces (data: Buffer, size: number): AsyncGenerator<Buffer> {
  for (let off = 0; off < data.length; off += size) yield data.subarray(off, off + size)
}

/** Every regular file below dir (recursively); [] if dir does not exist. */
export function filesUnder (dir: string): string[] {
  const out: string[] = []
  let entries: fs.Dirent[]
  try {
    entries = fs.readdirSync(dir, { withFileTypes: true })
  } catch {
    return out
  }
  for (const e of entries) {
    const p = path.join(dir, e.name)
    if (e.isDirectory()) out.push(...filesUnder(p))
    else if (e.isFile()) out.push(p)
  }
  return out.sort()
}

/** Chunk files of a store: every regular file under <data>/chunks. */
export function chunkFiles (dataDir: string): string[] {
  return filesUnder(path.join(dataDir, 'chunks'))
}

/** Sorts strings the way S3 lists keys: by their UTF-8 bytes. */
export function utf8Sort (keys: string[]): string[] {
  return [...keys].sort((a, b) => Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8')))
}
