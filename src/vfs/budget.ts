// The memory all write sessions may hold in dirty buffers together. A session
// that finds the budget spent flushes its own buffers before its write returns
// (back-pressure), so memory stays near the budget however much is written.
export class MemoryBudget {
  used = 0
  constructor (readonly limit: number) {}
  take (n: number): void { this.used += n }
  give (n: number): void { this.used = Math.max(0, this.used - n) }
  get exceeded (): boolean { return this.used > this.limit }
}

/** Runs async sections one at a time. */
export class Mutex {
  private tail: Promise<unknown> = Promise.resolve()
  async run<T> (fn: () => Promise<T>): Promise<T> {
    const result = this.tail.then(fn, fn)
    this.tail = result.catch(() => {})
    return await result
  }
}
