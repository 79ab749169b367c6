// Small-file workloads over the same tree on every target: untar, a cold stat of
// every file, rsync -a, renaming a directory of many files, rm -rf.
import fs from 'node:fs'
import path from 'node:path'
import { fillDirectory } from '../fixtures'
import { cmd, dropCaches, nowMs } from '../proc'
import { median, type Context, type Sample, type Target, type TargetName, type Workload } from '../workload'

const untarDir = (t: Target): string => path.join(t.dir, 'untar')
const rsyncDir = (t: Target): string => path.join(t.dir, 'rsync')
const renameDir = (t: Target): string => path.join(t.dir, 'rename')

/** Targets holding a complete extracted tree in untar/ (stat and rm -rf need one). */
const extracted = new Set<TargetName>()

async function extract (ctx: Context, t: Target): Promise<number> {
  fs.rmSync(untarDir(t), { recursive: true, force: true })
  fs.mkdirSync(untarDir(t))
  const r = await cmd('tar', ['xf', ctx.tree.tar, '-C', untarDir(t)])
  extracted.add(t.name)
  return r.ms
}

async function ensureExtracted (ctx: Context, t: Target): Promise<void> {
  if (!extracted.has(t.name)) await extract(ctx, t)
}

const perSec = (n: number, ms: number): number => n / (ms / 1000)

export const untar: Workload = {
  name: 'untar',
  title: 'untar of the tree (tar xf)',
  unit: 'files/s',
  better: 'higher',
  figure: { vs: 'bindfs', minRatio: 1.0 },
  prepare: async (_ctx, t) => {
    extracted.delete(t.name)
    fs.rmSync(untarDir(t), { recursive: true, force: true })
  },
  run: async (ctx, t): Promise<Sample> => {
    const ms = await extract(ctx, t)
    return { value: perSec(ctx.tree.files, ms), detail: { ms: Math.round(ms), files: ctx.tree.files, dirs: ctx.tree.dirs, bytes: ctx.tree.bytes } }
  }
}

/** readdir of every directory and lstat of every entry, depth first; returns the number of regular files. */
function walk (dir: string): { files: number, entries: number } {
  let files = 0
  let entries = 0
  const stack = [dir]
  for (let d = stack.pop(); d !== undefined; d = stack.pop()) {
    for (const name of fs.readdirSync(d)) {
      const p = path.join(d, name)
      const st = fs.lstatSync(p)
      entries++
      if (st.isDirectory()) stack.push(p)
      else if (st.isFile()) files++
    }
  }
  return { files, entries }
}

export const stat: Workload = {
  name: 'stat',
  title: 'stat of every file in the tree, cold (readdir + lstat)',
  unit: 'files/s',
  better: 'higher',
  figure: { vs: 'bindfs', minRatio: 1.0 },
  prepare: async (ctx, t) => { await ensureExtracted(ctx, t) },
  run: async (ctx, t): Promise<Sample> => {
    await dropCaches()
    const started = nowMs()
    const { files, entries } = walk(untarDir(t))
    const ms = nowMs() - started
    if (files !== ctx.tree.files) throw new Error(`found ${files} files in ${untarDir(t)}, expected ${ctx.tree.files}`)
    return { value: perSec(files, ms), detail: { ms: Math.round(ms), entries, cold: ctx.canDropCaches ? 'yes' : 'no (not root)' } }
  }
}

export const rsync: Workload = {
  name: 'rsync',
  title: 'rsync -a of the tree into the target',
  unit: 'files/s',
  better: 'higher',
  figure: { vs: 'bindfs', minRatio: 1.0 },
  prepare: async (_ctx, t) => { fs.rmSync(rsyncDir(t), { recursive: true, force: true }) },
  run: async (ctx, t): Promise<Sample> => {
    const r = await cmd('rsync', ['-a', `${ctx.tree.dir}/`, `${rsyncDir(t)}/`])
    return { value: perSec(ctx.tree.files, r.ms), detail: { ms: Math.round(r.ms) } }
  },
  finish: async (_ctx, t) => { fs.rmSync(rsyncDir(t), { recursive: true, force: true }) }
}

const RENAMES = 7

/** Renames a directory back and forth RENAMES times; each rename's ms. */
function renames (parent: string, name: string): number[] {
  const times: number[] = []
  let from = path.join(parent, name)
  let to = `${from}-moved`
  for (let i = 0; i < RENAMES; i++) {
    const started = nowMs()
    fs.renameSync(from, to)
    times.push(nowMs() - started)
    ;[from, to] = [to, from]
  }
  if (from !== path.join(parent, name)) fs.renameSync(from, to)
  return times
}

export const rename: Workload = {
  name: 'rename',
  title: 'rename of a directory holding 1,000 files (median of 7)',
  unit: 'ms',
  better: 'lower',
  figure: { vs: 'bindfs', maxRatio: 2.0 },
  prepare: async (ctx, t) => {
    fs.rmSync(renameDir(t), { recursive: true, force: true })
    fillDirectory(path.join(renameDir(t), 'many'), ctx.sizes.renameFiles, 100)
    fillDirectory(path.join(renameDir(t), 'few'), 10, 100)
  },
  run: async (ctx, t): Promise<Sample> => {
    const many = renames(renameDir(t), 'many')
    const few = renames(renameDir(t), 'few')
    const r = (x: number): number => Math.round(x * 1000) / 1000
    return {
      value: median(many),
      detail: { files: ctx.sizes.renameFiles, msEach: many.map(r).join(' '), ms10files: r(median(few)) }
    }
  },
  finish: async (_ctx, t) => { fs.rmSync(renameDir(t), { recursive: true, force: true }) }
}

export const rmrf: Workload = {
  name: 'rmrf',
  title: 'rm -rf of the tree',
  unit: 'files/s',
  better: 'higher',
  figure: { vs: 'bindfs', minRatio: 1.0 },
  prepare: async (ctx, t) => { await ensureExtracted(ctx, t) },
  run: async (ctx, t): Promise<Sample> => {
    const r = await cmd('rm', ['-rf', untarDir(t)])
    extracted.delete(t.name)
    return { value: perSec(ctx.tree.files, r.ms), detail: { ms: Math.round(r.ms) } }
  }
}
