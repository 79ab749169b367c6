'use strict'
// `node-gyp rebuild` in a directory, for the install scripts: npm's bundled node-gyp,
// against the installed Node's headers when the system has them (no download: this
// machine may have no network).
const fs = require('node:fs')
const path = require('node:path')
const { execFileSync } = require('node:child_process')

function rebuild (dir) {
  // npm tells lifecycle scripts where its bundled node-gyp is.
  const gyp = process.env.npm_config_node_gyp ||
    require.resolve('node-gyp/bin/node-gyp.js', { paths: [path.join(path.dirname(process.execPath), '..', 'lib', 'node_modules', 'npm')] })
  const args = [gyp, 'rebuild']
  const nodedir = process.env.npm_config_nodedir || (fs.existsSync('/usr/include/node/node_api.h') ? '/usr' : '')
  if (nodedir !== '') args.push(`--nodedir=${nodedir}`)
  execFileSync(process.execPath, args, { cwd: dir, stdio: 'inherit' })
}

/** Whether `built` is missing or older than any of `sources`. */
function stale (built, sources) {
  if (!fs.existsSync(built)) return true
  const at = fs.statSync(built).mtimeMs
  return sources.some(f => fs.statSync(f).mtimeMs > at)
}

module.exports = { rebuild, stale }
