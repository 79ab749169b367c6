// bucketfs rm bucket/key [--version-id ID]
import type { Argv } from 'yargs'
import { defineCommand, parseTarget, requireObjectTarget, withStore, type GlobalArgs } from '../command'

export default defineCommand({
  command: 'rm <target>',
  describe: 'delete an object (a delete marker when versioned) or one version of it',
  builder: (y: Argv<GlobalArgs>) => y
    .positional('target', { type: 'string', demandOption: true, describe: 'bucket/key' })
    .option('version-id', { type: 'string', requiresArg: true, describe: 'remove this version (or delete marker) for good' })
    .check(requireObjectTarget('target'))
    .example('$0 rm photos/cat.jpg', '')
    .example('$0 rm photos/cat.jpg --version-id 0192…', 'removes that version permanently'),
  handler: async args => withStore(args, store => {
    const { bucket, key } = parseTarget(args.target)
    const name = `${bucket}/${key}`
    // S3 deletes of an absent key succeed silently; a command line should say so.
    if (args.versionId === undefined) store.headObject(bucket, key)
    const result = store.deleteObject(bucket, key, { versionId: args.versionId })
    if (args.versionId !== undefined) {
      process.stdout.write(`removed ${result.deleteMarker ? 'delete marker' : 'version'} ${result.versionId} of ${name}\n`)
    } else if (result.deleteMarker) {
      process.stdout.write(`${name}: delete marker ${result.versionId} added (earlier versions kept)\n`)
    } else {
      process.stdout.write(`removed ${name}\n`)
    }
  })
})
