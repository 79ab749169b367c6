// bucketfs gc: remove chunks no version, part or upload references.
import type { Argv } from 'yargs'
import type { GcReport } from '../../store/types'
import { defineCommand, withStore, type GlobalArgs } from '../command'
import { humanBytes } from '../format'
import { startProgress } from '../progress'

export default defineCommand({
  command: 'gc',
  describe: 'delete unreferenced chunks (never one an upload in progress may still use)',
  builder: (y: Argv<GlobalArgs>) => y,
  handler: async args => withStore(args, store => {
    const progress = startProgress('gc', 1)
    let report: GcReport
    try {
      report = store.gc({ onProgress: (done: number, total: number) => progress.update(done, total) })
    } finally {
      progress.stop()
    }
    process.stdout.write(`removed ${report.chunksRemoved} chunks, freed ${report.bytesFreed} bytes (${humanBytes(report.bytesFreed)}), ` +
      `removed ${report.orphanFilesRemoved} orphan files\n`)
  })
})
