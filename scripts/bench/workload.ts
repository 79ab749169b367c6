// What a workload is, what it measures and the figure issue 5 sets for it.
import type { Tree } from './fixtures'
import type { ProbeDelta } from './probe-client'

export type TargetName = 'raw' | 'bindfs' | 'bucketfs'
export const TARGET_NAMES: readonly TargetName[] = ['raw', 'bindfs', 'bucketfs']

/** The middle value (of an even count, the mean of the two middle ones). */
export function median (xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b)
  const m = s.length >> 1
  return s.length % 2 === 1 ? s[m] : (s[m - 1] + s[m]) / 2
}

export interface Target {
  name: TargetName
  /** A directory on the target where the workloads run (bucketfs: the bucket `bench`). */
  dir: string
  /** The FUSE daemon's pid (none for the raw disk). */
  pid?: number
}

export interface Sizes {
  /** sequential write/read */
  seqBytes: number
  /** fio's file */
  fioBytes: number
  treeFiles: number
  renameFiles: number
  /** the big bucket */
  bucketKeys: number
  /** entries of the directory listed in it */
  dirEntries: number
  rssBytes: number
}

export const FULL: Sizes = {
  seqBytes: 1024 * 1024 * 1024,
  fioBytes: 256 * 1024 * 1024,
  treeFiles: 5000,
  renameFiles: 1000,
  bucketKeys: 1_000_000,
  dirEntries: 10_000,
  rssBytes: 4 * 1024 * 1024 * 1024
}

export const QUICK: Sizes = {
  seqBytes: 64 * 1024 * 1024,
  fioBytes: 64 * 1024 * 1024,
  treeFiles: 500,
  renameFiles: 1000,
  bucketKeys: 10_000,
  dirEntries: 1_000,
  rssBytes: 256 * 1024 * 1024
}

/** What the workloads share: sizes and the fixtures every target gets the same copy of. */
export interface Context {
  sizes: Sizes
  work: string
  randomFile: string
  tree: Tree
  /** Caches can be dropped (we are root). */
  canDropCaches: boolean
}

/** One timed run. `value` is in the workload's unit; `detail` says how it was obtained. */
export interface Sample {
  value: number
  detail?: Record<string, number | string>
}

/**
 * The figure a workload must reach (issue 5): bucketfs's value against a peer's, as a
 * ratio of values (`min` for rates, `max` for times), or an absolute bound.
 */
export type Figure =
  | { vs: 'raw' | 'bindfs', minRatio: number }
  | { vs: 'raw' | 'bindfs', maxRatio: number }
  | { max: number }

export interface Workload {
  name: string
  title: string
  unit: string
  better: 'higher' | 'lower'
  figure: Figure
  /** Untimed set-up on one target (inputs a previous workload would have left). */
  prepare?: (ctx: Context, target: Target) => Promise<void>
  /** The timed part. */
  run: (ctx: Context, target: Target) => Promise<Sample>
  /** Untimed removal of what the workload left and nothing later needs. */
  finish?: (ctx: Context, target: Target) => Promise<void>
}

/** A row of the report: one measured quantity on one or more targets. */
export interface Row {
  workload: string
  title: string
  unit: string
  better: 'higher' | 'lower'
  /** None where issue 5 sets no figure. */
  figure?: Figure
  values: Partial<Record<TargetName, number>>
  detail: Partial<Record<TargetName, Record<string, number | string>>>
  /** CPU seconds of the FUSE daemon per thread name, during the timed part. */
  daemonCpu: Partial<Record<TargetName, Record<string, number>>>
  /** Wall seconds of the timed part. */
  seconds: Partial<Record<TargetName, number>>
  /** 1-minute load average when the bucketfs run started. */
  load?: number
  /** CLOCK_MONOTONIC µs of the bucketfs run (to cut a daemon CPU profile). */
  window?: { from: number, to: number }
  /** The daemon's own counters (--probe): FUSE ops, SQL statements, hashing. */
  probe?: ProbeDelta
  /** The daemon's system calls (--strace): name → calls, errors, seconds. */
  strace?: unknown
  error?: string
}
