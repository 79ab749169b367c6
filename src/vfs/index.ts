export { Vfs, HANDLE_LIMIT } from './vfs'
export type { VfsOptions, StatFs, Caller } from './vfs'
export type { Attr, Listing } from './attr'
