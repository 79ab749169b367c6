import debug from 'debug'

/** `DEBUG=bucketfs:cli` (or `bucketfs:*`) turns this on. */
export const log = debug('bucketfs:cli')
