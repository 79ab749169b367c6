// The native code our install builds. The patched fuse-native addon
// (scripts/patch-fuse-native.js): fuse-native's own C with ours
// (scripts/fuse-native/fast-path.c); node-gyp-build caches it, so fuse-native, the
// mount and the chunk store share one. And native/ (scripts/build-native.js): the
// SQLite extension walbuf, which src/meta/db.ts loads, and the addon chunkio
// (src/blob/hasher.ts, src/blob/chunks.ts).
import fs from 'node:fs'
import path from 'node:path'

export function fuseAddon (): Record<string, unknown> {
  const fuseDir = path.dirname(require.resolve('fuse-native/package.json'))
  return (require(require.resolve('node-gyp-build', { paths: [fuseDir] })) as (dir: string) => Record<string, unknown>)(fuseDir)
}

/** native/build/Release/walbuf.node (from src/ or dist/src/), if it was built. */
export function walbufExtension (): string | undefined {
  return [path.join(__dirname, '..'), path.join(__dirname, '..', '..')]
    .map(root => path.join(root, 'native', 'build', 'Release', 'walbuf.node'))
    .find(file => fs.existsSync(file))
}

/** What native/chunkio.c answers: hashing and chunk files on libuv's threadpool, reading the caller's buffer in place. */
export interface ChunkIo {
  /** SHA-256 and (withCrc) zlib's CRC-32 of data; data must stay untouched until the answer. */
  sha256Crc: (data: Uint8Array, withCrc: boolean) => Promise<[Buffer, number | null]>
  md5New: () => object
  /** Feeds data to the stream; one update (or md5Zeros) of a stream at a time, data untouched until the answer. */
  md5Update: (stream: object, data: Uint8Array) => Promise<void>
  md5Zeros: (stream: object, len: number) => Promise<void>
  /** The hex MD5 of what the stream was fed (not while an update runs); the stream goes on. */
  md5Digest: (stream: object) => string
  /**
   * Feeds streams[i] pieces[i] (in order), the streams hashed side by side; each stream
   * in one job at a time, the pieces untouched until the answer.
   */
  md5Lanes: (streams: object[], pieces: Uint8Array[][]) => Promise<void>
  /** The MD5 kernel md5Lanes uses ('scalar', 'avx2', 'avx512'), after choosing `name` if this CPU runs it. */
  md5Kernel: (name?: string) => string
  /** data written as the new file path (O_DIRECT if asked and taken), then renamed to dest; answers whether O_DIRECT was used. */
  writeFile: (path: string, data: Uint8Array, direct: boolean, dest: string | null) => Promise<boolean>
}

/**
 * native/build/Release/chunkio.node, if it was built and loads, unless
 * $BUCKETFS_NO_CHUNKIO is set (the tests run the worker-thread path with it).
 * $BUCKETFS_MD5_KERNEL (scalar, avx2, avx512) chooses the MD5 kernel, where the CPU runs
 * it: for tests and comparisons.
 */
export function chunkIo (): ChunkIo | undefined {
  if (process.env.BUCKETFS_NO_CHUNKIO !== undefined && process.env.BUCKETFS_NO_CHUNKIO !== '') return undefined
  const file = [path.join(__dirname, '..'), path.join(__dirname, '..', '..')]
    .map(root => path.join(root, 'native', 'build', 'Release', 'chunkio.node'))
    .find(f => fs.existsSync(f))
  if (file === undefined) return undefined
  let io: ChunkIo
  try {
    io = require(file) as ChunkIo
  } catch {
    return undefined
  }
  const kernel = process.env.BUCKETFS_MD5_KERNEL ?? ''
  if (kernel !== '' && typeof io.md5Kernel === 'function') {
    try {
      if (io.md5Kernel(kernel) !== kernel) console.warn(`bucketfs: BUCKETFS_MD5_KERNEL=${kernel}: this CPU does not run it; using ${io.md5Kernel()}`)
    } catch {
      console.warn(`bucketfs: BUCKETFS_MD5_KERNEL=${kernel} is not scalar, avx2 or avx512; using ${io.md5Kernel()}`)
    }
  }
  return io
}
