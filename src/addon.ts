// The native code our install builds. The patched fuse-native addon
// (scripts/patch-fuse-native.js): fuse-native's own C with ours
// (scripts/fuse-native/fast-path.c); node-gyp-build caches it, so fuse-native, the
// mount and the chunk store share one. And native/ (scripts/build-native.js): the
// SQLite extension walbuf, which src/meta/db.ts loads.
import fs from 'node:fs'
import path from 'node:path'

export function fuseAddon (): Record<string, unknown> {
  const fuseDir = path.dirname(require.resolve('fuse-native/package.json'))
  return (require(require.resolve('node-gyp-build', { paths: [fuseDir] })) as (dir: string) => Record<string, unknown>)(fuseDir)
}

/** native/build/Release/walbuf.node (from src/ or dist/src/), if it was built. */
export function walbufExtension (): string | undefined {
  return [path.join(__dirname, '..'), path.join(__dirname, '..', '..')]
    .map(root => path.join(root, 'native', 'build', 'Release', 'walbuf.node'))
    .find(file => fs.existsSync(file))
}
