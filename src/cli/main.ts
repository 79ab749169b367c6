// The bucketfs command line: global options, the list of commands, and the
// one place where failures become messages and exit codes.
import yargs, { type Argv } from 'yargs'
import { hideBin } from 'yargs/helpers'
import { isBucketfsError, messageOf } from '../errors'
import { protectStdio, type Command, type GlobalArgs } from './command'
import { defaultDataDir } from './datadir'
import { EXIT, exitCodeFor } from './exit'
import { log } from './log'

/** One file per command under ./commands, each default-exporting a `Command`. Order = order in --help. */
const COMMANDS = [
  'mount', 'umount',
  'bucket', 'versioning', 'ls', 'put', 'get', 'rm', 'restore', 'uploads', 'fsck', 'gc', 'stats'
] as const

function loadCommand (name: string): Command {
  const mod = require(`./commands/${name}`) as { default?: unknown }
  if (typeof mod.default !== 'function') throw new Error(`src/cli/commands/${name}.ts must default-export a Command`)
  return mod.default as Command
}

/** A bad command line, already explained to the user by the time it is thrown. */
class UsageError extends Error {}

function parser (args: string[]): Argv<GlobalArgs> {
  const root = yargs(protectStdio(args))
    .scriptName('bucketfs')
    .usage('$0 <command> [options]\n\nThe S3 object model on your own disk.')
    .option('data', {
      type: 'string',
      global: true,
      default: defaultDataDir(),
      defaultDescription: '$XDG_DATA_HOME/bucketfs or ~/.local/share/bucketfs',
      describe: 'the store\'s data directory',
      requiresArg: true
    })
    .strict()
    .demandCommand(1, 'a command is required')
    .recommendCommands()
    .help()
    .alias('help', 'h')
    .wrap(Math.min(100, process.stdout.columns ?? 80))
    .fail((msg: string | null, err: Error | undefined, y: Argv) => {
      // yargs passes a handler's own error with msg === null: that is no usage error
      if (msg === null && err !== undefined && err.name !== 'YError') throw err
      y.showHelp(text => { process.stderr.write(text + '\n\n') })
      process.stderr.write(`bucketfs: ${msg ?? err?.message ?? 'invalid command line'}\n`)
      throw new UsageError(msg ?? undefined)
    })
  return COMMANDS.reduce((y, name) => loadCommand(name)(y), root)
}

function report (err: unknown): number {
  if (err instanceof UsageError) return EXIT.usage
  const message = messageOf(err)
  process.stderr.write(`bucketfs: ${message}\n`)
  if (isBucketfsError(err)) {
    log('%s: %s', err.code, err.stack)
  } else if (process.env.DEBUG !== undefined && process.env.DEBUG !== '' && err instanceof Error) {
    process.stderr.write(`${err.stack ?? ''}\n`)
  }
  return exitCodeFor(err)
}

/** Runs one command line; resolves to the exit code. */
export async function main (args: string[]): Promise<number> {
  try {
    await parser(args).parseAsync()
  } catch (err) {
    return report(err)
  }
  return typeof process.exitCode === 'number' ? process.exitCode : EXIT.ok
}

/** Entry point for bin/bucketfs. */
export function run (): void {
  // `bucketfs get b/k - | head` closes our stdout early: that is not an error.
  process.stdout.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code === 'EPIPE') process.exit(EXIT.ok)
    throw err
  })
  main(hideBin(process.argv)).then(code => { process.exitCode = code }, (err: unknown) => {
    process.exitCode = report(err)
  })
}
