// What a readdir answers, in the shape fuse-native's patched C takes, and the listings
// made ahead of a program walking a tree. A walk (find, du, rm -rf, a backup tool, an
// editor's file tree) lists a directory, looks up every name in it, and lists the
// directories in it next. Each of those readdirs used to cost a round trip to the main
// thread and back, about 0.3 ms at the kernel on a 2-vCPU machine, where the lookups
// are answered on the FUSE thread from the attributes the listing put. ListAhead lists
// the directories in a directory just listed while the program is still looking up its
// names, and puts each listing on the FUSE thread, which answers the next readdir of that
// directory from it once (scripts/fuse-native/fast-path.c) and says so: the level
// below is then listed ahead in turn. A listing put goes at any op that may change a
// name in its directory, as the directory's own attributes do, and answers at most once.
import type { Vfs, Attr, Listing } from '../vfs'
import { isDirMode } from '../vfs/attr'
import { putStatFields, STAT_INTS } from './fuse'
import type { FastPath } from './fuse'

export const BLKSIZE = 4096
/** The stat libfuse is given for '.' and '..' (of which it uses only the type). */
const DOT_MODE = 0o040755

/** Where readdir puts the attributes it listed exactly, and for how long they hold. */
export interface ListedAttrs {
  cache: Pick<FastPath, 'epoch' | 'putAttrs' | 'putMissing' | 'putFull' | 'putListing'>
  ttlMs: number
  /** Lists ahead of a program walking a tree, if on. */
  ahead?: ListAhead
}

/** What a readdir answers: the names with '.' and '..' first, and their stats packed (none when the vfs gave no attributes). */
export interface Answer { names: string[], stats?: Uint32Array }

/** A listing as readdir answers it: the vfs lists entries, '.' and '..' are the adapter's to add. */
export function answerOf (listing: Listing): Answer {
  const names = ['.', '..', ...listing.names]
  if (listing.attrs.length !== listing.names.length) return { names }
  const stats = packAttrs(listing.attrs, 2)
  // libfuse uses a listed stat only for the entry's type (d_type): theirs need nothing more.
  for (const at of [0, STAT_INTS]) putStatFields(stats, at, DOT_MODE, 0, 0, 0, 2, 0, BLKSIZE, 0, 0, 0, 0)
  return { names, stats }
}

/**
 * A listing's stats packed as fuse-native's C reads them (putStatFields), after `lead`
 * entries left for '.' and '..': one array, no FuseStat or Date per entry.
 */
function packAttrs (attrs: Attr[], lead: number): Uint32Array {
  const ints = new Uint32Array(STAT_INTS * (lead + attrs.length))
  for (let i = 0; i < attrs.length; i++) {
    const a = attrs[i]
    putStatFields(ints, (lead + i) * STAT_INTS, a.mode, a.uid, a.gid, a.size, a.nlink, a.ino, BLKSIZE, a.blocks, a.atimeMs, a.mtimeMs, a.ctimeMs)
  }
  return ints
}

/** The kernel's next lookups of the exactly listed names are answered without asking the vfs. `answer`: answerOf(listing). */
export function putExact (listed: ListedAttrs, epoch: number, dir: string, listing: Listing, answer: Answer): void {
  const exact = listing.exact ?? []
  if (exact.length === 0 || answer.stats === undefined) return
  const stats = answer.stats.subarray(2 * STAT_INTS)
  if (exact.length === listing.names.length) {
    listed.cache.putAttrs(epoch, dir, listing.names, stats, listed.ttlMs)
    return
  }
  const some = new Uint32Array(STAT_INTS * exact.length)
  exact.forEach((i, j) => { some.set(stats.subarray(i * STAT_INTS, (i + 1) * STAT_INTS), j * STAT_INTS) })
  listed.cache.putAttrs(epoch, dir, exact.map(i => listing.names[i]), some, listed.ttlMs)
}

/** How many directories of one listing are listed ahead (a program listing a larger one is not walking it soon). */
const AHEAD_DIRS = 64
/**
 * The most names a directory listed ahead may hold (a larger one is left to its readdir):
 * so that the listings of one whole listing's directories fit in what the FUSE thread
 * holds (16,384 names), and their attributes in its table (65,536), where a larger
 * bound would have the later ones push out the first, which a walk reads first.
 */
const AHEAD_NAMES = 256
/** The most directories waiting to be listed ahead; the oldest go first. */
const AHEAD_QUEUE = 1024

export class ListAhead {
  /**
   * Directories to list ahead: those of the latest listing first (a walk goes into
   * the directory it has just listed next), each listing's in its own order.
   */
  private queue: string[] = []
  /** Directories put, each with the directories in it: listed ahead once the FUSE thread answers its readdir. */
  private readonly put = new Map<string, string[]>()
  /** Directories listed (ahead or by a readdir) → when: not listed ahead again within ttlMs. */
  private readonly recent = new Map<string, number>()
  private scheduled = false
  /** Listings made ahead and put (what the tests read). */
  made = 0

  constructor (private readonly vfs: Vfs, private readonly listed: Omit<ListedAttrs, 'ahead'>) {}

  /** A readdir of dir was answered with listing: the directories in it are listed ahead. */
  answered (dir: string, listing: Listing): void {
    this.note(dir)
    this.enqueue(this.dirsIn(dir, listing))
  }

  /** The FUSE thread answered a readdir of dir from the listing put for it: the directories in that are listed ahead. */
  read (dir: string): void {
    const dirs = this.put.get(dir)
    this.put.delete(dir)
    this.note(dir)
    if (dirs !== undefined) this.enqueue(dirs)
  }

  /** The key directories among a listing's entries, in its order, at most AHEAD_DIRS. */
  private dirsIn (dir: string, listing: Listing): string[] {
    const out: string[] = []
    for (let i = 0; i < listing.names.length && i < listing.attrs.length && out.length < AHEAD_DIRS; i++) {
      if (!isDirMode(listing.attrs[i].mode)) continue
      const sub = `${dir === '/' ? '' : dir}/${listing.names[i]}`
      // Only key directories: their names change only by the mount's ops, which forget them.
      if (this.vfs.keyNameRoom(sub) !== undefined) out.push(sub)
    }
    return out
  }

  private note (dir: string): void {
    if (this.recent.size >= 4 * AHEAD_QUEUE) this.recent.clear()
    this.recent.set(dir, Date.now())
  }

  private enqueue (dirs: string[]): void {
    if (dirs.length === 0) return
    const these = new Set(dirs)
    this.queue = [...dirs, ...this.queue.filter(d => !these.has(d))].slice(0, AHEAD_QUEUE)
    if (!this.scheduled) {
      this.scheduled = true
      setImmediate(() => { this.step() })
    }
  }

  /** Lists one directory ahead, then yields: the ops that came meanwhile go first. */
  private step (): void {
    this.scheduled = false
    const dir = this.queue.shift()
    if (dir === undefined) return
    const at = this.recent.get(dir)
    if (at === undefined || Date.now() - at >= this.listed.ttlMs) this.listAhead(dir)
    if (this.queue.length > 0) {
      this.scheduled = true
      setImmediate(() => { this.step() })
    }
  }

  private listAhead (dir: string): void {
    const { cache, ttlMs } = this.listed
    // Read before the listing is made: a change in it answered meanwhile makes the put a no-op.
    const epoch = cache.epoch()
    let listing: Listing | undefined
    try {
      listing = this.vfs.readdirOfKeyDir(dir, AHEAD_NAMES)
    } catch {
      return // gone or not a directory by now: its readdir, if any, answers that
    }
    if (listing === undefined) return
    const answer = answerOf(listing)
    if (answer.stats === undefined) return
    putExact(this.listed, epoch, dir, listing, answer)
    if (!cache.putListing(epoch, dir, answer.names, answer.stats, ttlMs)) return
    this.made++
    this.note(dir)
    if (this.put.size >= AHEAD_QUEUE) this.put.delete(this.put.keys().next().value as string)
    this.put.set(dir, this.dirsIn(dir, listing))
  }
}
