// bucketfs bucket create|ls|rm
import type { Argv } from 'yargs'
import type { Store } from '../../store'
import { defineCommand, withStore, type GlobalArgs } from '../command'
import { formatTime, printTable } from '../format'

export function printBuckets (store: Store): void {
  printTable(store.listBuckets().map(b => [formatTime(b.createdMs), b.region, b.versioning, b.name]))
}

const create = defineCommand({
  command: 'create <name>',
  describe: 'create a bucket',
  builder: (y: Argv<GlobalArgs>) => y
    .positional('name', { type: 'string', demandOption: true, describe: 'bucket name (3-63 chars: a-z 0-9 . -)' })
    .option('region', { type: 'string', default: 'local', requiresArg: true, describe: 'the bucket\'s region' })
    .example('$0 bucket create photos', '')
    .example('$0 bucket create backups --region eu-west-1', ''),
  handler: async args => withStore(args, store => {
    const bucket = store.createBucket(args.name, { region: args.region })
    process.stdout.write(`created bucket ${bucket.name} (region ${bucket.region})\n`)
  })
})

const list = defineCommand({
  command: 'ls',
  describe: 'list buckets: creation time, region, versioning, name',
  builder: (y: Argv<GlobalArgs>) => y,
  handler: async args => withStore(args, printBuckets)
})

const remove = defineCommand({
  command: 'rm <name>',
  describe: 'delete an empty bucket (no version, delete marker or upload left)',
  builder: (y: Argv<GlobalArgs>) => y.positional('name', { type: 'string', demandOption: true }),
  handler: async args => withStore(args, store => {
    store.deleteBucket(args.name)
    process.stdout.write(`removed bucket ${args.name}\n`)
  })
})

export default defineCommand({
  command: 'bucket',
  describe: 'create, list and delete buckets',
  builder: (y: Argv<GlobalArgs>) => remove(list(create(y))).demandCommand(1, 'bucket needs a sub-command: create, ls or rm'),
  handler: () => {}
})
