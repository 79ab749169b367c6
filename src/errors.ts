// One error class for every layer. Each failure has a code (named as S3 names it
// where S3 has a name) and a factory; the mount maps codes to errnos in one table
// (src/mount/errno.ts) and the CLI prints the message and exits non-zero.

export type ErrorCode =
  | 'InvalidBucketName'
  | 'BucketAlreadyExists'
  | 'NoSuchBucket'
  | 'BucketNotEmpty'
  | 'NoSuchKey'
  | 'NoSuchVersion'
  | 'KeyTooLong'
  | 'NameTooLong'
  | 'InvalidKey'
  | 'MetadataTooLarge'
  | 'InvalidArgument'
  | 'InvalidRange'
  | 'EntityTooLarge'
  | 'EntityTooSmall'
  | 'InvalidPart'
  | 'InvalidPartOrder'
  | 'NoSuchUpload'
  | 'IllegalVersioningConfiguration'
  | 'MethodNotAllowed'
  | 'NoSpace'
  | 'CorruptChunk'
  | 'StoreLocked'
  | 'NotFound'
  | 'Exists'
  | 'NotDirectory'
  | 'IsDirectory'
  | 'DirectoryNotEmpty'
  | 'ReadOnly'
  | 'NotPermitted'
  | 'AccessDenied'
  | 'BadHandle'
  | 'NoAttribute'
  | 'Range'
  | 'NotSupported'
  | 'Stale'
  | 'TooManyFiles'

export class BucketfsError extends Error {
  readonly code: ErrorCode
  constructor (code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options)
    this.name = 'BucketfsError'
    this.code = code
  }
}

export function isBucketfsError (err: unknown, code?: ErrorCode): err is BucketfsError {
  return err instanceof BucketfsError && (code === undefined || err.code === code)
}

const make = (code: ErrorCode) => (message: string, cause?: unknown): BucketfsError =>
  new BucketfsError(code, message, cause === undefined ? undefined : { cause })

/**
 * For failures a filesystem answers all the time (a lookup of a missing name, an
 * absent xattr): no stack trace is captured, which cost 5 % of the daemon's time in
 * `rsync -a` (measured with --cpu-prof).
 */
const answer = (code: ErrorCode) => {
  const build = make(code)
  return (message: string, cause?: unknown): BucketfsError => {
    const limit = Error.stackTraceLimit
    Error.stackTraceLimit = 0
    try {
      return build(message, cause)
    } finally {
      Error.stackTraceLimit = limit
    }
  }
}

export const INVALID_BUCKET_NAME = make('InvalidBucketName')
export const BUCKET_ALREADY_EXISTS = make('BucketAlreadyExists')
export const NO_SUCH_BUCKET = make('NoSuchBucket')
export const BUCKET_NOT_EMPTY = make('BucketNotEmpty')
export const NO_SUCH_KEY = make('NoSuchKey')
export const NO_SUCH_VERSION = make('NoSuchVersion')
export const KEY_TOO_LONG = make('KeyTooLong')
export const NAME_TOO_LONG = make('NameTooLong')
export const INVALID_KEY = make('InvalidKey')
export const METADATA_TOO_LARGE = make('MetadataTooLarge')
export const INVALID_ARGUMENT = make('InvalidArgument')
export const INVALID_RANGE = make('InvalidRange')
export const ENTITY_TOO_LARGE = make('EntityTooLarge')
export const ENTITY_TOO_SMALL = make('EntityTooSmall')
export const INVALID_PART = make('InvalidPart')
export const INVALID_PART_ORDER = make('InvalidPartOrder')
export const NO_SUCH_UPLOAD = make('NoSuchUpload')
export const ILLEGAL_VERSIONING = make('IllegalVersioningConfiguration')
export const METHOD_NOT_ALLOWED = make('MethodNotAllowed')
export const NO_SPACE = make('NoSpace')
export const CORRUPT_CHUNK = make('CorruptChunk')
export const STORE_LOCKED = make('StoreLocked')
export const NOT_FOUND = answer('NotFound')
export const EXISTS = make('Exists')
export const NOT_DIRECTORY = make('NotDirectory')
export const IS_DIRECTORY = make('IsDirectory')
export const DIRECTORY_NOT_EMPTY = make('DirectoryNotEmpty')
export const READ_ONLY = make('ReadOnly')
export const NOT_PERMITTED = make('NotPermitted')
export const ACCESS_DENIED = make('AccessDenied')
export const BAD_HANDLE = make('BadHandle')
export const NO_ATTRIBUTE = answer('NoAttribute')
export const RANGE = make('Range')
export const NOT_SUPPORTED = make('NotSupported')
export const STALE = make('Stale')
export const TOO_MANY_FILES = make('TooManyFiles')

/** What a caught value says: its message, or the value as text. */
export function messageOf (err: unknown): string { return err instanceof Error ? err.message : String(err) }

/** Turns an fs error from the chunk store into ours where it has a meaning (ENOSPC). */
export function fromSystemError (err: unknown): unknown {
  const code = (err as NodeJS.ErrnoException | undefined)?.code
  if (code === 'ENOSPC' || code === 'EDQUOT') return NO_SPACE('no space left on the store\'s disk', err)
  if ((err as { code?: string } | undefined)?.code === 'SQLITE_FULL') return NO_SPACE('the metadata database cannot grow: disk full', err)
  return err
}
