// Version IDs: opaque, unique, and ordered by creation time (a ULID: 48 bits of
// milliseconds then 80 random bits, Crockford base32, monotonic within a process).
import crypto from 'node:crypto'

const ALPHABET = '0123456789ABCDEFGHJKMNPQRSTVWXYZ'
let lastMs = -1
let lastRandom: bigint = 0n

export function newVersionId (now = Date.now()): string {
  let random: bigint
  if (now <= lastMs) {
    now = lastMs
    random = lastRandom + 1n
  } else {
    random = BigInt('0x' + crypto.randomBytes(10).toString('hex'))
  }
  lastMs = now
  lastRandom = random
  return encode(BigInt(now), 10) + encode(random, 16)
}

function encode (n: bigint, digits: number): string {
  let out = ''
  for (let i = 0; i < digits; i++) {
    out = ALPHABET[Number(n & 31n)] + out
    n >>= 5n
  }
  return out
}

/** The time a version ID was made, in ms (undefined for 'null' or foreign IDs). */
export function versionIdTime (id: string): number | undefined {
  if (!/^[0-9A-HJKMNP-TV-Z]{26}$/.test(id)) return undefined
  let n = 0
  for (const c of id.slice(0, 10)) n = n * 32 + ALPHABET.indexOf(c)
  return n
}

/**
 * An upload ID: 18 random bytes in base64url. Never one that begins with '-', which a
 * command line takes for an option (`bucketfs uploads abort -x…` failed 1 time in 64).
 */
export function newUploadId (): string {
  for (;;) {
    const id = crypto.randomBytes(18).toString('base64url')
    if (!id.startsWith('-')) return id
  }
}
