import { Context } from '@temporalio/activity';

/**
 * Heartbeats `details()` every few seconds for as long as `work` runs, so that a long silent step
 * (a remote checksum, a big listing) does not look like a dead worker, while a dead worker still
 * shows up within the heartbeat timeout. Progress callbacks may heartbeat more often; the SDK throttles.
 */
export async function whileHeartbeating<T>(details: () => unknown, work: () => Promise<T>, everyMs = 5000): Promise<T> {
  const ctx = Context.current();
  ctx.heartbeat(details());
  const timer = setInterval(() => ctx.heartbeat(details()), everyMs);
  try {
    return await work();
  } finally {
    clearInterval(timer);
  }
}
