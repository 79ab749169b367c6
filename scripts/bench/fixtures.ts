// The inputs every target gets the same copy of, made once per work directory:
// a file of incompressible, non-repeating bytes (zeros would dedupe in bucketfs)
// and a deterministic tree of small files with its tarball.
import crypto from 'node:crypto'
import fs from 'node:fs'
import path from 'node:path'
import { cmd, MiB } from './proc'
import { uniform } from '../lib/prng'

/** A deterministic stream of pseudo-random bytes: AES-128-CTR over zeros, keyed by `seed`. */
export class ByteStream {
  private readonly cipher: crypto.Cipher
  constructor (seed: string) {
    const key = crypto.createHash('sha256').update(seed).digest()
    this.cipher = crypto.createCipheriv('aes-128-ctr', key.subarray(0, 16), key.subarray(16, 32))
  }

  next (n: number): Buffer { return this.cipher.update(Buffer.alloc(n)) }
}

/** A seeded PRNG (scripts/lib/prng.ts) for shapes and sizes. */
export class Prng {
  /** Uniform in [0, 1). */
  readonly next: () => number
  constructor (seed: number) { this.next = uniform(seed) }

  int (n: number): number { return Math.floor(this.next() * n) }
}

/**
 * `bytes` of pseudo-random data at `file`, reused when a file of that size is already
 * there; a different `variant` gives different bytes (each under its own name).
 */
export function randomFile (file: string, bytes: number, variant = 0): string {
  try {
    if (fs.statSync(file).size === bytes) return file
  } catch {}
  const stream = new ByteStream(variant === 0 ? `bucketfs-bench ${bytes}` : `bucketfs-bench ${bytes} ${variant}`)
  const tmp = `${file}.tmp`
  const fd = fs.openSync(tmp, 'w')
  try {
    for (let left = bytes; left > 0;) {
      const n = Math.min(left, 8 * MiB)
      fs.writeSync(fd, stream.next(n))
      left -= n
    }
    fs.fsyncSync(fd)
  } finally {
    fs.closeSync(fd)
  }
  fs.renameSync(tmp, file)
  return file
}

export interface Tree {
  /** The tree on the raw disk (rsync's source). */
  dir: string
  tar: string
  files: number
  dirs: number
  bytes: number
}

const EXTENSIONS = ['.c', '.h', '.ts', '.js', '.json', '.md', '.txt', '.py', '.html', '.png', '.svg', '']

/**
 * A source-tree-like hierarchy: `files` files of 100 B – 64 KiB (log-uniform, so most are
 * small: median ≈ 2.5 KiB) with random content, in about files/20 directories up to 5
 * deep. The same seed gives the same tree, byte for byte.
 */
export async function makeTree (root: string, files: number): Promise<Tree> {
  const dir = path.join(root, `tree-${files}`)
  const tar = `${dir}.tar`
  const manifest = `${dir}.json`
  try {
    const known = JSON.parse(fs.readFileSync(manifest, 'utf8')) as Tree
    if (fs.existsSync(tar) && fs.existsSync(dir)) return known
  } catch {}
  fs.rmSync(dir, { recursive: true, force: true })
  fs.mkdirSync(dir, { recursive: true })
  const prng = new Prng(files)
  const bytesOf = new ByteStream(`tree ${files}`)
  const dirs: Array<{ rel: string, depth: number }> = [{ rel: '', depth: 0 }]
  const wantDirs = Math.max(4, Math.round(files / 20))
  while (dirs.length < wantDirs) {
    const parent = dirs[prng.int(dirs.length)]
    if (parent.depth >= 5) continue
    const rel = path.join(parent.rel, `d${String(dirs.length).padStart(4, '0')}`)
    fs.mkdirSync(path.join(dir, rel))
    dirs.push({ rel, depth: parent.depth + 1 })
  }
  let bytes = 0
  for (let i = 0; i < files; i++) {
    const d = dirs[prng.int(dirs.length)]
    const size = Math.round(100 * Math.pow(65536 / 100, prng.next()))
    const name = `f${String(i).padStart(5, '0')}${EXTENSIONS[prng.int(EXTENSIONS.length)]}`
    fs.writeFileSync(path.join(dir, d.rel, name), bytesOf.next(size))
    bytes += size
  }
  await cmd('tar', ['cf', tar, '-C', dir, '.'])
  const tree: Tree = { dir, tar, files, dirs: dirs.length - 1, bytes }
  fs.writeFileSync(manifest, JSON.stringify(tree))
  return tree
}

/** Writes `count` files of `size` bytes named f0000… into `dir` (created). */
export function fillDirectory (dir: string, count: number, size: number): void {
  fs.mkdirSync(dir, { recursive: true })
  const data = Buffer.alloc(size, 'x')
  for (let i = 0; i < count; i++) fs.writeFileSync(path.join(dir, `f${String(i).padStart(4, '0')}`), data)
}
