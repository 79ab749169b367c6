// The public shapes of the S3 store. Names follow the S3 API.

export type VersioningState = 'Unversioned' | 'Enabled' | 'Suspended'

export interface Bucket {
  name: string
  region: string
  createdMs: number
  versioning: VersioningState
  /** POSIX attributes of the bucket's directory on the mount. */
  mode: number
  uid: number
  gid: number
  mtimeMs: number
}

/** Standard HTTP headers S3 stores with an object. */
export interface ObjectHeaders {
  cacheControl?: string
  contentDisposition?: string
  contentEncoding?: string
  contentLanguage?: string
  expires?: string
}

/** POSIX attributes, persisted as object metadata (they never create a version). */
export interface PosixAttrs {
  mode: number
  uid: number
  gid: number
  mtimeMs: number
  ctimeMs: number
}

export interface ObjectVersion {
  bucket: string
  key: string
  versionId: string // 'null' for the null version
  /** Internal, time-ordered row id: larger is newer. */
  seq: number
  isDeleteMarker: boolean
  isLatest: boolean
  size: number
  /** Bytes not in holes (st_blocks); the size for versions made before this was kept. */
  storedBytes: number
  etag: string
  lastModifiedMs: number
  contentType: string
  headers: ObjectHeaders
  userMeta: Record<string, string>
  posix: PosixAttrs
}

export interface PutOptions {
  contentType?: string
  headers?: ObjectHeaders
  userMeta?: Record<string, string>
  posix?: Partial<PosixAttrs>
}

export interface ListObjectsOptions {
  prefix?: string
  delimiter?: string
  startAfter?: string
  maxKeys?: number // default 1000
  continuationToken?: string
}

export interface ListObjectsResult {
  contents: ObjectVersion[]
  commonPrefixes: string[]
  isTruncated: boolean
  nextContinuationToken?: string
  keyCount: number
}

export interface ListVersionsOptions {
  prefix?: string
  delimiter?: string
  keyMarker?: string
  versionIdMarker?: string
  maxKeys?: number
}

export interface ListVersionsResult {
  versions: ObjectVersion[] // includes delete markers (isDeleteMarker), newest first per key
  commonPrefixes: string[]
  isTruncated: boolean
  nextKeyMarker?: string
  nextVersionIdMarker?: string
}

export interface DeleteResult {
  /** The delete marker created, or the version removed. */
  versionId: string
  deleteMarker: boolean
}

export interface MultipartUpload {
  uploadId: string
  bucket: string
  key: string
  initiatedMs: number
  /** 'client' for S3-style uploads, 'session' for a mount's write session. */
  kind: 'client' | 'session'
}

export interface Part {
  partNumber: number
  size: number
  etag: string // '' when not yet known (a mount session's part, computed on completion)
  lastModifiedMs: number
}

export interface CompletedPart {
  partNumber: number
  etag?: string
}

export interface StoreStats {
  buckets: number
  objects: number // live keys
  versions: number // object versions, delete markers excluded
  deleteMarkers: number
  uploads: number
  logicalBytes: number // sum of sizes of all versions and upload parts
  storedBytes: number // bytes of distinct chunks actually stored
  chunks: number
  inlineChunks: number
  dedupRatio: number // logical / stored (1 when nothing is stored)
}

export interface FsckReport {
  chunksChecked: number
  missingChunks: string[] // hashes referenced but absent
  corruptChunks: string[] // hashes whose content does not match (deep only)
  badRefcounts: Array<{ hash: string, recorded: number, actual: number }>
  orphanFiles: string[] // chunk files no row names
  /** Version, live and directory rows the key index cannot place, one line each (reported, not repaired). */
  keyIndexProblems: string[]
  uploadsInProgress: MultipartUpload[]
  repaired: string[] // what --repair did, one line each
  clean: boolean
}

export interface GcReport {
  chunksRemoved: number
  bytesFreed: number
  orphanFilesRemoved: number
}
