// What every command file shares: the global options, the way a command is
// registered, opening the store, and parsing `bucket/key` targets.
import path from 'node:path'
import type { Argv, CommandModule } from 'yargs'
import { Store } from '../store'
import { log } from './log'

export interface GlobalArgs {
  data: string
}

/** Registers one command (or a group of them) on the root parser. */
export type Command = (y: Argv<GlobalArgs>) => Argv<GlobalArgs>

export function defineCommand<U> (module: CommandModule<GlobalArgs, U>): Command {
  return y => y.command(module)
}

/** Opens the store named by `--data`, runs `fn`, and always closes it. */
export async function withStore<R> (args: GlobalArgs, fn: (store: Store) => Promise<R> | R): Promise<R> {
  const dir = path.resolve(args.data)
  log('opening store at %s', dir)
  const store = Store.open(dir)
  try {
    return await fn(store)
  } finally {
    store.close()
    log('store closed')
  }
}

/**
 * yargs turns a lone `-` positional into '' (or `true`), so main() swaps it for
 * a token no real argument can hold (argv strings cannot contain NUL) and the
 * file positionals turn it back with `coerce: stdioArg`.
 */
const STDIO_TOKEN = '\0-'
export const protectStdio = (args: readonly string[]): string[] => args.map(a => a === '-' ? STDIO_TOKEN : a)
export const stdioArg = (value: string): string => value === STDIO_TOKEN ? '-' : value

export interface Target {
  bucket: string
  /** Everything after the first '/', possibly ''. */
  key: string
}

/** `photos/2024/a.jpg` → { bucket: 'photos', key: '2024/a.jpg' }. */
export function parseTarget (target: string): Target {
  const slash = target.indexOf('/')
  if (slash < 0) return { bucket: target, key: '' }
  return { bucket: target.slice(0, slash), key: target.slice(slash + 1) }
}

/** A yargs `.check()` that insists positional `name` is `bucket/key` with a non-empty key. */
export function requireObjectTarget (name: string) {
  return (argv: Record<string, unknown>): true => {
    const value = argv[name]
    if (typeof value !== 'string') return true // yargs reports the missing argument itself
    const { bucket, key } = parseTarget(value)
    if (bucket === '' || key === '') throw new Error(`${name} must look like bucket/key, got '${value}'`)
    return true
  }
}
