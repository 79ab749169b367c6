export { Vfs } from './vfs'
export type { VfsOptions, StatFs } from './vfs'
export type { Attr } from './attr'
