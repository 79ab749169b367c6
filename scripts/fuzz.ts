// Seeded random-operation fuzzing of a bucketfs mount (issue 6, hostile input).
// Random names (plain, Unicode of every class, control characters, 255/256-byte,
// dots), random offsets (small, near the end, sparse far away, past the 5 TiB
// limit), sizes and open flags, across files and directories: open/create, write,
// read, truncate/ftruncate, fsync, close, rename, unlink, mkdir, rmdir, readdir,
// stat, chmod, utimes, symlink/readlink, hard links and FIFOs (refused), xattrs,
// writes under .versions. Any errno is fine but EIO (and a dead daemon: ENOTCONN,
// ECONNABORTED, or a fuse-native timeout: ETIMEDOUT): those are failures, printed
// with the op and the ops before it. At the end every name is stat'ed and read at
// both ends, and `bucketfs fsck --deep` must be clean.
//
//   npm run build && node dist/scripts/fuzz.js [--ops 20000] [--minutes M] [--seed S] [--keep]
//       mounts a fresh store in a temp dir (always unmounted at the end)
//   node dist/scripts/fuzz.js --mounted MNT --data DIR [--bucket NAME] [--ops N] [--seed S]
//       fuzzes an existing mount (test/67-hostile.test.ts runs ~1,000 ops this way)
//
// Exits 1 on any failure.
import { spawnSync } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import { Mount, BIN } from '../test/helpers/mount'
import { Prng } from '../test/helpers/e2e'

const KiB = 1024
const MiB = 1024 * KiB
const GiB = 1024 * MiB
const TiB = 1024 * GiB

interface Args { ops: number, minutes?: number, seed: number, mounted?: string, data?: string, bucket: string, keep: boolean, verbose: boolean, huge: boolean }

function usage (): never {
  process.stderr.write(`usage: fuzz [--ops N] [--minutes M] [--seed S] [--bucket NAME] [--huge] [--keep] [--verbose]
       fuzz --mounted MNT --data DIR [--ops N] [--seed S] [--bucket NAME]
  --ops N       operations to run (default 20000; with --minutes, the most to run)
  --minutes M   run for M minutes instead
  --huge        also write at offsets up to 5 TiB (slow closes: each completes a TiB-sized file)
`)
  process.exit(2)
}

function parseArgs (argv: string[]): Args {
  const a: Args = { ops: 20000, seed: Date.now() % 1_000_000, bucket: 'fuzz', keep: false, verbose: false, huge: false }
  for (let i = 0; i < argv.length; i++) {
    const next = (): string => { const v = argv[++i]; if (v === undefined) usage(); return v }
    const num = (): number => { const v = Number(next()); if (!Number.isFinite(v) || v < 0) usage(); return v }
    switch (argv[i]) {
      case '--ops': a.ops = num(); break
      case '--minutes': a.minutes = num(); a.ops = Number.MAX_SAFE_INTEGER; break
      case '--seed': a.seed = num(); break
      case '--mounted': a.mounted = next(); break
      case '--data': a.data = next(); break
      case '--bucket': a.bucket = next(); break
      case '--keep': a.keep = true; break
      case '--verbose': a.verbose = true; break
      case '--huge': a.huge = true; break
      default: usage()
    }
  }
  if ((a.mounted === undefined) !== (a.data === undefined)) usage()
  return a
}

/** Errnos that mean the daemon failed: everything else is an answer. */
const FAILURES = new Set(['EIO', 'ENOTCONN', 'ECONNABORTED', 'ETIMEDOUT'])

const ODD_NAMES = [
  'plain.txt', 'a', 'b.bin', 'dir', 'x y z', '.dot', '..dots', '...', '-dash', '#hash', '%25', '*', '?', '\\back', 'CON', 'nul',
  'caf\u00e9', 'cafe\u0301', '\u05e9\u05dc\u05d5\u05dd', '\u202eevil', '\u{1F600}', '\u{1F468}\u200d\u{1F469}\u200d\u{1F467}', '\u200b', '\ufeff',
  '\u6f22\u5b57', '\ud55c', '\u{10330}', '\uffff', 'a\u2028b', 'tab\there', 'nl\nhere', 'cr\rhere', 'esc\x1b[31m', 'bell\x07', '\x01', '\x7f',
  'n'.repeat(255), 'o'.repeat(256), '\u6f22'.repeat(85), '\u6f22'.repeat(86), ' lead', 'trail ', 'trail.', '.versions', 'fuse_hidden', '.fuse_hidden0001'
]

interface Failure { op: number, desc: string, code: string, message: string }

/** Runs the fuzz on a mounted bucket; resolves to failures and counts. */
function fuzz (mnt: string, bucket: string, a: Args, out: (s: string) => void): { ops: number, failures: Failure[], codes: Map<string, number> } {
  const rng = new Prng(a.seed)
  const root = path.join(mnt, bucket)
  const pick = <T>(xs: T[]): T => xs[rng.int(xs.length)]
  const files = new Set<string>() // relative paths we believe are files
  const dirs = new Set<string>(['']) // and directories
  const fds: Array<{ fd: number, rel: string, flags: string }> = []
  const codes = new Map<string, number>()
  const failures: Failure[] = []
  const recent: string[] = []
  const deadline = a.minutes !== undefined ? Date.now() + a.minutes * 60_000 : Infinity
  let n = 0

  const name = (): string => rng.int(3) === 0 ? pick(ODD_NAMES) : `f${rng.int(40)}${pick(['', '.txt', '.bin'])}`
  const anyPath = (): string => {
    const r = rng.int(10)
    if (r < 4 && files.size > 0) return pick([...files])
    if (r < 5 && dirs.size > 1) return pick([...dirs].filter(d => d !== ''))
    const parent = pick([...dirs])
    return parent === '' ? name() : `${parent}/${name()}`
  }
  const abs = (rel: string): string => rel === '' ? root : path.join(root, rel)
  const offset = (size: number): number => {
    const r = rng.int(1000)
    if (r < 500) return rng.int(Math.max(1, size + 1))
    if (r < 800) return rng.int(4 * MiB)
    if (r < 950) return Math.max(0, size - rng.int(64 * KiB))
    if (r < 990) return GiB + rng.int(16 * GiB) // sparse, far away
    if (r < 998 || !a.huge) return 5 * TiB - rng.int(2) // at the 5 TiB limit (refused past it)
    return rng.int(5 * TiB)
  }
  const length = (): number => {
    const r = rng.int(100)
    if (r < 10) return 0
    if (r < 60) return 1 + rng.int(4 * KiB)
    if (r < 90) return rng.int(256 * KiB)
    return rng.int(3 * MiB)
  }
  const sizeOf = (fd: number): number => { try { return fs.fstatSync(fd).size } catch { return 0 } }

  const step = (): void => {
    const r = rng.int(1000)
    let desc = ''
    const attempt = (d: string, fn: () => void): void => {
      desc = d
      try {
        fn()
        codes.set('ok', (codes.get('ok') ?? 0) + 1)
      } catch (err) {
        const e = err as NodeJS.ErrnoException
        const code = e.code ?? `not a system error: ${e.message}`
        codes.set(code, (codes.get(code) ?? 0) + 1)
        if (FAILURES.has(code) || e.code === undefined) failures.push({ op: n, desc, code, message: e.message })
      }
    }
    const flagsList = ['r', 'r+', 'w', 'wx', 'w+', 'a', 'a+', 'ax']
    if (r < 130) {
      if (fds.length >= 16) { const f = fds.splice(rng.int(fds.length), 1)[0]; attempt(`close(${JSON.stringify(f.rel)})`, () => { fs.closeSync(f.fd) }); return }
      const rel = anyPath()
      const flags = pick(flagsList)
      attempt(`open(${JSON.stringify(rel)}, ${flags})`, () => {
        const fd = fs.openSync(abs(rel), flags, pick([0o644, 0o600, 0o755, 0o000, 0o777]))
        fds.push({ fd, rel, flags })
        if (flags !== 'r' && flags !== 'r+') files.add(rel)
      })
    } else if (r < 400 && fds.length > 0) {
      const f = pick(fds)
      const len = length()
      const off = offset(sizeOf(f.fd))
      attempt(`write(${JSON.stringify(f.rel)} [${f.flags}], ${len} bytes at ${off})`, () => { fs.writeSync(f.fd, rng.bytes(len), 0, len, off) })
    } else if (r < 520 && fds.length > 0) {
      const f = pick(fds)
      const len = length()
      const off = offset(sizeOf(f.fd))
      attempt(`read(${JSON.stringify(f.rel)} [${f.flags}], ${len} bytes at ${off})`, () => { fs.readSync(f.fd, Buffer.alloc(len), 0, len, off) })
    } else if (r < 570 && fds.length > 0) {
      const f = pick(fds)
      const size = rng.int(10) === 0 ? offset(sizeOf(f.fd)) : rng.int(4 * MiB)
      attempt(`ftruncate(${JSON.stringify(f.rel)} [${f.flags}], ${size})`, () => { fs.ftruncateSync(f.fd, size) })
    } else if (r < 600 && fds.length > 0) {
      const f = pick(fds)
      const data = rng.int(2) === 0
      attempt(`${data ? 'fdatasync' : 'fsync'}(${JSON.stringify(f.rel)})`, () => { if (data) fs.fdatasyncSync(f.fd); else fs.fsyncSync(f.fd) })
    } else if (r < 680 && fds.length > 0) {
      const f = fds.splice(rng.int(fds.length), 1)[0]
      attempt(`close(${JSON.stringify(f.rel)})`, () => { fs.closeSync(f.fd) })
    } else if (r < 720) {
      const rel = anyPath()
      const size = rng.int(10) === 0 ? offset(0) : rng.int(2 * MiB)
      attempt(`truncate(${JSON.stringify(rel)}, ${size})`, () => { fs.truncateSync(abs(rel), size) })
    } else if (r < 780) {
      const from = anyPath()
      const to = anyPath()
      attempt(`rename(${JSON.stringify(from)}, ${JSON.stringify(to)})`, () => {
        fs.renameSync(abs(from), abs(to))
        if (files.delete(from)) files.add(to)
        if (dirs.delete(from)) {
          dirs.add(to)
          for (const s of [...files, ...dirs].filter(x => x.startsWith(from + '/'))) {
            const set = files.has(s) ? files : dirs
            set.delete(s)
            set.add(to + s.slice(from.length))
          }
        }
      })
    } else if (r < 820) {
      const rel = anyPath()
      attempt(`unlink(${JSON.stringify(rel)})`, () => { fs.unlinkSync(abs(rel)); files.delete(rel) })
    } else if (r < 860) {
      const rel = anyPath()
      attempt(`mkdir(${JSON.stringify(rel)})`, () => { fs.mkdirSync(abs(rel), pick([0o755, 0o700, 0o000])); dirs.add(rel) })
    } else if (r < 880) {
      const rel = anyPath()
      attempt(`rmdir(${JSON.stringify(rel)})`, () => { fs.rmdirSync(abs(rel)); dirs.delete(rel) })
    } else if (r < 910) {
      const rel = rng.int(3) === 0 ? pick([...dirs]) : anyPath()
      attempt(`readdir(${JSON.stringify(rel)})`, () => { for (const e of fs.readdirSync(abs(rel))) { const c = rel === '' ? e : `${rel}/${e}`; fs.lstatSync(abs(c)) } })
    } else if (r < 935) {
      const rel = anyPath()
      attempt(`stat(${JSON.stringify(rel)})`, () => { fs.lstatSync(abs(rel)) })
    } else if (r < 950) {
      const rel = anyPath()
      const mode = rng.int(0o10000)
      attempt(`chmod(${JSON.stringify(rel)}, 0${mode.toString(8)})`, () => { fs.chmodSync(abs(rel), mode) })
    } else if (r < 960) {
      const rel = anyPath()
      const when = pick([0, 1, 2 ** 31 - 1, 2 ** 31, 4102444800, -1, Date.now() / 1000])
      attempt(`utimes(${JSON.stringify(rel)}, ${when})`, () => { fs.utimesSync(abs(rel), when, when) })
    } else if (r < 970) {
      const rel = anyPath()
      const target = pick(['plain.txt', '../../../../etc/passwd', '/etc/passwd', '', 'x'.repeat(4000), '\u{1F600}', '.', '..'])
      attempt(`symlink(${JSON.stringify(target.slice(0, 40))}, ${JSON.stringify(rel)})`, () => { fs.symlinkSync(target, abs(rel)); fs.readlinkSync(abs(rel)) })
    } else if (r < 975) {
      const from = anyPath()
      const to = anyPath()
      attempt(`link(${JSON.stringify(from)}, ${JSON.stringify(to)})`, () => { fs.linkSync(abs(from), abs(to)) })
    } else if (r < 978) {
      const rel = anyPath()
      desc = `mkfifo(${JSON.stringify(rel)})`
      const res = spawnSync('mkfifo', [abs(rel)], { encoding: 'utf8' })
      const code = res.status === 0 ? 'ok' : /Input\/output/.test(res.stderr) ? 'EIO' : /not connected/.test(res.stderr) ? 'ENOTCONN' : 'refused'
      codes.set(`mkfifo:${code}`, (codes.get(`mkfifo:${code}`) ?? 0) + 1)
      if (FAILURES.has(code)) failures.push({ op: n, desc, code, message: res.stderr })
    } else if (r < 993) {
      const rel = rng.int(4) === 0 ? '' : anyPath()
      const op = pick(['set', 'set', 'get', 'list', 'remove'])
      const xname = pick(['user.a', 'user.B', 'user.' + 'n'.repeat(rng.int(260)), 'user.s3.etag', 'user.s3.content_type', 'user.s3.versioning', 'trusted.x', 'security.selinux', 'user.\u{1F600}', 'user.'])
      const value = pick(['v', '', 'x'.repeat(rng.int(2200)), '0xff00', '\u00e9'.repeat(rng.int(1100)), 'Enabled', 'Suspended'])
      const args = op === 'set' ? ['setfattr', '-n', xname, '-v', value, abs(rel)]
        : op === 'get' ? ['getfattr', '-n', xname, abs(rel)]
          : op === 'list' ? ['getfattr', '-d', '-m', '-', abs(rel)] : ['setfattr', '-x', xname, abs(rel)]
      desc = `${args[0]} ${args.slice(1, -2).map(s => s.slice(0, 30)).join(' ')} ${JSON.stringify(rel)}`
      const res = spawnSync(args[0], args.slice(1), { encoding: 'utf8', env: { ...process.env, LC_ALL: 'C' } })
      const code = res.status === 0 ? 'ok' : /Input\/output/.test(res.stderr) ? 'EIO' : /not connected/.test(res.stderr) ? 'ENOTCONN' : 'refused'
      codes.set(`xattr:${code}`, (codes.get(`xattr:${code}`) ?? 0) + 1)
      if (FAILURES.has(code)) failures.push({ op: n, desc, code, message: res.stderr })
    } else {
      const rel = `.versions/${anyPath()}`
      const flags = pick(['r', 'w', 'a', 'r+'])
      attempt(`open(${JSON.stringify(rel)}, ${flags})`, () => { fs.closeSync(fs.openSync(abs(rel), flags)) })
    }
    recent.push(`#${n} ${desc}`)
    if (recent.length > 20) recent.shift()
    if (a.verbose) out(`#${n} ${desc}\n`)
  }

  const slow: Array<{ ms: number, desc: string }> = []
  for (; n < a.ops && Date.now() < deadline; n++) {
    const before = failures.length
    const t0 = Date.now()
    step()
    const ms = Date.now() - t0
    if (ms >= 1000) slow.push({ ms, desc: recent[recent.length - 1] })
    if (failures.length > before) {
      const f = failures[failures.length - 1]
      out(`FAILURE at op #${f.op}: ${f.desc} → ${f.code} (${f.message.trim()})\n  the ops before it:\n    ${recent.slice(0, -1).join('\n    ')}\n`)
      if (f.code === 'ENOTCONN' || f.code === 'ECONNABORTED') { n++; break }
    }
    if (n > 0 && n % 5000 === 0) out(`${n} ops…\n`)
  }
  for (const f of fds) {
    try { fs.closeSync(f.fd) } catch (err) {
      const code = (err as NodeJS.ErrnoException).code ?? 'unknown'
      if (FAILURES.has(code)) failures.push({ op: n, desc: `final close(${JSON.stringify(f.rel)})`, code, message: (err as Error).message })
    }
  }
  // Everything the mount shows can be stat'ed and read at both ends.
  const walk = (dir: string): void => {
    let names: string[]
    try { names = fs.readdirSync(dir) } catch (err) {
      const code = (err as NodeJS.ErrnoException).code ?? 'unknown'
      if (FAILURES.has(code)) failures.push({ op: n, desc: `final readdir(${dir})`, code, message: (err as Error).message })
      return
    }
    for (const e of names) {
      const p = path.join(dir, e)
      try {
        const st = fs.lstatSync(p)
        if (st.isDirectory()) { walk(p); continue }
        if (st.isSymbolicLink()) { fs.readlinkSync(p); continue }
        const fd = fs.openSync(p, 'r')
        try {
          const buf = Buffer.alloc(64 * KiB)
          fs.readSync(fd, buf, 0, buf.length, 0)
          if (st.size > buf.length) fs.readSync(fd, buf, 0, buf.length, st.size - buf.length)
        } finally { fs.closeSync(fd) }
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code ?? 'unknown'
        if (FAILURES.has(code)) failures.push({ op: n, desc: `final check of ${JSON.stringify(path.relative(root, p))}`, code, message: (err as Error).message })
      }
    }
  }
  walk(root)
  if (slow.length > 0) out(`ops that took a second or more: ${slow.length}\n${slow.sort((x, y) => y.ms - x.ms).slice(0, 10).map(x => `  ${x.ms} ms: ${x.desc}`).join('\n')}\n`)
  return { ops: n, failures, codes }
}

function fsckDeep (dataDir: string): { ok: boolean, out: string } {
  const env = { ...process.env }
  delete env.DEBUG
  const r = spawnSync(process.execPath, [BIN, 'fsck', '--deep', '--data', dataDir], { encoding: 'utf8', env, timeout: 600_000 })
  return { ok: r.status === 0, out: `${r.stdout ?? ''}${r.stderr ?? ''}` }
}

async function main (): Promise<number> {
  const a = parseArgs(process.argv.slice(2))
  const out = (s: string): void => { process.stdout.write(s) }
  let m: Mount | undefined
  let mnt = a.mounted
  let dataDir = a.data
  const problems: string[] = []
  const started = Date.now()
  if (mnt === undefined) {
    m = new Mount({ stopTimeoutMs: 120_000 })
    const mm = m
    const onSignal = (): void => { void mm.cleanup().finally(() => process.exit(130)) }
    process.on('SIGINT', onSignal)
    process.on('SIGTERM', onSignal)
    await m.start()
    mnt = m.mountpoint
    dataDir = m.dataDir
  }
  try {
    const bucket = path.join(mnt, a.bucket)
    if (!fs.existsSync(bucket)) fs.mkdirSync(bucket)
    out(`fuzz: seed ${a.seed}, ${a.minutes !== undefined ? `${a.minutes} minute(s)` : `${a.ops} ops`} on ${bucket}\n`)
    const r = fuzz(mnt, a.bucket, a, out)
    const codes = [...r.codes].sort((x, y) => y[1] - x[1]).map(([c, k]) => `${c} ${k}`).join(', ')
    out(`ops run: ${r.ops}\noutcomes: ${codes}\n`)
    for (const f of r.failures) problems.push(`op #${f.op}: ${f.desc} → ${f.code}`)
    if (m !== undefined && m.pid === undefined) problems.push(`the daemon died:\n${m.log().slice(-3000)}`)
    if (m !== undefined) {
      const code = await m.stop()
      if (code !== 0) problems.push(`the daemon exited ${code} after SIGTERM:\n${m.log().slice(-3000)}`)
    }
    const fsck = fsckDeep(dataDir as string)
    if (!fsck.ok) problems.push(`fsck --deep is not clean:\n${fsck.out}`)
    if (m !== undefined) {
      const eio = m.log().split('\n').filter(l => /EIO/.test(l))
      if (eio.length > 0) problems.push(`the daemon log mentions EIO:\n${eio.slice(0, 10).join('\n')}`)
    }
  } catch (err) {
    problems.push(`the run failed: ${(err as Error).stack ?? String(err)}`)
  } finally {
    if (m !== undefined) {
      if (a.keep) { await m.stop(); out(`kept ${m.root}\n`) } else await m.cleanup()
    }
  }
  for (const p of problems) out(`PROBLEM: ${p}\n`)
  out(`failures: ${problems.length}\ntime: ${((Date.now() - started) / 1000).toFixed(1)} s\n`)
  return problems.length === 0 ? 0 : 1
}

if (require.main === module) {
  main().then(code => { process.exitCode = code }, (err: unknown) => {
    process.stderr.write(`${(err as Error).stack ?? String(err)}\n`)
    process.exitCode = 1
  })
}
