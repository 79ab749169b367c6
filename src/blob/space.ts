// The free-space reserve: object bytes may not fill the store's disk to the last
// block, so the metadata database always has room for the transactions that free
// space (unlink, delete, abort) and for small metadata changes. Like ext4's blocks
// reserved for root: new chunk bytes are refused with ENOSPC while less than
// `reserve` would stay free.
import fsp from 'node:fs/promises'
import { NO_SPACE } from '../errors'

const MiB = 1024 * 1024

export interface StatFs { bsize: number, blocks: number, bfree: number, bavail: number, files: number, ffree: number }
/** 1% of the disk, at least 8 MiB, at most 1 GiB. */
export function reserveFor (diskBytes: number): number {
  return Math.min(1024 * MiB, Math.max(8 * MiB, Math.floor(diskBytes / 100)))
}

/** How long a statfs answer is trusted while far from the reserve. */
const FRESH_MS = 1000
/** Closer than this to the reserve, every claim asks the disk again. */
const MARGIN = 64 * MiB

export class SpaceReserve {
  private free = 0
  private claimed = 0
  private checkedAt = 0
  /** Bytes that must stay free; follows the disk's size (a grown tmpfs, a resized volume). */
  reserve = 8 * MiB

  constructor (private readonly dir: string) {}

  /** Throws NoSpace unless `bytes` more can be stored with the reserve left free. */
  async claim (bytes: number): Promise<void> {
    const now = Date.now()
    if (now - this.checkedAt > FRESH_MS || this.free - this.claimed - bytes < this.reserve + MARGIN) await this.refresh()
    if (this.free - this.claimed - bytes < this.reserve) {
      throw NO_SPACE(`no space left on the store's disk (${this.reserve} bytes are kept free for the metadata)`)
    }
    this.claimed += bytes
  }

  /** The disk's statfs, with the reserve taken out of the blocks available to writers. */
  async statfs (): Promise<StatFs> {
    const s = await fsp.statfs(this.dir)
    this.note(s.bavail * s.bsize, s.blocks * s.bsize)
    return { bsize: s.bsize, blocks: s.blocks, bfree: s.bfree, bavail: Math.max(0, s.bavail - Math.ceil(this.reserve / s.bsize)), files: s.files, ffree: s.ffree }
  }

  private async refresh (): Promise<void> {
    const s = await fsp.statfs(this.dir)
    this.note(s.bavail * s.bsize, s.blocks * s.bsize)
  }

  private note (free: number, total: number): void {
    this.free = free
    this.claimed = 0
    this.checkedAt = Date.now()
    this.reserve = reserveFor(total)
  }
}
