// bucketfs stats [--json]
import type { Argv } from 'yargs'
import { defineCommand, withStore, type GlobalArgs } from '../command'
import { humanBytes, printTable } from '../format'

export default defineCommand({
  command: 'stats',
  describe: 'counts, logical vs stored bytes, and the dedup ratio',
  builder: (y: Argv<GlobalArgs>) => y
    .option('json', { type: 'boolean', default: false, describe: 'print the numbers as one JSON object' }),
  handler: async args => withStore(args, store => {
    const s = store.stats()
    if (args.json) {
      process.stdout.write(JSON.stringify(s, null, 2) + '\n')
      return
    }
    printTable([
      ['buckets', String(s.buckets)],
      ['objects', String(s.objects)],
      ['versions', String(s.versions)],
      ['delete markers', String(s.deleteMarkers)],
      ['uploads', String(s.uploads)],
      ['logical bytes', `${s.logicalBytes} (${humanBytes(s.logicalBytes)})`],
      ['stored bytes', `${s.storedBytes} (${humanBytes(s.storedBytes)})`],
      ['chunks', `${s.chunks} (${s.inlineChunks} inline)`],
      ['dedup ratio', s.dedupRatio.toFixed(2)]
    ])
  })
})
