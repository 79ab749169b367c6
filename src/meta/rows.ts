// Row shapes as SQLite returns them.
export interface BucketRow {
  id: number, name: string, region: string, created_ms: number, versioning: string
  mode: number, uid: number, gid: number, mtime_ms: number
}

export interface VersionRow {
  seq: number, bucket_id: number, key: string, version_id: string, delete_marker: number
  size: number, etag: string, last_modified_ms: number, content_type: string
  headers: string, user_meta: string
  mode: number, uid: number, gid: number, mtime_ms: number, ctime_ms: number
  /** Bytes not in holes; null for versions made before migration 3. */
  stored: number | null
}

export type NewVersion = Omit<VersionRow, 'seq'>

/** [size, stored, mode, uid, gid, mtime_ms, ctime_ms, seq] of a live version. */
export type LiveStatRow = [number, number | null, number, number, number, number, number, number]
/** [mode, uid, gid, mtime_ms, ctime_ms] of a directory's live marker. */
export type MarkerRow = [number, number, number, number, number]
/**
 * The live keys right under a directory as a listing needs them, one array per column,
 * in name order: names less the directory's path ('' is its own marker); stored is null
 * in rows older than migration 3.
 */
export interface DirFiles {
  names: string[], sizes: number[], modes: number[], uids: number[], gids: number[], mtimes: number[], ctimes: number[], stored: Array<number | null>
}

/** A byte range of an object: [off, off+len) is bytes [coff, coff+len) of a chunk, or zeros. */
export interface Extent {
  off: number
  len: number
  chunk: number | null
  coff: number
}

/** An extent joined with what is needed to read it. */
export interface ReadableExtent extends Extent {
  hash: Buffer | null
  /** CRC-32 of the chunk's bytes (null: written before migration 4, or a hole). */
  crc?: number | null
  inline: number // 1 when the chunk's bytes live in SQLite
  csize: number
}

export interface UploadRow {
  id: number, upload_id: string, bucket_id: number, key: string, kind: string, initiated_ms: number
  attrs: string, base_seq: number | null, base_limit: number, size: number, sealed: number
}

export interface UploadPartRow { upload: number, part: number, size: number, md5: string, modified_ms: number }

export interface VersionPartRow { seq: number, part: number, off: number, size: number, md5: string }

export interface ChunkRow { id: number, hash: Buffer, size: number, refs: number, inline: number }
