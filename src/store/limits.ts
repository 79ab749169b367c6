// S3's limits, and the store's own layout constants.
export const MAX_KEY_BYTES = 1024
export const MAX_NAME_BYTES = 255 // one path component on the mount
export const MAX_USER_META_BYTES = 2048
export const MIN_PART_SIZE = 5 * 1024 * 1024
export const MAX_PART_SIZE = 5 * 1024 * 1024 * 1024
export const MAX_PARTS = 10000
export const MAX_OBJECT_SIZE = 5 * 1024 * 1024 * 1024 * 1024 // 5 TiB
/** Data is cut into chunks of this size (aligned to the start of each part). */
export const CHUNK_SIZE = 1024 * 1024
/** Chunks up to this size live inline in SQLite instead of as files. */
export const INLINE_MAX = 64 * 1024
