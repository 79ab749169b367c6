// bucketfs uploads ls [bucket] | uploads abort <uploadId>
import type { Argv } from 'yargs'
import { defineCommand, withStore, type GlobalArgs } from '../command'
import { formatTime, printTable } from '../format'

const list = defineCommand({
  command: 'ls [bucket]',
  describe: 'list multipart uploads in progress: started, upload id, kind, parts, bytes, bucket/key',
  builder: (y: Argv<GlobalArgs>) => y.positional('bucket', { type: 'string', describe: 'only this bucket' }),
  handler: async args => withStore(args, store => {
    printTable(store.listMultipartUploads(args.bucket).map(u => {
      const parts = store.listParts(u.uploadId)
      const bytes = parts.reduce((sum, p) => sum + p.size, 0)
      return [formatTime(u.initiatedMs), u.uploadId, u.kind, String(parts.length), String(bytes), `${u.bucket}/${u.key}`]
    }), new Set([3, 4]))
  })
})

const abort = defineCommand({
  command: 'abort <uploadId>',
  describe: 'abort an upload and free its parts',
  builder: (y: Argv<GlobalArgs>) => y.positional('uploadId', { type: 'string', demandOption: true }),
  handler: async args => withStore(args, store => {
    store.abortMultipartUpload(args.uploadId)
    process.stdout.write(`aborted upload ${args.uploadId}\n`)
  })
})

export default defineCommand({
  command: 'uploads',
  describe: 'list or abort multipart uploads in progress',
  builder: (y: Argv<GlobalArgs>) => abort(list(y)).demandCommand(1, 'uploads needs a sub-command: ls or abort'),
  handler: () => {}
})
