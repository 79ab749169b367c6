// Small formatting helpers shared by the listing commands.

/** UTC, second precision, ISO 8601: `2024-05-01T12:00:00Z`. */
export function formatTime (ms: number): string {
  return new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z')
}

export function humanBytes (n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB']
  let v = n
  let i = 0
  while (v >= 1024 && i < units.length - 1) { v /= 1024; i++ }
  return i === 0 ? `${n} B` : `${v.toFixed(1)} ${units[i]}`
}

/** Prints rows as columns separated by two spaces; numbers align right. */
export function printTable (rows: string[][], rightAligned: ReadonlySet<number> = new Set()): void {
  const widths: number[] = []
  for (const row of rows) row.forEach((cell, i) => { widths[i] = Math.max(widths[i] ?? 0, cell.length) })
  for (const row of rows) {
    const cells = row.map((cell, i) => {
      if (i === row.length - 1) return cell // last column (the key) is never padded
      return rightAligned.has(i) ? cell.padStart(widths[i]) : cell.padEnd(widths[i])
    })
    process.stdout.write(cells.join('  ') + '\n')
  }
}
