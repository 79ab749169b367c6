// The one table from failures to exit codes. Scripts may rely on these numbers;
// README.md documents them.
import { isBucketfsError, type ErrorCode } from '../errors'

export const EXIT = {
  ok: 0,
  failure: 1, // anything else, and `fsck` finding problems
  usage: 2, // bad command line (yargs)
  notFound: 3,
  conflict: 4,
  invalid: 5
} as const

export type ExitCode = typeof EXIT[keyof typeof EXIT]

const BY_CODE: Partial<Record<ErrorCode, ExitCode>> = {
  NoSuchBucket: EXIT.notFound,
  NoSuchKey: EXIT.notFound,
  NoSuchVersion: EXIT.notFound,
  NoSuchUpload: EXIT.notFound,
  NotFound: EXIT.notFound,

  BucketAlreadyExists: EXIT.conflict,
  BucketNotEmpty: EXIT.conflict,
  Exists: EXIT.conflict,
  DirectoryNotEmpty: EXIT.conflict,
  StoreLocked: EXIT.conflict,

  InvalidBucketName: EXIT.invalid,
  KeyTooLong: EXIT.invalid,
  NameTooLong: EXIT.invalid,
  InvalidKey: EXIT.invalid,
  MetadataTooLarge: EXIT.invalid,
  InvalidArgument: EXIT.invalid,
  InvalidRange: EXIT.invalid,
  EntityTooLarge: EXIT.invalid,
  EntityTooSmall: EXIT.invalid,
  InvalidPart: EXIT.invalid,
  InvalidPartOrder: EXIT.invalid,
  IllegalVersioningConfiguration: EXIT.invalid,
  IsDirectory: EXIT.invalid, // e.g. `put somedir b/k`
  NotDirectory: EXIT.invalid,
  MethodNotAllowed: EXIT.invalid // e.g. `get --version-id` naming a delete marker
}

export function exitCodeFor (err: unknown): ExitCode {
  if (isBucketfsError(err)) return BY_CODE[err.code] ?? EXIT.failure
  return EXIT.failure
}
