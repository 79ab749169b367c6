// bucketfs fsck [--deep] [--repair]: exit 0 when clean, 1 when problems were found.
import type { Argv } from 'yargs'
import type { FsckReport } from '../../store/types'
import { defineCommand, withStore, type GlobalArgs } from '../command'
import { EXIT } from '../exit'
import { formatTime } from '../format'
import { startProgress } from '../progress'

function section (title: string, lines: readonly string[]): string {
  if (lines.length === 0) return `${title}: none\n`
  return `${title}: ${lines.length}\n` + lines.map(l => `  ${l}\n`).join('')
}

export function formatFsckReport (r: FsckReport, deep: boolean): string {
  return [
    `chunks checked: ${r.chunksChecked}${deep ? ' (contents hashed)' : ''}\n`,
    section('missing chunks', r.missingChunks),
    deep ? section('corrupt chunks', r.corruptChunks) : '',
    section('wrong reference counts', r.badRefcounts.map(b => `${b.hash}: recorded ${b.recorded}, actual ${b.actual}`)),
    section('orphan chunk files', r.orphanFiles),
    section('key index problems', r.keyIndexProblems),
    section('uploads in progress', r.uploadsInProgress.map(u =>
      `${u.uploadId}  ${u.kind}  ${u.bucket}/${u.key}  started ${formatTime(u.initiatedMs)}`)),
    r.repaired.length > 0 ? section('repaired', r.repaired) : '',
    r.clean ? 'store is clean\n' : 'PROBLEMS FOUND' + (r.repaired.length === 0 ? ' (run with --repair to fix what is safe to fix)' : '') + '\n'
  ].join('')
}

export default defineCommand({
  command: 'fsck',
  describe: 'check the store: chunks exist (--deep: and match their hash), reference counts, orphans, the key index, uploads',
  builder: (y: Argv<GlobalArgs>) => y
    .option('deep', { type: 'boolean', default: false, describe: 'read every chunk and verify its SHA-256' })
    .option('repair', { type: 'boolean', default: false, describe: 'fix what is safe to fix (reference counts, orphan files)' })
    .epilogue('Exit status: 0 when the store is clean, 1 when problems were found.'),
  handler: async args => withStore(args, async store => {
    const progress = startProgress('fsck', 1)
    let report: FsckReport
    try {
      report = await store.fsck({ deep: args.deep, repair: args.repair, onProgress: (done, total) => progress.update(done, total) })
    } finally {
      progress.stop()
    }
    process.stdout.write(formatFsckReport(report, args.deep))
    if (!report.clean) process.exitCode = EXIT.failure
  })
})
