// bucketfs restore bucket/key --version ID
import type { Argv } from 'yargs'
import { defineCommand, parseTarget, requireObjectTarget, withStore, type GlobalArgs } from '../command'

export default defineCommand({
  command: 'restore <target>',
  describe: 'make an earlier version the latest again (as a new version; nothing is copied)',
  builder: (y: Argv<GlobalArgs>) => y
    .version(false) // --version is ours here, not "print bucketfs's version"
    .positional('target', { type: 'string', demandOption: true, describe: 'bucket/key' })
    .option('version', { type: 'string', demandOption: true, requiresArg: true, describe: 'the version id to restore (see ls --versions)' })
    .check(requireObjectTarget('target'))
    .example('$0 restore photos/cat.jpg --version 0192…', ''),
  handler: async args => withStore(args, async store => {
    const { bucket, key } = parseTarget(args.target)
    const version = await store.restoreObject(bucket, key, args.version)
    process.stdout.write(`restored ${bucket}/${key} from version ${args.version} as version ${version.versionId}\n`)
  })
})
