// bucketfs versioning <bucket> [enable|suspend|status]
import type { Argv } from 'yargs'
import { defineCommand, withStore, type GlobalArgs } from '../command'

const ACTIONS = ['enable', 'suspend', 'status'] as const

export default defineCommand({
  command: 'versioning <bucket> [action]',
  describe: 'show or change a bucket\'s versioning state',
  builder: (y: Argv<GlobalArgs>) => y
    .positional('bucket', { type: 'string', demandOption: true })
    .positional('action', { choices: ACTIONS, default: 'status' as const })
    .example('$0 versioning photos enable', 'keep every version from now on')
    .example('$0 versioning photos', 'prints Unversioned, Enabled or Suspended'),
  handler: async args => withStore(args, store => {
    if (args.action === 'enable') store.putBucketVersioning(args.bucket, 'Enabled')
    if (args.action === 'suspend') store.putBucketVersioning(args.bucket, 'Suspended')
    process.stdout.write(`${store.getBucketVersioning(args.bucket)}\n`)
  })
})
