// The patched fuse-native addon (scripts/patch-fuse-native.js): fuse-native's own C
// with ours (scripts/fuse-native/fast-path.c), the one native module our install builds.
// node-gyp-build caches it, so fuse-native, the mount and the chunk store share one.
import path from 'node:path'

export function fuseAddon (): Record<string, unknown> {
  const fuseDir = path.dirname(require.resolve('fuse-native/package.json'))
  return (require(require.resolve('node-gyp-build', { paths: [fuseDir] })) as (dir: string) => Record<string, unknown>)(fuseDir)
}
