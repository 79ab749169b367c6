// The MD5 tests of test/16 again with the scalar MD5 kernel (BUCKETFS_MD5_KERNEL=scalar),
// which a CPU without AVX2 runs: then each stream's pieces are hashed in a job of their
// own, not side by side. Set before the modules load: the hasher chooses then.
process.env.BUCKETFS_MD5_KERNEL = 'scalar'
/* eslint-disable @typescript-eslint/no-require-imports */
require('./16-hasher.test')
