// The one table from failures to errnos. Every ErrorCode has a row (the compiler
// checks), answers are negative as fuse-native expects, and anything that is not a
// BucketfsError becomes EIO with its stack logged: raw errno numbers live only here.
import os from 'node:os'
import debug from 'debug'
import { fromSystemError, isBucketfsError, type ErrorCode } from '../errors'

const log = debug('bucketfs:mount')
const E = os.constants.errno

const ERRNO: Record<ErrorCode, number> = {
  NotFound: E.ENOENT,
  NoSuchKey: E.ENOENT,
  NoSuchBucket: E.ENOENT,
  NoSuchVersion: E.ENOENT,
  MethodNotAllowed: E.ENOENT, // a delete marker named by version
  Exists: E.EEXIST,
  BucketAlreadyExists: E.EEXIST,
  NotDirectory: E.ENOTDIR,
  IsDirectory: E.EISDIR,
  DirectoryNotEmpty: E.ENOTEMPTY,
  BucketNotEmpty: E.ENOTEMPTY,
  ReadOnly: E.EROFS,
  NotPermitted: E.EPERM,
  AccessDenied: E.EACCES,
  InvalidBucketName: E.EINVAL,
  InvalidArgument: E.EINVAL,
  InvalidKey: E.EINVAL,
  InvalidRange: E.EINVAL,
  IllegalVersioningConfiguration: E.EINVAL, // setxattr user.s3.versioning with a bad value
  EntityTooSmall: E.EINVAL,
  InvalidPart: E.EINVAL,
  InvalidPartOrder: E.EINVAL,
  KeyTooLong: E.ENAMETOOLONG,
  NameTooLong: E.ENAMETOOLONG,
  MetadataTooLarge: E.E2BIG,
  EntityTooLarge: E.EFBIG,
  NoSpace: E.ENOSPC,
  BadHandle: E.EBADF,
  NoAttribute: E.ENODATA,
  Range: E.ERANGE,
  NotSupported: E.ENOTSUP,
  Stale: E.ESTALE,
  TooManyFiles: E.ENFILE, // every handle number below HANDLE_LIMIT is open (src/vfs/vfs.ts)
  StoreLocked: E.EBUSY,
  CorruptChunk: E.EIO,
  NoSuchUpload: E.EIO // an open file's upload vanished (aborted from outside): the write is lost
}

/**
 * The negative errno answering `err` from operation `op`. An EIO is always logged with
 * its stack: through DEBUG=bucketfs:mount when that is on, else on stderr (the
 * daemon's log), since it means something went wrong that nobody expected.
 */
export function errnoOf (err: unknown, op = '?'): number {
  const e = fromSystemError(err)
  const errno = isBucketfsError(e) ? ERRNO[e.code] : E.EIO
  if (errno === E.EIO) {
    const what = e instanceof Error ? (e.stack ?? e.message) : String(e)
    if (log.enabled) log('%s: EIO for %s', op, what)
    else process.stderr.write(`bucketfs: ${op}: answering EIO for ${what}\n`)
  }
  return -errno
}

/** Whether an answer says the name is not there. */
export function isMissing (code: number): boolean { return code === -E.ENOENT }
