import { setTimeout as sleep } from 'node:timers/promises';

/**
 * transfer.maxBytesPerSecond (like rsync --bwlimit), counted from when the cap was made: a transfer waits
 * before reading on (SSH flow control then holds the sender back). A limit of 0 or none: no cap.
 */
export class RateCap {
  private readonly startedAt = Date.now();
  private readonly limit: number;

  constructor(limit: number | undefined) {
    this.limit = limit ?? 0;
  }

  /** Milliseconds until `bytes` moved since the start are within the cap; 0 when they are already. */
  waitFor(bytes: number): number {
    return this.limit > 0 ? Math.max(0, (bytes / this.limit) * 1000 - (Date.now() - this.startedAt)) : 0;
  }

  /** Waits until `bytes` moved since the start are within the cap (an abort ends the wait early). */
  async hold(bytes: number, signal?: AbortSignal): Promise<void> {
    const wait = this.waitFor(bytes);
    if (wait > 0) await sleep(wait, undefined, { signal }).catch(() => undefined);
  }
}
