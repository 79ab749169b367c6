// The hashing and chunk-file tests again without native/chunkio
// (BUCKETFS_NO_CHUNKIO=1): the worker-thread path, which the store takes where the
// addon did not build. Set before the modules load: they choose their path then.
process.env.BUCKETFS_NO_CHUNKIO = '1'
/* eslint-disable @typescript-eslint/no-require-imports */
require('./16-hasher.test')
require('./18-chunkio.test')
require('./45-dedup-gc-fsck.test')
