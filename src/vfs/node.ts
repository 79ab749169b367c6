// What the vfs keeps for open files: one node per open key (shared by all its
// handles and its write session) and the handles themselves.
import type { ObjectVersion } from '../store/types'
import type { ReadableExtent } from '../meta/catalog'
import type { WriteSession } from './session'

/** An open key: all handles of one key share it, and its write session. */
export class FileNode {
  session: WriteSession | null = null
  opens = 0
  unlinked = false
  extents: ReadableExtent[] | null = null
  /** Pins on `extents` once the node lost its name (its version may be deleted and collected). */
  pin: number | null = null
  /** Read windows were put for a handle of it (Vfs.feed): a write session must drop them. */
  windowed = false
  constructor (public bucket: string, public key: string, public version: ObjectVersion | null) {}
}

export type Handle =
  | FileHandle
  | { kind: 'version', version: ObjectVersion }

/**
 * An open file; `wrote`: changed through this handle since its last close (flush);
 * `lost`: the save this handle took part in failed (another handle's close found the
 * disk full), reported at this handle's next close or fsync; `opener`: the process
 * that opened it, when known (see flush).
 */
export interface FileHandle {
  kind: 'file', node: FileNode, flags: number, wrote: boolean, lost?: unknown, opener?: number, keepCache?: boolean
  /** Where the last read through this handle ended (a read starting near it is sequential). */
  nextRead?: number
  /** How far the mount's read windows were put for this handle, and whether a put is under way (Vfs.feed). */
  fedUntil?: number
  feeding?: boolean
  /** Where the running feed stops: moved on when asked for more while it runs. */
  feedTo?: number
  /** Times a read found the windows put for this handle gone (a feed under way then does not move fedUntil). */
  fedResets?: number
}
