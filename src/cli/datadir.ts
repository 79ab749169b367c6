import os from 'node:os'
import path from 'node:path'

/** The store's default location: `$XDG_DATA_HOME/bucketfs`, else `~/.local/share/bucketfs`. */
export function defaultDataDir (env: NodeJS.ProcessEnv = process.env): string {
  const xdg = env.XDG_DATA_HOME
  // The XDG spec says a relative $XDG_DATA_HOME is invalid and must be ignored.
  if (xdg !== undefined && path.isAbsolute(xdg)) return path.join(xdg, 'bucketfs')
  return path.join(os.homedir(), '.local', 'share', 'bucketfs')
}
